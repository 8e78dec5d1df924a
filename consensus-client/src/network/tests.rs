//! Real libp2p on 127.0.0.1 ephemeral ports: discovery from one bootnode, gossip, direct
//! messages, and non-validators ignored.

use super::*;
use crate::types::BlockId;
use crate::types::message::MAX_BLOCKS_PER_REQUEST;

/// A validator's network settings on an ephemeral loopback port, chain 7, no sync server.
fn node_config(key: &Keypair, validators: &[PeerId], bootnodes: Vec<Multiaddr>) -> NetworkConfig {
    NetworkConfig {
        keypair: key.clone(),
        listen_addr: "127.0.0.1".parse().unwrap(),
        port: 0,
        bootnodes,
        validators: validators.to_vec(),
        chain_id: 7,
        sync_server: None,
    }
}

/// The message of a delivery (connection notices are skipped by the callers).
fn delivered(ev: NetEvent) -> Option<Delivery> {
    match ev {
        NetEvent::Message(d) => Some(d),
        NetEvent::Connected(_) => None,
    }
}

fn request(byte: u8) -> Message {
    Message::BlockRequest { id: BlockId::repeat_byte(byte), count: MAX_BLOCKS_PER_REQUEST }
}

async fn listening(handle: &NetworkHandle) -> Multiaddr {
    for _ in 0..200 {
        if let Some(a) = handle.listen_addrs().into_iter().next() {
            return a.with(Protocol::P2p(handle.peer_id));
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("no listen address");
}

/// Sends `message` from `from` to validator `to` every 300 ms until `rx` (the receiver's events)
/// yields it; returns the sender index the receiver saw.
async fn resend_until_received(
    from: &NetworkHandle,
    to: ValidatorIndex,
    rx: &mut mpsc::Receiver<NetEvent>,
    message: &Message,
) -> ValidatorIndex {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        from.send(to, message.clone());
        let wait = tokio::time::Instant::now() + Duration::from_millis(300);
        while let Ok(Some(ev)) = tokio::time::timeout_at(wait, rx.recv()).await {
            let Some(ev) = delivered(ev) else { continue };
            if &ev.message == message {
                return ev.from;
            }
        }
        assert!(tokio::time::Instant::now() < deadline, "{message:?} never arrived");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_validators_find_each_other_from_one_bootnode_and_exchange_messages() {
    let keys: Vec<Keypair> = (0..4).map(|_| Keypair::generate_ed25519()).collect();
    let validators: Vec<PeerId> = keys[..3].iter().map(|k| k.public().to_peer_id()).collect();
    let config =
        |i: usize, bootnodes: Vec<Multiaddr>| node_config(&keys[i], &validators, bootnodes);
    let (h0, mut rx0) = spawn(config(0, vec![])).unwrap();
    let boot = listening(&h0).await;
    let (h1, mut rx1) = spawn(config(1, vec![boot.clone()])).unwrap();
    let (h2, mut rx2) = spawn(config(2, vec![boot.clone()])).unwrap();
    // Node 3 is not a validator: it may connect, but what it sends is ignored.
    let (h3, _rx3) = spawn(config(3, vec![boot])).unwrap();

    // Node 1 and node 2 only know the bootnode; they must find each other.
    let deadline = Instant::now() + Duration::from_secs(20);
    while h1.peer_count() < 2 || h2.peer_count() < 2 {
        assert!(Instant::now() < deadline, "peers: {} {}", h1.peer_count(), h2.peer_count());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // Direct: 2 → 1 without a bootnode-provided address for 1. A direct message sent while the
    // route is still being found may be dropped (consensus tolerates lost votes), so resend.
    assert_eq!(resend_until_received(&h2, 1, &mut rx1, &request(1)).await, 2);

    // The non-validator's direct message never arrives; the validator's after it does.
    h3.send(0, request(3));
    assert_eq!(resend_until_received(&h1, 0, &mut rx0, &request(4)).await, 1);
    tokio::time::sleep(Duration::from_millis(200)).await;
    while let Ok(ev) = rx0.try_recv() {
        let Some(ev) = delivered(ev) else { continue };
        assert_ne!(ev.message, request(3), "node 3 is not a validator: its message is dropped");
    }

    // Gossip: a timeout from 0 reaches 1 and 2; wait for the mesh, publishing until it lands.
    let timeout = {
        use crate::types::{QuorumCert, Signature, Timeout};
        Message::Timeout(Timeout {
            round: 9,
            high_qc: QuorumCert::genesis(BlockId::ZERO),
            high_tc: None,
            signer: 0,
            signature: Signature([5; 64]),
        })
    };
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut got = (false, false);
    while !(got.0 && got.1) {
        assert!(Instant::now() < deadline, "gossip not delivered: {got:?}");
        h0.broadcast(timeout.clone());
        tokio::time::sleep(Duration::from_millis(300)).await;
        while let Ok(ev) = rx1.try_recv() {
            got.0 |= delivered(ev).is_some_and(|ev| ev.message == timeout && ev.from == 0);
        }
        while let Ok(ev) = rx2.try_recv() {
            got.1 |= delivered(ev).is_some_and(|ev| ev.message == timeout && ev.from == 0);
        }
    }
}

#[tokio::test]
async fn a_lone_validator_publishes_without_peers() {
    let key = Keypair::generate_ed25519();
    let (h, _rx) = spawn(NetworkConfig {
        validators: vec![key.public().to_peer_id()],
        keypair: key,
        listen_addr: "127.0.0.1".parse().unwrap(),
        port: 0,
        bootnodes: vec![],
        chain_id: 7,
        sync_server: None,
    })
    .unwrap();
    listening(&h).await;
    h.broadcast(request(1));
    h.send(0, request(2));
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(h.peer_count(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gossip_from_a_non_validator_scores_it_down_until_it_is_banned() {
    let keys: Vec<Keypair> = (0..2).map(|_| Keypair::generate_ed25519()).collect();
    let validators = vec![keys[0].public().to_peer_id()];
    let config =
        |i: usize, bootnodes: Vec<Multiaddr>| node_config(&keys[i], &validators, bootnodes);
    let (h0, mut rx0) = spawn(config(0, vec![])).unwrap();
    let boot = listening(&h0).await;
    // Node 1 is not a validator; what it publishes is rejected by node 0.
    let (h1, _rx1) = spawn(config(1, vec![boot])).unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while h0.peer_count() < 1 {
        assert!(Instant::now() < deadline, "not connected");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let forged = {
        use crate::types::{QuorumCert, Signature, Timeout};
        |round| {
            Message::Timeout(Timeout {
                round,
                high_qc: QuorumCert::genesis(BlockId::ZERO),
                high_tc: None,
                signer: 0,
                signature: Signature([5; 64]),
            })
        }
    };
    let mut lowest = f64::MAX;
    let mut round = 1;
    // Publish until the validator has scored node 1 below the gossip threshold and then banned
    // (disconnected) it.
    while h0.connected_peers().contains(&h1.peer_id) {
        assert!(Instant::now() < deadline, "not banned; lowest gossip score {lowest}");
        h1.broadcast(forged(round));
        round += 1;
        tokio::time::sleep(Duration::from_millis(200)).await;
        if let Some(score) = h0.gossip_score(h1.peer_id).await {
            lowest = lowest.min(score);
        }
    }
    assert!(lowest <= -10.0, "gossip score only fell to {lowest}");
    assert!(
        std::iter::from_fn(|| rx0.try_recv().ok()).all(|ev| delivered(ev).is_none()),
        "nothing from the non-validator reached consensus"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verdicts_from_consensus_strike_the_sender_until_it_is_banned() {
    let keys: Vec<Keypair> = (0..2).map(|_| Keypair::generate_ed25519()).collect();
    let validators: Vec<PeerId> = keys.iter().map(|k| k.public().to_peer_id()).collect();
    let config =
        |i: usize, bootnodes: Vec<Multiaddr>| node_config(&keys[i], &validators, bootnodes);
    let (h0, mut rx0) = spawn(config(0, vec![])).unwrap();
    let boot = listening(&h0).await;
    let (h1, _rx1) = spawn(config(1, vec![boot])).unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    // Accepted and ignored messages cost nothing; each rejected one is a strike.
    let mut verdicts = vec![Verdict::Accept, Verdict::Ignore]
        .into_iter()
        .chain(std::iter::repeat_with(|| Verdict::Reject("invalid vote signature".into())));
    let (mut byte, mut given) = (0u8, 0);
    while h0.banned_count() == 0 {
        assert!(Instant::now() < deadline, "not banned after {given} verdicts");
        byte += 1;
        h1.send(0, request(byte));
        let Ok(Some(ev)) = tokio::time::timeout(Duration::from_millis(500), rx0.recv()).await
        else {
            continue;
        };
        let Some(ev) = delivered(ev) else { continue };
        assert_eq!((ev.from, &ev.origin), (1, &Origin::Direct { peer: h1.peer_id }));
        h0.verdict(ev.origin, verdicts.next().unwrap());
        given += 1;
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(given, 7, "2 harmless verdicts, then banned at the 5th strike");
    let deadline = Instant::now() + Duration::from_secs(10);
    while h0.connected_peers().contains(&h1.peer_id) {
        assert!(Instant::now() < deadline, "banned but still connected");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A re-sent timeout is byte-identical, so gossipsub refuses to publish it again (its duplicate
/// cache lasts 60 s): the re-send must still reach a validator that missed the first one, and
/// the node learns that validator connected.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_re_sent_timeout_reaches_a_validator_that_missed_it() {
    let keys: Vec<Keypair> = (0..3).map(|_| Keypair::generate_ed25519()).collect();
    let validators: Vec<PeerId> = keys.iter().map(|k| k.public().to_peer_id()).collect();
    let config =
        |i: usize, bootnodes: Vec<Multiaddr>| node_config(&keys[i], &validators, bootnodes);
    let timeout = {
        use crate::types::{QuorumCert, Signature, Timeout};
        Message::Timeout(Timeout {
            round: 4,
            high_qc: QuorumCert::genesis(BlockId::ZERO),
            high_tc: None,
            signer: 0,
            signature: Signature([6; 64]),
        })
    };
    let (h0, mut rx0) = spawn(config(0, vec![])).unwrap();
    let boot = listening(&h0).await;
    let (_h1, mut rx1) = spawn(config(1, vec![boot.clone()])).unwrap();
    // Publish until validator 1 has it: from then on the bytes are in 0's duplicate cache.
    let deadline = Instant::now() + Duration::from_secs(20);
    'first: loop {
        assert!(Instant::now() < deadline, "first publish never arrived");
        h0.broadcast(timeout.clone());
        tokio::time::sleep(Duration::from_millis(300)).await;
        while let Ok(ev) = rx1.try_recv() {
            if delivered(ev).is_some_and(|d| d.message == timeout) {
                break 'first;
            }
        }
    }
    // Past gossipsub's message cache (5 heartbeats), so 2 cannot pull it with IWANT.
    tokio::time::sleep(Duration::from_secs(6)).await;
    let (h2, mut rx2) = spawn(config(2, vec![boot])).unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut saw_connect = false;
    while !saw_connect {
        assert!(Instant::now() < deadline, "no connection notice for validator 2");
        if let Ok(Some(ev)) = tokio::time::timeout(Duration::from_millis(200), rx0.recv()).await {
            saw_connect |= matches!(ev, NetEvent::Connected(2));
        }
    }
    assert!(h2.peer_count() >= 1);
    // The re-send: one broadcast of the same bytes.
    h0.broadcast(timeout.clone());
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    loop {
        match tokio::time::timeout_at(deadline, rx2.recv()).await {
            Ok(Some(ev)) => {
                if delivered(ev).is_some_and(|d| d.message == timeout && d.from == 0) {
                    break;
                }
            }
            _ => panic!("the re-sent timeout never reached validator 2"),
        }
    }
}

/// One peer dialling a node again and again gets at most [`MAX_CONNECTIONS_PER_PEER`]
/// connections; the rest are refused by the node.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_peer_cannot_open_more_than_its_share_of_connections() {
    use libp2p::swarm::dial_opts::{DialOpts, PeerCondition};
    let key = Keypair::generate_ed25519();
    let (node, _rx) = spawn(NetworkConfig {
        validators: vec![key.public().to_peer_id()],
        keypair: key,
        listen_addr: "127.0.0.1".parse().unwrap(),
        port: 0,
        bootnodes: vec![],
        chain_id: 7,
        sync_server: None,
    })
    .unwrap();
    let addr = listening(&node).await;
    let mut attacker = libp2p::SwarmBuilder::with_new_identity()
        .with_tokio()
        .with_tcp(tcp::Config::default(), noise::Config::new, yamux::Config::default)
        .unwrap()
        .with_behaviour(|_| libp2p::swarm::dummy::Behaviour)
        .unwrap()
        .with_swarm_config(|c| c.with_idle_connection_timeout(Duration::from_secs(60)))
        .build();
    for _ in 0..6 {
        let opts = DialOpts::peer_id(node.peer_id)
            .addresses(vec![addr.clone()])
            .condition(PeerCondition::Always)
            .build();
        attacker.dial(opts).unwrap();
    }
    let mut open = 0u32;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    let mut settled = 0;
    while settled < 6 {
        let Ok(event) = tokio::time::timeout_at(deadline, attacker.select_next_some()).await else {
            break;
        };
        match event {
            SwarmEvent::ConnectionEstablished { .. } => {
                open += 1;
                settled += 1;
            }
            SwarmEvent::OutgoingConnectionError { .. } => settled += 1,
            SwarmEvent::ConnectionClosed { .. } => open = open.saturating_sub(1),
            _ => {}
        }
    }
    // Connections the node refused after the handshake close on the attacker's side.
    let linger = tokio::time::Instant::now() + Duration::from_secs(2);
    while let Ok(event) = tokio::time::timeout_at(linger, attacker.select_next_some()).await {
        if let SwarmEvent::ConnectionClosed { .. } = event {
            open = open.saturating_sub(1);
        }
    }
    assert!(open >= 1, "not even one connection");
    assert!(open <= MAX_CONNECTIONS_PER_PEER, "{open} connections from one peer");
}

/// A validator flooding direct messages gets its burst and its rate through, not the flood.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_flooding_direct_messages_is_held_to_its_quota() {
    let keys: Vec<Keypair> = (0..2).map(|_| Keypair::generate_ed25519()).collect();
    let validators: Vec<PeerId> = keys.iter().map(|k| k.public().to_peer_id()).collect();
    let config =
        |i: usize, bootnodes: Vec<Multiaddr>| node_config(&keys[i], &validators, bootnodes);
    let (h0, mut rx0) = spawn(config(0, vec![])).unwrap();
    let boot = listening(&h0).await;
    let (h1, _rx1) = spawn(config(1, vec![boot])).unwrap();
    // The route is up once one message gets through.
    assert_eq!(resend_until_received(&h1, 0, &mut rx0, &request(1)).await, 1);
    tokio::time::sleep(Duration::from_secs(3)).await; // the bucket refills to its burst
    while rx0.try_recv().is_ok() {}
    let started = Instant::now();
    let flood = 6 * DIRECT_BURST;
    for i in 0..flood {
        h1.send(0, request((i % 250) as u8 + 2));
    }
    let mut delivered = 0u32;
    let until = tokio::time::Instant::now() + Duration::from_secs(2);
    while let Ok(Some(ev)) = tokio::time::timeout_at(until, rx0.recv()).await {
        delivered += u32::from(delivered_msg(ev));
    }
    let allowed =
        DIRECT_BURST + (started.elapsed().as_secs_f64() * f64::from(DIRECT_PER_SEC)) as u32;
    assert!(delivered >= DIRECT_BURST / 2, "only {delivered} delivered");
    assert!(delivered <= allowed, "{delivered} of {flood} delivered, quota allows {allowed}");
}

fn delivered_msg(ev: NetEvent) -> bool {
    delivered(ev).is_some()
}
