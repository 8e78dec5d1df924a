//! MDBX-backed [`Storage`].
//!
//! Tables: `meta` (`"meta"` → [`ChainMeta`]), `safety` (`"safety"` → safety data), `blocks`
//! (block id → block), `qcs` (certified block id → QC), `committed` (height, big-endian → block
//! id), `commit_qcs` (height, big-endian → a QC certifying the committed block at that height;
//! written in the same transaction as `committed`), `evidence` (round ‖ signer ‖ kind →
//! evidence). [`MdbxReader`] reads the committed index beside the writer. Values are checksummed
//! ([`super::seal`]). Opening refuses, without writing anything, a non-empty directory without
//! our database, a database without our meta record, another chain's database, and a corrupt
//! one; it validates read-only before it opens read-write.

use super::{ChainMeta, CommittedChain, CommittedEntry, Storage, StorageError, seal, unseal};
use crate::core::PersistOp;
use crate::safety_rules::SafetyData;
use crate::types::codec::{Codec, DecodeError};
use crate::types::{Block, BlockId, CommittedBlock, Height, QuorumCert};
use libmdbx::{
    Database, DatabaseOptions, Mode, NoWriteMap, ReadWriteOptions, TableFlags, WriteFlags,
};
use std::path::{Path, PathBuf};
use std::sync::Arc;

const TABLES: [&str; 7] =
    ["meta", "safety", "blocks", "qcs", "committed", "commit_qcs", "evidence"];
const DATA_FILE: &str = "mdbx.dat";

/// Consensus storage in an MDBX environment.
pub struct MdbxStorage {
    db: Arc<Database<NoWriteMap>>,
    path: PathBuf,
}

/// A read-only handle on the committed index of an open [`MdbxStorage`] (cheap to clone).
#[derive(Clone)]
pub struct MdbxReader {
    db: Arc<Database<NoWriteMap>>,
    path: PathBuf,
}

impl std::fmt::Debug for MdbxReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MdbxReader").field("path", &self.path).finish()
    }
}

impl std::fmt::Debug for MdbxStorage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MdbxStorage").field("path", &self.path).finish()
    }
}

fn options(mode: Mode) -> DatabaseOptions {
    DatabaseOptions { max_tables: Some(16), mode, ..Default::default() }
}

impl MdbxStorage {
    /// Opens (or creates) the store in `path` for the chain `meta`.
    pub fn open(path: &Path, meta: ChainMeta) -> Result<Self, StorageError> {
        let io = |source| StorageError::Io { path: path.to_path_buf(), source };
        let non_empty = path.exists() && std::fs::read_dir(path).map_err(io)?.next().is_some();
        if non_empty {
            if !path.join(DATA_FILE).is_file() {
                return Err(StorageError::NotADataDir { path: path.to_path_buf() });
            }
            Self::validate(path, meta)?;
        } else {
            std::fs::create_dir_all(path).map_err(io)?;
        }
        let mdbx = |op| move |source| StorageError::Mdbx { op, path: path.to_path_buf(), source };
        let db = Database::<NoWriteMap>::open_with_options(
            path,
            options(Mode::ReadWrite(ReadWriteOptions {
                max_size: Some(64 * 1024 * 1024 * 1024),
                growth_step: Some(16 * 1024 * 1024),
                ..Default::default()
            })),
        )
        .map_err(mdbx("open"))?;
        {
            let txn = db.begin_rw_txn().map_err(mdbx("begin"))?;
            for name in TABLES {
                txn.create_table(Some(name), TableFlags::default())
                    .map_err(mdbx("create table"))?;
            }
            if !non_empty {
                let t = txn.open_table(Some("meta")).map_err(mdbx("open table"))?;
                txn.put(&t, b"meta", seal(&meta.encode()), WriteFlags::UPSERT)
                    .map_err(mdbx("put meta"))?;
            }
            txn.commit().map_err(mdbx("commit"))?;
        }
        Ok(Self { db: Arc::new(db), path: path.to_path_buf() })
    }

    /// A reader of the committed index that can live on other threads.
    pub fn reader(&self) -> MdbxReader {
        MdbxReader { db: self.db.clone(), path: self.path.clone() }
    }

    /// Checks an existing environment read-only.
    fn validate(path: &Path, expected: ChainMeta) -> Result<(), StorageError> {
        let corrupt = |reason: String| StorageError::Corrupt { path: path.to_path_buf(), reason };
        let db = Database::<NoWriteMap>::open_with_options(path, options(Mode::ReadOnly))
            .map_err(|e| corrupt(format!("cannot open database: {e}")))?;
        let txn = db.begin_ro_txn().map_err(|e| corrupt(format!("cannot read: {e}")))?;
        let Ok(table) = txn.open_table(Some("meta")) else {
            return Err(StorageError::NotADataDir { path: path.to_path_buf() });
        };
        let record = txn
            .get::<Vec<u8>>(&table, b"meta")
            .map_err(|e| corrupt(format!("cannot read meta: {e}")))?
            .ok_or_else(|| StorageError::NotADataDir { path: path.to_path_buf() })?;
        let data =
            unseal(&record).ok_or_else(|| corrupt("meta record checksum mismatch".into()))?;
        let found = ChainMeta::decode(data).map_err(|e| match e {
            DecodeError::UnsupportedFormat { found, expected, .. } => {
                StorageError::OtherFormat { path: path.to_path_buf(), found, expected }
            }
            e => corrupt(format!("meta record: {e}")),
        })?;
        if found != expected {
            return Err(StorageError::ForeignChain {
                path: path.to_path_buf(),
                expected_chain_id: expected.chain_id,
                found_chain_id: found.chain_id,
                expected_genesis: expected.genesis_id,
                found_genesis: found.genesis_id,
            });
        }
        Ok(())
    }

    fn err(&self, op: &'static str) -> impl Fn(libmdbx::Error) -> StorageError + '_ {
        move |source| StorageError::Mdbx { op, path: self.path.clone(), source }
    }

    fn decode<T: Codec>(&self, table: &str, record: &[u8]) -> Result<T, StorageError> {
        decode(&self.path, table, record)
    }

    /// One record of `table` by key, decoded.
    fn get<T: Codec>(&self, table: &str, key: &[u8]) -> Result<Option<T>, StorageError> {
        let txn = self.db.begin_ro_txn().map_err(self.err("begin"))?;
        let t = txn.open_table(Some(table)).map_err(self.err("open table"))?;
        match txn.get::<Vec<u8>>(&t, key).map_err(self.err("get"))? {
            Some(record) => self.decode(table, &record).map(Some),
            None => Ok(None),
        }
    }
}

fn decode<T: Codec>(path: &Path, table: &str, record: &[u8]) -> Result<T, StorageError> {
    let corrupt = |reason| StorageError::Corrupt { path: path.to_path_buf(), reason };
    let data = unseal(record).ok_or_else(|| corrupt(format!("{table}: checksum mismatch")))?;
    T::decode(data).map_err(|e| corrupt(format!("{table}: {e}")))
}

/// The (table, key, unsealed value) records one operation writes.
fn records(op: &PersistOp) -> Vec<(&'static str, Vec<u8>, Vec<u8>)> {
    match op {
        PersistOp::Safety(d) => vec![("safety", b"safety".to_vec(), d.encode())],
        PersistOp::Block(b) => vec![("blocks", b.id().to_vec(), b.encode())],
        PersistOp::Qc(qc) => vec![("qcs", qc.block_id.to_vec(), qc.encode())],
        PersistOp::Committed { height, block_id, qc } => {
            let key = height.to_be_bytes().to_vec();
            vec![("committed", key.clone(), block_id.to_vec()), ("commit_qcs", key, qc.encode())]
        }
        PersistOp::Evidence(e) => {
            let mut k = e.round.to_be_bytes().to_vec();
            k.extend_from_slice(&e.signer.to_be_bytes());
            k.push(e.kind as u8);
            vec![("evidence", k, e.encode())]
        }
    }
}

impl Storage for MdbxStorage {
    fn apply(&mut self, op: &PersistOp) -> Result<(), StorageError> {
        self.apply_all(std::slice::from_ref(op))
    }

    fn apply_all(&mut self, ops: &[PersistOp]) -> Result<(), StorageError> {
        let txn = self.db.begin_rw_txn().map_err(self.err("begin"))?;
        for (table, key, value) in ops.iter().flat_map(records) {
            let t = txn.open_table(Some(table)).map_err(self.err("open table"))?;
            txn.put(&t, key, seal(&value), WriteFlags::UPSERT).map_err(self.err("put"))?;
        }
        txn.commit().map_err(self.err("commit"))?;
        Ok(())
    }

    fn safety(&self) -> Result<Option<SafetyData>, StorageError> {
        self.get("safety", b"safety")
    }

    fn block(&self, id: &BlockId) -> Result<Option<Block>, StorageError> {
        self.get("blocks", id.as_slice())
    }

    fn qc(&self, id: &BlockId) -> Result<Option<QuorumCert>, StorageError> {
        self.get("qcs", id.as_slice())
    }

    fn last_committed(&self) -> Result<Option<CommittedEntry>, StorageError> {
        let txn = self.db.begin_ro_txn().map_err(self.err("begin"))?;
        let t = txn.open_table(Some("committed")).map_err(self.err("open table"))?;
        let mut cursor = txn.cursor(&t).map_err(self.err("cursor"))?;
        let Some((key, value)) = cursor.last::<Vec<u8>, Vec<u8>>().map_err(self.err("last"))?
        else {
            return Ok(None);
        };
        let corrupt = |reason: &str| StorageError::Corrupt {
            path: self.path.clone(),
            reason: format!("committed: {reason}"),
        };
        let height = <[u8; 8]>::try_from(key.as_slice())
            .map(Height::from_be_bytes)
            .map_err(|_| corrupt("bad height key"))?;
        let data = unseal(&value).ok_or_else(|| corrupt("checksum mismatch"))?;
        if data.len() != 32 {
            return Err(corrupt("bad block id"));
        }
        let qcs = txn.open_table(Some("commit_qcs")).map_err(self.err("open table"))?;
        let qc = match txn.get::<Vec<u8>>(&qcs, &key).map_err(self.err("get"))? {
            Some(record) => Some(self.decode("commit_qcs", &record)?),
            None => None,
        };
        Ok(Some(CommittedEntry { height, block_id: BlockId::from_slice(data), qc }))
    }
}

impl MdbxReader {
    fn err(&self, op: &'static str) -> impl Fn(libmdbx::Error) -> StorageError + '_ {
        move |source| StorageError::Mdbx { op, path: self.path.clone(), source }
    }
}

impl CommittedChain for MdbxReader {
    fn committed_tip(&self) -> Result<Height, StorageError> {
        let txn = self.db.begin_ro_txn().map_err(self.err("begin"))?;
        let t = txn.open_table(Some("commit_qcs")).map_err(self.err("open table"))?;
        let mut cursor = txn.cursor(&t).map_err(self.err("cursor"))?;
        let Some((key, _)) = cursor.last::<Vec<u8>, Vec<u8>>().map_err(self.err("last"))? else {
            return Ok(0);
        };
        let key = <[u8; 8]>::try_from(key.as_slice()).map_err(|_| StorageError::Corrupt {
            path: self.path.clone(),
            reason: "commit_qcs: bad height key".into(),
        })?;
        Ok(Height::from_be_bytes(key))
    }

    fn committed_range(
        &self,
        from: Height,
        max_count: usize,
        max_bytes: usize,
    ) -> Result<Vec<CommittedBlock>, StorageError> {
        let txn = self.db.begin_ro_txn().map_err(self.err("begin"))?;
        let committed = txn.open_table(Some("committed")).map_err(self.err("open table"))?;
        let qcs = txn.open_table(Some("commit_qcs")).map_err(self.err("open table"))?;
        let blocks = txn.open_table(Some("blocks")).map_err(self.err("open table"))?;
        let mut out = Vec::new();
        let mut bytes = 0usize;
        for height in from.. {
            if out.len() >= max_count {
                break;
            }
            let key = height.to_be_bytes();
            let Some(id) = txn.get::<Vec<u8>>(&committed, &key).map_err(self.err("get"))? else {
                break;
            };
            let Some(qc) = txn.get::<Vec<u8>>(&qcs, &key).map_err(self.err("get"))? else {
                break;
            };
            let id =
                unseal(&id).filter(|d| d.len() == 32).ok_or_else(|| StorageError::Corrupt {
                    path: self.path.clone(),
                    reason: format!("committed: bad record at height {height}"),
                })?;
            let Some(block) = txn.get::<Vec<u8>>(&blocks, id).map_err(self.err("get"))? else {
                break;
            };
            bytes += block.len() + qc.len();
            if !out.is_empty() && bytes > max_bytes {
                break;
            }
            out.push(CommittedBlock {
                block: decode(&self.path, "blocks", &block)?,
                qc: decode(&self.path, "commit_qcs", &qc)?,
            });
        }
        Ok(out)
    }
}
