//! Which peer range sync asks next, and for how much: a sans-IO book of peers' claimed
//! committed heights and of the claims that did not pan out. The sync task ([`super::driver`])
//! and the simulator's range sync use the same book, so the policy is tested under a seed.
//!
//! - Claimed heights are not trusted. A height is *backed* when a QC this node verified proves
//!   it ([`PeerBook::certified`], reported by the node loop) or when validators holding more
//!   than a third of the voting power (at least one honest validator) claim at least that
//!   much. A claim above the backed height does not set the sync target while a backed target
//!   ahead of us exists: the target is capped at the backed height, and peers whose claim is
//!   backed are asked before those whose claim is not. Without any backed height ahead of us
//!   (a follower that hears from no validator), the highest claim is the target, as before.
//! - A peer whose claim does not pan out (an invalid answer, a time-out, a failure, nothing
//!   provable) takes a strike and is skipped for `retry_after` doubled per consecutive strike
//!   (at least `min`, at most [`MAX_AVOID_MS`]); a verified range clears its strikes. Peers
//!   with the fewest strikes are asked first.
//!
//! Times are milliseconds on any monotonic clock the caller chooses.

use crate::types::Height;
use std::collections::HashMap;
use std::hash::Hash;

/// Longest a peer with strikes is skipped, in milliseconds.
pub const MAX_AVOID_MS: u64 = 600_000;

/// What the book knows of one peer.
#[derive(Debug, Default, Clone)]
pub struct PeerState {
    /// Its claimed committed height.
    pub height: Height,
    /// Its validator voting power (0 for a non-validator).
    pub power: u64,
    /// When its height was last asked.
    pub polled_ms: Option<u64>,
    /// Not asked before this time.
    pub avoid_until_ms: Option<u64>,
    /// Consecutive claims that did not pan out.
    pub strikes: u32,
}

/// The next request: whom to ask, up to which height.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pick<K> {
    /// The peer.
    pub peer: K,
    /// The height to sync to (its claim, capped at the backed height when one is ahead).
    pub target: Height,
    /// Whether `target` is backed by a verified QC or by validators.
    pub backed: bool,
}

/// Peers' claims and strikes (see the module docs).
#[derive(Debug)]
pub struct PeerBook<K> {
    peers: HashMap<K, PeerState>,
    /// Voting power that is more than a third of the total.
    validity_power: u64,
    /// Highest height proven by a QC this node verified.
    certified: Height,
    turn: usize,
}

impl<K: Copy + Eq + Hash + Ord> PeerBook<K> {
    /// An empty book for a validator set whose `validity_power` is more than a third of its
    /// total power.
    pub fn new(validity_power: u64) -> Self {
        Self { peers: HashMap::new(), validity_power, certified: 0, turn: 0 }
    }

    /// The state of a peer (created empty).
    pub fn entry(&mut self, peer: K) -> &mut PeerState {
        self.peers.entry(peer).or_default()
    }

    /// The state of a peer, if known.
    pub fn get(&self, peer: &K) -> Option<&PeerState> {
        self.peers.get(peer)
    }

    /// Keeps only the peers for which `keep` holds (the connected ones).
    pub fn retain(&mut self, mut keep: impl FnMut(&K) -> bool) {
        self.peers.retain(|k, _| keep(k));
    }

    /// Records a peer's answer to a status request.
    pub fn claimed(&mut self, peer: K, height: Height, power: u64, now_ms: u64) {
        let s = self.entry(peer);
        s.height = height;
        s.power = power;
        s.polled_ms = Some(now_ms);
    }

    /// Records a height proven by a QC this node verified (only ever raised).
    pub fn certified(&mut self, height: Height) {
        self.certified = self.certified.max(height);
    }

    /// The highest backed height: proven by a verified QC, or claimed (at least) by validators
    /// holding more than a third of the voting power.
    pub fn backed_height(&self) -> Height {
        let mut claims: Vec<(Height, u64)> =
            self.peers.values().filter(|s| s.power > 0).map(|s| (s.height, s.power)).collect();
        claims.sort_unstable_by_key(|c| std::cmp::Reverse(c.0));
        let mut power = 0;
        let mut by_validators = 0;
        for (h, p) in claims {
            power += p;
            if power >= self.validity_power {
                by_validators = h;
                break;
            }
        }
        self.certified.max(by_validators)
    }

    /// The highest claim of any peer.
    pub fn best_claim(&self) -> Height {
        self.peers.values().map(|s| s.height).max().unwrap_or(0)
    }

    /// The peer to ask next for heights above `local`, if one not skipped claims more than
    /// `gap` blocks above it: the fewest strikes first, then backed claims before unbacked
    /// ones, then the highest claim (ties in turn).
    pub fn pick(&mut self, local: Height, gap: Height, now_ms: u64) -> Option<Pick<K>> {
        let backed = self.backed_height();
        let mut candidates: Vec<(K, Height, u32)> = self
            .peers
            .iter()
            .filter(|(_, s)| s.height > local + gap && s.avoid_until_ms.is_none_or(|t| t <= now_ms))
            .map(|(p, s)| (*p, s.height, s.strikes))
            .collect();
        let fewest = candidates.iter().map(|c| c.2).min()?;
        candidates.retain(|c| c.2 == fewest);
        // A backed height ahead of us caps what unbacked claims may drive.
        let cap = (backed > local + gap).then_some(backed);
        if cap.is_some() && candidates.iter().any(|c| c.1 <= backed) {
            candidates.retain(|c| c.1 <= backed);
        }
        let best = candidates.iter().map(|c| c.1).max()?;
        candidates.retain(|c| c.1 == best);
        candidates.sort_by_key(|c| c.0);
        self.turn = self.turn.wrapping_add(1);
        let (peer, height, _) = candidates[self.turn % candidates.len()];
        let target = cap.map_or(height, |b| height.min(b));
        Some(Pick { peer, target, backed: target <= backed })
    }

    /// Skips a peer until `until_ms` without a strike (it was busy).
    pub fn avoid(&mut self, peer: K, until_ms: u64) {
        self.entry(peer).avoid_until_ms = Some(until_ms);
    }

    /// A claim that did not pan out: the peer is skipped for at least `min_ms` and for
    /// `retry_ms` doubled per consecutive strike (at most [`MAX_AVOID_MS`]). Returns the
    /// strikes and the time skipped.
    pub fn strike(&mut self, peer: K, retry_ms: u64, min_ms: u64, now_ms: u64) -> (u32, u64) {
        let s = self.entry(peer);
        s.strikes = s.strikes.saturating_add(1);
        let backoff = retry_ms.saturating_mul(1u64 << s.strikes.saturating_sub(1).min(16));
        let avoid = backoff.max(min_ms).min(MAX_AVOID_MS);
        s.avoid_until_ms = Some(now_ms.saturating_add(avoid));
        (s.strikes, avoid)
    }

    /// A verified range from the peer: its strikes are cleared.
    pub fn delivered(&mut self, peer: K) {
        self.entry(peer).strikes = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Four unit-power validators (validity power 2) and two non-validator peers.
    fn book() -> PeerBook<u8> {
        PeerBook::new(2)
    }

    #[test]
    fn claims_of_more_than_a_third_of_the_power_are_backed() {
        let mut b = book();
        b.claimed(0, 40, 1, 0);
        assert_eq!(b.backed_height(), 0, "one validator is not more than a third");
        b.claimed(1, 38, 1, 0);
        assert_eq!(b.backed_height(), 38);
        b.claimed(9, 1_000_000, 0, 0);
        assert_eq!(b.backed_height(), 38, "a non-validator backs nothing");
        b.certified(45);
        assert_eq!(b.backed_height(), 45, "a verified QC backs its height");
    }

    #[test]
    fn unbacked_huge_claims_neither_set_the_target_nor_go_first() {
        let mut b = book();
        b.claimed(0, 40, 1, 0);
        b.claimed(1, 40, 1, 0);
        b.claimed(8, 1_000_000, 0, 0);
        b.claimed(9, 1_000_000, 1, 0);
        for now in 0..10 {
            let p = b.pick(0, 4, now).unwrap();
            assert!(p.peer == 0 || p.peer == 1, "asked {} first", p.peer);
            assert_eq!((p.target, p.backed), (40, true));
        }
    }

    #[test]
    fn without_a_backed_height_the_highest_claim_leads_and_strikes_push_it_back() {
        let mut b = book();
        b.claimed(0, 40, 1, 0);
        b.claimed(8, 1_000_000, 0, 0);
        let p = b.pick(0, 4, 0).unwrap();
        assert_eq!((p.peer, p.target, p.backed), (8, 1_000_000, false));
        assert_eq!(b.strike(8, 1_000, 1_000, 0), (1, 1_000));
        let p = b.pick(0, 4, 10).unwrap();
        assert_eq!((p.peer, p.target), (0, 40));
        // Once skipped time is over, the peer with fewer strikes still goes first.
        let p = b.pick(0, 4, 5_000).unwrap();
        assert_eq!(p.peer, 0);
        assert_eq!(b.strike(8, 1_000, 1_000, 0), (2, 2_000));
        b.delivered(8);
        assert_eq!(b.get(&8).unwrap().strikes, 0);
    }

    #[test]
    fn nothing_is_picked_within_the_gap() {
        let mut b = book();
        b.claimed(0, 12, 1, 0);
        b.claimed(1, 12, 1, 0);
        assert_eq!(b.pick(10, 4, 0), None);
        assert_eq!(b.pick(10, 1, 0).map(|p| p.target), Some(12));
    }
}
