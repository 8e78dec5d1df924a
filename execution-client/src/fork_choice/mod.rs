//! The engine's block tree and fork choice.
//!
//! `newPayload` executes a block against its parent's state and keeps the result in memory;
//! `forkchoiceUpdated` picks the canonical head among those blocks. Only canonical blocks reach
//! MDBX, and only some distance behind the head:
//!
//! * **In memory**: every executed, not yet persisted block, on any branch, with its state changes
//!   ([`ExecutedBlock`]). The state after such a block is its ancestors' changes layered over the
//!   persisted tip ([`OverlayState`]). Each block keeps the trie changes it made on its parent's
//!   state, so the next block's root hashes only the keys that block touches (over the stored
//!   trie and the in-memory ancestors' folded changes), and persisting writes those changes
//!   without computing the root again.
//! * **Persisted**: canonical blocks more than `persistence_threshold` behind the head, and every
//!   block up to the finalized one, which is durable before `forkchoiceUpdated` returns.
//!   Ethereum CLs finalize 64+ blocks late, so persistence does not wait for finality.
//! * **Re-orgs**: a head on another in-memory branch swaps the in-memory canonical chain; a head
//!   whose branch leaves the canonical chain below the persisted tip unwinds MDBX to the fork point
//!   (at most `max_reorg_depth` blocks, else `-38006 Too deep reorg`) and re-executes the branch.
//!   Blocks that leave the canonical chain are reported ([`CanonicalChange`]) so the transaction
//!   pool takes their transactions back.
//! * **Invalid blocks** are remembered with their last valid ancestor, and descendants of an
//!   invalid block are invalid too. Blocks with an unknown parent are buffered (`SYNCING`) and
//!   executed once the parent arrives.
//!
//! The tree is owned by one task; readers (JSON-RPC) see immutable [`ChainView`] snapshots.

mod overlay;
mod view;

#[cfg(test)]
mod tests;

use std::{
    collections::{BTreeMap, HashMap, VecDeque},
    sync::Arc,
};

use alloy_consensus::{Header, ReceiptEnvelope};
use alloy_eips::eip7685::Requests;
use alloy_primitives::{Address, B256};
use alloy_rpc_types_engine::{ForkchoiceState, PayloadStatus, PayloadStatusEnum};
use parking_lot::RwLock;
use rayon::prelude::*;
use revm::database::BundleState;
use tracing::{debug, info, warn};

pub use overlay::OverlayState;
pub use view::ChainView;

use crate::{
    executor::{self, BlockErrorKind, Executor, InvalidBlock, header},
    state_root::TrieUpdates,
    storage::{BlockParts, Database, SealedBlock, StorageError},
    txpool::senders::SenderCache,
};

/// A block executed on its parent's state, with everything persisting it needs.
#[derive(Debug)]
pub struct ExecutedBlock {
    /// The block and its hash.
    pub block: SealedBlock,
    /// Recovered senders, one per transaction.
    pub senders: Vec<Address>,
    /// Receipts, one per transaction.
    pub receipts: Vec<ReceiptEnvelope>,
    /// State changes relative to the parent, with original values.
    pub bundle: BundleState,
    /// EIP-7685 requests.
    pub requests: Requests,
    /// Trie changes on the parent's state, with the block's state root
    /// ([`Database::trie_delta`]).
    pub trie_updates: TrieUpdates,
}

impl ExecutedBlock {
    /// Block number.
    pub fn number(&self) -> u64 {
        self.block.header.number
    }

    /// Block hash.
    pub fn hash(&self) -> B256 {
        self.block.hash()
    }

    /// The header.
    pub fn header(&self) -> &Header {
        &self.block.header
    }

    /// A number-and-hash reference.
    pub fn block_ref(&self) -> BlockRef {
        BlockRef { number: self.number(), hash: self.hash() }
    }
}

/// A block's number and hash.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct BlockRef {
    /// Number.
    pub number: u64,
    /// Hash.
    pub hash: B256,
}

/// Limits of the tree.
#[derive(Debug, Clone)]
pub struct TreeConfig {
    /// Canonical blocks at least this far behind the head are persisted.
    pub persistence_threshold: u64,
    /// Deepest unwind of persisted blocks a re-org may cause.
    pub max_reorg_depth: u64,
    /// Most executed blocks held in memory.
    pub max_blocks: usize,
    /// Most invalid block hashes remembered.
    pub max_invalid: usize,
    /// Most blocks with unknown parents buffered.
    pub max_buffered: usize,
}

impl Default for TreeConfig {
    fn default() -> Self {
        Self {
            persistence_threshold: 2,
            max_reorg_depth: 64,
            max_blocks: 1024,
            max_invalid: 1024,
            max_buffered: 256,
        }
    }
}

/// Failures that are not a verdict on a block.
#[derive(Debug, thiserror::Error)]
pub enum TreeError {
    /// The database failed.
    #[error("storage: {0}")]
    Storage(#[from] StorageError),
    /// Executing a block failed for a reason that is not the block's fault.
    #[error("block {number} ({hash}): internal error: {msg}")]
    Internal {
        /// Block number.
        number: u64,
        /// Block hash.
        hash: B256,
        /// What happened.
        msg: String,
    },
    /// Head, safe and finalized do not form one chain (`-38002`).
    #[error("invalid forkchoice state: {0}")]
    InvalidForkchoiceState(String),
    /// The re-org would unwind more persisted blocks than allowed (`-38006`).
    #[error("too deep reorg: {depth} persisted blocks to unwind, at most {max}")]
    TooDeepReorg {
        /// Blocks to unwind.
        depth: u64,
        /// The limit.
        max: u64,
    },
}

/// A block that left the canonical chain.
#[derive(Debug, Clone)]
pub struct RevertedBlock {
    /// The block.
    pub block: SealedBlock,
    /// Its senders.
    pub senders: Vec<Address>,
    /// Its receipts (for `removed: true` logs).
    pub receipts: Vec<ReceiptEnvelope>,
}

/// How the canonical chain changed in one fork choice update.
#[derive(Debug, Default, Clone)]
pub struct CanonicalChange {
    /// Blocks that left the canonical chain, oldest first.
    pub reverted: Vec<RevertedBlock>,
    /// Blocks that joined it, oldest first.
    pub applied: Vec<Arc<ExecutedBlock>>,
}

/// The tree's answer to `forkchoiceUpdated`.
#[derive(Debug)]
pub enum ForkchoiceOutcome {
    /// The head is unknown (or waits for its ancestors).
    Syncing,
    /// The head is invalid.
    Invalid {
        /// Last valid ancestor.
        latest_valid: Option<B256>,
        /// Why.
        error: String,
    },
    /// The fork choice is applied (or the head is a canonical ancestor and the update was
    /// skipped: no payload may be built then).
    Valid {
        /// The head.
        head: BlockRef,
        /// What changed.
        change: CanonicalChange,
        /// The head is an ancestor of the canonical head: nothing moved, no build.
        skipped: bool,
    },
}

/// The engine's block tree. See the module docs.
#[derive(Debug)]
pub struct EngineTree {
    db: Arc<Database>,
    executor: Executor,
    senders: Arc<SenderCache>,
    config: TreeConfig,
    blocks: HashMap<B256, Arc<ExecutedBlock>>,
    invalid: HashMap<B256, Option<B256>>,
    invalid_order: VecDeque<B256>,
    buffered: HashMap<B256, SealedBlock>,
    buffered_order: VecDeque<B256>,
    /// In-memory canonical blocks above the persisted tip.
    canonical: BTreeMap<u64, Arc<ExecutedBlock>>,
    /// Trie changes from the persisted tip to in-memory blocks (their own and their in-memory
    /// ancestors' folded), kept so a child's root starts from its parent's; cleared when the
    /// persisted tip moves.
    pending_tries: HashMap<B256, Arc<TrieUpdates>>,
    persisted: BlockRef,
    head: BlockRef,
    safe: Option<BlockRef>,
    finalized: Option<BlockRef>,
    view: Arc<RwLock<Arc<ChainView>>>,
}

impl EngineTree {
    /// A tree whose head is the persisted tip of `db`.
    pub fn new(
        db: Arc<Database>,
        executor: Executor,
        senders: Arc<SenderCache>,
        config: TreeConfig,
    ) -> Result<Self, TreeError> {
        let (number, hash) = db.canonical_tip()?;
        let tip = BlockRef { number, hash };
        let view = Arc::new(RwLock::new(Arc::new(ChainView::new(tip))));
        let tree = Self {
            db,
            executor,
            senders,
            config,
            blocks: HashMap::new(),
            invalid: HashMap::new(),
            invalid_order: VecDeque::new(),
            buffered: HashMap::new(),
            buffered_order: VecDeque::new(),
            canonical: BTreeMap::new(),
            pending_tries: HashMap::new(),
            persisted: tip,
            head: tip,
            safe: None,
            finalized: None,
            view,
        };
        tree.publish();
        Ok(tree)
    }

    /// The shared, always-current snapshot handle for readers.
    pub fn view_handle(&self) -> Arc<RwLock<Arc<ChainView>>> {
        self.view.clone()
    }

    /// The database.
    pub fn db(&self) -> &Arc<Database> {
        &self.db
    }

    /// The executor.
    pub fn executor(&self) -> &Executor {
        &self.executor
    }

    /// The canonical head.
    pub fn head(&self) -> BlockRef {
        self.head
    }

    /// The persisted canonical tip.
    pub fn persisted(&self) -> BlockRef {
        self.persisted
    }

    /// The finalized block, once a fork choice update named one.
    pub fn finalized(&self) -> Option<BlockRef> {
        self.finalized
    }

    /// The safe block, once a fork choice update named one.
    pub fn safe(&self) -> Option<BlockRef> {
        self.safe
    }

    /// An executed in-memory block.
    pub fn executed(&self, hash: &B256) -> Option<Arc<ExecutedBlock>> {
        self.blocks.get(hash).cloned()
    }

    /// The header of a block the tree knows (in memory or persisted).
    pub fn header(&self, hash: B256) -> Result<Option<Header>, TreeError> {
        if let Some(block) = self.blocks.get(&hash) {
            return Ok(Some(block.header().clone()));
        }
        Ok(self.db.header(hash)?)
    }

    /// A block the tree knows (in memory or persisted), for payload bodies.
    pub fn block(&self, hash: B256) -> Result<Option<SealedBlock>, TreeError> {
        if let Some(block) = self.blocks.get(&hash) {
            return Ok(Some(block.block.clone()));
        }
        Ok(self.db.block(hash)?)
    }

    /// The in-memory ancestors of a block (the block first, newest first) down to the persisted
    /// tip, or `None` when its branch leaves the canonical chain below the persisted tip or is
    /// unknown. A persisted tip gives an empty list.
    pub fn layers_for(&self, hash: B256) -> Option<Vec<Arc<ExecutedBlock>>> {
        let mut layers = Vec::new();
        let mut cursor = hash;
        while cursor != self.persisted.hash {
            let block = self.blocks.get(&cursor)?;
            layers.push(block.clone());
            cursor = block.header().parent_hash;
        }
        Some(layers)
    }

    /// State after block `hash` (in memory above the persisted tip, or the persisted tip).
    pub fn state_at(&self, hash: B256) -> Result<Option<OverlayState<'_>>, TreeError> {
        let Some(layers) = self.layers_for(hash) else { return Ok(None) };
        Ok(Some(OverlayState::new(self.db.latest()?, layers)))
    }

    /// The trie changes from the persisted tip to block `hash`, whose in-memory ancestors are
    /// `layers` (newest first, from [`Self::layers_for`]); `None` for the persisted tip.
    fn pending_trie(
        &mut self,
        hash: B256,
        layers: &[Arc<ExecutedBlock>],
    ) -> Option<Arc<TrieUpdates>> {
        if let Some(pending) = self.pending_tries.get(&hash) {
            return Some(pending.clone());
        }
        let folded = Arc::new(TrieUpdates::fold(
            self.persisted.hash,
            layers.iter().rev().map(|block| &block.trie_updates),
        )?);
        self.pending_tries.insert(hash, folded.clone());
        Some(folded)
    }

    fn mark_invalid(&mut self, hash: B256, latest_valid: Option<B256>) {
        if self.invalid.insert(hash, latest_valid).is_none() {
            self.invalid_order.push_back(hash);
            while self.invalid_order.len() > self.config.max_invalid {
                if let Some(old) = self.invalid_order.pop_front() {
                    self.invalid.remove(&old);
                }
            }
        }
    }

    fn buffer(&mut self, block: SealedBlock) {
        let hash = block.hash();
        if self.buffered.insert(hash, block).is_none() {
            self.buffered_order.push_back(hash);
            while self.buffered_order.len() > self.config.max_buffered {
                if let Some(old) = self.buffered_order.pop_front() {
                    self.buffered.remove(&old);
                }
            }
        }
    }

    fn is_known(&self, hash: B256) -> Result<bool, TreeError> {
        Ok(self.blocks.contains_key(&hash) || self.db.block_number(hash)?.is_some())
    }

    /// Remembers a block this node built and executed itself, so its `newPayload` is a lookup.
    /// Ignored when known already or when its parent is not reachable in memory.
    pub fn insert_executed(&mut self, block: Arc<ExecutedBlock>) {
        let hash = block.hash();
        if self.blocks.contains_key(&hash) || self.layers_for(block.header().parent_hash).is_none()
        {
            return;
        }
        self.blocks.insert(hash, block);
    }

    /// `engine_newPayload` after the payload became a block: execute, validate, remember.
    pub fn new_payload(&mut self, block: SealedBlock) -> Result<PayloadStatus, TreeError> {
        let hash = block.hash();
        let status = self.insert_block(block)?;
        if status.status.is_valid() {
            self.connect_buffered(hash)?;
        }
        Ok(status)
    }

    /// Executes buffered descendants of a newly valid block.
    fn connect_buffered(&mut self, parent: B256) -> Result<(), TreeError> {
        let mut queue = vec![parent];
        while let Some(parent) = queue.pop() {
            let children: Vec<B256> = self
                .buffered
                .iter()
                .filter(|(_, b)| b.header.parent_hash == parent)
                .map(|(h, _)| *h)
                .collect();
            for child in children {
                if let Some(block) = self.buffered.remove(&child) {
                    self.buffered_order.retain(|h| *h != child);
                    if self.insert_block(block)?.status.is_valid() {
                        queue.push(child);
                    }
                }
            }
        }
        Ok(())
    }

    fn insert_block(&mut self, block: SealedBlock) -> Result<PayloadStatus, TreeError> {
        let hash = block.hash();
        let number = block.header.number;
        let parent_hash = block.header.parent_hash;
        if let Some(latest_valid) = self.invalid.get(&hash) {
            return Ok(invalid_status(*latest_valid, "block is known to be invalid".into()));
        }
        if self.is_known(hash)? {
            return Ok(PayloadStatus::new(PayloadStatusEnum::Valid, Some(hash)));
        }
        if let Some(latest_valid) = self.invalid.get(&parent_hash).copied() {
            self.mark_invalid(hash, latest_valid);
            return Ok(invalid_status(latest_valid, format!("parent {parent_hash} is invalid")));
        }
        let Some(layers) = self.layers_for(parent_hash) else {
            // Parent unknown: wait for it. Parent persisted below the tip: a side chain we can
            // only execute after an unwind, which a fork choice update to it will do.
            let persisted_parent = self.db.block_number(parent_hash)?.is_some();
            self.buffer(block);
            let status = if persisted_parent {
                PayloadStatusEnum::Accepted
            } else {
                PayloadStatusEnum::Syncing
            };
            return Ok(PayloadStatus::new(status, None));
        };
        let parent = match layers.first() {
            Some(p) => p.header().clone(),
            None => self.db.header(parent_hash)?.ok_or(TreeError::Internal {
                number,
                hash,
                msg: format!("persisted tip {parent_hash} has no header"),
            })?,
        };
        let pending = self.pending_trie(parent_hash, &layers);
        match self.execute(block, &parent, layers, pending.as_deref())? {
            Ok(executed) => {
                debug!(number, %hash, txs = executed.senders.len(), "payload valid");
                // The child's changes from the tip: the parent's plus its own. The parent's entry
                // is handed over (a sibling or a build on the parent folds it again).
                let own = executed.trie_updates.clone();
                let cumulative = match pending {
                    Some(mut pending) => {
                        self.pending_tries.remove(&parent_hash);
                        Arc::make_mut(&mut pending).merge(own);
                        pending
                    }
                    None => Arc::new(own),
                };
                self.pending_tries.insert(hash, cumulative);
                self.blocks.insert(hash, Arc::new(executed));
                Ok(PayloadStatus::new(PayloadStatusEnum::Valid, Some(hash)))
            }
            Err(invalid) => {
                warn!(number, %hash, error = %invalid, "payload invalid");
                self.mark_invalid(hash, Some(parent_hash));
                Ok(invalid_status(Some(parent_hash), invalid.to_string()))
            }
        }
    }

    /// Validates and executes `block` on the state after `layers` (newest first, empty for the
    /// persisted tip), whose trie changes from the tip are `pending`. The outer error is an
    /// internal failure, the inner one a verdict.
    fn execute(
        &self,
        block: SealedBlock,
        parent: &Header,
        layers: Vec<Arc<ExecutedBlock>>,
        pending: Option<&TrieUpdates>,
    ) -> Result<Result<ExecutedBlock, InvalidBlock>, TreeError> {
        let hash = block.hash();
        let h = &block.header;
        let chain = self.executor.chain();
        if let Err(e) = header::validate_header(chain, h, parent, h.parent_hash) {
            return Ok(Err(e));
        }
        let body = &block.body;
        if let Err(e) = header::validate_body(
            chain,
            h,
            &body.transactions,
            &body.ommers,
            body.withdrawals.as_deref().map(|w| w.as_slice()),
        ) {
            return Ok(Err(e));
        }
        let senders = match self.recover_senders(&block) {
            Ok(senders) => senders,
            Err(e) => return Ok(Err(e)),
        };
        let internal = |msg: String| TreeError::Internal { number: h.number, hash, msg };
        let state = OverlayState::new(self.db.latest()?, layers.clone());
        let output = match self.executor.execute(block.inner(), &senders, &state) {
            Ok(output) => output,
            Err(BlockErrorKind::Invalid(e)) => return Ok(Err(e)),
            Err(BlockErrorKind::Internal(msg)) => return Err(internal(msg)),
        };
        drop(state);
        if let Err(e) = executor::validate_post_execution(h, &output) {
            return Ok(Err(e));
        }
        let trie_updates = self.db.trie_delta(pending, &output.bundle)?;
        if trie_updates.state_root() != h.state_root {
            return Ok(Err(InvalidBlock::RootMismatch {
                what: "state root",
                header: h.state_root,
                computed: trie_updates.state_root(),
            }));
        }
        Ok(Ok(ExecutedBlock {
            block,
            senders,
            receipts: output.receipts,
            bundle: output.bundle,
            requests: output.requests,
            trie_updates,
        }))
    }

    /// Senders of a block's transactions: cached ones reused, the rest recovered in parallel.
    fn recover_senders(&self, block: &SealedBlock) -> Result<Vec<Address>, InvalidBlock> {
        block
            .body
            .transactions
            .par_iter()
            .enumerate()
            .map(|(index, tx)| {
                self.senders
                    .recover(tx)
                    .map_err(|_| InvalidBlock::Signature { index, hash: *tx.tx_hash() })
            })
            .collect()
    }

    /// `engine_forkchoiceUpdated`: move head, safe and finalized; persist what is due.
    pub fn fork_choice_updated(
        &mut self,
        state: ForkchoiceState,
    ) -> Result<ForkchoiceOutcome, TreeError> {
        let head_hash = state.head_block_hash;
        if head_hash.is_zero() {
            return Err(TreeError::InvalidForkchoiceState("head block hash is zero".into()));
        }
        if let Some(latest_valid) = self.invalid.get(&head_hash) {
            return Ok(ForkchoiceOutcome::Invalid {
                latest_valid: *latest_valid,
                error: "head block is invalid".into(),
            });
        }
        if self.buffered.contains_key(&head_hash) {
            return self.reorg_to_buffered(state);
        }

        // The head's branch: in-memory blocks down to a persisted block.
        let mut path = Vec::new();
        let mut cursor = head_hash;
        let base = loop {
            if let Some(block) = self.blocks.get(&cursor) {
                path.push(block.clone());
                cursor = block.header().parent_hash;
                continue;
            }
            match self.db.block_number(cursor)? {
                Some(number) => break BlockRef { number, hash: cursor },
                None => return Ok(ForkchoiceOutcome::Syncing),
            }
        };
        path.reverse();
        let head = path.last().map_or(base, |b| b.block_ref());

        // A head that is already canonical but behind our head: skip (the spec allows it) but
        // keep safe/finalized if they fit.
        let is_canonical_ancestor = head != self.head
            && (self.canonical.get(&head.number).is_some_and(|b| b.hash() == head.hash)
                || (path.is_empty() && head.number <= self.persisted.number));
        if is_canonical_ancestor {
            let (safe, finalized) = self.check_safe_finalized(&state, &[], self.head)?;
            self.apply_safe_finalized(safe, finalized)?;
            return Ok(ForkchoiceOutcome::Valid {
                head,
                change: CanonicalChange::default(),
                skipped: true,
            });
        }

        let unwind = if path.is_empty() {
            head.number < self.persisted.number
        } else {
            base != self.persisted
        };
        if unwind {
            let depth = self.persisted.number - base.number;
            if depth > self.config.max_reorg_depth {
                return Err(TreeError::TooDeepReorg { depth, max: self.config.max_reorg_depth });
            }
        }
        let (safe, finalized) = self.check_safe_finalized(&state, &path, head)?;

        let mut change = CanonicalChange::default();
        if unwind {
            change.reverted = self.unwind_persisted(base)?;
        }
        // Old in-memory canonical blocks not on the new branch leave the chain.
        let new_hashes: std::collections::HashSet<B256> = path.iter().map(|b| b.hash()).collect();
        for block in self.canonical.values() {
            if !new_hashes.contains(&block.hash()) {
                change.reverted.push(RevertedBlock {
                    block: block.block.clone(),
                    senders: block.senders.clone(),
                    receipts: block.receipts.clone(),
                });
            }
        }
        let old: std::collections::HashSet<B256> =
            self.canonical.values().map(|b| b.hash()).collect();
        change.applied = path.iter().filter(|b| !old.contains(&b.hash())).cloned().collect();
        self.canonical = path.iter().map(|b| (b.number(), b.clone())).collect();
        if head != self.head {
            info!(number = head.number, hash = %head.hash, reorg = !change.reverted.is_empty(), "new canonical head");
        }
        self.head = head;
        self.apply_safe_finalized(safe, finalized)?;
        Ok(ForkchoiceOutcome::Valid { head, change, skipped: false })
    }

    /// Resolves safe and finalized against the chain `path` (in-memory part of the new
    /// canonical chain, oldest first) ending at `head`; unknown or off-chain hashes are `-38002`.
    fn check_safe_finalized(
        &self,
        state: &ForkchoiceState,
        path: &[Arc<ExecutedBlock>],
        head: BlockRef,
    ) -> Result<(Option<BlockRef>, Option<BlockRef>), TreeError> {
        let persisted_limit = path.first().map_or(head.number, |b| b.number() - 1);
        let resolve = |hash: B256, what: &str| -> Result<Option<BlockRef>, TreeError> {
            if hash.is_zero() {
                return Ok(None);
            }
            if let Some(block) = path.iter().find(|b| b.hash() == hash) {
                return Ok(Some(block.block_ref()));
            }
            if path.is_empty() && head.hash == hash {
                return Ok(Some(head));
            }
            // Still-canonical in-memory blocks below the new branch (skipped-update case).
            if path.is_empty()
                && let Some(block) = self.canonical.values().find(|b| b.hash() == hash)
                && block.number() <= head.number
            {
                return Ok(Some(block.block_ref()));
            }
            match self.db.block_number(hash)? {
                Some(number) if number <= persisted_limit.min(self.persisted.number) => {
                    Ok(Some(BlockRef { number, hash }))
                }
                _ => Err(TreeError::InvalidForkchoiceState(format!(
                    "{what} block {hash} is not an ancestor of head {}",
                    head.hash
                ))),
            }
        };
        let safe = resolve(state.safe_block_hash, "safe")?;
        let finalized = resolve(state.finalized_block_hash, "finalized")?;
        Ok((safe, finalized))
    }

    /// Records safe/finalized, persists what is due and publishes the view.
    fn apply_safe_finalized(
        &mut self,
        safe: Option<BlockRef>,
        finalized: Option<BlockRef>,
    ) -> Result<(), TreeError> {
        if safe.is_some() {
            self.safe = safe;
        }
        if finalized.is_some() {
            self.finalized = finalized;
        }
        self.persist_due()?;
        self.prune();
        self.publish();
        Ok(())
    }

    /// Persists the whole canonical chain (clean shutdown).
    pub fn persist_all(&mut self) -> Result<(), TreeError> {
        let threshold = std::mem::replace(&mut self.config.persistence_threshold, 0);
        let result = self.persist_due();
        self.config.persistence_threshold = threshold;
        self.publish();
        result
    }

    /// Persists canonical blocks up to the finalized one and those far enough behind the head.
    fn persist_due(&mut self) -> Result<(), TreeError> {
        let finalized = self.finalized.map_or(0, |f| f.number);
        let behind = self.head.number.saturating_sub(self.config.persistence_threshold);
        let target = finalized.max(behind).min(self.head.number);
        let due: Vec<Arc<ExecutedBlock>> =
            self.canonical.range(..=target).map(|(_, block)| block.clone()).collect();
        let Some(last) = due.last().cloned() else { return Ok(()) };
        // The trie changes from the tip to the last due block: kept from its validation, or
        // folded from the due blocks' own (they were each checked against their header then).
        let updates = match self.pending_tries.remove(&last.hash()) {
            Some(pending) => Arc::try_unwrap(pending).unwrap_or_else(|shared| (*shared).clone()),
            None => TrieUpdates::fold(self.persisted.hash, due.iter().map(|b| &b.trie_updates))
                .ok_or_else(|| TreeError::Internal {
                    number: last.number(),
                    hash: last.hash(),
                    msg: "no blocks to persist".into(),
                })?,
        };
        let parts: Vec<BlockParts<'_>> = due
            .iter()
            .map(|b| (&b.block, b.senders.as_slice(), b.receipts.as_slice(), &b.bundle))
            .collect();
        self.db.commit_block_parts(&parts, updates)?;
        for block in &due {
            self.canonical.remove(&block.number());
            self.blocks.remove(&block.hash());
        }
        self.persisted = last.block_ref();
        // Every kept trie change was relative to the old tip.
        self.pending_tries.clear();
        debug!(number = last.number(), hash = %last.hash(), blocks = due.len(), "persisted");
        Ok(())
    }

    /// Drops in-memory blocks that can no longer become canonical, and bounds the tree.
    fn prune(&mut self) {
        let floor = self.finalized.map_or(0, |f| f.number).max(self.persisted.number);
        self.blocks.retain(|_, b| b.number() > floor);
        let blocks = &self.blocks;
        self.pending_tries.retain(|hash, _| blocks.contains_key(hash));
        if self.blocks.len() > self.config.max_blocks {
            let canonical: std::collections::HashSet<B256> =
                self.canonical.values().map(|b| b.hash()).collect();
            let mut side: Vec<(u64, B256)> = self
                .blocks
                .values()
                .filter(|b| !canonical.contains(&b.hash()))
                .map(|b| (b.number(), b.hash()))
                .collect();
            side.sort();
            let excess = self.blocks.len() - self.config.max_blocks;
            for (_, hash) in side.into_iter().take(excess) {
                self.blocks.remove(&hash);
            }
        }
    }

    /// Unwinds MDBX to `base`, returning the unwound blocks (oldest first).
    fn unwind_persisted(&mut self, base: BlockRef) -> Result<Vec<RevertedBlock>, TreeError> {
        let mut reverted = Vec::new();
        for number in base.number + 1..=self.persisted.number {
            if let (Some(block), Some(senders)) = (self.db.block(number)?, self.db.senders(number)?)
            {
                let receipts = self.db.receipts(number)?.unwrap_or_default();
                reverted.push(RevertedBlock { block, senders, receipts });
            }
        }
        warn!(
            from = self.persisted.number,
            to = base.number,
            "re-org below the persisted tip: unwinding"
        );
        self.db.unwind_to(base.number)?;
        self.persisted = base;
        self.pending_tries.clear();
        self.canonical.clear();
        // Unwound blocks stay available: a later fork choice back to them re-executes them.
        for old in &reverted {
            self.buffer(old.block.clone());
        }
        Ok(reverted)
    }

    /// A fork choice update to a buffered block whose branch forks below the persisted tip:
    /// unwind to the fork point, execute the branch, then apply the fork choice.
    fn reorg_to_buffered(
        &mut self,
        state: ForkchoiceState,
    ) -> Result<ForkchoiceOutcome, TreeError> {
        let mut branch = Vec::new();
        let mut cursor = state.head_block_hash;
        while let Some(block) = self.buffered.get(&cursor) {
            cursor = block.header.parent_hash;
            branch.push(block.clone());
        }
        let Some(base_number) = self.db.block_number(cursor)? else {
            return Ok(ForkchoiceOutcome::Syncing);
        };
        if self.blocks.contains_key(&cursor) {
            // The branch hangs off an in-memory block after all: execute it in place.
            for block in branch.into_iter().rev() {
                let status = self.new_payload(block)?;
                if let PayloadStatusEnum::Invalid { validation_error } = status.status {
                    return Ok(ForkchoiceOutcome::Invalid {
                        latest_valid: status.latest_valid_hash,
                        error: validation_error,
                    });
                }
            }
            return self.fork_choice_updated(state);
        }
        let depth = self.persisted.number.saturating_sub(base_number);
        if depth > self.config.max_reorg_depth {
            return Err(TreeError::TooDeepReorg { depth, max: self.config.max_reorg_depth });
        }
        let old_head = self.head;
        let mut reverted = self.unwind_persisted(BlockRef { number: base_number, hash: cursor })?;
        self.head = self.persisted;
        for block in branch.into_iter().rev() {
            let hash = block.hash();
            self.buffered.remove(&hash);
            let status = self.insert_block(block)?;
            if let PayloadStatusEnum::Invalid { validation_error } = status.status {
                // Put the old chain back so the node does not lose its canonical blocks.
                warn!(%hash, %old_head.hash, "re-org branch invalid, restoring the old chain");
                for old in std::mem::take(&mut reverted) {
                    self.insert_block(old.block)?;
                }
                self.fork_choice_updated(ForkchoiceState {
                    head_block_hash: old_head.hash,
                    safe_block_hash: B256::ZERO,
                    finalized_block_hash: B256::ZERO,
                })?;
                return Ok(ForkchoiceOutcome::Invalid {
                    latest_valid: status.latest_valid_hash,
                    error: validation_error,
                });
            }
        }
        match self.fork_choice_updated(state)? {
            ForkchoiceOutcome::Valid { head, mut change, skipped } => {
                reverted.append(&mut change.reverted);
                change.reverted = reverted;
                Ok(ForkchoiceOutcome::Valid { head, change, skipped })
            }
            other => Ok(other),
        }
    }

    /// Publishes a fresh snapshot for readers.
    fn publish(&self) {
        let view = ChainView {
            head: self.head,
            safe: self.safe,
            finalized: self.finalized,
            persisted: self.persisted,
            canonical: self.canonical.values().cloned().collect(),
        };
        *self.view.write() = Arc::new(view);
    }
}

/// The trie changes `bundle` makes on the state after block `parent_hash`, whose in-memory
/// ancestors were `layers` (newest first, from [`EngineTree::layers_for`]) when the caller took
/// them; blocks persisted since are skipped. `Err` ([`StorageError::PendingNotOnTip`]) when the
/// persisted tip is no longer on that branch.
pub fn trie_delta_after(
    db: &Database,
    parent_hash: B256,
    layers: &[Arc<ExecutedBlock>],
    bundle: &BundleState,
) -> Result<TrieUpdates, StorageError> {
    let mut attempts = 0;
    loop {
        let (tip_number, tip_hash) = db.canonical_tip()?;
        let above: Vec<&Arc<ExecutedBlock>> =
            layers.iter().rev().filter(|b| b.number() > tip_number).collect();
        let base = above.first().map_or(parent_hash, |b| b.header().parent_hash);
        if base != tip_hash {
            return Err(StorageError::PendingNotOnTip { computed_on: base, tip_hash });
        }
        let pending = TrieUpdates::fold(tip_hash, above.iter().map(|b| &b.trie_updates));
        match db.trie_delta(pending.as_ref(), bundle) {
            // Blocks were persisted between reading the tip and computing: read it again.
            Err(StorageError::PendingNotOnTip { .. }) if attempts < 3 => attempts += 1,
            other => return other,
        }
    }
}

fn invalid_status(latest_valid: Option<B256>, error: String) -> PayloadStatus {
    PayloadStatus::new(PayloadStatusEnum::Invalid { validation_error: error }, latest_valid)
}
