//! The Ethereum blockchain fixtures replayed through the Engine API instead of direct import:
//! every block becomes an `engine_newPayloadV{1..4}` call (the version of its fork, with the
//! payload as JSON, its blob versioned hashes, parent beacon block root and, for Prague, the
//! execution requests) followed by `engine_forkchoiceUpdated` to it, on a real node (engine
//! thread, block tree, MDBX). The fixture runner's expectations are unchanged: valid blocks must be
//! `VALID`, blocks with `expectException` must be refused and leave the head where it was, and
//! the final head and state root must match.
//!
//! The fixtures do not spell out Prague execution requests; as their README says, they are
//! recomputed by executing the block on its parent's state (what a consensus client would have
//! received from `getPayload`), then checked by the node against the header's `requestsHash`.

#![allow(clippy::unwrap_used)]

use std::{path::Path, sync::Arc};

use alloy_consensus::{Block, Transaction, TxEnvelope};
use alloy_primitives::B256;
use alloy_rpc_types_engine::{ExecutionPayloadV1, ExecutionPayloadV2, ExecutionPayloadV3};
use serde_json::{Value, json};
use tandem_el::{
    engine_api::EngineApi,
    executor::{self, Executor},
    fixtures::{
        self, BlockchainBackend, CaseOutcome,
        blockchain::{BlockchainTest, TestChain},
    },
    fork_choice::TreeConfig,
    node::{self, NodeConfig, RunningNode},
    payload_builder::job::JobConfig,
    txpool::PoolConfig,
};
use tandem_shared::{ChainSpec, Fork};

struct EngineChain {
    runtime: tokio::runtime::Runtime,
    node: Option<RunningNode>,
    api: EngineApi,
    executor: Executor,
    _dir: tempfile::TempDir,
}

impl EngineChain {
    fn new(spec: ChainSpec) -> Result<Self, String> {
        let dir = tempfile::Builder::new()
            .prefix("tandem-engine-fixture-")
            .tempdir()
            .map_err(|e| e.to_string())?;
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .map_err(|e| e.to_string())?;
        let spec = Arc::new(spec);
        let config = NodeConfig {
            datadir: dir.path().to_path_buf(),
            spec: spec.clone(),
            authrpc: "127.0.0.1:0".parse().map_err(|e: std::net::AddrParseError| e.to_string())?,
            jwt: alloy_rpc_types_engine::JwtSecret::random(),
            tree: TreeConfig::default(),
            pool: PoolConfig::default(),
            jobs: JobConfig::default(),
            rpc: Default::default(),
            dev: None,
        };
        let node = runtime.block_on(node::launch(config)).map_err(|e| e.to_string())?;
        let h = &node.handle;
        let api = EngineApi {
            spec: h.spec.clone(),
            engine: h.engine.clone(),
            jobs: h.jobs.clone(),
            db: h.db.clone(),
            view: h.view.clone(),
        };
        let executor = h.executor.clone();
        Ok(Self { runtime, node: Some(node), api, executor, _dir: dir })
    }

    /// The execution requests of `block`, from executing it on the head (its parent's) state.
    fn requests_of(&self, block: &Block<TxEnvelope>) -> Vec<alloy_primitives::Bytes> {
        let Ok(senders) = executor::recover_senders(&block.body.transactions) else {
            return Vec::new();
        };
        let view = self.api.view.read().clone();
        let Ok(state) = view.latest_state(&self.api.db) else { return Vec::new() };
        match self.executor.execute(block, &senders, &state) {
            Ok(output) => output.requests.take(),
            Err(_) => Vec::new(),
        }
    }
}

impl Drop for EngineChain {
    fn drop(&mut self) {
        if let Some(node) = self.node.take() {
            self.runtime.block_on(node.shutdown());
        }
    }
}

impl TestChain for EngineChain {
    fn import(&mut self, block: Block<TxEnvelope>, hash: B256) -> Result<(), String> {
        let h = &block.header;
        let fork = self.api.spec.fork_at(h.timestamp);
        let beacon_root = json!(h.parent_beacon_block_root.unwrap_or_default());
        let blob_hashes: Vec<B256> = block
            .body
            .transactions
            .iter()
            .flat_map(|tx| tx.blob_versioned_hashes().unwrap_or_default().to_vec())
            .collect();
        let (version, params) = match fork {
            Fork::Paris => (1, json!([ExecutionPayloadV1::from_block_unchecked(hash, &block)])),
            Fork::Shanghai => (2, json!([ExecutionPayloadV2::from_block_unchecked(hash, &block)])),
            Fork::Cancun => (
                3,
                json!([
                    ExecutionPayloadV3::from_block_unchecked(hash, &block),
                    blob_hashes,
                    beacon_root
                ]),
            ),
            Fork::Prague => {
                let requests = self.requests_of(&block);
                (
                    4,
                    json!([
                        ExecutionPayloadV3::from_block_unchecked(hash, &block),
                        blob_hashes,
                        beacon_root,
                        requests
                    ]),
                )
            }
        };
        let params: Vec<Value> = serde_json::from_value(params).map_err(|e| e.to_string())?;
        let status = self
            .runtime
            .block_on(self.api.new_payload(version, params))
            .map_err(|e| format!("newPayloadV{version} error {}: {}", e.code(), e.message()))?;
        if status["status"] != "VALID" {
            return Err(format!("newPayloadV{version}: {status}"));
        }
        let fcu_version = if fork >= Fork::Cancun { 3 } else { 2 };
        let zero = B256::ZERO;
        let state =
            json!({ "headBlockHash": hash, "safeBlockHash": zero, "finalizedBlockHash": zero });
        let fcu = self
            .runtime
            .block_on(self.api.fork_choice_updated(fcu_version, vec![state, Value::Null]))
            .map_err(|e| format!("forkchoiceUpdated error {}: {}", e.code(), e.message()))?;
        if fcu["payloadStatus"]["status"] != "VALID" {
            return Err(format!("forkchoiceUpdated: {fcu}"));
        }
        Ok(())
    }

    fn head_hash(&self) -> Result<B256, String> {
        Ok(self.api.view.read().head.hash)
    }

    fn head_state_root(&self) -> Result<B256, String> {
        let view = self.api.view.read().clone();
        if let Some(block) = view.block_by_number(view.head.number) {
            return Ok(block.header().state_root);
        }
        match self.api.db.header(view.head.number).map_err(|e| e.to_string())? {
            Some(header) => Ok(header.state_root),
            None => Err(format!("head header {} missing", view.head.number)),
        }
    }
}

struct EngineBackend;

impl BlockchainBackend for EngineBackend {
    fn run(&self, test: &BlockchainTest) -> CaseOutcome {
        match test.chain_spec().and_then(EngineChain::new) {
            Ok(mut chain) => test.run_on(&mut chain),
            Err(reason) => CaseOutcome { label: String::new(), result: Err(reason) },
        }
    }
}

#[test]
fn blockchain_fixtures_through_the_engine_api() {
    let root =
        tandem_shared::fixtures::fixtures_dir(Path::new(env!("CARGO_MANIFEST_DIR"))).unwrap();
    let jobs = std::thread::available_parallelism().map_or(2, |n| n.get());
    let report = fixtures::run(&root.join("blockchain_tests"), jobs, &EngineBackend).unwrap();
    for failure in report.failures.iter().take(20) {
        println!("FAIL {} {}: {}", failure.file.display(), failure.test, failure.reason);
    }
    let total = report.total();
    println!(
        "blockchain tests through the Engine API: {} passed, {} failed, {} skipped",
        total.passed, total.failed, total.skipped
    );
    assert!(total.passed > 2000, "expected the full fixture set, ran {}", total.passed);
    assert_eq!(total.failed, 0, "every fixture must give the same result as direct import");
}
