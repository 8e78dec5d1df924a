//! The Ethereum JSON-RPC of `tandem-el` (jsonrpsee, HTTP and WS).
//!
//! Namespaces: `eth_`, `net_`, `web3_`, `txpool_` and `debug_` (traces through
//! `revm-inspectors`). Every method reads one [`ChainView`] snapshot taken at the start of the
//! request: blocks above the persisted tip come from `view.canonical`, older ones from MDBX, so
//! a request never sees half of a fork choice update.
//!
//! Block tags follow the fork choice the Engine API sets: `latest` and `pending` are the head
//! (no pending block is built for RPC), `safe`/`finalized` are the consensus client's (an error,
//! as in geth, until it has named one), `earliest` is genesis.
//!
//! Limits (see [`RpcConfig`]): request body size and batch length are enforced by the server;
//! `eth_call`/`eth_estimateGas` gas is capped by `--rpc.gascap`; heavy methods (EVM runs,
//! traces, proofs, log and fee walks, the pool's content) run at most
//! `--rpc.max-tracing-requests` at once off the async threads, each stopped at its
//! `--rpc.evmtimeout` deadline by the work itself (see `heavy`); `eth_getLogs` is bounded by a
//! block range and a result count.
//!
//! Errors are geth's: `-32000` with geth's message for state and pool errors, `3` with the
//! revert data for reverts, `-32602` for bad parameters, `-32005` for limits.

mod call;
mod chain;
mod convert;
mod error;
mod eth;
mod filters;
mod heavy;
mod l1;
mod server;
mod trace_budget;

use std::{sync::Arc, time::Duration};

use alloy_primitives::TxHash;
use parking_lot::{Mutex, RwLock};
use tandem_shared::ChainSpec;

pub use error::{RpcError, RpcResult, decode_revert_reason};
pub use eth::eth_module;
pub use heavy::{Deadline, DeadlineInspector, default_max_heavy_requests};

#[cfg(test)]
mod tests;
pub use filters::FilterStore;
pub use server::{
    RpcArgs, RpcServerHandles, ServerError, ServerSettings, select_apis, start_http_ws,
};

use crate::{
    executor::Executor,
    fork_choice::{CanonicalChange, ChainView},
    node::NodeHandle,
    storage::Database,
    txpool::{SharedPool, journal::Journal, senders::SenderCache},
};

/// Limits and defaults of the RPC.
#[derive(Debug, Clone)]
pub struct RpcConfig {
    /// Gas cap of `eth_call`, `eth_estimateGas`, `debug_traceCall`.
    pub gas_cap: u64,
    /// Wall-time limit of one EVM call request.
    pub evm_timeout: Duration,
    /// Widest `eth_getLogs` block range.
    pub max_logs_range: u64,
    /// Most logs one `eth_getLogs` returns.
    pub max_logs: usize,
    /// Most blocks `eth_feeHistory` covers.
    pub max_fee_history: u64,
    /// Most filters installed at once.
    pub max_filters: usize,
    /// A filter not polled for this long is removed.
    pub filter_timeout: Duration,
    /// Largest request body in bytes.
    pub max_request_bytes: u32,
    /// Largest response body in bytes.
    pub max_response_bytes: u32,
    /// Most calls in one batch.
    pub max_batch: u32,
    /// Largest response to one batch, in bytes.
    pub max_batch_response_bytes: u32,
    /// Most connections.
    pub max_connections: u32,
    /// Minimum tip suggested by `eth_maxPriorityFeePerGas`, in wei.
    pub min_suggested_tip: u128,
    /// Most heavy requests (EVM runs, traces, proofs, log and fee walks) run at once.
    pub max_heavy_requests: usize,
    /// Most subscriptions one WebSocket connection holds.
    pub max_subscriptions_per_connection: u32,
    /// Messages queued for one WebSocket connection before its subscriptions wait.
    pub ws_message_buffer: u32,
    /// A subscription whose client has not made room for its next message for this long is
    /// dropped (the client is not reading).
    pub subscription_send_timeout: Duration,
    /// WebSocket ping period; a connection that has not answered for twice this is closed.
    pub ws_ping_interval: Duration,
    /// A connection whose client accepts none of the bytes sent to it for this long is reset.
    pub stalled_client_timeout: Duration,
}

impl Default for RpcConfig {
    fn default() -> Self {
        Self {
            gas_cap: 50_000_000,
            evm_timeout: Duration::from_secs(5),
            max_logs_range: 10_000,
            max_logs: 20_000,
            max_fee_history: 1024,
            max_filters: 1024,
            filter_timeout: Duration::from_secs(300),
            max_request_bytes: 10 * 1024 * 1024,
            max_response_bytes: 160 * 1024 * 1024,
            max_batch: 1000,
            max_batch_response_bytes: 25_000_000,
            max_connections: 500,
            min_suggested_tip: 1_000_000_000,
            max_heavy_requests: default_max_heavy_requests(),
            max_subscriptions_per_connection: 1024,
            ws_message_buffer: 1024,
            subscription_send_timeout: Duration::from_secs(10),
            ws_ping_interval: Duration::from_secs(30),
            stalled_client_timeout: Duration::from_secs(30),
        }
    }
}

/// Everything the RPC methods read and write.
pub struct RpcContext {
    /// The chain spec.
    pub spec: Arc<ChainSpec>,
    /// The database.
    pub db: Arc<Database>,
    /// The executor (EVM environment per header).
    pub executor: Executor,
    /// The fork choice snapshot handle.
    pub view: Arc<RwLock<Arc<ChainView>>>,
    /// The transaction pool.
    pub pool: SharedPool,
    /// Recovered senders, shared with the engine.
    pub senders: Arc<SenderCache>,
    /// Canonical chain changes, published by the engine on every fork choice update.
    pub events: tokio::sync::broadcast::Sender<Arc<CanonicalChange>>,
    /// Hashes of transactions accepted into the pool.
    pub pending_txs: tokio::sync::broadcast::Sender<TxHash>,
    /// Limits.
    pub config: RpcConfig,
    /// The local transaction journal, if journaling is on.
    pub journal: Option<Arc<Mutex<Journal>>>,
    /// Installed polling filters.
    pub filters: FilterStore,
    /// `web3_clientVersion`.
    pub client_version: String,
    /// Connected gossip peers, for `net_peerCount`.
    pub peer_count: Arc<std::sync::atomic::AtomicUsize>,
    /// Permits of the `eth_getProof` computations ([`PROOF_PERMITS`]).
    pub proof_permits: Arc<tokio::sync::Semaphore>,
    /// Permits of the methods that execute a whole block again ([`BLOCK_REPLAY_PERMITS`]).
    pub replay_permits: Arc<tokio::sync::Semaphore>,
    /// Slots of all heavy requests, [`RpcConfig::max_heavy_requests`] of them, made on first use
    /// (so a context whose configuration is set after [`RpcContext::new`] gets its size).
    heavy_slots: std::sync::OnceLock<Arc<tokio::sync::Semaphore>>,
    /// Subscriptions being served now, over all connections.
    pub live_subscriptions: Arc<std::sync::atomic::AtomicUsize>,
}

/// Most blocks executed again at once (`l1_blockEvents`, `debug_traceTransaction`): each is up
/// to a full block's work, and the node's own blocks need the cores.
pub const BLOCK_REPLAY_PERMITS: usize = 2;

/// Most `eth_getProof` computed at once (reth's default): each walks the trie on a blocking
/// thread, and a flood of them must not take every blocking thread or all the disk.
pub const PROOF_PERMITS: usize = 25;

impl std::fmt::Debug for RpcContext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RpcContext").field("config", &self.config).finish_non_exhaustive()
    }
}

impl RpcContext {
    /// A context with default limits, no journal and fresh channels.
    pub fn new(
        db: Arc<Database>,
        executor: Executor,
        view: Arc<RwLock<Arc<ChainView>>>,
        pool: SharedPool,
        senders: Arc<SenderCache>,
    ) -> Self {
        let (events, _) = tokio::sync::broadcast::channel(256);
        let (pending_txs, _) = tokio::sync::broadcast::channel(16_384);
        Self {
            spec: executor.chain_arc().clone(),
            db,
            executor,
            view,
            pool,
            senders,
            events,
            pending_txs,
            config: RpcConfig::default(),
            journal: None,
            filters: FilterStore::default(),
            client_version: format!("tandem-el/v{}", env!("CARGO_PKG_VERSION")),
            peer_count: Arc::default(),
            proof_permits: Arc::new(tokio::sync::Semaphore::new(PROOF_PERMITS)),
            replay_permits: Arc::new(tokio::sync::Semaphore::new(BLOCK_REPLAY_PERMITS)),
            heavy_slots: std::sync::OnceLock::new(),
            live_subscriptions: Arc::default(),
        }
    }

    /// A context over a running node's parts, sharing its chain-change channel and journal.
    pub fn from_node(node: &NodeHandle, config: RpcConfig) -> Self {
        let mut ctx = Self::new(
            node.db.clone(),
            node.executor.clone(),
            node.view.clone(),
            node.pool.clone(),
            node.senders.clone(),
        );
        ctx.events = node.changes.clone();
        ctx.pending_txs = node.pending_txs.clone();
        ctx.journal = Some(node.journal.clone());
        ctx.config = config;
        ctx
    }

    /// The current fork choice snapshot (the lock is held only to clone the `Arc`).
    pub fn snapshot(&self) -> Arc<ChainView> {
        self.view.read().clone()
    }
}
