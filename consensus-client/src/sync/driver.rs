//! The client side of range sync: a task that notices the node is behind, fetches committed
//! blocks from peers' storage, verifies them and hands them to the node loop.
//!
//! - Peers' committed heights are polled (`Status`) every [`SyncConfig::status_interval`], and at
//!   once when the node loop reports a proposal far above the local committed height
//!   ([`SyncHandle::hint`]).
//! - When a peer is more than [`SyncConfig::trigger_gap`] blocks ahead, the task asks the
//!   highest peer for the next [`SyncConfig::batch`] heights above the local committed tip,
//!   verifies the answer on a blocking thread ([`super::verify::verify_range`]), sends the proven
//!   blocks to the node loop (which commits them through the core: persisted, then fed to the EL
//!   with `newPayload` in order and `forkchoiceUpdated`), waits until the committed tip has moved
//!   and the EL is at most one batch behind, and goes on until it is within one block of the
//!   peers (the last block's commit needs its child; the core's own fetch covers the rest).
//! - Claimed heights are not trusted ([`super::peers`]): the target is capped at the height
//!   backed by a QC the node verified ([`SyncHandle::certified`]) or by validators holding more
//!   than a third of the power, and peers whose claim is backed are asked first. A peer whose
//!   claim does not pan out (its answer fails verification, times out, fails, or proves
//!   nothing) takes a strike: it is reported to the network (scored down, banned at the
//!   threshold) and skipped for [`SyncConfig::retry_after`] doubled per consecutive strike (up
//!   to [`MAX_AVOID`]); a verified range clears its strikes. The next peer asked is the one
//!   ahead of us with the fewest strikes, then a backed claim, then the highest: two peers
//!   claiming a huge height and never answering cost at most one timeout each, not one per
//!   batch, and none while validators back a lower height. A busy peer is skipped for
//!   `retry_after` without a strike.
//! - Progress is logged: height, target, blocks per second.

use super::peers::{MAX_AVOID_MS, PeerBook};
use super::protocol::{MAX_SYNC_BLOCKS, SyncRequest, SyncResponse};
use super::verify::{Anchor, VerifiedRange, VerifyContext, verify_range};
use crate::network::{NetworkHandle, SYNC_REQUEST_TIMEOUT, SyncFailure};
use crate::types::{Height, ValidatorIndex};
use libp2p::PeerId;
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;
use tracing::{debug, info, instrument, warn};

/// How long the node loop may take to import a verified range.
const IMPORT_WAIT: Duration = Duration::from_secs(10);
/// How long a peer that sent an invalid range is not asked again.
const INVALID_AVOID: Duration = Duration::from_secs(120);
/// Longest a peer with strikes is skipped.
pub const MAX_AVOID: Duration = Duration::from_millis(MAX_AVOID_MS);
/// A sync session that starts more than this many blocks behind logs at info level (a
/// follower closes gaps of a block or two all the time; those log at debug level).
const LOUD_GAP: Height = 16;
/// Least time between two status polls of one peer, even when a hint asks for one at once.
const MIN_POLL_GAP: Duration = Duration::from_millis(200);

/// Tunables of range sync.
#[derive(Debug, Clone)]
pub struct SyncConfig {
    /// Start range sync when a peer's committed height is more than this above ours (smaller
    /// gaps are closed by the core's fetch of missing blocks).
    pub trigger_gap: Height,
    /// Heights asked for per request (at most [`MAX_SYNC_BLOCKS`]).
    pub batch: u64,
    /// How often peers' committed heights are polled.
    pub status_interval: Duration,
    /// How long a peer that failed to answer is skipped.
    pub retry_after: Duration,
}

impl Default for SyncConfig {
    fn default() -> Self {
        Self {
            trigger_gap: 16,
            batch: MAX_SYNC_BLOCKS,
            status_interval: Duration::from_secs(5),
            retry_after: Duration::from_secs(10),
        }
    }
}

/// What the sync task is started with.
#[derive(Debug)]
pub struct SyncParams {
    /// The network.
    pub net: NetworkHandle,
    /// Certificate verification against the genesis validator set.
    pub verify: VerifyContext,
    /// Tunables.
    pub config: SyncConfig,
    /// The local committed tip, kept current by the node loop.
    pub anchor: watch::Receiver<Anchor>,
    /// Height of the last committed block handed to the EL (kept by the executor task).
    pub el_delivered: Arc<AtomicU64>,
    /// Where verified ranges go (the node loop).
    pub ranges: mpsc::Sender<VerifiedRange>,
    /// The peer id of each validator, by index (their claims back heights by voting power).
    pub validator_peers: Vec<PeerId>,
}

/// Handle to the sync task; the task stops when the handle is dropped.
#[derive(Debug)]
pub struct SyncHandle {
    hint: watch::Sender<Height>,
    certified: watch::Sender<Height>,
}

impl SyncHandle {
    /// Reports a height seen on the network (a proposal's): if it is far above the local
    /// committed height, peers are polled at once.
    pub fn hint(&self, height: Height) {
        self.hint.send_if_modified(|h| {
            let higher = height > *h;
            if higher {
                *h = height;
            }
            higher
        });
    }

    /// Reports the height of a block certified by a QC the node verified: peers' claims up
    /// to it are backed.
    pub fn certified(&self, height: Height) {
        self.certified.send_if_modified(|h| {
            let higher = height > *h;
            if higher {
                *h = height;
            }
            higher
        });
    }
}

#[derive(Debug)]
struct Session {
    started: Instant,
    start_height: Height,
    loud: bool,
}

struct Syncer {
    p: SyncParams,
    hint: watch::Receiver<Height>,
    certified: watch::Receiver<Height>,
    peers: PeerBook<PeerId>,
    /// Voting power of each validator's peer id.
    powers: HashMap<PeerId, u64>,
    /// The book's clock starts here.
    origin: Instant,
    session: Option<Session>,
}

/// Starts the sync task.
pub fn spawn(params: SyncParams) -> SyncHandle {
    let (hint_tx, hint_rx) = watch::channel(0);
    let (certified_tx, certified_rx) = watch::channel(0);
    let validators = &params.verify.validators;
    let powers = params
        .validator_peers
        .iter()
        .enumerate()
        .filter_map(|(i, p)| {
            let v = validators.get(ValidatorIndex::try_from(i).ok()?)?;
            Some((*p, v.voting_power))
        })
        .collect();
    let syncer = Syncer {
        peers: PeerBook::new(validators.validity_power()),
        powers,
        origin: Instant::now(),
        p: params,
        hint: hint_rx,
        certified: certified_rx,
        session: None,
    };
    tokio::spawn(syncer.run());
    SyncHandle { hint: hint_tx, certified: certified_tx }
}

enum Step {
    Continue,
    Stop,
}

impl Syncer {
    fn local(&self) -> Anchor {
        *self.p.anchor.borrow()
    }

    /// Milliseconds on the book's clock.
    fn now_ms(&self) -> u64 {
        u64::try_from(self.origin.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    async fn run(mut self) {
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        loop {
            let force = tokio::select! {
                _ = tick.tick() => false,
                changed = self.hint.changed() => {
                    if changed.is_err() {
                        return;
                    }
                    let seen = *self.hint.borrow_and_update();
                    seen > self.local().height + self.p.config.trigger_gap
                }
            };
            if self.p.ranges.is_closed() {
                return;
            }
            self.poll_status(force).await;
            while let Some((peer, target)) = self.pick() {
                if let Step::Stop = self.fetch(peer, target).await {
                    return;
                }
                self.poll_status(false).await;
            }
            // No peer to ask: caught up, unless the peers ahead are only skipped for now.
            let height = self.local().height;
            if self.peers.best_claim() > height + 1 {
                continue;
            }
            if let Some(s) = self.session.take() {
                let blocks = height.saturating_sub(s.start_height);
                let secs = format!("{:.1}", s.started.elapsed().as_secs_f64());
                if s.loud {
                    info!(height, blocks, secs, "range sync caught up");
                } else {
                    debug!(height, blocks, secs, "range sync caught up");
                }
            }
        }
    }

    /// Asks connected peers whose height is stale (or all, if `force`) for their height.
    async fn poll_status(&mut self, force: bool) {
        let connected = self.p.net.connected_peers();
        self.peers.retain(|p| connected.contains(p));
        let interval = self.p.config.status_interval;
        let wait = if force { MIN_POLL_GAP } else { interval };
        let wait_ms = u64::try_from(wait.as_millis()).unwrap_or(u64::MAX);
        let now = self.now_ms();
        let due: Vec<PeerId> = connected
            .into_iter()
            .filter(|p| {
                self.peers
                    .get(p)
                    .and_then(|s| s.polled_ms)
                    .is_none_or(|t| now.saturating_sub(t) >= wait_ms)
            })
            .collect();
        if due.is_empty() {
            return;
        }
        let asks = due.iter().map(|peer| {
            let net = self.p.net.clone();
            let peer = *peer;
            async move {
                let answer = tokio::time::timeout(
                    Duration::from_secs(5),
                    net.sync(peer, SyncRequest::Status),
                )
                .await;
                (peer, answer)
            }
        });
        for (peer, answer) in futures::future::join_all(asks).await {
            let now = self.now_ms();
            let power = self.powers.get(&peer).copied().unwrap_or(0);
            let height = self.peers.get(&peer).map_or(0, |s| s.height);
            // A peer that does not answer keeps its last claim until it does.
            self.peers.claimed(peer, height, power, now);
            match answer {
                Ok(Ok(SyncResponse::Status { committed_height })) => {
                    self.peers.claimed(peer, committed_height, power, now);
                }
                Ok(Ok(other)) => {
                    if !matches!(other, SyncResponse::Busy) {
                        self.p.net.report(
                            peer,
                            format!("{} in answer to a status request", other.kind()),
                        );
                    }
                }
                Ok(Err(e)) => debug!(%peer, "sync status: {e}"),
                Err(_) => debug!(%peer, "sync status timed out"),
            }
        }
    }

    /// The peer to ask next and its height, if one is far enough ahead.
    fn pick(&mut self) -> Option<(PeerId, Height)> {
        let local = self.local().height;
        // Once syncing, go on until within one block (the tip's commit needs its child).
        let gap = if self.session.is_some() { 1 } else { self.p.config.trigger_gap };
        self.peers.certified(*self.certified.borrow());
        let now = self.now_ms();
        let pick = self.peers.pick(local, gap, now)?;
        let chosen = (pick.peer, pick.target);
        let best = pick.target;
        if self.session.is_none() {
            let loud = best > local + LOUD_GAP;
            if loud {
                info!(height = local, target = best, peer = %chosen.0,
                    "behind the network: range sync started");
            } else {
                debug!(height = local, target = best, peer = %chosen.0, "range sync started");
            }
            self.session = Some(Session { started: Instant::now(), start_height: local, loud });
        }
        Some(chosen)
    }

    fn avoid(&mut self, peer: PeerId, for_: Duration) {
        let until = self.now_ms().saturating_add(ms(for_));
        self.peers.avoid(peer, until);
    }

    /// A claim that did not pan out: scored down on the network, skipped for at least `min`
    /// and for `retry_after` doubled per consecutive strike.
    fn strike(&mut self, peer: PeerId, why: String, min: Duration) {
        let (retry, now) = (ms(self.p.config.retry_after), self.now_ms());
        let (strikes, avoid_ms) = self.peers.strike(peer, retry, ms(min), now);
        debug!(%peer, strikes, avoid_secs = avoid_ms / 1000, "sync peer struck: {why}");
        self.p.net.report(peer, why);
    }

    #[instrument(skip(self), fields(from = self.local().height + 1))]
    async fn fetch(&mut self, peer: PeerId, target: Height) -> Step {
        let anchor = self.local();
        let batch = self.p.config.batch.clamp(1, MAX_SYNC_BLOCKS);
        let to_height = target.min(anchor.height + batch);
        let request = SyncRequest::Blocks { from_height: anchor.height + 1, to_height };
        let asked = Instant::now();
        let answer = tokio::time::timeout(
            SYNC_REQUEST_TIMEOUT + Duration::from_secs(5),
            self.p.net.sync(peer, request),
        )
        .await;
        let retry = self.p.config.retry_after;
        let items = match answer {
            Ok(Ok(SyncResponse::Blocks(items))) => items,
            Ok(Ok(SyncResponse::Busy)) => {
                debug!(%peer, "peer busy, trying another");
                self.avoid(peer, retry);
                return Step::Continue;
            }
            Ok(Ok(other)) => {
                let why = format!("{} in answer to a blocks request", other.kind());
                warn!(%peer, "invalid sync response: {why}");
                self.strike(peer, why, INVALID_AVOID);
                return Step::Continue;
            }
            Ok(Err(SyncFailure::Stopped)) => return Step::Stop,
            Ok(Err(e)) => {
                warn!(%peer, "sync request failed, trying another peer: {e}");
                self.strike(
                    peer,
                    format!("sync request to a peer claiming height {target} failed: {e}"),
                    retry,
                );
                return Step::Continue;
            }
            Err(_) => {
                warn!(%peer, "sync request timed out, trying another peer");
                self.strike(
                    peer,
                    format!("no answer to a sync request (claimed height {target})"),
                    retry,
                );
                return Step::Continue;
            }
        };
        let received = items.len();
        let ctx = self.p.verify.clone();
        let max = usize::try_from(to_height - anchor.height).unwrap_or(usize::MAX);
        let verified =
            tokio::task::spawn_blocking(move || verify_range(&anchor, items, max, &ctx)).await;
        let range = match verified {
            Ok(Ok(range)) => range,
            Ok(Err(e)) => {
                warn!(%peer, from = anchor.height + 1, "refused a sync range: {e}");
                self.strike(peer, format!("invalid sync range: {e}"), INVALID_AVOID);
                return Step::Continue;
            }
            Err(e) => {
                warn!("sync verification task failed: {e}");
                return Step::Continue;
            }
        };
        let Some(last) = range.last_height() else {
            // Nothing provable (the peer's index ends, or its last blocks lack a two-chain):
            // take its height as ours until the next poll.
            debug!(%peer, received, unproven = range.unproven, "nothing provable in the sync range");
            self.peers.entry(peer).height = anchor.height;
            if received == 0 {
                // It claimed to be ahead and has nothing: the claim did not pan out.
                self.strike(
                    peer,
                    format!("no blocks above {} despite claiming height {target}", anchor.height),
                    retry,
                );
            }
            return Step::Continue;
        };
        self.peers.delivered(peer);
        let count = range.blocks.len();
        if self.p.ranges.send(range).await.is_err() {
            return Step::Stop;
        }
        self.wait_imported(last).await;
        self.wait_for_el().await;
        let height = self.local().height;
        let rate = self.session.as_ref().map_or(0.0, |s| {
            let secs = s.started.elapsed().as_secs_f64();
            if secs > 0.0 { height.saturating_sub(s.start_height) as f64 / secs } else { 0.0 }
        });
        let took_ms = asked.elapsed().as_millis() as u64;
        let blocks_per_sec = format!("{rate:.1}");
        if self.session.as_ref().is_some_and(|s| s.loud) {
            info!(height, target, blocks = count, from = %peer, took_ms, blocks_per_sec,
                "range sync progress");
        } else {
            debug!(height, target, blocks = count, from = %peer, took_ms, blocks_per_sec,
                "range sync progress");
        }
        Step::Continue
    }

    /// Waits until the node loop has committed up to `height` (or gives up after a while: it
    /// may have refused the range, and the next round starts from wherever the tip is).
    async fn wait_imported(&mut self, height: Height) {
        let deadline = Instant::now() + IMPORT_WAIT;
        while self.local().height < height {
            match tokio::time::timeout_at(deadline, self.p.anchor.changed()).await {
                Ok(Ok(())) => {}
                Ok(Err(_)) => return,
                Err(_) => {
                    warn!(
                        height,
                        committed = self.local().height,
                        "synced range not imported in time"
                    );
                    return;
                }
            }
        }
    }

    /// Waits until the EL is at most one batch behind the committed tip, so that the
    /// executor's queue stays bounded.
    async fn wait_for_el(&self) {
        let mut last_log = Instant::now();
        loop {
            let delivered = self.p.el_delivered.load(Ordering::Relaxed);
            let committed = self.local().height;
            if delivered + self.p.config.batch >= committed || self.p.ranges.is_closed() {
                return;
            }
            if last_log.elapsed() >= Duration::from_secs(10) {
                info!(delivered, committed, "range sync waiting for the execution client");
                last_log = Instant::now();
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// A duration in whole milliseconds (saturating).
fn ms(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}
