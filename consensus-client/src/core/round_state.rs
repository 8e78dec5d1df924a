//! Collecting votes into QCs and timeouts into TCs, with deduplication and equivocation
//! detection.
//!
//! Callers verify a signature before adding it. Each signer counts once per round: an identical
//! repeat is a duplicate; a different message from the same signer in the same round is
//! equivocation and is reported (the first message is kept, the second never counts). A
//! certificate is formed exactly once, when the accumulated voting power first reaches quorum.
//! Only rounds within a small window around the current round are held, so memory is bounded.

use crate::types::{
    BlockId, QuorumCert, Round, Timeout, TimeoutCert, ValidatorIndex, ValidatorSet, Vote,
};
use std::collections::{BTreeMap, HashMap};

/// What adding a vote did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VoteOutcome {
    /// Counted; no quorum yet.
    Added,
    /// The same vote was already counted.
    Duplicate,
    /// The voter already voted for another block in this round (that vote is returned).
    Equivocation(Box<Vote>),
    /// Counted, and it completed this QC.
    Certified(QuorumCert),
}

#[derive(Debug, Default)]
struct RoundVotes {
    by_voter: HashMap<ValidatorIndex, Vote>,
    by_block: HashMap<BlockId, u64>,
    certified: bool,
}

/// Votes of recent rounds.
#[derive(Debug, Default)]
pub struct VoteAggregator {
    rounds: BTreeMap<Round, RoundVotes>,
}

impl VoteAggregator {
    /// Whether an identical vote is already held (cheap check before verifying a signature).
    pub fn is_duplicate(&self, vote: &Vote) -> bool {
        self.rounds
            .get(&vote.round)
            .and_then(|r| r.by_voter.get(&vote.voter))
            .is_some_and(|v| v == vote)
    }

    /// Adds a verified vote.
    pub fn add(&mut self, vote: Vote, validators: &ValidatorSet) -> VoteOutcome {
        let round = self.rounds.entry(vote.round).or_default();
        if let Some(prev) = round.by_voter.get(&vote.voter) {
            return if *prev == vote {
                VoteOutcome::Duplicate
            } else {
                VoteOutcome::Equivocation(Box::new(prev.clone()))
            };
        }
        let power = round.by_block.entry(vote.block_id).or_default();
        *power += validators.power(vote.voter);
        let reached = *power >= validators.quorum_power();
        let (block_id, r) = (vote.block_id, vote.round);
        round.by_voter.insert(vote.voter, vote);
        if reached && !round.certified {
            round.certified = true;
            let mut signatures: Vec<_> = round
                .by_voter
                .values()
                .filter(|v| v.block_id == block_id)
                .map(|v| (v.voter, v.signature))
                .collect();
            signatures.sort_by_key(|(i, _)| *i);
            return VoteOutcome::Certified(QuorumCert { block_id, round: r, signatures });
        }
        VoteOutcome::Added
    }

    /// Drops rounds below `round`.
    pub fn prune_below(&mut self, round: Round) {
        self.rounds = self.rounds.split_off(&round);
    }
}

/// What adding a timeout did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TimeoutOutcome {
    /// Counted; the voting power that has timed out this round so far.
    Added {
        /// Accumulated power for the round.
        power: u64,
    },
    /// The same timeout was already counted.
    Duplicate,
    /// The signer already sent a different timeout for this round (returned).
    Equivocation(Box<Timeout>),
    /// Counted, and it completed this TC.
    Certified(TimeoutCert),
}

#[derive(Debug, Default)]
struct RoundTimeouts {
    by_signer: HashMap<ValidatorIndex, Timeout>,
    power: u64,
    certified: bool,
}

/// Timeouts of recent rounds.
#[derive(Debug, Default)]
pub struct TimeoutAggregator {
    rounds: BTreeMap<Round, RoundTimeouts>,
}

impl TimeoutAggregator {
    /// Whether an identical timeout is already held (the unsigned `high_tc` is ignored).
    pub fn is_duplicate(&self, t: &Timeout) -> bool {
        self.rounds
            .get(&t.round)
            .and_then(|r| r.by_signer.get(&t.signer))
            .is_some_and(|p| p.signature == t.signature && p.high_qc.round == t.high_qc.round)
    }

    /// Voting power that timed out in `round`.
    pub fn power(&self, round: Round) -> u64 {
        self.rounds.get(&round).map_or(0, |r| r.power)
    }

    /// Adds a verified timeout.
    pub fn add(&mut self, t: Timeout, validators: &ValidatorSet) -> TimeoutOutcome {
        let round = self.rounds.entry(t.round).or_default();
        if let Some(prev) = round.by_signer.get(&t.signer) {
            return if prev.signature == t.signature && prev.high_qc.round == t.high_qc.round {
                TimeoutOutcome::Duplicate
            } else {
                TimeoutOutcome::Equivocation(Box::new(prev.clone()))
            };
        }
        round.power += validators.power(t.signer);
        let r = t.round;
        round.by_signer.insert(t.signer, t);
        if round.power >= validators.quorum_power() && !round.certified {
            round.certified = true;
            let mut signatures: Vec<_> = round
                .by_signer
                .values()
                .map(|t| (t.signer, t.high_qc.round, t.signature))
                .collect();
            signatures.sort_by_key(|(i, _, _)| *i);
            let high_qc = round
                .by_signer
                .values()
                .map(|t| &t.high_qc)
                .max_by_key(|qc| qc.round)
                .cloned()
                .unwrap_or_else(|| QuorumCert {
                    block_id: BlockId::ZERO,
                    round: 0,
                    signatures: vec![],
                });
            return TimeoutOutcome::Certified(TimeoutCert { round: r, high_qc, signatures });
        }
        TimeoutOutcome::Added { power: round.power }
    }

    /// Drops rounds below `round`.
    pub fn prune_below(&mut self, round: Round) {
        self.rounds = self.rounds.split_off(&round);
    }
}

#[cfg(test)]
mod tests;
