//! Transaction gossip between execution clients over libp2p.
//!
//! ELs form their own network (TCP + noise + yamux; identify and kademlia so a node finds the
//! others from one bootnode). One gossipsub topic per chain, `/tandem-el/<chain id>/txs/1`,
//! carries EIP-2718 transactions:
//!
//! - a transaction accepted into the pool over RPC (announced on `pending_txs`) is published;
//! - a gossiped transaction is decoded, its sender recovered (with the shared cache) and added
//!   to the pool as [`Origin::External`] against the latest state. Gossipsub forwards it only
//!   when the pool accepted it (`Accept`); one the pool already holds or refuses for state
//!   reasons (nonce, balance, price) is `Ignore`d: not forwarded, no penalty, since it may be
//!   valid on a peer whose state differs; undecodable bytes, a bad signature or a foreign chain
//!   id are `Reject`ed, which lowers the peer's gossipsub score, and a peer that sends
//!   [`MAX_STRIKES`] of those is disconnected and refused from then on;
//! - duplicates are suppressed by gossipsub's message cache (message id = transaction hash) and
//!   by the pool (`already known`).

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
use tokio::sync::broadcast::error::RecvError;
use tracing::{debug, info, warn};

use crate::{
    rpc::RpcContext,
    txpool::{Origin, PoolError, StateReader},
};

/// Rejected messages after which a peer is disconnected and refused.
pub const MAX_STRIKES: u32 = 5;
/// Largest gossip message: the pool's largest transaction plus framing.
const MAX_MESSAGE_SIZE: usize = 256 * 1024;

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

#[derive(NetworkBehaviour)]
struct Behaviour {
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
            Ok(Behaviour { gossipsub, identify, ping, kad })
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
    let topic = IdentTopic::new(format!("/tandem-el/{chain}/txs/1"));
    swarm.behaviour_mut().gossipsub.subscribe(&topic).map_err(|e| setup(e.to_string()))?;
    for addr in &config.bootnodes {
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
        strikes: HashMap::new(),
        banned: HashSet::new(),
    };
    let mut pending = ctx.pending_txs.subscribe();
    let task = tokio::spawn(async move {
        let mut bootstrap = tokio::time::interval(Duration::from_secs(30));
        loop {
            tokio::select! {
                event = gossip.swarm.select_next_some() => gossip.on_event(event),
                hash = pending.recv() => match hash {
                    Ok(hash) => gossip.publish(hash),
                    Err(RecvError::Lagged(n)) => debug!(missed = n, "gossip fell behind the pool"),
                    Err(RecvError::Closed) => return,
                },
                _ = bootstrap.tick() => {
                    let _ = gossip.swarm.behaviour_mut().kad.bootstrap();
                }
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
    strikes: HashMap<PeerId, u32>,
    banned: HashSet<PeerId>,
}

/// How a gossiped transaction fared.
enum Verdict {
    /// Added to the pool: forward it.
    Accept,
    /// Known already, or refused for state reasons: do not forward, no penalty.
    Ignore(String),
    /// Malformed, badly signed or for another chain: do not forward, penalize.
    Reject(String),
}

impl Gossip {
    fn publish(&mut self, hash: alloy_primitives::TxHash) {
        let Some(tx) = self.ctx.pool.read().get(&hash) else { return };
        let bytes = tx.tx.encoded_2718();
        match self.swarm.behaviour_mut().gossipsub.publish(self.topic.clone(), bytes) {
            Ok(_) => debug!(%hash, "transaction gossiped"),
            Err(gossipsub::PublishError::NoPeersSubscribedToTopic) => {}
            Err(e) => debug!(%hash, "gossip publish failed: {e}"),
        }
    }

    fn verdict(&self, data: &[u8]) -> Verdict {
        let mut bytes = data;
        let tx = match TxEnvelope::decode_2718(&mut bytes) {
            Ok(tx) if bytes.is_empty() => tx,
            Ok(_) => return Verdict::Reject("trailing bytes after the transaction".into()),
            Err(e) => return Verdict::Reject(format!("rlp: {e}")),
        };
        let sender = match self.ctx.senders.recover(&tx) {
            Ok(sender) => sender,
            Err(e) => return Verdict::Reject(e.to_string()),
        };
        let view = self.ctx.snapshot();
        let state = match view.latest_state(&self.ctx.db) {
            Ok(state) => state,
            Err(e) => return Verdict::Ignore(e.to_string()),
        };
        match self.ctx.pool.write().add(tx, sender, Origin::External, &StateReader(&state)) {
            Ok(_) => Verdict::Accept,
            Err(
                e @ (PoolError::Decode(_)
                | PoolError::InvalidSender
                | PoolError::WrongChainId { .. }
                | PoolError::TxTypeNotSupported
                | PoolError::BlobNotSupported
                | PoolError::Oversized { .. }),
            ) => Verdict::Reject(e.to_string()),
            Err(e) => Verdict::Ignore(e.to_string()),
        }
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
            SwarmEvent::ConnectionClosed { peer_id, num_established: 0, .. } => {
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
                let verdict = self.verdict(&message.data);
                let (acceptance, why) = match verdict {
                    Verdict::Accept => (MessageAcceptance::Accept, None),
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
