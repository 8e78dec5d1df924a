//! Accepting connections without spinning: a listener whose `accept` fails (out of file
//! descriptors, out of memory, a burst of aborted handshakes) is retried after a pause that
//! doubles up to [`MAX_BACKOFF`], and the failure is logged once per streak, instead of being
//! retried at once in a loop that burns a core and floods the log.

use std::future::Future;
use std::time::Duration;

/// First pause after a failed accept.
pub const MIN_BACKOFF: Duration = Duration::from_millis(10);
/// Longest pause between two accepts after failures.
pub const MAX_BACKOFF: Duration = Duration::from_secs(1);

/// Calls `accept` until it succeeds, pausing after each failure; `what` names the server in
/// the log.
pub async fn accept_with_backoff<T, E, F, Fut>(what: &str, mut accept: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, E>>,
    E: std::fmt::Display,
{
    let mut backoff = MIN_BACKOFF;
    let mut failures = 0u64;
    loop {
        match accept().await {
            Ok(conn) => {
                if failures > 0 {
                    tracing::info!(server = what, failures, "accepting connections again");
                }
                return conn;
            }
            Err(e) => {
                if failures == 0 {
                    tracing::warn!(server = what, error = %e, "cannot accept a connection; backing off");
                }
                failures += 1;
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(MAX_BACKOFF);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::Cell;

    /// A listener failing 20 times in a row is tried 21 times, with pauses that grow to the
    /// cap, not thousands of times a second.
    #[tokio::test(start_paused = true)]
    async fn failures_are_retried_after_growing_pauses() {
        let calls = Cell::new(0u32);
        let start = tokio::time::Instant::now();
        let got = accept_with_backoff("test", || {
            calls.set(calls.get() + 1);
            let n = calls.get();
            async move { if n <= 20 { Err("too many open files") } else { Ok(n) } }
        })
        .await;
        assert_eq!((got, calls.get()), (21, 21));
        // 10 + 20 + … + 640 ms, then 1 s for each of the remaining 13 failures.
        let paused: Duration =
            (0..7).map(|k| MIN_BACKOFF * 2u32.pow(k)).sum::<Duration>() + MAX_BACKOFF * 13;
        assert_eq!(start.elapsed(), paused);
    }

    #[tokio::test(start_paused = true)]
    async fn a_working_listener_is_not_delayed() {
        let start = tokio::time::Instant::now();
        let got = accept_with_backoff("test", || async { Ok::<_, &str>(7) }).await;
        assert_eq!((got, start.elapsed()), (7, Duration::ZERO));
    }
}
