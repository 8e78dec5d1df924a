//! A mix of hostile requests and peers against one node of a 4-validator devnet (the native L1
//! exchange on) for a minute, while honest transfers flow through another node: no process
//! exits, finality never stalls for long, and every honest transfer is finalized.
//!
//! The attacks (all on 127.0.0.1, bounded in count and time): simulating the protocol-only
//! end-of-block step with a forged open-account count, `eth_feeHistory` with 1,000 percentiles,
//! 1,001-call batches, `eth_getProof` floods, WebSocket upgrades from a foreign origin and a
//! foreign `Host`, transactions that cannot pay from many senders, and a peer dialling the EL's
//! p2p port again and again.

#![allow(clippy::unwrap_used)]

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use alloy_primitives::{Address, B256, U256, address};
use alloy_provider::{
    Provider, ProviderBuilder,
    network::{Ethereum, EthereumWallet, Network, TransactionBuilder},
};
use serde_json::{Value, json};
use tandem_e2e::testnet::{Testnet, height, wait_all, wait_finalized_receipts};

type TxRequest = <Ethereum as Network>::TransactionRequest;

const ATTACK: Duration = Duration::from_secs(60);
const L1_CORE: Address = address!("0x00000000000000000000000000000000000008ff");
const L1_WRITE: Address = address!("0x3333333333333333333333333333333333333333");

/// Raw JSON-RPC: the status code and body (any answer counts, errors included).
async fn post(client: &reqwest::Client, url: &str, body: Value) -> Option<(u16, String)> {
    let r = client.post(url).json(&body).timeout(Duration::from_secs(10)).send().await.ok()?;
    Some((r.status().as_u16(), r.text().await.ok()?))
}

/// One round of every RPC attack against `url`; returns how many were refused as they must be
/// (the node answered, with the refusal that names the limit).
async fn rpc_attacks(client: &reqwest::Client, url: &str, ws_port: u64, round: u64) -> u32 {
    let refused = |answer: Option<(u16, String)>, needle: &str| {
        u32::from(answer.is_some_and(|(_, body)| body.contains(needle)))
    };
    let mut slot = [0u8; 32];
    slot[0] = 0x0a;
    let selector = alloy_primitives::hex::encode(&alloy_primitives::keccak256("endOfBlock()")[..4]);
    let call = json!({ "from": "0xfffffffffffffffffffffffffffffffffffffffe", "to": L1_CORE,
        "data": format!("0x{selector}") });
    let overrides = json!({ L1_WRITE.to_string(): {
        "stateDiff": { B256::from(slot).to_string(): B256::from(U256::from(1u64) << 50) } } });
    let body = json!({"jsonrpc":"2.0","id":1,"method":"eth_call",
        "params":[call, "latest", overrides]});
    let mut ok = refused(post(client, url, body).await, "protocol-only");
    let percentiles: Vec<f64> = (0..1000).map(|i| f64::from(i) / 10.0).collect();
    let body = json!({"jsonrpc":"2.0","id":2,"method":"eth_feeHistory",
        "params":["0x400", "latest", percentiles]});
    ok += refused(post(client, url, body).await, "over the query limit");
    let batch: Vec<Value> = (0..1001)
        .map(|i| json!({"jsonrpc":"2.0","id":i,"method":"eth_blockNumber","params":[]}))
        .collect();
    ok += refused(post(client, url, Value::Array(batch)).await, "error");
    let keys: Vec<String> = (0..1024).map(|i| B256::from(U256::from(i)).to_string()).collect();
    for _ in 0..8 {
        let body = json!({"jsonrpc":"2.0","id":3,"method":"eth_getProof",
            "params":[L1_WRITE, keys.clone(), "latest"]});
        let _ = post(client, url, body).await;
    }
    // A browser page on another site, and a DNS-rebinding Host.
    let ws = format!("http://127.0.0.1:{ws_port}");
    let _ = client
        .get(&ws)
        .header("Origin", "https://attacker.example")
        .header("Connection", "Upgrade")
        .header("Upgrade", "websocket")
        .header("Sec-WebSocket-Version", "13")
        .header("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ==")
        .timeout(Duration::from_secs(5))
        .send()
        .await;
    let rebinding = client
        .post(url)
        .header("Host", format!("attacker{round}.example"))
        .json(&json!({"jsonrpc":"2.0","id":4,"method":"eth_blockNumber","params":[]}))
        .timeout(Duration::from_secs(5))
        .send()
        .await;
    ok += u32::from(rebinding.is_ok_and(|r| r.status().as_u16() == 403));
    ok
}

/// Transactions that cannot pay, from fresh keys: refused or, if admitted, evicted first.
async fn junk(url: &str, round: u64) {
    for k in 0..20u64 {
        let key = alloy_signer_local::PrivateKeySigner::random();
        let provider = ProviderBuilder::new()
            .wallet(EthereumWallet::from(key))
            .connect_http(url.parse().unwrap());
        let tx = TxRequest::default()
            .with_to(Address::repeat_byte(0xee))
            .with_value(U256::from(round * 100 + k))
            .with_nonce(k % 3)
            .with_gas_limit(21_000)
            .with_max_fee_per_gas(1)
            .with_max_priority_fee_per_gas(1)
            .with_chain_id(1337);
        let _ = provider.send_transaction(tx).await;
    }
}

/// Dials the EL's p2p port several times at once and lets the connections go.
async fn dial_flood(port: u64) {
    let mut held = Vec::new();
    for _ in 0..16 {
        held.push(tokio::net::TcpStream::connect(("127.0.0.1", port as u16)).await);
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    drop(held);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_minute_of_attacks_on_one_node_stops_neither_finality_nor_honest_transfers() {
    let mut net = Testnet::generate_opts(4, 0, 13, &[], &["--l1"]).unwrap();
    for i in 0..4 {
        net.start(i).unwrap();
    }
    let urls = net.urls();
    if let Err(e) = wait_all(&urls, "finalized", 3, 180).await {
        panic!("{e}\n{}", net.log_tail(0, 20));
    }
    let target = urls[3].clone();
    let ws_port = net.nodes[3]["ports"]["ws"].as_u64().unwrap();
    let p2p_port = net.nodes[3]["ports"]["el_p2p"].as_u64().unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let rounds = Arc::new(AtomicU64::new(0));
    let refusals = Arc::new(AtomicU64::new(0));
    let attacker = {
        let (stop, rounds, target) = (stop.clone(), rounds.clone(), target.clone());
        let refusals = refusals.clone();
        tokio::spawn(async move {
            let client = reqwest::Client::new();
            let mut round = 0;
            while !stop.load(Ordering::Relaxed) {
                let (ok, (), ()) = tokio::join!(
                    rpc_attacks(&client, &target, ws_port, round),
                    junk(&target, round),
                    dial_flood(p2p_port)
                );
                refusals.fetch_add(u64::from(ok), Ordering::Relaxed);
                round += 1;
                rounds.store(round, Ordering::Relaxed);
            }
        })
    };
    // Honest transfers through node 1, one every 500 ms; finality watched all along.
    let honest = ProviderBuilder::new()
        .wallet(EthereumWallet::from(tandem_e2e::loadgen::signing::dev_key(2).unwrap()))
        .connect_http(urls[1].parse().unwrap());
    let from = tandem_e2e::loadgen::signing::dev_key(2).unwrap().address();
    let mut nonce = honest.get_transaction_count(from).pending().await.unwrap();
    let mut sent: Vec<B256> = Vec::new();
    let (start, mut last_final, mut last_change) = (Instant::now(), 0u64, Instant::now());
    let mut longest_stall = Duration::ZERO;
    while start.elapsed() < ATTACK {
        let tx = TxRequest::default()
            .with_to(Address::repeat_byte(0x55))
            .with_value(U256::from(1u64))
            .with_nonce(nonce);
        sent.push(*honest.send_transaction(tx).await.unwrap().tx_hash());
        nonce += 1;
        let f = height(&urls[1], "finalized").await.unwrap_or(0);
        if f > last_final {
            last_final = f;
            last_change = Instant::now();
        }
        longest_stall = longest_stall.max(last_change.elapsed());
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    stop.store(true, Ordering::Relaxed);
    attacker.await.unwrap();
    let rounds = rounds.load(Ordering::Relaxed);
    eprintln!(
        "{} attack rounds on node 3; longest finality stall {:.1} s; {} honest transfers",
        rounds,
        longest_stall.as_secs_f64(),
        sent.len()
    );
    assert!(rounds >= 3, "the attacks did not run");
    // Four refusals a round: the end-of-block simulation, 1,000 percentiles, the 1,001-call
    // batch and the foreign Host (the rest are floods whose answers vary).
    assert_eq!(refusals.load(Ordering::Relaxed), 4 * rounds, "not every attack was refused");
    assert!(longest_stall < Duration::from_secs(10), "finality stalled {longest_stall:?}");
    for i in 0..4 {
        assert!(net.is_alive(i), "node {i} exited\n{}", net.log_tail(i, 30));
    }
    // Every honest transfer is finalized, on every node (the attacked one too).
    if let Err(e) = wait_finalized_receipts(&urls, &sent, 60).await {
        panic!("{e}\n{}", net.log_tail(3, 30));
    }
    let head = height(&urls[1], "latest").await.unwrap();
    if let Err(e) = wait_all(&urls, "finalized", head, 60).await {
        panic!("{e}\n{}", net.log_tail(3, 30));
    }
}
