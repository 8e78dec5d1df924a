//! What JSON-RPC and other readers see of the chain: an immutable snapshot per fork choice.

use std::sync::Arc;

use alloy_primitives::B256;

use super::{BlockRef, ExecutedBlock, OverlayState};
use crate::storage::{Database, StorageError};

/// Head, safe, finalized and the in-memory canonical blocks at one moment.
#[derive(Debug, Clone)]
pub struct ChainView {
    /// Canonical head.
    pub head: BlockRef,
    /// Safe block, once named by a fork choice update.
    pub safe: Option<BlockRef>,
    /// Finalized block, once named by a fork choice update.
    pub finalized: Option<BlockRef>,
    /// Persisted canonical tip.
    pub persisted: BlockRef,
    /// Canonical blocks above the persisted tip, oldest first.
    pub canonical: Vec<Arc<ExecutedBlock>>,
}

impl ChainView {
    /// A view of a chain whose head is persisted.
    pub fn new(tip: BlockRef) -> Self {
        Self { head: tip, safe: None, finalized: None, persisted: tip, canonical: Vec::new() }
    }

    /// An in-memory canonical block by number.
    pub fn block_by_number(&self, number: u64) -> Option<&Arc<ExecutedBlock>> {
        let first = self.canonical.first()?.number();
        let index = usize::try_from(number.checked_sub(first)?).ok()?;
        self.canonical.get(index)
    }

    /// An in-memory canonical block by hash.
    pub fn block_by_hash(&self, hash: B256) -> Option<&Arc<ExecutedBlock>> {
        self.canonical.iter().find(|b| b.hash() == hash)
    }

    /// State after the head: in-memory canonical changes over the database.
    pub fn latest_state<'db>(&self, db: &'db Database) -> Result<OverlayState<'db>, StorageError> {
        Ok(OverlayState::new(db.latest()?, self.canonical.iter().rev().cloned().collect()))
    }

    /// State after canonical block `number`: in memory, persisted tip, or history.
    ///
    /// The split is made at the tip the database reader sees, not at this view's persisted
    /// block: the tree may have persisted more blocks since the view was taken, and a block at
    /// or below the new tip must be read from history, not from the newer tip with this view's
    /// layers on top.
    pub fn state_at<'db>(
        &self,
        db: &'db Database,
        number: u64,
    ) -> Result<OverlayState<'db>, StorageError> {
        let latest = db.latest()?;
        let tip = latest.block_number();
        if number < tip {
            // One read snapshot at a time.
            drop(latest);
            return Ok(OverlayState::new(db.at_block(number)?, Vec::new()));
        }
        let layers: Vec<_> = self
            .canonical
            .iter()
            .rev()
            .filter(|b| b.number() > tip && b.number() <= number)
            .cloned()
            .collect();
        if layers.len() as u64 != number - tip {
            // The database went below this view's blocks (an unwind since): not servable.
            return Err(StorageError::UnknownBlock { number, tip });
        }
        Ok(OverlayState::new(latest, layers))
    }
}
