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
//! - Identity: validator i is the peer id listed for it in the consensus genesis. Messages from
//!   peers that are not validators are dropped (a follower's votes never count).
//! - Peers find each other from one bootnode with identify + kademlia; bootnodes and validators
//!   that drop are redialled with exponential back-off (1 s doubling to 30 s); ping keeps idle
//!   connections alive.
//! - A peer that sends undecodable messages or gossip from a non-validator author is scored
//!   down; at [`BAN_SCORE`] it is disconnected and ignored for [`BAN_SECS`].
//!
//! One task owns the swarm ([`spawn`]); the node talks to it through [`NetworkHandle`] and
//! receives [`NetEvent`]s on a channel.

pub mod codec;

use crate::types::{Codec as _, Message, ValidatorIndex};
use codec::{DIRECT_PROTOCOL, DirectCodec};
use futures::StreamExt;
use libp2p::gossipsub::{self, IdentTopic, MessageAcceptance, MessageAuthenticity};
use libp2p::identity::Keypair;
use libp2p::multiaddr::Protocol;
use libp2p::request_response::{self, ProtocolSupport};
use libp2p::swarm::{NetworkBehaviour, SwarmEvent};
use libp2p::{Multiaddr, PeerId, StreamProtocol, Swarm, identify, kad, noise, ping, tcp, yamux};
use std::collections::{HashMap, HashSet};
use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};
use thiserror::Error;
use tokio::sync::mpsc;
use tracing::{debug, info, warn};

/// Largest consensus message (a proposal with a full payload), in bytes.
pub const MAX_MESSAGE_SIZE: usize = 10 * 1024 * 1024;
/// Score at which a peer is disconnected.
pub const BAN_SCORE: i32 = -100;
/// How long a banned peer is ignored.
pub const BAN_SECS: u64 = 60;
/// Penalty for one invalid message.
const INVALID_PENALTY: i32 = 20;

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

/// A consensus message from an authenticated validator.
#[derive(Debug)]
pub struct NetEvent {
    /// The validator it came from (the gossip author, or the direct peer).
    pub from: ValidatorIndex,
    /// The message.
    pub message: Message,
}

#[derive(Debug)]
enum NetCommand {
    Send { to: ValidatorIndex, message: Message },
    Broadcast { message: Message },
}

/// Handle to the network task. Sends never block; they are dropped if the task has stopped.
#[derive(Debug, Clone)]
pub struct NetworkHandle {
    tx: mpsc::UnboundedSender<NetCommand>,
    peers: Arc<AtomicUsize>,
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
    /// Addresses the node listens on (known once the listener is up).
    pub fn listen_addrs(&self) -> Vec<Multiaddr> {
        self.listen.lock().map(|l| l.clone()).unwrap_or_default()
    }
}

#[derive(NetworkBehaviour)]
struct Behaviour {
    gossipsub: gossipsub::Behaviour,
    direct: request_response::Behaviour<DirectCodec>,
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

struct Task {
    swarm: Swarm<Behaviour>,
    validators: HashMap<PeerId, ValidatorIndex>,
    by_index: Vec<PeerId>,
    proposal_topic: IdentTopic,
    timeout_topic: IdentTopic,
    connected: HashSet<PeerId>,
    peers: Arc<AtomicUsize>,
    listen: Arc<std::sync::Mutex<Vec<Multiaddr>>>,
    scores: HashMap<PeerId, i32>,
    banned: HashMap<PeerId, Instant>,
    redial: Vec<Redial>,
    validator_dial: (Instant, Duration),
    events: mpsc::Sender<NetEvent>,
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
                DirectCodec { max_size: MAX_MESSAGE_SIZE },
                [(DIRECT_PROTOCOL, ProtocolSupport::Full)],
                request_response::Config::default().with_request_timeout(Duration::from_secs(10)),
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
            Ok(Behaviour { gossipsub, direct, identify, ping, kad })
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
    let listen_addrs = Arc::new(std::sync::Mutex::new(Vec::new()));
    let handle =
        NetworkHandle { tx, peers: peers.clone(), peer_id: me, listen: listen_addrs.clone() };
    let task = Task {
        swarm,
        validators,
        by_index: config.validators,
        proposal_topic,
        timeout_topic,
        connected: HashSet::new(),
        peers,
        listen: listen_addrs,
        scores: HashMap::new(),
        banned: HashMap::new(),
        redial,
        validator_dial: (Instant::now(), Duration::from_secs(1)),
        events: events_tx,
    };
    tokio::spawn(task.run(rx));
    Ok((handle, events_rx))
}

impl Task {
    async fn run(mut self, mut commands: mpsc::UnboundedReceiver<NetCommand>) {
        let mut tick = tokio::time::interval(Duration::from_millis(500));
        loop {
            tokio::select! {
                cmd = commands.recv() => match cmd {
                    Some(cmd) => self.command(cmd),
                    None => return,
                },
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
                match self.swarm.behaviour_mut().gossipsub.publish(topic, message.encode()) {
                    Ok(_) => {}
                    Err(gossipsub::PublishError::NoPeersSubscribedToTopic) => {
                        debug!(kind = message.kind(), "published with no peers subscribed");
                    }
                    Err(gossipsub::PublishError::Duplicate) => {}
                    Err(e) => warn!(kind = message.kind(), "gossip publish failed: {e}"),
                }
            }
        }
    }

    fn penalize(&mut self, peer: PeerId, why: &str) {
        let score = self.scores.entry(peer).or_insert(0);
        *score -= INVALID_PENALTY;
        warn!(%peer, score = *score, "invalid message: {why}");
        if *score <= BAN_SCORE {
            self.banned.insert(peer, Instant::now() + Duration::from_secs(BAN_SECS));
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
                false
            }
            None => false,
        }
    }

    fn deliver(&mut self, from: ValidatorIndex, message: Message) {
        if let Err(e) = self.events.try_send(NetEvent { from, message }) {
            debug!("consensus inbox full, dropping a message: {e}");
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
                    debug!(%peer_id, validator = ?self.validators.get(&peer_id), "peer connected");
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
                self.peers.store(self.connected.len(), Ordering::Relaxed);
            }
            SwarmEvent::ConnectionClosed { peer_id, num_established: 0, .. } => {
                self.connected.remove(&peer_id);
                debug!(%peer_id, "peer disconnected");
                self.peers.store(self.connected.len(), Ordering::Relaxed);
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
                        gs.report_message_validation_result(
                            &message_id,
                            &propagation_source,
                            MessageAcceptance::Accept,
                        );
                        self.deliver(from, m);
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
                let Some(from) = self.validators.get(&peer).copied() else {
                    debug!(%peer, "direct message from a non-validator ignored");
                    return;
                };
                match Message::decode(&request) {
                    Ok(m) => self.deliver(from, m),
                    Err(e) => self.penalize(peer, &e.to_string()),
                }
            }
            SwarmEvent::Behaviour(BehaviourEvent::Direct(
                request_response::Event::OutboundFailure { peer, error, .. },
            )) => {
                debug!(%peer, "direct message not delivered: {error}");
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
