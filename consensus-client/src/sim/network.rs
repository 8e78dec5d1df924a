//! The simulated network: which copies of a message arrive, and after what delay.
//!
//! Before GST a message may be lost, duplicated, delayed up to the scenario's maximum (which
//! reorders messages), or dropped by an active partition. From GST on every message arrives
//! within Δ (`post_gst_max_delay_ms`); duplicates still happen (they are harmless by design).

use super::Scenario;
use crate::types::ValidatorIndex;
use rand::Rng;
use rand::rngs::StdRng;

/// Delays (ms) of the copies of a message sent at `t` (ms after start) that arrive.
pub fn deliveries(
    rng: &mut StdRng,
    sc: &Scenario,
    t: u64,
    from: ValidatorIndex,
    to: ValidatorIndex,
) -> Vec<u64> {
    let before_gst = t < sc.gst_ms;
    if before_gst {
        if let Some((side, start, end)) = &sc.partition
            && t >= *start
            && t < *end
            && side.contains(&from) != side.contains(&to)
        {
            return Vec::new();
        }
        if rng.gen_bool(sc.loss) {
            return Vec::new();
        }
    }
    let max = if before_gst { sc.pre_gst_max_delay_ms } else { sc.post_gst_max_delay_ms };
    let mut out = vec![rng.gen_range(1..=max)];
    if rng.gen_bool(sc.duplication) {
        out.push(rng.gen_range(1..=max));
    }
    out
}
