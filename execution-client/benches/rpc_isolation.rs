//! Does a flood of heavy RPC requests delay the Engine API? Starts the real `tandem-el node
//! --dev` as a process and measures the consensus client's cycle over the Engine API (JWT from
//! the data dir): `forkchoiceUpdatedV3` with attributes → `getPayloadV4` → `newPayloadV4` →
//! `forkchoiceUpdatedV3` to the new block, each cycle one empty block.
//!
//! Phases, each on a fresh node: **quiet** (no other load); **flood** (200 concurrent
//! `eth_estimateGas` of an endless loop placed by a state override, each running until the
//! 50M gas cap, resent as soon as answered, on 200 connections); **flood, pool 200** (the same
//! with `--rpc.max-tracing-requests 200`, i.e. as many heavy requests at once as the flood
//! sends: the reference of an unbounded pool). Reports the median cycle of each and the ratio to
//! quiet, and how many estimates were answered (so the flood is seen to be real).
//!
//! Run: `scripts/bench/rpc_isolation.sh` (`TANDEM_BENCH_CYCLES`, default 40;
//! `TANDEM_BENCH_FLOOD`, default 200).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::{
    net::TcpListener,
    path::Path,
    process::{Child, Command, Stdio},
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use alloy_primitives::{Address, B256};
use jsonrpsee::{
    core::client::ClientT,
    http_client::{HeaderMap, HeaderValue, HttpClient, HttpClientBuilder},
    rpc_params,
};
use serde_json::{Value, json};
use tandem_shared::jwt;

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|a| a.port()).unwrap()
}

/// The node process, killed when dropped.
struct Node {
    child: Child,
    http: u16,
    auth: u16,
    _dir: tempfile::TempDir,
    datadir: std::path::PathBuf,
}

impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Node {
    async fn start(extra: &[&str]) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let datadir = dir.path().join("dev");
        let (http, auth) = (free_port(), free_port());
        let child = Command::new(env!("CARGO_BIN_EXE_tandem-el"))
            .args(["node", "--dev", "--datadir"])
            .arg(&datadir)
            .args(["--authrpc.port", &auth.to_string(), "--p2p.port", "0"])
            .args(["--http", "--http.port", &http.to_string()])
            .args(extra)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let node = Self { child, http, auth, _dir: dir, datadir };
        let client = node.rpc();
        let up = Instant::now();
        while client.request::<Value, _>("eth_chainId", rpc_params![]).await.is_err() {
            assert!(up.elapsed() < Duration::from_secs(60), "node did not come up");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        node
    }

    fn rpc(&self) -> HttpClient {
        HttpClientBuilder::default()
            .request_timeout(Duration::from_secs(120))
            .build(format!("http://127.0.0.1:{}", self.http))
            .unwrap()
    }

    fn engine(&self) -> HttpClient {
        let (secret, _) = jwt::read_or_create_secret(&self.datadir.join("jwt.hex")).unwrap();
        let token = jwt::issue_token(&secret, jwt::unix_now()).unwrap();
        let mut headers = HeaderMap::new();
        headers.insert("Authorization", HeaderValue::from_str(&format!("Bearer {token}")).unwrap());
        HttpClientBuilder::default()
            .set_headers(headers)
            .request_timeout(Duration::from_secs(120))
            .build(format!("http://127.0.0.1:{}", self.auth))
            .unwrap()
    }
}

/// One Engine API cycle on `head`; returns the new head and the cycle's wall time, or the first
/// error the node answered.
async fn cycle(
    engine: &HttpClient,
    head: B256,
    timestamp: u64,
) -> Result<(B256, Duration), jsonrpsee::core::ClientError> {
    let started = Instant::now();
    let state = json!({ "headBlockHash": head, "safeBlockHash": head, "finalizedBlockHash": head });
    let attributes = json!({
        "timestamp": format!("{timestamp:#x}"), "prevRandao": head,
        "suggestedFeeRecipient": Address::repeat_byte(0xfe), "withdrawals": [],
        "parentBeaconBlockRoot": head,
    });
    let fcu: Value =
        engine.request("engine_forkchoiceUpdatedV3", rpc_params![state, attributes]).await?;
    let got: Value =
        engine.request("engine_getPayloadV4", rpc_params![fcu["payloadId"].clone()]).await?;
    let payload = &got["executionPayload"];
    let status: Value = engine
        .request(
            "engine_newPayloadV4",
            rpc_params![payload, Vec::<B256>::new(), head, got["executionRequests"].clone()],
        )
        .await?;
    assert_eq!(status["status"], "VALID", "{status}");
    let new_head: B256 = serde_json::from_value(payload["blockHash"].clone()).unwrap();
    let state = json!({ "headBlockHash": new_head, "safeBlockHash": new_head, "finalizedBlockHash": new_head });
    let done: Value = engine
        .request("engine_forkchoiceUpdatedV3", rpc_params![state, Value::Null])
        .await
        .unwrap();
    assert_eq!(done["payloadStatus"]["status"], "VALID", "{done}");
    Ok((new_head, started.elapsed()))
}

/// `cycles` Engine API cycles on the node's head; the median cycle time and how many cycles
/// failed (the node answered an Engine API call with an error).
async fn measure(node: &Node, cycles: usize) -> (Duration, usize) {
    let rpc = node.rpc();
    let latest: Value =
        rpc.request("eth_getBlockByNumber", rpc_params!["latest", false]).await.unwrap();
    let mut head: B256 = serde_json::from_value(latest["hash"].clone()).unwrap();
    let mut timestamp =
        u64::from_str_radix(latest["timestamp"].as_str().unwrap().trim_start_matches("0x"), 16)
            .unwrap();
    let mut times = Vec::with_capacity(cycles);
    let mut failed = 0;
    for _ in 0..cycles {
        // A fresh token per cycle, as a consensus client does; made outside the timed part.
        let engine = node.engine();
        timestamp += 1;
        match cycle(&engine, head, timestamp).await {
            Ok((next, took)) => {
                head = next;
                times.push(took);
            }
            Err(error) => {
                if failed == 0 {
                    println!("  engine error: {error}");
                }
                failed += 1;
            }
        }
    }
    times.sort_unstable();
    (times.get(times.len() / 2).copied().unwrap_or_default(), failed)
}

/// What a flood did while it ran.
#[derive(Debug, Default)]
struct FloodCount {
    answered: AtomicU64,
    refused: AtomicU64,
}

/// `senders` tasks, each on its own connection, sending an endless-loop `eth_estimateGas` again
/// as soon as the last one is answered, until `stop`.
fn flood(node: &Node, senders: usize, stop: Arc<AtomicBool>, count: Arc<FloodCount>) {
    let looping = Address::repeat_byte(0x10);
    let overrides = json!({ looping.to_string(): { "code": "0x5b600056" } });
    for _ in 0..senders {
        let client = node.rpc();
        let (stop, count, overrides) = (stop.clone(), count.clone(), overrides.clone());
        tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                let params = rpc_params![json!({ "to": looping }), "latest", overrides.clone()];
                match client.request::<Value, _>("eth_estimateGas", params).await {
                    // An endless loop never succeeds: every answer is an error of the node's.
                    Err(jsonrpsee::core::ClientError::Call(e)) if e.code() == -32005 => {
                        count.refused.fetch_add(1, Ordering::Relaxed);
                    }
                    _ => {
                        count.answered.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
        });
    }
}

/// The median cycle under a flood, failed cycles, and the flood's answers and refusals per
/// second over its whole run.
async fn flooded(extra: &[&str], cycles: usize, senders: usize) -> (Duration, usize, f64, f64) {
    let node = Node::start(extra).await;
    let stop = Arc::new(AtomicBool::new(false));
    let count = Arc::new(FloodCount::default());
    let started = Instant::now();
    flood(&node, senders, stop.clone(), count.clone());
    // Let every sender have its request in before measuring.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let (median, failed) = measure(&node, cycles).await;
    stop.store(true, Ordering::Relaxed);
    let seconds = started.elapsed().as_secs_f64();
    let per_second = |n: &AtomicU64| n.load(Ordering::Relaxed) as f64 / seconds;
    (median, failed, per_second(&count.answered), per_second(&count.refused))
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn main() {
    let cycles: usize =
        std::env::var("TANDEM_BENCH_CYCLES").ok().and_then(|v| v.parse().ok()).unwrap_or(40);
    let senders: usize =
        std::env::var("TANDEM_BENCH_FLOOD").ok().and_then(|v| v.parse().ok()).unwrap_or(200);
    assert!(Path::new(env!("CARGO_BIN_EXE_tandem-el")).is_file());
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    runtime.block_on(async {
        let (quiet, _) = {
            let node = Node::start(&[]).await;
            measure(&node, cycles).await
        };
        println!("quiet: median Engine API cycle {:.2} ms ({cycles} cycles)", ms(quiet));
        let pool = senders.to_string();
        for (label, extra) in [
            ("default pool", vec![]),
            ("pool = flood (reference)", vec!["--rpc.max-tracing-requests", &pool]),
        ] {
            let (loaded, failed, answered, refused) = flooded(&extra, cycles, senders).await;
            println!(
                "flood of {senders} eth_estimateGas, {label}: median cycle {:.2} ms, {:.2}x quiet, \
                 {failed}/{cycles} cycles failed ({answered:.1} estimates answered/s, \
                 {refused:.1}/s refused as busy)",
                ms(loaded),
                ms(loaded) / ms(quiet)
            );
        }
    });
}
