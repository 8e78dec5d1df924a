//! Peer-to-peer networking over libp2p: TCP + noise + yamux.
//!
//! - Proposals and timeouts travel on gossipsub topics (`/tandem/<chain id>/proposal`,
//!   `…/timeout`), messages signed by their author's libp2p key (strict validation), with
//!   `max_transmit_size` set for full payloads ([`MAX_MESSAGE_SIZE`]). A publish with no
//!   subscribed peer (a one-validator network, or peers not connected yet) is normal: the
//!   protocol retransmits what matters.
//! - Every other message (votes to the next leader, sync info, block requests and responses)
//!   is a request-response exchange ([`codec`]) to the validator's peer id; the response is an
//!   empty acknowledgement. The core answers a block request with its own `Send`.
//! - Range sync ([`crate::sync`]) is a second request-response protocol
//!   ([`SYNC_PROTOCOL`]) open to every peer, followers included: requests are answered by the
//!   node's [`SyncServer`] on a blocking thread (at most [`MAX_CONCURRENT_SERVES`] at once and
//!   [`MAX_CONCURRENT_SERVES_PER_PEER`] for one peer, `Busy` beyond), and [`NetworkHandle::sync`] sends one request and awaits the decoded answer (time
//!   out after [`SYNC_REQUEST_TIMEOUT`]). Response sizes are bounded by the protocol's limits.
//! - Identity: validator i is the peer id listed for it in the consensus genesis. Messages from
//!   peers that are not validators are dropped (a follower's votes never count).
//! - Peers find each other from one bootnode with identify + kademlia; bootnodes and validators
//!   that drop are redialled with exponential back-off (1 s doubling to 30 s); ping keeps idle
//!   connections alive.
//! - A peer that sends undecodable messages, gossip from a non-validator author, or a sync
//!   response that fails verification ([`NetworkHandle::report`]) is scored down; at
//!   [`BAN_SCORE`] it is disconnected and ignored for [`BAN_SECS`].
//! - A message that decodes but that consensus refuses as proof of misbehaviour (a forged
//!   signature, a certificate without a valid quorum, a proposal out of its leader's round)
//!   comes back as [`Verdict::Reject`] through [`NetworkHandle::verdict`]: gossip is rejected
//!   (not forwarded, gossipsub's invalid-delivery penalty) and the delivering peer takes the
//!   same strike. Gossip is forwarded only after consensus accepted it.
//! - Gossipsub's own peer scoring is on ([`gossip_scoring`]): that score is the application
//!   score above (one invalid message puts a peer below the gossip threshold, four below the
//!   graylist, where gossipsub ignores it, the fifth bans it) plus gossipsub's penalty for
//!   each message this node rejected on validation. Mesh-delivery penalties and the
//!   same-IP penalty are off: consensus topics are quiet between rounds, and a devnet runs
//!   every node on one address.
//!
//! - Connections are bounded ([`connection_limits`]): per peer, in all, inbound, and pending;
//!   each peer's direct messages are metered ([`DIRECT_PER_SEC`], burst [`DIRECT_BURST`]),
//!   beyond which they are dropped before decoding.
//!
//! One task owns the swarm ([`spawn`]); the node talks to it through [`NetworkHandle`] and
//! receives [`NetEvent`]s on a channel.

pub mod codec;

use crate::sync::SyncServer;
use crate::sync::protocol::{
    MAX_SYNC_REQUEST_BYTES, MAX_SYNC_RESPONSE_BYTES, SYNC_PROTOCOL, SyncRequest, SyncResponse,
};
use crate::types::{Codec as _, Message, ValidatorIndex};
use codec::{DIRECT_PROTOCOL, DirectCodec};
use futures::StreamExt;
use libp2p::gossipsub::{self, IdentTopic, MessageAcceptance, MessageAuthenticity};
use libp2p::identity::Keypair;
use libp2p::multiaddr::Protocol;
use libp2p::request_response::{self, OutboundRequestId, ProtocolSupport, ResponseChannel};
use libp2p::swarm::{NetworkBehaviour, SwarmEvent};
use libp2p::{Multiaddr, PeerId, StreamProtocol, Swarm, identify, kad, noise, ping, tcp, yamux};
use std::collections::{HashMap, HashSet};
use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};
use tandem_shared::rate::TokenBucket;
use thiserror::Error;
use tokio::sync::{mpsc, oneshot};
use tracing::{debug, info, warn};

/// Largest consensus message (a proposal with a full payload), in bytes.
pub const MAX_MESSAGE_SIZE: usize = 10 * 1024 * 1024;
// The core's block responses must fit a direct frame, envelope and certificates included.
const _: () =
    assert!(crate::types::message::MAX_BLOCK_RESPONSE_BYTES + 256 * 1024 <= MAX_MESSAGE_SIZE);
/// Score at which a peer is disconnected.
pub const BAN_SCORE: i32 = -100;
/// How long a banned peer is ignored.
pub const BAN_SECS: u64 = 60;
/// Penalty for one invalid message.
const INVALID_PENALTY: i32 = 20;
/// Most sync requests served at once; more are answered `Busy`.
pub const MAX_CONCURRENT_SERVES: usize = 4;
/// Most sync requests of one peer served at once: one peer cannot take every serve slot.
pub const MAX_CONCURRENT_SERVES_PER_PEER: usize = 1;
/// Most connections with one peer (a redial may overlap the old connection briefly).
pub const MAX_CONNECTIONS_PER_PEER: u32 = 2;
/// Most established connections in all (validators, followers and their dials).
pub const MAX_CONNECTIONS: u32 = 256;
/// Most established inbound connections (room is kept for our own dials to validators).
pub const MAX_INBOUND_CONNECTIONS: u32 = 192;
/// Most connections being set up at once, each way.
pub const MAX_PENDING_CONNECTIONS: u32 = 32;
/// Direct messages a peer may send per second, on average (a validator sends a few votes,
/// sync infos and block requests a round).
pub const DIRECT_PER_SEC: u32 = 100;
/// Direct messages a peer may send in a burst.
pub const DIRECT_BURST: u32 = 200;
/// How long a sync request may take before it fails.
pub const SYNC_REQUEST_TIMEOUT: Duration = Duration::from_secs(20);

/// Network settings.
#[derive(Debug, Clone)]
pub struct NetworkConfig {
    /// This node's libp2p identity.
    pub keypair: Keypair,
    /// Address to listen on.
    pub listen_addr: IpAddr,
    /// TCP port (0: ephemeral).
    pub port: u16,
    /// Bootnode addresses (`/ip4/…/tcp/…/p2p/<peer id>`).
    pub bootnodes: Vec<Multiaddr>,
    /// Peer id of each validator, by index.
    pub validators: Vec<PeerId>,
    /// Chain id (part of the topic and protocol names).
    pub chain_id: u64,
    /// Answers peers' range-sync requests (`None`: every request is answered `Busy`).
    pub sync_server: Option<SyncServer>,
}

/// Why the network could not start.
#[derive(Debug, Error)]
pub enum NetworkError {
    /// Building the transport or a behaviour failed.
    #[error("libp2p set-up: {0}")]
    Setup(String),
    /// Listening failed.
    #[error("cannot listen on {addr}: {reason}")]
    Listen {
        /// The address.
        addr: String,
        /// Why.
        reason: String,
    },
}

/// Why a sync request got no usable answer.
#[derive(Debug, Error)]
pub enum SyncFailure {
    /// No answer: dial failure, time-out, connection closed, unsupported protocol.
    #[error("no answer from {peer}: {reason}")]
    Network {
        /// The peer.
        peer: PeerId,
        /// What happened.
        reason: String,
    },
    /// The answer did not decode (the peer is penalized).
    #[error("undecodable sync response from {peer}: {reason}")]
    Undecodable {
        /// The peer.
        peer: PeerId,
        /// The decode error.
        reason: String,
    },
    /// The network task has stopped.
    #[error("the network task has stopped")]
    Stopped,
}

/// What the network task hands to the node.
#[derive(Debug)]
#[allow(
    clippy::large_enum_variant,
    reason = "almost every event is a message, moved once through a bounded channel"
)]
pub enum NetEvent {
    /// A consensus message from an authenticated validator.
    Message(Delivery),
    /// A validator's peer connected (its first connection): it may have missed messages.
    Connected(ValidatorIndex),
}

/// A consensus message from an authenticated validator.
#[derive(Debug)]
pub struct Delivery {
    /// The validator it came from (the gossip author, or the direct peer).
    pub from: ValidatorIndex,
    /// The message.
    pub message: Message,
    /// How it arrived: what [`NetworkHandle::verdict`] reports on.
    pub origin: Origin,
}

/// How a consensus message arrived.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    /// On a gossip topic, forwarded by `source` (held back from other peers until a verdict).
    Gossip {
        /// Gossipsub's id of the message.
        id: gossipsub::MessageId,
        /// The peer that delivered it to us.
        source: PeerId,
    },
    /// Sent directly by `peer`.
    Direct {
        /// The sending peer.
        peer: PeerId,
    },
}

/// What the consensus core made of a message it was handed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Valid: gossip is forwarded to other peers.
    Accept,
    /// Not useful now (stale, duplicate, not yet justified), but not proof of misbehaviour:
    /// gossip is not forwarded, nobody is penalized.
    Ignore,
    /// Proof of misbehaviour (a forged signature, a certificate without quorum, …): gossip is
    /// rejected (gossipsub scores the forwarder down) and the delivering peer takes a strike.
    Reject(String),
}

#[derive(Debug)]
enum NetCommand {
    Send {
        to: ValidatorIndex,
        message: Message,
    },
    Broadcast {
        message: Message,
    },
    Sync {
        peer: PeerId,
        request: SyncRequest,
        reply: oneshot::Sender<Result<SyncResponse, SyncFailure>>,
    },
    Report {
        peer: PeerId,
        reason: String,
    },
    GossipScore {
        peer: PeerId,
        reply: oneshot::Sender<Option<f64>>,
    },
    Verdict {
        origin: Origin,
        verdict: Verdict,
    },
}

/// Handle to the network task. Sends never block; they are dropped if the task has stopped.
#[derive(Debug, Clone)]
pub struct NetworkHandle {
    tx: mpsc::UnboundedSender<NetCommand>,
    peers: Arc<AtomicUsize>,
    connected: Arc<std::sync::Mutex<Vec<PeerId>>>,
    banned: Arc<AtomicUsize>,
    /// This node's peer id.
    pub peer_id: PeerId,
    listen: Arc<std::sync::Mutex<Vec<Multiaddr>>>,
}

impl NetworkHandle {
    /// Sends `message` to validator `to` (request-response).
    pub fn send(&self, to: ValidatorIndex, message: Message) {
        let _ = self.tx.send(NetCommand::Send { to, message });
    }
    /// Publishes `message` on its gossip topic.
    pub fn broadcast(&self, message: Message) {
        let _ = self.tx.send(NetCommand::Broadcast { message });
    }
    /// Connected peers.
    pub fn peer_count(&self) -> usize {
        self.peers.load(Ordering::Relaxed)
    }
    /// Peer ids of the connected peers.
    pub fn connected_peers(&self) -> Vec<PeerId> {
        self.connected.lock().map(|c| c.clone()).unwrap_or_default()
    }
    /// Sends a range-sync request to `peer` and waits for its decoded answer.
    pub async fn sync(
        &self,
        peer: PeerId,
        request: SyncRequest,
    ) -> Result<SyncResponse, SyncFailure> {
        let (reply, rx) = oneshot::channel();
        self.tx
            .send(NetCommand::Sync { peer, request, reply })
            .map_err(|_| SyncFailure::Stopped)?;
        rx.await.map_err(|_| SyncFailure::Stopped)?
    }
    /// Gossipsub's score of `peer` (`None` if unknown or the task stopped).
    pub async fn gossip_score(&self, peer: PeerId) -> Option<f64> {
        let (reply, rx) = oneshot::channel();
        self.tx.send(NetCommand::GossipScore { peer, reply }).ok()?;
        rx.await.ok().flatten()
    }
    /// Peers currently banned for invalid messages.
    pub fn banned_count(&self) -> usize {
        self.banned.load(Ordering::Relaxed)
    }
    /// Reports what consensus made of a message from [`NetEvent`]: gossip is accepted
    /// (forwarded), ignored or rejected; a rejected message scores its deliverer down like
    /// [`NetworkHandle::report`]. Every gossip event must get a verdict.
    pub fn verdict(&self, origin: Origin, verdict: Verdict) {
        let _ = self.tx.send(NetCommand::Verdict { origin, verdict });
    }
    /// Scores `peer` down for sending invalid data (see the module docs).
    pub fn report(&self, peer: PeerId, reason: impl Into<String>) {
        let _ = self.tx.send(NetCommand::Report { peer, reason: reason.into() });
    }
    /// Addresses the node listens on (known once the listener is up).
    pub fn listen_addrs(&self) -> Vec<Multiaddr> {
        self.listen.lock().map(|l| l.clone()).unwrap_or_default()
    }
}

#[derive(NetworkBehaviour)]
struct Behaviour {
    limits: libp2p::connection_limits::Behaviour,
    gossipsub: gossipsub::Behaviour,
    direct: request_response::Behaviour<DirectCodec>,
    sync: request_response::Behaviour<DirectCodec>,
    identify: identify::Behaviour,
    ping: ping::Behaviour,
    kad: kad::Behaviour<kad::store::MemoryStore>,
}

struct Redial {
    addr: Multiaddr,
    peer: Option<PeerId>,
    next: Instant,
    delay: Duration,
}

/// A sync answer computed on a blocking thread, back to the swarm task.
struct Served {
    peer: PeerId,
    channel: ResponseChannel<Vec<u8>>,
    response: Vec<u8>,
}

struct Task {
    swarm: Swarm<Behaviour>,
    validators: HashMap<PeerId, ValidatorIndex>,
    by_index: Vec<PeerId>,
    proposal_topic: IdentTopic,
    timeout_topic: IdentTopic,
    connected: HashSet<PeerId>,
    peers: Arc<AtomicUsize>,
    connected_list: Arc<std::sync::Mutex<Vec<PeerId>>>,
    sync_server: Option<SyncServer>,
    pending_sync: HashMap<OutboundRequestId, oneshot::Sender<Result<SyncResponse, SyncFailure>>>,
    serving: Arc<AtomicUsize>,
    /// Sync requests being served, by peer.
    serving_by_peer: HashMap<PeerId, usize>,
    served_tx: mpsc::UnboundedSender<Served>,
    listen: Arc<std::sync::Mutex<Vec<Multiaddr>>>,
    scores: HashMap<PeerId, i32>,
    banned: HashMap<PeerId, Instant>,
    banned_count: Arc<AtomicUsize>,
    redial: Vec<Redial>,
    validator_dial: (Instant, Duration),
    events: mpsc::Sender<NetEvent>,
    /// (kind, reason) of publish failures already logged.
    publish_failures_logged: HashSet<(&'static str, &'static str)>,
    /// Per peer: direct messages it may still send.
    direct_quota: HashMap<PeerId, TokenBucket>,
}

/// The swarm's connection limits: one peer, or a crowd of them, cannot exhaust the node's
/// connections or file descriptors.
pub fn connection_limits() -> libp2p::connection_limits::ConnectionLimits {
    libp2p::connection_limits::ConnectionLimits::default()
        .with_max_established_per_peer(Some(MAX_CONNECTIONS_PER_PEER))
        .with_max_established(Some(MAX_CONNECTIONS))
        .with_max_established_incoming(Some(MAX_INBOUND_CONNECTIONS))
        .with_max_pending_incoming(Some(MAX_PENDING_CONNECTIONS))
        .with_max_pending_outgoing(Some(MAX_PENDING_CONNECTIONS))
}

/// Gossipsub peer-score parameters for the consensus topics (see the module docs).
pub fn gossip_scoring(
    topics: &[&IdentTopic],
) -> (gossipsub::PeerScoreParams, gossipsub::PeerScoreThresholds) {
    let topic = gossipsub::TopicScoreParams {
        topic_weight: 1.0,
        // P3/P3b: a quiet topic is not a misbehaving peer.
        mesh_message_deliveries_weight: 0.0,
        mesh_failure_penalty_weight: 0.0,
        // P4: -5 × (rejected messages)², decaying by 10 % a second.
        invalid_message_deliveries_weight: -5.0,
        invalid_message_deliveries_decay: 0.9,
        ..gossipsub::TopicScoreParams::default()
    };
    let params = gossipsub::PeerScoreParams {
        topics: topics.iter().map(|t| (t.hash(), topic.clone())).collect(),
        app_specific_weight: 1.0,
        ip_colocation_factor_weight: 0.0,
        // A few protocol hiccups (a GRAFT during back-off after a reconnect) cost nothing.
        behaviour_penalty_threshold: 6.0,
        ..gossipsub::PeerScoreParams::default()
    };
    let thresholds = gossipsub::PeerScoreThresholds {
        gossip_threshold: -10.0,
        publish_threshold: -50.0,
        graylist_threshold: -80.0,
        ..gossipsub::PeerScoreThresholds::default()
    };
    (params, thresholds)
}

fn peer_of(addr: &Multiaddr) -> Option<PeerId> {
    addr.iter().find_map(|p| match p {
        Protocol::P2p(id) => Some(id),
        _ => None,
    })
}

/// Starts the network task; returns its handle and the stream of incoming messages.
pub fn spawn(
    config: NetworkConfig,
) -> Result<(NetworkHandle, mpsc::Receiver<NetEvent>), NetworkError> {
    let setup = |e: String| NetworkError::Setup(e);
    let chain = config.chain_id;
    let mut swarm = libp2p::SwarmBuilder::with_existing_identity(config.keypair.clone())
        .with_tokio()
        .with_tcp(tcp::Config::default().nodelay(true), noise::Config::new, yamux::Config::default)
        .map_err(|e| setup(e.to_string()))?
        .with_behaviour(|key| {
            let gossip_config = gossipsub::ConfigBuilder::default()
                .max_transmit_size(MAX_MESSAGE_SIZE)
                .validation_mode(gossipsub::ValidationMode::Strict)
                .validate_messages()
                .heartbeat_interval(Duration::from_millis(500))
                .message_id_fn(|m: &gossipsub::Message| {
                    use sha2::Digest;
                    gossipsub::MessageId::from(sha2::Sha256::digest(&m.data)[..20].to_vec())
                })
                .build()
                .map_err(|e| e.to_string())?;
            let gossipsub =
                gossipsub::Behaviour::new(MessageAuthenticity::Signed(key.clone()), gossip_config)?;
            let direct = request_response::Behaviour::with_codec(
                DirectCodec { max_request: MAX_MESSAGE_SIZE, max_response: MAX_MESSAGE_SIZE },
                [(DIRECT_PROTOCOL, ProtocolSupport::Full)],
                request_response::Config::default().with_request_timeout(Duration::from_secs(10)),
            );
            let sync = request_response::Behaviour::with_codec(
                DirectCodec {
                    max_request: MAX_SYNC_REQUEST_BYTES,
                    max_response: MAX_SYNC_RESPONSE_BYTES,
                },
                [(SYNC_PROTOCOL, ProtocolSupport::Full)],
                request_response::Config::default().with_request_timeout(SYNC_REQUEST_TIMEOUT),
            );
            let identify = identify::Behaviour::new(identify::Config::new(
                format!("/tandem/{chain}/1"),
                key.public(),
            ));
            let ping = ping::Behaviour::new(ping::Config::new());
            let peer_id = key.public().to_peer_id();
            let mut kad = kad::Behaviour::with_config(
                peer_id,
                kad::store::MemoryStore::new(peer_id),
                kad::Config::new(StreamProtocol::new("/tandem/kad/1")),
            );
            kad.set_mode(Some(kad::Mode::Server));
            let limits = libp2p::connection_limits::Behaviour::new(connection_limits());
            Ok(Behaviour { limits, gossipsub, direct, sync, identify, ping, kad })
        })
        .map_err(|e| setup(e.to_string()))?
        .with_swarm_config(|c| c.with_idle_connection_timeout(Duration::from_secs(3600)))
        .build();

    let listen: Multiaddr = format!(
        "/{}/{}/tcp/{}",
        if config.listen_addr.is_ipv4() { "ip4" } else { "ip6" },
        config.listen_addr,
        config.port
    )
    .parse()
    .map_err(|e: libp2p::multiaddr::Error| setup(e.to_string()))?;
    swarm
        .listen_on(listen.clone())
        .map_err(|e| NetworkError::Listen { addr: listen.to_string(), reason: e.to_string() })?;

    let proposal_topic = IdentTopic::new(format!("/tandem/{chain}/proposal"));
    let timeout_topic = IdentTopic::new(format!("/tandem/{chain}/timeout"));
    for t in [&proposal_topic, &timeout_topic] {
        swarm.behaviour_mut().gossipsub.subscribe(t).map_err(|e| setup(e.to_string()))?;
    }
    let (params, thresholds) = gossip_scoring(&[&proposal_topic, &timeout_topic]);
    swarm.behaviour_mut().gossipsub.with_peer_score(params, thresholds).map_err(setup)?;
    let me = *swarm.local_peer_id();
    let mut redial = Vec::new();
    for addr in &config.bootnodes {
        let peer = peer_of(addr);
        if peer == Some(me) {
            continue;
        }
        if let Some(p) = peer {
            swarm.behaviour_mut().kad.add_address(&p, addr.clone());
        }
        redial.push(Redial {
            addr: addr.clone(),
            peer,
            next: Instant::now(),
            delay: Duration::from_secs(1),
        });
    }
    let validators = config
        .validators
        .iter()
        .enumerate()
        .filter_map(|(i, p)| ValidatorIndex::try_from(i).ok().map(|i| (*p, i)))
        .collect();
    let (tx, rx) = mpsc::unbounded_channel();
    let (events_tx, events_rx) = mpsc::channel(4096);
    let peers = Arc::new(AtomicUsize::new(0));
    let connected_list = Arc::new(std::sync::Mutex::new(Vec::new()));
    let listen_addrs = Arc::new(std::sync::Mutex::new(Vec::new()));
    let (served_tx, served_rx) = mpsc::unbounded_channel();
    let banned_count = Arc::new(AtomicUsize::new(0));
    let handle = NetworkHandle {
        tx,
        peers: peers.clone(),
        connected: connected_list.clone(),
        banned: banned_count.clone(),
        peer_id: me,
        listen: listen_addrs.clone(),
    };
    let task = Task {
        swarm,
        validators,
        by_index: config.validators,
        proposal_topic,
        timeout_topic,
        connected: HashSet::new(),
        peers,
        connected_list,
        sync_server: config.sync_server,
        pending_sync: HashMap::new(),
        serving: Arc::new(AtomicUsize::new(0)),
        serving_by_peer: HashMap::new(),
        served_tx,
        listen: listen_addrs,
        scores: HashMap::new(),
        banned: HashMap::new(),
        banned_count,
        redial,
        validator_dial: (Instant::now(), Duration::from_secs(1)),
        events: events_tx,
        publish_failures_logged: HashSet::new(),
        direct_quota: HashMap::new(),
    };
    tokio::spawn(task.run(rx, served_rx));
    Ok((handle, events_rx))
}

impl Task {
    async fn run(
        mut self,
        mut commands: mpsc::UnboundedReceiver<NetCommand>,
        mut served: mpsc::UnboundedReceiver<Served>,
    ) {
        let mut tick = tokio::time::interval(Duration::from_millis(500));
        loop {
            tokio::select! {
                cmd = commands.recv() => match cmd {
                    Some(cmd) => self.command(cmd),
                    None => return,
                },
                Some(Served { peer, channel, response }) = served.recv() => {
                    if let Some(n) = self.serving_by_peer.get_mut(&peer) {
                        *n = n.saturating_sub(1);
                        if *n == 0 {
                            self.serving_by_peer.remove(&peer);
                        }
                    }
                    let _ = self.swarm.behaviour_mut().sync.send_response(channel, response);
                }
                event = self.swarm.select_next_some() => self.swarm_event(event),
                _ = tick.tick() => self.redial(),
            }
        }
    }

    fn command(&mut self, cmd: NetCommand) {
        match cmd {
            NetCommand::Send { to, message } => {
                let Some(peer) = self.by_index.get(usize::from(to)).copied() else {
                    return;
                };
                if peer == *self.swarm.local_peer_id() {
                    return;
                }
                self.swarm.behaviour_mut().direct.send_request(&peer, message.encode());
            }
            NetCommand::Broadcast { message } => {
                let topic = match message {
                    Message::Proposal(_) => self.proposal_topic.clone(),
                    _ => self.timeout_topic.clone(),
                };
                let bytes = message.encode();
                let kind = message.kind();
                let reason =
                    match self.swarm.behaviour_mut().gossipsub.publish(topic, bytes.clone()) {
                        Ok(_) => return,
                        // A re-send is byte-identical: gossipsub refuses it as a duplicate for
                        // its cache time (60 s), though peers that were cut off never got it.
                        Err(gossipsub::PublishError::Duplicate) => "duplicate",
                        Err(gossipsub::PublishError::NoPeersSubscribedToTopic) => "no_peers",
                        Err(gossipsub::PublishError::MessageTooLarge) => "too_large",
                        Err(_) => "other",
                    };
                metrics::counter!("tandem_cl_gossip_publish_failures_total",
                    "kind" => kind, "reason" => reason)
                .increment(1);
                if self.publish_failures_logged.insert((kind, reason)) {
                    warn!(
                        kind,
                        reason,
                        "gossip publish failed; sending directly to connected \
                        validators (logged once per kind and reason)"
                    );
                }
                if reason != "too_large" {
                    self.send_to_connected_validators(&bytes);
                }
            }
            NetCommand::Sync { peer, request, reply } => {
                if peer == *self.swarm.local_peer_id() {
                    let _ = reply.send(Err(SyncFailure::Network {
                        peer,
                        reason: "cannot sync from self".into(),
                    }));
                    return;
                }
                let id = self.swarm.behaviour_mut().sync.send_request(&peer, request.encode());
                self.pending_sync.insert(id, reply);
            }
            NetCommand::Report { peer, reason } => self.penalize(peer, &reason),
            NetCommand::GossipScore { peer, reply } => {
                let _ = reply.send(self.swarm.behaviour().gossipsub.peer_score(&peer));
            }
            NetCommand::Verdict { origin, verdict } => self.verdict(origin, verdict),
        }
    }

    /// Applies consensus' verdict on a delivered message.
    fn verdict(&mut self, origin: Origin, verdict: Verdict) {
        let acceptance = match &verdict {
            Verdict::Accept => MessageAcceptance::Accept,
            Verdict::Ignore => MessageAcceptance::Ignore,
            Verdict::Reject(_) => MessageAcceptance::Reject,
        };
        let deliverer = match &origin {
            Origin::Gossip { id, source } => {
                let gossipsub = &mut self.swarm.behaviour_mut().gossipsub;
                gossipsub.report_message_validation_result(id, source, acceptance);
                *source
            }
            Origin::Direct { peer } => *peer,
        };
        if let Verdict::Reject(why) = verdict {
            self.penalize(deliverer, &format!("consensus refused its message: {why}"));
        }
    }

    /// Sends an encoded message to every connected validator but us, request-response.
    fn send_to_connected_validators(&mut self, bytes: &[u8]) {
        let me = *self.swarm.local_peer_id();
        let peers: Vec<PeerId> = self
            .by_index
            .iter()
            .filter(|p| **p != me && self.connected.contains(p))
            .copied()
            .collect();
        for peer in peers {
            self.swarm.behaviour_mut().direct.send_request(&peer, bytes.to_vec());
        }
    }

    fn publish_peers(&mut self) {
        self.peers.store(self.connected.len(), Ordering::Relaxed);
        if let Ok(mut l) = self.connected_list.lock() {
            *l = self.connected.iter().copied().collect();
        }
    }

    /// Answers an inbound sync request on a blocking thread (storage reads), or `Busy`.
    fn serve_sync(&mut self, peer: PeerId, request: Vec<u8>, channel: ResponseChannel<Vec<u8>>) {
        if self.is_banned(&peer) {
            return;
        }
        let request = match SyncRequest::decode(&request) {
            Ok(r) => r,
            Err(e) => {
                self.penalize(peer, &format!("undecodable sync request: {e}"));
                return;
            }
        };
        let peer_serving = self.serving_by_peer.get(&peer).copied().unwrap_or(0);
        let server = match &self.sync_server {
            Some(s)
                if self.serving.load(Ordering::Relaxed) < MAX_CONCURRENT_SERVES
                    && peer_serving < MAX_CONCURRENT_SERVES_PER_PEER =>
            {
                s.clone()
            }
            _ => {
                debug!(%peer, "sync request answered busy");
                let busy = SyncResponse::Busy.encode();
                let _ = self.swarm.behaviour_mut().sync.send_response(channel, busy);
                return;
            }
        };
        self.serving.fetch_add(1, Ordering::Relaxed);
        *self.serving_by_peer.entry(peer).or_default() += 1;
        let (serving, served) = (self.serving.clone(), self.served_tx.clone());
        tokio::spawn(async move {
            let response = tokio::task::spawn_blocking(move || server.serve(&request).encode())
                .await
                .unwrap_or_else(|_| SyncResponse::Busy.encode());
            serving.fetch_sub(1, Ordering::Relaxed);
            let _ = served.send(Served { peer, channel, response });
        });
    }

    fn penalize(&mut self, peer: PeerId, why: &str) {
        let score = self.scores.entry(peer).or_insert(0);
        *score -= INVALID_PENALTY;
        let score = *score;
        warn!(%peer, score, "invalid message: {why}");
        self.swarm.behaviour_mut().gossipsub.set_application_score(&peer, f64::from(score));
        if score <= BAN_SCORE {
            self.banned.insert(peer, Instant::now() + Duration::from_secs(BAN_SECS));
            self.banned_count.store(self.banned.len(), Ordering::Relaxed);
            self.scores.remove(&peer);
            let _ = self.swarm.disconnect_peer_id(peer);
            warn!(%peer, "peer banned for {BAN_SECS}s");
        }
    }

    fn is_banned(&mut self, peer: &PeerId) -> bool {
        match self.banned.get(peer) {
            Some(until) if *until > Instant::now() => true,
            Some(_) => {
                self.banned.remove(peer);
                self.banned_count.store(self.banned.len(), Ordering::Relaxed);
                false
            }
            None => false,
        }
    }

    /// Hands a message to consensus; gossip that cannot be queued is ignored (not forwarded).
    fn deliver(&mut self, from: ValidatorIndex, message: Message, origin: Origin) {
        if let Err(e) = self.events.try_send(NetEvent::Message(Delivery { from, message, origin }))
        {
            debug!("consensus inbox full, dropping a message: {e}");
            let origin = match e {
                mpsc::error::TrySendError::Full(ev) | mpsc::error::TrySendError::Closed(ev) => ev,
            };
            if let NetEvent::Message(Delivery { origin: Origin::Gossip { id, source }, .. }) =
                origin
            {
                self.swarm.behaviour_mut().gossipsub.report_message_validation_result(
                    &id,
                    &source,
                    MessageAcceptance::Ignore,
                );
            }
        }
    }

    fn swarm_event(&mut self, event: SwarmEvent<BehaviourEvent>) {
        match event {
            SwarmEvent::NewListenAddr { address, .. } => {
                info!(%address, peer_id = %self.swarm.local_peer_id(), "p2p listening");
                if let Ok(mut l) = self.listen.lock() {
                    l.push(address);
                }
            }
            SwarmEvent::ConnectionEstablished { peer_id, endpoint, .. } => {
                if self.is_banned(&peer_id) {
                    let _ = self.swarm.disconnect_peer_id(peer_id);
                    return;
                }
                if self.connected.insert(peer_id) {
                    let validator = self.validators.get(&peer_id).copied();
                    debug!(%peer_id, ?validator, "peer connected");
                    if let Some(v) = validator
                        && let Err(e) = self.events.try_send(NetEvent::Connected(v))
                    {
                        debug!("consensus inbox full, dropping a connection notice: {e}");
                    }
                }
                if endpoint.is_dialer() {
                    self.swarm
                        .behaviour_mut()
                        .kad
                        .add_address(&peer_id, endpoint.get_remote_address().clone());
                }
                for r in self.redial.iter_mut().filter(|r| r.peer == Some(peer_id)) {
                    r.delay = Duration::from_secs(1);
                }
                self.publish_peers();
            }
            SwarmEvent::ConnectionClosed { peer_id, num_established: 0, .. } => {
                self.connected.remove(&peer_id);
                debug!(%peer_id, "peer disconnected");
                self.publish_peers();
            }
            SwarmEvent::Behaviour(BehaviourEvent::Identify(identify::Event::Received {
                peer_id,
                info,
                ..
            })) => {
                for addr in info.listen_addrs {
                    if !addr.iter().any(|p| matches!(p, Protocol::Ip4(ip) if ip.is_unspecified())) {
                        self.swarm.behaviour_mut().kad.add_address(&peer_id, addr);
                    }
                }
            }
            SwarmEvent::Behaviour(BehaviourEvent::Gossipsub(gossipsub::Event::Message {
                propagation_source,
                message_id,
                message,
            })) => {
                let author = message.source.and_then(|s| self.validators.get(&s).copied());
                let decoded = Message::decode(&message.data);
                let gs = &mut self.swarm.behaviour_mut().gossipsub;
                match (author, decoded) {
                    (Some(from), Ok(m @ (Message::Proposal(_) | Message::Timeout(_)))) => {
                        // Forwarded only once consensus has verified it (`verdict`).
                        let origin = Origin::Gossip { id: message_id, source: propagation_source };
                        self.deliver(from, m, origin);
                    }
                    (author, decoded) => {
                        gs.report_message_validation_result(
                            &message_id,
                            &propagation_source,
                            MessageAcceptance::Reject,
                        );
                        let why = match (author, decoded) {
                            (None, _) => "gossip from an author that is not a validator".into(),
                            (_, Err(e)) => e.to_string(),
                            (_, Ok(m)) => format!("{} is not a gossip message", m.kind()),
                        };
                        self.penalize(propagation_source, &why);
                    }
                }
            }
            SwarmEvent::Behaviour(BehaviourEvent::Direct(request_response::Event::Message {
                peer,
                message: request_response::Message::Request { request, channel, .. },
                ..
            })) => {
                let _ = self.swarm.behaviour_mut().direct.send_response(channel, Vec::new());
                if self.is_banned(&peer) {
                    return;
                }
                let now = Instant::now();
                let quota = self
                    .direct_quota
                    .entry(peer)
                    .or_insert_with(|| TokenBucket::new(DIRECT_PER_SEC, DIRECT_BURST, now));
                if !quota.take(1, now) {
                    metrics::counter!("tandem_cl_direct_over_quota_total").increment(1);
                    debug!(%peer, "direct message over the peer's quota dropped");
                    return;
                }
                let Some(from) = self.validators.get(&peer).copied() else {
                    debug!(%peer, "direct message from a non-validator ignored");
                    return;
                };
                match Message::decode(&request) {
                    Ok(m) => self.deliver(from, m, Origin::Direct { peer }),
                    Err(e) => self.penalize(peer, &e.to_string()),
                }
            }
            SwarmEvent::Behaviour(BehaviourEvent::Direct(
                request_response::Event::OutboundFailure { peer, error, .. },
            )) => {
                debug!(%peer, "direct message not delivered: {error}");
            }
            SwarmEvent::Behaviour(BehaviourEvent::Sync(request_response::Event::Message {
                peer,
                message,
                ..
            })) => match message {
                request_response::Message::Request { request, channel, .. } => {
                    self.serve_sync(peer, request, channel);
                }
                request_response::Message::Response { request_id, response } => {
                    let Some(reply) = self.pending_sync.remove(&request_id) else { return };
                    let result = SyncResponse::decode(&response)
                        .map_err(|e| SyncFailure::Undecodable { peer, reason: e.to_string() });
                    if let Err(e) = &result {
                        self.penalize(peer, &e.to_string());
                    }
                    let _ = reply.send(result);
                }
            },
            SwarmEvent::Behaviour(BehaviourEvent::Sync(
                request_response::Event::OutboundFailure { peer, request_id, error, .. },
            )) => {
                debug!(%peer, "sync request failed: {error}");
                if let Some(reply) = self.pending_sync.remove(&request_id) {
                    let _ =
                        reply.send(Err(SyncFailure::Network { peer, reason: error.to_string() }));
                }
            }
            _ => {}
        }
    }

    fn redial(&mut self) {
        let now = Instant::now();
        let mut dials = Vec::new();
        for r in &mut self.redial {
            let connected = r.peer.is_some_and(|p| self.connected.contains(&p));
            if connected || r.next > now {
                continue;
            }
            dials.push(r.addr.clone());
            r.next = now + r.delay;
            r.delay = (r.delay * 2).min(Duration::from_secs(30));
        }
        for addr in dials {
            if let Err(e) = self.swarm.dial(addr.clone()) {
                debug!(%addr, "dial failed: {e}");
            }
        }
        // Validators not connected: dial by peer id (addresses from kademlia/identify), with
        // the same back-off.
        if self.validator_dial.0 > now {
            return;
        }
        let me = *self.swarm.local_peer_id();
        let missing: Vec<PeerId> = self
            .by_index
            .iter()
            .filter(|p| **p != me && !self.connected.contains(p))
            .copied()
            .collect();
        if missing.is_empty() {
            self.validator_dial.1 = Duration::from_secs(1);
            return;
        }
        for p in missing {
            let _ = self.swarm.dial(p);
        }
        let _ = self.swarm.behaviour_mut().kad.bootstrap();
        self.validator_dial.0 = now + self.validator_dial.1;
        self.validator_dial.1 = (self.validator_dial.1 * 2).min(Duration::from_secs(30));
    }
}

#[cfg(test)]
mod tests;
