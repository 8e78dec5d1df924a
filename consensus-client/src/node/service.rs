//! The running node: start-up checks, EL reconciliation, and the loop that feeds the core and
//! performs its actions.
//!
//! Start-up, in order: read the consensus genesis and keys; open the MDBX data dir (refusing
//! another chain's); wait for the EL (`exchangeCapabilities`, retried until it answers or the
//! node is asked to stop); refuse an EL whose block 0 is not the genesis'; read the core's state
//! from storage, bounded by the in-memory window whatever the chain's length
//! ([`crate::storage::recovery`]); replay into the EL only the committed blocks it lost, read by
//! height from the committed index (`startup::replay`); start libp2p (serving range sync from
//! the storage's committed index) and the range-sync task ([`crate::sync`]); build the core and
//! feed `Event::Start`. The loop then takes network messages, EL answers, verified sync ranges
//! and timers, one at a time, and performs the resulting actions with [`super::perform`]
//! (persist before send). Each network message's verdict (accepted, ignored, or refused as
//! proof of misbehaviour, [`crate::core::Reject::is_culpable`]) goes back to the network, which
//! forwards accepted gossip and scores down the sender of refused messages. After each step it
//! publishes the committed tip to the sync task; proposals far above it make the sync task poll
//! peers at once. A storage
//! failure stops the node. SIGTERM/SIGINT stop it cleanly between two events. Without
//! `--validator-key` the same start-up leads to the follower's loop instead (`follower`).

use super::executor::ElRequest;
use super::{Effects, perform, startup};
use crate::block_store::ChainWalk;
use crate::core::{Action, Core, CoreConfig, CoreParams, Event, Evidence, Timer};
use crate::crypto::Signer;
use crate::engine_client::{EngineClient, EngineError};
use crate::leader::RoundRobin;
use crate::network::{self, NetEvent, NetworkHandle, Verdict};
use crate::storage::{MdbxStorage, Storage};
use crate::sync::{Anchor, SyncConfig};
use crate::types::{Block, BlockId, Message, Payload, PayloadAttributes, Round, ValidatorIndex};
use alloy_primitives::{Address, B256};
use libp2p::Multiaddr;
use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::Duration;
use tokio::sync::{mpsc, watch};
use tracing::{error, info, warn};

/// Everything the node is started with.
#[derive(Debug, Clone)]
pub struct NodeConfig {
    /// Consensus data dir.
    pub datadir: PathBuf,
    /// Consensus genesis file.
    pub genesis: PathBuf,
    /// Validator key file; `None` runs a follower (syncs and drives its EL, never signs).
    pub validator_key: Option<PathBuf>,
    /// libp2p key file (created if missing).
    pub p2p_key: PathBuf,
    /// Engine API URL.
    pub engine: String,
    /// JWT secret file.
    pub jwt_secret: PathBuf,
    /// p2p listen address.
    pub p2p_addr: IpAddr,
    /// p2p port.
    pub p2p_port: u16,
    /// Bootnodes.
    pub bootnodes: Vec<Multiaddr>,
    /// Fee recipient of built payloads.
    pub fee_recipient: Address,
    /// Minimum interval between proposals.
    pub block_time: Duration,
    /// Status endpoint address.
    pub http: Option<SocketAddr>,
    /// Range sync tunables.
    pub sync: SyncConfig,
    /// Rounds of committed history kept in memory for peers' block fetches.
    pub retained_rounds: Round,
    /// Whether a validator whose safety data may be stale abstains (doppelganger protection).
    pub doppelganger_protection: bool,
}

/// What `/status` reports.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct Status {
    /// Current round.
    pub round: Round,
    /// Committed height.
    pub committed_height: u64,
    /// Committed block id.
    pub committed_id: BlockId,
    /// Payload hash of the newest certified block the EL was told about.
    pub head: B256,
    /// Connected peers.
    pub peers: usize,
    /// What the EL last answered.
    pub el: String,
    /// This validator's index (`null` for a follower).
    pub validator: Option<ValidatorIndex>,
    /// Blocks committed from range sync since start.
    pub synced: u64,
    /// Blocks read from the data dir at start (bounded by the in-memory window and the
    /// uncommitted rounds, not by the chain's length).
    pub recovered_blocks: usize,
    /// Peers banned for invalid messages right now.
    pub banned_peers: usize,
    /// The last round this validator will not sign in because its safety data may be stale
    /// (doppelganger protection), if it is abstaining.
    pub abstaining_through_round: Option<Round>,
}

/// Why the node stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    /// Start-up configuration problem.
    #[error("{0}")]
    Config(String),
    /// Engine API failure at start.
    #[error(transparent)]
    Engine(#[from] EngineError),
    /// Storage failure.
    #[error(transparent)]
    Storage(#[from] crate::storage::StorageError),
    /// Network start failure.
    #[error(transparent)]
    Network(#[from] network::NetworkError),
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

struct NodeEffects {
    net: NetworkHandle,
    el: mpsc::UnboundedSender<ElRequest>,
    timers: BTreeMap<(u64, u64), Timer>,
    seq: u64,
    head: B256,
    /// Ancestors to send the EL before each build, validation or fork-choice action of the
    /// batch being performed, in action order (see [`feeds`]).
    feeds: std::collections::VecDeque<Vec<Payload>>,
    last_progress: Option<std::time::Instant>,
    metrics: super::metrics::NodeMetrics,
}

impl Effects for NodeEffects {
    fn send(&mut self, to: ValidatorIndex, message: Message) {
        self.net.send(to, message);
    }
    fn broadcast(&mut self, message: Message) {
        self.net.broadcast(message);
    }
    fn set_timer(&mut self, timer: Timer, at_ms: u64) {
        self.seq += 1;
        self.timers.insert((at_ms, self.seq), timer);
    }
    fn build_payload(&mut self, round: Round, attributes: PayloadAttributes) {
        self.feed_next();
        let _ = self.el.send(ElRequest::Build { round, attributes });
    }
    fn validate_payload(&mut self, block_id: BlockId, payload: Payload) {
        self.feed_next();
        let _ = self.el.send(ElRequest::Validate { block_id, payload });
    }
    fn commit(&mut self, block_id: BlockId, block: Block) {
        info!(height = block.height(), round = block.round, %block_id,
            hash = %block.payload.block_hash, "committed");
        self.metrics.commits.increment(1);
        let _ = self.el.send(ElRequest::Commit { block: Box::new(block) });
    }
    fn fork_choice(&mut self, head: B256, finalized: B256) {
        self.feed_next();
        self.head = head;
        let _ = self.el.send(ElRequest::ForkChoice { head, finalized });
    }
    fn evidence(&mut self, evidence: Evidence) {
        warn!(?evidence, "equivocation evidence");
    }
}

impl NodeEffects {
    /// Sends the ancestors the next build, validation or fork choice needs (queued by [`step`]).
    fn feed_next(&mut self) {
        if let Some(payloads) = self.feeds.pop_front().filter(|p| !p.is_empty()) {
            let _ = self.el.send(ElRequest::Feed { payloads });
        }
    }
}

/// Runs the node until `shutdown` resolves or a fatal error: a validator with
/// `--validator-key`, a follower (the `follower` module) without.
pub async fn run(
    config: NodeConfig,
    shutdown: impl std::future::Future<Output = &'static str>,
) -> Result<(), NodeError> {
    let base = startup::open(&config)?;
    tokio::pin!(shutdown);
    if !startup::connect_el(&base, &config.engine, shutdown.as_mut()).await? {
        return Ok(());
    }
    match config.validator_key.clone() {
        Some(key) => run_validator(&config, &key, base, shutdown).await,
        None => super::follower::run(&config, base, shutdown).await,
    }
}

async fn run_validator<F: std::future::Future<Output = &'static str>>(
    config: &NodeConfig,
    validator_key: &std::path::Path,
    base: startup::Base,
    mut shutdown: std::pin::Pin<&mut F>,
) -> Result<(), NodeError> {
    let cfg_err = |e: String| NodeError::Config(e);
    let signer =
        crate::keys::read_validator_key(validator_key).map_err(|e| cfg_err(e.to_string()))?;
    let me = base.genesis.index_of(&signer.public_key()).ok_or_else(|| {
        cfg_err(format!(
            "validator key {} is not in the consensus genesis (run without --validator-key to follow the chain)",
            validator_key.display()
        ))
    })?;
    // Only the committed tip, the window below it and the uncommitted blocks are read: the
    // start-up cost does not grow with the chain.
    let recovery = base.storage.load(config.retained_rounds)?;
    let recovered_blocks = recovery.as_ref().map_or(0, |r| r.blocks.len());
    let tip = recovery
        .as_ref()
        .and_then(|r| r.committed.and_then(|c| r.blocks.iter().find(|b| b.id() == c)))
        .cloned()
        .unwrap_or_else(|| base.genesis_block.clone());
    info!(committed = tip.height(), recovered_blocks, "consensus state read from the data dir");
    // The EL gets the committed blocks it lost before the node takes part in any round.
    startup::replay(&base.engine, &base.storage.reader(), &tip).await?;
    let services =
        startup::start_services(config, &base, &tip, config.sync.clone(), Some(me)).await?;
    if let Ok(mut s) = services.status.lock() {
        s.recovered_blocks = recovered_blocks;
    }
    let startup::Services {
        net,
        mut net_rx,
        el,
        el_events: mut ev_rx,
        anchor: anchor_tx,
        ranges: mut ranges_rx,
        syncer,
        status,
        _status_server,
    } = services;
    let startup::Base { genesis, genesis_block, validators, verifier, mut storage, engine, .. } =
        base;
    // Without safety data, an execution client (or a committed tip) beyond genesis means this
    // consensus data dir was wiped on a running chain: doppelganger protection then abstains.
    let chain_has_run = recovery.is_none()
        && (tip.height() > 0
            || match engine.latest_block().await {
                Ok((number, _)) => number > 0,
                Err(e) => {
                    warn!(
                        "cannot read the execution client's head ({e}); assuming the chain has run"
                    );
                    true
                }
            });
    if !config.doppelganger_protection {
        warn!(
            "doppelganger protection is off: this validator signs at once, even if its safety data is stale"
        );
    } else if chain_has_run {
        warn!(
            "no consensus safety data but the chain has run: this validator signs nothing until \
            the network has passed the round it finds (doppelganger protection)"
        );
    }
    let mut core = Core::new(
        CoreParams {
            config: CoreConfig {
                retained_committed_rounds: config.retained_rounds,
                chain_has_run,
                doppelganger_protection: config.doppelganger_protection,
                ..genesis.core_config()
            },
            me,
            validators: validators.clone(),
            signer: Box::new(signer),
            verifier,
            election: Box::new(RoundRobin::new(validators.len())),
            genesis: genesis_block,
        },
        recovery,
    )
    .map_err(|e| cfg_err(e.to_string()))?;
    let mut fx = NodeEffects {
        net: net.clone(),
        el,
        timers: BTreeMap::new(),
        seq: 0,
        head: tip.payload.block_hash,
        feeds: Default::default(),
        last_progress: None,
        metrics: super::metrics::NodeMetrics::new(),
    };
    info!(validator = me, round = core.round(), committed = core.committed_height(),
        peer_id = %net.peer_id, "consensus starting");
    let actions = core.handle(now_ms(), Event::Start);
    step(&core, actions, &mut storage, &mut fx)?;
    loop {
        let next_timer = fx.timers.keys().next().map(|(at, _)| *at);
        let sleep = tokio::time::sleep(Duration::from_millis(
            next_timer.map_or(1_000, |at| at.saturating_sub(now_ms())),
        ));
        let event = tokio::select! {
            signal = shutdown.as_mut() => {
                info!(signal, round = core.round(), committed = core.committed_height(), "stopping");
                return Ok(());
            }
            Some(ev) = net_rx.recv() => {
                let actions = match ev {
                    NetEvent::Message(ev) => {
                        if let Message::Proposal(p) = &ev.message {
                            syncer.hint(p.block.height());
                        }
                        let actions = core
                            .handle(now_ms(), Event::Message { from: ev.from, message: ev.message });
                        net.verdict(ev.origin, verdict(&core));
                        actions
                    }
                    NetEvent::Connected(v) => core.handle(now_ms(), Event::PeerConnected(v)),
                };
                step(&core, actions, &mut storage, &mut fx)?;
                update_status(&status, &core, &fx, &engine);
                publish_anchor(&core, &anchor_tx, &syncer);
                continue;
            }
            Some(ev) = ev_rx.recv() => ev,
            Some(range) = ranges_rx.recv() => Event::Synced { blocks: range.blocks },
            _ = sleep => {
                let now = now_ms();
                let due: Vec<(u64, u64)> = fx.timers.range(..=(now, u64::MAX)).map(|(k, _)| *k).collect();
                for key in due {
                    if let Some(timer) = fx.timers.remove(&key) {
                        let actions = core.handle(now_ms(), Event::Timer(timer));
                        step(&core, actions, &mut storage, &mut fx)?;
                    }
                }
                update_status(&status, &core, &fx, &engine);
                publish_anchor(&core, &anchor_tx, &syncer);
                continue;
            }
        };
        let actions = core.handle(now_ms(), event);
        step(&core, actions, &mut storage, &mut fx)?;
        update_status(&status, &core, &fx, &engine);
        publish_anchor(&core, &anchor_tx, &syncer);
    }
}

/// What the core made of the message it just handled, for the peer that delivered it.
fn verdict(core: &Core) -> Verdict {
    match core.last_rejection() {
        None => Verdict::Accept,
        Some(reject) if reject.is_culpable() => Verdict::Reject(reject.to_string()),
        Some(_) => Verdict::Ignore,
    }
}

/// The committed tip as range sync sees it.
fn anchor_of(core: &Core) -> Anchor {
    let id = core.committed_id();
    match core.block_store().get(&id) {
        Some(b) => Anchor::with_id(id, b),
        None => Anchor { id, height: core.committed_height(), round: 0, payload_hash: B256::ZERO },
    }
}

/// Publishes the committed tip and the certified height (which backs peers' claims) to the
/// sync task.
fn publish_anchor(core: &Core, anchor: &watch::Sender<Anchor>, syncer: &crate::sync::SyncHandle) {
    if anchor.borrow().id != core.committed_id() {
        anchor.send_replace(anchor_of(core));
    }
    syncer.certified(core.certified_height());
}

/// For each build, validation or fork-choice action of a batch, in order, the certified,
/// uncommitted ancestors the EL may lack (blocks the core fetched without executor validation),
/// parents first. [`NodeEffects`] sends each list right before its action, so it follows the
/// batch's commits in the executor's queue; the executor skips payloads it already validated,
/// and a list that failed (the EL lacked a parent) is sent again with the next action.
fn feeds(core: &Core, actions: &[Action]) -> std::collections::VecDeque<Vec<Payload>> {
    let mut out = std::collections::VecDeque::new();
    for a in actions {
        let tip = match a {
            Action::BuildPayload { attributes, .. } => attributes.parent_beacon_block_root,
            Action::ValidatePayload { payload, .. } => payload.parent_beacon_block_root,
            Action::ForkChoice { .. } => core.safety_data().high_qc.block_id,
            _ => continue,
        };
        let payloads = match core.block_store().walk_to_committed(tip) {
            ChainWalk::Complete(ids) => ids
                .iter()
                .filter_map(|id| core.block_store().get(id))
                .map(|b| b.payload.clone())
                .collect(),
            _ => Vec::new(),
        };
        out.push_back(payloads);
    }
    out
}

/// Logs catch-up progress when one step commits several blocks (height, target, blocks/s).
fn log_progress(core: &Core, actions: &[Action], fx: &mut NodeEffects) {
    let commits = actions.iter().filter(|a| matches!(a, Action::Commit { .. })).count();
    if commits < 2 {
        return;
    }
    let now = std::time::Instant::now();
    let elapsed = fx.last_progress.map_or(0.0, |t| now.duration_since(t).as_secs_f64());
    fx.last_progress = Some(now);
    let target =
        core.block_store().get(&core.safety_data().high_qc.block_id).map_or(0, |b| b.height());
    let rate = if elapsed > 0.0 { commits as f64 / elapsed } else { 0.0 };
    info!(
        height = core.committed_height(),
        target,
        blocks = commits,
        blocks_per_sec = format!("{rate:.1}"),
        "catching up"
    );
}

fn step(
    core: &Core,
    actions: Vec<Action>,
    storage: &mut MdbxStorage,
    fx: &mut NodeEffects,
) -> Result<(), NodeError> {
    fx.feeds = feeds(core, &actions);
    log_progress(core, &actions, fx);
    perform(actions, storage, fx).map_err(|e| {
        error!("storage failed, stopping the validator: {e}");
        NodeError::Storage(e)
    })
}

fn update_status(status: &Mutex<Status>, core: &Core, fx: &NodeEffects, engine: &EngineClient) {
    if let Ok(mut s) = status.lock() {
        s.round = core.round();
        s.committed_height = core.committed_height();
        s.committed_id = core.committed_id();
        s.head = fx.head;
        s.peers = fx.net.peer_count();
        s.banned_peers = fx.net.banned_count();
        s.el = engine.el_state().as_str().to_string();
        s.synced = core.stats().synced;
        s.abstaining_through_round = core.abstaining_through();
    }
    fx.metrics.round.set(core.round() as f64);
    fx.metrics.committed_height.set(core.committed_height() as f64);
    fx.metrics.peers.set(fx.net.peer_count() as f64);
}
