//! The block import path for blocks that arrive without an engine tree: `tandem-el import` and
//! the blockchain-fixture runner. (The engine executes payloads in `fork_choice` and persists
//! the executed blocks with `Database::commit_block`.)
//!
//! [`import_block`] takes a sealed block that must extend the canonical tip and:
//!
//! 1. validates its header against the tip's header and its body against the header;
//! 2. recovers the senders in parallel and executes it on [`Database::latest`];
//! 3. checks gas used, receipts root, logs bloom and requests hash;
//! 4. computes the state root incrementally with [`Database::state_root_with`] and compares it
//!    with the header's;
//! 5. commits everything in one MDBX write transaction.
//!
//! Any failure before step 5 leaves the database untouched: an invalid block never changes the
//! chain, which stays on the block's parent.
//!
//! [`BatchImporter`] implements it for a run of consecutive blocks committed in batches
//! ([`import_block`] is a batch of one): each block executes on the state the earlier
//! uncommitted ones leave, its state root is checked incrementally over theirs
//! ([`Database::trie_delta`]), and every `batch` blocks go to MDBX in one write transaction
//! (one fsync, upper B-tree pages written once). A crash loses at most the uncommitted batch;
//! the database stays at the last committed block.

use std::sync::Arc;

use alloy_primitives::B256;

use crate::{
    executor::{self, BlockError, BlockErrorKind, Executor, InvalidBlock},
    fork_choice::{ExecutedBlock, OverlayState},
    state_root::TrieUpdates,
    storage::{Database, SealedBlock, StorageError},
};

/// What importing a block did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ImportOutcome {
    /// The block is now the canonical tip.
    Imported {
        /// Its number.
        number: u64,
        /// Its hash.
        hash: B256,
        /// Gas its transactions used.
        gas_used: u64,
    },
    /// The block was already canonical; nothing was written.
    AlreadyKnown {
        /// Its number.
        number: u64,
        /// Its hash.
        hash: B256,
    },
}

/// Why a block was not imported.
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    /// The block breaks a consensus rule, or reading state failed while executing it.
    #[error(transparent)]
    Block(#[from] BlockError),
    /// The block does not extend the canonical tip (a side chain needs an unwind first).
    #[error("block {number} ({hash}): parent {parent} is not the canonical tip {tip}")]
    NotChildOfTip {
        /// Block number.
        number: u64,
        /// Block hash.
        hash: B256,
        /// The block's parent hash.
        parent: B256,
        /// The canonical tip's hash.
        tip: B256,
    },
    /// The database failed.
    #[error("block {number} ({hash}): storage: {source}")]
    Storage {
        /// Block number.
        number: u64,
        /// Block hash.
        hash: B256,
        /// The storage error.
        source: Box<StorageError>,
    },
}

impl ImportError {
    /// Whether the block itself is invalid (the chain must never accept it).
    pub fn is_invalid(&self) -> bool {
        matches!(self, Self::Block(e) if e.is_invalid())
    }
}

/// Validates, executes and commits `block` on top of the canonical tip of `db` (a batch of one).
pub fn import_block(
    db: &Database,
    executor: &Executor,
    block: &SealedBlock,
) -> Result<ImportOutcome, ImportError> {
    BatchImporter::new(db, executor, 1).import(block)
}

/// Imports consecutive blocks and commits them `batch` at a time (see the module docs).
#[derive(Debug)]
pub struct BatchImporter<'a> {
    db: &'a Database,
    executor: &'a Executor,
    batch: usize,
    /// Executed, not yet committed blocks, oldest first.
    pending: Vec<Arc<ExecutedBlock>>,
    /// Trie updates from the canonical tip through every pending block.
    updates: Option<TrieUpdates>,
}

impl<'a> BatchImporter<'a> {
    /// An importer committing every `batch` blocks (at least 1).
    pub fn new(db: &'a Database, executor: &'a Executor, batch: usize) -> Self {
        Self { db, executor, batch: batch.max(1), pending: Vec::new(), updates: None }
    }

    /// Validates and executes `block` on the tip plus the pending blocks; commits the batch
    /// when full. An invalid block leaves the pending blocks as they were.
    pub fn import(&mut self, block: &SealedBlock) -> Result<ImportOutcome, ImportError> {
        let hash = block.hash();
        let header = &block.header;
        let number = header.number;
        let storage = |source| ImportError::Storage { number, hash, source: Box::new(source) };
        if self.pending.iter().any(|b| b.hash() == hash)
            || self.db.block_number(hash).map_err(storage)?.is_some()
        {
            return Ok(ImportOutcome::AlreadyKnown { number, hash });
        }
        let (parent, parent_hash) = match self.pending.last() {
            Some(last) => (last.header().clone(), last.hash()),
            None => {
                let (tip_number, tip_hash) = self.db.canonical_tip().map_err(storage)?;
                let parent = self.db.header(tip_number).map_err(storage)?.ok_or_else(|| {
                    storage(StorageError::UnknownBlock { number: tip_number, tip: tip_number })
                })?;
                (parent, tip_hash)
            }
        };
        if header.parent_hash != parent_hash {
            return Err(ImportError::NotChildOfTip {
                number,
                hash,
                parent: header.parent_hash,
                tip: parent_hash,
            });
        }
        let (senders, output) = {
            let layers = self.pending.iter().rev().cloned().collect();
            let state = OverlayState::new(self.db.latest().map_err(storage)?, layers);
            executor::validate_and_execute(
                self.executor,
                block.inner(),
                hash,
                &parent,
                parent_hash,
                &state,
            )?
        };
        let trie_updates =
            self.db.trie_delta(self.updates.as_ref(), &output.bundle).map_err(storage)?;
        let state_root = trie_updates.state_root();
        if state_root != header.state_root {
            return Err(BlockError::new(
                number,
                hash,
                BlockErrorKind::Invalid(InvalidBlock::RootMismatch {
                    what: "state root",
                    header: header.state_root,
                    computed: state_root,
                }),
            )
            .into());
        }
        let gas_used = output.gas_used;
        self.pending.push(Arc::new(ExecutedBlock {
            block: block.clone(),
            senders,
            receipts: output.receipts,
            bundle: output.bundle,
            requests: output.requests,
            trie_updates: trie_updates.clone(),
        }));
        self.updates = Some(match self.updates.take() {
            Some(mut pending) => {
                pending.merge(trie_updates);
                pending
            }
            None => trie_updates,
        });
        if self.pending.len() >= self.batch {
            self.flush()?;
        }
        Ok(ImportOutcome::Imported { number, hash, gas_used })
    }

    /// Commits the pending blocks in one write transaction.
    pub fn flush(&mut self) -> Result<(), ImportError> {
        let (Some(last), Some(updates)) = (self.pending.last(), self.updates.take()) else {
            return Ok(());
        };
        let (number, hash) = (last.number(), last.hash());
        let parts: Vec<_> = self
            .pending
            .iter()
            .map(|b| (&b.block, b.senders.as_slice(), b.receipts.as_slice(), &b.bundle))
            .collect();
        self.db.commit_block_parts(&parts, updates).map_err(|source| ImportError::Storage {
            number,
            hash,
            source: Box::new(source),
        })?;
        self.pending.clear();
        Ok(())
    }

    /// Blocks executed but not committed yet.
    pub fn pending(&self) -> usize {
        self.pending.len()
    }
}
