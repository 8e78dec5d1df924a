//! Counters shared by the senders and the commit tracker during the timed phase.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

/// Live counts of the timed phase.
#[derive(Debug, Default)]
pub struct Progress {
    submitted: AtomicUsize,
    rejected: AtomicUsize,
    committed: AtomicUsize,
    sending_done: AtomicBool,
    stalled: AtomicBool,
}

impl Progress {
    /// `n` transactions were handed to a node.
    pub fn add_submitted(&self, n: usize) {
        self.submitted.fetch_add(n, Ordering::Relaxed);
    }

    /// `n` of them were refused.
    pub fn add_rejected(&self, n: usize) {
        self.rejected.fetch_add(n, Ordering::Relaxed);
    }

    /// `n` tracked transactions were seen committed.
    pub fn add_committed(&self, n: usize) {
        self.committed.fetch_add(n, Ordering::Relaxed);
    }

    /// Transactions submitted so far.
    pub fn submitted(&self) -> usize {
        self.submitted.load(Ordering::Relaxed)
    }

    /// Transactions refused so far.
    pub fn rejected(&self) -> usize {
        self.rejected.load(Ordering::Relaxed)
    }

    /// Transactions seen committed so far.
    pub fn committed(&self) -> usize {
        self.committed.load(Ordering::Relaxed)
    }

    /// Accepted and not committed yet: what the in-flight window bounds.
    pub fn outstanding(&self) -> usize {
        self.submitted().saturating_sub(self.rejected()).saturating_sub(self.committed())
    }

    /// The senders have finished (all sent, or stopped).
    pub fn finish_sending(&self) {
        self.sending_done.store(true, Ordering::Release);
    }

    /// Whether the senders have finished.
    pub fn sending_done(&self) -> bool {
        self.sending_done.load(Ordering::Acquire)
    }

    /// The window stayed full for the whole time-out: the senders gave up.
    pub fn mark_stalled(&self) {
        self.stalled.store(true, Ordering::Release);
    }

    /// Whether the senders gave up.
    pub fn stalled(&self) -> bool {
        self.stalled.load(Ordering::Acquire)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outstanding_is_accepted_minus_committed() {
        let p = Progress::default();
        p.add_submitted(100);
        p.add_rejected(10);
        p.add_committed(30);
        assert_eq!(p.outstanding(), 60);
        p.add_committed(100);
        assert_eq!(p.outstanding(), 0, "never negative");
        assert!(!p.sending_done());
        p.finish_sending();
        assert!(p.sending_done());
    }
}
