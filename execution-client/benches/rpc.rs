//! JSON-RPC throughput beside anvil, measured in the same run with the same client:
//! `eth_sendRawTransaction` intake (tx/s accepted into the pool, sender recovery included) and
//! `eth_getBalance` / `eth_call` requests/s.
//!
//! Run by `scripts/bench/rpc.sh`, which installs anvil and passes `ANVIL_BIN`. Without it only
//! tandem is measured. Sizes: `TANDEM_BENCH_TXS` (20000), `TANDEM_BENCH_READS` (20000),
//! `TANDEM_BENCH_CONCURRENCY` (32), `TANDEM_BENCH_SENDERS` (400). Prints a markdown table.
//!
//! Both nodes get the same funded accounts (the dev mnemonic's first `SENDERS` keys), chain id
//! 1337 and no block production during the run, so every transaction stays in the pool. The
//! tandem node runs in this process (the real node: engine thread, pool, RPC server); the load
//! generator shares the machine with whichever node is measured.

#![allow(clippy::unwrap_used, missing_docs)]

use std::{
    process::{Child, Command, Stdio},
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

use alloy_consensus::{SignableTransaction, TxEip1559, TxEnvelope};
use alloy_eips::eip2718::Encodable2718;
use alloy_primitives::{Address, Bytes, TxKind, U256};
use alloy_signer::SignerSync;
use alloy_signer_local::{MnemonicBuilder, PrivateKeySigner, coins_bip39::English};
use rayon::prelude::*;
use serde_json::{Value, json};
use tandem_el::{
    node::{self, NodeConfig, dev::DEV_MNEMONIC},
    rpc::{RpcConfig, RpcContext, ServerSettings, start_http_ws},
    txpool::PoolConfig,
};

const CHAIN_ID: u64 = 1337;

fn env(name: &str, default: usize) -> usize {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

fn keys(n: usize) -> Vec<PrivateKeySigner> {
    (0..n as u32)
        .into_par_iter()
        .map(|i| {
            MnemonicBuilder::<English>::default()
                .phrase(DEV_MNEMONIC)
                .index(i)
                .unwrap()
                .build()
                .unwrap()
        })
        .collect()
}

fn genesis(keys: &[PrivateKeySigner]) -> String {
    let mut alloc =
        serde_json::to_value(tandem_shared::system_contracts::prague_system_contracts()).unwrap();
    for key in keys {
        alloc[key.address().to_string()] = json!({ "balance": "0x21e19e0c9bab2400000" });
    }
    json!({
        "config": {
            "chainId": CHAIN_ID, "homesteadBlock": 0, "eip150Block": 0, "eip155Block": 0,
            "eip158Block": 0, "byzantiumBlock": 0, "constantinopleBlock": 0, "petersburgBlock": 0,
            "istanbulBlock": 0, "berlinBlock": 0, "londonBlock": 0, "mergeNetsplitBlock": 0,
            "terminalTotalDifficulty": 0, "terminalTotalDifficultyPassed": true,
            "shanghaiTime": 0, "cancunTime": 0, "pragueTime": 0,
            "depositContractAddress": tandem_shared::system_contracts::DEPOSIT_CONTRACT,
        },
        "gasLimit": "0x1c9c380", "difficulty": "0x0", "timestamp": "0x0",
        "baseFeePerGas": "0x3b9aca00", "extraData": "0x", "alloc": alloc
    })
    .to_string()
}

/// Transfers signed before timing: `per_sender` nonces for each key.
fn signed_transfers(keys: &[PrivateKeySigner], total: usize) -> Vec<Bytes> {
    let per_sender = total.div_ceil(keys.len());
    let mut jobs = Vec::new();
    for nonce in 0..per_sender as u64 {
        for (i, _) in keys.iter().enumerate() {
            if jobs.len() < total {
                jobs.push((i, nonce));
            }
        }
    }
    jobs.into_par_iter()
        .map(|(i, nonce)| {
            let tx = TxEip1559 {
                chain_id: CHAIN_ID,
                nonce,
                gas_limit: 21_000,
                max_fee_per_gas: 10_000_000_000,
                max_priority_fee_per_gas: 1_000_000_000,
                to: TxKind::Call(Address::repeat_byte(0xb0)),
                value: U256::from(1),
                ..Default::default()
            };
            let sig = keys[i].sign_hash_sync(&tx.signature_hash()).unwrap();
            let tx: TxEnvelope = tx.into_signed(sig).into();
            Bytes::from(tx.encoded_2718())
        })
        .collect()
}

/// Sends `bodies` with `concurrency` workers over keep-alive HTTP; returns (ok, errors, secs).
async fn blast(
    url: &str,
    bodies: Vec<String>,
    concurrency: usize,
) -> (usize, usize, f64, Option<String>) {
    let client = reqwest::Client::builder().pool_max_idle_per_host(concurrency).build().unwrap();
    let bodies = Arc::new(bodies);
    let next = Arc::new(AtomicUsize::new(0));
    let ok = Arc::new(AtomicUsize::new(0));
    let first_error = Arc::new(parking_lot::Mutex::new(None));
    let start = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..concurrency {
        let (client, bodies, next, ok, first_error, url) = (
            client.clone(),
            bodies.clone(),
            next.clone(),
            ok.clone(),
            first_error.clone(),
            url.to_string(),
        );
        tasks.push(tokio::spawn(async move {
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(body) = bodies.get(i) else { return };
                let response = client
                    .post(&url)
                    .header("content-type", "application/json")
                    .body(body.clone())
                    .send()
                    .await;
                let reply: Option<Value> = match response {
                    Ok(r) => r.json().await.ok(),
                    Err(_) => None,
                };
                match reply {
                    Some(v) if v.get("result").is_some() => {
                        ok.fetch_add(1, Ordering::Relaxed);
                    }
                    other => {
                        first_error.lock().get_or_insert_with(|| format!("{other:?}"));
                    }
                }
            }
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    let secs = start.elapsed().as_secs_f64();
    let ok = ok.load(Ordering::Relaxed);
    let error = first_error.lock().clone();
    (ok, bodies.len() - ok, secs, error)
}

fn request(method: &str, params: Value) -> String {
    json!({"jsonrpc": "2.0", "id": 1, "method": method, "params": params}).to_string()
}

struct Figures {
    intake: f64,
    balance: f64,
    call: f64,
}

async fn measure(
    name: &str,
    url: &str,
    raw: &[Bytes],
    reads: usize,
    concurrency: usize,
    senders: &[Address],
) -> Figures {
    let sends: Vec<String> =
        raw.iter().map(|r| request("eth_sendRawTransaction", json!([r]))).collect();
    let (ok, errors, secs, error) = blast(url, sends, concurrency).await;
    eprintln!(
        "{name}: sendRawTransaction {ok} ok, {errors} errors in {secs:.2} s (first error: {error:?})"
    );
    let intake = ok as f64 / secs;
    let balances: Vec<String> = (0..reads)
        .map(|i| request("eth_getBalance", json!([senders[i % senders.len()], "latest"])))
        .collect();
    let (ok_b, errors_b, secs_b, error_b) = blast(url, balances, concurrency).await;
    eprintln!("{name}: getBalance {ok_b} ok, {errors_b} errors in {secs_b:.2} s ({error_b:?})");
    // The identity precompile: a real EVM call, the same work on both nodes.
    let calls: Vec<String> = (0..reads)
        .map(|i| {
            request(
                "eth_call",
                json!([{"from": senders[i % senders.len()], "to": "0x0000000000000000000000000000000000000004",
                        "data": format!("0x{:064x}", i)}, "latest"]),
            )
        })
        .collect();
    let (ok_c, errors_c, secs_c, error_c) = blast(url, calls, concurrency).await;
    eprintln!("{name}: eth_call {ok_c} ok, {errors_c} errors in {secs_c:.2} s ({error_c:?})");
    Figures { intake, balance: ok_b as f64 / secs_b, call: ok_c as f64 / secs_c }
}

fn start_anvil(bin: &str, port: u16, accounts: usize) -> Child {
    Command::new(bin)
        .args([
            "--port",
            &port.to_string(),
            "--accounts",
            &accounts.to_string(),
            "--chain-id",
            &CHAIN_ID.to_string(),
            "--no-mining",
            "--mnemonic",
            DEV_MNEMONIC,
            "--silent",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap()
}

async fn wait_ready(url: &str) {
    let client = reqwest::Client::new();
    for _ in 0..600 {
        if let Ok(r) = client
            .post(url)
            .header("content-type", "application/json")
            .body(request("eth_chainId", json!([])))
            .send()
            .await
            && r.status().is_success()
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("{url} did not come up");
}

fn main() {
    let txs = env("TANDEM_BENCH_TXS", 20_000);
    let reads = env("TANDEM_BENCH_READS", 20_000);
    let concurrency = env("TANDEM_BENCH_CONCURRENCY", 32);
    let sender_count = env("TANDEM_BENCH_SENDERS", 400);
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    runtime.block_on(async move {
        let keys = keys(sender_count);
        let senders: Vec<Address> = keys.iter().map(|k| k.address()).collect();
        let raw = signed_transfers(&keys, txs);
        eprintln!("signed {} transfers from {} senders", raw.len(), keys.len());

        // tandem-el: the real node in this process, no block production.
        let dir = tempfile::tempdir().unwrap();
        let spec =
            Arc::new(tandem_shared::ChainSpec::from_json_str(&genesis(&keys), "bench").unwrap());
        let pool = PoolConfig { max_count: txs + 1000, ..PoolConfig::default() };
        let node = node::launch(NodeConfig {
            datadir: dir.path().to_path_buf(),
            spec,
            authrpc: "127.0.0.1:0".parse().unwrap(),
            jwt: alloy_rpc_types_engine::JwtSecret::random(),
            tree: Default::default(),
            pool,
            jobs: Default::default(),
            rpc: Default::default(),
            dev: None,
        })
        .await
        .unwrap();
        let ctx = Arc::new(RpcContext::from_node(&node.handle, RpcConfig::default()));
        let settings = ServerSettings {
            addr: "127.0.0.1:0".parse().unwrap(),
            apis: vec!["eth".into(), "net".into()],
            cors: None,
            vhosts: vec!["*".into()],
            ws_origins: Vec::new(),
        };
        let servers = start_http_ws(ctx, Some(settings), None).await.unwrap();
        let url = format!("http://{}", servers.http.as_ref().unwrap().0);
        wait_ready(&url).await;
        let tandem = measure("tandem-el", &url, &raw, reads, concurrency, &senders).await;
        servers.stop();
        node.shutdown().await;

        let anvil = match std::env::var("ANVIL_BIN") {
            Ok(bin) => {
                let port = 18545;
                let mut child = start_anvil(&bin, port, sender_count);
                let url = format!("http://127.0.0.1:{port}");
                wait_ready(&url).await;
                let figures = measure("anvil", &url, &raw, reads, concurrency, &senders).await;
                let _ = child.kill();
                let _ = child.wait();
                Some(figures)
            }
            Err(_) => None,
        };

        println!("| measure | tandem-el | anvil | ratio tandem/anvil |");
        println!("|---|---|---|---|");
        let row = |name: &str, t: f64, a: Option<f64>| match a {
            Some(a) => println!("| {name} | {t:.0}/s | {a:.0}/s | {:.2}× |", t / a),
            None => println!("| {name} | {t:.0}/s | – | – |"),
        };
        row("eth_sendRawTransaction intake", tandem.intake, anvil.as_ref().map(|a| a.intake));
        row("eth_getBalance", tandem.balance, anvil.as_ref().map(|a| a.balance));
        row("eth_call (identity precompile)", tandem.call, anvil.as_ref().map(|a| a.call));
    });
}
