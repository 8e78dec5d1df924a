//! Pacemaker: how long a round may last before this node times out.
//!
//! The duration of round r is `base · 1.5^k`, capped at `max`, where
//! `k = r − (highest QC round + 1)` is the number of rounds since the last round that produced a QC. Progress (a new QC)
//! therefore resets the back-off to `base`; consecutive timeouts grow it. The value is a pure
//! function of the round and the highest QC, so a restarted node computes the same durations.

use crate::types::Round;

/// Round-timer policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pacemaker {
    /// Duration of a round that directly follows a QC, in milliseconds.
    pub base_ms: u64,
    /// Upper bound of a round's duration, in milliseconds.
    pub max_ms: u64,
}

impl Pacemaker {
    /// Milliseconds before round `round` times out, given the highest QC round.
    pub fn round_duration_ms(&self, round: Round, high_qc_round: Round) -> u64 {
        let k = round.saturating_sub(high_qc_round.saturating_add(1));
        let mut d = self.base_ms.min(self.max_ms);
        for _ in 0..k {
            // ×1.5, stopping as soon as the cap is reached (bounded loop: at most ~64 steps).
            d = d.saturating_add(d / 2);
            if d >= self.max_ms {
                return self.max_ms;
            }
        }
        d
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backs_off_by_one_and_a_half_and_caps() {
        let p = Pacemaker { base_ms: 1000, max_ms: 10_000 };
        // round right after the QC: base
        assert_eq!(p.round_duration_ms(5, 4), 1000);
        assert_eq!(p.round_duration_ms(6, 4), 1500);
        assert_eq!(p.round_duration_ms(7, 4), 2250);
        assert_eq!(p.round_duration_ms(8, 4), 3375);
        assert_eq!(p.round_duration_ms(11, 4), 10_000);
        assert_eq!(p.round_duration_ms(u64::MAX, 0), 10_000);
        // a new QC resets
        assert_eq!(p.round_duration_ms(11, 10), 1000);
        // a QC at or above the round never shortens below base
        assert_eq!(p.round_duration_ms(3, 9), 1000);
    }
}
