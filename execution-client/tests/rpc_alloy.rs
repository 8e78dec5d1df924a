//! The JSON-RPC server of a real node (engine thread, pool, payload jobs, dev block producer)
//! driven by alloy's provider and local signer, over HTTP and WS, plus raw HTTP bodies.

#![allow(clippy::unwrap_used)]

use std::{sync::Arc, time::Duration};

use alloy_eips::{eip2930::AccessList, eip7702::Authorization};
use alloy_network::{EthereumWallet, ReceiptResponse, TransactionBuilder, TransactionBuilder7702};
use alloy_primitives::{Address, B256, Bytes, U256, hex};
use alloy_provider::{Provider, ProviderBuilder, WsConnect};
use alloy_rpc_types_eth::{Filter, TransactionRequest};
use alloy_signer::SignerSync;
use alloy_signer_local::{MnemonicBuilder, PrivateKeySigner, coins_bip39::English};
use futures::StreamExt;
use serde_json::{Value, json};
use tandem_el::{
    node::{self, NodeConfig, RunningNode, dev},
    rpc::{RpcConfig, RpcContext, RpcServerHandles, ServerSettings, start_http_ws},
};

const TOPIC: B256 = B256::repeat_byte(0xaa);

/// Init code of a contract that logs `TOPIC` on empty calldata and reverts with
/// `Error("nope")` otherwise.
fn test_contract_initcode() -> Bytes {
    let mut reason = Vec::new();
    reason.extend_from_slice(&hex!("08c379a0"));
    reason.extend_from_slice(&U256::from(0x20).to_be_bytes::<32>());
    reason.extend_from_slice(&U256::from(4).to_be_bytes::<32>());
    let mut word = [0u8; 32];
    word[..4].copy_from_slice(b"nope");
    reason.extend_from_slice(&word);
    let mut runtime = vec![0x36, 0x60, 0x2b, 0x57, 0x7f];
    runtime.extend_from_slice(TOPIC.as_slice());
    runtime.extend_from_slice(&[0x60, 0x00, 0x60, 0x00, 0xa1, 0x00]);
    runtime.extend_from_slice(&[0x5b, 0x60, 0x64, 0x60, 0x38, 0x60, 0x00, 0x39]);
    runtime.extend_from_slice(&[0x60, 0x64, 0x60, 0x00, 0xfd]);
    runtime.extend_from_slice(&reason);
    let len = runtime.len() as u8;
    let mut init = vec![0x60, len, 0x60, 0x0c, 0x60, 0x00, 0x39, 0x60, len, 0x60, 0x00, 0xf3];
    init.extend_from_slice(&runtime);
    Bytes::from(init)
}

fn dev_key(index: u32) -> PrivateKeySigner {
    MnemonicBuilder::<English>::default()
        .phrase(dev::DEV_MNEMONIC)
        .index(index)
        .unwrap()
        .build()
        .unwrap()
}

struct TestNode {
    _dir: tempfile::TempDir,
    node: Option<RunningNode>,
    servers: RpcServerHandles,
    http: String,
    ws: String,
}

impl TestNode {
    async fn start(config: RpcConfig, vhosts: &[&str], cors: Option<&str>) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let spec = Arc::new(dev::dev_chain_spec().unwrap());
        let node = node::launch(NodeConfig {
            datadir: dir.path().to_path_buf(),
            spec,
            authrpc: "127.0.0.1:0".parse().unwrap(),
            jwt: alloy_rpc_types_engine::JwtSecret::random(),
            tree: Default::default(),
            pool: Default::default(),
            jobs: Default::default(),
            rpc: Default::default(),
            dev: Some(dev::DevConfig {
                block_time: None,
                fee_recipient: Address::repeat_byte(0xfe),
            }),
        })
        .await
        .unwrap();
        let ctx = Arc::new(RpcContext::from_node(&node.handle, config));
        let apis: Vec<String> =
            ["eth", "net", "web3", "txpool", "debug"].map(String::from).to_vec();
        let settings = |ws: bool| ServerSettings {
            addr: "127.0.0.1:0".parse().unwrap(),
            apis: apis.clone(),
            cors: if ws { None } else { cors.map(String::from) },
            vhosts: if ws {
                vec!["*".into()]
            } else {
                vhosts.iter().map(|s| s.to_string()).collect()
            },
            ws_origins: Vec::new(),
        };
        let servers =
            start_http_ws(ctx, Some(settings(false)), Some(settings(true))).await.unwrap();
        let http = format!("http://{}", servers.http.as_ref().unwrap().0);
        let ws = format!("ws://{}", servers.ws.as_ref().unwrap().0);
        Self { _dir: dir, node: Some(node), servers, http, ws }
    }

    async fn stop(mut self) {
        self.servers.stop();
        if let Some(node) = self.node.take() {
            node.shutdown().await;
        }
    }

    async fn raw(&self, body: &str) -> (u16, String) {
        let response = reqwest::Client::new()
            .post(&self.http)
            .header("content-type", "application/json")
            .body(body.to_string())
            .send()
            .await
            .unwrap();
        (response.status().as_u16(), response.text().await.unwrap())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alloy_transfers_deploy_call_estimate_logs_and_subscriptions() {
    let node = TestNode::start(RpcConfig::default(), &["*"], None).await;
    let key = dev_key(0);
    let from = key.address();
    let provider = ProviderBuilder::new()
        .wallet(EthereumWallet::from(key.clone()))
        .connect_http(node.http.parse().unwrap());
    let ws = ProviderBuilder::new().connect_ws(WsConnect::new(node.ws.clone())).await.unwrap();
    let mut heads = ws.subscribe_blocks().await.unwrap().into_stream();
    let mut logs =
        ws.subscribe_logs(&Filter::new().event_signature(TOPIC)).await.unwrap().into_stream();

    assert_eq!(provider.get_chain_id().await.unwrap(), dev::DEV_CHAIN_ID);
    let bob = Address::repeat_byte(0xb0);
    let gas_price = provider.get_gas_price().await.unwrap();

    // Legacy (EIP-155).
    let legacy = TransactionRequest::default()
        .with_to(bob)
        .with_value(U256::from(1))
        .with_gas_price(gas_price);
    let receipt = provider.send_transaction(legacy).await.unwrap().get_receipt().await.unwrap();
    assert!(receipt.status());
    assert_eq!(receipt.transaction_type() as u8, 0);
    // A new head reached the WS subscriber.
    let head = tokio::time::timeout(Duration::from_secs(10), heads.next()).await.unwrap().unwrap();
    assert_eq!(Some(head.number), receipt.block_number());

    // EIP-2930.
    let eip2930 = TransactionRequest::default()
        .with_to(bob)
        .with_value(U256::from(2))
        .with_gas_price(gas_price)
        .with_access_list(AccessList::default());
    let receipt = provider.send_transaction(eip2930).await.unwrap().get_receipt().await.unwrap();
    assert!(receipt.status());
    assert_eq!(receipt.transaction_type() as u8, 1);

    // EIP-1559.
    let eip1559 = TransactionRequest::default().with_to(bob).with_value(U256::from(3));
    let receipt = provider.send_transaction(eip1559).await.unwrap().get_receipt().await.unwrap();
    assert!(receipt.status());
    assert_eq!(receipt.transaction_type() as u8, 2);
    assert_eq!(provider.get_balance(bob).await.unwrap(), U256::from(6));

    // Deploy the test contract.
    let deploy = TransactionRequest::default().with_deploy_code(test_contract_initcode());
    let receipt = provider.send_transaction(deploy).await.unwrap().get_receipt().await.unwrap();
    assert!(receipt.status());
    let contract = receipt.contract_address().unwrap();
    assert!(!provider.get_code_at(contract).await.unwrap().is_empty());

    // eth_call: revert reason decoded by alloy from code 3 + data.
    let failing =
        TransactionRequest::default().with_to(contract).with_input(Bytes::from_static(&[1]));
    let error = provider.call(failing.clone()).await.unwrap_err();
    let resp = error.as_error_resp().unwrap();
    assert_eq!(resp.code, 3);
    assert_eq!(resp.message, "execution reverted: nope");
    assert!(resp.as_revert_data().is_some());
    // eth_estimateGas of the failing call is the same revert.
    assert_eq!(provider.estimate_gas(failing).await.unwrap_err().as_error_resp().unwrap().code, 3);

    // A logging call: estimate, send, receipt, getLogs with topics, WS logs.
    let logging = TransactionRequest::default().with_from(from).with_to(contract);
    let gas = provider.estimate_gas(logging.clone()).await.unwrap();
    assert!(gas > 21_000);
    let receipt = provider
        .send_transaction(logging.with_gas_limit(gas))
        .await
        .unwrap()
        .get_receipt()
        .await
        .unwrap();
    assert!(receipt.status());
    assert_eq!(receipt.inner.logs().len(), 1);
    let found =
        provider.get_logs(&Filter::new().from_block(0).event_signature(TOPIC)).await.unwrap();
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].transaction_hash, Some(receipt.transaction_hash));
    let none = provider
        .get_logs(&Filter::new().from_block(0).event_signature(B256::repeat_byte(1)))
        .await
        .unwrap();
    assert!(none.is_empty());
    let pushed = tokio::time::timeout(Duration::from_secs(10), logs.next()).await.unwrap().unwrap();
    assert_eq!(pushed.transaction_hash, Some(receipt.transaction_hash));

    // EIP-7702: delegate a fresh account to the contract, sponsored by `from`.
    let delegator = dev_key(1);
    let nonce = provider.get_transaction_count(delegator.address()).await.unwrap();
    let auth = Authorization { chain_id: U256::from(dev::DEV_CHAIN_ID), address: contract, nonce };
    let signature = delegator.sign_hash_sync(&auth.signature_hash()).unwrap();
    let eip7702 = TransactionRequest::default()
        .with_to(delegator.address())
        .with_authorization_list(vec![auth.into_signed(signature)]);
    let receipt = provider.send_transaction(eip7702).await.unwrap().get_receipt().await.unwrap();
    assert!(receipt.status());
    assert_eq!(receipt.transaction_type() as u8, 4);
    let code = provider.get_code_at(delegator.address()).await.unwrap();
    assert!(code.starts_with(&[0xef, 0x01, 0x00]), "delegation designator: {code}");

    // Receipts of a whole block.
    let block_receipts =
        provider.get_block_receipts(receipt.block_number().unwrap().into()).await.unwrap().unwrap();
    assert_eq!(block_receipts.len(), 1);
    node.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn raw_http_bodies_get_standard_errors_and_limits_hold() {
    let config = RpcConfig { max_batch: 3, max_request_bytes: 64 * 1024, ..RpcConfig::default() };
    let node =
        TestNode::start(config, &["localhost", "127.0.0.1"], Some("https://app.example")).await;
    let parse = |s: &str| -> Value { serde_json::from_str(s).unwrap() };

    let (_, body) = node.raw("{not json").await;
    assert_eq!(parse(&body)["error"]["code"], -32700);
    let (_, body) = node.raw(r#"{"jsonrpc":"2.0","id":1,"method":"eth_nope","params":[]}"#).await;
    assert_eq!(parse(&body)["error"]["code"], -32601);
    let (_, body) =
        node.raw(r#"{"jsonrpc":"2.0","id":1,"method":"eth_getBalance","params":["0xzz"]}"#).await;
    assert_eq!(parse(&body)["error"]["code"], -32602);
    let (_, body) =
        node.raw(r#"{"jsonrpc":"2.0","id":1,"method":"eth_getBalance","params":"x"}"#).await;
    assert!(parse(&body)["error"]["code"].as_i64().is_some(), "{body}");
    let (_, body) = node
        .raw(r#"{"jsonrpc":"2.0","id":1,"method":"eth_getBlockByNumber","params":[12, false]}"#)
        .await;
    assert_eq!(parse(&body)["error"]["code"], -32602);
    let (_, body) = node
        .raw(r#"{"jsonrpc":"2.0","id":1,"method":"eth_sendRawTransaction","params":["0xc0"]}"#)
        .await;
    let reply = parse(&body);
    assert_eq!(reply["error"]["code"], -32000);
    assert!(reply["error"]["message"].as_str().unwrap().starts_with("rlp: "), "{body}");

    // A batch within the limit answers each call; one over it is refused.
    let call = json!({"jsonrpc": "2.0", "id": 1, "method": "eth_blockNumber", "params": []});
    let (_, body) = node.raw(&json!([call, call, call]).to_string()).await;
    assert_eq!(parse(&body).as_array().unwrap().len(), 3);
    let (_, body) = node.raw(&json!([call, call, call, call]).to_string()).await;
    let reply = parse(&body);
    assert_eq!(reply["error"]["code"], -32010, "{body}");
    let (_, body) = node.raw("[]").await;
    assert!(parse(&body)["error"]["code"].as_i64().is_some(), "{body}");

    // A body over the limit is refused without reading on.
    let big = format!(
        r#"{{"jsonrpc":"2.0","id":1,"method":"web3_sha3","params":["0x{}"]}}"#,
        "00".repeat(64 * 1024)
    );
    let (status, _) = node.raw(&big).await;
    assert_eq!(status, 413);

    // Garbage that is not HTTP, and a request whose body never arrives in full, over raw TCP:
    // neither brings the server down nor holds up the next request.
    {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let addr = node.http.trim_start_matches("http://").to_string();
        let mut garbage = tokio::net::TcpStream::connect(&addr).await.unwrap();
        garbage.write_all(b"\x00\x01\x02 hello\r\n\r\n").await.unwrap();
        let mut sink = Vec::new();
        let _ = tokio::time::timeout(Duration::from_secs(5), garbage.read_to_end(&mut sink)).await;
        let mut truncated = tokio::net::TcpStream::connect(&addr).await.unwrap();
        truncated
            .write_all(b"POST / HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: 500\r\n\r\n{\"jsonrpc\":")
            .await
            .unwrap();
        drop(truncated);
    }

    // The server still answers after all of that.
    let (_, body) = node.raw(&call.to_string()).await;
    assert_eq!(parse(&body)["result"], "0x0");

    // Virtual hosts: `localhost` passes, another Host header is refused.
    let client = reqwest::Client::new();
    let addr = node.http.trim_start_matches("http://").to_string();
    let port = addr.rsplit(':').next().unwrap().to_string();
    let refused = client
        .post(&node.http)
        .header("host", format!("evil.example:{port}"))
        .header("content-type", "application/json")
        .body(call.to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status().as_u16(), 403);
    let allowed = client
        .post(&node.http)
        .header("host", format!("localhost:{port}"))
        .header("content-type", "application/json")
        .body(call.to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(allowed.status().as_u16(), 200);

    // CORS: the configured origin is echoed, preflight included.
    let preflight = client
        .request(reqwest::Method::OPTIONS, &node.http)
        .header("host", format!("localhost:{port}"))
        .header("origin", "https://app.example")
        .header("access-control-request-method", "POST")
        .header("access-control-request-headers", "content-type")
        .send()
        .await
        .unwrap();
    assert_eq!(
        preflight
            .headers()
            .get("access-control-allow-origin")
            .map(|v| v.to_str().unwrap().to_string()),
        Some("https://app.example".to_string())
    );
    let other = client
        .post(&node.http)
        .header("host", format!("localhost:{port}"))
        .header("origin", "https://other.example")
        .header("content-type", "application/json")
        .body(call.to_string())
        .send()
        .await
        .unwrap();
    assert!(other.headers().get("access-control-allow-origin").is_none());
    node.stop().await;
}

/// Browsers and DNS rebinding against the real servers, with the CLI's defaults: the Host of an
/// HTTP request must be `localhost` or an IP address, a WebSocket upgrade from a foreign page
/// is refused while one without `Origin` (not a browser) is accepted, and a batch holds at
/// most 1,000 calls.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn browsers_are_held_to_localhost_and_batches_to_a_thousand_calls() {
    use clap::Parser;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        rpc: tandem_el::rpc::RpcArgs,
    }
    let cli = Cli::parse_from(["x", "--http", "--ws"]);
    let defaults = cli.rpc.http_server().unwrap();
    let vhosts: Vec<&str> = defaults.vhosts.iter().map(String::as_str).collect();
    let node = TestNode::start(cli.rpc.config(), &vhosts, None).await;
    let call = json!({"jsonrpc": "2.0", "id": 1, "method": "eth_blockNumber", "params": []});
    let port = node.http.rsplit(':').next().unwrap().to_string();
    let post = |host: String| {
        reqwest::Client::new()
            .post(&node.http)
            .header("host", host)
            .header("content-type", "application/json")
            .body(call.to_string())
            .send()
    };
    // DNS rebinding: a name the attacker controls resolves to 127.0.0.1, the Host says so.
    let refused = post(format!("attacker.example:{port}")).await.unwrap();
    assert_eq!(refused.status().as_u16(), 403);
    assert_eq!(refused.text().await.unwrap().trim(), "invalid host specified");
    for host in [format!("localhost:{port}"), format!("127.0.0.1:{port}"), format!("[::1]:{port}")]
    {
        let allowed = post(host.clone()).await.unwrap();
        assert_eq!(allowed.status().as_u16(), 200, "Host: {host}");
    }

    // WebSocket upgrades over raw TCP: the status line tells.
    let ws_addr = node.ws.trim_start_matches("ws://").to_string();
    let upgrade = |origin: Option<&'static str>| {
        let ws_addr = ws_addr.clone();
        async move {
            let mut stream = tokio::net::TcpStream::connect(&ws_addr).await.unwrap();
            let origin = origin.map(|o| format!("Origin: {o}\r\n")).unwrap_or_default();
            let request = format!(
                "GET / HTTP/1.1\r\nHost: {ws_addr}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
                 Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n{origin}\r\n"
            );
            stream.write_all(request.as_bytes()).await.unwrap();
            let mut head = vec![0u8; 12];
            stream.read_exact(&mut head).await.unwrap();
            String::from_utf8_lossy(&head).to_string()
        }
    };
    assert_eq!(upgrade(None).await, "HTTP/1.1 101");
    assert_eq!(upgrade(Some("http://localhost:3000")).await, "HTTP/1.1 101");
    assert_eq!(upgrade(Some("https://attacker.example")).await, "HTTP/1.1 403");
    assert_eq!(upgrade(Some("http://localhost.attacker.example")).await, "HTTP/1.1 403");
    // And alloy's client (no Origin) still subscribes.
    let ws = ProviderBuilder::new().connect_ws(WsConnect::new(node.ws.clone())).await.unwrap();
    assert_eq!(ws.get_chain_id().await.unwrap(), dev::DEV_CHAIN_ID);

    // Batches: 1,000 calls answered, 1,001 refused.
    let parse = |s: &str| -> Value { serde_json::from_str(s).unwrap() };
    let (_, body) = node.raw(&Value::Array(vec![call.clone(); 1000]).to_string()).await;
    assert_eq!(parse(&body).as_array().map(Vec::len), Some(1000));
    let (_, body) = node.raw(&Value::Array(vec![call.clone(); 1001]).to_string()).await;
    assert_eq!(parse(&body)["error"]["code"], -32010, "{body}");
    node.stop().await;

    // A batch's response has its own cap (geth's --rpc.batch-response-max-size, 25 MB by
    // default), here 4 KB: 50 answers (2 KB) pass, 200 (8 KB) refuse the whole batch.
    let cli = Cli::parse_from(["x", "--http", "--rpc.batch-response-max-size", "4096"]);
    let small = TestNode::start(cli.rpc.config(), &["localhost"], None).await;
    let (_, body) = small.raw(&Value::Array(vec![call.clone(); 50]).to_string()).await;
    assert_eq!(parse(&body).as_array().map(Vec::len), Some(50));
    let (_, body) = small.raw(&Value::Array(vec![call.clone(); 200]).to_string()).await;
    assert_eq!(parse(&body)["error"]["code"], -32011, "{body}");
    small.stop().await;
}
