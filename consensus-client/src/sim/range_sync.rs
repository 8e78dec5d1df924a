//! Range sync in the simulator: what the real node's sync task ([`crate::sync::driver`]) does,
//! on virtual time and the simulated network.
//!
//! Every second each node asks the validators it can reach for their committed height (read
//! from their committed index, the one the real [`crate::sync::SyncServer`] serves) and picks
//! the peer and target with the same [`PeerBook`] as the real task (claims backed by a QC or by
//! more than a third of the power first, strikes and back-off). When a peer is more than
//! [`TRIGGER_GAP`] blocks ahead it asks it for the next heights; the answer is encoded as a
//! [`SyncResponse`], crosses the network (lost in a partition or to a crashed peer: the request
//! times out after [`SYNC_REQUEST_TIMEOUT_MS`]), is verified with [`verify_range`] against the
//! tip at request time and handed to the core as `Event::Synced`. Byzantine fetch servers
//! ([`Byzantine::BadFetchServer`]) claim a far higher height than they have and serve altered
//! blocks. This is how a node that was away longer than the peers' retained window (blocks the
//! core's block fetch can no longer find) catches up.

use super::*;
use crate::storage::CommittedChain;
use crate::sync::peers::PeerBook;
use crate::sync::protocol::{MAX_SYNC_BLOCKS, SYNC_RESPONSE_SOFT_BYTES, SyncResponse};
use crate::sync::{Anchor, VerifyContext, verify_range};

/// A peer this many blocks ahead starts a sync session (the real default).
pub const TRIGGER_GAP: Height = 16;
/// How often a node polls and picks.
pub const TICK_MS: u64 = 1_000;
/// How long an unanswered request takes to fail (the real request time-out).
pub const SYNC_REQUEST_TIMEOUT_MS: u64 = 20_000;
/// How long a peer that failed is skipped at first (the real `retry_after`).
const RETRY_MS: u64 = 10_000;
/// How long a peer that sent an invalid range is skipped.
const INVALID_AVOID_MS: u64 = 120_000;
/// How much higher than its real tip a byzantine fetch server claims to be.
const LIE: Height = 1_000_000;

/// One node's range-sync state (lost when the node restarts, like the task).
#[derive(Debug)]
pub struct RangeSync {
    book: PeerBook<ValidatorIndex>,
    /// The outstanding request: peer, the tip it extends, most blocks asked.
    pending: Option<(ValidatorIndex, Anchor, usize)>,
    /// In a session: go on until within one block.
    session: bool,
}

impl RangeSync {
    /// A fresh state for a validator set with this validity power.
    pub fn new(validity_power: u64) -> Self {
        Self { book: PeerBook::new(validity_power), pending: None, session: false }
    }
}

impl Sim {
    /// The instance that answers `from`'s requests to validator `to` (one of a twin pair).
    fn route(&self, from: ValidatorIndex, to: ValidatorIndex) -> Option<usize> {
        let targets = &self.routes[usize::from(to)];
        (!targets.is_empty()).then(|| targets[usize::from(from) % targets.len()])
    }

    /// Whether one message from `from` to `to` arrives now (partition, loss), and its delay.
    fn one_way(&mut self, from: ValidatorIndex, to: ValidatorIndex) -> Option<u64> {
        network::deliveries(&mut self.rng, &self.sc, self.now - T0_MS, from, to).first().copied()
    }

    /// The periodic poll (`periodic`: reschedule) or the next step of a session.
    pub(super) fn sync_tick(&mut self, inst: usize, periodic: bool) -> Result<(), String> {
        if !self.range_sync {
            return Ok(());
        }
        let incarnation = self.instances[inst].incarnation;
        if self.instances[inst].core.is_none() {
            return Ok(());
        }
        if periodic {
            self.schedule(self.now + TICK_MS, SimEvent::SyncTick { inst, incarnation });
        }
        if self.instances[inst].sync.pending.is_some() {
            return Ok(());
        }
        let Some(core) = self.instances[inst].core.as_ref() else { return Ok(()) };
        let index = self.instances[inst].index;
        let local = core.committed_height();
        let certified = core.certified_height();
        let anchor = {
            let id = core.committed_id();
            let Some(tip) = core.block_store().get(&id) else { return Ok(()) };
            Anchor::with_id(id, tip)
        };
        // Status answers from the peers that can be reached now.
        let mut claims = Vec::new();
        for v in 0..self.sc.n as ValidatorIndex {
            if v == index {
                continue;
            }
            let Some(peer) = self.route(index, v) else { continue };
            if self.instances[peer].core.is_none()
                || self.one_way(index, v).is_none()
                || self.one_way(v, index).is_none()
            {
                continue;
            }
            let tip = self.instances[peer]
                .served
                .committed_tip()
                .map_err(|e| format!("node {v}: committed index: {e}"))?;
            let claim =
                if self.byz(v) == Some(Byzantine::BadFetchServer) { tip + LIE } else { tip };
            claims.push((v, claim, self.validators.get(v).map_or(0, |x| x.voting_power)));
        }
        let now = self.now;
        let sync = &mut self.instances[inst].sync;
        for (v, claim, power) in claims {
            sync.book.claimed(v, claim, power, now);
        }
        sync.book.certified(certified);
        let gap = if sync.session { 1 } else { TRIGGER_GAP };
        let Some(pick) = sync.book.pick(local, gap, now) else {
            sync.session = false;
            return Ok(());
        };
        sync.session = true;
        let to_height = pick.target.min(local + MAX_SYNC_BLOCKS);
        let count = usize::try_from(to_height - local).unwrap_or(usize::MAX);
        sync.pending = Some((pick.peer, anchor, count));
        self.sync_request(inst, incarnation, pick.peer, local + 1, count)
    }

    /// Sends a blocks request to `peer` and schedules its answer (or its time-out).
    fn sync_request(
        &mut self,
        inst: usize,
        incarnation: u64,
        peer: ValidatorIndex,
        from_height: Height,
        count: usize,
    ) -> Result<(), String> {
        let index = self.instances[inst].index;
        let there = self.one_way(index, peer);
        let back = self.one_way(peer, index);
        let server = self.route(index, peer).filter(|s| self.instances[*s].core.is_some());
        let (Some(there), Some(back), Some(server)) = (there, back, server) else {
            let at = self.now + SYNC_REQUEST_TIMEOUT_MS;
            self.schedule(at, SimEvent::SyncAnswer { inst, incarnation, peer, bytes: None });
            return Ok(());
        };
        let mut blocks = self.instances[server]
            .served
            .committed_range(from_height, count, SYNC_RESPONSE_SOFT_BYTES)
            .map_err(|e| format!("node {peer}: committed range: {e}"))?;
        if self.byz(peer) == Some(Byzantine::BadFetchServer) {
            for c in &mut blocks {
                c.block.payload.body.push(0xBD);
            }
        }
        let bytes = SyncResponse::Blocks(blocks).encode();
        let bytes =
            (bytes.len() <= crate::sync::protocol::MAX_SYNC_RESPONSE_BYTES).then_some(bytes);
        let at = self.now + there + back;
        self.schedule(at, SimEvent::SyncAnswer { inst, incarnation, peer, bytes });
        Ok(())
    }

    /// An answer (or a time-out, `None`) to a blocks request.
    pub(super) fn sync_answer(
        &mut self,
        inst: usize,
        peer: ValidatorIndex,
        bytes: Option<Vec<u8>>,
    ) -> Result<(), String> {
        let now = self.now;
        let Some((asked, anchor, max)) = self.instances[inst].sync.pending.take() else {
            return Ok(());
        };
        if asked != peer {
            return Ok(());
        }
        let ctx = VerifyContext {
            chain_id: 7,
            genesis_id: self.genesis.id(),
            validators: self.validators.clone(),
            verifier: self.verifier.clone(),
        };
        let items = match bytes.map(|b| SyncResponse::decode(&b)) {
            Some(Ok(SyncResponse::Blocks(items))) => items,
            _ => {
                self.instances[inst].sync.book.strike(peer, RETRY_MS, RETRY_MS, now);
                return self.sync_tick(inst, false);
            }
        };
        let received = items.len();
        let book = &mut self.instances[inst].sync.book;
        match verify_range(&anchor, items, max, &ctx) {
            Err(_) => {
                book.strike(peer, RETRY_MS, INVALID_AVOID_MS, now);
            }
            Ok(range) if range.blocks.is_empty() => {
                book.entry(peer).height = anchor.height;
                if received == 0 {
                    book.strike(peer, RETRY_MS, RETRY_MS, now);
                }
            }
            Ok(range) => {
                book.delivered(peer);
                self.synced_blocks += range.blocks.len() as u64;
                self.step(inst, Event::Synced { blocks: range.blocks })?;
            }
        }
        self.sync_tick(inst, false)
    }
}
