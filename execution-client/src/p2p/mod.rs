//! Transaction gossip between execution clients over libp2p.
//!
//! ELs form their own network (TCP + noise + yamux; identify and kademlia so a node finds the
//! others from one bootnode). One gossipsub topic per chain, `/tandem-el/<chain id>/txs/2`,
//! carries batches: an RLP list of EIP-2718 transactions (at most [`MAX_BATCH_TXS`]), because
//! one message per transaction costs more in framing, signatures and validation than the
//! transaction itself at thousands per second:
//!
//! - transactions accepted into the pool over RPC (announced on `pending_txs`) are collected
//!   for [`BATCH_WINDOW`] (or until a batch is full) and published together;
//! - a gossiped batch is decoded, its senders recovered in parallel (with the shared cache, so
//!   `newPayload` later finds them) and its transactions added to the pool as
//!   [`Origin::External`] against one view of the latest state. Only what the pool accepted is
//!   passed on: a batch accepted whole is forwarded as it is; of a batch accepted in part, the
//!   accepted transactions go into this node's own next batch and the batch itself is not
//!   forwarded; a batch the pool already holds or refuses for state reasons (nonce, balance,
//!   price) is `Ignore`d: not forwarded, no penalty, since it may be valid on a peer whose
//!   state differs; undecodable bytes, a bad signature or a foreign chain id anywhere in it get
//!   the batch `Reject`ed, which lowers the peer's gossipsub score, and a peer that sends
//!   [`MAX_STRIKES`] of those is disconnected and refused from then on;
//! - peers pay for what they send: each peer's transactions are metered by a token bucket
//!   ([`PEER_TXS_PER_SEC`], burst [`PEER_TXS_BURST`]; batches beyond it are ignored unread),
//!   and a peer most of whose transactions cannot pay (refused for any reason but "already
//!   known", over [`JUNK_WINDOW`] transactions) takes a strike;
//! - duplicates are suppressed by gossipsub's message cache (message id = hash of the batch)
//!   and by the pool (`already known`).

use std::{
    collections::{HashMap, HashSet},
    net::{IpAddr, Ipv4Addr},
    sync::{Arc, atomic::Ordering},
    time::Duration,
};

use alloy_consensus::TxEnvelope;
use alloy_eips::eip2718::{Decodable2718, Encodable2718};
use alloy_primitives::keccak256;
use libp2p::{
    Multiaddr, PeerId, StreamProtocol,
    futures::StreamExt,
    gossipsub::{self, IdentTopic, MessageAcceptance, MessageAuthenticity},
    identify, identity, kad, noise, ping,
    swarm::{NetworkBehaviour, SwarmEvent},
    tcp, yamux,
};
use parking_lot::Mutex;
use tandem_shared::rate::TokenBucket;
use tokio::sync::broadcast::error::RecvError;
use tracing::{debug, info, warn};

use crate::{
    rpc::RpcContext,
    txpool::{Origin, PoolError, StateReader},
};

/// Transactions a peer may send per second, on average.
pub const PEER_TXS_PER_SEC: u32 = 4_000;
/// Transactions a peer may send in a burst.
pub const PEER_TXS_BURST: u32 = 8_000;
/// Transactions of a peer over which the share refused is judged.
pub const JUNK_WINDOW: u32 = 256;

/// Rejected messages after which a peer is disconnected and refused.
pub const MAX_STRIKES: u32 = 5;
/// Most transactions in one gossip message.
pub const MAX_BATCH_TXS: usize = 256;
/// Bytes at which a batch is published without waiting for more.
const BATCH_BYTES: usize = 512 * 1024;
/// How long an accepted transaction waits for others to share its message.
pub const BATCH_WINDOW: Duration = Duration::from_millis(25);
/// Largest gossip message: a full batch, or one of the pool's largest transactions.
const MAX_MESSAGE_SIZE: usize = 2 * 1024 * 1024;

/// Gossip network flags, as reth names them.
#[derive(Debug, Clone, clap::Args)]
pub struct P2pArgs {
    /// Listen port of the EL gossip network (`--port` is reth's alias).
    #[arg(long = "p2p.port", alias = "port", default_value_t = 30303)]
    pub port: u16,
    /// Listen address of the EL gossip network.
    #[arg(long = "p2p.addr", default_value_t = IpAddr::V4(Ipv4Addr::UNSPECIFIED))]
    pub addr: IpAddr,
    /// Peers to connect to first, as multiaddrs (comma-separated).
    #[arg(long = "bootnodes", value_delimiter = ',')]
    pub bootnodes: Vec<Multiaddr>,
}

/// Settings of the gossip network.
#[derive(Debug, Clone)]
pub struct P2pConfig {
    /// Node identity.
    pub keypair: identity::Keypair,
    /// Listen address.
    pub listen_addr: IpAddr,
    /// Listen port (0 picks one).
    pub port: u16,
    /// Peers dialled at start.
    pub bootnodes: Vec<Multiaddr>,
}

/// The gossip network could not start.
#[derive(Debug, thiserror::Error)]
pub enum P2pError {
    /// Building the swarm failed.
    #[error("p2p setup: {0}")]
    Setup(String),
    /// Listening failed.
    #[error("p2p listen on {addr}: {reason}")]
    Listen {
        /// The address.
        addr: String,
        /// Why.
        reason: String,
    },
}

/// A running gossip network.
#[derive(Debug, Clone)]
pub struct GossipHandle {
    /// This node's peer id.
    pub peer_id: PeerId,
    listen: Arc<Mutex<Vec<Multiaddr>>>,
    task: Arc<tokio::task::JoinHandle<()>>,
}

impl GossipHandle {
    /// Addresses the node listens on, with its peer id (known once the listener is up).
    pub fn listen_addrs(&self) -> Vec<Multiaddr> {
        self.listen.lock().clone()
    }

    /// Stops the network task.
    pub fn stop(&self) {
        self.task.abort();
    }
}

/// Most connections with one peer (a redial may overlap the old connection briefly).
pub const MAX_CONNECTIONS_PER_PEER: u32 = 2;
/// Most established connections in all.
pub const MAX_CONNECTIONS: u32 = 256;
/// Most established inbound connections (room is kept for our own dials).
pub const MAX_INBOUND_CONNECTIONS: u32 = 192;
/// Most connections being set up at once, each way.
pub const MAX_PENDING_CONNECTIONS: u32 = 32;

/// The swarm's connection limits: one peer, or a crowd of them, cannot exhaust the node's
/// connections or file descriptors.
fn connection_limits() -> libp2p::connection_limits::ConnectionLimits {
    libp2p::connection_limits::ConnectionLimits::default()
        .with_max_established_per_peer(Some(MAX_CONNECTIONS_PER_PEER))
        .with_max_established(Some(MAX_CONNECTIONS))
        .with_max_established_incoming(Some(MAX_INBOUND_CONNECTIONS))
        .with_max_pending_incoming(Some(MAX_PENDING_CONNECTIONS))
        .with_max_pending_outgoing(Some(MAX_PENDING_CONNECTIONS))
}

#[derive(NetworkBehaviour)]
struct Behaviour {
    limits: libp2p::connection_limits::Behaviour,
    gossipsub: gossipsub::Behaviour,
    identify: identify::Behaviour,
    ping: ping::Behaviour,
    kad: kad::Behaviour<kad::store::MemoryStore>,
}

/// Starts gossiping the transactions of `ctx`'s pool.
pub fn spawn(config: P2pConfig, ctx: Arc<RpcContext>) -> Result<GossipHandle, P2pError> {
    let setup = |e: String| P2pError::Setup(e);
    let chain = ctx.spec.chain_id();
    let peer_id = config.keypair.public().to_peer_id();
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
                    gossipsub::MessageId::from(keccak256(&m.data).to_vec())
                })
                .build()
                .map_err(|e| e.to_string())?;
            let gossipsub =
                gossipsub::Behaviour::new(MessageAuthenticity::Signed(key.clone()), gossip_config)?;
            let identify = identify::Behaviour::new(identify::Config::new(
                format!("/tandem-el/{chain}/1"),
                key.public(),
            ));
            let ping = ping::Behaviour::new(ping::Config::new());
            let id = key.public().to_peer_id();
            let mut kad = kad::Behaviour::with_config(
                id,
                kad::store::MemoryStore::new(id),
                kad::Config::new(StreamProtocol::new("/tandem-el/kad/1")),
            );
            kad.set_mode(Some(kad::Mode::Server));
            let limits = libp2p::connection_limits::Behaviour::new(connection_limits());
            Ok(Behaviour { limits, gossipsub, identify, ping, kad })
        })
        .map_err(|e| setup(e.to_string()))?
        .with_swarm_config(|c| c.with_idle_connection_timeout(Duration::from_secs(3600)))
        .build();
    let ip = if config.listen_addr.is_ipv4() { "ip4" } else { "ip6" };
    let listen: Multiaddr = format!("/{ip}/{}/tcp/{}", config.listen_addr, config.port)
        .parse()
        .map_err(|e: libp2p::multiaddr::Error| setup(e.to_string()))?;
    swarm
        .listen_on(listen.clone())
        .map_err(|e| P2pError::Listen { addr: listen.to_string(), reason: e.to_string() })?;
    let topic = IdentTopic::new(topic_name(chain));
    swarm.behaviour_mut().gossipsub.subscribe(&topic).map_err(|e| setup(e.to_string()))?;
    for addr in &config.bootnodes {
        if let Some(peer) = peer_of(addr) {
            swarm.behaviour_mut().kad.add_address(&peer, addr.clone());
        }
        if let Err(e) = swarm.dial(addr.clone()) {
            warn!(%addr, "bootnode dial failed: {e}");
        }
    }
    let listen_addrs = Arc::new(Mutex::new(Vec::new()));
    let mut gossip = Gossip {
        swarm,
        topic,
        ctx: ctx.clone(),
        listen: listen_addrs.clone(),
        connected: HashSet::new(),
        subscribed: HashSet::new(),
        strikes: HashMap::new(),
        buckets: HashMap::new(),
        junk: HashMap::new(),
        banned: HashSet::new(),
        batch: Vec::new(),
        batch_bytes: 0,
        bootnodes: config.bootnodes.clone(),
    };
    let mut pending = ctx.pending_txs.subscribe();
    let task = tokio::spawn(async move {
        let mut bootstrap = tokio::time::interval(Duration::from_secs(30));
        let mut redial = tokio::time::interval(REDIAL_INTERVAL);
        redial.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut flush = tokio::time::interval(BATCH_WINDOW);
        flush.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                event = gossip.swarm.select_next_some() => gossip.on_event(event),
                hash = pending.recv() => match hash {
                    Ok(hash) => gossip.queue(hash),
                    Err(RecvError::Lagged(n)) => debug!(missed = n, "gossip fell behind the pool"),
                    Err(RecvError::Closed) => return,
                },
                _ = flush.tick() => gossip.publish_batch(),
                _ = bootstrap.tick() => {
                    let _ = gossip.swarm.behaviour_mut().kad.bootstrap();
                }
                _ = redial.tick() => gossip.redial_bootnodes(),
            }
        }
    });
    info!(%peer_id, %listen, "EL gossip network started");
    Ok(GossipHandle { peer_id, listen: listen_addrs, task: Arc::new(task) })
}

struct Gossip {
    swarm: libp2p::Swarm<Behaviour>,
    topic: IdentTopic,
    ctx: Arc<RpcContext>,
    listen: Arc<Mutex<Vec<Multiaddr>>>,
    connected: HashSet<PeerId>,
    /// Peers subscribed to the transaction topic.
    subscribed: HashSet<PeerId>,
    strikes: HashMap<PeerId, u32>,
    banned: HashSet<PeerId>,
    /// Per peer: transactions it may still send.
    buckets: HashMap<PeerId, TokenBucket>,
    /// Per peer: transactions refused (not "already known") and seen, in the current window.
    junk: HashMap<PeerId, (u32, u32)>,
    /// Encoded transactions waiting to be published together.
    batch: Vec<alloy_primitives::Bytes>,
    batch_bytes: usize,
    /// Configured bootnodes, dialled again while not connected.
    bootnodes: Vec<Multiaddr>,
}

/// How often bootnodes that are not connected are dialled again.
const REDIAL_INTERVAL: Duration = Duration::from_secs(2);

/// The peer id a multiaddr ends with (`/p2p/<id>`), if any.
fn peer_of(addr: &Multiaddr) -> Option<PeerId> {
    addr.iter().find_map(|p| match p {
        libp2p::multiaddr::Protocol::P2p(peer) => Some(peer),
        _ => None,
    })
}

/// The gossip topic of a chain.
pub fn topic_name(chain_id: u64) -> String {
    format!("/tandem-el/{chain_id}/txs/2")
}

/// A gossip message: the RLP list of the transactions' EIP-2718 encodings.
pub fn encode_batch(txs: &[alloy_primitives::Bytes]) -> Vec<u8> {
    let mut out = Vec::new();
    alloy_rlp::encode_list::<alloy_primitives::Bytes, [u8]>(txs, &mut out);
    out
}

/// Why a gossip message is not a batch of transactions.
#[derive(Debug, thiserror::Error)]
pub enum BatchError {
    /// Not an RLP list of byte strings.
    #[error("rlp: {0}")]
    Rlp(alloy_rlp::Error),
    /// Bytes after the list.
    #[error("trailing bytes after the batch")]
    Trailing,
    /// An empty list.
    #[error("batch of {0} transactions (1 to {MAX_BATCH_TXS} allowed)")]
    Size(usize),
    /// More than [`MAX_BATCH_TXS`] elements (counted no further than that).
    #[error("batch of more than {MAX_BATCH_TXS} transactions")]
    TooMany,
    /// An element is not a transaction.
    #[error("transaction {index}: {reason}")]
    Transaction {
        /// Position in the batch.
        index: usize,
        /// What is wrong with it.
        reason: String,
    },
}

/// Decodes a gossip message into transactions.
///
/// The list's elements are counted from their RLP headers before any is copied or decoded, so a
/// message of a million one-byte elements costs a scan of its headers up to the 257th, not a
/// million allocations.
pub fn decode_batch(data: &[u8]) -> Result<Vec<TxEnvelope>, BatchError> {
    use alloy_rlp::Header;
    let (count, payload) = scan_batch(data)?;
    let mut items = payload;
    (0..count)
        .map(|index| {
            let mut bytes = Header::decode_bytes(&mut items, false).map_err(BatchError::Rlp)?;
            match TxEnvelope::decode_2718(&mut bytes) {
                Ok(tx) if bytes.is_empty() => Ok(tx),
                Ok(_) => Err(BatchError::Transaction {
                    index,
                    reason: "trailing bytes after the transaction".into(),
                }),
                Err(e) => Err(BatchError::Transaction { index, reason: format!("rlp: {e}") }),
            }
        })
        .collect()
}

/// The number of elements of a batch, counted from their RLP headers (refused above
/// [`MAX_BATCH_TXS`]), without decoding any: what a peer's rate limit is charged.
pub fn count_batch(data: &[u8]) -> Result<usize, BatchError> {
    scan_batch(data).map(|(count, _)| count)
}

/// Checks a batch's list header and element headers; returns the count and the list payload.
fn scan_batch(data: &[u8]) -> Result<(usize, &[u8]), BatchError> {
    use alloy_rlp::{Error as RlpError, Header};
    let mut rest = data;
    let header = Header::decode(&mut rest).map_err(BatchError::Rlp)?;
    if !header.list {
        return Err(BatchError::Rlp(RlpError::UnexpectedString));
    }
    let payload =
        rest.get(..header.payload_length).ok_or(BatchError::Rlp(RlpError::InputTooShort))?;
    if rest.len() > header.payload_length {
        return Err(BatchError::Trailing);
    }
    let mut count = 0usize;
    let mut scan = payload;
    while !scan.is_empty() {
        count += 1;
        if count > MAX_BATCH_TXS {
            return Err(BatchError::TooMany);
        }
        let element = Header::decode(&mut scan).map_err(BatchError::Rlp)?;
        if element.list {
            return Err(BatchError::Rlp(RlpError::UnexpectedList));
        }
        scan =
            scan.get(element.payload_length..).ok_or(BatchError::Rlp(RlpError::InputTooShort))?;
    }
    if count == 0 {
        return Err(BatchError::Size(0));
    }
    Ok((count, payload))
}

/// How a gossiped batch fared.
enum Verdict {
    /// Every transaction added to the pool: forward the batch as it is.
    Accept,
    /// Some added: pass those on in our own batch, do not forward this one.
    Partly(Vec<alloy_primitives::TxHash>),
    /// All known already, or refused for state reasons: do not forward, no penalty.
    Ignore(String),
    /// Malformed, badly signed or for another chain: do not forward, penalize.
    Reject(String),
}

impl Gossip {
    /// Adds a pool transaction to the next batch, publishing when the batch is full.
    fn queue(&mut self, hash: alloy_primitives::TxHash) {
        let Some(tx) = self.ctx.pool.read().get(&hash) else { return };
        let bytes = alloy_primitives::Bytes::from(tx.tx.encoded_2718());
        if self.batch_bytes + bytes.len() > BATCH_BYTES {
            self.publish_batch();
        }
        self.batch_bytes += bytes.len();
        self.batch.push(bytes);
        if self.batch.len() >= MAX_BATCH_TXS {
            self.publish_batch();
        }
    }

    /// Queues the pool's local transactions (submitted here, or restored from the journal after
    /// a restart) when the first peer joins the topic: while there was none, nobody heard them.
    fn announce_local(&mut self) {
        let local = self.ctx.pool.read().by_origin(Origin::Local);
        if local.is_empty() {
            return;
        }
        info!(txs = local.len(), "gossiping local transactions to the first peer");
        for tx in local {
            self.queue(*tx.tx.tx_hash());
        }
    }

    /// Dials the bootnodes this node is not connected to: a bootnode that was not up yet when
    /// this node started (or that restarted) would otherwise never be reached, since nothing
    /// else tells this node where the network is.
    fn redial_bootnodes(&mut self) {
        for addr in self.bootnodes.clone() {
            let wanted = match peer_of(&addr) {
                Some(peer) => !self.connected.contains(&peer) && !self.banned.contains(&peer),
                // Without a peer id we cannot tell whether it is connected: dial when alone.
                None => self.connected.is_empty(),
            };
            if wanted && let Err(e) = self.swarm.dial(addr.clone()) {
                debug!(%addr, "bootnode redial failed: {e}");
            }
        }
    }

    /// Publishes the waiting transactions as one message.
    fn publish_batch(&mut self) {
        if self.batch.is_empty() {
            return;
        }
        let data = encode_batch(&self.batch);
        let count = self.batch.len();
        self.batch.clear();
        self.batch_bytes = 0;
        match self.swarm.behaviour_mut().gossipsub.publish(self.topic.clone(), data) {
            Ok(_) => debug!(txs = count, "transactions gossiped"),
            Err(gossipsub::PublishError::NoPeersSubscribedToTopic) => {}
            Err(e) => debug!(txs = count, "gossip publish failed: {e}"),
        }
    }

    /// Takes `count` transaction tokens from `peer`'s bucket; `false` when it has too few.
    fn take_tokens(&mut self, peer: PeerId, count: usize) -> bool {
        let now = std::time::Instant::now();
        self.buckets
            .entry(peer)
            .or_insert_with(|| TokenBucket::new(PEER_TXS_PER_SEC, PEER_TXS_BURST, now))
            .take(count, now)
    }

    /// Counts a batch's refused transactions against `peer`; a strike when most of a window's
    /// could not pay.
    fn account_junk(&mut self, peer: PeerId, refused: u32, seen: u32) {
        let entry = self.junk.entry(peer).or_default();
        entry.0 += refused;
        entry.1 += seen;
        if entry.1 < JUNK_WINDOW {
            return;
        }
        let (refused, seen) = std::mem::take(entry);
        if refused * 2 > seen {
            self.strike(peer, &format!("{refused} of its last {seen} transactions cannot pay"));
        }
    }

    /// Decodes a batch and adds it to the pool; also returns how many transactions were
    /// refused for other reasons than "already known", and how many it held.
    fn verdict(&self, data: &[u8]) -> (Verdict, u32, u32) {
        let txs = match decode_batch(data) {
            Ok(txs) => txs,
            Err(e) => return (Verdict::Reject(e.to_string()), 0, 0),
        };
        let seen = u32::try_from(txs.len()).unwrap_or(u32::MAX);
        let (verdict, refused) = self.add_batch(txs);
        (verdict, refused, seen)
    }

    fn add_batch(&self, txs: Vec<TxEnvelope>) -> (Verdict, u32) {
        use rayon::prelude::*;
        let cache = &self.ctx.senders;
        let senders: Result<Vec<_>, _> = txs.par_iter().map(|tx| cache.recover(tx)).collect();
        let senders = match senders {
            Ok(senders) => senders,
            Err(e) => return (Verdict::Reject(e.to_string()), 0),
        };
        let view = self.ctx.snapshot();
        let state = match view.latest_state(&self.ctx.db) {
            Ok(state) => state,
            Err(e) => return (Verdict::Ignore(e.to_string()), 0),
        };
        let reader = StateReader(&state);
        let mut pool = self.ctx.pool.write();
        let total = txs.len();
        let (mut accepted, mut refused, mut last_refusal) = (Vec::new(), 0u32, None);
        for (tx, sender) in txs.into_iter().zip(senders) {
            let hash = *tx.tx_hash();
            match pool.add(tx, sender, Origin::External, &reader) {
                Ok(_) => accepted.push(hash),
                Err(
                    e @ (PoolError::Decode(_)
                    | PoolError::InvalidSender
                    | PoolError::WrongChainId { .. }
                    | PoolError::TxTypeNotSupported
                    | PoolError::BlobNotSupported
                    | PoolError::Oversized { .. }),
                ) => return (Verdict::Reject(e.to_string()), refused),
                Err(PoolError::AlreadyKnown) => last_refusal = Some("already known".to_string()),
                Err(e) => {
                    refused += 1;
                    last_refusal = Some(e.to_string());
                }
            }
        }
        let verdict = match (accepted.len(), last_refusal) {
            (0, Some(why)) => Verdict::Ignore(why),
            (n, _) if n == total => Verdict::Accept,
            _ => Verdict::Partly(accepted),
        };
        (verdict, refused)
    }

    fn on_event(&mut self, event: SwarmEvent<BehaviourEvent>) {
        match event {
            SwarmEvent::NewListenAddr { address, .. } => {
                let peer_id = *self.swarm.local_peer_id();
                self.listen.lock().push(address.with(libp2p::multiaddr::Protocol::P2p(peer_id)));
            }
            SwarmEvent::ConnectionEstablished { peer_id, endpoint, .. } => {
                if self.banned.contains(&peer_id) {
                    let _ = self.swarm.disconnect_peer_id(peer_id);
                    return;
                }
                if endpoint.is_dialer() {
                    self.swarm
                        .behaviour_mut()
                        .kad
                        .add_address(&peer_id, endpoint.get_remote_address().clone());
                }
                self.connected.insert(peer_id);
                self.ctx.peer_count.store(self.connected.len(), Ordering::Relaxed);
            }
            SwarmEvent::Behaviour(BehaviourEvent::Gossipsub(gossipsub::Event::Subscribed {
                peer_id,
                topic,
            })) if topic == self.topic.hash() => {
                let first = self.subscribed.is_empty();
                self.subscribed.insert(peer_id);
                if first {
                    self.announce_local();
                }
            }
            SwarmEvent::ConnectionClosed { peer_id, num_established: 0, .. } => {
                self.subscribed.remove(&peer_id);
                self.connected.remove(&peer_id);
                self.ctx.peer_count.store(self.connected.len(), Ordering::Relaxed);
            }
            SwarmEvent::Behaviour(BehaviourEvent::Identify(identify::Event::Received {
                peer_id,
                info,
                ..
            })) => {
                for addr in info.listen_addrs {
                    let unspecified = addr.iter().any(|p| {
                        matches!(p, libp2p::multiaddr::Protocol::Ip4(ip) if ip.is_unspecified())
                    });
                    if !unspecified {
                        self.swarm.behaviour_mut().kad.add_address(&peer_id, addr);
                    }
                }
            }
            SwarmEvent::Behaviour(BehaviourEvent::Gossipsub(gossipsub::Event::Message {
                propagation_source,
                message_id,
                message,
            })) => {
                let peer = propagation_source;
                let claimed = count_batch(&message.data).unwrap_or(1).max(1);
                let (verdict, refused, seen) = if self.take_tokens(peer, claimed) {
                    self.verdict(&message.data)
                } else {
                    (Verdict::Ignore("peer over its transaction rate".into()), 0, 0)
                };
                self.account_junk(peer, refused, seen);
                let (acceptance, why) = match verdict {
                    Verdict::Accept => (MessageAcceptance::Accept, None),
                    Verdict::Partly(accepted) => {
                        for hash in accepted {
                            self.queue(hash);
                        }
                        (MessageAcceptance::Ignore, None)
                    }
                    Verdict::Ignore(why) => {
                        debug!(peer = %propagation_source, "gossiped transaction not added: {why}");
                        (MessageAcceptance::Ignore, None)
                    }
                    Verdict::Reject(why) => (MessageAcceptance::Reject, Some(why)),
                };
                self.swarm.behaviour_mut().gossipsub.report_message_validation_result(
                    &message_id,
                    &propagation_source,
                    acceptance,
                );
                if let Some(why) = why {
                    self.strike(propagation_source, &why);
                }
            }
            _ => {}
        }
    }

    fn strike(&mut self, peer: PeerId, why: &str) {
        let strikes = self.strikes.entry(peer).or_default();
        *strikes += 1;
        warn!(%peer, strikes = *strikes, "invalid gossip: {why}");
        if *strikes >= MAX_STRIKES {
            self.banned.insert(peer);
            let _ = self.swarm.disconnect_peer_id(peer);
        }
    }
}

#[cfg(test)]
mod tests;
