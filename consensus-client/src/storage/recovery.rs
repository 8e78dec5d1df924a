//! What a restarting core reads from storage, bounded by the in-memory window rather than by
//! the length of the chain.
//!
//! [`load`] reads, by key, only:
//! - the safety data;
//! - the committed tip (the top of the committed index) and the QC certifying it;
//! - committed history below the tip, walking parents while a block's round is within
//!   `retained_rounds` of the tip's (what the core serves to peers' block fetches; older
//!   history stays on disk and is served by range sync);
//! - the uncommitted blocks the safety data names (the highest certified block, the last vote's
//!   and the last proposal's blocks, the TC's highest certified block), each with its ancestors
//!   down to the committed tip, and the QCs stored for every block read.
//!
//! Blocks above the tip that none of those reach (proposals on abandoned branches) are not
//! loaded: if a later certificate names one, the core fetches it from peers. The number of
//! blocks read is at most the window plus the uncommitted rounds, whatever the chain's height.

use super::{Storage, StorageError};
use crate::core::Recovery;
use crate::types::{Block, BlockId, QuorumCert, Round};
use std::collections::HashMap;
use tracing::{debug, warn};

/// Reads a bounded [`Recovery`] from `storage` (see the module docs); `None` for a store that
/// never saved safety data.
pub fn load<S: Storage + ?Sized>(
    storage: &S,
    retained_rounds: Round,
) -> Result<Option<Recovery>, StorageError> {
    let Some(safety) = storage.safety()? else { return Ok(None) };
    let mut blocks: HashMap<BlockId, Block> = HashMap::new();
    let mut qcs: HashMap<BlockId, QuorumCert> = HashMap::new();
    let last = storage.last_committed()?;
    let (committed, committed_round) = match &last {
        None => (None, 0),
        Some(entry) => {
            if let Some(qc) = &entry.qc {
                qcs.insert(qc.block_id, qc.clone());
            }
            match storage.block(&entry.block_id)? {
                Some(tip) => {
                    let round = tip.round;
                    let keep_from = round.saturating_sub(retained_rounds);
                    let mut parent = tip.parent_id;
                    let mut height = tip.height();
                    blocks.insert(entry.block_id, tip);
                    // Committed history within the window, newest first.
                    while height > 1 {
                        let Some(b) = storage.block(&parent)? else { break };
                        if b.round < keep_from {
                            break;
                        }
                        let id = parent;
                        parent = b.parent_id;
                        height = b.height();
                        blocks.insert(id, b);
                    }
                    (Some(entry.block_id), round)
                }
                None => {
                    warn!(block_id = %entry.block_id, height = entry.height,
                        "the committed tip's block is missing from storage");
                    (Some(entry.block_id), 0)
                }
            }
        }
    };
    let committed_id = committed;
    // Uncommitted blocks the safety data refers to, with their ancestors down to the tip.
    let mut starts = vec![safety.high_qc.block_id];
    starts.extend(safety.high_tc.as_ref().map(|tc| tc.high_qc.block_id));
    starts.extend(safety.last_vote.as_ref().map(|v| v.block_id));
    starts.extend(safety.last_proposal.as_ref().map(|p| p.block.parent_id));
    for start in starts {
        let mut cur = start;
        while Some(cur) != committed_id && !blocks.contains_key(&cur) {
            let Some(b) = storage.block(&cur)? else { break };
            if b.round <= committed_round || b.height() == 0 {
                break;
            }
            let parent = b.parent_id;
            blocks.insert(cur, b);
            cur = parent;
        }
    }
    for id in blocks.keys() {
        if !qcs.contains_key(id)
            && let Some(qc) = storage.qc(id)?
        {
            qcs.insert(*id, qc);
        }
    }
    debug!(blocks = blocks.len(), qcs = qcs.len(), committed_round, "recovery read from storage");
    let (blocks, qcs) = (blocks.into_values().collect(), qcs.into_values().collect());
    Ok(Some(Recovery { safety, blocks, qcs, committed }))
}
