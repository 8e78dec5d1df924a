//! The best-transactions iterator the payload builder draws from.

use std::{
    cmp::Ordering,
    collections::{BinaryHeap, HashSet},
    sync::Arc,
};

use alloy_primitives::Address;

use super::PooledTx;

/// Heap entry: the next transaction of one sender.
struct Candidate {
    tip: u128,
    id: u64,
    chain: usize,
}

impl PartialEq for Candidate {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}
impl Eq for Candidate {}
impl PartialOrd for Candidate {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Candidate {
    // Highest tip first; on equal tips, the earlier arrival.
    fn cmp(&self, other: &Self) -> Ordering {
        self.tip.cmp(&other.tip).then_with(|| other.id.cmp(&self.id))
    }
}

/// A snapshot of executable transactions, yielded by effective tip with nonce order per sender.
///
/// It owns its transactions, so the pool's lock is not held while a block is built.
pub struct BestTransactions {
    base_fee: u64,
    chains: Vec<(Vec<Arc<PooledTx>>, usize)>,
    heap: BinaryHeap<Candidate>,
    skipped: HashSet<Address>,
}

impl std::fmt::Debug for BestTransactions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BestTransactions").field("remaining", &self.heap.len()).finish()
    }
}

impl BestTransactions {
    pub(super) fn new(base_fee: u64, chains: impl Iterator<Item = Vec<Arc<PooledTx>>>) -> Self {
        let mut best =
            Self { base_fee, chains: Vec::new(), heap: BinaryHeap::new(), skipped: HashSet::new() };
        for chain in chains {
            let index = best.chains.len();
            best.chains.push((chain, 0));
            best.push_next(index);
        }
        best
    }

    fn push_next(&mut self, chain: usize) {
        let Some((txs, pos)) = self.chains.get(chain) else { return };
        if let Some(tx) = txs.get(*pos)
            && let Some(tip) = tx.effective_tip(self.base_fee)
        {
            self.heap.push(Candidate { tip, id: tx.id, chain });
        }
    }

    /// Skips the rest of `sender`'s transactions (one of them failed to execute).
    pub fn mark_invalid(&mut self, sender: Address) {
        self.skipped.insert(sender);
    }
}

impl Iterator for BestTransactions {
    type Item = Arc<PooledTx>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            let candidate = self.heap.pop()?;
            let (txs, pos) = self.chains.get_mut(candidate.chain)?;
            let tx = txs.get(*pos)?.clone();
            *pos += 1;
            if self.skipped.contains(&tx.sender) {
                continue;
            }
            self.push_next(candidate.chain);
            return Some(tx);
        }
    }
}
