//! The two-chain commit rule.
//!
//! A block B commits, with all its uncommitted ancestors, once B and its direct child C are both
//! certified and `C.round == B.round + 1`. C's QC is the second certificate; B's is inside C
//! (`C.qc`). Seeing a QC for C is therefore enough to decide, given C itself. Committed blocks
//! are delivered oldest first, each exactly once (the committed tip only moves forward).

use crate::types::{Block, BlockId, Round};

/// Given a block C that just became certified, the block its certificate commits, if any:
/// C's parent when C's round directly follows the parent's (the parent's round is `C.qc.round`).
pub fn committed_by(certified: &Block) -> Option<(BlockId, Round)> {
    (certified.round > 0 && certified.qc.round + 1 == certified.round)
        .then_some((certified.parent_id, certified.qc.round))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::{Payload, QuorumCert};
    use alloy_primitives::B256;

    fn block(round: Round, qc_round: Round) -> Block {
        let parent = B256::repeat_byte(qc_round as u8);
        Block {
            round,
            parent_id: parent,
            qc: QuorumCert { block_id: parent, round: qc_round, signatures: vec![] },
            payload: Payload {
                block_hash: B256::ZERO,
                parent_hash: B256::ZERO,
                number: 1,
                timestamp: 0,
                prev_randao: B256::ZERO,
                parent_beacon_block_root: B256::ZERO,
                withdrawals: vec![],
                body: vec![],
            },
            proposer: 0,
        }
    }

    #[test]
    fn consecutive_rounds_commit_the_parent() {
        assert_eq!(committed_by(&block(5, 4)), Some((B256::repeat_byte(4), 4)));
    }

    #[test]
    fn a_gap_commits_nothing() {
        // parent certified in round 3, child in round 5 (round 4 timed out): no commit
        assert_eq!(committed_by(&block(5, 3)), None);
        assert_eq!(committed_by(&block(0, 0)), None);
    }
}
