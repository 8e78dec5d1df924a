//! Deterministic simulation of a whole validator set (test-only).
//!
//! One seed decides everything: the number of validators (4, 7 or 10) and their voting power
//! (equal, or 1..=5 each with byzantine power kept below a third), the signature scheme
//! (mostly the cheap test scheme, every tenth seed real ed25519), the storage (in memory, every
//! 25th seed MDBX in a temporary directory), the network before GST (delay, loss, duplication,
//! reordering, a partition that heals), per-validator clock skew of up to ±1.5 s, crashes and restarts from each node's own storage
//! (some of them torn: the node dies part-way through performing one event's actions), and up
//! to f byzantine validators: an equivocating leader, a twin that runs the same key twice, a
//! sender of malformed, mutated and replayed messages, a leader whose payload reuses its
//! parent's block hash over another body, a validator that withholds its votes, one that sends
//! its proposals and timeouts to only some peers, and a block-fetch and sync server that alters
//! the blocks it serves (and claims a far higher committed height than it has). Each node's executor behaves like the real one
//! (`node::executor`): it remembers validated payloads in the same [`ValidatedPayloads`] cache,
//! and its mock EL knows each block hash at one height, so building on a hash the EL knows at
//! another height fails as it would with a real EL. The network treats messages as libp2p
//! treats the real node's ([`network`]): broadcasts are gossip, de-duplicated by content for
//! 60 s at the publisher and at each receiver, and a re-send refused as a duplicate goes
//! directly to every validator as the real node's fallback does; messages above the size limit
//! are not delivered. Nodes range-sync ([`range_sync`]) from their peers' committed index, with
//! the real sync task's choice of peers, when they fall more than 16 blocks behind, and must
//! when they were away longer than the peers' retained window. Time is virtual; events are processed in order of (time, sequence
//! number), so a seed replays exactly.
//!
//! Checked after every step (every handled event): no two honest nodes commit different blocks
//! at one height; every honest node's committed chain is contiguous, linked parent to child, and
//! delivered exactly once; no honest validator signs two different votes, timeouts or proposals
//! for a round, or a vote after a timeout in the same round; the fork-choice finalized hash is
//! the last delivered block. Liveness: after GST (network synchronous, every honest node up),
//! every honest node must commit at least [`NEW_COMMITS_AFTER_GST`] blocks above the highest
//! height committed by anyone at GST, within [`LIVENESS_BOUND_MS`] of virtual time.

mod network;
mod range_sync;
mod scenario;

#[cfg(test)]
mod tests;

use crate::core::{Action, Core, CoreConfig, CoreParams, Event, PersistOp, Timer};
use crate::crypto::test_scheme::{HashSigner, HashVerifier};
use crate::crypto::{Ed25519Signer, Ed25519Verifier, Signer, Verifier};
use crate::leader::RoundRobin;
use crate::node::executor::ValidatedPayloads;
use crate::storage::{ChainMeta, MdbxStorage, MemStorage, Storage};
use crate::types::codec::Codec;
use crate::types::{
    Block, BlockId, Height, Message, Payload, PayloadAttributes, Round, Validator, ValidatorIndex,
    ValidatorSet,
};
use alloy_primitives::B256;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
pub use scenario::{Byzantine, Scenario};
use sha2::{Digest, Sha256};
use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::sync::Arc;

/// Virtual start time (ms since the epoch).
const T0_MS: u64 = 1_700_000_000_000;
/// Blocks every honest node must commit after GST.
pub const NEW_COMMITS_AFTER_GST: u64 = 5;
/// Virtual time after GST within which they must be committed.
pub const LIVENESS_BOUND_MS: u64 = 90_000;
/// Hard cap on processed events (a runaway simulation is a failure).
const MAX_EVENTS: u64 = 3_000_000;

/// The block hash the mock executor computes for a payload.
pub fn mock_block_hash(p: &Payload) -> B256 {
    let mut h = Sha256::new();
    h.update(b"mock-el");
    h.update(p.parent_hash);
    h.update(p.number.to_be_bytes());
    h.update(p.timestamp.to_be_bytes());
    h.update(p.prev_randao);
    h.update(p.parent_beacon_block_root);
    h.update(&p.body);
    B256::from_slice(&h.finalize())
}

/// The mock executor's payload for `attributes` with `body`.
pub fn mock_payload(attributes: &PayloadAttributes, body: Vec<u8>) -> Payload {
    let mut p = Payload {
        block_hash: B256::ZERO,
        parent_hash: attributes.parent_hash,
        number: attributes.number,
        timestamp: attributes.timestamp,
        prev_randao: attributes.prev_randao,
        parent_beacon_block_root: attributes.parent_beacon_block_root,
        withdrawals: vec![],
        body,
    };
    p.block_hash = mock_block_hash(&p);
    p
}

/// The genesis block of simulated chains.
pub fn sim_genesis() -> Block {
    Block::genesis(Payload {
        block_hash: B256::repeat_byte(0x11),
        parent_hash: B256::ZERO,
        number: 0,
        timestamp: T0_MS / 1000 - 1,
        prev_randao: B256::ZERO,
        parent_beacon_block_root: B256::ZERO,
        withdrawals: vec![],
        body: vec![],
    })
}

/// Keys of a simulated validator set.
pub enum Keys {
    /// Test scheme secrets.
    Hash(Vec<[u8; 32]>),
    /// Ed25519 seeds.
    Ed25519(Vec<[u8; 32]>),
}

impl Keys {
    /// Deterministic keys for `n` validators.
    pub fn new(n: usize, ed25519: bool) -> Self {
        let seeds: Vec<[u8; 32]> = (0..n)
            .map(|i| {
                Sha256::new()
                    .chain_update(b"sim-key")
                    .chain_update((i as u64).to_be_bytes())
                    .finalize()
                    .into()
            })
            .collect();
        if ed25519 { Self::Ed25519(seeds) } else { Self::Hash(seeds) }
    }
    /// The signer of validator `i`.
    pub fn signer(&self, i: usize) -> Box<dyn Signer> {
        match self {
            Self::Hash(s) => Box::new(HashSigner { secret: s[i] }),
            Self::Ed25519(s) => Box::new(Ed25519Signer::from_seed(&s[i])),
        }
    }
    /// The verifier and validator set with unit voting power.
    pub fn set(&self) -> (Arc<dyn Verifier>, Arc<ValidatorSet>) {
        let n = match self {
            Self::Hash(s) | Self::Ed25519(s) => s.len(),
        };
        self.set_with_powers(&vec![1; n])
    }

    /// The verifier and validator set with the given voting powers.
    pub fn set_with_powers(&self, powers: &[u64]) -> (Arc<dyn Verifier>, Arc<ValidatorSet>) {
        let pks: Vec<_> = (0..powers.len()).map(|i| self.signer(i).public_key()).collect();
        let set = ValidatorSet::new(
            pks.iter()
                .zip(powers)
                .map(|(pk, p)| Validator { public_key: *pk, voting_power: *p })
                .collect(),
        )
        .expect("valid set");
        let verifier: Arc<dyn Verifier> = match self {
            Self::Hash(s) => Arc::new(HashVerifier { secrets: s.clone() }),
            Self::Ed25519(_) => Arc::new(Ed25519Verifier::new(&pks).expect("valid keys")),
        };
        (verifier, Arc::new(set))
    }
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum SimEvent {
    Deliver {
        to: usize,
        from: ValidatorIndex,
        bytes: Vec<u8>,
        /// Arrived by gossip (de-duplicated by the receiver), not as a direct message.
        gossip: bool,
    },
    Timer {
        inst: usize,
        incarnation: u64,
        timer: TimerKey,
    },
    Executor {
        inst: usize,
        incarnation: u64,
        reply: ExecReply,
    },
    Crash {
        inst: usize,
        torn_after: Option<usize>,
    },
    /// A validator's connection reaches instance `to`.
    Connected {
        to: usize,
        peer: ValidatorIndex,
    },
    /// Remember how much of its storage journal a node has written (for a stale restore).
    Snapshot {
        inst: usize,
    },
    Restart {
        inst: usize,
        stale: bool,
    },
    /// The range-sync task's periodic poll.
    SyncTick {
        inst: usize,
        incarnation: u64,
    },
    /// The answer to a range-sync request (`None`: it timed out).
    SyncAnswer {
        inst: usize,
        incarnation: u64,
        peer: ValidatorIndex,
        bytes: Option<Vec<u8>>,
    },
    Gst,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum TimerKey {
    Round(Round),
    Propose(Round),
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum ExecReply {
    Built { round: Round, payload: Option<Vec<u8>> },
    Validated { block_id: BlockId, valid: bool },
}

struct Instance {
    index: ValidatorIndex,
    core: Option<Core>,
    storage: Box<dyn Storage>,
    incarnation: u64,
    torn_after: Option<usize>,
    /// Delivered (committed) blocks, like an EL's finalized chain: survives crashes.
    app: Vec<(BlockId, Block)>,
    /// The executor's memory of validated payloads (lost when the node restarts).
    validated: ValidatedPayloads,
    /// Claimed block hashes the executor validated, for the mutation check of an executor
    /// that trusts `block_hash` (see [`Sim::trust_block_hashes`]).
    validated_hashes: std::collections::HashSet<B256>,
    /// The mock EL's blocks: hash → number (survives crashes, like the EL's database).
    el_blocks: HashMap<B256, Height>,
    /// Every write applied to `storage`, in order (a stale restore replays a prefix).
    journal: Vec<PersistOp>,
    /// Journal length at the last snapshot.
    snapshot: Option<usize>,
    /// Restarted from a stale copy: its core may commit again what the app already has.
    stale_restored: bool,
    /// Its gossipsub duplicate cache (lost when the node restarts).
    gossip: network::DuplicateCache,
    /// The committed index it serves range sync from (a copy of what its storage holds).
    served: MemStorage,
    /// Its range-sync task's state.
    sync: range_sync::RangeSync,
    dir: Option<tempfile::TempDir>,
}

/// What the simulated network refused or dropped, as the real node's network would.
#[derive(Debug, Default, Clone, Copy)]
pub struct NetStats {
    /// Broadcasts refused at the publisher as duplicates (a byte-identical re-send within the
    /// gossip dedup window).
    pub publish_duplicates: u64,
    /// Of those, re-sent directly to every validator (the real node's fallback).
    pub direct_fallbacks: u64,
    /// Broadcasts refused as larger than the gossip size limit.
    pub publish_too_large: u64,
    /// Direct messages dropped as larger than the frame limit.
    pub direct_too_large: u64,
    /// Gossip copies a receiver dropped as already seen.
    pub gossip_deduped: u64,
}

/// Outcome of one seed.
#[derive(Debug)]
pub struct SimReport {
    /// The scenario.
    pub scenario: Scenario,
    /// Virtual time simulated.
    pub virtual_ms: u64,
    /// Events processed.
    pub events: u64,
    /// Lowest committed height among honest nodes at the end.
    pub min_height: Height,
    /// Equivocation evidence reported by honest nodes, by kind (proposal, vote, timeout).
    pub evidence: [u64; 3],
    /// Messages dropped because they did not decode.
    pub undecodable: u64,
    /// What the network refused or dropped.
    pub net: NetStats,
    /// Virtual time from GST until every honest node committed a block above the GST height.
    pub recovery_ms: Option<u64>,
    /// Blocks committed through range sync, all nodes.
    pub synced_blocks: u64,
    /// The chain halted because too many honest validators abstain (doppelganger protection).
    pub halted_by_design: bool,
}

/// The simulator state for one seed.
pub struct Sim {
    sc: Scenario,
    rng: StdRng,
    now: u64,
    seq: u64,
    queue: BinaryHeap<Reverse<(u64, u64, SimEvent)>>,
    instances: Vec<Instance>,
    routes: Vec<Vec<usize>>,
    keys: Keys,
    verifier: Arc<dyn Verifier>,
    validators: Arc<ValidatorSet>,
    genesis: Block,
    gst_reached: bool,
    gst_height: Height,
    committed: HashMap<Height, BlockId>,
    signed_votes: HashMap<(ValidatorIndex, Round), BlockId>,
    signed_timeouts: HashMap<(ValidatorIndex, Round), Round>,
    signed_proposals: HashMap<(ValidatorIndex, Round), BlockId>,
    sent_log: Vec<(ValidatorIndex, Vec<u8>)>,
    evidence: [u64; 3],
    undecodable: u64,
    events: u64,
    /// Fault injection for testing the checkers: every safety-data write after a node's first
    /// is silently dropped (a restarted node comes back with stale safety data).
    drop_safety_writes: bool,
    /// Fault injection for testing the checkers: executors remember validated payloads by
    /// their claimed `block_hash` (the old executor's bug) instead of the whole payload.
    trust_block_hashes: bool,
    /// Whether cores run doppelganger protection (off only to show what it prevents).
    doppelganger_protection: bool,
    /// Largest message the network carries (gossip `max_transmit_size`, direct frame limit).
    max_message_bytes: usize,
    /// Whether a broadcast refused as a duplicate goes directly to every validator, as the
    /// real node does (off only to show what the fallback prevents).
    direct_fallback: bool,
    /// Size of the payload bodies the mock EL builds (8 random bytes, zero-padded).
    body_bytes: usize,
    net: NetStats,
    recovery_ms: Option<u64>,
    /// Whether nodes run range sync (off only to show what it is needed for).
    range_sync: bool,
    /// Rounds of committed history cores keep in memory for peers' block fetches.
    retained_rounds: Round,
    synced_blocks: u64,
    halted_by_design: bool,
}

impl Sim {
    /// Sets up the simulation of `sc`.
    pub fn new(sc: Scenario) -> Self {
        let keys = Keys::new(sc.n, sc.ed25519);
        let (verifier, validators) = keys.set_with_powers(&sc.powers);
        let genesis = sim_genesis();
        let mut sim = Self {
            rng: StdRng::seed_from_u64(sc.seed ^ 0x5eed_5eed),
            now: T0_MS,
            seq: 0,
            queue: BinaryHeap::new(),
            instances: Vec::new(),
            routes: vec![Vec::new(); sc.n],
            keys,
            verifier,
            validators,
            genesis,
            gst_reached: false,
            gst_height: 0,
            committed: HashMap::new(),
            signed_votes: HashMap::new(),
            signed_timeouts: HashMap::new(),
            signed_proposals: HashMap::new(),
            sent_log: Vec::new(),
            evidence: [0; 3],
            undecodable: 0,
            events: 0,
            drop_safety_writes: false,
            trust_block_hashes: false,
            doppelganger_protection: true,
            max_message_bytes: crate::network::MAX_MESSAGE_SIZE,
            direct_fallback: true,
            body_bytes: 8,
            net: NetStats::default(),
            recovery_ms: None,
            range_sync: true,
            retained_rounds: sc.retained_rounds,
            synced_blocks: 0,
            halted_by_design: false,
            sc,
        };
        let mut owners: Vec<ValidatorIndex> = (0..sim.sc.n as ValidatorIndex).collect();
        for (idx, b) in &sim.sc.byzantine {
            if *b == Byzantine::Twin {
                owners.push(*idx);
            }
        }
        let meta = ChainMeta { chain_id: 7, genesis_id: sim.genesis.id() };
        for index in owners {
            let (storage, dir): (Box<dyn Storage>, _) = if sim.sc.mdbx {
                let dir = tempfile::tempdir().expect("tempdir");
                let s = MdbxStorage::open(dir.path(), meta).expect("open mdbx");
                (Box::new(s), Some(dir))
            } else {
                (Box::new(MemStorage::new()), None)
            };
            sim.routes[usize::from(index)].push(sim.instances.len());
            sim.instances.push(Instance {
                index,
                core: None,
                storage,
                incarnation: 0,
                torn_after: None,
                app: Vec::new(),
                validated: ValidatedPayloads::default(),
                validated_hashes: Default::default(),
                el_blocks: HashMap::from([(
                    sim.genesis.payload.block_hash,
                    sim.genesis.payload.number,
                )]),
                journal: Vec::new(),
                snapshot: None,
                stale_restored: false,
                gossip: network::DuplicateCache::default(),
                served: MemStorage::new(),
                sync: range_sync::RangeSync::new(0),
                dir,
            });
        }
        sim
    }

    fn schedule(&mut self, at: u64, ev: SimEvent) {
        self.seq += 1;
        self.queue.push(Reverse((at.max(self.now), self.seq, ev)));
    }

    fn is_honest(&self, index: ValidatorIndex) -> bool {
        !self.sc.byzantine.iter().any(|(i, _)| *i == index)
    }

    fn config(&self, inst: usize) -> CoreConfig {
        let node = &self.instances[inst];
        // What a real node reads from its EL at start: blocks beyond genesis.
        let chain_has_run = !node.app.is_empty() || node.el_blocks.len() > 1;
        CoreConfig {
            chain_id: 7,
            sub_second_blocks: self.sc.sub_second,
            round_timeout_base_ms: self.sc.base_timeout_ms,
            round_timeout_max_ms: 10_000,
            max_future_secs: 4,
            doppelganger_protection: self.doppelganger_protection,
            chain_has_run,
            retained_committed_rounds: self.retained_rounds,
            ..CoreConfig::default()
        }
    }

    /// Replaces the node's storage with the copy it had at its last snapshot (empty without
    /// one: a wiped data dir).
    fn restore_stale(&mut self, inst: usize) -> Result<(), String> {
        let node = &mut self.instances[inst];
        let len = node.snapshot.unwrap_or(0).min(node.journal.len());
        node.journal.truncate(len);
        let mut copy = MemStorage::new();
        for op in &node.journal {
            copy.apply(op).map_err(|e| format!("node {} stale copy: {e}", node.index))?;
        }
        node.served = copy.clone();
        node.storage = Box::new(copy);
        node.dir = None;
        node.stale_restored = true;
        Ok(())
    }

    fn boot(&mut self, inst: usize) -> Result<(), String> {
        let index = self.instances[inst].index;
        if self.instances[inst].incarnation > 0
            && !self.instances[inst].stale_restored
            && let Some(dir) = self.instances[inst].dir.as_ref().map(|d| d.path().to_path_buf())
        {
            // A restart reopens the MDBX environment from disk (close the old one first).
            let meta = ChainMeta { chain_id: 7, genesis_id: self.genesis.id() };
            self.instances[inst].storage = Box::new(MemStorage::new());
            let reopened = MdbxStorage::open(&dir, meta)
                .map_err(|e| format!("node {index} cannot reopen its data dir: {e}"))?;
            self.instances[inst].storage = Box::new(reopened);
        }
        let recovery = self.instances[inst]
            .storage
            .load(self.config(inst).retained_committed_rounds)
            .map_err(|e| format!("node {index} cannot load its storage: {e}"))?;
        let params = CoreParams {
            config: self.config(inst),
            me: index,
            validators: self.validators.clone(),
            signer: self.keys.signer(usize::from(index)),
            verifier: self.verifier.clone(),
            election: Box::new(RoundRobin::new(self.sc.n)),
            genesis: self.genesis.clone(),
        };
        let core =
            Core::new(params, recovery).map_err(|e| format!("node {index} cannot start: {e}"))?;
        // Re-deliver what storage committed but the app never received (crash in between).
        let node = &mut self.instances[inst];
        node.incarnation += 1;
        node.core = Some(core);
        node.validated = ValidatedPayloads::default();
        node.validated_hashes.clear();
        node.gossip = network::DuplicateCache::default();
        node.sync = range_sync::RangeSync::new(self.validators.validity_power());
        let missing: Vec<(BlockId, Block)> = {
            let core = node.core.as_ref().expect("just set");
            let tip = core.committed_height();
            let have = node.app.len() as u64;
            let mut chain = Vec::new();
            let mut id = core.committed_id();
            let store = core.block_store();
            let mut h = tip;
            while h > have {
                let Some(b) = store.get(&id) else {
                    return Err(format!(
                        "node {index}: committed block {id} at height {h} not in store after restart"
                    ));
                };
                chain.push((id, b.clone()));
                id = b.parent_id;
                h -= 1;
            }
            chain.reverse();
            chain
        };
        for (id, b) in missing {
            self.deliver_commit(inst, id, b)?;
        }
        self.step(inst, Event::Start)?;
        let incarnation = self.instances[inst].incarnation;
        let first = self.rng.gen_range(1..=range_sync::TICK_MS);
        self.schedule(self.now + first, SimEvent::SyncTick { inst, incarnation });
        // Its peers see the connection and tell it where they are.
        if self.instances[inst].incarnation > 1 {
            for other in 0..self.instances.len() {
                if self.instances[other].index != index && self.instances[other].core.is_some() {
                    let delay = self.rng.gen_range(1..50);
                    self.schedule(self.now + delay, SimEvent::Connected { to: other, peer: index });
                }
            }
        }
        Ok(())
    }

    /// Runs the scenario to its end; `Err` describes the first violation.
    pub fn run(mut self) -> Result<SimReport, String> {
        self.run_to_end()?;
        Ok(SimReport {
            virtual_ms: self.now - T0_MS,
            events: self.events,
            min_height: self.honest_min_height(),
            evidence: self.evidence,
            undecodable: self.undecodable,
            net: self.net,
            recovery_ms: self.recovery_ms,
            synced_blocks: self.synced_blocks,
            halted_by_design: self.halted_by_design,
            scenario: self.sc,
        })
    }

    /// Runs the scenario, leaving the simulator to be inspected (tests of the checkers).
    fn run_to_end(&mut self) -> Result<(), String> {
        for inst in 0..self.instances.len() {
            self.boot(inst)?;
        }
        let sc = self.sc.clone();
        for c in &sc.crashes {
            let torn_after = c.torn.then(|| self.rng.gen_range(0..4));
            for inst in self.routes[usize::from(c.node)].clone() {
                if let Some(back) = c.stale_ms {
                    let at = (T0_MS + c.at_ms).saturating_sub(back).max(T0_MS);
                    self.schedule(at, SimEvent::Snapshot { inst });
                }
                self.schedule(T0_MS + c.at_ms, SimEvent::Crash { inst, torn_after });
                let back = if c.at_ms >= sc.gst_ms {
                    c.at_ms + c.down_ms
                } else {
                    (c.at_ms + c.down_ms).min(sc.gst_ms)
                };
                self.schedule(
                    T0_MS + back,
                    SimEvent::Restart { inst, stale: c.stale_ms.is_some() },
                );
            }
        }
        self.schedule(T0_MS + sc.gst_ms, SimEvent::Gst);
        while let Some(Reverse((at, _, ev))) = self.queue.pop() {
            self.now = at;
            self.events += 1;
            if self.events > MAX_EVENTS {
                return Err(format!("more than {MAX_EVENTS} events by t={}ms", self.now - T0_MS));
            }
            self.dispatch(ev)?;
            if self.gst_reached {
                let needed = self.gst_height + NEW_COMMITS_AFTER_GST;
                let min_height = self.honest_min_height();
                if self.recovery_ms.is_none() && min_height > self.gst_height {
                    self.recovery_ms = Some(self.now - T0_MS - sc.gst_ms);
                }
                if min_height >= needed {
                    break;
                }
                // Every honest node is up from GST on, except those that crash after it:
                // liveness is owed from the last restart.
                let all_up = sc
                    .crashes
                    .iter()
                    .filter(|c| c.at_ms >= sc.gst_ms)
                    .map(|c| c.at_ms + c.down_ms)
                    .fold(sc.gst_ms, u64::max);
                if self.now > T0_MS + all_up + LIVENESS_BOUND_MS {
                    if self.halt_by_design() {
                        self.halted_by_design = true;
                        break;
                    }
                    return Err(format!(
                        "liveness: {}ms after GST honest heights are {:?}, need {needed}",
                        LIVENESS_BOUND_MS,
                        self.honest_heights()
                    ));
                }
            }
        }
        Ok(())
    }

    /// Whether the honest validators that may sign hold no quorum: a validator that came back
    /// behind the network (a crash before its first vote, a stale copy, a wiped data dir)
    /// abstains until the others pass the rounds it may have signed, which they then cannot do
    /// without it; the chain halts by design rather than risk a double signature (doppelganger
    /// protection). The scenario avoids this for stale copies, but not every crash can.
    fn halt_by_design(&self) -> bool {
        let mut signing = 0;
        let mut abstaining = false;
        for node in &self.instances {
            let Some(core) = node.core.as_ref() else { continue };
            if !self.is_honest(node.index) {
                continue;
            }
            if core.abstaining() {
                abstaining = true;
            } else {
                signing += self.sc.powers[usize::from(node.index)];
            }
        }
        abstaining && signing < self.validators.quorum_power()
    }

    fn honest_heights(&self) -> Vec<(ValidatorIndex, Height)> {
        self.instances
            .iter()
            .filter(|i| self.is_honest(i.index))
            .map(|i| (i.index, i.app.len() as Height))
            .collect()
    }

    fn honest_min_height(&self) -> Height {
        self.honest_heights().iter().map(|(_, h)| *h).min().unwrap_or(0)
    }

    fn dispatch(&mut self, ev: SimEvent) -> Result<(), String> {
        match ev {
            SimEvent::Deliver { to, from, bytes, gossip } => {
                // gossipsub drops a message it has seen (or published) within its window
                if gossip
                    && !self.instances[to].gossip.insert(network::message_id(&bytes), self.now)
                {
                    self.net.gossip_deduped += 1;
                    return Ok(());
                }
                match Message::decode(&bytes) {
                    Ok(message) => self.step(to, Event::Message { from, message }),
                    Err(_) => {
                        self.undecodable += 1;
                        Ok(())
                    }
                }
            }
            SimEvent::Timer { inst, incarnation, timer } => {
                if self.instances[inst].incarnation != incarnation {
                    return Ok(());
                }
                let t = match timer {
                    TimerKey::Round(r) => Timer::Round(r),
                    TimerKey::Propose(r) => Timer::Propose(r),
                };
                self.step(inst, Event::Timer(t))
            }
            SimEvent::Executor { inst, incarnation, reply } => {
                if self.instances[inst].incarnation != incarnation {
                    return Ok(());
                }
                let event = match reply {
                    ExecReply::Built { round, payload } => Event::PayloadBuilt {
                        round,
                        payload: payload.and_then(|b| Payload::decode(&b).ok()),
                    },
                    ExecReply::Validated { block_id, valid } => {
                        Event::PayloadValidated { block_id, valid }
                    }
                };
                self.step(inst, event)
            }
            SimEvent::Crash { inst, torn_after } => {
                let node = &mut self.instances[inst];
                if node.core.is_some() {
                    if torn_after.is_some() {
                        node.torn_after = torn_after;
                    } else {
                        node.core = None;
                        node.incarnation += 1;
                    }
                }
                Ok(())
            }
            SimEvent::Connected { to, peer } => self.step(to, Event::PeerConnected(peer)),
            SimEvent::Snapshot { inst } => {
                let node = &mut self.instances[inst];
                node.snapshot = Some(node.journal.len());
                Ok(())
            }
            SimEvent::Restart { inst, stale } => {
                let node = &mut self.instances[inst];
                node.torn_after = None;
                if node.core.is_some() {
                    return Ok(());
                }
                if stale {
                    self.restore_stale(inst)?;
                }
                self.boot(inst)
            }
            SimEvent::SyncTick { inst, incarnation } => {
                if self.instances[inst].incarnation != incarnation {
                    return Ok(());
                }
                self.sync_tick(inst, true)
            }
            SimEvent::SyncAnswer { inst, incarnation, peer, bytes } => {
                if self.instances[inst].incarnation != incarnation {
                    return Ok(());
                }
                self.sync_answer(inst, peer, bytes)
            }
            SimEvent::Gst => {
                self.gst_reached = true;
                self.gst_height =
                    self.instances.iter().map(|i| i.app.len() as Height).max().unwrap_or(0);
                for inst in 0..self.instances.len() {
                    if self.instances[inst].core.is_none() {
                        self.instances[inst].torn_after = None;
                        self.boot(inst)?;
                    }
                }
                Ok(())
            }
        }
    }

    /// The instance's local clock (simulation time plus its validator's skew).
    fn local_time(&self, inst: usize) -> u64 {
        let skew = self.sc.clock_skew_ms[usize::from(self.instances[inst].index)];
        self.now.saturating_add_signed(skew)
    }

    fn step(&mut self, inst: usize, event: Event) -> Result<(), String> {
        let now = self.local_time(inst);
        let Some(core) = self.instances[inst].core.as_mut() else { return Ok(()) };
        let actions = core.handle(now, event);
        let torn = self.instances[inst].torn_after.take();
        for (k, action) in actions.into_iter().enumerate() {
            if torn == Some(k) {
                let node = &mut self.instances[inst];
                node.core = None;
                node.incarnation += 1;
                return Ok(());
            }
            self.perform(inst, action)?;
        }
        if torn.is_some() {
            // fewer actions than the tear point: crash after all of them
            let node = &mut self.instances[inst];
            node.core = None;
            node.incarnation += 1;
        }
        Ok(())
    }

    fn deliver_commit(&mut self, inst: usize, id: BlockId, block: Block) -> Result<(), String> {
        let node = &mut self.instances[inst];
        let index = node.index;
        let height = block.height();
        // A core restored from a stale copy commits again what the app (the EL) already has:
        // the same blocks, or it is a safety violation.
        if node.stale_restored && height <= node.app.len() as Height && height > 0 {
            let (have, _) = &node.app[(height - 1) as usize];
            if *have != id {
                return Err(format!(
                    "SAFETY: node {index} (restored from a stale copy) committed {id} at height \
                     {height} over its earlier commit {have}"
                ));
            }
            return Ok(());
        }
        let expected = node.app.len() as Height + 1;
        if height != expected {
            return Err(format!(
                "node {index} delivered height {height}, expected {expected} (gap or duplicate)"
            ));
        }
        let parent = node.app.last().map_or(self.genesis.id(), |(pid, _)| *pid);
        if block.parent_id != parent {
            return Err(format!(
                "node {index} committed {id} at height {height} whose parent is not its previous commit"
            ));
        }
        node.app.push((id, block));
        if self.is_honest(index) {
            match self.committed.get(&height) {
                Some(other) if *other != id => {
                    return Err(format!(
                        "SAFETY: node {index} committed {id} at height {height}, another node committed {other}"
                    ));
                }
                Some(_) => {}
                None => {
                    self.committed.insert(height, id);
                }
            }
        }
        Ok(())
    }

    fn check_signed(&mut self, index: ValidatorIndex, message: &Message) -> Result<(), String> {
        if !self.is_honest(index) {
            return Ok(());
        }
        match message {
            Message::Vote(v) if v.voter == index => {
                match self.signed_votes.insert((index, v.round), v.block_id) {
                    Some(prev) if prev != v.block_id => {
                        return Err(format!(
                            "SAFETY: honest node {index} voted twice in round {}: {prev} and {}",
                            v.round, v.block_id
                        ));
                    }
                    // a vote re-sent after a restart is the stored signature, not a new one
                    Some(_) => {}
                    None if self.signed_timeouts.contains_key(&(index, v.round)) => {
                        return Err(format!(
                            "SAFETY: honest node {index} voted in round {} after timing out",
                            v.round
                        ));
                    }
                    None => {}
                }
            }
            Message::Timeout(t) if t.signer == index => {
                if let Some(prev) = self.signed_timeouts.insert((index, t.round), t.high_qc.round)
                    && prev != t.high_qc.round
                {
                    return Err(format!(
                        "SAFETY: honest node {index} signed two timeouts for round {}",
                        t.round
                    ));
                }
            }
            Message::Proposal(p) if p.block.proposer == index => {
                let id = p.block.id();
                if let Some(prev) = self.signed_proposals.insert((index, p.block.round), id)
                    && prev != id
                {
                    return Err(format!(
                        "SAFETY: honest node {index} proposed twice in round {}",
                        p.block.round
                    ));
                }
            }
            _ => {}
        }
        Ok(())
    }

    fn perform(&mut self, inst: usize, action: Action) -> Result<(), String> {
        let index = self.instances[inst].index;
        let incarnation = self.instances[inst].incarnation;
        match action {
            Action::Persist(op) => {
                if let PersistOp::Evidence(e) = &op
                    && self.is_honest(index)
                {
                    self.evidence[e.kind as usize] += 1;
                }
                if self.drop_safety_writes
                    && matches!(op, PersistOp::Safety(_))
                    && self.instances[inst].storage.safety().ok().flatten().is_some()
                {
                    return Ok(());
                }
                let node = &mut self.instances[inst];
                node.storage
                    .apply(&op)
                    .map_err(|e| format!("node {index} storage write failed: {e}"))?;
                if matches!(op, PersistOp::Block(_) | PersistOp::Committed { .. }) {
                    node.served
                        .apply(&op)
                        .map_err(|e| format!("node {index} committed index: {e}"))?;
                }
                node.journal.push(op);
                Ok(())
            }
            Action::Send { to, message } => {
                self.check_signed(index, &message)?;
                let message = match (self.byz(index), message) {
                    (Some(Byzantine::Withholder), Message::Vote(_)) => return Ok(()),
                    (Some(Byzantine::BadFetchServer), Message::BlockResponse { mut blocks }) => {
                        for b in &mut blocks {
                            b.payload.body.push(0xBD);
                        }
                        Message::BlockResponse { blocks }
                    }
                    (_, message) => message,
                };
                let bytes = message.encode();
                self.byzantine_extra(index, &bytes);
                self.send(index, to, bytes, false);
                Ok(())
            }
            Action::Broadcast { message } => {
                self.check_signed(index, &message)?;
                if let Message::Proposal(p) = &message {
                    match self.byz(index) {
                        Some(Byzantine::Equivocator) => {
                            self.equivocate(index, p);
                            return Ok(());
                        }
                        Some(Byzantine::HashReuse) => {
                            self.reuse_parent_hash(index, p);
                            return Ok(());
                        }
                        Some(Byzantine::ForkBelowLock)
                            if p.tc.is_some() && self.fork_below_lock(inst, p) =>
                        {
                            return Ok(());
                        }
                        _ => {}
                    }
                }
                let bytes = message.encode();
                self.byzantine_extra(index, &bytes);
                self.publish(inst, bytes);
                Ok(())
            }
            Action::SetTimer { timer, at_ms } => {
                let timer = match timer {
                    Timer::Round(r) => TimerKey::Round(r),
                    Timer::Propose(r) => TimerKey::Propose(r),
                };
                // the core's clock is skewed: convert back to simulation time
                let skew = self.sc.clock_skew_ms[usize::from(index)];
                let at = at_ms.saturating_add_signed(-skew);
                self.schedule(at, SimEvent::Timer { inst, incarnation, timer });
                Ok(())
            }
            Action::BuildPayload { round, attributes } => {
                let mut body: Vec<u8> = (0..8).map(|_| self.rng.r#gen()).collect();
                body.resize(self.body_bytes.max(8), 0);
                let payload = mock_payload(&attributes, body);
                let node = &mut self.instances[inst];
                // An EL that knows the parent hash as a block of another height cannot build
                // the requested number on it (what a certified hash-reusing block leads to).
                let buildable = node
                    .el_blocks
                    .get(&attributes.parent_hash)
                    .is_none_or(|n| n + 1 == attributes.number);
                let payload = buildable.then(|| {
                    // like the real executor, the leader validates what it built
                    node.validated.insert(&payload);
                    node.validated_hashes.insert(payload.block_hash);
                    node.el_blocks.insert(payload.block_hash, payload.number);
                    payload.encode()
                });
                let delay = self.rng.gen_range(1..5);
                let reply = ExecReply::Built { round, payload };
                self.schedule(self.now + delay, SimEvent::Executor { inst, incarnation, reply });
                Ok(())
            }
            Action::ValidatePayload { block_id, payload } => {
                let node = &mut self.instances[inst];
                let cached = if self.trust_block_hashes {
                    node.validated_hashes.contains(&payload.block_hash)
                } else {
                    node.validated.contains(&payload)
                };
                let valid = cached
                    || (mock_block_hash(&payload) == payload.block_hash
                        && payload.withdrawals.is_empty());
                if valid && !cached {
                    node.validated.insert(&payload);
                    node.validated_hashes.insert(payload.block_hash);
                    node.el_blocks.insert(payload.block_hash, payload.number);
                }
                let delay = self.rng.gen_range(1..5);
                let reply = ExecReply::Validated { block_id, valid };
                self.schedule(self.now + delay, SimEvent::Executor { inst, incarnation, reply });
                Ok(())
            }
            Action::Commit { block_id, block } => self.deliver_commit(inst, block_id, block),
            Action::ForkChoice { finalized, .. } => {
                let node = &self.instances[inst];
                let tip = node
                    .app
                    .last()
                    .map_or(self.genesis.payload.block_hash, |(_, b)| b.payload.block_hash);
                let behind = node.stale_restored
                    && (finalized == self.genesis.payload.block_hash
                        || node.app.iter().any(|(_, b)| b.payload.block_hash == finalized));
                if finalized != tip && !behind {
                    return Err(format!(
                        "node {index}: fork choice finalized {finalized} is not its last delivered block {tip}"
                    ));
                }
                Ok(())
            }
            Action::Evidence(_) => Ok(()),
        }
    }

    fn byz(&self, index: ValidatorIndex) -> Option<Byzantine> {
        self.sc.byzantine.iter().find(|(i, _)| *i == index).map(|(_, b)| *b)
    }

    /// An equivocating leader: a second, differently-bodied but valid proposal to half the peers.
    fn equivocate(&mut self, index: ValidatorIndex, p: &crate::types::Proposal) {
        let mut block = p.block.clone();
        block.payload.body.push(0xEE);
        block.payload.block_hash = mock_block_hash(&block.payload);
        let id = block.id();
        let signer = self.keys.signer(usize::from(index));
        let sig = signer.sign(&crate::types::Proposal::signing_bytes(7, &id));
        let twin = crate::types::Proposal { block, tc: p.tc.clone(), signature: sig };
        let a = Message::Proposal(p.clone()).encode();
        let b = Message::Proposal(twin).encode();
        for to in 0..self.sc.n as ValidatorIndex {
            if to != index {
                let bytes = if self.rng.gen_bool(0.5) { a.clone() } else { b.clone() };
                self.send(index, to, bytes, false);
            }
        }
    }

    /// A hash-reusing leader: the payload claims its parent's block hash over its own body, every
    /// consensus field correct, correctly signed, sent to everyone.
    fn reuse_parent_hash(&mut self, index: ValidatorIndex, p: &crate::types::Proposal) {
        let mut block = p.block.clone();
        block.payload.block_hash = block.payload.parent_hash;
        let id = block.id();
        let signer = self.keys.signer(usize::from(index));
        let sig = signer.sign(&crate::types::Proposal::signing_bytes(7, &id));
        let forged =
            Message::Proposal(crate::types::Proposal { block, tc: p.tc.clone(), signature: sig })
                .encode();
        for to in 0..self.sc.n as ValidatorIndex {
            if to != index {
                self.send(index, to, forged.clone(), false);
            }
        }
    }

    /// A leader that proposes after a TC on an older QC than the TC's highest: the parent of
    /// the block its honest proposal extends, with a payload correctly built on it. Returns
    /// whether it sent one (it needs that older block).
    fn fork_below_lock(&mut self, inst: usize, p: &crate::types::Proposal) -> bool {
        let index = self.instances[inst].index;
        let Some(core) = self.instances[inst].core.as_ref() else { return false };
        let store = core.block_store();
        let Some(extended) = store.get(&p.block.qc.block_id) else { return false };
        let older = extended.qc.clone();
        if older.round == 0 {
            return false;
        }
        let Some(parent) = store.get(&older.block_id).cloned() else { return false };
        let round = p.block.round;
        let attributes = PayloadAttributes {
            parent_hash: parent.payload.block_hash,
            number: parent.payload.number + 1,
            timestamp: p.block.payload.timestamp.max(parent.payload.timestamp + 1),
            prev_randao: crate::types::payload::derive_prev_randao(&older.block_id, round),
            parent_beacon_block_root: older.block_id,
        };
        let block = Block {
            round,
            parent_id: older.block_id,
            qc: older,
            payload: mock_payload(&attributes, vec![0xF0]),
            proposer: index,
        };
        let id = block.id();
        let signer = self.keys.signer(usize::from(index));
        let signature = signer.sign(&crate::types::Proposal::signing_bytes(7, &id));
        let fork = Message::Proposal(crate::types::Proposal { block, tc: p.tc.clone(), signature })
            .encode();
        for to in 0..self.sc.n as ValidatorIndex {
            if to != index {
                self.send(index, to, fork.clone(), false);
            }
        }
        true
    }

    /// A garbage sender: alongside its honest traffic, mutated, truncated, replayed and
    /// forged messages.
    fn byzantine_extra(&mut self, index: ValidatorIndex, bytes: &[u8]) {
        if self.byz(index) != Some(Byzantine::Garbage) {
            return;
        }
        if self.sent_log.len() < 256 {
            self.sent_log.push((index, bytes.to_vec()));
        }
        let to = self.rng.gen_range(0..self.sc.n) as ValidatorIndex;
        if to == index {
            return;
        }
        let junk = match self.rng.gen_range(0..5) {
            0 => {
                let mut b = bytes.to_vec();
                let i = self.rng.gen_range(0..b.len());
                b[i] ^= 1 << self.rng.gen_range(0..8);
                b
            }
            1 => bytes[..self.rng.gen_range(0..bytes.len())].to_vec(),
            2 => {
                // replay something old (stale)
                let i = self.rng.gen_range(0..self.sent_log.len());
                self.sent_log[i].1.clone()
            }
            3 => (0..self.rng.gen_range(1..200)).map(|_| self.rng.r#gen()).collect(),
            _ => {
                // a vote for a far-future round with a forged signature, claiming another voter
                let voter = self.rng.gen_range(0..self.sc.n) as ValidatorIndex;
                Message::Vote(crate::types::Vote {
                    block_id: B256::repeat_byte(7),
                    round: self.rng.gen_range(1..1_000_000),
                    voter,
                    signature: crate::types::Signature([9; 64]),
                })
                .encode()
            }
        };
        self.send(index, to, junk, false);
    }

    /// A broadcast, as the real node's network performs it: a gossipsub publish (refused if
    /// too large, or as a duplicate of what this node published or received within the dedup
    /// window); a duplicate goes directly to every validator instead (`direct_fallback`), a
    /// message too large goes nowhere (a direct frame would be refused as well).
    fn publish(&mut self, inst: usize, bytes: Vec<u8>) {
        let index = self.instances[inst].index;
        if bytes.len() > self.max_message_bytes {
            self.net.publish_too_large += 1;
            return;
        }
        let id = network::message_id(&bytes);
        let fresh = self.instances[inst].gossip.insert(id, self.now);
        // A selective byzantine sender reaches only some peers (its own gossip choice).
        let selective = self.byz(index) == Some(Byzantine::Selective);
        if !fresh {
            self.net.publish_duplicates += 1;
            if !self.direct_fallback {
                return;
            }
            self.net.direct_fallbacks += 1;
        }
        for to in 0..self.sc.n as ValidatorIndex {
            if to != index && !(selective && self.rng.gen_bool(0.5)) {
                self.send(index, to, bytes.clone(), fresh);
            }
        }
    }

    /// Puts the copies of a message that the network delivers on the queue: by gossip
    /// (`gossip`, de-duplicated by the receiver) or directly; a message above the size limit
    /// is not delivered (the receiver's codec refuses the frame).
    fn send(&mut self, from: ValidatorIndex, to: ValidatorIndex, bytes: Vec<u8>, gossip: bool) {
        if !gossip && bytes.len() > self.max_message_bytes {
            self.net.direct_too_large += 1;
            return;
        }
        let targets = self.routes[usize::from(to)].clone();
        // A twin pair splits the network: each instance hears from half the peers.
        let targets: Vec<usize> = if targets.len() > 1 {
            vec![targets[usize::from(from) % targets.len()]]
        } else {
            targets
        };
        for inst in targets {
            for delay in network::deliveries(&mut self.rng, &self.sc, self.now - T0_MS, from, to) {
                self.schedule(
                    self.now + delay,
                    SimEvent::Deliver { to: inst, from, bytes: bytes.clone(), gossip },
                );
            }
        }
    }
}

/// Parses `START..END` (END exclusive).
pub fn parse_seed_range(s: &str) -> Option<(u64, u64)> {
    let (a, b) = s.trim().split_once("..")?;
    let (a, b) = (a.trim().parse().ok()?, b.trim().parse().ok()?);
    (a < b).then_some((a, b))
}

/// Runs one seed.
pub fn run_seed(seed: u64) -> Result<SimReport, String> {
    Sim::new(Scenario::from_seed(seed)).run()
}

/// Counts of seeds by outcome.
pub fn summary(start: u64, end: u64, passed: u64, failed: u64) -> String {
    format!("seeds {start}..{end}: {passed} passed, {failed} failed")
}
