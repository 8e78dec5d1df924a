use super::*;
use crate::core::{Evidence, EvidenceKind};
use crate::sim::sim_genesis;
use crate::types::{QuorumCert, Signature};

fn meta() -> ChainMeta {
    ChainMeta { chain_id: 7, genesis_id: sim_genesis().id() }
}

fn ops() -> Vec<PersistOp> {
    let g = sim_genesis();
    let mut b = g.clone();
    b.round = 1;
    b.parent_id = g.id();
    b.qc = QuorumCert::genesis(g.id());
    b.payload.number = 1;
    let qc = QuorumCert { block_id: b.id(), round: 1, signatures: vec![(0, Signature([1; 64]))] };
    let mut safety = SafetyData::new(QuorumCert::genesis(g.id()));
    safety.last_voted_round = 1;
    safety.high_qc = qc.clone();
    vec![
        PersistOp::Block(b.clone()),
        PersistOp::Qc(qc.clone()),
        PersistOp::Safety(safety),
        PersistOp::Committed { height: 1, block_id: b.id(), qc },
        PersistOp::Evidence(Evidence {
            kind: EvidenceKind::Vote,
            round: 1,
            signer: 2,
            first: (B256::repeat_byte(1), Signature([1; 64])),
            second: (B256::repeat_byte(2), Signature([2; 64])),
        }),
    ]
}

fn check_recovery(rec: Recovery) {
    assert_eq!(rec.safety.last_voted_round, 1);
    assert_eq!(rec.blocks.len(), 1);
    assert_eq!(rec.qcs.len(), 1);
    assert_eq!(rec.committed, Some(rec.blocks[0].id()));
}

#[test]
fn mdbx_round_trip_survives_reopen() {
    let dir = tempfile::tempdir().unwrap();
    {
        let mut s = MdbxStorage::open(dir.path(), meta()).unwrap();
        assert!(s.load(crate::block_store::RETAINED_COMMITTED_ROUNDS).unwrap().is_none());
        for op in ops() {
            s.apply(&op).unwrap();
        }
        check_recovery(s.load(crate::block_store::RETAINED_COMMITTED_ROUNDS).unwrap().unwrap());
    }
    let s = MdbxStorage::open(dir.path(), meta()).unwrap();
    check_recovery(s.load(crate::block_store::RETAINED_COMMITTED_ROUNDS).unwrap().unwrap());
}

#[test]
fn mem_storage_round_trip() {
    let mut s = MemStorage::new();
    assert!(s.load(crate::block_store::RETAINED_COMMITTED_ROUNDS).unwrap().is_none());
    for op in ops() {
        s.apply(&op).unwrap();
    }
    check_recovery(s.load(crate::block_store::RETAINED_COMMITTED_ROUNDS).unwrap().unwrap());
    assert_eq!(s.evidence().len(), 1);
}

fn snapshot(dir: &std::path::Path) -> Vec<u8> {
    std::fs::read(dir.join("mdbx.dat")).unwrap()
}

#[test]
fn foreign_chain_is_refused_untouched() {
    let dir = tempfile::tempdir().unwrap();
    {
        let mut s = MdbxStorage::open(dir.path(), meta()).unwrap();
        for op in ops() {
            s.apply(&op).unwrap();
        }
    }
    let before = snapshot(dir.path());
    let other = ChainMeta { chain_id: 8, ..meta() };
    let err = MdbxStorage::open(dir.path(), other).unwrap_err();
    assert!(
        matches!(err, StorageError::ForeignChain { found_chain_id: 7, expected_chain_id: 8, .. }),
        "{err}"
    );
    assert!(err.to_string().contains("belongs to another chain"));
    let other = ChainMeta { genesis_id: B256::repeat_byte(9), ..meta() };
    assert!(matches!(MdbxStorage::open(dir.path(), other), Err(StorageError::ForeignChain { .. })));
    assert_eq!(snapshot(dir.path()), before);
    // still opens for the right chain with the data intact
    check_recovery(
        MdbxStorage::open(dir.path(), meta())
            .unwrap()
            .load(crate::block_store::RETAINED_COMMITTED_ROUNDS)
            .unwrap()
            .unwrap(),
    );
}

#[test]
fn unrelated_directory_is_refused_untouched() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("chaindata.txt"), b"someone else's").unwrap();
    let err = MdbxStorage::open(dir.path(), meta()).unwrap_err();
    assert!(matches!(err, StorageError::NotADataDir { .. }), "{err}");
    let names: Vec<_> =
        std::fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert_eq!(names, vec![std::ffi::OsString::from("chaindata.txt")]);
}

#[test]
fn corrupt_database_is_refused_untouched() {
    let dir = tempfile::tempdir().unwrap();
    drop(MdbxStorage::open(dir.path(), meta()).unwrap());
    let garbage = vec![0xA5u8; 64 * 1024];
    std::fs::write(dir.path().join("mdbx.dat"), &garbage).unwrap();
    let err = MdbxStorage::open(dir.path(), meta()).unwrap_err();
    assert!(matches!(err, StorageError::Corrupt { .. }), "{err}");
    assert_eq!(snapshot(dir.path()), garbage);
}

#[test]
fn corrupt_record_fails_load() {
    let mut s = MemStorage::new();
    for op in ops() {
        s.apply(&op).unwrap();
    }
    s.safety = Some(vec![1, 2, 3]);
    assert!(matches!(
        s.load(crate::block_store::RETAINED_COMMITTED_ROUNDS),
        Err(StorageError::Corrupt { .. })
    ));
    assert_eq!(unseal(&seal(b"abc")), Some(&b"abc"[..]));
    let mut sealed = seal(b"abc");
    sealed[9] ^= 1;
    assert_eq!(unseal(&sealed), None);
}

#[test]
fn sealed_record_format_is_stable() {
    // 8-byte SHA-256 prefix of the data, then the data.
    let sealed = seal(b"tandem");
    assert_eq!(&sealed[8..], b"tandem");
    assert_eq!(hex::encode(&sealed[..8]), hex::encode(&Sha256::digest(b"tandem")[..8]));
    assert_eq!(hex::encode(&sealed[..8]), "7186b6e1e1384449");
}

/// A data dir of the previous storage format (JSON payload bodies) is refused by name, and
/// left as it was.
#[test]
fn a_data_dir_of_another_storage_format_is_refused_untouched() {
    use libmdbx::{Database, DatabaseOptions, Mode, NoWriteMap, ReadWriteOptions, WriteFlags};
    let dir = tempfile::tempdir().unwrap();
    drop(MdbxStorage::open(dir.path(), meta()).unwrap());
    {
        let mode = Mode::ReadWrite(ReadWriteOptions::default());
        let db = Database::<NoWriteMap>::open_with_options(
            dir.path(),
            DatabaseOptions { max_tables: Some(16), mode, ..Default::default() },
        )
        .unwrap();
        let txn = db.begin_rw_txn().unwrap();
        let table = txn.open_table(Some("meta")).unwrap();
        let mut old = meta().encode();
        old[0] = 1;
        txn.put(&table, b"meta", super::seal(&old), WriteFlags::UPSERT).unwrap();
        txn.commit().unwrap();
    }
    let before = snapshot(dir.path());
    let err = MdbxStorage::open(dir.path(), meta()).unwrap_err();
    assert!(
        matches!(err, StorageError::OtherFormat { found: 1, expected: super::META_VERSION, .. }),
        "{err}"
    );
    assert!(err.to_string().contains("storage format 1"), "{err}");
    assert_eq!(snapshot(dir.path()), before);
}
