//! Engine API round trip as a consensus client sees it: `forkchoiceUpdatedV3(attributes)` →
//! `getPayloadV4` → `newPayloadV4` → `forkchoiceUpdatedV3(new head)`, over HTTP with a fresh JWT
//! per cycle, against a node started in-process on loopback. Cases: an empty block, and a full
//! 30M-gas block of ETH transfers (1,428 transfers from 102 senders, pre-signed and put in the
//! pool outside the timed section).
//!
//! Reference in the same run: the same four operations called directly on the node's engine
//! handle and payload jobs (no JSON, no HTTP, no JWT), so the ratio is the API's overhead.
//!
//! Run: `cargo bench -p tandem-el --bench engine_roundtrip` (`TANDEM_BENCH_CYCLES`, default 15).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::{sync::Arc, time::Instant};

use alloy_consensus::{SignableTransaction, TxEip1559, TxEnvelope};
use alloy_primitives::{Address, B256, TxKind, U256};
use alloy_rpc_types_engine::{ForkchoiceState, JwtSecret, PayloadAttributes};
use alloy_signer::SignerSync;
use alloy_signer_local::PrivateKeySigner;
use jsonrpsee::{
    core::client::ClientT,
    http_client::{HeaderMap, HeaderValue, HttpClientBuilder},
    rpc_params,
};
use serde_json::{Value, json};
use tandem_el::{
    fork_choice::TreeConfig,
    node::{self, NodeConfig, NodeHandle},
    payload_builder::{job::JobConfig, payload_id},
    txpool::{Origin, PoolConfig, StateReader},
};
use tandem_shared::{ChainSpec, jwt, system_contracts};

const SENDERS: usize = 102;
const TRANSFERS: usize = 1428; // 1,428 × 21,000 = 29,988,000 gas

fn keys() -> Vec<PrivateKeySigner> {
    (1..=SENDERS as u64)
        .map(|i| PrivateKeySigner::from_bytes(&B256::from(U256::from(i))).unwrap())
        .collect()
}

fn spec(keys: &[PrivateKeySigner]) -> ChainSpec {
    let mut alloc = serde_json::to_value(system_contracts::prague_system_contracts()).unwrap();
    for key in keys {
        alloc[key.address().to_string()] = json!({ "balance": "0xd3c21bcecceda1000000" });
    }
    let genesis = json!({
        "config": { "chainId": 1337, "shanghaiTime": 0, "cancunTime": 0, "pragueTime": 0,
                    "tandem": { "subSecondBlocks": true } },
        "gasLimit": "0x1c9c380", "difficulty": "0x0", "timestamp": "0x0", "baseFeePerGas": "0x3b9aca00",
        "alloc": alloc
    });
    ChainSpec::from_json_str(&genesis.to_string(), "bench").unwrap()
}

fn fill_pool(node: &NodeHandle, keys: &[PrivateKeySigner], nonces: &mut [u64]) {
    let state = node.view.read().clone().latest_state(&node.db).unwrap();
    let reader = StateReader(&state);
    let mut pool = node.pool.write();
    for i in 0..TRANSFERS {
        let k = i % keys.len();
        let tx = TxEip1559 {
            chain_id: 1337,
            nonce: nonces[k],
            gas_limit: 21_000,
            max_fee_per_gas: 100_000_000_000,
            max_priority_fee_per_gas: 1_000_000_000,
            to: TxKind::Call(Address::repeat_byte(0xee)),
            value: U256::from(1),
            ..Default::default()
        };
        nonces[k] += 1;
        let sig = keys[k].sign_hash_sync(&tx.signature_hash()).unwrap();
        let tx: TxEnvelope = tx.into_signed(sig).into();
        node.senders.insert(*tx.tx_hash(), keys[k].address());
        pool.add(tx, keys[k].address(), Origin::Local, &reader).unwrap();
    }
}

fn attributes(timestamp: u64, parent: B256) -> PayloadAttributes {
    PayloadAttributes {
        timestamp,
        prev_randao: parent,
        suggested_fee_recipient: Address::repeat_byte(0xfe),
        withdrawals: Some(Vec::new()),
        parent_beacon_block_root: Some(parent),
        slot_number: None,
        target_gas_limit: None,
    }
}

/// One cycle over HTTP; returns the new head and its gas used.
async fn http_cycle(
    addr: std::net::SocketAddr,
    secret: &JwtSecret,
    head: B256,
    ts: u64,
) -> (B256, u64) {
    let token = jwt::issue_token(secret, jwt::unix_now()).unwrap();
    let mut headers = HeaderMap::new();
    headers.insert("Authorization", HeaderValue::from_str(&format!("Bearer {token}")).unwrap());
    let client = HttpClientBuilder::default()
        .set_headers(headers)
        .max_response_size(64 << 20)
        .max_request_size(64 << 20)
        .build(format!("http://{addr}"))
        .unwrap();
    let state = json!({ "headBlockHash": head, "safeBlockHash": head, "finalizedBlockHash": head });
    let fcu: Value = client
        .request("engine_forkchoiceUpdatedV3", rpc_params![state, attributes(ts, head)])
        .await
        .unwrap();
    let got: Value =
        client.request("engine_getPayloadV4", rpc_params![fcu["payloadId"].clone()]).await.unwrap();
    let payload = &got["executionPayload"];
    let status: Value = client
        .request(
            "engine_newPayloadV4",
            rpc_params![payload, Vec::<B256>::new(), head, got["executionRequests"].clone()],
        )
        .await
        .unwrap();
    assert_eq!(status["status"], "VALID", "{status}");
    let new_head: B256 = serde_json::from_value(payload["blockHash"].clone()).unwrap();
    let state = json!({ "headBlockHash": new_head, "safeBlockHash": new_head, "finalizedBlockHash": new_head });
    let done: Value = client
        .request("engine_forkchoiceUpdatedV3", rpc_params![state, Value::Null])
        .await
        .unwrap();
    assert_eq!(done["payloadStatus"]["status"], "VALID");
    let gas =
        u64::from_str_radix(payload["gasUsed"].as_str().unwrap().trim_start_matches("0x"), 16)
            .unwrap();
    (new_head, gas)
}

/// The same cycle on the node's handles directly.
async fn direct_cycle(node: &NodeHandle, head: B256, ts: u64) -> (B256, u64) {
    let state = ForkchoiceState {
        head_block_hash: head,
        safe_block_hash: head,
        finalized_block_hash: head,
    };
    let (_, target) = node.engine.fork_choice_updated(state, true).await.unwrap().unwrap();
    let attrs = attributes(ts, head);
    let job = node.jobs.start(payload_id(head, &attrs), target.unwrap(), attrs);
    let built = job.resolve().await.unwrap();
    let block = built.block.block.clone();
    let hash = block.hash();
    let gas = block.header.gas_used;
    // As getPayload does: the tree learns the built block, so newPayload is a lookup.
    node.engine.insert_built(built.block.clone());
    let status = node.engine.new_payload(block).await.unwrap().unwrap();
    assert!(status.status.is_valid());
    let state = ForkchoiceState {
        head_block_hash: hash,
        safe_block_hash: hash,
        finalized_block_hash: hash,
    };
    node.engine.fork_choice_updated(state, false).await.unwrap().unwrap();
    (hash, gas)
}

fn median_ms(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() {
    let cycles: usize =
        std::env::var("TANDEM_BENCH_CYCLES").ok().and_then(|v| v.parse().ok()).unwrap_or(15);
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    runtime.block_on(async move {
        let keys = keys();
        let dir = tempfile::tempdir().unwrap();
        let secret = JwtSecret::random();
        let config = NodeConfig {
            datadir: dir.path().to_path_buf(),
            spec: Arc::new(spec(&keys)),
            authrpc: "127.0.0.1:0".parse().unwrap(),
            jwt: secret,
            tree: TreeConfig::default(),
            pool: PoolConfig { max_count: 50_000, ..PoolConfig::default() },
            jobs: JobConfig::default(),
            rpc: Default::default(),
            dev: None,
        };
        let running = node::launch(config).await.unwrap();
        let node = running.handle.clone();
        let mut nonces = vec![0u64; keys.len()];
        let mut head = node.view.read().head.hash;
        let mut ts = 1u64;
        let mut results = Vec::new();
        for (case, full) in [("empty block", false), ("30M-gas block of ETH transfers", true)] {
            let (mut http, mut direct) = (Vec::new(), Vec::new());
            let mut gas = 0;
            for i in 0..cycles * 2 {
                if full {
                    fill_pool(&node, &keys, &mut nonces);
                }
                ts += 1;
                let start = Instant::now();
                let (new_head, used) = if i % 2 == 0 {
                    http_cycle(running.authrpc, &secret, head, ts).await
                } else {
                    direct_cycle(&node, head, ts).await
                };
                let ms = start.elapsed().as_secs_f64() * 1e3;
                if i % 2 == 0 { http.push(ms) } else { direct.push(ms) }
                head = new_head;
                gas = used;
            }
            let (h, d) = (median_ms(http), median_ms(direct));
            println!("{case}: gas used {gas}; HTTP+JWT round trip median {h:.2} ms; direct median {d:.2} ms; ratio {:.2}", h / d);
            results.push((case, h, d));
        }
        running.shutdown().await;
        for (case, h, d) in results {
            println!("| {case} | {h:.2} ms | {d:.2} ms | {:.2}x |", h / d);
        }
    });
}
