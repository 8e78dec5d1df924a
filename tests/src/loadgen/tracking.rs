//! Commit tracking: poll the commit tag's block number on one node and walk every newly
//! committed block's transaction hashes.

use std::{
    collections::{HashMap, HashSet},
    sync::Arc,
    time::{Duration, Instant},
};

use alloy_primitives::B256;
use serde_json::{Value, json};

use super::{CommitTag, LoadgenError, progress::Progress, rpc::RpcClient, rpc::quantity_u64};

/// Blocks fetched per JSON-RPC batch while walking.
const BLOCKS_PER_BATCH: usize = 100;

/// A committed block as the walker saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommittedBlock {
    /// Block number.
    pub number: u64,
    /// Its transactions' hashes.
    pub tx_hashes: Vec<B256>,
}

/// Follows the commit tag of one node, block by block.
#[derive(Debug, Clone)]
pub struct CommitWatcher {
    rpc: RpcClient,
    tag: CommitTag,
    next: u64,
}

/// The number of the block the tag points at on `rpc`; 0 while nothing is finalized yet (the
/// node answers `null` or "not found").
pub async fn tag_number(rpc: &RpcClient, tag: CommitTag) -> Result<u64, LoadgenError> {
    let block = match rpc.call("eth_getBlockByNumber", json!([tag.as_str(), false])).await {
        Ok(Value::Null) => return Ok(0),
        Err(LoadgenError::Rpc { message, .. }) if message.contains("not found") => return Ok(0),
        other => other?,
    };
    quantity_u64(&block["number"]).ok_or_else(|| LoadgenError::Rpc {
        url: rpc.url().to_string(),
        method: "eth_getBlockByNumber".into(),
        message: format!("no {} block number in {block}", tag.as_str()),
    })
}

fn parse_block(url: &str, value: &Value) -> Result<CommittedBlock, LoadgenError> {
    let bad = |what: &str| LoadgenError::Rpc {
        url: url.to_string(),
        method: "eth_getBlockByNumber".into(),
        message: format!("{what} in block {value}"),
    };
    let number = quantity_u64(&value["number"]).ok_or_else(|| bad("no number"))?;
    let tx_hashes = value["transactions"]
        .as_array()
        .ok_or_else(|| bad("no transactions"))?
        .iter()
        .map(|h| h.as_str().and_then(|s| s.parse::<B256>().ok()).ok_or_else(|| bad("bad hash")))
        .collect::<Result<_, _>>()?;
    Ok(CommittedBlock { number, tx_hashes })
}

impl CommitWatcher {
    /// Starts after the block the tag points at now.
    pub async fn start(rpc: RpcClient, tag: CommitTag) -> Result<Self, LoadgenError> {
        let head = tag_number(&rpc, tag).await?;
        Ok(Self { rpc, tag, next: head + 1 })
    }

    /// The blocks committed since the previous poll, in order.
    pub async fn poll(&mut self) -> Result<Vec<CommittedBlock>, LoadgenError> {
        let head = tag_number(&self.rpc, self.tag).await?;
        if head < self.next {
            return Ok(Vec::new());
        }
        let numbers: Vec<u64> = (self.next..=head).collect();
        let mut blocks = Vec::with_capacity(numbers.len());
        for chunk in numbers.chunks(BLOCKS_PER_BATCH) {
            let calls: Vec<(&str, Value)> = chunk
                .iter()
                .map(|n| ("eth_getBlockByNumber", json!([format!("{n:#x}"), false])))
                .collect();
            for (n, reply) in chunk.iter().zip(self.rpc.batch(&calls).await?) {
                let value = reply.map_err(|message| LoadgenError::Rpc {
                    url: self.rpc.url().to_string(),
                    method: "eth_getBlockByNumber".into(),
                    message: format!("block {n}: {message}"),
                })?;
                blocks.push(parse_block(self.rpc.url(), &value)?);
            }
        }
        self.next = head + 1;
        Ok(blocks)
    }

    /// Waits until every hash is in a committed block; returns the highest such block.
    pub async fn wait_for(
        &mut self,
        hashes: &[B256],
        poll: Duration,
        timeout: Duration,
    ) -> Result<u64, LoadgenError> {
        let mut missing: HashSet<B256> = hashes.iter().copied().collect();
        let deadline = Instant::now() + timeout;
        let mut highest = self.next.saturating_sub(1);
        while !missing.is_empty() {
            if Instant::now() > deadline {
                return Err(LoadgenError::Timeout(format!(
                    "{} of {} set-up transactions not {} within {timeout:?}",
                    missing.len(),
                    hashes.len(),
                    self.tag.as_str()
                )));
            }
            tokio::time::sleep(poll).await;
            for block in self.poll().await? {
                for h in &block.tx_hashes {
                    if missing.remove(h) {
                        highest = highest.max(block.number);
                    }
                }
            }
        }
        Ok(highest)
    }
}

/// What the walker saw of one committed block during the timed phase.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BlockStat {
    /// Block number.
    pub number: u64,
    /// All its transactions.
    pub txs: usize,
    /// Those of this run.
    pub ours: usize,
}

/// The tracker's record of the timed phase.
#[derive(Debug, Clone, Default)]
pub struct TrackerOutcome {
    /// When each workload transaction was first seen committed.
    pub commit_times: Vec<Option<Instant>>,
    /// Every block committed during the phase.
    pub blocks: Vec<BlockStat>,
    /// Polls that failed (the next poll retries).
    pub poll_errors: usize,
    /// The last poll error, if any.
    pub last_error: Option<String>,
}

/// Tracks the workload's transactions (hash → index; `lane_of[index]` is its lane) until every
/// accepted one is committed, or until `timeout` after the senders finished.
pub async fn track(
    mut watcher: CommitWatcher,
    index: HashMap<B256, usize>,
    lane_of: Vec<usize>,
    progress: Arc<Progress>,
    poll: Duration,
    timeout: Duration,
) -> TrackerOutcome {
    let mut out =
        TrackerOutcome { commit_times: vec![None; index.len()], ..TrackerOutcome::default() };
    let mut done_at: Option<Instant> = None;
    loop {
        let started = Instant::now();
        match watcher.poll().await {
            Ok(blocks) => {
                let seen = Instant::now();
                for block in blocks {
                    let mut ours = 0;
                    for h in &block.tx_hashes {
                        if let Some(&i) = index.get(h)
                            && out.commit_times[i].is_none()
                        {
                            out.commit_times[i] = Some(seen);
                            progress.add_committed(lane_of.get(i).copied().unwrap_or(0), 1);
                            ours += 1;
                        }
                    }
                    out.blocks.push(BlockStat {
                        number: block.number,
                        txs: block.tx_hashes.len(),
                        ours,
                    });
                }
            }
            Err(e) => {
                out.poll_errors += 1;
                out.last_error = Some(e.to_string());
            }
        }
        if progress.sending_done() {
            let done = *done_at.get_or_insert_with(Instant::now);
            let accepted = progress.submitted().saturating_sub(progress.rejected());
            if progress.committed() >= accepted || done.elapsed() > timeout {
                return out;
            }
        }
        if let Some(rest) = poll.checked_sub(started.elapsed()) {
            tokio::time::sleep(rest).await;
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn blocks_parse_with_their_hashes() {
        let h = B256::repeat_byte(7);
        let v = json!({ "number": "0x10", "transactions": [h.to_string()] });
        let b = parse_block("u", &v).unwrap();
        assert_eq!(b, CommittedBlock { number: 16, tx_hashes: vec![h] });
        assert!(parse_block("u", &json!({ "number": "0x1" })).is_err());
        assert!(parse_block("u", &json!({ "number": "0x1", "transactions": [1] })).is_err());
    }
}
