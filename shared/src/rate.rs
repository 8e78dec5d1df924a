//! A token bucket: what one peer may send per second, on average and in a burst.

use std::time::Instant;

/// Tokens refilled at `rate` per second up to `burst`; taking more than are left fails.
#[derive(Debug, Clone)]
pub struct TokenBucket {
    tokens: f64,
    last: Instant,
    rate: f64,
    burst: f64,
}

impl TokenBucket {
    /// A full bucket.
    pub fn new(rate_per_sec: u32, burst: u32, now: Instant) -> Self {
        Self {
            tokens: f64::from(burst),
            last: now,
            rate: f64::from(rate_per_sec),
            burst: f64::from(burst),
        }
    }

    /// Takes `count` tokens at `now`; `false` (and nothing taken) when fewer are left.
    pub fn take(&mut self, count: usize, now: Instant) -> bool {
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.tokens = (self.tokens + elapsed * self.rate).min(self.burst);
        self.last = now;
        if self.tokens < count as f64 {
            return false;
        }
        self.tokens -= count as f64;
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn a_burst_then_the_rate() {
        let t0 = Instant::now();
        let mut b = TokenBucket::new(10, 20, t0);
        assert!(b.take(20, t0));
        assert!(!b.take(1, t0), "burst spent");
        assert!(!b.take(6, t0 + Duration::from_millis(500)), "5 refilled, not 6");
        assert!(b.take(5, t0 + Duration::from_millis(500)));
        assert!(b.take(20, t0 + Duration::from_secs(60)), "refills up to the burst");
        assert!(!b.take(1, t0 + Duration::from_secs(60)));
    }
}
