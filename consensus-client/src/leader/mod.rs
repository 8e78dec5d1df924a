//! Leader election: which validator proposes in a round.
//!
//! Behind a trait so reputation-based election (leaders that failed recently are skipped) can
//! replace round-robin. Every honest node must compute the same leader for a round from the
//! same inputs; an implementation must therefore be a pure function of the round and of data
//! all nodes agree on (the validator set, committed history).

use crate::types::{Round, ValidatorIndex};

/// Chooses the leader of each round.
pub trait LeaderElection: Send {
    /// The proposer of `round`.
    fn leader(&self, round: Round) -> ValidatorIndex;
}

/// Round-robin over the validator set: round r is led by validator `r mod n`.
#[derive(Debug, Clone)]
pub struct RoundRobin {
    n: u64,
}

impl RoundRobin {
    /// Round-robin over `n` validators (`n` ≥ 1; 0 is treated as 1).
    pub fn new(n: usize) -> Self {
        Self { n: (n as u64).max(1) }
    }
}

impl LeaderElection for RoundRobin {
    fn leader(&self, round: Round) -> ValidatorIndex {
        // n ≤ u16::MAX + 1 (validator indices are u16), so the remainder fits.
        (round % self.n) as ValidatorIndex
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_robin_rotates() {
        let rr = RoundRobin::new(4);
        let leaders: Vec<_> = (0..9).map(|r| rr.leader(r)).collect();
        assert_eq!(leaders, vec![0, 1, 2, 3, 0, 1, 2, 3, 0]);
        assert_eq!(RoundRobin::new(0).leader(7), 0);
    }
}
