//! The simulated network: which copies of a message arrive, and after what delay.
//!
//! Before GST a message may be lost, duplicated, delayed up to the scenario's maximum (which
//! reorders messages), or dropped by an active partition. From GST on every message arrives
//! within Δ (`post_gst_max_delay_ms`); duplicates still happen (they are harmless by design).
//!
//! On top of that the simulator (`Sim::publish`, `Sim::send`) models what libp2p does to the
//! real node's messages: gossip (broadcasts) is de-duplicated by content for
//! [`DEDUP_WINDOW_MS`] at the publisher (a re-publish fails as `Duplicate`) and at every receiver
//! ([`DuplicateCache`]); direct sends are not. A message above the size limit is refused: a
//! publish fails as `MessageTooLarge`, a direct frame is refused by the receiver's codec.

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

/// How long gossipsub remembers a message id (`duplicate_cache_time`, 60 s by default): a
/// byte-identical message published or received again within it is a duplicate.
pub const DEDUP_WINDOW_MS: u64 = 60_000;

/// The gossip message id: the real network's `message_id_fn` (SHA-256 of the data).
pub fn message_id(bytes: &[u8]) -> [u8; 32] {
    use sha2::{Digest, Sha256};
    Sha256::digest(bytes).into()
}

/// One node's gossipsub duplicate cache (in memory: a restart empties it). Like gossipsub's
/// `DuplicateCache`, an entry expires [`DEDUP_WINDOW_MS`] after it was first inserted; seeing
/// the message again does not extend it.
#[derive(Debug, Default)]
pub struct DuplicateCache {
    first_seen: std::collections::HashMap<[u8; 32], u64>,
}

impl DuplicateCache {
    /// Whether `id` was seen within the window before `now`.
    pub fn contains(&self, id: &[u8; 32], now: u64) -> bool {
        self.first_seen.get(id).is_some_and(|t| now < t + DEDUP_WINDOW_MS)
    }

    /// Records `id` at `now`; `false` if it was already there (a duplicate).
    pub fn insert(&mut self, id: [u8; 32], now: u64) -> bool {
        if self.contains(&id, now) {
            return false;
        }
        // Expired entries go when the cache grows, as gossipsub drops them on insert.
        if self.first_seen.len() >= 4096 {
            self.first_seen.retain(|_, t| now < *t + DEDUP_WINDOW_MS);
        }
        self.first_seen.insert(id, now);
        true
    }
}
