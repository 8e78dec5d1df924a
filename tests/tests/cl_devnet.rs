//! A real network: `tandem-cl testnet` writes four validators, each a `tandem-el` process driven
//! by a `tandem-cl` process over the Engine API, talking libp2p on 127.0.0.1. A wallet transfer
//! sent with alloy is committed and every EL agrees on the block; a validator that goes down
//! only costs its rounds; restarted from its data dirs it catches up; with both data dirs wiped
//! it syncs again from genesis.

#![allow(clippy::unwrap_used)]

use std::time::{Duration, Instant};

use alloy_primitives::{Address, U256};
use alloy_provider::{
    Provider, ProviderBuilder,
    network::{Ethereum, EthereumWallet, Network, TransactionBuilder},
};
use tandem_e2e::testnet::Testnet;

async fn block_number(url: &str) -> Option<u64> {
    let p = ProviderBuilder::new().connect_http(url.parse().ok()?);
    p.get_block_number().await.ok()
}

async fn wait_height(urls: &[String], height: u64, secs: u64) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        let mut heights = Vec::new();
        for u in urls {
            heights.push(block_number(u).await.unwrap_or(0));
        }
        if heights.iter().all(|h| *h >= height) {
            return;
        }
        assert!(Instant::now() < deadline, "heights {heights:?} did not reach {height}");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

async fn hash_at(url: &str, n: u64) -> alloy_primitives::B256 {
    let p = ProviderBuilder::new().connect_http(url.parse().unwrap());
    p.get_block_by_number(n.into()).await.unwrap().unwrap().header.hash
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn four_validators_commit_a_transfer_survive_a_down_validator_catch_it_up_and_resync_it_from_genesis()
 {
    let mut net = Testnet::generate(4, 2).unwrap();
    for i in 0..4 {
        net.start(i).unwrap();
    }
    let urls = net.urls();

    wait_height(&urls, 3, 90).await;

    let key = tandem_e2e::loadgen::signing::dev_key(0).unwrap();
    let provider = ProviderBuilder::new()
        .wallet(EthereumWallet::from(key))
        .connect_http(urls[0].parse().unwrap());
    let bob = Address::repeat_byte(0xb0);
    let tx = <Ethereum as Network>::TransactionRequest::default()
        .with_to(bob)
        .with_value(U256::from(1_000_000_007u64));
    let pending = provider.send_transaction(tx).await.unwrap();
    let receipt = tokio::time::timeout(Duration::from_secs(60), pending.get_receipt())
        .await
        .expect("committed within 60 s")
        .unwrap();
    assert!(receipt.status());
    let n = receipt.block_number.unwrap();
    wait_height(&urls, n, 60).await;
    let expected = hash_at(&urls[0], n).await;
    for u in &urls[1..] {
        assert_eq!(hash_at(u, n).await, expected, "{u} disagrees at {n}");
        let p = ProviderBuilder::new().connect_http(u.parse().unwrap());
        assert_eq!(p.get_balance(bob).await.unwrap(), U256::from(1_000_000_007u64));
    }

    // Validator 3 (CL and EL) goes down: the other three keep committing.
    net.kill(3);
    let h = block_number(&urls[0]).await.unwrap();
    wait_height(&urls[..3], h + 8, 120).await;

    // Restarted from its data dirs, it catches up with the others.
    net.start(3).unwrap();
    let target = block_number(&urls[0]).await.unwrap() + 2;
    wait_height(&urls, target, 120).await;
    assert_eq!(hash_at(&urls[3], target).await, hash_at(&urls[0], target).await);

    // Wiped (EL and CL data dirs), it is a new node: it syncs the whole chain from genesis.
    net.kill(3);
    for sub in ["el", "cl"] {
        let d = net.dir.join("node3").join(sub);
        std::fs::remove_dir_all(&d).unwrap();
        std::fs::create_dir_all(&d).unwrap();
    }
    net.start(3).unwrap();
    let target = block_number(&urls[0]).await.unwrap() + 2;
    wait_height(&urls, target, 180).await;
    for n in [1, n, target] {
        assert_eq!(hash_at(&urls[3], n).await, hash_at(&urls[0], n).await, "height {n}");
    }
}
