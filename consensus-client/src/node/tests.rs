//! The node end to end inside one process: four validators over real libp2p on loopback, each
//! driving its own in-process mock EL through the real Engine API client. The mock EL is a toy
//! chain (hash = SHA-256 of parent, number, timestamp, randao) that answers `SYNCING` for an
//! unknown parent, like a real EL.

use super::service::{NodeConfig, run};
use crate::crypto::{Ed25519Signer, Signer};
use crate::engine_client::{EngineFork, ForkSchedule};
use crate::genesis::{ConsensusGenesis, GenesisValidator};
use alloy_primitives::{Address, B256, Bloom, Bytes as ABytes, U256};
use alloy_rpc_types_engine::{ExecutionPayloadV1, ExecutionPayloadV2, ExecutionPayloadV3};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::oneshot;

const GENESIS_HASH: B256 = B256::repeat_byte(0x61);

/// An Engine API call the mock EL received (in order).
#[derive(Debug, Clone, PartialEq, Eq)]
enum ElCall {
    /// `newPayload` of the block with this number and hash.
    NewPayload(u64, B256),
    /// `forkchoiceUpdated` with this head.
    ForkChoice(B256),
}

#[derive(Default)]
struct Chain {
    blocks: HashMap<B256, (u64, B256)>,
    built: HashMap<String, ExecutionPayloadV3>,
    head: B256,
    finalized: B256,
    next_id: u64,
    calls: Vec<ElCall>,
}

impl Chain {
    fn new() -> Self {
        let mut c = Self { head: GENESIS_HASH, finalized: GENESIS_HASH, ..Self::default() };
        c.blocks.insert(GENESIS_HASH, (0, B256::ZERO));
        c
    }
    fn finalized_number(&self) -> u64 {
        self.blocks.get(&self.finalized).map_or(0, |b| b.0)
    }
}

fn status(s: &str) -> Value {
    json!({"status": s, "latestValidHash": null, "validationError": null})
}

fn handle(chain: &Mutex<Chain>, method: &str, params: &Value) -> Value {
    let mut c = chain.lock().unwrap();
    match method {
        "engine_exchangeCapabilities" => json!(EngineFork::all_methods()),
        "eth_getBlockByNumber" => {
            let (hash, number) = match params[0].as_str().unwrap() {
                "0x0" => (GENESIS_HASH, 0),
                "latest" | "finalized" => (c.finalized, c.finalized_number()),
                n => {
                    // The canonical chain is the head's.
                    let n = u64::from_str_radix(n.trim_start_matches("0x"), 16).unwrap();
                    let mut cur = c.head;
                    loop {
                        match c.blocks.get(&cur) {
                            Some(&(number, _)) if number == n => break (cur, n),
                            Some(&(number, parent)) if number > n => cur = parent,
                            _ => return Value::Null,
                        }
                    }
                }
            };
            json!({"hash": hash, "number": format!("{number:#x}")})
        }
        "engine_forkchoiceUpdatedV3" => {
            let head: B256 = serde_json::from_value(params[0]["headBlockHash"].clone()).unwrap();
            let fin: B256 =
                serde_json::from_value(params[0]["finalizedBlockHash"].clone()).unwrap();
            c.calls.push(ElCall::ForkChoice(head));
            let Some(&(number, _)) = c.blocks.get(&head) else {
                return json!({"payloadStatus": status("SYNCING"), "payloadId": null});
            };
            c.head = head;
            if c.blocks.contains_key(&fin) {
                c.finalized = fin;
            }
            let mut id = Value::Null;
            if let Some(attrs) = params.get(1).filter(|a| !a.is_null()) {
                let ts = u64::from_str_radix(
                    attrs["timestamp"].as_str().unwrap().trim_start_matches("0x"),
                    16,
                )
                .unwrap();
                let randao: B256 = serde_json::from_value(attrs["prevRandao"].clone()).unwrap();
                let mut h = Sha256::new();
                h.update(head);
                h.update((number + 1).to_be_bytes());
                h.update(ts.to_be_bytes());
                h.update(randao);
                let hash = B256::from_slice(&h.finalize());
                c.next_id += 1;
                let pid = format!("{:#018x}", c.next_id);
                c.built.insert(pid.clone(), payload(head, number + 1, ts, randao, hash));
                id = json!(pid);
            }
            json!({"payloadStatus": status("VALID"), "payloadId": id})
        }
        "engine_getPayloadV4" => {
            let p = c.built.get(params[0].as_str().unwrap()).cloned().unwrap();
            json!({"executionPayload": p, "blockValue": "0x0",
                "blobsBundle": {"commitments": [], "proofs": [], "blobs": []},
                "shouldOverrideBuilder": false, "executionRequests": []})
        }
        "engine_newPayloadV4" => {
            let p: ExecutionPayloadV3 = serde_json::from_value(params[0].clone()).unwrap();
            let v1 = &p.payload_inner.payload_inner;
            c.calls.push(ElCall::NewPayload(v1.block_number, v1.block_hash));
            if !c.blocks.contains_key(&v1.parent_hash) {
                return status("SYNCING");
            }
            c.blocks.insert(v1.block_hash, (v1.block_number, v1.parent_hash));
            status("VALID")
        }
        _ => json!(null),
    }
}

fn payload(parent: B256, number: u64, ts: u64, randao: B256, hash: B256) -> ExecutionPayloadV3 {
    ExecutionPayloadV3 {
        payload_inner: ExecutionPayloadV2 {
            payload_inner: ExecutionPayloadV1 {
                parent_hash: parent,
                fee_recipient: Address::ZERO,
                state_root: B256::ZERO,
                receipts_root: B256::ZERO,
                logs_bloom: Bloom::ZERO,
                prev_randao: randao,
                block_number: number,
                gas_limit: 30_000_000,
                gas_used: 0,
                timestamp: ts,
                extra_data: ABytes::new(),
                base_fee_per_gas: U256::from(1),
                block_hash: hash,
                transactions: vec![],
            },
            withdrawals: vec![],
        },
        blob_gas_used: 0,
        excess_blob_gas: 0,
    }
}

async fn mock_el(chain: Arc<Mutex<Chain>>) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else { return };
            let chain = chain.clone();
            tokio::spawn(async move {
                let svc = service_fn(move |req: Request<hyper::body::Incoming>| {
                    let chain = chain.clone();
                    async move {
                        let body = req.into_body().collect().await.unwrap().to_bytes();
                        let req: Value = serde_json::from_slice(&body).unwrap();
                        let result =
                            handle(&chain, req["method"].as_str().unwrap(), &req["params"]);
                        let reply = json!({"jsonrpc": "2.0", "id": req["id"], "result": result});
                        Ok::<_, std::convert::Infallible>(Response::new(Full::new(Bytes::from(
                            serde_json::to_vec(&reply).unwrap(),
                        ))))
                    }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), svc)
                    .await;
            });
        }
    });
    url
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

struct Net {
    dir: tempfile::TempDir,
    genesis: PathBuf,
    ports: Vec<u16>,
    peers: Vec<String>,
}

fn write_network(n: usize) -> Net {
    let dir = tempfile::tempdir().unwrap();
    let mut validators = Vec::new();
    let mut peers = Vec::new();
    for i in 0..n {
        let node = dir.path().join(format!("node{i}"));
        let k = crate::keys::generate(&node).unwrap();
        let seed = crate::keys::read_seed(&k.validator_key).unwrap();
        assert_eq!(Ed25519Signer::from_seed(&seed).public_key(), k.public_key);
        std::fs::write(node.join("jwt.hex"), "11".repeat(32)).unwrap();
        peers.push(k.peer_id.to_string());
        validators.push(GenesisValidator {
            name: format!("node{i}"),
            public_key: hex::encode(k.public_key.0),
            voting_power: 1,
            peer_id: k.peer_id.to_string(),
        });
    }
    let genesis = ConsensusGenesis {
        chain_id: 4242,
        el_genesis_hash: GENESIS_HASH,
        el_genesis_timestamp: 0,
        el_genesis_mix_hash: B256::ZERO,
        forks: ForkSchedule::prague_at_genesis(),
        sub_second_blocks: true,
        validators,
    };
    let path = dir.path().join("consensus-genesis.json");
    std::fs::write(&path, serde_json::to_string(&genesis).unwrap()).unwrap();
    let ports = (0..n).map(|_| free_port()).collect();
    Net { dir, genesis: path, ports, peers }
}

fn config(net: &Net, i: usize, engine: String) -> NodeConfig {
    let node = net.dir.path().join(format!("node{i}"));
    let boot = format!("/ip4/127.0.0.1/tcp/{}/p2p/{}", net.ports[0], net.peers[0]);
    NodeConfig {
        datadir: node.join("cl"),
        genesis: net.genesis.clone(),
        validator_key: Some(node.join(crate::keys::VALIDATOR_KEY_FILE)),
        p2p_key: node.join(crate::keys::P2P_KEY_FILE),
        engine,
        jwt_secret: node.join("jwt.hex"),
        p2p_addr: "127.0.0.1".parse().unwrap(),
        p2p_port: net.ports[i],
        bootnodes: if i == 0 { vec![] } else { vec![boot.parse().unwrap()] },
        fee_recipient: Address::ZERO,
        block_time: Duration::from_millis(50),
        http: None,
        sync: crate::sync::SyncConfig::default(),
        retained_rounds: crate::block_store::RETAINED_COMMITTED_ROUNDS,
        doppelganger_protection: true,
    }
}

fn start(net: &Net, i: usize, chain: Arc<Mutex<Chain>>) -> oneshot::Sender<()> {
    start_with(net, i, chain, |c| c)
}

fn start_with(
    net: &Net,
    i: usize,
    chain: Arc<Mutex<Chain>>,
    tweak: impl FnOnce(NodeConfig) -> NodeConfig,
) -> oneshot::Sender<()> {
    spawn_node(tweak(config(net, i, String::new())), chain)
}

/// A node without a validator key (its own data dir, key and port; node 0 as bootnode).
fn follower_config(net: &Net) -> NodeConfig {
    let dir = net.dir.path().join("follower");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("jwt.hex"), "11".repeat(32)).unwrap();
    let boot = format!("/ip4/127.0.0.1/tcp/{}/p2p/{}", net.ports[0], net.peers[0]);
    NodeConfig {
        datadir: dir.join("cl"),
        validator_key: None,
        p2p_key: dir.join(crate::keys::P2P_KEY_FILE),
        jwt_secret: dir.join("jwt.hex"),
        p2p_port: free_port(),
        bootnodes: vec![boot.parse().unwrap()],
        ..config(net, 0, String::new())
    }
}

fn spawn_node(net_genesis: NodeConfig, chain: Arc<Mutex<Chain>>) -> oneshot::Sender<()> {
    let (tx, rx) = oneshot::channel::<()>();
    tokio::spawn(async move {
        let url = mock_el(chain).await;
        let cfg = NodeConfig { engine: url, ..net_genesis };
        let stop = async move {
            let _ = rx.await;
            "test"
        };
        run(cfg, stop).await.unwrap();
    });
    tx
}

async fn wait_finalized(chains: &[&Arc<Mutex<Chain>>], height: u64, secs: u64) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
    loop {
        let heights: Vec<u64> =
            chains.iter().map(|c| c.lock().unwrap().finalized_number()).collect();
        if heights.iter().all(|h| *h >= height) {
            return;
        }
        assert!(tokio::time::Instant::now() < deadline, "finalized heights {heights:?} < {height}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Hash of the finalized chain's block at `height` (forks the EL also saw are skipped).
fn hash_at(chain: &Mutex<Chain>, height: u64) -> Option<B256> {
    let c = chain.lock().unwrap();
    let mut cur = c.finalized;
    loop {
        let &(number, parent) = c.blocks.get(&cur)?;
        if number == height {
            return Some(cur);
        }
        if number < height {
            return None;
        }
        cur = parent;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn four_validators_commit_survive_a_down_leader_and_a_restart_with_a_fresh_el() {
    if let Ok(filter) = std::env::var("RUST_LOG") {
        let _ = tracing_subscriber::fmt().with_env_filter(filter).with_test_writer().try_init();
    }
    let net = write_network(4);
    let chains: Vec<Arc<Mutex<Chain>>> =
        (0..4).map(|_| Arc::new(Mutex::new(Chain::new()))).collect();
    let mut stops: Vec<Option<oneshot::Sender<()>>> =
        (0..4).map(|i| Some(start(&net, i, chains[i].clone()))).collect();
    let all: Vec<&Arc<Mutex<Chain>>> = chains.iter().collect();
    wait_finalized(&all, 5, 60).await;
    for h in 1..=5 {
        let first = hash_at(&chains[0], h);
        assert!(first.is_some());
        for c in &chains[1..] {
            assert_eq!(hash_at(c, h), first, "height {h}");
        }
    }

    // Validator 3 goes down: the other three keep committing (its rounds time out).
    let _ = stops[3].take().unwrap().send(());
    let before = chains[0].lock().unwrap().finalized_number();
    wait_finalized(&all[..3], before + 6, 90).await;

    // It restarts from its data dir with an EL that lost everything: the committed blocks
    // are replayed into it, and it catches up with the others.
    let fresh = Arc::new(Mutex::new(Chain::new()));
    stops[3] = Some(start(&net, 3, fresh.clone()));
    let target = chains[0].lock().unwrap().finalized_number() + 3;
    wait_finalized(&[&chains[0], &fresh], target, 90).await;
    for h in 1..=target {
        assert_eq!(hash_at(&fresh, h), hash_at(&chains[0], h), "height {h}");
    }
    for s in stops.iter_mut().filter_map(Option::take) {
        let _ = s.send(());
    }
}

/// `GET /status` of a node's status endpoint.
async fn status_of(addr: std::net::SocketAddr) -> Option<Value> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(addr).await.ok()?;
    s.write_all(b"GET /status HTTP/1.1\r\nHost: node\r\nConnection: close\r\n\r\n").await.ok()?;
    let mut buf = Vec::new();
    s.read_to_end(&mut buf).await.ok()?;
    let text = String::from_utf8_lossy(&buf);
    serde_json::from_str(text.split("\r\n\r\n").nth(1)?).ok()
}

/// Nodes keep only a few rounds in memory, so a node wiped after the others committed many
/// more blocks cannot catch up through the core's block fetch: it must range-sync from the
/// peers' storage, then join the rounds. A follower (no validator key) started at the same
/// time follows the chain the same way, and after a restart goes on from its own data dir.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_wiped_validator_and_a_new_follower_far_behind_the_window_range_sync_to_the_head() {
    if let Ok(filter) = std::env::var("RUST_LOG") {
        let _ = tracing_subscriber::fmt().with_env_filter(filter).with_test_writer().try_init();
    }
    const WINDOW: u64 = 8;
    let small_window = |c: NodeConfig| NodeConfig {
        retained_rounds: WINDOW,
        sync: crate::sync::SyncConfig {
            batch: 16,
            status_interval: Duration::from_millis(500),
            ..crate::sync::SyncConfig::default()
        },
        ..c
    };
    let net = write_network(4);
    let chains: Vec<Arc<Mutex<Chain>>> =
        (0..4).map(|_| Arc::new(Mutex::new(Chain::new()))).collect();
    let mut stops: Vec<Option<oneshot::Sender<()>>> =
        (0..4).map(|i| Some(start_with(&net, i, chains[i].clone(), small_window))).collect();
    let all: Vec<&Arc<Mutex<Chain>>> = chains.iter().collect();
    let far = 6 * WINDOW;
    wait_finalized(&all, far, 120).await;

    // Node 3 loses both data dirs and comes back as a fresh node: everything below the peers'
    // in-memory window is only on their disks.
    let _ = stops[3].take().unwrap().send(());
    tokio::time::sleep(Duration::from_millis(500)).await;
    std::fs::remove_dir_all(net.dir.path().join("node3").join("cl")).unwrap();
    let fresh = Arc::new(Mutex::new(Chain::new()));
    let http: std::net::SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    stops[3] = Some(start_with(&net, 3, fresh.clone(), |c| NodeConfig {
        http: Some(http),
        ..small_window(c)
    }));
    let follower_el = Arc::new(Mutex::new(Chain::new()));
    let follower_http: std::net::SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let follower = NodeConfig { http: Some(follower_http), ..small_window(follower_config(&net)) };
    let mut follower_stop = Some(spawn_node(follower.clone(), follower_el.clone()));
    let target = chains[0].lock().unwrap().finalized_number() + 3;
    assert!(target > far);
    wait_finalized(&[&chains[0], &fresh, &follower_el], target, 120).await;
    for h in 1..=target {
        assert_eq!(hash_at(&fresh, h), hash_at(&chains[0], h), "height {h}");
        assert_eq!(hash_at(&follower_el, h), hash_at(&chains[0], h), "follower, height {h}");
    }
    let status = status_of(http).await.expect("status endpoint");
    let synced = status["synced"].as_u64().unwrap();
    // Block fetch reaches at most the peers' in-memory window (peers tell a connecting node
    // their highest QC at once, so it may fetch the window's blocks before range sync gets
    // there); everything below came from range sync.
    assert!(synced >= far - WINDOW, "only {synced} blocks came from range sync: {status}");
    let status = status_of(follower_http).await.expect("follower status endpoint");
    assert!(status["validator"].is_null(), "{status}");
    // It takes part in the rounds again: the network goes on committing with it, and the
    // follower keeps up.
    let more = chains[0].lock().unwrap().finalized_number() + 4;
    wait_finalized(&[&chains[0], &fresh, &follower_el], more, 60).await;

    // The follower restarts from its data dir with its EL intact.
    let _ = follower_stop.take().unwrap().send(());
    tokio::time::sleep(Duration::from_millis(500)).await;
    let before = follower_el.lock().unwrap().finalized_number();
    follower_stop = Some(spawn_node(follower, follower_el.clone()));
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    let resumed = loop {
        match status_of(follower_http).await {
            Some(s) => break s["committed_height"].as_u64().unwrap(),
            None => {
                assert!(tokio::time::Instant::now() < deadline, "follower did not restart");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    };
    assert!(resumed >= before, "restarted at {resumed}, had committed {before}");
    let more = chains[0].lock().unwrap().finalized_number() + 3;
    wait_finalized(&[&chains[0], &follower_el], more, 60).await;
    for s in stops.iter_mut().chain([&mut follower_stop]).filter_map(Option::take) {
        let _ = s.send(());
    }
}

/// Makes an EL lose every block above `keep` (as if killed before persisting them), then puts
/// on top a block of its own at `keep + 1` (a certified block that was never committed, which
/// it had persisted), and forgets the calls it received so far.
fn lose_blocks_above(chain: &Mutex<Chain>, keep: u64) {
    let hash = hash_at(chain, keep).expect("the EL has the block it keeps");
    let mut c = chain.lock().unwrap();
    c.blocks.retain(|_, (number, _)| *number <= keep);
    let orphan = B256::repeat_byte(0x0f);
    c.blocks.insert(orphan, (keep + 1, hash));
    c.head = orphan;
    c.finalized = orphan;
    c.calls.clear();
}

/// Waits for a status endpoint to answer.
async fn wait_status(addr: std::net::SocketAddr, secs: u64) -> Value {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
    loop {
        if let Some(s) = status_of(addr).await {
            return s;
        }
        assert!(tokio::time::Instant::now() < deadline, "no status from {addr}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Checkpointed restart: a validator restarted after many more commits than its in-memory
/// window reads only the window from its data dir (not the chain), and its EL, which lost its
/// last blocks and holds a never-committed block on top instead, gets exactly the committed
/// blocks it lacks replayed with `newPayload`, in order, then a fork choice on the committed
/// tip, before the node does anything else.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_restarted_validator_reads_its_window_and_replays_only_what_its_el_lost() {
    if let Ok(filter) = std::env::var("RUST_LOG") {
        let _ = tracing_subscriber::fmt().with_env_filter(filter).with_test_writer().try_init();
    }
    const WINDOW: u64 = 8;
    const LOST: u64 = 5;
    let small_window = |c: NodeConfig| NodeConfig { retained_rounds: WINDOW, ..c };
    let net = write_network(4);
    let chains: Vec<Arc<Mutex<Chain>>> =
        (0..4).map(|_| Arc::new(Mutex::new(Chain::new()))).collect();
    let http: std::net::SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let with_http = move |c: NodeConfig| NodeConfig { http: Some(http), ..small_window(c) };
    let mut stops: Vec<Option<oneshot::Sender<()>>> = (0..4)
        .map(|i| {
            Some(if i == 3 {
                start_with(&net, i, chains[i].clone(), with_http)
            } else {
                start_with(&net, i, chains[i].clone(), small_window)
            })
        })
        .collect();
    let all: Vec<&Arc<Mutex<Chain>>> = chains.iter().collect();
    let far = 5 * WINDOW;
    wait_finalized(&all, far, 120).await;

    // Node 3 stops; its EL loses its last LOST blocks.
    let _ = stops[3].take().unwrap().send(());
    tokio::time::sleep(Duration::from_millis(500)).await;
    let el_height = chains[3].lock().unwrap().finalized_number();
    let keep = el_height - LOST;
    lose_blocks_above(&chains[3], keep);

    stops[3] = Some(start_with(&net, 3, chains[3].clone(), with_http));
    let status = wait_status(http, 30).await;
    let recovered = status["recovered_blocks"].as_u64().unwrap();
    let committed = status["committed_height"].as_u64().unwrap();
    assert!(committed >= far, "{status}");
    assert!(
        recovered <= WINDOW + 8,
        "{recovered} blocks read from disk for a restart at height {committed}"
    );

    // The first calls after the restart: the lost committed blocks, in order, then the fork
    // choice on the committed tip; only then anything the node does in the rounds.
    let calls = chains[3].lock().unwrap().calls.clone();
    let fcu = calls
        .iter()
        .position(|c| matches!(c, ElCall::ForkChoice(_)))
        .unwrap_or_else(|| panic!("no fork choice after the restart: {calls:?}"));
    let replayed: Vec<u64> = calls[..fcu]
        .iter()
        .map(|c| match c {
            ElCall::NewPayload(n, _) => *n,
            ElCall::ForkChoice(_) => unreachable!(),
        })
        .collect();
    let ElCall::ForkChoice(tip) = calls[fcu] else { unreachable!() };
    let tip_height = chains[3].lock().unwrap().blocks.get(&tip).map(|b| b.0);
    let tip_height = tip_height.unwrap_or_else(|| panic!("fork choice on an unknown block"));
    assert_eq!(replayed, ((keep + 1)..=tip_height).collect::<Vec<_>>(), "calls: {calls:?}");
    // What it lost, plus at most what it had not been handed yet when it stopped.
    assert!(replayed.len() as u64 >= LOST && replayed.len() as u64 <= LOST + 3, "{replayed:?}");

    // It takes part in the rounds again with the same chain.
    let target = chains[0].lock().unwrap().finalized_number() + 4;
    wait_finalized(&all, target, 90).await;
    for h in 1..=target {
        assert_eq!(hash_at(&chains[3], h), hash_at(&chains[0], h), "height {h}");
    }
    for s in stops.iter_mut().filter_map(Option::take) {
        let _ = s.send(());
    }
}

/// A peer that holds validator 3's p2p key gossips proposals that decode but carry forged
/// signatures. The validators' cores refuse them, the verdict goes back to the network: the
/// gossip is rejected (never forwarded) and the peer scored down until every validator bans
/// it; none of its blocks reaches any EL and the three honest validators go on committing.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn forged_proposals_score_their_sender_down_until_banned_and_change_nothing() {
    use crate::network::{self, NetworkConfig};
    use crate::types::{Message, Proposal, Signature};
    if let Ok(filter) = std::env::var("RUST_LOG") {
        let _ = tracing_subscriber::fmt().with_env_filter(filter).with_test_writer().try_init();
    }
    const FORGED: B256 = B256::repeat_byte(0xEE);
    let net = write_network(4);
    let chains: Vec<Arc<Mutex<Chain>>> =
        (0..3).map(|_| Arc::new(Mutex::new(Chain::new()))).collect();
    let https: Vec<std::net::SocketAddr> =
        (0..3).map(|_| format!("127.0.0.1:{}", free_port()).parse().unwrap()).collect();
    let mut stops: Vec<oneshot::Sender<()>> = (0..3)
        .map(|i| {
            let http = https[i];
            start_with(&net, i, chains[i].clone(), move |c| NodeConfig { http: Some(http), ..c })
        })
        .collect();
    let all: Vec<&Arc<Mutex<Chain>>> = chains.iter().collect();
    wait_finalized(&all, 2, 60).await;

    let key = net.dir.path().join("node3").join(crate::keys::P2P_KEY_FILE);
    let boot = format!("/ip4/127.0.0.1/tcp/{}/p2p/{}", net.ports[0], net.peers[0]);
    let (attacker, mut inbox) = network::spawn(NetworkConfig {
        keypair: crate::keys::read_p2p_key(&key).unwrap(),
        listen_addr: "127.0.0.1".parse().unwrap(),
        port: 0,
        bootnodes: vec![boot.parse().unwrap()],
        validators: net.peers.iter().map(|p| p.parse().unwrap()).collect(),
        chain_id: 4242,
        sync_server: None,
    })
    .unwrap();

    let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
    let mut latest: Option<Proposal> = None;
    let mut max_round = 0;
    let mut sent = 0;
    loop {
        let banned: Vec<u64> = {
            let mut b = Vec::new();
            for addr in &https {
                b.push(status_of(*addr).await.map_or(0, |s| s["banned_peers"].as_u64().unwrap()));
            }
            b
        };
        if banned.iter().all(|b| *b >= 1) {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "not banned everywhere: {banned:?} after {sent} forged proposals"
        );
        while let Ok(ev) = inbox.try_recv() {
            let crate::network::NetEvent::Message(ev) = ev else { continue };
            match ev.message {
                Message::Proposal(p) => {
                    max_round = max_round.max(p.block.round);
                    latest = Some(p);
                }
                Message::Timeout(t) => max_round = max_round.max(t.round),
                _ => {}
            }
        }
        if let Some(p) = &latest {
            // Well-formed, for a round the others are about to enter, by that round's
            // leader — but the signature is forged.
            let mut block = p.block.clone();
            block.round = max_round + 2;
            block.proposer = (block.round % 4) as u16;
            block.payload.block_hash = FORGED;
            attacker.broadcast(Message::Proposal(Proposal {
                block,
                tc: None,
                signature: Signature([7; 64]),
            }));
            sent += 1;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(sent >= 5, "banned after only {sent} forged proposals");

    // The honest validators go on committing one chain; none of the forged blocks ever
    // reached an EL.
    let target = chains[0].lock().unwrap().finalized_number() + 3;
    wait_finalized(&all, target, 90).await;
    for h in 1..=target {
        let first = hash_at(&chains[0], h);
        assert_ne!(first, Some(FORGED));
        for c in &chains[1..] {
            assert_eq!(hash_at(c, h), first, "height {h}");
        }
    }
    for c in &chains {
        let c = c.lock().unwrap();
        assert!(
            !c.calls.iter().any(|call| matches!(call, ElCall::NewPayload(_, h) if *h == FORGED))
        );
    }
    // Banned: the validators drop it, and keep dropping it when it reconnects.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while attacker.peer_count() > 0 {
        assert!(tokio::time::Instant::now() < deadline, "still connected");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    for s in stops.drain(..) {
        let _ = s.send(());
    }
}

/// `--doppelganger-protection false` is the operator's way out of a halt by design (abstaining
/// validators leaving no quorum). A validator back with a wiped consensus data dir on a running
/// chain abstains (`/status` shows it); wiped again and restarted with the protection off, it
/// never abstains, and with another validator down the chain finalizes only because it signs.
/// (That the first abstention halts the chain is not asserted: it lasts through the round of
/// the first live certificate the node verifies, which may be a lagging peer's; see README.)
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_wiped_validator_signs_at_once_only_with_the_protection_off() {
    let net = write_network(4);
    let chains: Vec<Arc<Mutex<Chain>>> =
        (0..4).map(|_| Arc::new(Mutex::new(Chain::new()))).collect();
    let mut stops: Vec<Option<oneshot::Sender<()>>> =
        (0..4).map(|i| Some(start(&net, i, chains[i].clone()))).collect();
    wait_finalized(&chains.iter().collect::<Vec<_>>(), 5, 60).await;

    // Node 2 goes down; node 3 loses its consensus data dir (its EL keeps the chain).
    for i in [2, 3] {
        let _ = stops[i].take().unwrap().send(());
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let wipe = || std::fs::remove_dir_all(net.dir.path().join("node3").join("cl")).unwrap();
    wipe();
    let http: std::net::SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let with_http = |c: NodeConfig| NodeConfig { http: Some(http), ..c };
    stops[3] = Some(start_with(&net, 3, chains[3].clone(), with_http));
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(s) = status_of(http).await
            && s["abstaining_through_round"].as_u64().is_some()
        {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "node 3 never abstained");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    // Wiped again, restarted without the protection: it signs at once and never abstains.
    let _ = stops[3].take().unwrap().send(());
    tokio::time::sleep(Duration::from_millis(500)).await;
    wipe();
    stops[3] = Some(start_with(&net, 3, chains[3].clone(), |c| NodeConfig {
        doppelganger_protection: false,
        ..with_http(c)
    }));
    let target = chains[0].lock().unwrap().finalized_number() + 3;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while chains[0].lock().unwrap().finalized_number() < target {
        if let Some(s) = status_of(http).await {
            assert!(
                s["abstaining_through_round"].is_null(),
                "abstains with the protection off: {s}"
            );
        }
        assert!(tokio::time::Instant::now() < deadline, "the chain does not finalize");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let live = [&chains[0], &chains[1], &chains[3]];
    wait_finalized(&live, target, 60).await;
    for h in 1..=target {
        assert_eq!(hash_at(&chains[3], h), hash_at(&chains[0], h), "height {h}");
        assert_eq!(hash_at(&chains[1], h), hash_at(&chains[0], h), "height {h}");
    }
    for s in stops.iter_mut().filter_map(Option::take) {
        let _ = s.send(());
    }
}
