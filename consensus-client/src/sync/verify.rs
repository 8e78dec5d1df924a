//! Verification of a range of committed blocks received from an untrusted peer, before anything
//! is persisted or sent to the EL.
//!
//! For each block, in order from the local committed tip (the [`Anchor`]): its height is the
//! previous one's + 1; its `parent_id` is the previous block's id and its own QC certifies that
//! parent at the parent's round; its payload's `parentHash` is the parent's payload hash; its
//! round is above the parent's; its QC certifies exactly this block at its round, with signers of
//! more than two thirds of the genesis validator set's power and every signature valid.
//!
//! Certified is not committed: the range is committed up to the last block `B` whose successor in
//! the range has round `B.round + 1` (the two-chain rule: `B` and its direct child are both
//! certified in consecutive rounds). Blocks after it are verified but returned as unproven; the
//! caller asks for them again later.

use crate::core::Reject;
use crate::core::voting::verify_qc;
use crate::crypto::Verifier;
use crate::types::{Block, BlockId, CommittedBlock, Height, Round, ValidatorSet};
use alloy_primitives::B256;
use std::sync::Arc;
use thiserror::Error;

/// The local committed tip a range must extend.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Anchor {
    /// Block id.
    pub id: BlockId,
    /// Height.
    pub height: Height,
    /// Round.
    pub round: Round,
    /// Payload (EL block) hash.
    pub payload_hash: B256,
}

impl Anchor {
    /// The anchor of a committed block.
    pub fn of(block: &Block) -> Self {
        Self::with_id(block.id(), block)
    }
    /// The anchor of a committed block whose id is already known.
    pub fn with_id(id: BlockId, block: &Block) -> Self {
        Self {
            id,
            height: block.height(),
            round: block.round,
            payload_hash: block.payload.block_hash,
        }
    }
}

/// What certificates are checked against.
#[derive(Clone)]
pub struct VerifyContext {
    /// Chain id mixed into signatures.
    pub chain_id: u64,
    /// Consensus genesis block id.
    pub genesis_id: BlockId,
    /// The (genesis) validator set.
    pub validators: Arc<ValidatorSet>,
    /// Verifier for the set's keys.
    pub verifier: Arc<dyn Verifier>,
}

impl std::fmt::Debug for VerifyContext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VerifyContext")
            .field("chain_id", &self.chain_id)
            .field("validators", &self.validators.len())
            .finish_non_exhaustive()
    }
}

/// Why a range was refused. Every variant means the peer sent data that no honest peer sends.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum SyncError {
    /// More blocks than asked for.
    #[error("{count} blocks in a response to a request for at most {max}")]
    TooMany {
        /// Blocks received.
        count: usize,
        /// Most allowed.
        max: usize,
    },
    /// Heights are not contiguous from the anchor.
    #[error("gap: expected height {expected}, got {found}")]
    Gap {
        /// Expected height.
        expected: Height,
        /// Height received.
        found: Height,
    },
    /// A block does not extend the previous one.
    #[error(
        "block at height {height} does not link to its parent: parent id {found}, expected {expected}"
    )]
    BrokenLink {
        /// Its height.
        height: Height,
        /// The previous block's id.
        expected: BlockId,
        /// Its `parent_id`.
        found: BlockId,
    },
    /// A block is inconsistent in itself or with its parent.
    #[error("block at height {height} is malformed: {reason}")]
    Malformed {
        /// Its height.
        height: Height,
        /// What is wrong.
        reason: &'static str,
    },
    /// The QC sent with a block certifies something else.
    #[error("the QC sent with the block at height {height} certifies another block or round")]
    QcMismatch {
        /// The block's height.
        height: Height,
    },
    /// A QC does not verify (quorum or signatures).
    #[error("invalid QC for the block at height {height}: {source}")]
    InvalidQc {
        /// The block's height.
        height: Height,
        /// Why.
        source: Reject,
    },
}

/// A verified range.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedRange {
    /// The blocks proven committed, oldest first, with their ids.
    pub blocks: Vec<(BlockId, CommittedBlock)>,
    /// Valid blocks after them that the range does not prove committed.
    pub unproven: usize,
}

impl VerifiedRange {
    /// Height of the last proven block, if any.
    pub fn last_height(&self) -> Option<Height> {
        self.blocks.last().map(|(_, c)| c.block.height())
    }
}

/// Verifies `items` as the committed blocks right above `anchor` (see the module docs). On any
/// error nothing of the range is usable.
pub fn verify_range(
    anchor: &Anchor,
    items: Vec<CommittedBlock>,
    max_count: usize,
    ctx: &VerifyContext,
) -> Result<VerifiedRange, SyncError> {
    if items.len() > max_count {
        return Err(SyncError::TooMany { count: items.len(), max: max_count });
    }
    let mut prev = *anchor;
    let mut out: Vec<(BlockId, CommittedBlock)> = Vec::with_capacity(items.len());
    for item in items {
        let b = &item.block;
        let height = b.height();
        let expected = prev.height + 1;
        if height != expected {
            return Err(SyncError::Gap { expected, found: height });
        }
        if b.parent_id != prev.id {
            return Err(SyncError::BrokenLink { height, expected: prev.id, found: b.parent_id });
        }
        let malformed = |reason| SyncError::Malformed { height, reason };
        if b.qc.block_id != b.parent_id || b.qc.round != prev.round {
            return Err(malformed("its QC does not certify its parent"));
        }
        if b.round <= prev.round {
            return Err(malformed("round not above the parent's"));
        }
        if b.payload.parent_hash != prev.payload_hash {
            return Err(malformed("payload parentHash is not the parent's payload hash"));
        }
        let id = b.id();
        if item.qc.block_id != id || item.qc.round != b.round {
            return Err(SyncError::QcMismatch { height });
        }
        verify_qc(&item.qc, &ctx.validators, &*ctx.verifier, ctx.chain_id, &ctx.genesis_id)
            .map_err(|source| SyncError::InvalidQc { height, source })?;
        prev = Anchor::with_id(id, b);
        out.push((id, item));
    }
    // Two-chain rule: the last block whose successor is in the next round is committed, and
    // with it all its ancestors.
    let proven = out
        .windows(2)
        .rposition(|w| w[1].1.block.round == w[0].1.block.round + 1)
        .map_or(0, |i| i + 1);
    let unproven = out.len() - proven;
    out.truncate(proven);
    Ok(VerifiedRange { blocks: out, unproven })
}
