//! The import path end to end on MDBX: valid blocks become canonical with the right state,
//! invalid ones leave the chain on their parent, `subSecondBlocks` decides whether a block may
//! repeat its parent's timestamp, and `tandem-el export` / `init` / `import` round-trip a chain.

mod import_support;

use alloy_consensus::Block;
use alloy_primitives::{Address, Bytes, U256};
use import_support::{Key, build_block, genesis, open_chain};
use revm::DatabaseRef;
use tandem_el::{
    import::{ImportError, ImportOutcome, import_block},
    storage::seal_block,
};

const CHAIN_ID: u64 = 1337;

fn transfers(keys: &[Key], nonce: u64, value: u64) -> Vec<alloy_consensus::TxEnvelope> {
    keys.iter()
        .enumerate()
        .map(|(i, key)| {
            let to = Address::left_padding_from(&[0x10, i as u8 + 1]);
            key.sign(CHAIN_ID, nonce, to, U256::from(value), Bytes::new(), 21_000)
        })
        .collect()
}

#[test]
fn blocks_import_and_invalid_blocks_leave_the_chain_on_the_parent() {
    let keys: Vec<Key> = (0..4).map(Key::nth).collect();
    let spec = genesis(CHAIN_ID, keys.iter().map(|k| k.address), [], false);
    let dir = tempfile::tempdir().unwrap();
    let (db, executor) = open_chain(dir.path(), spec.clone());
    let mut parent = spec.genesis_header().clone();
    let mut parent_hash = spec.genesis_hash();
    for nonce in 0..3 {
        let block =
            build_block(&db, &executor, &parent, parent_hash, transfers(&keys, nonce, 5), 12);
        let outcome = import_block(&db, &executor, &block).unwrap();
        assert_eq!(
            outcome,
            ImportOutcome::Imported { number: nonce + 1, hash: block.hash(), gas_used: 4 * 21_000 }
        );
        assert_eq!(
            import_block(&db, &executor, &block).unwrap(),
            ImportOutcome::AlreadyKnown { number: nonce + 1, hash: block.hash() }
        );
        parent = block.header.clone();
        parent_hash = block.hash();
    }
    let state = db.latest().unwrap();
    assert_eq!(
        state.basic_ref(Address::left_padding_from(&[0x10, 1])).unwrap().unwrap().balance,
        U256::from(15)
    );
    assert_eq!(state.basic_ref(keys[0].address).unwrap().unwrap().nonce, 3);
    drop(state);

    // Wrong state root, wrong gas used, a replayed nonce: each refused, tip unchanged.
    let good = build_block(&db, &executor, &parent, parent_hash, transfers(&keys, 3, 1), 12);
    let mut bad_root = good.inner().clone();
    bad_root.header.state_root = alloy_primitives::B256::repeat_byte(1);
    let mut bad_gas = good.inner().clone();
    bad_gas.header.gas_used += 1;
    let mut replay: Block<_> = good.inner().clone();
    replay.body.transactions = transfers(&keys, 2, 1);
    replay.header.transactions_root =
        alloy_consensus::proofs::calculate_transaction_root(&replay.body.transactions);
    for bad in [bad_root, bad_gas, replay] {
        let err = import_block(&db, &executor, &seal_block(bad)).unwrap_err();
        assert!(err.is_invalid(), "{err}");
        assert_eq!(db.canonical_tip().unwrap(), (3, parent_hash));
    }
    // A block on a parent that is not the tip is refused without touching the chain.
    let orphan = build_block(&db, &executor, &parent, parent_hash, vec![], 12);
    let mut orphan = orphan.into_inner();
    orphan.header.parent_hash = alloy_primitives::B256::repeat_byte(3);
    assert!(matches!(
        import_block(&db, &executor, &seal_block(orphan)),
        Err(ImportError::NotChildOfTip { .. })
    ));
    import_block(&db, &executor, &good).unwrap();
    assert_eq!(db.canonical_tip().unwrap(), (4, good.hash()));
}

#[test]
fn sub_second_blocks_allow_the_parents_timestamp_only_when_configured() {
    for allowed in [false, true] {
        let key = Key::nth(9);
        let spec = genesis(CHAIN_ID, [key.address], [], allowed);
        let dir = tempfile::tempdir().unwrap();
        let (db, executor) = open_chain(dir.path(), spec.clone());
        let first =
            build_block(&db, &executor, spec.genesis_header(), spec.genesis_hash(), vec![], 1);
        import_block(&db, &executor, &first).unwrap();
        let same_second = build_block(&db, &executor, &first.header, first.hash(), vec![], 0);
        let result = import_block(&db, &executor, &same_second);
        assert_eq!(result.is_ok(), allowed, "subSecondBlocks={allowed}: {result:?}");
        if let Err(err) = result {
            assert!(err.to_string().contains("timestamp"), "{err}");
            assert_eq!(db.canonical_tip().unwrap(), (1, first.hash()));
        }
    }
}

#[test]
fn export_init_import_round_trip_through_the_cli() {
    let keys: Vec<Key> = (0..3).map(Key::nth).collect();
    let spec = genesis(CHAIN_ID, keys.iter().map(|k| k.address), [], false);
    let dir = tempfile::tempdir().unwrap();
    let genesis_file = dir.path().join("genesis.json");
    std::fs::write(&genesis_file, serde_json::to_string(spec.genesis()).unwrap()).unwrap();
    let bin = env!("CARGO_BIN_EXE_tandem-el");
    let run = |args: &[&std::ffi::OsStr]| {
        let out = std::process::Command::new(bin).args(args).output().unwrap();
        assert!(out.status.success(), "{args:?}: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let a = dir.path().join("a");
    run(&[
        "init".as_ref(),
        "--chain".as_ref(),
        genesis_file.as_os_str(),
        "--datadir".as_ref(),
        a.as_os_str(),
    ]);
    let tip = {
        let db = tandem_el::storage::Database::open(&tandem_el::storage::db_dir(&a)).unwrap();
        let spec = tandem_shared::ChainSpec::from_file(&genesis_file).unwrap();
        let executor =
            tandem_el::executor::Executor::new(std::sync::Arc::new(spec.clone())).unwrap();
        let mut parent = spec.genesis_header().clone();
        let mut parent_hash = spec.genesis_hash();
        for nonce in 0..3 {
            let block =
                build_block(&db, &executor, &parent, parent_hash, transfers(&keys, nonce, 7), 2);
            import_block(&db, &executor, &block).unwrap();
            parent = block.header.clone();
            parent_hash = block.hash();
        }
        db.canonical_tip().unwrap()
    };
    let file = dir.path().join("chain.rlp");
    let out = run(&["export".as_ref(), "--datadir".as_ref(), a.as_os_str(), file.as_os_str()]);
    assert!(out.contains("exported 4 blocks"), "{out}");
    let b = dir.path().join("b");
    run(&[
        "init".as_ref(),
        "--chain".as_ref(),
        genesis_file.as_os_str(),
        "--datadir".as_ref(),
        b.as_os_str(),
    ]);
    let out = run(&["import".as_ref(), "--datadir".as_ref(), b.as_os_str(), file.as_os_str()]);
    assert!(out.contains("imported 3 blocks (1 already known)"), "{out}");
    let db = tandem_el::storage::Database::open(&tandem_el::storage::db_dir(&b)).unwrap();
    assert_eq!(db.canonical_tip().unwrap(), tip);
    // A truncated file stops with an error naming the offset.
    let bytes = std::fs::read(&file).unwrap();
    std::fs::write(&file, &bytes[..bytes.len() - 3]).unwrap();
    let out = std::process::Command::new(bin)
        .args(["import".as_ref(), "--datadir".as_ref(), b.as_os_str(), file.as_os_str()])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("undecodable block"));
    // Into a fresh data dir the same file (whose last block is cut) imports the blocks before
    // the cut, committed although they share a batch with the failure.
    let c = dir.path().join("c");
    run(&[
        "init".as_ref(),
        "--chain".as_ref(),
        genesis_file.as_os_str(),
        "--datadir".as_ref(),
        c.as_os_str(),
    ]);
    let out = std::process::Command::new(bin)
        .args(["import".as_ref(), "--datadir".as_ref(), c.as_os_str(), file.as_os_str()])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let db = tandem_el::storage::Database::open(&tandem_el::storage::db_dir(&c)).unwrap();
    assert_eq!(db.canonical_tip().unwrap().0, 2);
}

#[test]
fn batch_import_commits_every_n_blocks_and_matches_block_by_block_import() {
    use tandem_el::import::BatchImporter;
    let keys: Vec<Key> = (0..4).map(Key::nth).collect();
    let spec = genesis(CHAIN_ID, keys.iter().map(|k| k.address), [], false);
    // The reference chain, imported block by block.
    let dir = tempfile::tempdir().unwrap();
    let (db, executor) = open_chain(dir.path(), spec.clone());
    let (mut parent, mut parent_hash) = (spec.genesis_header().clone(), spec.genesis_hash());
    let mut blocks = Vec::new();
    for nonce in 0..7 {
        let block =
            build_block(&db, &executor, &parent, parent_hash, transfers(&keys, nonce, 3), 12);
        import_block(&db, &executor, &block).unwrap();
        parent = block.header.clone();
        parent_hash = block.hash();
        blocks.push(block);
    }

    let other = tempfile::tempdir().unwrap();
    let (batched, executor) = open_chain(other.path(), spec.clone());
    let mut importer = BatchImporter::new(&batched, &executor, 3);
    for (i, block) in blocks.iter().enumerate() {
        if i == 4 {
            // A bad block inside a batch is refused; the pending blocks stay as they were.
            let mut bad = block.inner().clone();
            bad.header.state_root = alloy_primitives::B256::repeat_byte(1);
            assert!(importer.import(&seal_block(bad)).unwrap_err().is_invalid());
            assert_eq!(importer.pending(), 1);
        }
        let outcome = importer.import(block).unwrap();
        assert!(matches!(outcome, ImportOutcome::Imported { .. }), "{outcome:?}");
        // Committed in batches of three: the database tip lags the importer between them.
        let committed = (i as u64 + 1) / 3 * 3;
        assert_eq!(batched.canonical_tip().unwrap().0, committed, "after block {}", i + 1);
        assert_eq!(importer.pending() as u64, i as u64 + 1 - committed);
    }
    assert_eq!(
        importer.import(&blocks[6]).unwrap(),
        ImportOutcome::AlreadyKnown { number: 7, hash: blocks[6].hash() }
    );
    importer.flush().unwrap();
    assert_eq!(batched.canonical_tip().unwrap(), db.canonical_tip().unwrap());
    for (a, b) in [(db.latest().unwrap(), batched.latest().unwrap())] {
        for key in &keys {
            assert_eq!(a.basic_ref(key.address).unwrap(), b.basic_ref(key.address).unwrap());
        }
    }
    // History is per block, as block-by-block import writes it.
    for n in 1..=7 {
        assert_eq!(batched.header(n).unwrap(), db.header(n).unwrap());
    }
}
