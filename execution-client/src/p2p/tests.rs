//! Two and three in-process ELs on loopback: a transaction sent to one reaches the others'
//! pools through a bootnode, and a peer gossiping garbage is disconnected.

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
    let kit = Kit::new(TreeConfig::default());
    let ctx = Arc::new(RpcContext::new(
        kit.tree.db().clone(),
        kit.executor.clone(),
        kit.tree.view_handle(),
        kit.pool.clone(),
        Arc::new(SenderCache::new(1000)),
    ));
    let config = P2pConfig {
        keypair: identity::Keypair::generate_ed25519(),
        listen_addr: "127.0.0.1".parse().unwrap(),
        port: 0,
        bootnodes,
    };
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
    let tx = a.kit.transfer(0, 0, Address::repeat_byte(0xb0), 1);
    let hash = b.ctx.add_raw_transaction(&tx.encoded_2718()).unwrap();
    assert!(wait_in_pool(&a, hash).await, "A (the bootnode) got the transaction");
    assert!(wait_in_pool(&c, hash).await, "C got it through A");
    for el in [&a, &c] {
        assert_eq!(el.kit.pool.read().len(), 1, "once, no duplicates");
    }
    for el in [a, b, c] {
        el.gossip.stop();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn peer_sending_garbage_is_disconnected() {
    use libp2p::{futures::StreamExt, noise, tcp, yamux};
    let a = start(Vec::new());
    let boot = listen_addr(&a).await;
    // A bare gossipsub peer on the same topic that publishes bytes that are no transaction.
    let mut rogue = libp2p::SwarmBuilder::with_new_identity()
        .with_tokio()
        .with_tcp(tcp::Config::default(), noise::Config::new, yamux::Config::default)
        .unwrap()
        .with_behaviour(|key| {
            let config = gossipsub::ConfigBuilder::default()
                .heartbeat_interval(Duration::from_millis(500))
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
    let topic =
        gossipsub::IdentTopic::new(format!("/tandem-el/{}/txs/1", crate::testkit::CHAIN_ID));
    rogue.behaviour_mut().subscribe(&topic).unwrap();
    rogue.dial(boot).unwrap();
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
