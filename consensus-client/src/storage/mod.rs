//! Persistence of what a restarted node needs: the safety data, blocks, QCs, the committed
//! index and equivocation evidence.
//!
//! The committed index maps each committed height to its block and a QC certifying that block
//! ([`CommittedChain`]); range sync ([`crate::sync`]) serves peers from it, so history far below
//! the in-memory block store stays available.
//!
//! The core never writes: it emits `Action::Persist(op)` and the node loop calls
//! [`Storage::apply`] before performing any later action of the same batch (a vote or timeout is
//! only sent once the safety data that records it is durable). [`MdbxStorage`] is the production
//! store: every `apply` is one MDBX write transaction committed in durable sync mode (fsync).
//! [`MemStorage`] has the same semantics in memory (simulation and tests, where it survives a
//! simulated crash because the simulator keeps it).
//!
//! Records carry an 8-byte SHA-256 checksum; a record that fails it, or fails to decode, makes
//! [`Storage::load`] fail with a clear error rather than start from partial state.

mod mdbx;
pub mod recovery;

pub use mdbx::{MdbxReader, MdbxStorage};

use crate::core::{Evidence, EvidenceKind, PersistOp, Recovery};
use crate::safety_rules::SafetyData;
use crate::types::codec::{Codec, DecodeError, Reader, Writer};
use crate::types::{Block, BlockId, CommittedBlock, Height, QuorumCert, Round, Signature};
use alloy_primitives::B256;
use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use thiserror::Error;

/// Identity of the chain a data dir belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChainMeta {
    /// Chain id.
    pub chain_id: u64,
    /// Consensus genesis block id.
    pub genesis_id: B256,
}

/// Storage format: 2 since payload bodies are binary (format 1 data dirs hold JSON bodies,
/// whose block ids this build would not reproduce, so they are refused, not migrated).
pub const META_VERSION: u8 = 2;

impl Codec for ChainMeta {
    const NAME: &'static str = "chain meta";
    fn write(&self, w: &mut Writer) {
        w.u8(META_VERSION);
        w.u64(self.chain_id);
        w.b256(&self.genesis_id);
    }
    fn read(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let version = r.u8(Self::NAME)?;
        if version != META_VERSION {
            return Err(DecodeError::UnsupportedFormat {
                what: "consensus data dir",
                found: version,
                expected: META_VERSION,
            });
        }
        Ok(Self { chain_id: r.u64(Self::NAME)?, genesis_id: r.b256(Self::NAME)? })
    }
}

impl Codec for Evidence {
    const NAME: &'static str = "evidence";
    fn write(&self, w: &mut Writer) {
        w.u8(match self.kind {
            EvidenceKind::Proposal => 0,
            EvidenceKind::Vote => 1,
            EvidenceKind::Timeout => 2,
        });
        w.u64(self.round);
        w.u16(self.signer);
        w.b256(&self.first.0);
        self.first.1.write(w);
        w.b256(&self.second.0);
        self.second.1.write(w);
    }
    fn read(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let kind = match r.u8(Self::NAME)? {
            0 => EvidenceKind::Proposal,
            1 => EvidenceKind::Vote,
            2 => EvidenceKind::Timeout,
            tag => return Err(DecodeError::InvalidTag { what: Self::NAME, tag }),
        };
        Ok(Self {
            kind,
            round: r.u64(Self::NAME)?,
            signer: r.u16(Self::NAME)?,
            first: (r.b256(Self::NAME)?, Signature::read(r)?),
            second: (r.b256(Self::NAME)?, Signature::read(r)?),
        })
    }
}

/// Why storage failed. Every variant is fatal for a validator: it must not sign on.
#[derive(Debug, Error)]
pub enum StorageError {
    /// The directory holds files but no consensus database.
    #[error("{path} is not empty and is not a tandem-cl data dir; refusing to touch it")]
    NotADataDir {
        /// The directory.
        path: PathBuf,
    },
    /// The data dir belongs to another chain.
    #[error(
        "{path} belongs to another chain (chain id {found_chain_id}, genesis {found_genesis}); \
         expected chain id {expected_chain_id}, genesis {expected_genesis}"
    )]
    ForeignChain {
        /// The directory.
        path: PathBuf,
        /// Expected chain id.
        expected_chain_id: u64,
        /// Chain id found.
        found_chain_id: u64,
        /// Expected genesis id.
        expected_genesis: B256,
        /// Genesis id found.
        found_genesis: B256,
    },
    /// The data dir was written by a release with another storage format.
    #[error(
        "{path} holds consensus data of storage format {found}; this build reads format \
         {expected}: move it away and let the node sync again"
    )]
    OtherFormat {
        /// The directory.
        path: PathBuf,
        /// The format found.
        found: u8,
        /// The format this build reads.
        expected: u8,
    },
    /// The database or a record in it is corrupt.
    #[error("corrupt consensus data in {path}: {reason}")]
    Corrupt {
        /// The directory.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// An MDBX operation failed.
    #[error("mdbx {op} failed in {path}: {source}")]
    Mdbx {
        /// The operation.
        op: &'static str,
        /// The directory.
        path: PathBuf,
        /// The error.
        source: libmdbx::Error,
    },
    /// A filesystem operation failed.
    #[error("i/o error on {path}: {source}")]
    Io {
        /// The path.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
}

/// Durable storage of consensus state. `apply` returns only once the write is durable.
///
/// Start-up reads only what the core needs ([`Storage::load`], see [`recovery`]): its cost
/// depends on the in-memory window and the uncommitted rounds, never on the chain's length.
pub trait Storage {
    /// Makes one write durable.
    fn apply(&mut self, op: &PersistOp) -> Result<(), StorageError>;
    /// Makes several writes durable, in one transaction where the store allows (all or none).
    fn apply_all(&mut self, ops: &[PersistOp]) -> Result<(), StorageError> {
        ops.iter().try_for_each(|op| self.apply(op))
    }
    /// The safety data; `None` for a fresh store that never saved any.
    fn safety(&self) -> Result<Option<SafetyData>, StorageError>;
    /// The stored block with `id`.
    fn block(&self, id: &BlockId) -> Result<Option<Block>, StorageError>;
    /// The stored QC certifying block `id`.
    fn qc(&self, id: &BlockId) -> Result<Option<QuorumCert>, StorageError>;
    /// The highest entry of the committed index: height, block id and the QC certifying that
    /// block (absent in data dirs written before the QC index existed).
    fn last_committed(&self) -> Result<Option<CommittedEntry>, StorageError>;
    /// What a restarting core needs ([`recovery::load`]): the safety data, the committed tip
    /// with its QC, at most `retained_rounds` rounds of committed history below it, and the
    /// uncommitted blocks the safety data refers to with their ancestors down to the tip.
    /// `None` for a fresh store that never saved safety data.
    fn load(&self, retained_rounds: Round) -> Result<Option<Recovery>, StorageError> {
        recovery::load(self, retained_rounds)
    }
}

/// The top of the committed index.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommittedEntry {
    /// Committed height.
    pub height: Height,
    /// The block committed at that height.
    pub block_id: BlockId,
    /// A QC certifying it, if recorded.
    pub qc: Option<QuorumCert>,
}

/// Read access to the committed chain by height: what range sync serves to peers. Readers run
/// beside the node loop (MDBX allows concurrent read transactions).
pub trait CommittedChain: Send + Sync {
    /// The highest height whose block and QC are in the index (0 if none).
    fn committed_tip(&self) -> Result<Height, StorageError>;
    /// Committed blocks with their QCs from height `from` upwards, contiguous, stopping at the
    /// first height not in the index, after `max_count` blocks, or before the encoded size
    /// would pass `max_bytes` (the first block is always included).
    fn committed_range(
        &self,
        from: Height,
        max_count: usize,
        max_bytes: usize,
    ) -> Result<Vec<CommittedBlock>, StorageError>;
}

/// Checksum-prefixed record bytes.
pub(crate) fn seal(data: &[u8]) -> Vec<u8> {
    let sum = Sha256::digest(data);
    let mut out = Vec::with_capacity(8 + data.len());
    out.extend_from_slice(&sum[..8]);
    out.extend_from_slice(data);
    out
}

/// Checks and strips the checksum of a record.
pub(crate) fn unseal(record: &[u8]) -> Option<&[u8]> {
    if record.len() < 8 {
        return None;
    }
    let (sum, data) = record.split_at(8);
    (Sha256::digest(data)[..8] == *sum).then_some(data)
}

/// In-memory storage with the same semantics as [`MdbxStorage`].
#[derive(Debug, Default, Clone)]
pub struct MemStorage {
    safety: Option<Vec<u8>>,
    blocks: HashMap<BlockId, Vec<u8>>,
    qcs: HashMap<BlockId, Vec<u8>>,
    committed: BTreeMap<Height, BlockId>,
    commit_qcs: BTreeMap<Height, QuorumCert>,
    evidence: Vec<Evidence>,
    block_reads: ReadCounter,
}

/// A count of reads that clones by value.
#[derive(Debug, Default)]
struct ReadCounter(std::sync::atomic::AtomicU64);

impl Clone for ReadCounter {
    fn clone(&self) -> Self {
        Self(std::sync::atomic::AtomicU64::new(self.get()))
    }
}

impl ReadCounter {
    fn get(&self) -> u64 {
        self.0.load(std::sync::atomic::Ordering::Relaxed)
    }
    fn bump(&self) {
        self.0.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }
}

impl MemStorage {
    /// Empty storage.
    pub fn new() -> Self {
        Self::default()
    }
    /// Evidence recorded so far.
    pub fn evidence(&self) -> &[Evidence] {
        &self.evidence
    }
    /// The committed index.
    pub fn committed(&self) -> &BTreeMap<Height, BlockId> {
        &self.committed
    }
    /// Blocks read through [`Storage::block`] so far (what a restart costs).
    pub fn block_reads(&self) -> u64 {
        self.block_reads.get()
    }
    /// Number of stored blocks.
    pub fn block_count(&self) -> usize {
        self.blocks.len()
    }
}

fn corrupt(what: &str, e: DecodeError) -> StorageError {
    StorageError::Corrupt { path: PathBuf::from("<memory>"), reason: format!("{what}: {e}") }
}

impl Storage for MemStorage {
    fn apply(&mut self, op: &PersistOp) -> Result<(), StorageError> {
        match op {
            PersistOp::Safety(d) => self.safety = Some(d.encode()),
            PersistOp::Block(b) => {
                self.blocks.insert(b.id(), b.encode());
            }
            PersistOp::Qc(qc) => {
                self.qcs.insert(qc.block_id, qc.encode());
            }
            PersistOp::Committed { height, block_id, qc } => {
                self.committed.insert(*height, *block_id);
                self.commit_qcs.insert(*height, qc.clone());
            }
            PersistOp::Evidence(e) => self.evidence.push(e.clone()),
        }
        Ok(())
    }

    fn safety(&self) -> Result<Option<SafetyData>, StorageError> {
        self.safety
            .as_ref()
            .map(|d| SafetyData::decode(d).map_err(|e| corrupt("safety", e)))
            .transpose()
    }

    fn block(&self, id: &BlockId) -> Result<Option<Block>, StorageError> {
        self.block_reads.bump();
        self.blocks.get(id).map(|b| Block::decode(b).map_err(|e| corrupt("block", e))).transpose()
    }

    fn qc(&self, id: &BlockId) -> Result<Option<QuorumCert>, StorageError> {
        self.qcs.get(id).map(|q| QuorumCert::decode(q).map_err(|e| corrupt("qc", e))).transpose()
    }

    fn last_committed(&self) -> Result<Option<CommittedEntry>, StorageError> {
        Ok(self.committed.iter().next_back().map(|(height, id)| CommittedEntry {
            height: *height,
            block_id: *id,
            qc: self.commit_qcs.get(height).cloned(),
        }))
    }
}

impl CommittedChain for MemStorage {
    fn committed_tip(&self) -> Result<Height, StorageError> {
        Ok(self.commit_qcs.keys().next_back().copied().unwrap_or(0))
    }

    fn committed_range(
        &self,
        from: Height,
        max_count: usize,
        max_bytes: usize,
    ) -> Result<Vec<CommittedBlock>, StorageError> {
        let mut out = Vec::new();
        let mut bytes = 0usize;
        for height in from.. {
            if out.len() >= max_count {
                break;
            }
            let (Some(id), Some(qc)) = (self.committed.get(&height), self.commit_qcs.get(&height))
            else {
                break;
            };
            let Some(raw) = self.blocks.get(id) else { break };
            let block = Block::decode(raw).map_err(|e| corrupt("block", e))?;
            bytes += raw.len();
            if !out.is_empty() && bytes > max_bytes {
                break;
            }
            out.push(CommittedBlock { block, qc: qc.clone() });
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests;
