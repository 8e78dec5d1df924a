//! Two and three in-process ELs on loopback: a burst of transactions sent to one reaches the
//! others' pools through a bootnode in batches, the batch codec refuses malformed messages, and
//! a peer gossiping garbage is disconnected.

use std::{sync::Arc, time::Duration};

use alloy_eips::eip2718::Encodable2718;
use alloy_primitives::{Address, TxHash};
use libp2p::{gossipsub, identity};

use super::{GossipHandle, P2pConfig, spawn};
use crate::{fork_choice::TreeConfig, rpc::RpcContext, testkit::Kit, txpool::senders::SenderCache};

struct El {
    kit: Kit,
    ctx: Arc<RpcContext>,
    gossip: GossipHandle,
}

fn start(bootnodes: Vec<libp2p::Multiaddr>) -> El {
    start_with(identity::Keypair::generate_ed25519(), 0, bootnodes)
}

fn start_with(keypair: identity::Keypair, port: u16, bootnodes: Vec<libp2p::Multiaddr>) -> El {
    let kit = Kit::new(TreeConfig::default());
    let ctx = Arc::new(RpcContext::new(
        kit.tree.db().clone(),
        kit.executor.clone(),
        kit.tree.view_handle(),
        kit.pool.clone(),
        Arc::new(SenderCache::new(1000)),
    ));
    let config = P2pConfig { keypair, listen_addr: "127.0.0.1".parse().unwrap(), port, bootnodes };
    let gossip = spawn(config, ctx.clone()).unwrap();
    El { kit, ctx, gossip }
}

async fn listen_addr(el: &El) -> libp2p::Multiaddr {
    for _ in 0..200 {
        if let Some(addr) = el.gossip.listen_addrs().into_iter().next() {
            return addr;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("no listen address");
}

async fn wait_in_pool(el: &El, hash: TxHash) -> bool {
    for _ in 0..300 {
        if el.kit.pool.read().contains(&hash) {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    false
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transaction_sent_to_one_el_reaches_the_others_once() {
    let a = start(Vec::new());
    let boot = listen_addr(&a).await;
    let b = start(vec![boot.clone()]);
    let c = start(vec![boot]);
    // Wait for the mesh to form (gossipsub heartbeats every 500 ms).
    for _ in 0..100 {
        if b.ctx.peer_count.load(std::sync::atomic::Ordering::Relaxed) > 0
            && c.ctx.peer_count.load(std::sync::atomic::Ordering::Relaxed) > 0
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    // A burst: it travels in batches, and every transaction arrives exactly once.
    let mut last = TxHash::ZERO;
    for key in 0..4 {
        for nonce in 0..60 {
            let tx = a.kit.transfer(key, nonce, Address::repeat_byte(0xb0), 1);
            last = b.ctx.add_raw_transaction(&tx.encoded_2718()).unwrap();
        }
    }
    assert!(wait_in_pool(&a, last).await, "A (the bootnode) got the transactions");
    assert!(wait_in_pool(&c, last).await, "C got them through A");
    for el in [&a, &c] {
        assert_eq!(el.kit.pool.read().len(), 240, "each once, no duplicates, none lost");
    }
    for el in [a, b, c] {
        el.gossip.stop();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn local_transactions_held_without_peers_reach_the_first_peer() {
    // A node alone (or just restarted with its journal) holds a local transaction.
    let a = start(Vec::new());
    let tx = a.kit.transfer(1, 0, Address::repeat_byte(0xb1), 1);
    let hash = a.ctx.add_raw_transaction(&tx.encoded_2718()).unwrap();
    let boot = listen_addr(&a).await;
    // Long after its batch went out to nobody.
    tokio::time::sleep(super::BATCH_WINDOW * 10).await;
    let b = start(vec![boot]);
    assert!(wait_in_pool(&b, hash).await, "the first peer hears of it");
    for el in [a, b] {
        el.gossip.stop();
    }
}

#[test]
fn batches_round_trip_and_malformed_ones_are_refused() {
    use super::{BatchError, MAX_BATCH_TXS, decode_batch, encode_batch};
    use alloy_primitives::Bytes;
    let kit = Kit::new(TreeConfig::default());
    let txs: Vec<Bytes> = (0..3)
        .map(|n| Bytes::from(kit.transfer(0, n, Address::repeat_byte(1), 1).encoded_2718()))
        .collect();
    let decoded = decode_batch(&encode_batch(&txs)).unwrap();
    assert_eq!(decoded.iter().map(|t| Bytes::from(t.encoded_2718())).collect::<Vec<_>>(), txs);

    assert!(matches!(decode_batch(b"garbage"), Err(BatchError::Rlp(_))));
    assert!(matches!(decode_batch(&encode_batch(&[])), Err(BatchError::Size(0))));
    let too_many = vec![txs[0].clone(); MAX_BATCH_TXS + 1];
    assert!(matches!(decode_batch(&encode_batch(&too_many)), Err(BatchError::TooMany)));
    let mut trailing = encode_batch(&txs);
    trailing.push(0);
    assert!(matches!(decode_batch(&trailing), Err(BatchError::Trailing)));
    let bad = vec![txs[0].clone(), Bytes::from_static(b"\x02\xff")];
    let err = decode_batch(&encode_batch(&bad)).unwrap_err();
    assert!(matches!(err, BatchError::Transaction { index: 1, .. }), "{err}");
}

#[test]
fn batch_elements_are_counted_before_anything_is_decoded() {
    use super::{BatchError, MAX_BATCH_TXS, decode_batch};
    // 257 one-byte elements, then an element whose header claims 65,535 bytes that are not
    // there: the count refuses the batch before the scan reaches (or anything decodes) it.
    let mut payload = vec![0x01u8; MAX_BATCH_TXS + 1];
    payload.extend_from_slice(&[0xb9, 0xff, 0xff]);
    let mut message = Vec::new();
    alloy_rlp::Header { list: true, payload_length: payload.len() }.encode(&mut message);
    message.extend_from_slice(&payload);
    let err = decode_batch(&message).unwrap_err();
    assert!(matches!(err, BatchError::TooMany), "{err}");
    assert_eq!(err.to_string(), format!("batch of more than {MAX_BATCH_TXS} transactions"));
    // A million one-byte elements: refused from the headers alone.
    let mut huge = Vec::new();
    alloy_rlp::Header { list: true, payload_length: 1_000_000 }.encode(&mut huge);
    huge.resize(huge.len() + 1_000_000, 0x01);
    assert!(matches!(decode_batch(&huge), Err(BatchError::TooMany)));
    // An element that is a list, not a transaction's bytes.
    let mut nested = Vec::new();
    alloy_rlp::Header { list: true, payload_length: 1 }.encode(&mut nested);
    nested.push(0xc0);
    assert!(matches!(decode_batch(&nested), Err(BatchError::Rlp(_))));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn peer_sending_garbage_is_disconnected() {
    use libp2p::futures::StreamExt;
    let a = start(Vec::new());
    let boot = listen_addr(&a).await;
    // A bare gossipsub peer on the same topic that publishes bytes that are no transaction.
    let (mut rogue, topic) = rogue_peer(boot);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    let mut sent = 0u32;
    let mut disconnected = false;
    while tokio::time::Instant::now() < deadline && !disconnected {
        tokio::select! {
            event = rogue.select_next_some() => {
                if let libp2p::swarm::SwarmEvent::ConnectionClosed { .. } = event {
                    disconnected = sent >= super::MAX_STRIKES;
                }
            }
            _ = tokio::time::sleep(Duration::from_millis(200)) => {
                if rogue.behaviour_mut().publish(topic.clone(), format!("garbage {sent}").into_bytes()).is_ok() {
                    sent += 1;
                }
            }
        }
    }
    assert!(disconnected, "the node dropped the peer after {sent} garbage messages");
    assert!(a.kit.pool.read().is_empty());
    a.gossip.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bootnode_that_starts_later_is_dialled_again() {
    // The bootnode's identity and port are known (as in a generated testnet) before it runs.
    let boot_key = identity::Keypair::generate_ed25519();
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let boot_addr: libp2p::Multiaddr =
        format!("/ip4/127.0.0.1/tcp/{port}/p2p/{}", boot_key.public().to_peer_id())
            .parse()
            .unwrap();
    // The node starts first: its first dial is refused.
    let node = start(vec![boot_addr]);
    tokio::time::sleep(Duration::from_millis(500)).await;
    let boot = start_with(boot_key, port, Vec::new());
    // The bootnode never dials the node, so only a redial connects them.
    let tx = node.kit.transfer(1, 0, Address::repeat_byte(0xb2), 1);
    let hash = node.ctx.add_raw_transaction(&tx.encoded_2718()).unwrap();
    assert!(wait_in_pool(&boot, hash).await, "the bootnode hears of the node's transaction");
    for el in [node, boot] {
        el.gossip.stop();
    }
}

/// One peer dialling an EL again and again gets at most `MAX_CONNECTIONS_PER_PEER`
/// connections; the rest are refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_peer_cannot_open_more_than_its_share_of_connections() {
    use futures::StreamExt;
    use libp2p::swarm::{SwarmEvent, dial_opts::DialOpts};
    let el = start(Vec::new());
    let addr = listen_addr(&el).await;
    let mut attacker = libp2p::SwarmBuilder::with_new_identity()
        .with_tokio()
        .with_tcp(
            libp2p::tcp::Config::default(),
            libp2p::noise::Config::new,
            libp2p::yamux::Config::default,
        )
        .unwrap()
        .with_behaviour(|_| libp2p::swarm::dummy::Behaviour)
        .unwrap()
        .build();
    for _ in 0..6 {
        attacker.dial(DialOpts::unknown_peer_id().address(addr.clone()).build()).unwrap();
    }
    let mut open = 0i32;
    let until = tokio::time::Instant::now() + Duration::from_secs(6);
    while let Ok(event) = tokio::time::timeout_at(until, attacker.select_next_some()).await {
        match event {
            SwarmEvent::ConnectionEstablished { .. } => open += 1,
            SwarmEvent::ConnectionClosed { .. } => open -= 1,
            _ => {}
        }
    }
    assert!((1..=super::MAX_CONNECTIONS_PER_PEER as i32).contains(&open), "{open} connections");
    el.gossip.stop();
}

/// A bare gossipsub peer on the transaction topic, dialling `boot`.
fn rogue_peer(
    boot: libp2p::Multiaddr,
) -> (
    libp2p::Swarm<
        gossipsub::Behaviour<gossipsub::IdentityTransform, gossipsub::AllowAllSubscriptionFilter>,
    >,
    gossipsub::IdentTopic,
) {
    use libp2p::{noise, tcp, yamux};
    let mut rogue = libp2p::SwarmBuilder::with_new_identity()
        .with_tokio()
        .with_tcp(tcp::Config::default(), noise::Config::new, yamux::Config::default)
        .unwrap()
        .with_behaviour(|key| {
            let config = gossipsub::ConfigBuilder::default()
                .heartbeat_interval(Duration::from_millis(500))
                .max_transmit_size(4 * 1024 * 1024)
                .build()
                .unwrap();
            gossipsub::Behaviour::<
                gossipsub::IdentityTransform,
                gossipsub::AllowAllSubscriptionFilter,
            >::new(gossipsub::MessageAuthenticity::Signed(key.clone()), config)
            .unwrap()
        })
        .unwrap()
        .build();
    let topic = gossipsub::IdentTopic::new(super::topic_name(crate::testkit::CHAIN_ID));
    rogue.behaviour_mut().subscribe(&topic).unwrap();
    rogue.dial(boot).unwrap();
    (rogue, topic)
}

/// A peer whose batches are well-formed, correctly signed transactions that cannot pay (their
/// senders hold nothing) takes a strike per window of mostly-junk and is disconnected; no
/// transaction of it enters the pool.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_gossiping_transactions_that_cannot_pay_is_disconnected() {
    use alloy_consensus::{SignableTransaction, TxEip1559};
    use alloy_primitives::{TxKind, U256};
    use alloy_signer::SignerSync;
    use libp2p::futures::StreamExt;
    let a = start(Vec::new());
    let boot = listen_addr(&a).await;
    let (mut rogue, topic) = rogue_peer(boot);
    let broke = alloy_signer_local::PrivateKeySigner::random();
    let mut nonce = 0u64;
    let mut junk_batch = || {
        let txs: Vec<alloy_consensus::TxEnvelope> = (0..super::MAX_BATCH_TXS)
            .map(|_| {
                let tx = TxEip1559 {
                    chain_id: crate::testkit::CHAIN_ID,
                    nonce,
                    gas_limit: 21_000,
                    max_fee_per_gas: 100_000_000_000,
                    max_priority_fee_per_gas: 1_000_000_000,
                    to: TxKind::Call(Address::repeat_byte(0xb3)),
                    value: U256::from(1u64),
                    ..Default::default()
                };
                nonce += 1;
                let sig = broke.sign_hash_sync(&tx.signature_hash()).unwrap();
                tx.into_signed(sig).into()
            })
            .collect();
        super::encode_batch(
            &txs.iter()
                .map(|t| alloy_primitives::Bytes::from(t.encoded_2718()))
                .collect::<Vec<_>>(),
        )
    };
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    let (mut sent, mut disconnected) = (0u32, false);
    while tokio::time::Instant::now() < deadline && !disconnected {
        tokio::select! {
            event = rogue.select_next_some() => {
                if let libp2p::swarm::SwarmEvent::ConnectionClosed { .. } = event {
                    disconnected = sent >= super::MAX_STRIKES;
                }
            }
            _ = tokio::time::sleep(Duration::from_millis(300)) => {
                if rogue.behaviour_mut().publish(topic.clone(), junk_batch()).is_ok() {
                    sent += 1;
                }
            }
        }
    }
    assert!(disconnected, "still connected after {sent} batches of transactions that cannot pay");
    assert!(a.kit.pool.read().is_empty());
    a.gossip.stop();
}
