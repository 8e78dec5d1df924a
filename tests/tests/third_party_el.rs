//! `tandem-cl` drives an execution client that is not ours: EthereumJS (`@ethereumjs/client`
//! from npm, installed by `scripts/test`; `TANDEM_ETHEREUMJS` names its binary). A one-validator
//! network with a standard genesis (`--sub-second-blocks false`): EthereumJS builds every block
//! through the Engine API, the chain finalizes, and a wallet transfer sent to EthereumJS's own
//! JSON-RPC is included and finalized.

#![allow(clippy::unwrap_used)]

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use alloy_primitives::{Address, U256};
use alloy_provider::{
    Provider, ProviderBuilder,
    network::{Ethereum, EthereumWallet, Network, TransactionBuilder},
};
use serde_json::Value;
use tandem_e2e::{ChildGuard, binary, testnet::height};

fn ethereumjs() -> PathBuf {
    let path = std::env::var_os("TANDEM_ETHEREUMJS").map(PathBuf::from).unwrap_or_else(|| {
        let home = std::env::var_os("HOME").map(PathBuf::from).unwrap_or_default();
        home.join(".cache/tandem/ethereumjs/node_modules/.bin/ethereumjs")
    });
    assert!(
        path.is_file(),
        "EthereumJS not found at {} (scripts/test installs it; or set TANDEM_ETHEREUMJS)",
        path.display()
    );
    path
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tandem_cl_drives_ethereumjs_to_finalize_a_wallet_transfer() {
    let ejs = ethereumjs();
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("net");
    let offset = tandem_e2e::testnet::port_offset(4);
    let status = Command::new(binary("tandem-cl").unwrap())
        .args(["testnet", "--validators", "1", "--sub-second-blocks", "false", "--out"])
        .arg(&dir)
        .args(["--port-offset", &offset.to_string()])
        .stdout(Stdio::null())
        .status()
        .unwrap();
    assert!(status.success());
    let manifest: Value =
        serde_json::from_slice(&std::fs::read(dir.join("testnet.json")).unwrap()).unwrap();
    let node = &manifest["nodes"][0];
    let port = |name: &str| node["ports"][name].as_u64().unwrap().to_string();
    let log = |name: &str| Stdio::from(std::fs::File::create(dir.join(name)).unwrap());

    let _el = ChildGuard::spawn(
        Command::new(&ejs)
            .arg("--gethGenesis")
            .arg(dir.join("el-genesis.json"))
            .arg("--dataDir")
            .arg(dir.join("node0/ethereumjs"))
            .args(["--rpc", "--rpcAddr", "127.0.0.1", "--rpcPort", &port("http")])
            .args(["--rpcEngine", "--rpcEngineAddr", "127.0.0.1", "--rpcEnginePort"])
            .arg(port("authrpc"))
            .arg("--jwtSecret")
            .arg(dir.join("node0/jwt.hex"))
            .args(["--port", &port("el_p2p"), "--isSingleNode", "--discV4", "false"])
            .stdout(log("ethereumjs.log"))
            .stderr(log("ethereumjs.err")),
    )
    .unwrap();
    let _cl = ChildGuard::spawn(
        Command::new("sh")
            .arg("-c")
            .arg(format!("exec {}", node["cl_command"].as_str().unwrap()))
            .stdout(log("cl.log"))
            .stderr(log("cl.err")),
    )
    .unwrap();

    let url = format!("http://127.0.0.1:{}", port("http"));
    let wait_finalized = |target: u64, secs: u64| {
        let url = url.clone();
        let dir = dir.clone();
        async move {
            let deadline = Instant::now() + Duration::from_secs(secs);
            loop {
                if height(&url, "finalized").await.is_some_and(|h| h >= target) {
                    return;
                }
                if Instant::now() > deadline {
                    let cl = std::fs::read_to_string(dir.join("cl.err")).unwrap_or_default();
                    let tail: Vec<&str> = cl.lines().rev().take(15).collect();
                    panic!("EthereumJS did not finalize block {target}: {tail:#?}");
                }
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
        }
    };
    // No sub-second blocks: one block per second at most, built by EthereumJS.
    wait_finalized(2, 120).await;

    let key = tandem_e2e::loadgen::signing::dev_key(0).unwrap();
    let provider =
        ProviderBuilder::new().wallet(EthereumWallet::from(key)).connect_http(url.parse().unwrap());
    let to = Address::repeat_byte(0x77);
    // Every field given, so nothing is asked of EthereumJS that it does not serve (`pending`).
    let tx = <Ethereum as Network>::TransactionRequest::default()
        .with_to(to)
        .with_value(U256::from(123_456u64))
        .with_nonce(0)
        .with_chain_id(1337)
        .with_gas_limit(21_000)
        .with_max_fee_per_gas(100_000_000_000)
        .with_max_priority_fee_per_gas(1_000_000_000);
    let pending = provider.send_transaction(tx).await.unwrap();
    let receipt = tokio::time::timeout(Duration::from_secs(60), pending.get_receipt())
        .await
        .expect("included within 60 s")
        .unwrap();
    assert!(receipt.status());
    wait_finalized(receipt.block_number.unwrap(), 60).await;
    assert_eq!(provider.get_balance(to).await.unwrap(), U256::from(123_456u64));
}
