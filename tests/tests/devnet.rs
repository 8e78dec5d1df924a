//! Four real validators (each a `tandem-el` + `tandem-cl` process pair on 127.0.0.1), driven
//! the way users drive them: alloy's provider and local signer over `eth_sendRawTransaction`.
//!
//! - transactions sent to different nodes are all finalized, and every node reports the same
//!   finalized block hashes and state roots; a contract deployed through node 1 is callable on
//!   node 4;
//! - a validator killed with SIGKILL under load: the others keep finalizing, it restarts,
//!   catches up, and no finalized transaction is lost, no fork;
//! - a node started later, and a follower (no validator key), sync from genesis to the head by
//!   range sync from the others' storage;
//! - with 2 of 4 validators stopped nothing is finalized and nothing diverges; restarted, the
//!   chain resumes.
//!
//! The two networks run one after the other (a lock), as they share the machine's two cores.

#![allow(clippy::unwrap_used)]

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use alloy_primitives::{Address, B256, Bytes, U256, hex};
use alloy_provider::{
    Provider, ProviderBuilder,
    network::{Ethereum, EthereumWallet, Network, TransactionBuilder},
};
use alloy_signer_local::PrivateKeySigner;
use serde_json::json;
use tandem_e2e::testnet::{Testnet, hash_and_root, height, rpc, wait_all};

static ONE_NETWORK_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

type TxRequest = <Ethereum as Network>::TransactionRequest;

fn dev_key(index: u32) -> PrivateKeySigner {
    tandem_e2e::loadgen::signing::dev_key(index).unwrap()
}

fn wallet(index: u32, url: &str) -> impl Provider + Clone {
    ProviderBuilder::new()
        .wallet(EthereumWallet::from(dev_key(index)))
        .connect_http(url.parse().unwrap())
}

/// A contract whose constructor stores 42 in slot 0 and whose code returns slot 0 to any call.
const ANSWER_INIT_CODE: &str = "602a600055600b6011600039600b6000f360005460005260206000f3";

/// Blocks 1..=`upto` have the same hash and state root on every URL.
async fn assert_same_chain(urls: &[String], upto: u64) {
    for n in 1..=upto {
        let expected = hash_and_root(&urls[0], n).await.unwrap_or_else(|| panic!("block {n}"));
        for u in &urls[1..] {
            let got = hash_and_root(u, n).await;
            assert_eq!(got.as_ref(), Some(&expected), "{u} differs from {} at {n}", urls[0]);
        }
    }
}

/// The lowest finalized height over the URLs.
async fn min_finalized(urls: &[String]) -> u64 {
    let mut lowest = u64::MAX;
    for u in urls {
        lowest = lowest.min(height(u, "finalized").await.unwrap_or(0));
    }
    lowest
}

/// `(block number, block hash)` of a transaction's receipt on a node, if it has one.
async fn receipt_at(url: &str, hash: B256) -> Option<(u64, String)> {
    let r = rpc(url, "eth_getTransactionReceipt", json!([hash])).await?;
    let n = u64::from_str_radix(r["blockNumber"].as_str()?.trim_start_matches("0x"), 16).ok()?;
    Some((n, r["blockHash"].as_str()?.to_string()))
}

/// Waits for every hash to have a receipt on `url`; returns the highest block among them.
async fn wait_receipts(url: &str, hashes: &[B256], secs: u64) -> u64 {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
    let mut highest = 0;
    for h in hashes {
        loop {
            if let Some((n, _)) = receipt_at(url, *h).await {
                highest = highest.max(n);
                break;
            }
            assert!(tokio::time::Instant::now() < deadline, "{h} not included on {url}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    highest
}

/// Sends transfers from dev account `index` through `url` until `stop`; returns accepted hashes
/// and the errors returned by the node. Nonces are counted here, so a refused transaction is
/// retried with the same nonce instead of leaving a gap.
async fn load(index: u32, url: String, stop: Arc<AtomicBool>) -> (Vec<B256>, Vec<String>) {
    let provider = wallet(index, &url);
    let from = dev_key(index).address();
    let to = Address::repeat_byte(0x40 + index as u8);
    let mut nonce = provider.get_transaction_count(from).pending().await.unwrap();
    let (mut sent, mut errors) = (Vec::new(), Vec::new());
    while !stop.load(Ordering::Relaxed) {
        let tx = TxRequest::default().with_to(to).with_value(U256::from(1u64)).with_nonce(nonce);
        match provider.send_transaction(tx).await {
            Ok(pending) => {
                sent.push(*pending.tx_hash());
                nonce += 1;
            }
            // The pool's per-sender limit is back-pressure (while a leader is down, blocks
            // come slower than this sender sends): wait, as a wallet would, and retry.
            Err(e) if e.to_string().contains("account limit exceeded") => {
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
            Err(e) => errors.push(e.to_string()),
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    (sent, errors)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transfers_to_every_node_finalize_identically_and_a_kill_9_under_load_loses_nothing() {
    let _one = ONE_NETWORK_AT_A_TIME.lock().await;
    let mut net = Testnet::generate(4, 0).unwrap();
    for i in 0..4 {
        net.start(i).unwrap();
    }
    let urls = net.urls();
    if let Err(e) = wait_all(&urls, "finalized", 2, 120).await {
        panic!("{e}\n{}", net.log_tail(0, 20));
    }

    // One transfer through each node, from a different account each.
    let mut hashes = Vec::new();
    for (i, url) in urls.iter().enumerate() {
        let provider = wallet(1 + i as u32, url);
        for k in 0..3u64 {
            let tx = TxRequest::default()
                .with_to(Address::repeat_byte(0xa0 + i as u8))
                .with_value(U256::from(1_000 + k));
            hashes.push(*provider.send_transaction(tx).await.unwrap().tx_hash());
        }
    }
    let last = wait_receipts(&urls[0], &hashes, 60).await;
    wait_all(&urls, "finalized", last, 60).await.unwrap();
    for h in &hashes {
        let on_first = receipt_at(&urls[0], *h).await.unwrap();
        for u in &urls[1..] {
            assert_eq!(receipt_at(u, *h).await.as_ref(), Some(&on_first), "{h} on {u}");
        }
    }
    for (i, url) in urls.iter().enumerate() {
        let p = ProviderBuilder::new().connect_http(url.parse().unwrap());
        let got = p.get_balance(Address::repeat_byte(0xa0 + i as u8)).await.unwrap();
        assert_eq!(got, U256::from(3_003u64), "transfers sent through node {i}");
    }
    assert_same_chain(&urls, min_finalized(&urls).await).await;

    // A contract deployed through node 1 is callable on node 4.
    let deployer = wallet(5, &urls[0]);
    let deploy =
        TxRequest::default().with_deploy_code(Bytes::from(hex::decode(ANSWER_INIT_CODE).unwrap()));
    let receipt = deployer.send_transaction(deploy).await.unwrap().get_receipt().await.unwrap();
    assert!(receipt.status());
    let contract = receipt.contract_address.unwrap();
    wait_all(&urls[3..], "finalized", receipt.block_number.unwrap(), 60).await.unwrap();
    let reader = ProviderBuilder::new().connect_http(urls[3].parse().unwrap());
    let answer = reader.call(TxRequest::default().with_to(contract)).await.unwrap();
    assert_eq!(U256::from_be_slice(&answer), U256::from(42u64));

    // Load through nodes 1-3 while node 4 is killed with SIGKILL.
    let stop = Arc::new(AtomicBool::new(false));
    let senders: Vec<_> =
        (0..3).map(|i| tokio::spawn(load(6 + i as u32, urls[i].clone(), stop.clone()))).collect();
    tokio::time::sleep(Duration::from_secs(2)).await;
    net.kill(3);
    let before = min_finalized(&urls[..3]).await;
    wait_all(&urls[..3], "finalized", before + 10, 120).await.unwrap();
    net.start(3).unwrap();
    tokio::time::sleep(Duration::from_secs(3)).await;
    stop.store(true, Ordering::Relaxed);
    let mut accepted = Vec::new();
    for s in senders {
        let (sent, errors) = s.await.unwrap();
        assert!(
            errors.is_empty(),
            "{} rejected under load, first: {:?}",
            errors.len(),
            errors.first()
        );
        accepted.extend(sent);
    }
    assert!(accepted.len() >= 30, "only {} transactions sent under load", accepted.len());
    let last = wait_receipts(&urls[0], &accepted, 90).await;
    if let Err(e) = wait_all(&urls, "finalized", last, 180).await {
        panic!("{e}\n{}", net.log_tail(3, 30));
    }
    for h in &accepted {
        let on_first = receipt_at(&urls[0], *h).await.unwrap();
        assert_eq!(receipt_at(&urls[3], *h).await, Some(on_first), "{h} on the restarted node");
    }
    assert_same_chain(&urls, min_finalized(&urls).await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_late_node_and_a_follower_sync_from_genesis_and_a_lost_quorum_halts_then_resumes() {
    let _one = ONE_NETWORK_AT_A_TIME.lock().await;
    // Validators keep only 8 rounds in memory, so the late nodes must range-sync committed
    // blocks from the others' storage; node 5 is a follower (no validator key).
    let mut net = Testnet::generate_with(4, 1, 1, &["--retained-rounds", "8"]).unwrap();
    let all = net.urls();
    let urls = all[..4].to_vec();
    // Three of four validators are a quorum: node 4 stays off for now.
    for i in 0..3 {
        net.start(i).unwrap();
    }
    if let Err(e) = wait_all(&urls[..3], "finalized", 20, 180).await {
        panic!("{e}\n{}", net.log_tail(0, 20));
    }
    let provider = wallet(1, &urls[0]);
    let tx = TxRequest::default().with_to(Address::repeat_byte(0xcc)).with_value(U256::from(5u64));
    let receipt = provider.send_transaction(tx).await.unwrap().get_receipt().await.unwrap();

    // Node 4 and the follower start late, from genesis, and catch up with the head.
    net.start(3).unwrap();
    net.start(4).unwrap();
    let head = height(&urls[0], "latest").await.unwrap();
    if let Err(e) = wait_all(&all[3..], "finalized", head, 180).await {
        panic!("{e}\n{}\n{}", net.log_tail(3, 30), net.log_tail(4, 30));
    }
    assert_same_chain(&all, min_finalized(&all).await).await;
    assert_eq!(
        receipt_at(&urls[3], receipt.transaction_hash).await.map(|r| r.0),
        receipt.block_number
    );
    assert_same_chain(&urls, min_finalized(&urls).await).await;

    // Two of four stopped: no quorum, so nothing new is finalized and nothing diverges.
    net.stop(2).unwrap();
    net.stop(3).unwrap();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let halted = [height(&urls[0], "finalized").await, height(&urls[1], "finalized").await];
    tokio::time::sleep(Duration::from_secs(8)).await;
    let later = [height(&urls[0], "finalized").await, height(&urls[1], "finalized").await];
    assert_eq!(halted, later, "finalized moved without a quorum");
    let stuck = halted.iter().flatten().min().copied().unwrap();
    assert_same_chain(&urls[..2], stuck).await;

    // Restarted, the four resume finalizing on the same chain.
    net.start(2).unwrap();
    net.start(3).unwrap();
    if let Err(e) = wait_all(&urls, "finalized", stuck + 5, 180).await {
        panic!("{e}\n{}", net.log_tail(2, 30));
    }
    assert_same_chain(&urls, min_finalized(&urls).await).await;
}

/// Calldata of one transaction of the full block: zero bytes, the cheapest under EIP-7623's
/// floor (10 gas a byte), just under the pool's 128 KiB transaction limit.
const FAT_CALLDATA: usize = 120_000;
/// Gas of one such transaction: 21,000 + 10 × its calldata (the floor price).
const FAT_GAS: u64 = 21_000 + 10 * FAT_CALLDATA as u64;

/// A block filled to the 60M gas limit with maximum-size calldata transactions (≈ 5.9 MB,
/// which as hex JSON inside a proposal passed the 10 MiB message limit and halted the chain)
/// is proposed, certified and committed, and a validator that was down fetches it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_block_full_of_calldata_is_committed_and_fetched_by_a_node_that_missed_it() {
    let _one = ONE_NETWORK_AT_A_TIME.lock().await;
    let mut net = Testnet::generate(4, 3).unwrap();
    let urls = net.urls();
    for i in 0..3 {
        net.start(i).unwrap();
    }
    if let Err(e) = wait_all(&urls[..3], "finalized", 2, 180).await {
        panic!("{e}\n{}", net.log_tail(0, 20));
    }
    // 60 transactions: 73M gas, more than one 60M block.
    let mut hashes = Vec::new();
    for index in 1..=6u32 {
        let provider = wallet(index, &urls[0]);
        let from = dev_key(index).address();
        let nonce = provider.get_transaction_count(from).pending().await.unwrap();
        for k in 0..10 {
            let tx = TxRequest::default()
                .with_to(Address::repeat_byte(0xda))
                .with_input(Bytes::from(vec![0u8; FAT_CALLDATA]))
                .with_gas_limit(FAT_GAS)
                .with_nonce(nonce + k);
            hashes.push(*provider.send_transaction(tx).await.unwrap().tx_hash());
        }
    }
    let last = wait_receipts(&urls[0], &hashes, 180).await;
    if let Err(e) = wait_all(&urls[..3], "finalized", last, 120).await {
        panic!("{e}\n{}", net.log_tail(0, 30));
    }
    // The fullest block carries most of a 60M-gas block's worth of calldata.
    let mut fullest = (0u64, 0usize);
    let mut blocks = std::collections::BTreeSet::new();
    for h in &hashes {
        blocks.insert(receipt_at(&urls[0], *h).await.unwrap().0);
    }
    for n in blocks {
        let block =
            rpc(&urls[0], "eth_getBlockByNumber", json!([format!("{n:#x}"), true])).await.unwrap();
        let bytes: usize = block["transactions"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t["input"].as_str().unwrap().len().saturating_sub(2) / 2)
            .sum();
        if bytes > fullest.1 {
            fullest = (n, bytes);
        }
    }
    assert!(fullest.1 >= 45 * FAT_CALLDATA, "fullest block {} has {} bytes", fullest.0, fullest.1);
    // The validator that missed it comes back and fetches the blocks.
    net.start(3).unwrap();
    if let Err(e) = wait_all(&urls, "finalized", last + 2, 180).await {
        panic!("{e}\n{}", net.log_tail(3, 30));
    }
    assert_same_chain(&urls, min_finalized(&urls).await).await;
    assert_eq!(receipt_at(&urls[3], hashes[0]).await, receipt_at(&urls[0], hashes[0]).await);
}
