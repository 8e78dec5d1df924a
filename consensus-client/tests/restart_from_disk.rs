//! Four validators over an in-process network, each persisting to its own MDBX data dir through
//! the node loop's `perform`; one is stopped, reopened from disk and rejoins without signing
//! anything that contradicts what it signed before. Uses only the public API.

use sha2::{Digest, Sha256};
use std::collections::VecDeque;
use std::sync::Arc;
use tandem_cl::core::{Core, CoreConfig, CoreParams, Event, Evidence, Timer};
use tandem_cl::crypto::{Ed25519Signer, Ed25519Verifier, Signer, Verifier};
use tandem_cl::leader::RoundRobin;
use tandem_cl::node::{Effects, perform};
use tandem_cl::storage::{ChainMeta, MdbxStorage, Storage, StorageError};
use tandem_cl::types::{
    Block, BlockId, Message, Payload, PayloadAttributes, Round, Validator, ValidatorIndex,
    ValidatorSet,
};

const N: usize = 4;
const T0: u64 = 1_700_000_000_000;

fn seed(i: usize) -> [u8; 32] {
    Sha256::digest(format!("restart-test-{i}")).into()
}

fn genesis() -> Block {
    Block::genesis(Payload {
        block_hash: [0x22; 32].into(),
        parent_hash: Default::default(),
        number: 0,
        timestamp: T0 / 1000 - 1,
        prev_randao: Default::default(),
        parent_beacon_block_root: Default::default(),
        withdrawals: vec![],
        body: vec![],
    })
}

fn payload(a: &PayloadAttributes) -> Payload {
    let hash: [u8; 32] = Sha256::new()
        .chain_update(a.parent_hash)
        .chain_update(a.number.to_be_bytes())
        .finalize()
        .into();
    Payload {
        block_hash: hash.into(),
        parent_hash: a.parent_hash,
        number: a.number,
        timestamp: a.timestamp,
        prev_randao: a.prev_randao,
        parent_beacon_block_root: a.parent_beacon_block_root,
        withdrawals: vec![],
        body: vec![],
    }
}

/// Collects effects into the shared event queue.
struct Outbox<'a> {
    me: usize,
    queue: &'a mut VecDeque<(usize, Event)>,
    timers: &'a mut Vec<(u64, usize, Timer)>,
    commits: &'a mut Vec<BlockId>,
    sent_votes: &'a mut Vec<(ValidatorIndex, Round, BlockId)>,
}

impl Effects for Outbox<'_> {
    fn send(&mut self, to: ValidatorIndex, message: Message) {
        if let Message::Vote(v) = &message {
            self.sent_votes.push((v.voter, v.round, v.block_id));
        }
        self.queue.push_back((usize::from(to), Event::Message { from: self.me as u16, message }));
    }
    fn broadcast(&mut self, message: Message) {
        for j in (0..N).filter(|j| *j != self.me) {
            self.queue
                .push_back((j, Event::Message { from: self.me as u16, message: message.clone() }));
        }
    }
    fn set_timer(&mut self, timer: Timer, at_ms: u64) {
        self.timers.push((at_ms, self.me, timer));
    }
    fn build_payload(&mut self, round: Round, attributes: PayloadAttributes) {
        self.queue.push_back((
            self.me,
            Event::PayloadBuilt { round, payload: Some(payload(&attributes)) },
        ));
    }
    fn validate_payload(&mut self, block_id: BlockId, _: Payload) {
        self.queue.push_back((self.me, Event::PayloadValidated { block_id, valid: true }));
    }
    fn commit(&mut self, block_id: BlockId, _: Block) {
        self.commits.push(block_id);
    }
    fn fork_choice(&mut self, _: alloy_primitives::B256, _: alloy_primitives::B256) {}
    fn evidence(&mut self, _: Evidence) {}
}

struct Node {
    core: Option<Core>,
    storage: Option<MdbxStorage>,
    commits: Vec<BlockId>,
}

fn params(i: usize, set: &Arc<ValidatorSet>, verifier: &Arc<dyn Verifier>) -> CoreParams {
    CoreParams {
        config: CoreConfig { chain_id: 5, sub_second_blocks: true, ..CoreConfig::default() },
        me: i as ValidatorIndex,
        validators: set.clone(),
        signer: Box::new(Ed25519Signer::from_seed(&seed(i))),
        verifier: verifier.clone(),
        election: Box::new(RoundRobin::new(N)),
        genesis: genesis(),
    }
}

#[test]
fn a_validator_restarts_from_its_mdbx_dir() {
    let dirs: Vec<_> = (0..N).map(|_| tempfile::tempdir().unwrap()).collect();
    let pks: Vec<_> = (0..N).map(|i| Ed25519Signer::from_seed(&seed(i)).public_key()).collect();
    let set = Arc::new(
        ValidatorSet::new(
            pks.iter().map(|pk| Validator { public_key: *pk, voting_power: 1 }).collect(),
        )
        .unwrap(),
    );
    let verifier: Arc<dyn Verifier> = Arc::new(Ed25519Verifier::new(&pks).unwrap());
    let meta = ChainMeta { chain_id: 5, genesis_id: genesis().id() };
    let mut nodes: Vec<Node> = (0..N)
        .map(|i| Node {
            core: Some(Core::new(params(i, &set, &verifier), None).unwrap()),
            storage: Some(MdbxStorage::open(dirs[i].path(), meta).unwrap()),
            commits: Vec::new(),
        })
        .collect();
    let mut queue: VecDeque<(usize, Event)> = (0..N).map(|i| (i, Event::Start)).collect();
    let mut votes = Vec::new();
    let mut timers: Vec<(u64, usize, Timer)> = Vec::new();
    let mut now = T0;

    // Messages are instant; when nothing is in flight, virtual time jumps to the next timer.
    let mut run = |nodes: &mut Vec<Node>, queue: &mut VecDeque<(usize, Event)>, steps: usize| {
        for _ in 0..steps {
            if queue.is_empty() {
                let Some(k) = (0..timers.len()).min_by_key(|k| timers[*k].0) else { return };
                let (at, i, t) = timers.swap_remove(k);
                now = now.max(at);
                queue.push_back((i, Event::Timer(t)));
            }
            let Some((i, ev)) = queue.pop_front() else { return };
            let node = &mut nodes[i];
            let (Some(core), Some(storage)) = (node.core.as_mut(), node.storage.as_mut()) else {
                continue; // stopped: messages and timers for it are lost
            };
            let actions = core.handle(now, ev);
            let mut out = Outbox {
                me: i,
                queue,
                timers: &mut timers,
                commits: &mut node.commits,
                sent_votes: &mut votes,
            };
            perform(actions, storage, &mut out).unwrap();
        }
    };

    run(&mut nodes, &mut queue, 600);
    let before = nodes[3].commits.len();
    assert!(before >= 3, "node 3 committed {before}");

    // Stop node 3: drop its core and close its database.
    nodes[3].core = None;
    nodes[3].storage = None;
    run(&mut nodes, &mut queue, 300);

    // Another chain's node cannot open this dir, and the refusal leaves it intact.
    let foreign = ChainMeta { chain_id: 6, ..meta };
    assert!(matches!(
        MdbxStorage::open(dirs[3].path(), foreign),
        Err(StorageError::ForeignChain { .. })
    ));

    // Reopen from disk and rejoin.
    let storage = MdbxStorage::open(dirs[3].path(), meta).unwrap();
    let recovery = storage
        .load(tandem_cl::block_store::RETAINED_COMMITTED_ROUNDS)
        .unwrap()
        .expect("state on disk");
    let core = Core::new(params(3, &set, &verifier), Some(recovery)).unwrap();
    assert_eq!(core.committed_height() as usize, before);
    nodes[3].core = Some(core);
    nodes[3].storage = Some(storage);
    queue.push_back((3, Event::Start));
    run(&mut nodes, &mut queue, 3000);

    let after = nodes[3].commits.len();

    assert!(after > before + 3, "node 3 went from {before} to {after}");
    // Same chain as node 0, each height once.
    let common = after.min(nodes[0].commits.len());
    assert_eq!(nodes[3].commits[..common], nodes[0].commits[..common]);
    // Never two different votes for one round from any validator.
    let mut seen = std::collections::HashMap::new();
    for (voter, round, id) in votes {
        if let Some(prev) = seen.insert((voter, round), id) {
            assert_eq!(prev, id, "validator {voter} double-voted in round {round}");
        }
    }
}
