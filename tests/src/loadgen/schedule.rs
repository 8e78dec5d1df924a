//! Pure planning: how many transactions each sender signs, in which order they go out, which
//! node receives them, how they are cut into batches, and the funding fan-out tree.

/// Splits `total` transactions over `accounts` senders as evenly as possible (the first
/// `total % accounts` senders get one more).
pub fn per_sender_counts(total: usize, accounts: usize) -> Vec<usize> {
    if accounts == 0 {
        return Vec::new();
    }
    let (base, extra) = (total / accounts, total % accounts);
    (0..accounts).map(|s| base + usize::from(s < extra)).collect()
}

/// One workload transaction before signing: its sender and its offset from the sender's first
/// free nonce.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Slot {
    /// Index of the sender account.
    pub sender: usize,
    /// Offset from the sender's next nonce (0 = the next nonce).
    pub offset: u64,
}

/// The send order: round `r` holds offset `r` of every sender that has one, so each sender's
/// nonces go out in order and its in-flight count stays near `window / accounts`.
pub fn round_robin_order(counts: &[usize]) -> Vec<Slot> {
    let rounds = counts.iter().copied().max().unwrap_or(0);
    let mut order = Vec::with_capacity(counts.iter().sum());
    for r in 0..rounds {
        for (sender, &count) in counts.iter().enumerate() {
            if r < count {
                order.push(Slot { sender, offset: r as u64 });
            }
        }
    }
    order
}

/// The lane (one sequential stream of requests) a sender's transactions travel in. There are
/// `lanes` lanes, a multiple of the node count; lane `l` sends to node `l % nodes`. A sender
/// always uses the same lane, so its nonces reach one node in order and never leave a gap.
pub fn lane_of(sender: usize, lanes: usize) -> usize {
    if lanes == 0 { 0 } else { sender % lanes }
}

/// The node a lane sends to.
pub fn node_of_lane(lane: usize, nodes: usize) -> usize {
    if nodes == 0 { 0 } else { lane % nodes }
}

/// Transaction indexes (into `order`) per lane, each list in send order.
pub fn per_lane_queues(order: &[Slot], lanes: usize) -> Vec<Vec<usize>> {
    let mut queues = vec![Vec::new(); lanes.max(1)];
    for (i, slot) in order.iter().enumerate() {
        queues[lane_of(slot.sender, lanes)].push(i);
    }
    queues
}

/// Cuts a queue into batches of at most `size` transactions.
pub fn batches(queue: &[usize], size: usize) -> Vec<Vec<usize>> {
    queue.chunks(size.max(1)).map(<[usize]>::to_vec).collect()
}

/// The funding fan-out: node 0 is the funder, node `j >= 1` is target `j - 1`; node `j` pays
/// its children `fanout * j + 1 ..= fanout * j + fanout`. Level `k` holds the nodes `k` hops
/// from the funder; each level is sent once the previous one is committed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FanoutTree {
    /// Number of targets (nodes are `0..=targets`).
    pub targets: usize,
    /// Children per payer (kept under the pool's per-sender limit).
    pub fanout: usize,
}

impl FanoutTree {
    /// A tree over `targets` accounts with `fanout` children per payer (at least 1).
    pub fn new(targets: usize, fanout: usize) -> Self {
        Self { targets, fanout: fanout.max(1) }
    }

    /// The children of node `j`.
    pub fn children(&self, j: usize) -> std::ops::Range<usize> {
        let first = (self.fanout * j + 1).min(self.targets + 1);
        let end = (self.fanout * j + self.fanout + 1).min(self.targets + 1);
        first..end
    }

    /// The levels below the funder: each a list of `(payer, child)` node pairs.
    pub fn levels(&self) -> Vec<Vec<(usize, usize)>> {
        let mut levels = Vec::new();
        let mut payers = vec![0usize];
        while !payers.is_empty() {
            let edges: Vec<(usize, usize)> =
                payers.iter().flat_map(|&p| self.children(p).map(move |c| (p, c))).collect();
            if edges.is_empty() {
                break;
            }
            payers = edges.iter().map(|&(_, c)| c).collect();
            levels.push(edges);
        }
        levels
    }

    /// What each node must receive: its own need plus everything its subtree receives plus
    /// `per_payment` for every payment it makes (its gas). Index 0 is the funder's total outlay.
    pub fn subtree_amounts(&self, own: &[u128], per_payment: u128) -> Vec<u128> {
        let n = self.targets + 1;
        let mut amounts = vec![0u128; n];
        for j in (0..n).rev() {
            let own_need = if j == 0 { 0 } else { own.get(j - 1).copied().unwrap_or(0) };
            let children = self.children(j);
            let paid: u128 = children.clone().map(|c| amounts[c]).sum();
            let fees = per_payment.saturating_mul(children.len() as u128);
            amounts[j] = own_need.saturating_add(paid).saturating_add(fees);
        }
        amounts
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_are_even_and_sum_up() {
        assert_eq!(per_sender_counts(10, 4), vec![3, 3, 2, 2]);
        assert_eq!(per_sender_counts(3, 5), vec![1, 1, 1, 0, 0]);
        assert_eq!(per_sender_counts(7, 0), Vec::<usize>::new());
        assert_eq!(per_sender_counts(1000, 7).iter().sum::<usize>(), 1000);
    }

    #[test]
    fn order_goes_round_by_round_with_consecutive_nonces_per_sender() {
        let order = round_robin_order(&[2, 1, 3]);
        let pairs: Vec<(usize, u64)> = order.iter().map(|s| (s.sender, s.offset)).collect();
        assert_eq!(pairs, vec![(0, 0), (1, 0), (2, 0), (0, 1), (2, 1), (2, 2)]);
        // Every sender's offsets appear once each, ascending.
        for sender in 0..3 {
            let offsets: Vec<u64> =
                order.iter().filter(|s| s.sender == sender).map(|s| s.offset).collect();
            let expected: Vec<u64> = (0..offsets.len() as u64).collect();
            assert_eq!(offsets, expected);
        }
    }

    #[test]
    fn senders_stick_to_one_lane_and_node_and_lanes_cover_everything() {
        let order = round_robin_order(&per_sender_counts(100, 10));
        let (nodes, lanes) = (3, 6);
        let queues = per_lane_queues(&order, lanes);
        assert_eq!(queues.len(), lanes);
        assert_eq!(queues.iter().map(Vec::len).sum::<usize>(), 100);
        for (lane, queue) in queues.iter().enumerate() {
            assert!(queue.iter().all(|&i| lane_of(order[i].sender, lanes) == lane));
            assert!(queue.windows(2).all(|w| w[0] < w[1]), "lanes keep the send order");
            // Senders spread round-robin over the nodes.
            assert!(queue.iter().all(|&i| order[i].sender % nodes == node_of_lane(lane, nodes)));
        }
        assert_eq!(per_lane_queues(&order, 1)[0].len(), 100);
    }

    #[test]
    fn batches_are_bounded_and_complete() {
        let queue: Vec<usize> = (0..250).collect();
        let b = batches(&queue, 100);
        assert_eq!(b.iter().map(Vec::len).collect::<Vec<_>>(), vec![100, 100, 50]);
        assert_eq!(b.concat(), queue);
        assert!(batches(&[], 100).is_empty());
        assert_eq!(batches(&[1, 2], 0).len(), 2, "a zero size means one per batch");
    }

    #[test]
    fn fanout_tree_reaches_every_target_once() {
        for (targets, fanout) in
            [(0, 32), (1, 32), (32, 32), (33, 32), (200, 32), (2000, 32), (10, 3)]
        {
            let tree = FanoutTree::new(targets, fanout);
            let levels = tree.levels();
            let mut seen: Vec<usize> = levels.iter().flatten().map(|&(_, c)| c).collect();
            seen.sort_unstable();
            assert_eq!(seen, (1..=targets).collect::<Vec<_>>());
            // A payer at level k was paid at level k - 1 (or is the funder).
            for (k, level) in levels.iter().enumerate() {
                for &(payer, _) in level {
                    if k == 0 {
                        assert_eq!(payer, 0);
                    } else {
                        assert!(levels[k - 1].iter().any(|&(_, c)| c == payer));
                    }
                }
                let mut per_payer = std::collections::HashMap::new();
                for &(payer, _) in level {
                    *per_payer.entry(payer).or_insert(0usize) += 1;
                }
                assert!(per_payer.values().all(|&n| n <= fanout));
            }
        }
        assert_eq!(FanoutTree::new(200, 32).levels().len(), 2);
    }

    #[test]
    fn subtree_amounts_cover_needs_and_fees() {
        // Funder -> 1, 2; 1 -> 3, 4; 2 -> 5 (fanout 2).
        let tree = FanoutTree::new(5, 2);
        let amounts = tree.subtree_amounts(&[10, 20, 30, 40, 50], 1);
        assert_eq!(amounts[3], 30);
        assert_eq!(amounts[1], 10 + 30 + 40 + 2);
        assert_eq!(amounts[2], 20 + 50 + 1);
        assert_eq!(amounts[0], amounts[1] + amounts[2] + 2);
        assert_eq!(amounts[0], 150 + 5, "the funder pays everything plus every payment's fee");
    }
}
