//! Unit tests of the core against a tiny synchronous harness: instant delivery, an executor
//! that answers immediately, timers fired on demand.

use super::*;
use crate::leader::RoundRobin;
use crate::sim::{Keys, mock_block_hash, mock_payload, sim_genesis};
use crate::storage::{MemStorage, Storage};
use crate::types::Signature;
use std::collections::VecDeque;

const CHAIN: u64 = 7;

fn config() -> CoreConfig {
    CoreConfig {
        chain_id: CHAIN,
        sub_second_blocks: true,
        round_timeout_base_ms: 1000,
        ..CoreConfig::default()
    }
}

fn new_core(keys: &Keys, i: usize, recovery: Option<Recovery>) -> Core {
    let (verifier, validators) = keys.set();
    let n = validators.len();
    Core::new(
        CoreParams {
            config: config(),
            me: i as ValidatorIndex,
            validators,
            signer: keys.signer(i),
            verifier,
            election: Box::new(RoundRobin::new(n)),
            genesis: sim_genesis(),
        },
        recovery,
    )
    .unwrap()
}

struct Net {
    keys: Keys,
    cores: Vec<Core>,
    stores: Vec<MemStorage>,
    now: u64,
    queue: VecDeque<(usize, Event)>,
    /// Nodes whose outgoing messages are dropped.
    muted: Vec<bool>,
    commits: Vec<Vec<BlockId>>,
    sent: Vec<(ValidatorIndex, Message)>,
    timers: Vec<(usize, Timer)>,
    /// Deadline of every timer set, in the node's own clock.
    deadlines: Vec<(usize, Timer, u64)>,
    /// How far each node's clock runs ahead of `now`, in milliseconds.
    ahead_ms: Vec<u64>,
}

impl Net {
    fn new(n: usize) -> Self {
        let keys = Keys::new(n, false);
        let cores = (0..n).map(|i| new_core(&keys, i, None)).collect();
        Self {
            keys,
            cores,
            stores: vec![MemStorage::new(); n],
            now: 1_700_000_000_000,
            queue: VecDeque::new(),
            muted: vec![false; n],
            commits: vec![Vec::new(); n],
            sent: Vec::new(),
            timers: Vec::new(),
            deadlines: Vec::new(),
            ahead_ms: vec![0; n],
        }
    }

    fn start(&mut self) {
        for i in 0..self.cores.len() {
            self.queue.push_back((i, Event::Start));
        }
        self.run();
    }

    fn run(&mut self) {
        // Instant delivery with sub-second blocks never stops by itself: bound the steps.
        let mut steps = 0;
        while let Some((i, ev)) = self.queue.pop_front() {
            steps += 1;
            if steps > 5_000 {
                return;
            }
            let actions = self.cores[i].handle(self.now + self.ahead_ms[i], ev);
            self.perform(i, actions);
        }
    }

    fn perform(&mut self, i: usize, actions: Vec<Action>) {
        let n = self.cores.len();
        for a in actions {
            match a {
                Action::Persist(op) => self.stores[i].apply(&op).unwrap(),
                Action::Send { to, message } => {
                    self.sent.push((i as ValidatorIndex, message.clone()));
                    if !self.muted[i] {
                        self.queue.push_back((
                            usize::from(to),
                            Event::Message { from: i as ValidatorIndex, message },
                        ));
                    }
                }
                Action::Broadcast { message } => {
                    self.sent.push((i as ValidatorIndex, message.clone()));
                    if !self.muted[i] {
                        for j in (0..n).filter(|j| *j != i) {
                            self.queue.push_back((
                                j,
                                Event::Message {
                                    from: i as ValidatorIndex,
                                    message: message.clone(),
                                },
                            ));
                        }
                    }
                }
                Action::SetTimer { timer, at_ms } => {
                    self.timers.push((i, timer));
                    self.deadlines.push((i, timer, at_ms));
                }
                Action::BuildPayload { round, attributes } => {
                    let payload = mock_payload(&attributes, vec![i as u8]);
                    self.queue
                        .push_back((i, Event::PayloadBuilt { round, payload: Some(payload) }));
                }
                Action::ValidatePayload { block_id, payload } => {
                    let valid = mock_block_hash(&payload) == payload.block_hash;
                    self.queue.push_back((i, Event::PayloadValidated { block_id, valid }));
                }
                Action::Commit { block_id, .. } => self.commits[i].push(block_id),
                Action::ForkChoice { .. } | Action::Evidence(_) => {}
            }
        }
    }

    /// Fires every node's round timer for its current round.
    fn fire_round_timers(&mut self) {
        for i in 0..self.cores.len() {
            let r = self.cores[i].round();
            self.queue.push_back((i, Event::Timer(Timer::Round(r))));
        }
        self.run();
    }
}

#[test]
fn four_nodes_commit_the_same_chain_in_order() {
    let mut net = Net::new(4);
    net.start();
    // With instant delivery rounds chain on without any timer.
    for c in &net.commits {
        assert!(c.len() >= 5, "commits: {}", c.len());
    }
    let shortest = net.commits.iter().map(Vec::len).min().unwrap();
    for c in &net.commits {
        assert_eq!(c[..shortest], net.commits[0][..shortest]);
    }
    for (i, core) in net.cores.iter().enumerate() {
        assert_eq!(core.committed_height() as usize, net.commits[i].len());
        assert!(core.stats().votes > 0);
    }
}

/// A leader whose clock runs ahead (within `max_future_secs`) makes the next leader wait for
/// a later timestamp: that round's timer covers the wait, so it does not time out first.
#[test]
fn a_round_lasts_long_enough_to_build_after_a_future_timestamp() {
    let mut net = Net::new(4);
    net.ahead_ms[1] = 3_900; // the leader of round 1
    net.start();
    let deadline =
        |timer| net.deadlines.iter().rev().find(|(i, t, _)| *i == 2 && *t == timer).map(|d| d.2);
    let propose_at = deadline(Timer::Propose(2)).expect("round 2's leader waits to build");
    let round_end = deadline(Timer::Round(2)).expect("round 2's timer");
    assert!(
        round_end >= propose_at + config().round_timeout_base_ms,
        "round 2 ends at {round_end}, before the leader may build at {propose_at} plus a round"
    );
}

#[test]
fn silent_leader_leads_to_a_tc_and_the_next_round() {
    let mut net = Net::new(4);
    // Leader of round 1 is validator 1: silence it from the start.
    net.muted[1] = true;
    net.start();
    assert!(net.cores.iter().all(|c| c.round() == 1));
    assert!(net.commits.iter().all(Vec::is_empty));
    net.fire_round_timers();
    // Three honest timeouts form a TC of round 1: everyone moves on and round 2's leader
    // proposes with the TC; the chain then progresses (rounds led by 1 time out again).
    for (i, c) in net.cores.iter().enumerate() {
        if i != 1 {
            assert!(c.round() >= 2, "node {i} in round {}", c.round());
            assert!(c.stats().tcs_formed >= 1);
        }
    }
    let tc_proposal =
        net.sent.iter().any(|(_, m)| matches!(m, Message::Proposal(p) if p.tc.is_some()));
    assert!(tc_proposal);
}

#[test]
fn a_single_timeout_does_not_advance_but_more_than_a_third_is_echoed() {
    let mut net = Net::new(4);
    net.muted = vec![true; 4];
    net.start();
    // Node 0 times out alone: the others see 1/4 of the power (not > 1/3) and do not join.
    net.muted[0] = false;
    net.queue.push_back((0, Event::Timer(Timer::Round(1))));
    net.run();
    let timeouts =
        |net: &Net| net.sent.iter().filter(|(_, m)| matches!(m, Message::Timeout(_))).count();
    assert_eq!(timeouts(&net), 1);
    assert!(net.cores.iter().all(|c| c.round() == 1));
    // Node 3 too: now 2/4 > 1/3, so nodes 1 and 2 echo and a TC forms.
    net.muted = vec![false; 4];
    net.queue.push_back((3, Event::Timer(Timer::Round(1))));
    net.run();
    assert!(timeouts(&net) >= 4);
    assert!(net.cores.iter().all(|c| c.round() >= 2));
}

#[test]
fn forged_and_duplicate_votes_are_rejected() {
    let mut net = Net::new(4);
    net.muted = vec![true; 4];
    net.start();
    let genesis = sim_genesis().id();
    let leader2 = 2usize; // leads round 2, collects votes of round 1
    let signer = net.keys.signer(0);
    let good = Vote {
        block_id: genesis,
        round: 1,
        voter: 0,
        signature: signer.sign(&Vote::signing_bytes(CHAIN, &genesis, 1)),
    };
    let forged = Vote { voter: 1, ..good.clone() };
    let core = &mut net.cores[leader2];
    core.handle(0, Event::Message { from: 1, message: Message::Vote(forged) });
    assert_eq!(core.stats().rejected.get("invalid_signature"), Some(&1));
    core.handle(0, Event::Message { from: 0, message: Message::Vote(good.clone()) });
    core.handle(0, Event::Message { from: 0, message: Message::Vote(good.clone()) });
    assert_eq!(core.stats().rejected.get("duplicate"), Some(&1));
    // a vote sent to a node that does not lead the next round
    let core = &mut net.cores[3];
    core.handle(0, Event::Message { from: 0, message: Message::Vote(good) });
    assert_eq!(core.stats().rejected.get("not_next_leader"), Some(&1));
}

#[test]
fn equivocating_votes_produce_evidence() {
    let mut net = Net::new(4);
    net.muted = vec![true; 4];
    net.start();
    let signer = net.keys.signer(0);
    let vote = |id: BlockId| Vote {
        block_id: id,
        round: 1,
        voter: 0,
        signature: signer.sign(&Vote::signing_bytes(CHAIN, &id, 1)),
    };
    let core = &mut net.cores[2];
    core.handle(0, Event::Message { from: 0, message: Message::Vote(vote(B256::repeat_byte(1))) });
    let out = core
        .handle(0, Event::Message { from: 0, message: Message::Vote(vote(B256::repeat_byte(2))) });
    let ev: Vec<_> = out
        .iter()
        .filter_map(|a| if let Action::Evidence(e) = a { Some(e) } else { None })
        .collect();
    assert_eq!(ev.len(), 1);
    assert_eq!((ev[0].kind, ev[0].round, ev[0].signer), (EvidenceKind::Vote, 1, 0));
    assert!(out.iter().any(|a| matches!(a, Action::Persist(PersistOp::Evidence(_)))));
}

#[test]
fn equivocating_proposals_produce_evidence_and_one_vote() {
    let mut net = Net::new(4);
    net.muted = vec![true; 4];
    net.start();
    let g = sim_genesis();
    let leader = net.keys.signer(1);
    let attrs = PayloadAttributes {
        parent_hash: g.payload.block_hash,
        number: 1,
        timestamp: g.payload.timestamp + 1,
        prev_randao: derive_prev_randao(&g.id(), 1),
        parent_beacon_block_root: g.id(),
    };
    let proposal = |body: u8| {
        let block = Block {
            round: 1,
            parent_id: g.id(),
            qc: QuorumCert::genesis(g.id()),
            payload: mock_payload(&attrs, vec![body]),
            proposer: 1,
        };
        let sig = leader.sign(&Proposal::signing_bytes(CHAIN, &block.id()));
        Proposal { block, tc: None, signature: sig }
    };
    let (a, b) = (proposal(1), proposal(2));
    let core = &mut net.cores[3];
    let out =
        core.handle(net.now, Event::Message { from: 1, message: Message::Proposal(a.clone()) });
    let Some(Action::ValidatePayload { block_id, .. }) =
        out.iter().find(|a| matches!(a, Action::ValidatePayload { .. }))
    else {
        panic!("no validation asked")
    };
    let block_id = *block_id;
    let out = core.handle(net.now, Event::Message { from: 1, message: Message::Proposal(b) });
    assert!(
        out.iter().any(|a| matches!(a, Action::Evidence(e) if e.kind == EvidenceKind::Proposal))
    );
    assert!(!out.iter().any(|a| matches!(a, Action::ValidatePayload { .. })));
    let out = core.handle(net.now, Event::PayloadValidated { block_id, valid: true });
    // persist safety strictly before the vote leaves
    let persist = out.iter().position(|a| matches!(a, Action::Persist(PersistOp::Safety(_))));
    let send = out.iter().position(|a| matches!(a, Action::Send { message: Message::Vote(_), .. }));
    assert!(persist.unwrap() < send.unwrap());
    // a proposal with a bad signature is rejected
    let mut c = proposal(3);
    c.signature = Signature([1; 64]);
    net.cores[0].handle(net.now, Event::Message { from: 1, message: Message::Proposal(c) });
    assert_eq!(net.cores[0].stats().rejected.get("invalid_signature"), Some(&1));
}

#[test]
fn invalid_payload_gets_no_vote() {
    let mut net = Net::new(4);
    net.muted = vec![true; 4];
    net.start();
    let g = sim_genesis();
    let attrs = PayloadAttributes {
        parent_hash: g.payload.block_hash,
        number: 1,
        timestamp: g.payload.timestamp + 1,
        prev_randao: derive_prev_randao(&g.id(), 1),
        parent_beacon_block_root: g.id(),
    };
    let block = Block {
        round: 1,
        parent_id: g.id(),
        qc: QuorumCert::genesis(g.id()),
        payload: mock_payload(&attrs, vec![1]),
        proposer: 1,
    };
    let sig = net.keys.signer(1).sign(&Proposal::signing_bytes(CHAIN, &block.id()));
    let id = block.id();
    let core = &mut net.cores[3];
    core.handle(
        net.now,
        Event::Message {
            from: 1,
            message: Message::Proposal(Proposal { block, tc: None, signature: sig }),
        },
    );
    let out = core.handle(net.now, Event::PayloadValidated { block_id: id, valid: false });
    assert!(out.iter().all(|a| !matches!(a, Action::Send { .. })));
    assert_eq!(core.stats().rejected.get("invalid_payload"), Some(&1));
    assert_eq!(core.safety_data().last_voted_round, 0);
}

#[test]
fn restart_resends_the_stored_vote_without_re_signing() {
    let mut net = Net::new(4);
    // Only validator 1 (leader of round 1) is heard: everyone votes, no QC forms.
    net.muted = vec![true, false, true, true];
    net.start();
    let stored =
        net.stores[3].load(crate::block_store::RETAINED_COMMITTED_ROUNDS).unwrap().unwrap();
    let vote = stored.safety.last_vote.clone().expect("node 3 voted");
    assert_eq!(vote.round, 1);
    // Crash node 3 and restart it from its storage.
    let mut core = new_core(&net.keys, 3, Some(stored));
    let out = core.handle(net.now, Event::Start);
    let resent: Vec<_> = out
        .iter()
        .filter_map(|a| match a {
            Action::Send { message: Message::Vote(v), .. } => Some(v),
            _ => None,
        })
        .collect();
    assert_eq!(resent, vec![&vote]);
    assert!(!out.iter().any(|a| matches!(a, Action::Persist(PersistOp::Safety(_)))));
    // A different proposal for round 1 can never get a second vote.
    assert_eq!(core.safety_data().last_voted_round, 1);
}

#[test]
fn restart_resumes_committed_chain_from_storage() {
    let mut net = Net::new(4);
    net.start();
    let h = net.cores[0].committed_height();
    assert!(h >= 5);
    let rec = net.stores[0].load(crate::block_store::RETAINED_COMMITTED_ROUNDS).unwrap().unwrap();
    let core = new_core(&net.keys, 0, Some(rec));
    assert_eq!(core.committed_height(), h);
    assert_eq!(core.committed_id(), net.cores[0].committed_id());
    assert!(core.round() > net.cores[0].safety_data().high_qc.round);
}

/// A restart reads the committed tip, a window below it and the uncommitted blocks, not the
/// chain: with a window of 8 rounds, a node that committed 100+ blocks reads a dozen blocks,
/// and the restarted core goes on committing the same chain as the others.
#[test]
fn restart_reads_the_window_not_the_whole_chain() {
    const WINDOW: Round = 8;
    let mut net = Net::new(4);
    net.start();
    for _ in 0..4 {
        net.run();
    }
    let h = net.cores[0].committed_height();
    assert!(h >= 100, "only {h} committed");
    assert!(net.stores[0].block_count() as u64 > h);
    let before = net.stores[0].block_reads();
    let rec = net.stores[0].load(WINDOW).unwrap().unwrap();
    let reads = net.stores[0].block_reads() - before;
    assert!(reads <= WINDOW + 8, "{reads} blocks read for a restart at height {h}");
    assert!(rec.blocks.len() as u64 <= WINDOW + 6, "{} blocks recovered", rec.blocks.len());
    let tip_round = net.cores[0].block_store().get(&net.cores[0].committed_id()).unwrap().round;
    assert!(rec.blocks.iter().all(|b| b.round + WINDOW >= tip_round));

    let core = new_core(&net.keys, 0, Some(rec));
    assert_eq!(core.committed_height(), h);
    assert_eq!(core.committed_id(), net.cores[0].committed_id());
    assert!(core.block_store().len() as u64 <= WINDOW + 7);
    net.cores[0] = core;
    net.queue.push_back((0, Event::Start));
    net.run();
    assert!(net.cores[0].committed_height() > h + 5, "{}", net.cores[0].committed_height());
    let shortest = net.commits.iter().map(Vec::len).min().unwrap();
    for c in &net.commits {
        assert_eq!(c[..shortest], net.commits[0][..shortest]);
    }
}

#[test]
fn messages_from_non_validators_and_far_future_floods_are_bounded() {
    let mut net = Net::new(4);
    net.muted = vec![true; 4];
    net.start();
    let core = &mut net.cores[0];
    core.handle(
        0,
        Event::Message { from: 9, message: Message::BlockRequest { id: B256::ZERO, count: 1 } },
    );
    assert_eq!(core.stats().rejected.get("unknown_sender"), Some(&1));
    let forged =
        |round| Vote { block_id: B256::ZERO, round, voter: 1, signature: Signature([0; 64]) };
    for r in 0..200 {
        core.handle(0, Event::Message { from: 1, message: Message::Vote(forged(1_000 + r)) });
    }
    let limited = core.stats().rejected.get("rate_limited").copied().unwrap_or(0);
    assert_eq!(limited, 200 - u64::from(config().future_budget));
}

#[test]
fn key_mismatch_is_refused() {
    let keys = Keys::new(4, false);
    let (verifier, validators) = keys.set();
    let err = Core::new(
        CoreParams {
            config: config(),
            me: 0,
            validators: validators.clone(),
            signer: keys.signer(1),
            verifier: verifier.clone(),
            election: Box::new(RoundRobin::new(4)),
            genesis: sim_genesis(),
        },
        None,
    )
    .unwrap_err();
    assert_eq!(err, CoreError::KeyMismatch { me: 0 });
    let err = Core::new(
        CoreParams {
            config: config(),
            me: 4,
            validators,
            signer: keys.signer(1),
            verifier,
            election: Box::new(RoundRobin::new(4)),
            genesis: sim_genesis(),
        },
        None,
    )
    .unwrap_err();
    assert_eq!(err, CoreError::NotAValidator { me: 4, n: 4 });
}

/// The verdict the node loop reports to the network: forged or malformed messages prove
/// misbehaviour, stale ones do not, and an accepted event clears the last rejection.
#[test]
fn forged_proposals_are_culpable_stale_ones_are_not() {
    let mut net = Net::new(4);
    net.muted = vec![true; 4];
    net.start();
    let core = &mut net.cores[0];
    assert_eq!(core.round(), 1);
    let g = sim_genesis();
    let proposal = |round: Round, proposer: ValidatorIndex| {
        let mut b = g.clone();
        b.round = round;
        b.parent_id = g.id();
        b.qc = QuorumCert::genesis(g.id());
        b.proposer = proposer;
        b.payload.number = 1;
        Message::Proposal(Proposal { block: b, tc: None, signature: Signature([9; 64]) })
    };
    let mut verdict = |message: Message| {
        core.handle(0, Event::Message { from: 1, message });
        core.last_rejection().map(|r| (r.label(), r.is_culpable()))
    };
    assert_eq!(verdict(proposal(1, 1)), Some(("invalid_signature", true)));
    assert_eq!(verdict(proposal(1, 2)), Some(("wrong_proposer", true)));
    assert_eq!(verdict(proposal(0, 0)), Some(("stale", false)));
    core.handle(0, Event::Timer(Timer::Propose(0)));
    assert!(core.last_rejection().is_none());
}

/// A validator that (re)connects is told our timeout of the current round and our highest
/// certificates at once, instead of waiting for our next round timer.
#[test]
fn a_reconnected_validator_gets_our_timeout_and_certificates() {
    let mut net = Net::new(4);
    net.muted[1] = true; // round 1's leader is silent: everyone times out round 1
    net.start();
    net.queue.push_back((0, Event::Timer(Timer::Round(1))));
    net.run();
    let round = net.cores[0].round();
    let actions = net.cores[0].handle(net.now, Event::PeerConnected(3));
    let timeout = actions.iter().any(
        |a| matches!(a, Action::Send { to: 3, message: Message::Timeout(t) } if t.round == round),
    );
    let sync = actions.iter().any(|a| {
        matches!(a, Action::Send { to: 3, message: Message::SyncInfo { high_qc, .. } }
            if *high_qc == net.cores[0].safety.data().high_qc)
    });
    assert!(timeout, "no timeout of round {round} sent: {actions:?}");
    assert!(sync, "no sync info sent: {actions:?}");
    // Our own index and unknown validators get nothing.
    assert!(net.cores[0].handle(net.now, Event::PeerConnected(0)).is_empty());
    assert!(net.cores[0].handle(net.now, Event::PeerConnected(77)).is_empty());
}

/// A validator whose safety data says it voted up to round 12 while its highest QC is genesis
/// (a restored copy of its data, say) refuses every vote through round 12. A refused vote still
/// leaves the block stored and the node going: it commits the same chain as the others, and as
/// leader of rounds 3, 7 and 11 it proposes, then votes again from round 13.
///
/// This passes with the old early return on a refused vote too: a vote is only attempted for a
/// block of the current round, and nothing `after_blocks_stored` resumes (a proposal waiting
/// for its parent, a deferred commit check, a commit walk, our own proposal) can be waiting
/// for a block of the current round, so the fix is defensive and this test guards the path.
#[test]
fn a_refused_vote_does_not_stop_commits_or_the_next_proposal() {
    let mut net = Net::new(4);
    let genesis_qc = QuorumCert::genesis(sim_genesis().id());
    let safety = SafetyData { last_voted_round: 12, ..SafetyData::new(genesis_qc) };
    let recovery = Recovery { safety, blocks: vec![], qcs: vec![], committed: None };
    net.cores[3] = new_core(&net.keys, 3, Some(recovery));
    net.start();
    let stats = net.cores[3].stats().clone();
    assert!(
        stats.rejected.get("safety").copied().unwrap_or(0) >= 9,
        "votes of rounds 1..=12 not refused: {stats:?}"
    );
    let proposed: Vec<Round> = net
        .sent
        .iter()
        .filter_map(|(from, m)| match m {
            Message::Proposal(p) if *from == 3 => Some(p.block.round),
            _ => None,
        })
        .collect();
    for r in [3, 7, 11] {
        assert!(proposed.contains(&r), "node 3 did not propose in round {r}: {proposed:?}");
    }
    let voted_after = net
        .sent
        .iter()
        .any(|(from, m)| matches!(m, Message::Vote(v) if *from == 3 && v.round > 12));
    assert!(voted_after, "node 3 never voted again");
    assert!(net.commits[3].len() >= 12, "node 3 committed {} blocks", net.commits[3].len());
    let shortest = net.commits.iter().map(Vec::len).min().unwrap();
    for c in &net.commits {
        assert_eq!(c[..shortest], net.commits[3][..shortest]);
    }
}
