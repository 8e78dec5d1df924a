//! Unit tests over a real chain: blocks built by the payload builder, executed by the engine
//! tree and made canonical by fork choice; requests go through the jsonrpsee module as JSON.

use std::sync::Arc;

use alloy_consensus::{SignableTransaction, TxEip1559, TxEnvelope};
use alloy_eips::eip2718::Encodable2718;
use alloy_primitives::{Address, B256, Bytes, TxKind, U256, hex, keccak256};
use alloy_signer::SignerSync;
use jsonrpsee::RpcModule;
use serde_json::{Value, json};

use super::{RpcConfig, RpcContext, eth_module};
use crate::{
    fork_choice::TreeConfig,
    testkit::{CHAIN_ID, GWEI, Kit},
    txpool::senders::SenderCache,
};

/// Topic the test contract logs.
const TOPIC: B256 = B256::repeat_byte(0xaa);

/// Init code of a contract whose runtime logs `TOPIC` on empty calldata and otherwise reverts
/// with `Error("nope")`.
pub(crate) fn test_contract_initcode() -> Bytes {
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
    assert_eq!(runtime.len(), 0x38);
    runtime.extend_from_slice(&reason);
    let len = runtime.len() as u8;
    let mut init = vec![0x60, len, 0x60, 0x0c, 0x60, 0x00, 0x39, 0x60, len, 0x60, 0x00, 0xf3];
    init.extend_from_slice(&runtime);
    Bytes::from(init)
}

struct Harness {
    kit: Kit,
    ctx: Arc<RpcContext>,
    module: RpcModule<()>,
}

impl Harness {
    fn new(tree: TreeConfig, config: RpcConfig) -> Self {
        Self::with_kit(Kit::new(tree), config)
    }

    fn with_kit(kit: Kit, config: RpcConfig) -> Self {
        let mut ctx = RpcContext::new(
            kit.tree.db().clone(),
            kit.executor.clone(),
            kit.tree.view_handle(),
            kit.pool.clone(),
            Arc::new(SenderCache::new(1000)),
        );
        ctx.config = config;
        let ctx = Arc::new(ctx);
        let module = eth_module(ctx.clone());
        Self { kit, ctx, module }
    }

    fn sign(&self, key: usize, nonce: u64, to: TxKind, input: Bytes, gas: u64) -> TxEnvelope {
        let tx = TxEip1559 {
            chain_id: CHAIN_ID,
            nonce,
            gas_limit: gas,
            max_fee_per_gas: 100 * GWEI,
            max_priority_fee_per_gas: GWEI,
            to,
            value: U256::ZERO,
            input,
            ..Default::default()
        };
        let sig = self.kit.keys[key].sign_hash_sync(&tx.signature_hash()).unwrap();
        tx.into_signed(sig).into()
    }

    /// Builds a block from the pool on the head, executes it and makes it canonical (the parent
    /// becomes safe and finalized); publishes the change and drops its transactions from the pool.
    fn mine(&mut self) -> B256 {
        let head = self.kit.tree.head().hash;
        let built = self.kit.build_on(head, Address::repeat_byte(0xfe));
        let block = built.block.block.clone();
        self.kit.tree.new_payload(block.clone()).unwrap();
        if let crate::fork_choice::ForkchoiceOutcome::Valid { change, .. } =
            self.kit.fcu(block.hash(), head)
        {
            let _ = self.ctx.events.send(Arc::new(change));
        }
        let mut pool = self.kit.pool.write();
        for tx in &block.body.transactions {
            pool.remove_with_descendants(tx.tx_hash());
        }
        block.hash()
    }

    async fn raw(&self, body: &str) -> Value {
        let (response, _) = self.module.raw_json_request(body, 16).await.unwrap();
        serde_json::from_str(response.get()).unwrap()
    }

    /// The `result`, or panics with the error.
    async fn ok(&self, method: &str, params: Value) -> Value {
        let response = self.call(method, params).await;
        match response.get("result") {
            Some(result) => result.clone(),
            None => panic!("{method} failed: {response}"),
        }
    }

    /// The `error` object, or panics with the result.
    async fn err(&self, method: &str, params: Value) -> Value {
        let response = self.call(method, params).await;
        match response.get("error") {
            Some(error) => error.clone(),
            None => panic!("{method} unexpectedly succeeded: {response}"),
        }
    }

    async fn call(&self, method: &str, params: Value) -> Value {
        let body = json!({"jsonrpc": "2.0", "id": 1, "method": method, "params": params});
        self.raw(&body.to_string()).await
    }
}

fn u64_of(v: &Value) -> u64 {
    u64::from_str_radix(v.as_str().unwrap().trim_start_matches("0x"), 16).unwrap()
}

#[tokio::test]
async fn blocks_transactions_receipts_and_tags() {
    let mut h = Harness::new(TreeConfig::default(), RpcConfig::default());
    let bob = Address::repeat_byte(0xb0);
    // Before any fork choice names them, safe and finalized are errors as in geth.
    let e = h.err("eth_getBlockByNumber", json!(["finalized", false])).await;
    assert_eq!(e["message"], "finalized block not found");
    let tx = h.kit.transfer(0, 0, bob, 1234);
    let hash = *tx.tx_hash();
    let raw = Bytes::from(tx.encoded_2718());
    assert_eq!(h.ok("eth_sendRawTransaction", json!([raw])).await, json!(hash));
    assert_eq!(
        h.ok("eth_getTransactionCount", json!([h.kit.keys[0].address(), "pending"])).await,
        "0x1"
    );
    assert_eq!(
        h.ok("eth_getTransactionCount", json!([h.kit.keys[0].address(), "latest"])).await,
        "0x0"
    );
    // A pooled transaction is visible without block fields.
    let pooled = h.ok("eth_getTransactionByHash", json!([hash])).await;
    assert_eq!(pooled["blockHash"], Value::Null);
    let block_hash = h.mine();
    assert_eq!(h.ok("eth_blockNumber", json!([])).await, "0x1");
    assert_eq!(h.ok("eth_getBalance", json!([bob, "latest"])).await, "0x4d2");
    assert_eq!(h.ok("eth_getBalance", json!([bob, "earliest"])).await, "0x0");
    assert_eq!(h.ok("eth_getBalance", json!([bob, {"blockHash": block_hash}])).await, "0x4d2");
    let block = h.ok("eth_getBlockByNumber", json!(["0x1", true])).await;
    assert_eq!(block["hash"], json!(block_hash));
    assert_eq!(block["transactions"][0]["hash"], json!(hash));
    assert_eq!(block["transactions"][0]["from"], json!(h.kit.keys[0].address()));
    let by_hash = h.ok("eth_getBlockByHash", json!([block_hash, false])).await;
    assert_eq!(by_hash["transactions"][0], json!(hash));
    assert_eq!(h.ok("eth_getBlockTransactionCountByNumber", json!(["latest"])).await, "0x1");
    assert_eq!(h.ok("eth_getBlockByNumber", json!(["0x9", false])).await, Value::Null);
    let receipt = h.ok("eth_getTransactionReceipt", json!([hash])).await;
    assert_eq!(receipt["status"], "0x1");
    assert_eq!(receipt["gasUsed"], "0x5208");
    assert_eq!(receipt["blockHash"], json!(block_hash));
    assert_eq!(h.ok("eth_getBlockReceipts", json!(["latest"])).await.as_array().unwrap().len(), 1);
    let mined = h.ok("eth_getTransactionByBlockNumberAndIndex", json!(["0x1", "0x0"])).await;
    assert_eq!(mined["blockNumber"], "0x1");
    // The parent was named safe and finalized.
    assert_eq!(h.ok("eth_getBlockByNumber", json!(["safe", false])).await["number"], "0x0");
    assert_eq!(h.ok("eth_chainId", json!([])).await, json!(format!("{CHAIN_ID:#x}")));
    assert_eq!(h.ok("net_version", json!([])).await, json!(CHAIN_ID.to_string()));
}

#[tokio::test]
async fn persisted_and_in_memory_blocks_read_alike() {
    let config = TreeConfig { persistence_threshold: 1, ..TreeConfig::default() };
    let mut h = Harness::new(config, RpcConfig::default());
    let bob = Address::repeat_byte(0xb0);
    let mut hashes = Vec::new();
    for nonce in 0..4 {
        let tx = h.kit.transfer(0, nonce, bob, 1);
        hashes.push(*tx.tx_hash());
        h.kit.submit(tx);
        h.mine();
    }
    let view = h.ctx.snapshot();
    assert!(view.persisted.number >= 2, "some blocks persisted: {:?}", view.persisted);
    assert!(!view.canonical.is_empty(), "some blocks in memory");
    for (i, hash) in hashes.iter().enumerate() {
        let receipt = h.ok("eth_getTransactionReceipt", json!([hash])).await;
        assert_eq!(u64_of(&receipt["blockNumber"]), i as u64 + 1);
        assert_eq!(
            h.ok("eth_getBalance", json!([bob, format!("{:#x}", i + 1)])).await,
            json!(format!("{:#x}", i + 1))
        );
    }
}

#[tokio::test]
async fn call_revert_estimate_overrides_and_logs() {
    let mut h = Harness::new(
        TreeConfig::default(),
        RpcConfig { max_logs_range: 2, ..RpcConfig::default() },
    );
    let deployer = h.kit.keys[0].address();
    let deploy = h.sign(0, 0, TxKind::Create, test_contract_initcode(), 300_000);
    h.kit.submit(deploy.clone());
    h.mine();
    let receipt = h.ok("eth_getTransactionReceipt", json!([deploy.tx_hash()])).await;
    let contract: Address = serde_json::from_value(receipt["contractAddress"].clone()).unwrap();
    assert_eq!(contract, deployer.create(0));
    assert_ne!(h.ok("eth_getCode", json!([contract, "latest"])).await, "0x");

    // Revert: code 3, geth's message, ABI-encoded reason in data.
    let e = h.err("eth_call", json!([{"to": contract, "data": "0x01"}, "latest"])).await;
    assert_eq!(e["code"], 3);
    assert_eq!(e["message"], "execution reverted: nope");
    assert!(e["data"].as_str().unwrap().starts_with("0x08c379a0"));
    assert_eq!(h.ok("eth_call", json!([{"to": contract}, "latest"])).await, "0x");
    // A state override puts the same code at another address.
    let code = h.ok("eth_getCode", json!([contract, "latest"])).await;
    let other = Address::repeat_byte(0x77);
    let e = h
        .err(
            "eth_call",
            json!([{"to": other, "data": "0x01"}, "latest", {other.to_string(): {"code": code}}]),
        )
        .await;
    assert_eq!(e["code"], 3);
    // A call from an address holding code is simulated, as geth does (EIP-3607 binds only
    // transactions): wallets simulate calls from smart accounts.
    assert_eq!(h.ok("eth_call", json!([{"from": contract, "to": contract}, "latest"])).await, "0x");
    // Before the deploy block there is no code: the call succeeds with empty output.
    assert_eq!(h.ok("eth_call", json!([{"to": contract, "data": "0x01"}, "earliest"])).await, "0x");

    let gas = u64_of(&h.ok("eth_estimateGas", json!([{"from": deployer, "to": contract}])).await);
    assert!(gas > 21_375 && gas < 30_000, "estimate {gas}");
    let transfer = u64_of(
        &h.ok("eth_estimateGas", json!([{"from": deployer, "to": other, "value": "0x1"}])).await,
    );
    assert_eq!(transfer, 21_000);
    let e =
        h.err("eth_estimateGas", json!([{"from": deployer, "to": contract, "data": "0x01"}])).await;
    assert_eq!(e["code"], 3);

    // The estimate is enough for a real transaction that logs.
    let log_tx = h.sign(0, 1, TxKind::Call(contract), Bytes::new(), gas);
    h.kit.submit(log_tx.clone());
    let block = h.mine();
    let receipt = h.ok("eth_getTransactionReceipt", json!([log_tx.tx_hash()])).await;
    assert_eq!(receipt["status"], "0x1");
    let logs = h
        .ok("eth_getLogs", json!([{"fromBlock": "0x1", "toBlock": "latest", "topics": [TOPIC]}]))
        .await;
    assert_eq!(logs.as_array().unwrap().len(), 1);
    assert_eq!(logs[0]["address"], json!(contract));
    assert_eq!(logs[0]["blockHash"], json!(block));
    let none =
        h.ok("eth_getLogs", json!([{"blockHash": block, "topics": [B256::repeat_byte(1)]}])).await;
    assert_eq!(none, json!([]));
    let by_address = h.ok("eth_getLogs", json!([{"blockHash": block, "address": contract}])).await;
    assert_eq!(by_address.as_array().unwrap().len(), 1);
    let e = h.err("eth_getLogs", json!([{"fromBlock": "0x0", "toBlock": "latest"}])).await;
    assert_eq!(e["code"], -32005);
    assert_eq!(e["message"], "query exceeds max block range 2");

    // Access list and traces of the same call.
    let list = h.ok("eth_createAccessList", json!([{"from": deployer, "to": contract}])).await;
    assert!(list["gasUsed"].is_string());
    let trace =
        h.ok("debug_traceTransaction", json!([log_tx.tx_hash(), {"tracer": "callTracer"}])).await;
    assert_eq!(trace["to"], json!(contract));
    assert_eq!(trace["type"], "CALL");
    let structs =
        h.ok("debug_traceCall", json!([{"to": contract, "data": "0x01"}, "latest", {}])).await;
    assert_eq!(structs["failed"], true);
    assert!(structs["structLogs"].as_array().unwrap().iter().any(|l| l["op"] == "REVERT"));
}

#[tokio::test]
async fn traced_transactions_see_the_blocks_system_calls() {
    // A transaction reading the EIP-4788 beacon root of its own block: it succeeds only after
    // the block's pre-transaction system call stored that root, in the block and in its trace.
    let mut h = Harness::new(TreeConfig::default(), RpcConfig::default());
    let beacon_roots = alloy_eips::eip4788::BEACON_ROOTS_ADDRESS;
    let timestamp = h.kit.timestamp + 12;
    let input = Bytes::from(U256::from(timestamp).to_be_bytes::<32>().to_vec());
    let tx = h.sign(0, 0, TxKind::Call(beacon_roots), input, 100_000);
    h.kit.submit(tx.clone());
    h.mine();
    let receipt = h.ok("eth_getTransactionReceipt", json!([tx.tx_hash()])).await;
    assert_eq!(receipt["status"], "0x1", "the read succeeds in the block");
    let trace =
        h.ok("debug_traceTransaction", json!([tx.tx_hash(), {"tracer": "callTracer"}])).await;
    assert!(trace.get("error").is_none(), "{trace}");
    assert_eq!(trace["output"], json!(B256::repeat_byte(9)), "the block's parentBeaconBlockRoot");
}

#[tokio::test]
async fn log_subscriptions_resend_re_orged_logs_as_removed() {
    let mut h = Harness::new(TreeConfig::default(), RpcConfig::default());
    let deploy = h.sign(0, 0, TxKind::Create, test_contract_initcode(), 300_000);
    h.kit.submit(deploy);
    let parent = h.mine();
    let contract = h.kit.keys[0].address().create(0);
    let mut logs = h
        .module
        .subscribe_unbounded("eth_subscribe", (String::from("logs"), json!({"address": contract})))
        .await
        .unwrap();
    // Block A logs; its sibling B (built from an empty pool) does not.
    let sibling = h.kit.build_on(parent, Address::repeat_byte(0xfd));
    h.kit.tree.new_payload(sibling.block.block.clone()).unwrap();
    h.kit.submit(h.sign(0, 1, TxKind::Call(contract), Bytes::new(), 100_000));
    let a = h.mine();
    let (log, _) = logs.next::<Value>().await.unwrap().unwrap();
    assert_eq!((log["blockHash"].clone(), log["removed"].clone()), (json!(a), json!(false)));

    // The fork choice moves to B: A's log comes again, removed.
    let outcome = h.kit.fcu(sibling.block.block.hash(), parent);
    let crate::fork_choice::ForkchoiceOutcome::Valid { change, .. } = outcome else {
        panic!("{outcome:?}")
    };
    assert_eq!(change.reverted.len(), 1);
    h.ctx.events.send(Arc::new(change)).unwrap();
    let (log, _) = logs.next::<Value>().await.unwrap().unwrap();
    assert_eq!((log["blockHash"].clone(), log["removed"].clone()), (json!(a), json!(true)));
    assert_eq!(log["topics"], json!([TOPIC]));
}

#[tokio::test]
async fn proofs_verify_against_block_state_roots_in_memory_and_persisted() {
    use alloy_rpc_types_eth::EIP1186AccountProofResponse;
    use alloy_trie::{Nibbles, TrieAccount, proof::verify_proof};
    // Persistence threshold 2: the first blocks reach MDBX, the last two stay in memory.
    let mut h = Harness::new(TreeConfig::default(), RpcConfig::default());
    let sender = h.kit.keys[0].address();
    let mut blocks = Vec::new();
    for nonce in 0..6 {
        h.kit.submit(h.kit.transfer(0, nonce, Address::repeat_byte(0x42), 7));
        blocks.push(h.mine());
    }
    let persisted = h.ctx.snapshot().persisted.number;
    assert!((2..6).contains(&persisted), "blocks on both sides of the persisted tip {persisted}");
    let absent = Address::repeat_byte(0x99);
    let slots =
        json!(["0x0", "0x0000000000000000000000000000000000000000000000000000000000000001"]);
    for (number, hash) in blocks.iter().enumerate().map(|(i, h)| (i as u64 + 1, *h)) {
        let block = h.ok("eth_getBlockByHash", json!([hash, false])).await;
        let root: B256 = serde_json::from_value(block["stateRoot"].clone()).unwrap();
        for (address, nonce) in [(sender, number), (absent, 0)] {
            let tag = format!("{number:#x}");
            let raw = h.ok("eth_getProof", json!([address, slots, tag])).await;
            let proof: EIP1186AccountProofResponse = serde_json::from_value(raw).unwrap();
            assert_eq!(proof.nonce, nonce, "block {number}");
            let leaf = (address == sender).then(|| {
                alloy_rlp::encode(TrieAccount {
                    nonce: proof.nonce,
                    balance: proof.balance,
                    storage_root: proof.storage_hash,
                    code_hash: proof.code_hash,
                })
            });
            verify_proof(root, Nibbles::unpack(keccak256(address)), leaf, &proof.account_proof)
                .unwrap_or_else(|e| panic!("block {number}, {address}: {e}"));
            assert_eq!(proof.storage_proof.len(), 2);
            assert!(proof.storage_proof.iter().all(|p| p.value.is_zero()));
        }
    }
    let many: Vec<String> = (0..1025).map(|i| format!("{i:#x}")).collect();
    let e = h.err("eth_getProof", json!([sender, many, "latest"])).await;
    assert!(e["message"].as_str().unwrap().contains("too many storage keys"), "{e}");
    let e = h.err("eth_getProof", json!([sender, ["0x0"], "0x99"])).await;
    assert_eq!(e["message"], "header not found");
}

/// `eth_getProof` and `debug_traceTransaction` run a bounded number at once: with every permit
/// taken, a request waits at most the EVM time-out and is refused; once one frees, it is served.
#[tokio::test]
async fn proofs_and_traces_run_under_concurrency_limits() {
    let config =
        RpcConfig { evm_timeout: std::time::Duration::from_millis(200), ..RpcConfig::default() };
    let mut h = Harness::new(TreeConfig::default(), config);
    h.kit.submit(h.kit.transfer(0, 0, Address::repeat_byte(0x42), 7));
    h.mine();
    let sender = h.kit.keys[0].address();
    let keys: Vec<String> = (0..super::chain::MAX_PROOF_KEYS).map(|i| format!("{i:#x}")).collect();
    let all = u32::try_from(super::PROOF_PERMITS).unwrap();
    let held = h.ctx.proof_permits.clone().acquire_many_owned(all).await.unwrap();
    let e = h.err("eth_getProof", json!([sender, ["0x0"], "latest"])).await;
    assert_eq!(e["code"], -32005, "{e}");
    assert!(e["message"].as_str().unwrap().contains("too many eth_getProof requests"), "{e}");
    drop(held);
    let proof = h.ok("eth_getProof", json!([sender, keys, "latest"])).await;
    // A transaction's trace replays its block up to it: limited the same way.
    let tx = h.kit.transfer(0, 1, Address::repeat_byte(0x42), 7);
    h.kit.submit(tx.clone());
    h.mine();
    let all = u32::try_from(super::BLOCK_REPLAY_PERMITS).unwrap();
    let held = h.ctx.replay_permits.clone().acquire_many_owned(all).await.unwrap();
    let e = h.err("debug_traceTransaction", json!([tx.tx_hash()])).await;
    assert!(e["message"].as_str().unwrap().contains("too many debug_traceTransaction"), "{e}");
    drop(held);
    h.ok("debug_traceTransaction", json!([tx.tx_hash(), {"tracer": "callTracer"}])).await;
    assert_eq!(proof["storageProof"].as_array().map(Vec::len), Some(super::chain::MAX_PROOF_KEYS));
    assert_eq!(h.ctx.proof_permits.available_permits(), super::PROOF_PERMITS);
}

#[tokio::test]
async fn pool_errors_and_txpool_namespace() {
    let h = Harness::new(TreeConfig::default(), RpcConfig::default());
    let bob = Address::repeat_byte(0xb0);
    let tx = h.kit.transfer(1, 0, bob, 1);
    let raw = Bytes::from(tx.encoded_2718());
    h.ok("eth_sendRawTransaction", json!([raw])).await;
    let e = h.err("eth_sendRawTransaction", json!([raw])).await;
    assert_eq!((e["code"].clone(), e["message"].clone()), (json!(-32000), json!("already known")));
    let e = h.err("eth_sendRawTransaction", json!(["0x02f8"])).await;
    assert_eq!(e["code"], -32000);
    assert!(e["message"].as_str().unwrap().starts_with("rlp: "), "{e}");
    let gap = h.kit.transfer(1, 5, bob, 1);
    h.ok("eth_sendRawTransaction", json!([Bytes::from(gap.encoded_2718())])).await;
    let status = h.ok("txpool_status", json!([])).await;
    assert_eq!(status, json!({"pending": "0x1", "queued": "0x1"}));
    let content = h.ok("txpool_content", json!([])).await;
    let sender = h.kit.keys[1].address().to_checksum(None);
    assert_eq!(content["pending"][&sender]["0"]["hash"], json!(tx.tx_hash()));
    assert_eq!(content["queued"][&sender]["5"]["hash"], json!(gap.tx_hash()));
    let inspect = h.ok("txpool_inspect", json!([])).await;
    assert!(inspect["pending"][&sender]["0"].as_str().unwrap().contains("1 wei"));
}

#[tokio::test]
async fn filters_report_new_blocks_logs_and_pending() {
    let mut h = Harness::new(TreeConfig::default(), RpcConfig::default());
    let blocks = h.ok("eth_newBlockFilter", json!([])).await;
    let pending = h.ok("eth_newPendingTransactionFilter", json!([])).await;
    let logs = h.ok("eth_newFilter", json!([{"topics": [TOPIC]}])).await;
    let deploy = h.sign(0, 0, TxKind::Create, test_contract_initcode(), 300_000);
    h.ok("eth_sendRawTransaction", json!([Bytes::from(deploy.encoded_2718())])).await;
    assert_eq!(h.ok("eth_getFilterChanges", json!([pending])).await, json!([deploy.tx_hash()]));
    let first = h.mine();
    let contract = h.kit.keys[0].address().create(0);
    h.kit.submit(h.sign(0, 1, TxKind::Call(contract), Bytes::new(), 100_000));
    let second = h.mine();
    assert_eq!(h.ok("eth_getFilterChanges", json!([blocks])).await, json!([first, second]));
    assert_eq!(h.ok("eth_getFilterChanges", json!([blocks])).await, json!([]));
    let changes = h.ok("eth_getFilterChanges", json!([logs])).await;
    assert_eq!(changes.as_array().unwrap().len(), 1);
    assert_eq!(h.ok("eth_getFilterChanges", json!([logs])).await, json!([]));
    assert_eq!(h.ok("eth_getFilterLogs", json!([logs])).await.as_array().unwrap().len(), 1);
    assert_eq!(h.ok("eth_uninstallFilter", json!([logs])).await, true);
    assert_eq!(h.ok("eth_uninstallFilter", json!([logs])).await, false);
    let e = h.err("eth_getFilterChanges", json!([logs])).await;
    assert_eq!(e["message"], "filter not found");
}

#[tokio::test]
async fn fee_methods() {
    let mut h = Harness::new(TreeConfig::default(), RpcConfig::default());
    for nonce in 0..3 {
        h.kit.submit(h.kit.transfer(2, nonce, Address::repeat_byte(1), 1));
        h.mine();
    }
    let history = h.ok("eth_feeHistory", json!(["0x2", "latest", [25.0, 75.0]])).await;
    assert_eq!(history["oldestBlock"], "0x2");
    assert_eq!(history["baseFeePerGas"].as_array().unwrap().len(), 3);
    assert_eq!(history["gasUsedRatio"].as_array().unwrap().len(), 2);
    assert_eq!(history["reward"][0], json!(["0x3b9aca00", "0x3b9aca00"]));
    let e = h.err("eth_feeHistory", json!(["0x2", "latest", [75.0, 25.0]])).await;
    assert_eq!(e["code"], -32602);
    // At most 100 percentiles, as geth (each one is a pass over every block's transactions).
    let hundred: Vec<f64> = (0..100).map(f64::from).collect();
    let history = h.ok("eth_feeHistory", json!(["0x2", "latest", hundred])).await;
    assert_eq!(history["reward"][0].as_array().unwrap().len(), 100);
    let many: Vec<f64> = (0..101).map(|i| f64::from(i) * 0.99).collect();
    let e = h.err("eth_feeHistory", json!(["0x2", "latest", many])).await;
    assert_eq!(e["code"], -32602);
    assert_eq!(e["message"], "invalid reward percentiles: over the query limit 100");
    let tip = u64_of(&h.ok("eth_maxPriorityFeePerGas", json!([])).await);
    assert_eq!(tip, GWEI as u64);
    let price = u64_of(&h.ok("eth_gasPrice", json!([])).await);
    assert!(price > tip);
    assert_eq!(h.ok("eth_blobBaseFee", json!([])).await, "0x1");
    // The block count is capped by `max_fee_history`, not refused.
    let capped = RpcConfig { max_fee_history: 2, ..RpcConfig::default() };
    let h = Harness::with_kit(h.kit, capped);
    let history = h.ok("eth_feeHistory", json!(["0xffffffffffffffff", "latest", [50.0]])).await;
    assert_eq!(history["gasUsedRatio"].as_array().unwrap().len(), 2);
}

#[tokio::test]
async fn malformed_requests_get_standard_errors() {
    let h = Harness::new(TreeConfig::default(), RpcConfig::default());
    let r = h.call("eth_nope", json!([])).await;
    assert_eq!(r["error"]["code"], -32601);
    let r = h.call("eth_getBalance", json!(["0x12", "latest"])).await;
    assert_eq!(r["error"]["code"], -32602);
    let r = h.call("eth_getBalance", json!([{"a": 1}])).await;
    assert_eq!(r["error"]["code"], -32602);
    let r = h.call("eth_getBlockByNumber", json!(["0xzz", false])).await;
    assert_eq!(r["error"]["code"], -32602);
    let r = h.call("eth_sendRawTransaction", json!(["not hex"])).await;
    assert_eq!(r["error"]["code"], -32602);
    let r = h.call("web3_sha3", json!(["0x68656c6c6f"])).await;
    assert_eq!(r["result"], "0x1c8aff950685c2ed4bc3174f3472287b56d9517b9c948127319a09a7a36deac8");
}

#[tokio::test]
async fn evm_timeout_aborts_calls() {
    let config =
        RpcConfig { evm_timeout: std::time::Duration::from_nanos(1), ..RpcConfig::default() };
    let h = Harness::new(TreeConfig::default(), config);
    // EVM time-out: the caller gets an error at the deadline, not a stalled request.
    // An endless loop (JUMPDEST PUSH1 0 JUMP) placed by a state override runs until the gas cap
    // (50M gas, tens of milliseconds): far past the deadline.
    let looping = Address::repeat_byte(0x10);
    let overrides = json!({looping.to_string(): {"code": "0x5b600056"}});
    let e = h.err("eth_call", json!([{"to": looping}, "latest", overrides])).await;
    assert!(e["message"].as_str().unwrap().starts_with("execution aborted (timeout"), "{e}");
}

/// Heavy work past its deadline stops by itself: an endless loop given a trillion gas (minutes
/// of work) returns the time-out error at the deadline and gives its slot back, so with a
/// single slot the next request is served (were the loop still running, it would wait out its
/// own deadline for the slot and be refused). Covers the plain EVM, the estimate's search, the
/// access-list rounds and a tracer.
#[tokio::test]
async fn heavy_work_stops_at_its_deadline_and_frees_its_slot() {
    let config = RpcConfig {
        evm_timeout: std::time::Duration::from_millis(300),
        gas_cap: 1_000_000_000_000,
        max_heavy_requests: 1,
        ..RpcConfig::default()
    };
    let h = Harness::new(TreeConfig::default(), config);
    // JUMPDEST PUSH1 0 JUMP, put in place by a state override.
    let looping = Address::repeat_byte(0x10);
    let overrides = json!({looping.to_string(): {"code": "0x5b600056"}});
    let request = json!({"to": looping, "gas": "0xe8d4a51000"});
    let endless: [(&str, Value); 4] = [
        ("eth_call", json!([request, "latest", overrides])),
        ("eth_estimateGas", json!([request, "latest", overrides])),
        // No override parameter: the loop runs as the init code of a contract creation.
        ("eth_createAccessList", json!([{"gas": "0xe8d4a51000", "input": "0x5b600056"}])),
        (
            "debug_traceCall",
            json!([request, "latest", {"tracer": "callTracer", "stateOverrides": overrides}]),
        ),
    ];
    for (method, params) in endless {
        let started = std::time::Instant::now();
        let e = h.err(method, params).await;
        assert!(e["message"].as_str().unwrap().starts_with("execution aborted (timeout"), "{e}");
        assert!(started.elapsed() < std::time::Duration::from_secs(5), "{method}: not prompt");
        let quick = json!([{"to": Address::repeat_byte(0x11)}, "latest"]);
        assert_eq!(h.ok("eth_call", quick).await, "0x", "after {method}");
        assert_eq!(h.ctx.heavy_slots().available_permits(), 1, "after {method}");
    }
}

/// A tracer's record may not outgrow the response limit while the run goes on: a loop traced
/// by the opcode logger with memory on is halted once its record would pass the limit, with a
/// clear error, long before its deadline (which is what stopped it before, after recording
/// whatever fit in the time). A small trace under the same limit is served.
#[tokio::test]
async fn a_trace_is_halted_when_its_record_outgrows_the_response_limit() {
    let config = RpcConfig {
        evm_timeout: std::time::Duration::from_secs(2),
        max_response_bytes: 1_000_000,
        ..RpcConfig::default()
    };
    let h = Harness::new(TreeConfig::default(), config);
    // MSTORE 1 at 0x20 (64 bytes of memory), then JUMPDEST PUSH1 5 JUMP for ever.
    let looping = Address::repeat_byte(0x10);
    let overrides = json!({looping.to_string(): {"code": "0x60016020525b600556"}});
    let request = json!({"to": looping, "gas": "0x2faf080"});
    let tracers = [
        json!({"enableMemory": true, "stateOverrides": overrides}),
        json!({"stateOverrides": overrides}),
    ];
    for options in tracers {
        let started = std::time::Instant::now();
        let e = h.err("debug_traceCall", json!([request, "latest", options])).await;
        let message = e["message"].as_str().unwrap();
        assert!(message.starts_with("trace larger than the response limit"), "{options}: {e}");
        assert!(started.elapsed() < std::time::Duration::from_secs(2), "not before the deadline");
    }
    // Calls with a large input, each recorded by the call tracer, are bounded the same way:
    // the contract calls itself with 32 KiB of its memory as input, as deep as its gas allows:
    // CALL(gas, self, 0, 0, 0x8000, 0, 0).
    let calling = Address::repeat_byte(0x12);
    let code = "0x6000600061800060006000305af1";
    let overrides = json!({calling.to_string(): {"code": code}});
    let request = json!({"to": calling, "gas": "0x2faf080"});
    let e = h
        .err(
            "debug_traceCall",
            json!([request, "latest", {"tracer": "callTracer", "stateOverrides": overrides}]),
        )
        .await;
    assert!(e["message"].as_str().unwrap().starts_with("trace larger than"), "{e}");
    let small = json!([{"to": Address::repeat_byte(0x11)}, "latest", {"enableMemory": true}]);
    let trace = h.ok("debug_traceCall", small).await;
    assert_eq!(trace["failed"], false, "{trace}");
}

/// Block walks look at the deadline between blocks: a walk whose deadline has passed stops.
#[tokio::test]
async fn block_walks_stop_at_their_deadline() {
    let mut h = Harness::new(TreeConfig::default(), RpcConfig::default());
    for nonce in 0..3 {
        h.kit.submit(h.kit.transfer(2, nonce, Address::repeat_byte(1), 1));
        h.mine();
    }
    let passed = super::Deadline::after(std::time::Duration::ZERO);
    let filter = alloy_rpc_types_eth::Filter::new().from_block(0).to_block(3);
    let live = super::Deadline::after(std::time::Duration::from_secs(60));
    assert!(h.ctx.logs(&filter, &live).is_ok());
    assert!(matches!(h.ctx.logs(&filter, &passed), Err(super::RpcError::TimedOut(_))));
    let newest = alloy_eips::BlockNumberOrTag::Latest;
    assert!(h.ctx.fee_history(3, newest, Some(vec![50.0]), &live).is_ok());
    let late = h.ctx.fee_history(3, newest, Some(vec![50.0]), &passed);
    assert!(matches!(late, Err(super::RpcError::TimedOut(_))));
}

/// Every heavy method waits for one of the shared heavy slots: with all of them taken it is
/// refused once its deadline passes, and served when one frees.
#[tokio::test]
async fn heavy_methods_share_one_bounded_pool() {
    let config = RpcConfig {
        evm_timeout: std::time::Duration::from_millis(200),
        max_heavy_requests: 2,
        ..RpcConfig::default()
    };
    let h = Harness::new(TreeConfig::default(), config);
    let sender = h.kit.keys[0].address();
    let calls: [(&str, Value); 8] = [
        ("eth_call", json!([{"to": sender}, "latest"])),
        ("eth_estimateGas", json!([{"to": sender}, "latest"])),
        ("eth_createAccessList", json!([{"to": sender}, "latest"])),
        ("debug_traceCall", json!([{"to": sender}, "latest", {"tracer": "callTracer"}])),
        ("eth_getProof", json!([sender, [], "latest"])),
        ("eth_getLogs", json!([{"fromBlock": "0x0"}])),
        ("eth_feeHistory", json!(["0x1", "latest", [50.0]])),
        ("txpool_content", json!([])),
    ];
    let held = h.ctx.heavy_slots().clone().acquire_many_owned(2).await.unwrap();
    for (method, params) in &calls {
        let e = h.err(method, params.clone()).await;
        assert_eq!(e["code"], -32005, "{method}: {e}");
        assert!(e["message"].as_str().unwrap().contains("requests at once"), "{method}: {e}");
    }
    drop(held);
    for (method, params) in calls {
        h.ok(method, params).await;
    }
    assert_eq!(h.ctx.heavy_slots().available_permits(), 2);
}

#[tokio::test]
async fn limits_give_clear_errors() {
    let config = RpcConfig { max_logs: 0, max_filters: 1, ..RpcConfig::default() };
    let mut h = Harness::new(TreeConfig::default(), config);
    let deploy = h.sign(0, 0, TxKind::Create, test_contract_initcode(), 300_000);
    h.kit.submit(deploy);
    h.mine();
    let contract = h.kit.keys[0].address().create(0);
    h.kit.submit(h.sign(0, 1, TxKind::Call(contract), Bytes::new(), 100_000));
    h.mine();
    // Result-size cap of eth_getLogs.
    let e = h.err("eth_getLogs", json!([{"fromBlock": "0x0", "topics": [TOPIC]}])).await;
    assert_eq!(e["code"], -32005);
    assert_eq!(e["message"], "query exceeds max results 0");
    // Filter count cap.
    h.ok("eth_newBlockFilter", json!([])).await;
    let e = h.err("eth_newBlockFilter", json!([])).await;
    assert_eq!(e["code"], -32005);
}

#[tokio::test]
async fn gas_cap_bounds_calls() {
    let mut h =
        Harness::new(TreeConfig::default(), RpcConfig { gas_cap: 30_000, ..RpcConfig::default() });
    let deploy = h.sign(0, 0, TxKind::Create, test_contract_initcode(), 300_000);
    h.kit.submit(deploy);
    h.mine();
    let contract = h.kit.keys[0].address().create(0);
    // The logging call needs ~22k gas: within the cap it runs, a loop of them cannot exceed it.
    assert_eq!(h.ok("eth_call", json!([{"to": contract, "gas": "0xffffffff"}])).await, "0x");
    let e = h
        .err(
            "eth_estimateGas",
            json!([{"to": contract, "data": "0x", "gas": "0x5208", "value": "0x0"}]),
        )
        .await;
    assert!(e["message"].as_str().unwrap().contains("gas required exceeds allowance"), "{e}");
}

#[tokio::test]
async fn pending_transaction_subscriptions_send_hashes_and_full_transactions() {
    let h = Harness::new(TreeConfig::default(), RpcConfig::default());
    let mut hashes =
        h.module.subscribe_unbounded("eth_subscribe", ["newPendingTransactions"]).await.unwrap();
    let mut full = h
        .module
        .subscribe_unbounded("eth_subscribe", (String::from("newPendingTransactions"), true))
        .await
        .unwrap();
    let tx = h.kit.transfer(3, 0, Address::repeat_byte(1), 1);
    h.ok("eth_sendRawTransaction", json!([Bytes::from(tx.encoded_2718())])).await;
    let (hash, _) = hashes.next::<B256>().await.unwrap().unwrap();
    assert_eq!(hash, *tx.tx_hash());
    let (whole, _) = full.next::<Value>().await.unwrap().unwrap();
    assert_eq!(whole["hash"], json!(tx.tx_hash()));
    assert_eq!(whole["from"], json!(h.kit.keys[3].address()));
    let r = h.call("eth_subscribe", json!(["nope"])).await;
    assert_eq!(r["error"]["code"], -32602);
}

#[test]
fn rpc_args_parse_like_reth() {
    use clap::Parser;
    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        rpc: super::RpcArgs,
    }
    let cli = Cli::parse_from([
        "x",
        "--http",
        "--http.port",
        "9545",
        "--http.api",
        "eth,debug",
        "--http.vhosts",
        "localhost,example.org",
        "--http.corsdomain",
        "*",
        "--ws",
        "--rpc.gascap",
        "1000000",
        "--rpc.evmtimeout",
        "250ms",
        "--rpc.max-logs-range",
        "50",
        "--rpc.max-tracing-requests",
        "3",
    ]);
    let http = cli.rpc.http_server().unwrap();
    assert_eq!(http.addr.to_string(), "127.0.0.1:9545");
    assert_eq!(http.apis, ["eth", "debug"]);
    assert_eq!(http.vhosts, ["localhost", "example.org"]);
    assert_eq!(cli.rpc.ws_server().unwrap().addr.to_string(), "127.0.0.1:8546");
    let config = cli.rpc.config();
    assert_eq!((config.gas_cap, config.max_logs_range), (1_000_000, 50));
    assert_eq!(config.evm_timeout, std::time::Duration::from_millis(250));
    assert!(Cli::try_parse_from(["x", "--rpc.evmtimeout", "soon"]).is_err());
    assert_eq!(config.max_heavy_requests, 3);
    assert!(Cli::try_parse_from(["x", "--rpc.max-tracing-requests", "0"]).is_err());
    // Each heavy request holds an MDBX reader slot: the flag cannot ask for more than there are.
    let too_many = (super::heavy::MAX_HEAVY_REQUESTS + 1).to_string();
    assert!(Cli::try_parse_from(["x", "--rpc.max-tracing-requests", too_many.as_str()]).is_err());
    let most = super::heavy::MAX_HEAVY_REQUESTS.to_string();
    assert!(Cli::try_parse_from(["x", "--rpc.max-tracing-requests", most.as_str()]).is_ok());
    assert!(super::heavy::MAX_HEAVY_REQUESTS < crate::storage::MAX_READERS as usize);
    let defaults = Cli::parse_from(["x"]).rpc.config();
    assert_eq!(defaults.max_heavy_requests, super::default_max_heavy_requests());
}

#[test]
fn api_selection_keeps_only_named_namespaces() {
    let h = Harness::new(TreeConfig::default(), RpcConfig::default());
    let module = super::select_apis(eth_module(h.ctx.clone()), &["net".into()]).unwrap();
    let names: Vec<_> = module.method_names().collect();
    assert!(names.contains(&"net_version"));
    assert!(!names.iter().any(|n| n.starts_with("eth_") || n.starts_with("debug_")));
    assert!(super::select_apis(eth_module(h.ctx.clone()), &["admin".into()]).is_err());
}

/// A chain with the L1 exchange (the engine's unit-test configuration).
fn l1_harness() -> Harness {
    l1_harness_with(RpcConfig::default())
}

/// [`l1_harness`] with the RPC limits `config`.
fn l1_harness_with(config: RpcConfig) -> Harness {
    let kit = Kit::with_genesis(TreeConfig::default(), |keys| {
        let mut genesis: Value =
            serde_json::from_str(&crate::testkit::genesis_json(keys, false)).unwrap();
        genesis["config"]["tandem"]["l1"] =
            serde_json::to_value(crate::l1::config::test_config()).unwrap();
        genesis.to_string()
    });
    Harness::with_kit(kit, config)
}

#[tokio::test]
async fn l1_methods_read_the_exchange_at_a_block_and_refuse_bad_input() {
    use alloy_sol_types::{SolCall, sol};
    sol! {
        function depositEth() external payable;
        function placeOrder(uint32 market, bool isBuy, uint128 price, uint128 size, uint8 tif, uint128 cloid) external returns (uint64 orderId, uint128 filled, uint128 resting);
    }
    let mut h = l1_harness();
    let write = crate::l1::L1_WRITE_ADDRESS;
    let alice = h.kit.keys[0].address();
    let eth = U256::from(10u64).pow(U256::from(18u64));
    let mut deposit = TxEip1559 {
        chain_id: CHAIN_ID,
        nonce: 0,
        gas_limit: 500_000,
        max_fee_per_gas: 100 * GWEI,
        max_priority_fee_per_gas: GWEI,
        to: TxKind::Call(write),
        value: eth,
        input: depositEthCall {}.abi_encode().into(),
        ..Default::default()
    };
    let sig = h.kit.keys[0].sign_hash_sync(&deposit.signature_hash()).unwrap();
    h.kit.submit(deposit.clone().into_signed(sig).into());
    // Sell 0.5 ETH at 3,000.00 (market 0, tick 0.01 USD, lot 0.001 ETH), client id 9.
    let order = placeOrderCall {
        market: 0,
        isBuy: false,
        price: 3_000_000_000,
        size: 500_000_000_000_000_000,
        tif: 0,
        cloid: 9,
    };
    deposit.nonce = 1;
    deposit.value = U256::ZERO;
    deposit.input = order.abi_encode().into();
    let sig = h.kit.keys[0].sign_hash_sync(&deposit.signature_hash()).unwrap();
    h.kit.submit(deposit.into_signed(sig).into());
    h.mine();

    let config = h.ok("l1_config", json!([])).await;
    assert_eq!(config["markets"][0]["symbol"], "ETH/USD");
    let account = h.ok("l1_account", json!([alice])).await;
    assert_eq!(account["spot"][0]["total"], "1000000000000000000");
    assert_eq!(account["spot"][0]["hold"], "500000000000000000");
    assert_eq!(account["orders"][0]["cloid"], "9");
    assert_eq!(account["orders"][0]["side"], "sell");
    let book = h.ok("l1_book", json!([0, 5])).await;
    assert_eq!(
        book["asks"][0],
        json!({"price": "3000000000", "size": "500000000000000000", "orders": 1})
    );
    assert_eq!(book["bids"], json!([]));
    let id: u64 = serde_json::from_value::<u64>(account["orders"][0]["id"].clone()).unwrap();
    assert_eq!(h.ok("l1_order", json!([id])).await["price"], "3000000000");
    // No perps traded: the end-of-block steps so far emitted nothing (genesis runs none).
    assert_eq!(h.ok("l1_blockEvents", json!([])).await, json!([]));
    assert_eq!(h.ok("l1_blockEvents", json!(["earliest"])).await, json!([]));

    // Reads at the genesis block see nothing; a block is a block.
    let genesis = h.ok("l1_account", json!([alice, "earliest"])).await;
    assert_eq!(genesis["spot"], json!([]));
    assert_eq!(h.ok("l1_order", json!([id, "earliest"])).await, Value::Null);

    // The read precompiles answer eth_call; bad input reverts with the reason (code 3).
    let bba = h
        .ok("eth_call", json!([{ "to": crate::l1::READ_BEST_BID_ASK, "data": format!("0x{:064x}", 0) }, "latest"]))
        .await;
    let words = bba.as_str().unwrap().trim_start_matches("0x").to_string();
    assert_eq!(&words[..64], &format!("{:064x}", 0));
    assert_eq!(&words[64..], &format!("{:064x}", 3_000_000_000u64));
    let bad = h
        .err(
            "eth_call",
            json!([{ "to": crate::l1::READ_SPOT_BALANCE, "data": "0x1234" }, "latest"]),
        )
        .await;
    assert_eq!(bad["code"], 3);
    assert!(bad["message"].as_str().unwrap().contains("invalid input"), "{bad}");

    // Bad parameters are named; the unknown market is the engine's message.
    let err = h.err("l1_book", json!([7])).await;
    assert_eq!(err["code"], -32602);
    assert!(err["message"].as_str().unwrap().contains("unknown market 7"), "{err}");
    let err = h.err("l1_account", json!(["not an address"])).await;
    assert_eq!(err["code"], -32602);
}

/// The end-of-block step is the protocol's own, unmetered work: no simulation path runs it,
/// whatever its `from` or state overrides say (a forged open-account count of 2^50 made
/// `eth_call` abort the whole node on a 22 PB allocation). User actions stay simulable.
#[tokio::test]
async fn simulations_never_run_the_end_of_block_step() {
    use alloy_sol_types::{SolCall, sol};
    sol! {
        function depositEth() external payable;
    }
    let mut h = l1_harness();
    h.mine();
    let data = crate::l1::precompile::end_of_block_calldata();
    let attack =
        json!({ "from": crate::l1::SYSTEM_CALLER, "to": crate::l1::L1_CORE_ADDRESS, "data": data });
    // The open set's count slot (`Ns::OpenAccounts`, index 0, field 0) set to 2^50.
    let mut count_slot = [0u8; 32];
    count_slot[0] = 0x0a;
    let forged = json!({ crate::l1::L1_WRITE_ADDRESS.to_string(): {
        "stateDiff": { B256::from(count_slot).to_string(): B256::from(U256::from(1u64) << 50) }
    }});
    let refused = |method: &str, err: &Value| {
        let message = err["message"].as_str().unwrap_or_default();
        assert!(message.contains("protocol-only"), "{method}: {err}");
        assert_eq!(err["code"], -32000, "{method}: {err}");
    };
    for overrides in [json!({}), forged] {
        let err = h.err("eth_call", json!([attack, "latest", overrides])).await;
        refused("eth_call", &err);
        let err = h.err("eth_estimateGas", json!([attack, "latest", overrides])).await;
        refused("eth_estimateGas", &err);
        let err = h
            .err("debug_traceCall", json!([attack, "latest", { "stateOverrides": overrides }]))
            .await;
        refused("debug_traceCall", &err);
    }
    let err = h.err("eth_createAccessList", json!([attack, "latest"])).await;
    refused("eth_createAccessList", &err);

    // Any other caller gets the core's refusal, a revert, as before.
    let alice = h.kit.keys[0].address();
    let err = h
        .err(
            "eth_call",
            json!([{ "from": alice, "to": crate::l1::L1_CORE_ADDRESS, "data": data }, "latest"]),
        )
        .await;
    assert_eq!(err["code"], 3, "{err}");

    // A user action through the write contract is simulated and metered as in a block.
    let deposit = json!({
        "from": alice, "to": crate::l1::L1_WRITE_ADDRESS, "value": "0xde0b6b3a7640000",
        "data": Bytes::from(depositEthCall {}.abi_encode()),
    });
    let gas = h.ok("eth_estimateGas", json!([deposit, "latest"])).await;
    let gas = u64::from_str_radix(gas.as_str().unwrap().trim_start_matches("0x"), 16).unwrap();
    assert!(gas > 21_000 + crate::l1::precompile::CORE_BASE_GAS, "deposit estimated at {gas}");
    // The blocks' own end-of-block steps still run: the L1 block number follows the chain.
    h.mine();
    let number = h
        .ok("eth_call", json!([{ "to": crate::l1::READ_L1_BLOCK_NUMBER, "data": "0x" }, "latest"]))
        .await;
    assert_eq!(number, json!(format!("0x{:064x}", 2)));
}

/// `l1_blockEvents` executes a whole block again: a bounded number at once, a request that
/// finds every permit taken within the EVM time-out is refused, then served once one frees.
#[tokio::test]
async fn block_replays_run_under_a_concurrency_limit() {
    let config =
        RpcConfig { evm_timeout: std::time::Duration::from_millis(200), ..RpcConfig::default() };
    let mut h = l1_harness_with(config);
    h.mine();
    let all = u32::try_from(super::BLOCK_REPLAY_PERMITS).unwrap();
    let held = h.ctx.replay_permits.clone().acquire_many_owned(all).await.unwrap();
    let e = h.err("l1_blockEvents", json!(["latest"])).await;
    assert_eq!(e["code"], -32005, "{e}");
    assert!(e["message"].as_str().unwrap().contains("too many l1_blockEvents requests"), "{e}");
    drop(held);
    assert_eq!(h.ok("l1_blockEvents", json!(["latest"])).await, json!([]));
    assert_eq!(h.ctx.replay_permits.available_permits(), super::BLOCK_REPLAY_PERMITS);
}

#[tokio::test]
async fn l1_methods_say_the_exchange_is_off_on_a_plain_chain() {
    let h = Harness::new(TreeConfig::default(), RpcConfig::default());
    for (method, params) in [
        ("l1_config", json!([])),
        ("l1_book", json!([0])),
        ("l1_order", json!([1])),
        ("l1_blockEvents", json!(["latest"])),
    ] {
        let err = h.err(method, params).await;
        assert!(err["message"].as_str().unwrap().contains("not enabled"), "{method}: {err}");
    }
}

#[tokio::test]
async fn a_transaction_receipt_equals_its_entry_in_the_block_receipts() {
    let mut h = Harness::new(TreeConfig::default(), RpcConfig::default());
    let deploy = h.sign(0, 0, TxKind::Create, test_contract_initcode(), 300_000);
    h.kit.submit(deploy);
    h.mine();
    let contract = h.kit.keys[0].address().create(0);
    // Three logging calls and a reverting one in one block: log indexes run across the block.
    let txs = [
        h.sign(0, 1, TxKind::Call(contract), Bytes::new(), 100_000),
        h.sign(1, 0, TxKind::Call(contract), Bytes::from_static(&[1]), 100_000),
        h.sign(2, 0, TxKind::Call(contract), Bytes::new(), 100_000),
        h.sign(3, 0, TxKind::Call(contract), Bytes::new(), 100_000),
    ];
    for tx in &txs {
        h.kit.submit(tx.clone());
    }
    h.mine();
    let block = h.ok("eth_getBlockReceipts", json!(["latest"])).await;
    let block = block.as_array().unwrap();
    assert_eq!(block.len(), txs.len());
    let mut log_indexes = Vec::new();
    for entry in block {
        let hash = entry["transactionHash"].clone();
        assert_eq!(&h.ok("eth_getTransactionReceipt", json!([hash])).await, entry);
        for log in entry["logs"].as_array().unwrap() {
            log_indexes.push(u64_of(&log["logIndex"]));
        }
    }
    assert_eq!(log_indexes, vec![0, 1, 2]);
}

/// A WebSocket client written by hand, so that it can stop reading.
mod raw_ws {
    use tokio::{
        io::{AsyncReadExt, AsyncWriteExt},
        net::{TcpSocket, TcpStream},
    };

    /// Opens a WebSocket on `addr` with a small receive buffer (a client that stops reading
    /// fills it soon).
    pub async fn connect(addr: std::net::SocketAddr) -> TcpStream {
        match try_connect(addr).await {
            Ok(stream) => stream,
            Err(answer) => panic!("no WebSocket: {answer}"),
        }
    }

    /// [`connect`], or what the server answered instead of upgrading.
    pub async fn try_connect(addr: std::net::SocketAddr) -> Result<TcpStream, String> {
        let socket = TcpSocket::new_v4().unwrap();
        socket.set_recv_buffer_size(4096).unwrap();
        let mut stream = socket.connect(addr).await.map_err(|e| e.to_string())?;
        let request = format!(
            "GET / HTTP/1.1\r\nHost: {addr}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
        );
        stream.write_all(request.as_bytes()).await.map_err(|e| e.to_string())?;
        let mut head = Vec::new();
        while !head.ends_with(b"\r\n\r\n") {
            match stream.read_u8().await {
                Ok(byte) => head.push(byte),
                Err(e) => return Err(format!("{e} after {}", String::from_utf8_lossy(&head))),
            }
        }
        if head.starts_with(b"HTTP/1.1 101") {
            Ok(stream)
        } else {
            Err(String::from_utf8_lossy(&head).into_owned())
        }
    }

    /// Sends `text` as one masked text frame.
    pub async fn send(stream: &mut TcpStream, text: &str) {
        let mask = [0x11u8, 0x22, 0x33, 0x44];
        let mut frame = vec![0x81];
        match text.len() {
            len @ 0..=125 => frame.push(0x80 | len as u8),
            len => {
                frame.push(0x80 | 126);
                frame.extend_from_slice(&(len as u16).to_be_bytes());
            }
        }
        frame.extend_from_slice(&mask);
        frame.extend(text.bytes().enumerate().map(|(i, b)| b ^ mask[i % 4]));
        stream.write_all(&frame).await.unwrap();
    }

    /// The next text frame (pings are read and not answered); `None` at the end of the stream
    /// or on a close frame.
    pub async fn next_text(stream: &mut TcpStream) -> Option<String> {
        loop {
            let head = stream.read_u16().await.ok()?;
            let opcode = (head >> 8) as u8 & 0x0f;
            let len = match head as u8 & 0x7f {
                126 => u64::from(stream.read_u16().await.ok()?),
                127 => stream.read_u64().await.ok()?,
                len => u64::from(len),
            };
            let mut payload = vec![0; usize::try_from(len).ok()?];
            stream.read_exact(&mut payload).await.ok()?;
            match opcode {
                0x1 => return String::from_utf8(payload).ok(),
                0x8 => return None,
                _ => continue,
            }
        }
    }
}

/// A harness whose chain has one block, a WebSocket server on it, and a burst of chain events
/// for its subscribers (the block's header 200 times).
async fn ws_server_on_one_block(
    config: RpcConfig,
) -> (
    Harness,
    super::RpcServerHandles,
    std::net::SocketAddr,
    Arc<crate::fork_choice::CanonicalChange>,
) {
    let mut h = Harness::new(TreeConfig::default(), config);
    let head = h.kit.tree.head().hash;
    let built = h.kit.build_on(head, Address::repeat_byte(0xfe));
    let block = built.block.block.clone();
    h.kit.tree.new_payload(block.clone()).unwrap();
    let crate::fork_choice::ForkchoiceOutcome::Valid { change, .. } = h.kit.fcu(block.hash(), head)
    else {
        panic!("the block is not valid")
    };
    let settings = super::ServerSettings {
        addr: "127.0.0.1:0".parse().unwrap(),
        apis: vec!["eth".into()],
        cors: None,
        vhosts: vec!["*".into()],
        ws_origins: Vec::new(),
    };
    let servers = super::start_http_ws(h.ctx.clone(), None, Some(settings)).await.unwrap();
    let addr = servers.ws.as_ref().unwrap().0;
    let burst = Arc::new(crate::fork_choice::CanonicalChange {
        reverted: Vec::new(),
        applied: vec![change.applied[0].clone(); 200],
    });
    (h, servers, addr, burst)
}

/// Subscriptions are limited per WebSocket connection, and a client that stops reading is let
/// go: its subscriptions end when a notification cannot be queued within the send time-out
/// (they do not wait on it forever, holding chain events), and the connection, which no longer
/// answers pings, is closed by the server.
#[tokio::test]
async fn websocket_clients_are_bounded_per_connection_and_dropped_when_not_reading() {
    use std::{sync::atomic::Ordering, time::Duration};
    let config = RpcConfig {
        max_subscriptions_per_connection: 2,
        ws_message_buffer: 4,
        subscription_send_timeout: Duration::from_millis(300),
        ws_ping_interval: Duration::from_secs(2),
        ..RpcConfig::default()
    };
    let (h, servers, addr, burst) = ws_server_on_one_block(config).await;

    let mut client = raw_ws::connect(addr).await;
    for id in 1..=3 {
        let request =
            json!({"jsonrpc": "2.0", "id": id, "method": "eth_subscribe", "params": ["newHeads"]});
        raw_ws::send(&mut client, &request.to_string()).await;
    }
    let mut answers = Vec::new();
    for _ in 0..3 {
        let text = raw_ws::next_text(&mut client).await.unwrap();
        answers.push(serde_json::from_str::<Value>(&text).unwrap());
    }
    assert_eq!(answers.iter().filter(|a| a.get("result").is_some()).count(), 2, "{answers:?}");
    let refused = answers.iter().find(|a| a.get("error").is_some()).unwrap();
    assert!(refused["error"]["message"].as_str().unwrap().contains("Too many subscriptions"));
    // The limit is the connection's: another connection subscribes.
    let mut other = raw_ws::connect(addr).await;
    let request =
        json!({"jsonrpc": "2.0", "id": 1, "method": "eth_subscribe", "params": ["newHeads"]});
    raw_ws::send(&mut other, &request.to_string()).await;
    let answer: Value =
        serde_json::from_str(&raw_ws::next_text(&mut other).await.unwrap()).unwrap();
    assert!(answer.get("result").is_some(), "{answer}");
    drop(other);

    // The client reads no more. Chain events keep coming, each of 200 headers.
    let started = std::time::Instant::now();
    loop {
        let _ = h.ctx.events.send(burst.clone());
        tokio::time::sleep(Duration::from_millis(5)).await;
        if h.ctx.live_subscriptions.load(Ordering::Relaxed) == 0 {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "subscriptions of a client that does not read are still served"
        );
    }
    // The server has closed the connection: reading what it queued ends at the end of stream.
    let drained = tokio::time::timeout(Duration::from_secs(20), async {
        let mut notifications = 0usize;
        while raw_ws::next_text(&mut client).await.is_some() {
            notifications += 1;
        }
        notifications
    })
    .await
    .expect("the server did not close the connection of a client that does not read");
    assert!(drained > 0);
    servers.stop();
}

/// A WebSocket client that stops reading while the server is writing to it (its TCP window
/// full) does not keep its socket and connection slot: the kernel resets it after
/// `--rpc.stalled-client-timeout`, and a new client takes the slot. Without the time-out the
/// server's send task waits on the write for ever and the slot is never freed.
#[tokio::test]
async fn a_client_that_stops_reading_loses_its_connection_slot() {
    use std::{sync::atomic::Ordering, time::Duration};
    let config = RpcConfig {
        max_connections: 1,
        ws_message_buffer: 4,
        subscription_send_timeout: Duration::from_millis(300),
        ws_ping_interval: Duration::from_millis(500),
        stalled_client_timeout: Duration::from_secs(2),
        ..RpcConfig::default()
    };
    let (h, servers, addr, burst) = ws_server_on_one_block(config).await;

    let mut client = raw_ws::connect(addr).await;
    let request =
        json!({"jsonrpc": "2.0", "id": 1, "method": "eth_subscribe", "params": ["newHeads"]});
    raw_ws::send(&mut client, &request.to_string()).await;
    assert!(raw_ws::next_text(&mut client).await.unwrap().contains("result"));
    // The only slot is taken.
    assert!(raw_ws::try_connect(addr).await.is_err(), "a second connection was let in");

    // The client reads no more; chain events fill its socket until its subscription ends.
    let started = std::time::Instant::now();
    while h.ctx.live_subscriptions.load(Ordering::Relaxed) > 0 {
        let _ = h.ctx.events.send(burst.clone());
        tokio::time::sleep(Duration::from_millis(5)).await;
        assert!(started.elapsed() < Duration::from_secs(10), "the subscription is still served");
    }
    // Still not reading, the client's slot comes free.
    let started = std::time::Instant::now();
    let mut other = loop {
        if let Ok(other) = raw_ws::try_connect(addr).await {
            break other;
        }
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "a client that stopped reading keeps the only connection slot"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let request = json!({"jsonrpc": "2.0", "id": 2, "method": "eth_blockNumber", "params": []});
    raw_ws::send(&mut other, &request.to_string()).await;
    assert!(raw_ws::next_text(&mut other).await.unwrap().contains("result"));
    // The stalled client's connection was reset under it.
    let rest = tokio::time::timeout(Duration::from_secs(5), async {
        while raw_ws::next_text(&mut client).await.is_some() {}
    })
    .await;
    assert!(rest.is_ok(), "the stalled connection is still open");
    drop(client);
    servers.stop();
}

/// L1 slots are priced like the EVM's storage through the real journal: a read precompile's
/// slot that the transaction's access list warmed costs 100 instead of 2,100 (the list itself
/// costs 2,400 for the address and 1,900 for the key, EIP-2930).
#[tokio::test]
async fn l1_reads_pay_less_for_slots_the_access_list_warmed() {
    use alloy_sol_types::SolValue;
    let h = l1_harness();
    let alice = h.kit.keys[0].address();
    let data = format!("0x{}", hex::encode((alice, 1u32).abi_encode_params()));
    let slot = crate::l1::store::key(crate::l1::store::Ns::Balance, alice, 1, 0, 0);
    let call = json!({ "from": alice, "to": crate::l1::READ_SPOT_BALANCE, "data": data });
    let mut listed = call.clone();
    listed["accessList"] =
        json!([{ "address": crate::l1::L1_WRITE_ADDRESS, "storageKeys": [slot] }]);
    let plain = u64_of(&h.ok("eth_estimateGas", json!([call])).await);
    let warmed = u64_of(&h.ok("eth_estimateGas", json!([listed])).await);
    assert_eq!(warmed - plain, 2_400 + 1_900 - (2_100 - 100), "{plain} vs {warmed}");
    // 21,000 + calldata + 2000 + 65 × 128 bytes + one cold slot.
    assert!(plain > 21_000 + 2_000 + 65 * 128 + 2_100, "{plain}");
}
