//! `tandem-el node --dev --http --ws` as a process, used by alloy's provider and local signer
//! the way a wallet or script would: a transfer is accepted, mined by the dev producer, and
//! visible in the receipt, the balance and a WS `newHeads` subscription.

#![allow(clippy::unwrap_used)]

use std::{
    net::TcpListener,
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use alloy_primitives::{Address, U256};
use alloy_provider::{
    Provider, ProviderBuilder, WsConnect,
    network::{Ethereum, EthereumWallet, Network, TransactionBuilder},
};
use tandem_e2e::{ChildGuard, binary};

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|a| a.port()).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dev_node_serves_a_wallet_transfer_over_http_and_ws() {
    let dir = tempfile::tempdir().unwrap();
    let (auth, http, ws) = (free_port(), free_port(), free_port());
    let _node = ChildGuard::spawn(
        Command::new(binary("tandem-el").unwrap())
            .args(["node", "--dev", "--datadir"])
            .arg(dir.path().join("dev"))
            .args(["--authrpc.port", &auth.to_string(), "--p2p.port", "0"])
            .args(["--http", "--http.port", &http.to_string()])
            .args(["--ws", "--ws.port", &ws.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null()),
    )
    .unwrap();
    let key = tandem_e2e::loadgen::signing::dev_key(0).unwrap();
    let provider = ProviderBuilder::new()
        .wallet(EthereumWallet::from(key))
        .connect_http(format!("http://127.0.0.1:{http}").parse().unwrap());
    let deadline = Instant::now() + Duration::from_secs(30);
    let chain_id = loop {
        if let Ok(id) = provider.get_chain_id().await {
            break id;
        }
        assert!(Instant::now() < deadline, "the HTTP server did not come up within 30 s");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(chain_id, 1337);
    let ws = ProviderBuilder::new()
        .connect_ws(WsConnect::new(format!("ws://127.0.0.1:{ws}")))
        .await
        .unwrap();
    let mut heads = ws.subscribe_blocks().await.unwrap();

    let bob = Address::repeat_byte(0xb0);
    let tx = <Ethereum as Network>::TransactionRequest::default()
        .with_to(bob)
        .with_value(U256::from(1_000_000_007u64));
    let pending = provider.send_transaction(tx).await.unwrap();
    let receipt = tokio::time::timeout(Duration::from_secs(30), pending.get_receipt())
        .await
        .expect("mined within 30 s")
        .unwrap();
    assert!(receipt.status());
    assert_eq!(provider.get_balance(bob).await.unwrap(), U256::from(1_000_000_007u64));
    let head = tokio::time::timeout(Duration::from_secs(30), heads.recv())
        .await
        .expect("a newHeads notification")
        .unwrap();
    assert!(head.number >= 1);
}
