//! MDBX-backed [`Storage`].
//!
//! Tables: `meta` (`"meta"` → [`ChainMeta`]), `safety` (`"safety"` → safety data), `blocks`
//! (block id → block), `qcs` (certified block id → QC), `committed` (height, big-endian → block
//! id), `evidence` (round ‖ signer ‖ kind → evidence). Values are checksummed
//! ([`super::seal`]). Opening refuses, without writing anything, a non-empty directory without
//! our database, a database without our meta record, another chain's database, and a corrupt
//! one; it validates read-only before it opens read-write.

use super::{ChainMeta, Storage, StorageError, seal, unseal};
use crate::core::{PersistOp, Recovery};
use crate::safety_rules::SafetyData;
use crate::types::codec::Codec;
use crate::types::{Block, BlockId, QuorumCert};
use libmdbx::{
    Database, DatabaseOptions, Mode, NoWriteMap, ReadWriteOptions, TableFlags, WriteFlags,
};
use std::path::{Path, PathBuf};

const TABLES: [&str; 6] = ["meta", "safety", "blocks", "qcs", "committed", "evidence"];
const DATA_FILE: &str = "mdbx.dat";

/// Consensus storage in an MDBX environment.
pub struct MdbxStorage {
    db: Database<NoWriteMap>,
    path: PathBuf,
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
        Ok(Self { db, path: path.to_path_buf() })
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
        let found = unseal(&record)
            .ok_or_else(|| corrupt("meta record checksum mismatch".into()))
            .and_then(|d| ChainMeta::decode(d).map_err(|e| corrupt(format!("meta record: {e}"))))?;
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
        let corrupt = |reason| StorageError::Corrupt { path: self.path.clone(), reason };
        let data = unseal(record).ok_or_else(|| corrupt(format!("{table}: checksum mismatch")))?;
        T::decode(data).map_err(|e| corrupt(format!("{table}: {e}")))
    }

    fn all<T: Codec>(&self, table: &str) -> Result<Vec<T>, StorageError> {
        let txn = self.db.begin_ro_txn().map_err(self.err("begin"))?;
        let t = txn.open_table(Some(table)).map_err(self.err("open table"))?;
        let mut cursor = txn.cursor(&t).map_err(self.err("cursor"))?;
        let mut out = Vec::new();
        for item in cursor.iter_start::<Vec<u8>, Vec<u8>>() {
            let (_, v) = item.map_err(self.err("iterate"))?;
            out.push(self.decode(table, &v)?);
        }
        Ok(out)
    }
}

impl Storage for MdbxStorage {
    fn apply(&mut self, op: &PersistOp) -> Result<(), StorageError> {
        let (table, key, value): (&str, Vec<u8>, Vec<u8>) = match op {
            PersistOp::Safety(d) => ("safety", b"safety".to_vec(), d.encode()),
            PersistOp::Block(b) => ("blocks", b.id().to_vec(), b.encode()),
            PersistOp::Qc(qc) => ("qcs", qc.block_id.to_vec(), qc.encode()),
            PersistOp::Committed { height, block_id } => {
                ("committed", height.to_be_bytes().to_vec(), block_id.to_vec())
            }
            PersistOp::Evidence(e) => {
                let mut k = e.round.to_be_bytes().to_vec();
                k.extend_from_slice(&e.signer.to_be_bytes());
                k.push(e.kind as u8);
                ("evidence", k, e.encode())
            }
        };
        let txn = self.db.begin_rw_txn().map_err(self.err("begin"))?;
        let t = txn.open_table(Some(table)).map_err(self.err("open table"))?;
        txn.put(&t, key, seal(&value), WriteFlags::UPSERT).map_err(self.err("put"))?;
        txn.commit().map_err(self.err("commit"))?;
        Ok(())
    }

    fn load(&self) -> Result<Option<Recovery>, StorageError> {
        let (safety, committed) = {
            let txn = self.db.begin_ro_txn().map_err(self.err("begin"))?;
            let t = txn.open_table(Some("safety")).map_err(self.err("open table"))?;
            let Some(rec) = txn.get::<Vec<u8>>(&t, b"safety").map_err(self.err("get"))? else {
                return Ok(None);
            };
            let safety: SafetyData = self.decode("safety", &rec)?;
            let t = txn.open_table(Some("committed")).map_err(self.err("open table"))?;
            let mut cursor = txn.cursor(&t).map_err(self.err("cursor"))?;
            let committed = match cursor.last::<Vec<u8>, Vec<u8>>().map_err(self.err("last"))? {
                None => None,
                Some((_, v)) => {
                    let data = unseal(&v).ok_or_else(|| StorageError::Corrupt {
                        path: self.path.clone(),
                        reason: "committed: checksum mismatch".into(),
                    })?;
                    if data.len() != 32 {
                        return Err(StorageError::Corrupt {
                            path: self.path.clone(),
                            reason: "committed: bad block id".into(),
                        });
                    }
                    Some(BlockId::from_slice(data))
                }
            };
            (safety, committed)
        };
        let blocks: Vec<Block> = self.all("blocks")?;
        let qcs: Vec<QuorumCert> = self.all("qcs")?;
        Ok(Some(Recovery { safety, blocks, qcs, committed }))
    }
}
