//! The engine thread: the one owner of the block tree.
//!
//! Engine API handlers (and dev mode) send it requests through an [`EngineHandle`]; requests are
//! served one at a time, in arrival order, on a dedicated OS thread because they execute blocks
//! and write MDBX. After each canonical change it brings the transaction pool up to date
//! (mined transactions out, re-orged ones back in, sender state refreshed) and announces the
//! change to subscribers.

use std::{collections::HashSet, sync::Arc};

use alloy_consensus::Transaction;
use alloy_primitives::{Address, B256, U256};
use alloy_rpc_types_engine::{ForkchoiceState, PayloadStatus};
use revm::DatabaseRef;
use tokio::sync::{broadcast, mpsc, oneshot};
use tracing::{debug, error, warn};

use crate::{
    fork_choice::{CanonicalChange, EngineTree, ExecutedBlock, ForkchoiceOutcome, TreeError},
    payload_builder::BuildTarget,
    storage::SealedBlock,
    txpool::{Origin, PoolContext, SharedPool},
};

/// The engine thread stopped; the node is shutting down.
#[derive(Debug, Clone, thiserror::Error)]
#[error("the engine has stopped")]
pub struct EngineStopped;

/// Result of a fork choice request: the outcome and, when asked for and possible, what a payload
/// would be built on.
pub type FcuReply = Result<(ForkchoiceOutcome, Option<BuildTarget>), TreeError>;

enum Request {
    NewPayload { block: Box<SealedBlock>, reply: oneshot::Sender<Result<PayloadStatus, TreeError>> },
    ForkchoiceUpdated { state: ForkchoiceState, build: bool, reply: oneshot::Sender<FcuReply> },
    InsertBuilt { block: Arc<ExecutedBlock> },
    Block { hash: B256, reply: oneshot::Sender<Result<Option<SealedBlock>, TreeError>> },
    Shutdown { reply: oneshot::Sender<Result<(), TreeError>> },
}

/// A cheap handle to the engine thread.
#[derive(Debug, Clone)]
pub struct EngineHandle {
    tx: mpsc::UnboundedSender<Request>,
}

impl std::fmt::Debug for Request {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::NewPayload { .. } => "NewPayload",
            Self::ForkchoiceUpdated { .. } => "ForkchoiceUpdated",
            Self::InsertBuilt { .. } => "InsertBuilt",
            Self::Block { .. } => "Block",
            Self::Shutdown { .. } => "Shutdown",
        })
    }
}

impl EngineHandle {
    /// Executes and validates a payload's block.
    pub async fn new_payload(
        &self,
        block: SealedBlock,
    ) -> Result<Result<PayloadStatus, TreeError>, EngineStopped> {
        let (reply, rx) = oneshot::channel();
        self.tx
            .send(Request::NewPayload { block: Box::new(block), reply })
            .map_err(|_| EngineStopped)?;
        rx.await.map_err(|_| EngineStopped)
    }

    /// Applies a fork choice; with `build`, also returns the head as a build target.
    pub async fn fork_choice_updated(
        &self,
        state: ForkchoiceState,
        build: bool,
    ) -> Result<FcuReply, EngineStopped> {
        let (reply, rx) = oneshot::channel();
        self.tx
            .send(Request::ForkchoiceUpdated { state, build, reply })
            .map_err(|_| EngineStopped)?;
        rx.await.map_err(|_| EngineStopped)
    }

    /// Hands a payload this node built to the tree, so its `newPayload` needs no re-execution.
    pub fn insert_built(&self, block: Arc<ExecutedBlock>) {
        let _ = self.tx.send(Request::InsertBuilt { block });
    }

    /// Persists the canonical chain and stops the engine thread.
    pub async fn shutdown(&self) -> Result<Result<(), TreeError>, EngineStopped> {
        let (reply, rx) = oneshot::channel();
        self.tx.send(Request::Shutdown { reply }).map_err(|_| EngineStopped)?;
        rx.await.map_err(|_| EngineStopped)
    }

    /// A block the tree knows (in memory or persisted).
    pub async fn block(
        &self,
        hash: B256,
    ) -> Result<Result<Option<SealedBlock>, TreeError>, EngineStopped> {
        let (reply, rx) = oneshot::channel();
        self.tx.send(Request::Block { hash, reply }).map_err(|_| EngineStopped)?;
        rx.await.map_err(|_| EngineStopped)
    }
}

/// Starts the engine thread; it ends when every handle is dropped.
pub fn spawn(
    tree: EngineTree,
    pool: SharedPool,
    changes: broadcast::Sender<Arc<CanonicalChange>>,
    pending_txs: broadcast::Sender<B256>,
) -> std::io::Result<(EngineHandle, std::thread::JoinHandle<()>)> {
    let (tx, mut rx) = mpsc::unbounded_channel();
    let mut engine = Engine { tree, pool, changes, pending_txs };
    let thread = std::thread::Builder::new().name("engine".into()).spawn(move || {
        while let Some(request) = rx.blocking_recv() {
            if let Request::Shutdown { reply } = request {
                let _ = reply.send(engine.tree.persist_all());
                break;
            }
            engine.handle(request);
        }
        debug!("engine thread stopped");
    })?;
    Ok((EngineHandle { tx }, thread))
}

struct Engine {
    tree: EngineTree,
    pool: SharedPool,
    changes: broadcast::Sender<Arc<CanonicalChange>>,
    /// Transactions (re-)entering the pool, for gossip and pending-transaction subscribers.
    pending_txs: broadcast::Sender<B256>,
}

impl Engine {
    fn handle(&mut self, request: Request) {
        match request {
            Request::NewPayload { block, reply } => {
                let _ = reply.send(self.tree.new_payload(*block));
            }
            Request::ForkchoiceUpdated { state, build, reply } => {
                let result = self.tree.fork_choice_updated(state).map(|outcome| {
                    let target = match &outcome {
                        // Also on a canonical ancestor (proposer re-orgs), when its state is
                        // still available.
                        ForkchoiceOutcome::Valid { head, .. } if build => {
                            self.build_target(head.hash)
                        }
                        _ => None,
                    };
                    (outcome, target)
                });
                if let Ok((ForkchoiceOutcome::Valid { change, .. }, _)) = &result
                    && !(change.applied.is_empty() && change.reverted.is_empty())
                {
                    if let Err(e) = self.update_pool(change) {
                        error!(error = %e, "cannot update the transaction pool after a new head");
                    }
                    let _ = self.changes.send(Arc::new(change.clone()));
                }
                let _ = reply.send(result);
            }
            Request::InsertBuilt { block } => self.tree.insert_executed(block),
            Request::Block { hash, reply } => {
                let _ = reply.send(self.tree.block(hash));
            }
            Request::Shutdown { reply } => {
                let _ = reply.send(self.tree.persist_all());
            }
        }
    }

    fn build_target(&self, head: B256) -> Option<BuildTarget> {
        let parent = match self.tree.header(head) {
            Ok(Some(header)) => header,
            Ok(None) => return None,
            Err(e) => {
                warn!(error = %e, "cannot read the head header to build on");
                return None;
            }
        };
        let layers = self.tree.layers_for(head)?;
        Some(BuildTarget { parent, parent_hash: head, layers })
    }

    /// Brings the pool to the new head: chain context, sender state, re-orged transactions back.
    fn update_pool(&self, change: &CanonicalChange) -> Result<(), TreeError> {
        let head = self.tree.head();
        let Some(header) = self.tree.header(head.hash)? else { return Ok(()) };
        let ctx = PoolContext::after(self.tree.executor().chain(), &header);
        let mined: HashSet<B256> = change
            .applied
            .iter()
            .flat_map(|b| b.block.body.transactions.iter().map(|tx| *tx.tx_hash()))
            .collect();
        let mut touched: HashSet<Address> = HashSet::new();
        for block in &change.applied {
            touched.extend(block.senders.iter().copied());
            touched.extend(block.bundle.state.keys().copied());
        }
        for block in &change.reverted {
            touched.extend(block.senders.iter().copied());
        }
        let Some(state) = self.tree.state_at(head.hash)? else { return Ok(()) };
        let mut pool = self.pool.write();
        let tracked: Vec<(Address, u64, U256)> = touched
            .into_iter()
            .filter(|a| pool.is_tracked(a))
            .filter_map(|address| match state.basic_ref(address) {
                Ok(info) => {
                    Some(info.map_or((address, 0, U256::ZERO), |i| (address, i.nonce, i.balance)))
                }
                Err(e) => {
                    warn!(%address, error = %e, "cannot read account for the pool");
                    None
                }
            })
            .collect();
        pool.on_new_head(ctx, tracked);
        // Transactions of blocks that left the chain come back, unless the new chain has them.
        let reader = crate::txpool::StateReader(&state);
        for block in &change.reverted {
            for (tx, sender) in block.block.body.transactions.iter().zip(&block.senders) {
                if mined.contains(tx.tx_hash()) || tx.nonce() == u64::MAX {
                    continue;
                }
                match pool.add(tx.clone(), *sender, Origin::External, &reader) {
                    // Peers whose chain also dropped it need it again to include it.
                    Ok(_) => {
                        let _ = self.pending_txs.send(*tx.tx_hash());
                    }
                    Err(e) => {
                        debug!(hash = %tx.tx_hash(), error = %e, "re-orged transaction not re-added")
                    }
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{fork_choice::TreeConfig, testkit::Kit};

    fn fcu(engine: &mut Engine, head: B256) {
        let (reply, mut rx) = oneshot::channel();
        let state = ForkchoiceState {
            head_block_hash: head,
            safe_block_hash: B256::ZERO,
            finalized_block_hash: B256::ZERO,
        };
        engine.handle(Request::ForkchoiceUpdated { state, build: false, reply });
        let outcome = rx.try_recv().unwrap().unwrap().0;
        assert!(matches!(outcome, ForkchoiceOutcome::Valid { .. }), "{outcome:?}");
    }

    #[test]
    fn a_reorg_puts_dropped_transactions_back_in_the_pool_and_announces_them() {
        let mut kit = Kit::new(TreeConfig::default());
        let genesis = kit.tree.head().hash;
        // Two siblings on genesis: one built while the pool was empty, one with a transfer.
        let without = kit.build_on(genesis, Address::repeat_byte(2));
        let tx = kit.transfer(0, 0, Address::repeat_byte(0xb0), 1);
        let hash = *tx.tx_hash();
        kit.submit(tx);
        let with = kit.build_on(genesis, Address::repeat_byte(1));
        assert_eq!(with.block.block.body.transactions.len(), 1);
        kit.tree.insert_executed(with.block.clone());
        kit.tree.insert_executed(without.block.clone());
        let (_dir, tree, pool) = kit.into_parts();
        let (changes, _) = broadcast::channel(16);
        let (pending_txs, mut announced) = broadcast::channel(16);
        let mut engine = Engine { tree, pool: pool.clone(), changes, pending_txs };

        fcu(&mut engine, with.block.block.hash());
        assert!(!pool.read().contains(&hash), "mined: out of the pool");
        assert!(announced.try_recv().is_err());
        fcu(&mut engine, without.block.block.hash());
        assert!(pool.read().contains(&hash), "re-orged out: back in the pool");
        assert_eq!(announced.try_recv().unwrap(), hash, "and announced to gossip");
    }
}
