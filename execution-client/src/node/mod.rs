//! A running `tandem-el` node: the database, the engine thread owning the block tree, the
//! transaction pool, payload jobs, the Engine API server (JWT) and, in dev mode, the block
//! producer that stands in for a consensus client.
//!
//! Shutdown (SIGTERM/SIGINT or [`RunningNode::shutdown`]) stops the servers, persists the
//! in-memory canonical chain and closes MDBX, so a clean restart resumes at the same head.

pub mod dev;
pub mod engine;

use std::{net::SocketAddr, path::PathBuf, sync::Arc};

use alloy_rpc_types_engine::JwtSecret;
use jsonrpsee::server::{ServerBuilder, ServerConfig, ServerHandle};
use parking_lot::{Mutex, RwLock};
use tandem_shared::ChainSpec;
use tokio::sync::broadcast;
use tracing::{info, warn};

use crate::{
    engine_api::{EngineApi, JwtAuthLayer, engine_module},
    executor::Executor,
    fork_choice::{CanonicalChange, ChainView, EngineTree, TreeConfig},
    payload_builder::job::{JobConfig, PayloadJobs},
    rpc::{RpcConfig, RpcContext, eth_module},
    storage::Database,
    txpool::{
        Origin, PoolConfig, PoolContext, SharedPool, StateReader, TxPool,
        journal::{self, Journal},
        senders::SenderCache,
    },
};

pub use engine::EngineHandle;

/// Name of the local transaction journal in the data directory.
pub const JOURNAL_FILE: &str = "transactions.journal";

/// Everything a node needs to start.
#[derive(Debug, Clone)]
pub struct NodeConfig {
    /// Data directory (database, journal).
    pub datadir: PathBuf,
    /// The chain.
    pub spec: Arc<ChainSpec>,
    /// Engine API listen address.
    pub authrpc: SocketAddr,
    /// Engine API JWT secret.
    pub jwt: JwtSecret,
    /// Block tree limits.
    pub tree: TreeConfig,
    /// Pool limits.
    pub pool: PoolConfig,
    /// Payload job behaviour.
    pub jobs: JobConfig,
    /// Dev mode: produce blocks without a consensus client.
    pub dev: Option<dev::DevConfig>,
    /// JSON-RPC limits (public servers and the `eth_` subset on the Engine API port).
    pub rpc: RpcConfig,
}

/// Shared parts of a running node, for servers and tests.
#[derive(Debug, Clone)]
pub struct NodeHandle {
    /// The chain.
    pub spec: Arc<ChainSpec>,
    /// The database.
    pub db: Arc<Database>,
    /// Executor of the chain.
    pub executor: Executor,
    /// The canonical view for readers.
    pub view: Arc<RwLock<Arc<ChainView>>>,
    /// The transaction pool.
    pub pool: SharedPool,
    /// Recovered senders.
    pub senders: Arc<SenderCache>,
    /// The engine thread.
    pub engine: EngineHandle,
    /// Payload jobs.
    pub jobs: Arc<PayloadJobs>,
    /// Canonical chain changes, as they happen.
    pub changes: broadcast::Sender<Arc<CanonicalChange>>,
    /// Journal of local transactions.
    pub journal: Arc<Mutex<Journal>>,
    /// Hashes of transactions entering the pool (RPC, re-orgs): gossip and subscriptions.
    pub pending_txs: broadcast::Sender<alloy_primitives::TxHash>,
}

/// A started node.
#[derive(Debug)]
pub struct RunningNode {
    /// Its parts.
    pub handle: NodeHandle,
    /// The Engine API's bound address.
    pub authrpc: SocketAddr,
    /// The JSON-RPC context shared by every server of this node (and gossip).
    pub rpc: Arc<RpcContext>,
    auth_server: ServerHandle,
    engine_thread: Option<std::thread::JoinHandle<()>>,
    dev_task: Option<tokio::task::JoinHandle<()>>,
}

/// Failure to start a node.
#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    /// Opening or writing the database failed.
    #[error("database: {0}")]
    Storage(#[from] crate::storage::StorageError),
    /// The block tree could not start.
    #[error("engine: {0}")]
    Tree(#[from] crate::fork_choice::TreeError),
    /// A socket or thread could not be created.
    #[error("{what}: {source}")]
    Io {
        /// What was being done.
        what: String,
        /// The error.
        source: std::io::Error,
    },
    /// The journal could not be read or written.
    #[error(transparent)]
    Journal(#[from] crate::txpool::journal::JournalError),
    /// A server could not be set up.
    #[error("server: {0}")]
    Server(String),
}

/// Opens (or initialises) the database of `config.datadir` for `config.spec`.
pub fn open_database(config: &NodeConfig) -> Result<Database, NodeError> {
    let path = crate::storage::db_dir(&config.datadir);
    if path.exists() {
        let db = Database::open(&path)?;
        if db.genesis_hash() != config.spec.genesis_hash()
            || db.chain_id() != config.spec.chain_id()
        {
            return Err(NodeError::Server(format!(
                "the database in {} holds chain {} (genesis {}), not chain {} (genesis {})",
                path.display(),
                db.chain_id(),
                db.genesis_hash(),
                config.spec.chain_id(),
                config.spec.genesis_hash()
            )));
        }
        Ok(db)
    } else {
        std::fs::create_dir_all(&config.datadir).map_err(|source| NodeError::Io {
            what: format!("create {}", config.datadir.display()),
            source,
        })?;
        Ok(Database::init(&path, &config.spec)?)
    }
}

/// Starts a node inside the current tokio runtime.
pub async fn launch(config: NodeConfig) -> Result<RunningNode, NodeError> {
    let db = Arc::new(open_database(&config)?);
    let executor = Executor::new(config.spec.clone())
        .map_err(|e| NodeError::Server(format!("chain spec: {e}")))?;
    let senders = Arc::new(SenderCache::new(200_000));
    let tree = EngineTree::new(db.clone(), executor.clone(), senders.clone(), config.tree.clone())?;
    let view = tree.view_handle();
    let head = tree.head();
    let head_header = db
        .header(head.number)?
        .ok_or_else(|| NodeError::Server(format!("head block {} has no header", head.number)))?;
    let ctx = PoolContext::after(&config.spec, &head_header);
    let pool: SharedPool = Arc::new(RwLock::new(TxPool::new(config.pool.clone(), ctx)));
    let journal = Arc::new(Mutex::new(restore_journal(&config, &db, &pool, &senders)?));
    let (changes, _) = broadcast::channel(256);
    let (pending_txs, _) = broadcast::channel(16_384);
    let (engine, engine_thread) =
        engine::spawn(tree, pool.clone(), changes.clone(), pending_txs.clone())
            .map_err(|source| NodeError::Io { what: "start the engine thread".into(), source })?;
    let jobs =
        Arc::new(PayloadJobs::new(executor.clone(), db.clone(), pool.clone(), config.jobs.clone()));
    let handle = NodeHandle {
        spec: config.spec.clone(),
        db,
        executor,
        view,
        pool,
        senders,
        engine,
        jobs,
        changes,
        journal,
        pending_txs,
    };
    let api = Arc::new(EngineApi {
        spec: handle.spec.clone(),
        engine: handle.engine.clone(),
        jobs: handle.jobs.clone(),
        db: handle.db.clone(),
        view: handle.view.clone(),
    });
    let rpc = Arc::new(RpcContext::from_node(&handle, config.rpc.clone()));
    let mut module = engine_module(api).map_err(|e| NodeError::Server(e.to_string()))?;
    module
        .merge(engine_port_eth_methods(rpc.clone()))
        .map_err(|e| NodeError::Server(e.to_string()))?;
    // Full 30M-gas payloads exceed jsonrpsee's 10 MB default.
    let server_config = ServerConfig::builder()
        .max_request_body_size(64 * 1024 * 1024)
        .max_response_body_size(64 * 1024 * 1024)
        .build();
    let server = ServerBuilder::default()
        .set_config(server_config)
        .set_http_middleware(tower::ServiceBuilder::new().layer(JwtAuthLayer::new(config.jwt)))
        .build(config.authrpc)
        .await
        .map_err(|source| NodeError::Io {
            what: format!("listen on {} (authrpc)", config.authrpc),
            source,
        })?;
    let authrpc = server
        .local_addr()
        .map_err(|source| NodeError::Io { what: "authrpc address".into(), source })?;
    let auth_server = server.start(module);
    info!(%authrpc, "Engine API listening (JWT required)");
    let dev_task = config.dev.clone().map(|dev| tokio::spawn(dev::run(handle.clone(), dev)));
    Ok(RunningNode {
        handle,
        authrpc,
        rpc,
        auth_server,
        engine_thread: Some(engine_thread),
        dev_task,
    })
}

/// The `eth_` methods the Engine API spec requires on the authenticated port.
pub const ENGINE_PORT_ETH_METHODS: &[&str] = &[
    "eth_blockNumber",
    "eth_call",
    "eth_chainId",
    "eth_getCode",
    "eth_getBlockByHash",
    "eth_getBlockByNumber",
    "eth_getLogs",
    "eth_sendRawTransaction",
    "eth_syncing",
];

/// The JSON-RPC module reduced to [`ENGINE_PORT_ETH_METHODS`].
fn engine_port_eth_methods(rpc: Arc<RpcContext>) -> jsonrpsee::RpcModule<()> {
    let mut module = eth_module(rpc);
    let names: Vec<&'static str> = module.method_names().collect();
    for name in names {
        if !ENGINE_PORT_ETH_METHODS.contains(&name) {
            module.remove_method(name);
        }
    }
    module
}

/// Re-adds journaled local transactions (read record by record), rewrites the journal with
/// those still valid, and has it compacted to the pool's live local transactions whenever it
/// grows past [`journal::DEFAULT_COMPACT_BYTES`].
fn restore_journal(
    config: &NodeConfig,
    db: &Database,
    pool: &SharedPool,
    senders: &SenderCache,
) -> Result<Journal, NodeError> {
    let path = config.datadir.join(JOURNAL_FILE);
    let mut records = Journal::load(&path, config.pool.max_tx_bytes)?.peekable();
    let mut kept = Vec::new();
    if records.peek().is_some() {
        let state = db.latest()?;
        let reader = StateReader(&state);
        let mut pool = pool.write();
        for record in records {
            let Ok(tx) =
                <alloy_consensus::TxEnvelope as alloy_eips::eip2718::Decodable2718>::decode_2718(
                    &mut record.as_slice(),
                )
            else {
                warn!("skipping an undecodable journal record");
                continue;
            };
            let Ok(sender) = senders.recover(&tx) else { continue };
            if pool.add(tx, sender, Origin::Local, &reader).is_ok() {
                kept.push(record);
            }
        }
        info!(restored = kept.len(), "local transactions restored from the journal");
    }
    let pool = pool.clone();
    let live = move || {
        pool.read()
            .by_origin(Origin::Local)
            .iter()
            .map(|tx| alloy_eips::eip2718::Encodable2718::encoded_2718(&tx.tx))
            .collect()
    };
    Ok(Journal::rewrite(&path, kept.iter().map(Vec::as_slice))?
        .compact_above(journal::DEFAULT_COMPACT_BYTES, live))
}

impl RunningNode {
    /// Stops servers and producers, persists the canonical chain and closes the database.
    pub async fn shutdown(mut self) {
        if let Some(task) = self.dev_task.take() {
            task.abort();
        }
        self.handle.jobs.stop_all();
        let _ = self.auth_server.stop();
        self.auth_server.clone().stopped().await;
        match self.handle.engine.shutdown().await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => warn!(error = %e, "could not persist the canonical chain on shutdown"),
            Err(e) => warn!(error = %e, "engine already stopped"),
        }
        if let Some(thread) = self.engine_thread.take() {
            let _ = tokio::task::spawn_blocking(move || thread.join()).await;
        }
        info!("node stopped");
    }
}
