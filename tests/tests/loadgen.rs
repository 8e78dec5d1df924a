//! `tandem-loadgen` as a process against `tandem-el node --dev --dev.block-time 200ms`: a small
//! transfer run and a small ERC-20 run are committed in full (finalized), nothing lost or
//! refused, and the JSON report adds up.

#![allow(clippy::unwrap_used)]

use std::{
    net::TcpListener,
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use alloy_provider::{Provider, ProviderBuilder};
use serde_json::Value;
use tandem_e2e::{ChildGuard, binary};

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|a| a.port()).unwrap()
}

fn loadgen(url: &str, args: &[&str]) -> Value {
    let out = Command::new(binary("tandem-loadgen").unwrap())
        .args(["--rpc", url, "--commit-tag", "finalized", "--timeout-secs", "20", "--json"])
        .args(args)
        .stderr(Stdio::inherit())
        .output()
        .unwrap();
    assert!(out.status.success(), "tandem-loadgen {args:?} failed");
    serde_json::from_slice(&out.stdout).unwrap()
}

fn assert_all_committed(report: &Value, txs: u64) {
    assert_eq!(report["run"]["txs"], txs, "{report}");
    assert_eq!(report["accepted"], txs, "{report}");
    assert_eq!(report["committed"], txs, "{report}");
    assert_eq!(report["lost"], 0, "{report}");
    assert_eq!(report["rejected"], 0, "{report}");
    assert!(report["committed_tps"].as_f64().unwrap() > 0.0, "{report}");
    let p50 = report["latency_ms"]["p50"].as_f64().unwrap();
    let p99 = report["latency_ms"]["p99"].as_f64().unwrap();
    assert!(p50 > 0.0 && p50 <= p99, "{report}");
    let blocks = report["blocks"].as_f64().unwrap();
    assert!(blocks >= 1.0, "{report}");
    let avg = report["avg_txs_per_block"].as_f64().unwrap();
    assert!((avg * blocks - txs as f64).abs() < 1e-6, "{report}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn loadgen_commits_every_transfer_and_token_transfer_on_a_dev_node() {
    let dir = tempfile::tempdir().unwrap();
    let (auth, http) = (free_port(), free_port());
    let _node = ChildGuard::spawn(
        Command::new(binary("tandem-el").unwrap())
            .args(["node", "--dev", "--dev.block-time", "200ms", "--datadir"])
            .arg(dir.path().join("dev"))
            .args(["--authrpc.port", &auth.to_string(), "--p2p.port", "0"])
            .args(["--http", "--http.port", &http.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null()),
    )
    .unwrap();
    let url = format!("http://127.0.0.1:{http}");
    let provider = ProviderBuilder::new().connect_http(url.parse().unwrap());
    let deadline = Instant::now() + Duration::from_secs(30);
    while provider.get_chain_id().await.is_err() {
        assert!(Instant::now() < deadline, "the HTTP server did not come up within 30 s");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    let transfers = tokio::task::spawn_blocking({
        let url = url.clone();
        move || loadgen(&url, &["--accounts", "20", "--txs", "200", "--batch", "50"])
    })
    .await
    .unwrap();
    assert_all_committed(&transfers, 200);
    assert_eq!(transfers["run"]["workload"], "transfer");

    // The same accounts again (topped up for token gas), a token this time, at a target rate.
    let tokens = tokio::task::spawn_blocking({
        let url = url.clone();
        move || {
            loadgen(
                &url,
                &[
                    "--accounts",
                    "20",
                    "--txs",
                    "100",
                    "--workload",
                    "erc20",
                    "--rate",
                    "500",
                    "--batch",
                    "10",
                ],
            )
        }
    })
    .await
    .unwrap();
    assert_all_committed(&tokens, 100);
    assert_eq!(tokens["run"]["workload"], "erc20");
    assert!(tokens["send_secs"].as_f64().unwrap() >= 0.15, "100 txs at 500/s take ~0.2 s");
}
