//! Start-up shared by validators and followers: the consensus genesis, the p2p key, the data
//! dir, the EL connection, and the services around the loop (libp2p with the range-sync
//! server, the executor task, the range-sync task, the status endpoint).

use super::executor::{self, ElRequest, ExecutorConfig};
use super::service::{NodeConfig, NodeError, Status};
use super::status::StatusServer;
use crate::core::Event;
use crate::crypto::{Ed25519Verifier, Verifier};
use crate::engine_client::{EngineClient, EngineConfig, EngineError};
use crate::genesis::ConsensusGenesis;
use crate::network::{self, NetEvent, NetworkConfig, NetworkHandle};
use crate::storage::{ChainMeta, CommittedChain, MdbxReader, MdbxStorage};
use crate::sync::{
    self, Anchor, SyncConfig, SyncHandle, SyncParams, SyncServer, VerifiedRange, VerifyContext,
};
use crate::types::{Block, ValidatorIndex, ValidatorSet};
use alloy_rpc_types_engine::{ForkchoiceState, PayloadStatusEnum};
use libp2p::PeerId;
use libp2p::identity::Keypair;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{mpsc, watch};
use tracing::{info, instrument, warn};

/// What every node is built from, read before anything talks to the network.
pub(super) struct Base {
    /// The consensus genesis.
    pub genesis: ConsensusGenesis,
    /// Its block.
    pub genesis_block: Block,
    /// The validator set.
    pub validators: Arc<ValidatorSet>,
    /// Verifier of the set's signatures.
    pub verifier: Arc<dyn Verifier>,
    /// The data dir's store.
    pub storage: MdbxStorage,
    /// The Engine API client (not called yet).
    pub engine: EngineClient,
    /// This node's libp2p key.
    pub p2p_key: Keypair,
    /// Validators' peer ids by index.
    pub peer_ids: Vec<PeerId>,
}

/// Reads the genesis and keys and opens the data dir (refusing another chain's).
pub(super) fn open(config: &NodeConfig) -> Result<Base, NodeError> {
    let cfg_err = |e: String| NodeError::Config(e);
    let genesis =
        ConsensusGenesis::from_file(&config.genesis).map_err(|e| cfg_err(e.to_string()))?;
    let p2p_key = if config.p2p_key.exists() {
        crate::keys::read_p2p_key(&config.p2p_key)
    } else {
        crate::keys::write_new_seed(&config.p2p_key).map(crate::keys::p2p_keypair)
    }
    .map_err(|e| cfg_err(e.to_string()))?;
    let validators = Arc::new(genesis.validator_set().map_err(|e| cfg_err(e.to_string()))?);
    let verifier: Arc<dyn Verifier> = Arc::new(
        Ed25519Verifier::new(validators.iter().map(|v| &v.public_key))
            .map_err(|e| cfg_err(e.to_string()))?,
    );
    let peer_ids = genesis
        .validators
        .iter()
        .map(|v| v.peer_id.parse().map_err(|e| cfg_err(format!("peer id {}: {e}", v.peer_id))))
        .collect::<Result<Vec<PeerId>, _>>()?;
    let genesis_block = genesis.block();
    let meta = ChainMeta { chain_id: genesis.chain_id, genesis_id: genesis_block.id() };
    let storage = MdbxStorage::open(&config.datadir.join("consensus"), meta)?;
    let jwt =
        tandem_shared::jwt::read_secret(&config.jwt_secret).map_err(|e| cfg_err(e.to_string()))?;
    let engine = EngineClient::new(EngineConfig::new(config.engine.clone(), jwt, genesis.forks))?;
    Ok(Base { genesis, genesis_block, validators, verifier, storage, engine, p2p_key, peer_ids })
}

/// Waits until the EL answers `exchangeCapabilities` and checks its genesis block. `Ok(false)`:
/// asked to stop first.
pub(super) async fn connect_el<F: Future<Output = &'static str>>(
    base: &Base,
    url: &str,
    mut shutdown: Pin<&mut F>,
) -> Result<bool, NodeError> {
    loop {
        tokio::select! {
            signal = shutdown.as_mut() => {
                info!(signal, "stopping before the execution client answered");
                return Ok(false);
            }
            r = base.engine.exchange_capabilities(tandem_shared::jwt::unix_now()) => match r {
                Ok(_) => break,
                Err(e @ (EngineError::MissingCapabilities { .. } | EngineError::Rpc { .. })) => {
                    return Err(e.into());
                }
                Err(e) => {
                    warn!("waiting for the execution client at {url}: {e}");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
            }
        }
    }
    base.engine.check_genesis(base.genesis.el_genesis_hash).await?;
    Ok(true)
}

/// The services around a node loop.
pub(super) struct Services {
    /// The network.
    pub net: NetworkHandle,
    /// Consensus messages from validators.
    pub net_rx: mpsc::Receiver<NetEvent>,
    /// Work for the executor task.
    pub el: mpsc::UnboundedSender<ElRequest>,
    /// The executor's answers.
    pub el_events: mpsc::Receiver<Event>,
    /// The committed tip, as published to the sync task.
    pub anchor: watch::Sender<Anchor>,
    /// Verified ranges from the sync task.
    pub ranges: mpsc::Receiver<VerifiedRange>,
    /// The sync task.
    pub syncer: SyncHandle,
    /// What `/status` shows.
    pub status: Arc<Mutex<Status>>,
    /// The status endpoint, while it runs.
    pub _status_server: Option<StatusServer>,
}

/// Starts libp2p (serving range sync from the data dir), the executor task (the EL's finalized
/// block is `tip`), the range-sync task and the status endpoint.
pub(super) async fn start_services(
    config: &NodeConfig,
    base: &Base,
    tip: &Block,
    sync_config: SyncConfig,
    validator: Option<ValidatorIndex>,
) -> Result<Services, NodeError> {
    let (net, net_rx) = network::spawn(NetworkConfig {
        keypair: base.p2p_key.clone(),
        listen_addr: config.p2p_addr,
        port: config.p2p_port,
        bootnodes: config.bootnodes.clone(),
        validators: base.peer_ids.clone(),
        chain_id: base.genesis.chain_id,
        sync_server: Some(SyncServer::new(Arc::new(base.storage.reader()))),
    })?;
    let (ev_tx, el_events) = mpsc::channel(1024);
    let delivered = Arc::new(AtomicU64::new(tip.height()));
    let el = executor::spawn(
        base.engine.clone(),
        ExecutorConfig {
            fee_recipient: config.fee_recipient,
            block_time: config.block_time,
            finalized: tip.payload.block_hash,
            delivered: delivered.clone(),
        },
        ev_tx,
    );
    let (anchor, anchor_rx) = watch::channel(Anchor::of(tip));
    let (ranges_tx, ranges) = mpsc::channel(2);
    let syncer = sync::spawn(SyncParams {
        net: net.clone(),
        verify: VerifyContext {
            chain_id: base.genesis.chain_id,
            genesis_id: base.genesis_block.id(),
            validators: base.validators.clone(),
            verifier: base.verifier.clone(),
        },
        config: sync_config,
        anchor: anchor_rx,
        el_delivered: delivered,
        ranges: ranges_tx,
        validator_peers: base.peer_ids.clone(),
    });
    let status = Arc::new(Mutex::new(Status {
        validator,
        committed_height: tip.height(),
        committed_id: tip.id(),
        head: tip.payload.block_hash,
        ..Status::default()
    }));
    let _status_server = match config.http {
        Some(addr) => Some(
            super::status::serve(addr, status.clone())
                .await
                .map_err(|e| NodeError::Config(format!("cannot serve status on {addr}: {e}")))?,
        ),
        None => None,
    };
    Ok(Services { net, net_rx, el, el_events, anchor, ranges, syncer, status, _status_server })
}

/// Committed blocks read per replay batch at start.
const REPLAY_BATCH: usize = 256;

/// The committed tip recorded in the data dir's committed index (genesis if none).
pub(super) fn committed_tip(reader: &MdbxReader, genesis: &Block) -> Result<Block, NodeError> {
    let height = reader.committed_tip()?;
    if height == 0 {
        return Ok(genesis.clone());
    }
    reader.committed_range(height, 1, usize::MAX)?.pop().map(|c| c.block).ok_or_else(|| {
        NodeError::Config(format!(
            "the data dir's committed index has no block at its tip {height}"
        ))
    })
}

/// Reconciles the EL with the committed tip before the node takes part in anything: asks the
/// EL for its latest block, finds the highest height at or below it where the EL's block is the
/// committed one ([`agreed_height`]: the EL may hold a certified block that was never
/// committed), replays with `newPayload` only the committed blocks above that (read by height
/// from the data dir's committed index, in batches), then points its fork choice at the tip
/// (`head = safe = finalized`). Returns how many blocks were replayed. The cost grows
/// with what the EL lost, not with the chain.
#[instrument(skip_all, fields(committed = tip.height()))]
pub(super) async fn replay(
    engine: &EngineClient,
    reader: &MdbxReader,
    tip: &Block,
) -> Result<u64, NodeError> {
    if tip.height() == 0 {
        return Ok(0);
    }
    let (el_number, el_hash) = engine.latest_block().await?;
    let agreed = agreed_height(engine, reader, el_number.min(tip.height())).await?;
    let mut next = agreed + 1;
    if next <= tip.height() {
        info!(el_head = el_number, %el_hash, agreed, committed = tip.height(),
            blocks = tip.height() - agreed,
            "replaying committed blocks the execution client lost");
    }
    let mut replayed = 0u64;
    while next <= tip.height() {
        let batch = reader.committed_range(next, REPLAY_BATCH, usize::MAX)?;
        let Some(last) = batch.last() else {
            warn!(height = next, "the committed index has no block here; replay stops");
            break;
        };
        next = last.block.height() + 1;
        for c in batch.iter().filter(|c| c.block.height() <= tip.height()) {
            let status = engine.new_payload(&c.block.payload).await?;
            if status.status != PayloadStatusEnum::Valid {
                warn!(
                    height = c.block.height(),
                    status = status.status.as_str(),
                    "replayed block not accepted"
                );
            }
            replayed += 1;
        }
    }
    let h = tip.payload.block_hash;
    let state = ForkchoiceState { head_block_hash: h, safe_block_hash: h, finalized_block_hash: h };
    let updated = engine.forkchoice_updated(state, tip.payload.timestamp, None).await?;
    if updated.payload_status.status != PayloadStatusEnum::Valid {
        warn!(status = updated.payload_status.status.as_str(), %h,
            "the execution client does not have the committed tip yet");
    }
    if replayed > 0 {
        info!(replayed, "execution client reconciled with the committed tip");
    }
    Ok(replayed)
}

/// The highest height at or below `from` where the EL's canonical block is the committed block
/// at that height (0, genesis, at worst). Probes `from`, then steps back 1, 2, 4, … heights
/// and returns the first match: usually `from` itself, after a crash that left a certified but
/// never committed block on top of the EL a step or two below. A probe above the committed
/// index counts as a mismatch.
async fn agreed_height(
    engine: &EngineClient,
    reader: &MdbxReader,
    from: u64,
) -> Result<u64, NodeError> {
    let mut height = from;
    let mut step = 1u64;
    while height > 0 {
        let ours = reader.committed_range(height, 1, usize::MAX)?.pop();
        let theirs = engine.block_hash_at(height).await?;
        match (ours, theirs) {
            (Some(c), Some(h)) if c.block.payload.block_hash == h => return Ok(height),
            (ours, theirs) => {
                warn!(height, ours = ?ours.map(|c| c.block.payload.block_hash), ?theirs,
                    "the execution client's block is not the committed one; looking lower");
            }
        }
        height = height.saturating_sub(step);
        step = step.saturating_mul(2);
    }
    Ok(0)
}
