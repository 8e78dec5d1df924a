//! The timed phase's senders: pre-built `eth_sendRawTransaction` batches posted over several
//! lanes (sequential request streams) per node, bounded by an in-flight window and an optional target rate.

use std::{
    collections::BTreeMap,
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

use super::{
    LoadgenError,
    progress::{Progress, lane_window},
    rpc::{RpcClient, parse_batch},
};

/// One HTTP request: a JSON-RPC batch of `eth_sendRawTransaction` calls, ids `0..txs.len()`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Batch {
    /// Workload transaction indexes, in the batch's order.
    pub txs: Vec<usize>,
    /// The request body, built before timing.
    pub body: String,
}

impl Batch {
    /// A batch of raw transactions (hex strings) for the given workload indexes.
    pub fn new(txs: Vec<usize>, raw_hex: &[String]) -> Self {
        let mut body = String::with_capacity(txs.len() * 320);
        body.push('[');
        for (id, &tx) in txs.iter().enumerate() {
            if id > 0 {
                body.push(',');
            }
            body.push_str(r#"{"jsonrpc":"2.0","id":"#);
            body.push_str(&id.to_string());
            body.push_str(r#","method":"eth_sendRawTransaction","params":[""#);
            body.push_str(raw_hex.get(tx).map_or("", String::as_str));
            body.push_str(r#""]}"#);
        }
        body.push(']');
        Self { txs, body }
    }
}

/// How the senders pace themselves.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SendOptions {
    /// Most accepted-but-uncommitted transactions at any time, split evenly over the lanes.
    pub window: usize,
    /// Target transactions per second over all nodes; `None`: as fast as the window allows.
    pub rate: Option<f64>,
    /// Give up when the window stays full this long.
    pub stall_timeout: Duration,
}

/// What the senders recorded.
#[derive(Debug, Clone, Default)]
pub struct SendOutcome {
    /// When each workload transaction's request left (None: never sent).
    pub send_times: Vec<Option<Instant>>,
    /// Whether the node accepted it.
    pub accepted: Vec<bool>,
    /// Refusals grouped by message (the part before the first `": "`).
    pub rejections: BTreeMap<String, usize>,
    /// When the last reply arrived.
    pub last_reply: Option<Instant>,
}

/// The grouping key of a refusal: geth-style messages put details after `": "`.
pub fn rejection_key(message: &str) -> String {
    let head = message.split(": ").next().unwrap_or(message).trim();
    head.chars().take(100).collect()
}

/// When the transaction at position `position` of the stream is due at `rate` tx/s.
pub fn due_offset(position: usize, rate: Option<f64>) -> Duration {
    match rate {
        Some(r) if r > 0.0 && r.is_finite() => Duration::from_secs_f64(position as f64 / r),
        _ => Duration::ZERO,
    }
}

/// One batch's result as a worker recorded it.
struct Sent {
    batch: usize,
    at: Instant,
    replied: Instant,
    replies: Result<Vec<Result<(), String>>, String>,
}

/// One sequential stream of requests to one node.
#[derive(Debug, Clone)]
pub struct Lane {
    /// The node's client.
    pub client: RpcClient,
    /// The batches, sent one after the other in this order.
    pub batches: Vec<Batch>,
}

/// Sends every lane's batches (the lanes run concurrently) and records send times and replies
/// for `tx_count` workload transactions.
pub async fn send_all(
    lanes: Vec<Lane>,
    tx_count: usize,
    options: SendOptions,
    progress: Arc<Progress>,
) -> Result<SendOutcome, LoadgenError> {
    let start = Instant::now();
    let scheduled = Arc::new(AtomicUsize::new(0));
    let largest = lanes.iter().flat_map(|l| &l.batches).map(|b| b.txs.len()).max().unwrap_or(1);
    let window = lane_window(options.window, lanes.len(), largest);
    let mut tasks = Vec::new();
    for (id, lane) in lanes.into_iter().enumerate() {
        let lane = Arc::new(lane);
        let pace = Pace { id, window, rate: options.rate, stall_timeout: options.stall_timeout };
        let (progress, scheduled) = (progress.clone(), scheduled.clone());
        let task = tokio::spawn(worker(lane.clone(), pace, progress, scheduled, start));
        tasks.push((lane, task));
    }
    let mut results = Vec::new();
    for (lane, task) in tasks {
        let sent =
            task.await.map_err(|e| LoadgenError::Setup(format!("a sender task failed: {e}")))?;
        results.push((lane, sent));
    }
    progress.finish_sending();
    let mut outcome = SendOutcome {
        send_times: vec![None; tx_count],
        accepted: vec![false; tx_count],
        rejections: BTreeMap::new(),
        last_reply: None,
    };
    for (lane, sent) in results {
        for s in sent {
            outcome.last_reply = outcome.last_reply.max(Some(s.replied));
            let Some(batch) = lane.batches.get(s.batch) else { continue };
            for &tx in &batch.txs {
                if let Some(t) = outcome.send_times.get_mut(tx) {
                    *t = Some(s.at);
                }
            }
            match s.replies {
                Ok(replies) => {
                    for (&tx, reply) in batch.txs.iter().zip(replies) {
                        match reply {
                            Ok(()) => {
                                if let Some(a) = outcome.accepted.get_mut(tx) {
                                    *a = true;
                                }
                            }
                            Err(m) => {
                                *outcome.rejections.entry(rejection_key(&m)).or_default() += 1
                            }
                        }
                    }
                }
                Err(m) => {
                    // The whole request failed: keep the details.
                    let key: String = m.chars().take(160).collect();
                    *outcome.rejections.entry(key).or_default() += batch.txs.len();
                }
            }
        }
    }
    Ok(outcome)
}

/// One lane's pacing.
#[derive(Debug, Clone, Copy)]
struct Pace {
    id: usize,
    window: usize,
    rate: Option<f64>,
    stall_timeout: Duration,
}

async fn worker(
    lane: Arc<Lane>,
    pace: Pace,
    progress: Arc<Progress>,
    scheduled: Arc<AtomicUsize>,
    start: Instant,
) -> Vec<Sent> {
    let mut sent = Vec::new();
    for (k, batch) in lane.batches.iter().enumerate() {
        if progress.stalled() {
            return sent;
        }
        let n = batch.txs.len();
        // The window: wait while too much of this lane is in flight.
        let waiting = Instant::now();
        while progress.outstanding(pace.id) + n > pace.window.max(n) {
            if waiting.elapsed() > pace.stall_timeout {
                progress.mark_stalled();
                return sent;
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        // The rate: each transaction has its due time.
        let position = scheduled.fetch_add(n, Ordering::Relaxed);
        let due = start + due_offset(position, pace.rate);
        if due > Instant::now() {
            tokio::time::sleep_until(due.into()).await;
        }
        let at = Instant::now();
        progress.add_submitted(pace.id, n);
        let replies = match lane.client.post(batch.body.clone()).await {
            Ok(bytes) => parse_batch(&bytes, n)
                .map(|r| r.into_iter().map(|x| x.map(|_| ())).collect::<Vec<_>>()),
            Err(LoadgenError::Http { message, .. }) => Err(format!("request failed: {message}")),
            Err(e) => Err(e.to_string()),
        };
        let refused = match &replies {
            Ok(r) => r.iter().filter(|x| x.is_err()).count(),
            Err(_) => n,
        };
        progress.add_rejected(pace.id, refused);
        sent.push(Sent { batch: k, at, replied: Instant::now(), replies });
    }
    sent
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use serde_json::Value;

    use super::*;

    #[test]
    fn batch_bodies_are_json_rpc_batches_with_positional_ids() {
        let raws: Vec<String> = (0..5).map(|i| format!("0x0{i}")).collect();
        let b = Batch::new(vec![4, 1, 3], &raws);
        let v: Value = serde_json::from_str(&b.body).unwrap();
        let calls = v.as_array().unwrap();
        assert_eq!(calls.len(), 3);
        for (id, (call, tx)) in calls.iter().zip([4, 1, 3]).enumerate() {
            assert_eq!(call["id"], id);
            assert_eq!(call["method"], "eth_sendRawTransaction");
            assert_eq!(call["params"][0], format!("0x0{tx}"));
        }
    }

    #[test]
    fn rejections_group_by_their_geth_prefix() {
        assert_eq!(rejection_key("nonce too low: next nonce 5, tx nonce 3"), "nonce too low");
        assert_eq!(
            rejection_key("insufficient funds for gas * price + value: have 1 want 2"),
            "insufficient funds for gas * price + value"
        );
        assert_eq!(rejection_key("already known"), "already known");
        assert_eq!(rejection_key(&"x".repeat(500)).len(), 100);
    }

    #[test]
    fn rate_spaces_transactions_evenly() {
        assert_eq!(due_offset(500, Some(1000.0)), Duration::from_millis(500));
        assert_eq!(due_offset(500, None), Duration::ZERO);
        assert_eq!(due_offset(500, Some(0.0)), Duration::ZERO);
    }
}
