//! The run's figures: committed throughput, send→commit latency percentiles, lost and rejected
//! counts, blocks; as text for people and JSON for scripts.

use std::{collections::BTreeMap, fmt::Write as _, time::Instant};

use serde::Serialize;

use super::tracking::BlockStat;

/// The `p`-th percentile (0–100) of ascending `sorted` values, nearest-rank method.
pub fn percentile(sorted: &[f64], p: f64) -> Option<f64> {
    if sorted.is_empty() {
        return None;
    }
    let p = p.clamp(0.0, 100.0);
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted.get(rank.saturating_sub(1).min(sorted.len() - 1)).copied()
}

/// Send→commit latency, milliseconds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct Latency {
    /// Median.
    pub p50: Option<f64>,
    /// 95th percentile.
    pub p95: Option<f64>,
    /// 99th percentile.
    pub p99: Option<f64>,
    /// Largest.
    pub max: Option<f64>,
    /// Mean.
    pub mean: Option<f64>,
}

impl Latency {
    /// The summary of `samples` (any order).
    pub fn of(mut samples: Vec<f64>) -> Self {
        samples.sort_by(f64::total_cmp);
        let mean =
            (!samples.is_empty()).then(|| samples.iter().sum::<f64>() / samples.len() as f64);
        Self {
            p50: percentile(&samples, 50.0),
            p95: percentile(&samples, 95.0),
            p99: percentile(&samples, 99.0),
            max: samples.last().copied(),
            mean,
        }
    }
}

/// What the run was (echoed in the report).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RunInfo {
    /// `transfer` or `erc20`.
    pub workload: String,
    /// `finalized` or `latest`.
    pub commit_tag: String,
    /// The nodes' RPC URLs.
    pub rpc: Vec<String>,
    /// Sender accounts.
    pub accounts: usize,
    /// Workload transactions signed.
    pub txs: usize,
    /// Target rate, if any (tx/s).
    pub target_rate: Option<f64>,
    /// In-flight window.
    pub window: usize,
    /// Chain id.
    pub chain_id: u64,
}

/// What the receipts of the committed workload transactions show (fetched after the timed
/// phase; the `l1-orders` workload only).
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct ReceiptSummary {
    /// Committed transactions that reverted (they are included and counted as committed).
    pub reverted: usize,
    /// Committed transactions whose receipt the node did not return.
    pub missing: usize,
    /// Mean gas used per committed transaction.
    pub avg_gas_used: f64,
    /// L1 `Fill` events (trades) the committed transactions made.
    pub l1_fills: usize,
}

impl ReceiptSummary {
    /// The summary of the receipts' statistics.
    pub fn of(stats: &super::l1::ReceiptStats) -> Self {
        Self {
            reverted: stats.reverted,
            missing: stats.missing,
            avg_gas_used: if stats.found > 0 {
                stats.gas_used as f64 / stats.found as f64
            } else {
                0.0
            },
            l1_fills: stats.fills,
        }
    }
}

/// The figures of one run.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Report {
    /// The run's parameters.
    pub run: RunInfo,
    /// Transactions whose request was sent.
    pub sent: usize,
    /// Accepted by `eth_sendRawTransaction`.
    pub accepted: usize,
    /// Refused by the node (or the request failed).
    pub rejected: usize,
    /// Refusals by message.
    pub rejections: BTreeMap<String, usize>,
    /// Never sent (the senders stopped after a stall).
    pub unsent: usize,
    /// Seen in a committed block.
    pub committed: usize,
    /// Accepted but not committed within the time-out.
    pub lost: usize,
    /// First send → last reply to a send, seconds.
    pub send_secs: f64,
    /// Accepted transactions per second of sending.
    pub send_tps: f64,
    /// First send → last commit, seconds.
    pub duration_secs: f64,
    /// Committed transactions per second (committed / duration).
    pub committed_tps: f64,
    /// Send→commit latency of the committed transactions.
    pub latency_ms: Latency,
    /// Blocks from the first to the last that held a transaction of the run.
    pub blocks: u64,
    /// Committed transactions per such block.
    pub avg_txs_per_block: f64,
    /// The fullest block (all its transactions).
    pub max_txs_per_block: usize,
    /// The committed transactions' receipts, when the workload checks them (`l1-orders`).
    pub receipts: Option<ReceiptSummary>,
}

/// Raw records of one run, as the senders and the tracker left them.
#[derive(Debug, Clone, Copy)]
pub struct Records<'a> {
    /// Per workload transaction: when it was sent.
    pub send_times: &'a [Option<Instant>],
    /// Per workload transaction: whether it was accepted.
    pub accepted: &'a [bool],
    /// Per workload transaction: when it was seen committed.
    pub commit_times: &'a [Option<Instant>],
    /// The committed blocks walked.
    pub blocks: &'a [BlockStat],
    /// Refusals by message.
    pub rejections: &'a BTreeMap<String, usize>,
    /// When the last reply to a send arrived.
    pub last_reply: Option<Instant>,
}

fn secs(from: Option<Instant>, to: Option<Instant>) -> f64 {
    match (from, to) {
        (Some(a), Some(b)) => b.saturating_duration_since(a).as_secs_f64(),
        _ => 0.0,
    }
}

fn per_sec(count: usize, secs: f64) -> f64 {
    if secs > 0.0 { count as f64 / secs } else { 0.0 }
}

impl Report {
    /// Computes the figures from the records.
    pub fn compute(run: RunInfo, r: Records<'_>) -> Self {
        let sent = r.send_times.iter().filter(|t| t.is_some()).count();
        let accepted = r.accepted.iter().filter(|a| **a).count();
        let first_send = r.send_times.iter().flatten().min().copied();
        let last_send = r.send_times.iter().flatten().max().copied().max(r.last_reply);
        let last_commit = r.commit_times.iter().flatten().max().copied();
        let committed = r.commit_times.iter().filter(|t| t.is_some()).count();
        let lost = r
            .accepted
            .iter()
            .zip(r.commit_times)
            .filter(|(accepted, commit)| **accepted && commit.is_none())
            .count();
        let samples = r
            .send_times
            .iter()
            .zip(r.commit_times)
            .filter_map(|(s, c)| Some(c.as_ref()?.saturating_duration_since(*s.as_ref()?)))
            .map(|d| d.as_secs_f64() * 1000.0)
            .collect();
        let ours: Vec<&BlockStat> = r.blocks.iter().filter(|b| b.ours > 0).collect();
        let (blocks, max_txs_per_block) = match (ours.first(), ours.last()) {
            (Some(first), Some(last)) => {
                let range = first.number..=last.number;
                let max = r
                    .blocks
                    .iter()
                    .filter(|b| range.contains(&b.number))
                    .map(|b| b.txs)
                    .max()
                    .unwrap_or(0);
                (last.number - first.number + 1, max)
            }
            _ => (0, 0),
        };
        let send_secs = secs(first_send, last_send);
        let duration_secs = secs(first_send, last_commit);
        Self {
            run: run.clone(),
            sent,
            accepted,
            rejected: r.rejections.values().sum(),
            rejections: r.rejections.clone(),
            unsent: run.txs.saturating_sub(sent),
            committed,
            lost,
            send_secs,
            send_tps: per_sec(accepted, send_secs),
            duration_secs,
            committed_tps: per_sec(committed, duration_secs),
            latency_ms: Latency::of(samples),
            blocks,
            avg_txs_per_block: if blocks > 0 { committed as f64 / blocks as f64 } else { 0.0 },
            max_txs_per_block,
            receipts: None,
        }
    }

    /// The report for people.
    pub fn render_text(&self) -> String {
        let ms = |v: Option<f64>| v.map_or("-".to_string(), |v| format!("{v:.0} ms"));
        let mut s = String::new();
        let _ = writeln!(
            s,
            "workload {} over {} node(s), {} accounts, {} txs, commit tag {}, window {}{}",
            self.run.workload,
            self.run.rpc.len(),
            self.run.accounts,
            self.run.txs,
            self.run.commit_tag,
            self.run.window,
            self.run.target_rate.map_or(String::new(), |r| format!(", target {r:.0} tx/s")),
        );
        let _ = writeln!(
            s,
            "sent {} (accepted {}, rejected {}, unsent {}) in {:.2} s = {:.0} tx/s",
            self.sent, self.accepted, self.rejected, self.unsent, self.send_secs, self.send_tps
        );
        let _ = writeln!(
            s,
            "committed {} in {:.2} s (first send -> last commit) = {:.0} tx/s; lost {}",
            self.committed, self.duration_secs, self.committed_tps, self.lost
        );
        let l = &self.latency_ms;
        let _ = writeln!(
            s,
            "send->commit latency p50 {} p95 {} p99 {} max {}",
            ms(l.p50),
            ms(l.p95),
            ms(l.p99),
            ms(l.max)
        );
        let _ = writeln!(
            s,
            "{} blocks, {:.1} txs/block on average, fullest {}",
            self.blocks, self.avg_txs_per_block, self.max_txs_per_block
        );
        if let Some(r) = &self.receipts {
            let _ = writeln!(
                s,
                "receipts: {} reverted (included, counted as committed), {} missing, {:.0} gas per transaction, {} L1 fills",
                r.reverted, r.missing, r.avg_gas_used, r.l1_fills
            );
        }
        for (message, count) in &self.rejections {
            let _ = writeln!(s, "rejected x{count}: {message}");
        }
        s
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use std::time::Duration;

    use super::*;

    #[test]
    fn nearest_rank_percentiles() {
        let v: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(percentile(&v, 50.0), Some(50.0));
        assert_eq!(percentile(&v, 95.0), Some(95.0));
        assert_eq!(percentile(&v, 99.0), Some(99.0));
        assert_eq!(percentile(&v, 100.0), Some(100.0));
        assert_eq!(percentile(&v, 0.0), Some(1.0));
        assert_eq!(percentile(&[7.0], 99.0), Some(7.0));
        assert_eq!(percentile(&[], 50.0), None);
        assert_eq!(percentile(&[1.0, 2.0, 3.0, 4.0], 50.0), Some(2.0));
        let l = Latency::of(vec![3.0, 1.0, 2.0]);
        assert_eq!((l.p50, l.max, l.mean), (Some(2.0), Some(3.0), Some(2.0)));
        assert_eq!(Latency::of(Vec::new()), Latency::default());
    }

    fn info(txs: usize) -> RunInfo {
        RunInfo {
            workload: "transfer".into(),
            commit_tag: "finalized".into(),
            rpc: vec!["http://a".into()],
            accounts: 2,
            txs,
            target_rate: None,
            window: 10,
            chain_id: 1337,
        }
    }

    #[test]
    fn report_maths() {
        let t0 = Instant::now();
        let at = |ms: u64| Some(t0 + Duration::from_millis(ms));
        // Five transactions: 0..3 committed, 3 accepted but lost, 4 rejected; one never sent.
        let send_times = [at(0), at(0), at(500), at(500), at(600), None];
        let accepted = [true, true, true, true, false, false];
        let commit_times = [at(1000), at(1500), at(2000), None, None, None];
        let blocks = [
            BlockStat { number: 9, txs: 3, ours: 0 },
            BlockStat { number: 10, txs: 1, ours: 1 },
            BlockStat { number: 11, txs: 0, ours: 0 },
            BlockStat { number: 12, txs: 4, ours: 2 },
        ];
        let rejections = BTreeMap::from([("nonce too low".to_string(), 1)]);
        let r = Report::compute(
            info(6),
            Records {
                send_times: &send_times,
                accepted: &accepted,
                commit_times: &commit_times,
                blocks: &blocks,
                rejections: &rejections,
                last_reply: at(650),
            },
        );
        assert_eq!((r.sent, r.accepted, r.rejected, r.unsent), (5, 4, 1, 1));
        assert_eq!((r.committed, r.lost), (3, 1));
        assert!((r.duration_secs - 2.0).abs() < 1e-9);
        assert!((r.committed_tps - 1.5).abs() < 1e-9);
        assert!((r.send_secs - 0.65).abs() < 1e-9);
        // Latencies 1000, 1500, 1500 ms.
        assert_eq!(r.latency_ms.p50, Some(1500.0));
        assert_eq!(r.latency_ms.max, Some(1500.0));
        assert_eq!(r.blocks, 3, "blocks 10..=12, the empty one included");
        assert!((r.avg_txs_per_block - 1.0).abs() < 1e-9);
        assert_eq!(r.max_txs_per_block, 4);
        assert_eq!(r.receipts, None);
        let text = r.render_text();
        assert!(text.contains("lost 1"), "{text}");
        assert!(!text.contains("receipts:"), "{text}");
        assert!(text.contains("rejected x1: nonce too low"), "{text}");
        let json = serde_json::to_value(&r).unwrap();
        assert_eq!(json["committed"], 3);
        assert_eq!(json["latency_ms"]["p50"], 1500.0);
        assert!(json["receipts"].is_null());

        let stats = super::super::l1::ReceiptStats {
            reverted: 1,
            missing: 0,
            gas_used: 300_000,
            found: 2,
            fills: 3,
        };
        let r = Report { receipts: Some(ReceiptSummary::of(&stats)), ..r };
        assert!(r.render_text().contains("1 reverted"), "{}", r.render_text());
        let json = serde_json::to_value(&r).unwrap();
        assert_eq!(json["receipts"]["avg_gas_used"], 150_000.0);
        assert_eq!(json["receipts"]["l1_fills"], 3);
    }

    #[test]
    fn an_empty_run_reports_zeros() {
        let r = Report::compute(
            info(0),
            Records {
                send_times: &[],
                accepted: &[],
                commit_times: &[],
                blocks: &[],
                rejections: &BTreeMap::new(),
                last_reply: None,
            },
        );
        assert_eq!((r.committed, r.blocks), (0, 0));
        assert_eq!(r.committed_tps, 0.0);
        assert_eq!(r.latency_ms.p50, None);
    }
}
