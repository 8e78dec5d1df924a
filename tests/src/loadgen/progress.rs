//! Counters shared by the senders and the commit tracker during the timed phase, per lane, so
//! each lane's in-flight window (and with it each sender's share of a node's pool) stays bounded
//! even when one lane runs ahead of the others.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

/// One lane's counts.
#[derive(Debug, Default)]
struct LaneCounts {
    submitted: AtomicUsize,
    rejected: AtomicUsize,
    committed: AtomicUsize,
}

impl LaneCounts {
    fn outstanding(&self) -> usize {
        let submitted = self.submitted.load(Ordering::Relaxed);
        let rejected = self.rejected.load(Ordering::Relaxed);
        let committed = self.committed.load(Ordering::Relaxed);
        submitted.saturating_sub(rejected).saturating_sub(committed)
    }
}

/// Live counts of the timed phase.
#[derive(Debug)]
pub struct Progress {
    lanes: Vec<LaneCounts>,
    sending_done: AtomicBool,
    stalled: AtomicBool,
}

impl Progress {
    /// Counters for `lanes` lanes (at least one).
    pub fn new(lanes: usize) -> Self {
        Self {
            lanes: (0..lanes.max(1)).map(|_| LaneCounts::default()).collect(),
            sending_done: AtomicBool::new(false),
            stalled: AtomicBool::new(false),
        }
    }

    fn lane(&self, lane: usize) -> Option<&LaneCounts> {
        self.lanes.get(lane)
    }

    fn sum(&self, f: impl Fn(&LaneCounts) -> &AtomicUsize) -> usize {
        self.lanes.iter().map(|l| f(l).load(Ordering::Relaxed)).sum()
    }

    /// `n` transactions of `lane` were handed to a node.
    pub fn add_submitted(&self, lane: usize, n: usize) {
        if let Some(l) = self.lane(lane) {
            l.submitted.fetch_add(n, Ordering::Relaxed);
        }
    }

    /// `n` of them were refused.
    pub fn add_rejected(&self, lane: usize, n: usize) {
        if let Some(l) = self.lane(lane) {
            l.rejected.fetch_add(n, Ordering::Relaxed);
        }
    }

    /// `n` tracked transactions of `lane` were seen committed.
    pub fn add_committed(&self, lane: usize, n: usize) {
        if let Some(l) = self.lane(lane) {
            l.committed.fetch_add(n, Ordering::Relaxed);
        }
    }

    /// Transactions submitted so far (all lanes).
    pub fn submitted(&self) -> usize {
        self.sum(|l| &l.submitted)
    }

    /// Transactions refused so far (all lanes).
    pub fn rejected(&self) -> usize {
        self.sum(|l| &l.rejected)
    }

    /// Transactions seen committed so far (all lanes).
    pub fn committed(&self) -> usize {
        self.sum(|l| &l.committed)
    }

    /// Accepted and not yet committed in `lane`: what the lane's window bounds.
    pub fn outstanding(&self, lane: usize) -> usize {
        self.lane(lane).map_or(0, LaneCounts::outstanding)
    }

    /// The senders have finished (all sent, or stopped).
    pub fn finish_sending(&self) {
        self.sending_done.store(true, Ordering::Release);
    }

    /// Whether the senders have finished.
    pub fn sending_done(&self) -> bool {
        self.sending_done.load(Ordering::Acquire)
    }

    /// A lane's window stayed full for the whole time-out: the senders give up.
    pub fn mark_stalled(&self) {
        self.stalled.store(true, Ordering::Release);
    }

    /// Whether the senders gave up.
    pub fn stalled(&self) -> bool {
        self.stalled.load(Ordering::Acquire)
    }
}

/// Each lane's share of the in-flight window (rounded up, at least one batch).
pub fn lane_window(window: usize, lanes: usize, batch: usize) -> usize {
    window.div_ceil(lanes.max(1)).max(batch.max(1))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outstanding_is_accepted_minus_committed_per_lane() {
        let p = Progress::new(2);
        p.add_submitted(0, 100);
        p.add_rejected(0, 10);
        p.add_committed(0, 30);
        p.add_submitted(1, 5);
        assert_eq!(p.outstanding(0), 60);
        assert_eq!(p.outstanding(1), 5);
        assert_eq!((p.submitted(), p.rejected(), p.committed()), (105, 10, 30));
        p.add_committed(0, 100);
        assert_eq!(p.outstanding(0), 0, "never negative");
        p.add_committed(7, 1);
        assert_eq!(p.outstanding(7), 0, "an unknown lane counts nothing");
        assert!(!p.sending_done());
        p.finish_sending();
        assert!(p.sending_done());
    }

    #[test]
    fn lane_windows_split_the_window() {
        assert_eq!(lane_window(8000, 16, 100), 500);
        assert_eq!(lane_window(1000, 3, 100), 334);
        assert_eq!(lane_window(100, 16, 100), 100, "at least one batch");
        assert_eq!(lane_window(10, 0, 0), 10);
    }
}
