//! Range sync with the test signature scheme: valid ranges are accepted and committed through
//! the core; forged ranges (too few signatures, a forged signature, a broken parent link, a gap)
//! are refused with a clear error and persist nothing; the storage height index survives a
//! reopen; the protocol's limits hold on the wire; and a request over real libp2p is served from
//! storage.

use super::protocol::{MAX_SYNC_BLOCKS, SyncRequest, SyncResponse};
use super::server::SyncServer;
use super::verify::{Anchor, SyncError, VerifyContext, verify_range};
use crate::core::{Action, Core, CoreConfig, CoreParams, Event, PersistOp, Reject};
use crate::leader::RoundRobin;
use crate::node::{Effects, perform};
use crate::sim::{Keys, sim_genesis};
use crate::storage::{ChainMeta, CommittedChain, MdbxStorage, MemStorage, Storage};
use crate::types::codec::{Codec, Writer};
use crate::types::{
    Block, BlockId, CommittedBlock, Message, Payload, PayloadAttributes, QuorumCert, Round,
    Signature, ValidatorIndex, Vote,
};
use alloy_primitives::B256;
use std::sync::Arc;

const CHAIN: u64 = 7;

fn keys() -> Keys {
    Keys::new(4, false)
}

fn ctx(keys: &Keys) -> VerifyContext {
    let (verifier, validators) = keys.set();
    VerifyContext { chain_id: CHAIN, genesis_id: sim_genesis().id(), validators, verifier }
}

/// A QC of `block_id` at `round` signed by `signers` (ascending).
fn qc(keys: &Keys, block_id: BlockId, round: Round, signers: &[usize]) -> QuorumCert {
    let msg = Vote::signing_bytes(CHAIN, &block_id, round);
    let signatures =
        signers.iter().map(|i| (*i as ValidatorIndex, keys.signer(*i).sign(&msg))).collect();
    QuorumCert { block_id, round, signatures }
}

/// A certified chain on `parent` (with `parent_qc`) with the given rounds; `tag` makes payloads
/// (and so ids) differ between chains.
fn chain_on(
    keys: &Keys,
    parent: &Block,
    parent_qc: &QuorumCert,
    rounds: &[Round],
    tag: u8,
) -> Vec<CommittedBlock> {
    let mut out = Vec::new();
    let (mut parent, mut parent_qc) = (parent.clone(), parent_qc.clone());
    for &round in rounds {
        let number = parent.payload.number + 1;
        let mut hash = [tag; 32];
        hash[..8].copy_from_slice(&number.to_be_bytes());
        let block = Block {
            round,
            parent_id: parent.id(),
            qc: parent_qc.clone(),
            payload: Payload {
                block_hash: B256::from(hash),
                parent_hash: parent.payload.block_hash,
                number,
                timestamp: parent.payload.timestamp,
                prev_randao: B256::ZERO,
                parent_beacon_block_root: parent.id(),
                withdrawals: vec![],
                body: vec![tag],
            },
            proposer: (round % 4) as ValidatorIndex,
        };
        let block_qc = qc(keys, block.id(), round, &[0, 1, 2]);
        out.push(CommittedBlock { block: block.clone(), qc: block_qc.clone() });
        parent = block;
        parent_qc = block_qc;
    }
    out
}

/// A certified chain on genesis with rounds 1..=n (consecutive: every block but the last is
/// proven committed by its successor).
fn chain(keys: &Keys, n: u64, tag: u8) -> Vec<CommittedBlock> {
    let g = sim_genesis();
    let rounds: Vec<Round> = (1..=n).collect();
    chain_on(keys, &g, &QuorumCert::genesis(g.id()), &rounds, tag)
}

fn genesis_anchor() -> Anchor {
    Anchor::of(&sim_genesis())
}

/// The address `h` listens on, with its peer id.
async fn p2p_addr(h: &crate::network::NetworkHandle) -> libp2p::Multiaddr {
    loop {
        if let Some(a) = h.listen_addrs().into_iter().next() {
            return a.with(libp2p::multiaddr::Protocol::P2p(h.peer_id));
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
}

/// Runs the sync task on `net` as a node does (small batches, quick polls) and plays the node
/// loop: takes each verified range, "commits" it and publishes the new tip, until `want` blocks
/// are committed or `within` has passed. Returns the committed blocks (fewer on time-out).
async fn sync_and_commit(
    net: crate::network::NetworkHandle,
    keys: &Keys,
    validator_peers: Vec<libp2p::PeerId>,
    want: usize,
    within: std::time::Duration,
) -> Vec<CommittedBlock> {
    use super::{SyncConfig, SyncParams, spawn as spawn_sync};
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::time::Duration;
    use tokio::sync::{mpsc, watch};
    let (anchor_tx, anchor_rx) = watch::channel(genesis_anchor());
    let (ranges_tx, mut ranges_rx) = mpsc::channel(2);
    let delivered = Arc::new(AtomicU64::new(0));
    let _handle = spawn_sync(SyncParams {
        net,
        verify: ctx(keys),
        config: SyncConfig {
            trigger_gap: 4,
            batch: 8,
            status_interval: Duration::from_millis(200),
            retry_after: Duration::from_secs(1),
        },
        anchor: anchor_rx,
        el_delivered: delivered.clone(),
        ranges: ranges_tx,
        validator_peers,
    });
    let mut committed: Vec<CommittedBlock> = Vec::new();
    let deadline = tokio::time::Instant::now() + within;
    while committed.len() < want {
        let Ok(Some(range)) = tokio::time::timeout_at(deadline, ranges_rx.recv()).await else {
            break;
        };
        let Some((id, last)) = range.blocks.last().cloned() else { continue };
        committed.extend(range.blocks.into_iter().map(|(_, c)| c));
        delivered.store(last.block.height(), Ordering::Relaxed);
        anchor_tx.send_replace(Anchor::with_id(id, &last.block));
    }
    committed
}

fn new_core(keys: &Keys) -> Core {
    let (verifier, validators) = keys.set();
    Core::new(
        CoreParams {
            config: CoreConfig {
                chain_id: CHAIN,
                sub_second_blocks: true,
                ..CoreConfig::default()
            },
            me: 0,
            validators,
            signer: keys.signer(0),
            verifier,
            election: Box::new(RoundRobin::new(4)),
            genesis: sim_genesis(),
        },
        None,
    )
    .unwrap()
}

/// Records what reached the execution side.
#[derive(Default)]
struct Recorder {
    commits: Vec<u64>,
    fork_choices: Vec<(B256, B256)>,
}

impl Effects for Recorder {
    fn send(&mut self, _: ValidatorIndex, _: Message) {}
    fn broadcast(&mut self, _: Message) {}
    fn set_timer(&mut self, _: crate::core::Timer, _: u64) {}
    fn build_payload(&mut self, _: Round, _: PayloadAttributes) {}
    fn validate_payload(&mut self, _: BlockId, _: Payload) {}
    fn commit(&mut self, _: BlockId, block: Block) {
        self.commits.push(block.height());
    }
    fn fork_choice(&mut self, head: B256, finalized: B256) {
        self.fork_choices.push((head, finalized));
    }
    fn evidence(&mut self, _: crate::core::Evidence) {}
}

/// What the node does with a response: verify, then commit through the core.
fn sync_into(
    core: &mut Core,
    storage: &mut MemStorage,
    fx: &mut Recorder,
    items: Vec<CommittedBlock>,
) -> Result<usize, SyncError> {
    let block = core.block_store().get(&core.committed_id()).cloned().unwrap();
    let anchor = Anchor::of(&block);
    let range = verify_range(&anchor, items, MAX_SYNC_BLOCKS as usize, &ctx(&keys()))?;
    let n = range.blocks.len();
    let actions = core.handle(1_700_000_000_000, Event::Synced { blocks: range.blocks });
    perform(actions, storage, fx).unwrap();
    Ok(n)
}

#[test]
fn a_valid_range_is_committed_persisted_and_fed_to_the_el_in_order() {
    let keys = keys();
    let blocks = chain(&keys, 10, 1);
    let mut core = new_core(&keys);
    let mut storage = MemStorage::new();
    let mut fx = Recorder::default();
    // The last block is certified but nothing in the range proves it committed.
    assert_eq!(sync_into(&mut core, &mut storage, &mut fx, blocks.clone()).unwrap(), 9);
    assert_eq!(core.committed_height(), 9);
    assert_eq!(core.committed_id(), blocks[8].block.id());
    assert_eq!(core.stats().synced, 9);
    assert_eq!(fx.commits, (1..=9).collect::<Vec<_>>());
    let fin = blocks[8].block.payload.block_hash;
    assert_eq!(fx.fork_choices.last().map(|f| f.1), Some(fin));
    assert_eq!(storage.committed().len(), 9);
    assert_eq!(storage.committed_tip().unwrap(), 9);
    let served = storage.committed_range(1, 100, usize::MAX).unwrap();
    assert_eq!(served, blocks[..9].to_vec());
    // The core adopted the QC of the last committed block and moved past its round.
    assert_eq!(core.safety_data().high_qc, blocks[8].qc);
    assert!(core.round() > 9);
    // A second, overlapping range continues from the new tip.
    let rest = blocks[9..].to_vec();
    assert_eq!(sync_into(&mut core, &mut storage, &mut fx, rest).unwrap(), 0);
    assert_eq!(core.committed_height(), 9);
}

#[test]
fn non_consecutive_rounds_prove_only_up_to_the_last_two_chain() {
    let keys = keys();
    let g = sim_genesis();
    // 1,2 consecutive (1 committed); 4 after a timeout; 6, 7 consecutive (6 committed).
    let blocks = chain_on(&keys, &g, &QuorumCert::genesis(g.id()), &[1, 2, 4, 6, 7, 9], 3);
    let r = verify_range(&genesis_anchor(), blocks.clone(), 64, &ctx(&keys)).unwrap();
    assert_eq!(r.blocks.len(), 4, "heights 1..=4 (round 6 is committed by round 7)");
    assert_eq!(r.unproven, 2);
    // Without any consecutive pair nothing is proven, but nothing is wrong either.
    let sparse = chain_on(&keys, &g, &QuorumCert::genesis(g.id()), &[2, 4, 6], 4);
    let r = verify_range(&genesis_anchor(), sparse, 64, &ctx(&keys)).unwrap();
    assert!(r.blocks.is_empty());
    assert_eq!(r.unproven, 3);
}

/// Checks that a forged range is refused with `expected` and leaves the node untouched.
fn refused(items: Vec<CommittedBlock>, expected: impl Fn(&SyncError) -> bool, text: &str) {
    let keys = keys();
    let mut core = new_core(&keys);
    let mut storage = MemStorage::new();
    let mut fx = Recorder::default();
    let err = sync_into(&mut core, &mut storage, &mut fx, items).unwrap_err();
    assert!(expected(&err), "unexpected error: {err}");
    assert!(err.to_string().contains(text), "{err} does not say {text:?}");
    assert!(storage.committed().is_empty());
    assert!(
        storage.load(crate::block_store::RETAINED_COMMITTED_ROUNDS).unwrap().is_none(),
        "nothing persisted"
    );
    assert!(fx.commits.is_empty() && fx.fork_choices.is_empty());
    assert_eq!(core.committed_height(), 0);
}

#[test]
fn a_qc_with_too_few_signatures_is_refused() {
    let keys = keys();
    let mut blocks = chain(&keys, 6, 1);
    let b = &blocks[3].block;
    blocks[3].qc = qc(&keys, b.id(), b.round, &[0, 1]);
    refused(
        blocks,
        |e| {
            matches!(e, SyncError::InvalidQc { height: 4, source: Reject::InvalidQc { reason, .. } }
                if *reason == "not enough voting power")
        },
        "invalid QC for the block at height 4",
    );
}

#[test]
fn a_forged_signature_is_refused() {
    let keys = keys();
    let mut blocks = chain(&keys, 6, 1);
    blocks[2].qc.signatures[1].1 = Signature([0x42; 64]);
    refused(
        blocks,
        |e| {
            matches!(e, SyncError::InvalidQc { height: 3, source: Reject::InvalidQc { reason, .. } }
                if *reason == "signature")
        },
        "height 3",
    );
    // A QC duly signed, but for another block, is refused too.
    let mut blocks = chain(&keys, 6, 1);
    blocks[1].qc = blocks[2].qc.clone();
    refused(blocks, |e| matches!(e, SyncError::QcMismatch { height: 2 }), "another block");
}

#[test]
fn a_broken_parent_link_is_refused() {
    let keys = keys();
    let a = chain(&keys, 6, 1);
    let b = chain(&keys, 6, 2);
    // Every block is validly certified, but b's height-3 block extends b's height 2, not a's.
    let mixed = vec![a[0].clone(), a[1].clone(), b[2].clone(), b[3].clone(), b[4].clone()];
    refused(
        mixed,
        |e| {
            matches!(e, SyncError::BrokenLink { height: 3, expected, found }
            if *expected == a[1].block.id() && *found == b[1].block.id())
        },
        "does not link to its parent",
    );
}

#[test]
fn a_gap_is_refused() {
    let keys = keys();
    let mut blocks = chain(&keys, 6, 1);
    blocks.remove(2);
    refused(
        blocks,
        |e| matches!(e, SyncError::Gap { expected: 3, found: 4 }),
        "gap: expected height 3",
    );
    // A range that does not start right above the local tip is a gap as well.
    let blocks = chain(&keys, 6, 1);
    refused(
        blocks[1..].to_vec(),
        |e| matches!(e, SyncError::Gap { expected: 1, found: 2 }),
        "expected height 1",
    );
}

#[test]
fn more_blocks_than_asked_for_are_refused() {
    let keys = keys();
    let err = verify_range(&genesis_anchor(), chain(&keys, 5, 1), 4, &ctx(&keys)).unwrap_err();
    assert_eq!(err, SyncError::TooMany { count: 5, max: 4 });
}

#[test]
fn the_core_refuses_a_range_that_does_not_extend_its_tip() {
    let keys = keys();
    let mut core = new_core(&keys);
    let blocks = chain(&keys, 4, 1);
    let ids: Vec<(BlockId, CommittedBlock)> =
        blocks[1..].iter().map(|c| (c.block.id(), c.clone())).collect();
    let actions = core.handle(1_700_000_000_000, Event::Synced { blocks: ids });
    assert!(actions.iter().all(|a| !matches!(a, Action::Persist(_) | Action::Commit { .. })));
    assert_eq!(core.committed_height(), 0);
    assert_eq!(core.stats().rejected.get("synced_range"), Some(&1));
}

fn committed_ops(blocks: &[CommittedBlock]) -> Vec<PersistOp> {
    blocks
        .iter()
        .flat_map(|c| {
            [
                PersistOp::Block(c.block.clone()),
                PersistOp::Committed {
                    height: c.block.height(),
                    block_id: c.block.id(),
                    qc: c.qc.clone(),
                },
            ]
        })
        .collect()
}

#[test]
fn the_height_index_survives_reopen_and_is_served_within_limits() {
    let keys = keys();
    let blocks = chain(&keys, 12, 1);
    let dir = tempfile::tempdir().unwrap();
    let meta = ChainMeta { chain_id: CHAIN, genesis_id: sim_genesis().id() };
    {
        let mut s = MdbxStorage::open(dir.path(), meta).unwrap();
        s.apply_all(&committed_ops(&blocks[..5])).unwrap();
        for op in committed_ops(&blocks[5..]) {
            s.apply(&op).unwrap();
        }
    }
    let s = MdbxStorage::open(dir.path(), meta).unwrap();
    let reader = s.reader();
    assert_eq!(reader.committed_tip().unwrap(), 12);
    assert_eq!(reader.committed_range(1, 100, usize::MAX).unwrap(), blocks);
    assert_eq!(reader.committed_range(4, 3, usize::MAX).unwrap(), blocks[3..6].to_vec());
    assert!(reader.committed_range(13, 10, usize::MAX).unwrap().is_empty());
    // The byte budget stops the range, but never below one block.
    assert_eq!(reader.committed_range(1, 100, 1).unwrap().len(), 1);

    // The server answers from it, and what it sends verifies from genesis.
    let server = SyncServer::new(Arc::new(reader));
    assert_eq!(server.serve(&SyncRequest::Status), SyncResponse::Status { committed_height: 12 });
    let SyncResponse::Blocks(sent) =
        server.serve(&SyncRequest::Blocks { from_height: 1, to_height: 1_000_000 })
    else {
        panic!("blocks expected")
    };
    assert_eq!(sent.len(), 12);
    let r = verify_range(&genesis_anchor(), sent, MAX_SYNC_BLOCKS as usize, &ctx(&keys)).unwrap();
    assert_eq!((r.blocks.len(), r.unproven), (11, 1));
    assert_eq!(
        server.serve(&SyncRequest::Blocks { from_height: 5, to_height: 4 }),
        SyncResponse::Blocks(vec![])
    );
}

#[test]
fn the_wire_format_round_trips_and_enforces_the_block_limit() {
    let keys = keys();
    for req in [SyncRequest::Status, SyncRequest::Blocks { from_height: 3, to_height: 9 }] {
        assert_eq!(SyncRequest::decode(&req.encode()).unwrap(), req);
    }
    let blocks = chain(&keys, 3, 1);
    for resp in [
        SyncResponse::Status { committed_height: 42 },
        SyncResponse::Blocks(blocks.clone()),
        SyncResponse::Busy,
    ] {
        assert_eq!(SyncResponse::decode(&resp.encode()).unwrap(), resp);
    }
    // A response claiming more blocks than the limit is refused before reading them.
    let mut w = Writer::new();
    w.u8(1);
    w.len(MAX_SYNC_BLOCKS as usize + 1);
    assert!(SyncResponse::decode(&w.finish()).is_err());
    assert!(SyncRequest::decode(&[9]).is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_serves_committed_blocks_from_storage_over_libp2p() {
    use crate::network::{NetworkConfig, spawn};
    use libp2p::identity::Keypair;
    let keys = keys();
    let blocks = chain(&keys, 20, 1);
    let mut storage = MemStorage::new();
    storage.apply_all(&committed_ops(&blocks)).unwrap();
    let (k0, k1) = (Keypair::generate_ed25519(), Keypair::generate_ed25519());
    let validators = vec![k0.public().to_peer_id()];
    let config = |key: Keypair, server, bootnodes| NetworkConfig {
        keypair: key,
        listen_addr: "127.0.0.1".parse().unwrap(),
        port: 0,
        bootnodes,
        validators: validators.clone(),
        chain_id: CHAIN,
        sync_server: server,
    };
    let (h0, _rx0) = spawn(config(k0, Some(SyncServer::new(Arc::new(storage))), vec![])).unwrap();
    let addr = loop {
        if let Some(a) = h0.listen_addrs().into_iter().next() {
            break a.with(libp2p::multiaddr::Protocol::P2p(h0.peer_id));
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    };
    // The client is not a validator: followers may sync too.
    let (h1, _rx1) = spawn(config(k1, None, vec![addr])).unwrap();
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(20);
    while !h1.connected_peers().contains(&h0.peer_id) {
        assert!(tokio::time::Instant::now() < deadline, "not connected");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let status = h1.sync(h0.peer_id, SyncRequest::Status).await.unwrap();
    assert_eq!(status, SyncResponse::Status { committed_height: 20 });
    let answer =
        h1.sync(h0.peer_id, SyncRequest::Blocks { from_height: 1, to_height: 8 }).await.unwrap();
    let SyncResponse::Blocks(sent) = answer else { panic!("blocks expected") };
    assert_eq!(sent, blocks[..8].to_vec());
    // The other way round: the follower has no server and answers busy.
    assert_eq!(h0.sync(h1.peer_id, SyncRequest::Status).await.unwrap(), SyncResponse::Busy);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sync_task_refuses_a_forging_peer_and_syncs_from_an_honest_one() {
    use crate::network::{NetworkConfig, spawn};
    use libp2p::identity::Keypair;
    use std::time::Duration;

    if let Ok(filter) = std::env::var("RUST_LOG") {
        let _ = tracing_subscriber::fmt().with_env_filter(filter).with_test_writer().try_init();
    }
    let keys = keys();
    let honest = chain(&keys, 40, 1);
    // The forger claims a longer chain, so it is asked first; its first block's QC lacks quorum.
    let mut forged = chain(&keys, 60, 2);
    let b = &forged[0].block;
    forged[0].qc = qc(&keys, b.id(), b.round, &[1]);
    let server = |blocks: &[CommittedBlock]| {
        let mut s = MemStorage::new();
        s.apply_all(&committed_ops(blocks)).unwrap();
        SyncServer::new(Arc::new(s))
    };
    let kps: Vec<Keypair> = (0..3).map(|_| Keypair::generate_ed25519()).collect();
    let config = |key: &Keypair, server, bootnodes| NetworkConfig {
        keypair: key.clone(),
        listen_addr: "127.0.0.1".parse().unwrap(),
        port: 0,
        bootnodes,
        validators: vec![kps[0].public().to_peer_id(), kps[1].public().to_peer_id()],
        chain_id: CHAIN,
        sync_server: server,
    };
    let (good, _g) = spawn(config(&kps[0], Some(server(&honest)), vec![])).unwrap();
    let (bad, _b) = spawn(config(&kps[1], Some(server(&forged)), vec![])).unwrap();
    let boot = vec![p2p_addr(&good).await, p2p_addr(&bad).await];
    let (client, _c) = spawn(config(&kps[2], None, boot)).unwrap();

    // Play the node loop: take each verified range, "commit" it, publish the new tip.
    let committed = sync_and_commit(
        client,
        &keys,
        vec![kps[0].public().to_peer_id(), kps[1].public().to_peer_id()],
        39,
        Duration::from_secs(60),
    )
    .await;
    assert_eq!(committed, honest[..39].to_vec(), "only the honest chain was handed over");
}

/// A peer that claims a huge committed height and answers a blocks request with nothing, just
/// before the request would time out (so its serve slot is free again for the next request).
struct Liar {
    stop: Arc<std::sync::atomic::AtomicBool>,
}

impl CommittedChain for Liar {
    fn committed_tip(&self) -> Result<crate::types::Height, crate::storage::StorageError> {
        Ok(1_000_000)
    }
    fn committed_range(
        &self,
        _: crate::types::Height,
        _: usize,
        _: usize,
    ) -> Result<Vec<CommittedBlock>, crate::storage::StorageError> {
        let until = std::time::Instant::now() + std::time::Duration::from_millis(19_500);
        while !self.stop.load(std::sync::atomic::Ordering::Relaxed)
            && std::time::Instant::now() < until
        {
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        Ok(Vec::new())
    }
}

/// Two peers claim a height far above the honest chain and answer nothing, as late as they
/// can: each costs the client one slow answer, then it is avoided (strikes, doubling back-off,
/// peers with fewer strikes first) and the honest peer serves the whole range.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_syncs_while_two_peers_claim_a_huge_height_and_answer_nothing() {
    use crate::network::{NetworkConfig, spawn};
    use libp2p::identity::Keypair;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::time::Duration;

    let keys = keys();
    let honest = chain(&keys, 40, 1);
    let stop = Arc::new(AtomicBool::new(false));
    let kps: Vec<Keypair> = (0..4).map(|_| Keypair::generate_ed25519()).collect();
    let config = |key: &Keypair, server, bootnodes| NetworkConfig {
        keypair: key.clone(),
        listen_addr: "127.0.0.1".parse().unwrap(),
        port: 0,
        bootnodes,
        validators: kps[..3].iter().map(|k| k.public().to_peer_id()).collect(),
        chain_id: CHAIN,
        sync_server: server,
    };
    let mut storage = MemStorage::new();
    storage.apply_all(&committed_ops(&honest)).unwrap();
    let (good, _g) =
        spawn(config(&kps[0], Some(SyncServer::new(Arc::new(storage))), vec![])).unwrap();
    let liar = || Some(SyncServer::new(Arc::new(Liar { stop: stop.clone() })));
    let (bad1, _b1) = spawn(config(&kps[1], liar(), vec![])).unwrap();
    let (bad2, _b2) = spawn(config(&kps[2], liar(), vec![])).unwrap();
    let boot = vec![p2p_addr(&good).await, p2p_addr(&bad1).await, p2p_addr(&bad2).await];
    let (client, _c) = spawn(config(&kps[3], None, boot)).unwrap();

    // Three validators of four, two of them liars: their claims back each other (more than
    // a third of the power), so only the strikes keep them from stalling the client.
    // Two slow answers (19.5 s each) and the honest range, with room to spare; without the
    // strikes the liars, always the highest claims, are asked in turn forever.
    let committed = sync_and_commit(
        client,
        &keys,
        kps[..3].iter().map(|k| k.public().to_peer_id()).collect(),
        39,
        Duration::from_secs(75),
    )
    .await;
    stop.store(true, Ordering::Relaxed);
    assert_eq!(committed.len(), 39, "sync stalled at {} blocks", committed.len());
    assert_eq!(committed, honest[..39].to_vec());
}

/// A follower syncs while two peers that are not validators claim a huge height and never
/// answer in time, and two validators claim the real one: the validators' claims (more than a
/// third of the power) back their height, the unbacked claims neither set the target nor go
/// first, and the follower catches up without a single slow answer. Asking the highest claim
/// first (the old policy) costs two 19.5 s answers before the first block.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_follower_syncs_from_validator_backed_heights_past_two_unbacked_liars() {
    use crate::network::{NetworkConfig, spawn};
    use libp2p::identity::Keypair;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::time::Duration;

    let keys = keys();
    let honest = chain(&keys, 40, 1);
    let stop = Arc::new(AtomicBool::new(false));
    // Validators 0 and 1 serve the chain; 2 and 3 are elsewhere; two more peers lie.
    let kps: Vec<Keypair> = (0..7).map(|_| Keypair::generate_ed25519()).collect();
    let validators: Vec<libp2p::PeerId> =
        kps[..4].iter().map(|k| k.public().to_peer_id()).collect();
    let config = |key: &Keypair, server, bootnodes| NetworkConfig {
        keypair: key.clone(),
        listen_addr: "127.0.0.1".parse().unwrap(),
        port: 0,
        bootnodes,
        validators: validators.clone(),
        chain_id: CHAIN,
        sync_server: server,
    };
    let server = || {
        let mut storage = MemStorage::new();
        storage.apply_all(&committed_ops(&honest)).unwrap();
        Some(SyncServer::new(Arc::new(storage)))
    };
    let liar = || Some(SyncServer::new(Arc::new(Liar { stop: stop.clone() })));
    let (good0, _g0) = spawn(config(&kps[0], server(), vec![])).unwrap();
    let (good1, _g1) = spawn(config(&kps[1], server(), vec![])).unwrap();
    let (bad1, _b1) = spawn(config(&kps[4], liar(), vec![])).unwrap();
    let (bad2, _b2) = spawn(config(&kps[5], liar(), vec![])).unwrap();
    let boot = vec![
        p2p_addr(&bad1).await,
        p2p_addr(&bad2).await,
        p2p_addr(&good0).await,
        p2p_addr(&good1).await,
    ];
    let (client, _c) = spawn(config(&kps[6], None, boot)).unwrap();
    // Wait until the client hears from all four, so the first poll sees every claim.
    let all = [good0.peer_id, good1.peer_id, bad1.peer_id, bad2.peer_id];
    let connected = tokio::time::Instant::now() + Duration::from_secs(20);
    while !all.iter().all(|p| client.connected_peers().contains(p)) {
        assert!(tokio::time::Instant::now() < connected, "not connected");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    // Well under one slow answer (19.5 s).
    let committed =
        sync_and_commit(client, &keys, validators.clone(), 39, Duration::from_secs(15)).await;
    stop.store(true, Ordering::Relaxed);
    let n = committed.len();
    assert_eq!(n, 39, "sync stalled at {n} blocks: an unbacked claim was asked");
    assert_eq!(committed, honest[..39].to_vec());
}
