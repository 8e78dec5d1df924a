//! In-memory tree of known blocks above the committed tip, the QCs that certify them and the
//! committed tip itself.
//!
//! Blocks enter only after they are authenticated: a proposal whose payload the executor found
//! valid, or a fetched block whose id was referenced by a verified QC or by a stored child (an
//! id is the hash of the whole block, so a referenced id authenticates the content). The tree is
//! pruned on commit, keeping [`RETAINED_COMMITTED_ROUNDS`] rounds (configurable) of committed
//! history in memory so lagging peers can fetch it; older history stays on disk, served by range
//! sync ([`crate::sync`]), not by the core.

use crate::types::codec::Codec as _;
use crate::types::{Block, BlockId, Height, QuorumCert, Round};
use std::collections::HashMap;

/// Rounds of committed history kept in memory below the committed tip.
pub const RETAINED_COMMITTED_ROUNDS: Round = 2_000;

/// Why a chain could not be walked back to the committed tip.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChainWalk {
    /// The blocks from just above the committed tip up to the target, oldest first.
    Complete(Vec<BlockId>),
    /// This ancestor is not known yet.
    Missing(BlockId),
    /// The chain passes the committed round without meeting the committed tip: it conflicts with
    /// the committed chain.
    Conflicts {
        /// The ancestor at or below the committed round.
        block_id: BlockId,
        /// Its round.
        round: Round,
    },
}

/// Known blocks and certificates.
#[derive(Debug, Clone)]
pub struct BlockStore {
    blocks: HashMap<BlockId, Block>,
    qcs: HashMap<BlockId, QuorumCert>,
    committed_id: BlockId,
    committed_round: Round,
    committed_height: Height,
    last_prune_round: Round,
    retained_rounds: Round,
}

impl BlockStore {
    /// A store holding `genesis` as the committed tip, retaining
    /// [`RETAINED_COMMITTED_ROUNDS`] rounds of committed history.
    pub fn new(genesis: Block) -> Self {
        Self::with_retention(genesis, RETAINED_COMMITTED_ROUNDS)
    }

    /// A store holding `genesis` as the committed tip, retaining `retained_rounds` rounds of
    /// committed history below the tip.
    pub fn with_retention(genesis: Block, retained_rounds: Round) -> Self {
        let id = genesis.id();
        let height = genesis.height();
        let mut blocks = HashMap::new();
        blocks.insert(id, genesis);
        Self {
            blocks,
            qcs: HashMap::new(),
            committed_id: id,
            committed_round: 0,
            committed_height: height,
            last_prune_round: 0,
            retained_rounds,
        }
    }

    /// Inserts a block (idempotent). Returns whether it was new.
    pub fn insert(&mut self, id: BlockId, block: Block) -> bool {
        if self.blocks.contains_key(&id) {
            return false;
        }
        self.blocks.insert(id, block);
        true
    }

    /// Records the QC that certifies `qc.block_id`. Returns whether it was new.
    pub fn insert_qc(&mut self, qc: &QuorumCert) -> bool {
        if self.qcs.contains_key(&qc.block_id) {
            return false;
        }
        self.qcs.insert(qc.block_id, qc.clone());
        true
    }

    /// The block with `id`, if known.
    pub fn get(&self, id: &BlockId) -> Option<&Block> {
        self.blocks.get(id)
    }

    /// Whether the block is known.
    pub fn contains(&self, id: &BlockId) -> bool {
        self.blocks.contains_key(id)
    }

    /// The QC certifying `id`, if known.
    pub fn qc(&self, id: &BlockId) -> Option<&QuorumCert> {
        self.qcs.get(id)
    }

    /// Id of the committed tip.
    pub fn committed_id(&self) -> BlockId {
        self.committed_id
    }

    /// Round of the committed tip.
    pub fn committed_round(&self) -> Round {
        self.committed_round
    }

    /// Height of the committed tip.
    pub fn committed_height(&self) -> Height {
        self.committed_height
    }

    /// Walks from `target` back to the committed tip.
    pub fn walk_to_committed(&self, target: BlockId) -> ChainWalk {
        let mut chain = Vec::new();
        let mut cur = target;
        while cur != self.committed_id {
            let Some(b) = self.blocks.get(&cur) else {
                return ChainWalk::Missing(cur);
            };
            if b.round <= self.committed_round {
                return ChainWalk::Conflicts { block_id: cur, round: b.round };
            }
            chain.push(cur);
            cur = b.parent_id;
        }
        chain.reverse();
        ChainWalk::Complete(chain)
    }

    /// Marks `id` (which must be a known descendant of the tip) as the committed tip and prunes
    /// blocks that can no longer matter.
    pub fn set_committed(&mut self, id: BlockId) {
        if let Some(b) = self.blocks.get(&id) {
            self.committed_id = id;
            self.committed_round = b.round;
            self.committed_height = b.height();
        }
        let keep_from = self.committed_round.saturating_sub(self.retained_rounds);
        // Prune only every 64 committed rounds (fewer for a short window): retain is linear in
        // the number of blocks.
        let interval = self.retained_rounds.clamp(1, 64);
        if self.committed_round >= self.last_prune_round + interval {
            self.last_prune_round = self.committed_round;
            self.blocks.retain(|bid, b| b.round >= keep_from || *bid == self.committed_id);
            let blocks = &self.blocks;
            self.qcs.retain(|bid, _| blocks.contains_key(bid));
        }
    }

    /// Up to `count` blocks starting at `id` and following parents (newest first), no more than
    /// `max_bytes` of encoding unless the first block alone is larger.
    pub fn chain_from(&self, id: BlockId, count: usize, max_bytes: usize) -> Vec<Block> {
        let mut out = Vec::new();
        let mut bytes = 0usize;
        let mut cur = id;
        while out.len() < count {
            let Some(b) = self.blocks.get(&cur) else { break };
            bytes += b.encoded_len();
            if !out.is_empty() && bytes > max_bytes {
                break;
            }
            out.push(b.clone());
            if b.round == 0 {
                break;
            }
            cur = b.parent_id;
        }
        out
    }

    /// Number of blocks held.
    pub fn len(&self) -> usize {
        self.blocks.len()
    }

    /// Whether only nothing is held (never: genesis or the committed tip is always there).
    pub fn is_empty(&self) -> bool {
        self.blocks.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sim::sim_genesis;

    /// A chain of blocks on `parent` with the given rounds (QC rounds = parent rounds).
    fn chain(parent: &Block, rounds: &[Round], tag: u8) -> Vec<(BlockId, Block)> {
        let mut out: Vec<(BlockId, Block)> = Vec::new();
        let mut p = parent.clone();
        for r in rounds {
            let pid = p.id();
            let mut b = p.clone();
            b.round = *r;
            b.parent_id = pid;
            b.qc = QuorumCert { block_id: pid, round: p.round, signatures: vec![] };
            b.payload.number = p.payload.number + 1;
            b.payload.body = vec![tag];
            out.push((b.id(), b.clone()));
            p = b;
        }
        out
    }

    #[test]
    fn walks_back_to_the_committed_tip() {
        let g = sim_genesis();
        let mut s = BlockStore::new(g.clone());
        let c = chain(&g, &[1, 2, 3], 0);
        assert_eq!(s.walk_to_committed(c[2].0), ChainWalk::Missing(c[2].0));
        s.insert(c[2].0, c[2].1.clone());
        s.insert(c[0].0, c[0].1.clone());
        assert_eq!(s.walk_to_committed(c[2].0), ChainWalk::Missing(c[1].0));
        s.insert(c[1].0, c[1].1.clone());
        assert_eq!(
            s.walk_to_committed(c[2].0),
            ChainWalk::Complete(c.iter().map(|x| x.0).collect())
        );
        s.set_committed(c[1].0);
        assert_eq!((s.committed_round(), s.committed_height()), (2, 2));
        assert_eq!(s.walk_to_committed(c[2].0), ChainWalk::Complete(vec![c[2].0]));
        // a fork from below the committed tip conflicts
        let fork = chain(&c[0].1, &[3, 4], 9);
        for (id, b) in &fork {
            s.insert(*id, b.clone());
        }
        assert_eq!(
            s.walk_to_committed(fork[1].0),
            ChainWalk::Conflicts { block_id: c[0].0, round: 1 }
        );
        assert_eq!(s.chain_from(c[2].0, 10, usize::MAX).len(), 4);
        assert_eq!(s.chain_from(c[2].0, 2, usize::MAX).len(), 2);
        // A byte budget stops the walk, but the asked-for block always goes.
        let one = s.get(&c[2].0).unwrap().encoded_len();
        assert_eq!(s.chain_from(c[2].0, 10, 1).len(), 1);
        assert_eq!(s.chain_from(c[2].0, 10, one * 2).len(), 2);
    }

    #[test]
    fn prunes_old_rounds_but_keeps_the_tip() {
        let g = sim_genesis();
        let mut s = BlockStore::new(g.clone());
        let rounds: Vec<Round> = (1..=RETAINED_COMMITTED_ROUNDS + 200).collect();
        let c = chain(&g, &rounds, 0);
        for (id, b) in &c {
            s.insert(*id, b.clone());
        }
        for (id, _) in &c {
            s.set_committed(*id);
        }
        assert!(s.len() <= RETAINED_COMMITTED_ROUNDS as usize + 70, "{}", s.len());
        assert!(s.contains(&s.committed_id()));
        assert!(!s.contains(&c[0].0));
    }
}
