//! The history indexes' backlog: the `AccountHistory`/`StorageHistory` keys of committed blocks
//! that are not (all) in the indexes yet, and the schedule that writes them.
//!
//! Blocks go into the indexes a batch of [`HISTORY_INDEX_BATCH`] at a time, in key order, so a
//! batch dirties each index page once instead of once per changed key and block. A complete
//! batch is not written by one commit: that stalled the commit for the whole batch (about a
//! second for 32 blocks of 10,000 L1 actions). It is written in shares over the commits of the
//! next batch, each share the next keys in key order, and is complete at the latest when the
//! next batch is; only then does `history_indexed` move past it. Keys written before their batch
//! is complete are harmless: reads use the index only up to `history_indexed`, and the change
//! sets of the blocks after it.
//!
//! The backlog is kept in memory, a cache of the change sets. A commit that finds it out of step
//! with the database (the first commit after opening, after an unwind or a failed commit)
//! rebuilds it from the change sets of the blocks after `history_indexed`; keys of a batch that
//! were already written are written again, which changes nothing.

use super::writer::{Rw, Writer, entries_from, open};
use super::{HISTORY_INDEX_BATCH, StorageError, corrupt, tables};
use std::cmp::Reverse;
use std::collections::{BinaryHeap, VecDeque};

/// An `AccountHistory` key: address ‖ block.
pub(super) type AccountKey = [u8; 28];
/// A `StorageHistory` key: address ‖ slot ‖ block.
pub(super) type SlotKey = [u8; 60];

/// The history index keys of one block, each list in key order.
#[derive(Default)]
pub(super) struct BlockKeys {
    pub(super) accounts: Vec<AccountKey>,
    pub(super) slots: Vec<SlotKey>,
}

/// One block's keys and how many of each list are in the index.
struct Run {
    keys: BlockKeys,
    accounts_written: usize,
    slots_written: usize,
}

/// The keys of the blocks after `history_indexed`, oldest block first.
pub(super) struct Backlog {
    indexed: u64,
    runs: VecDeque<Run>,
}

impl std::fmt::Debug for Backlog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Backlog")
            .field("indexed", &self.indexed)
            .field("blocks", &self.runs.len())
            .finish()
    }
}

impl Backlog {
    /// The tip this backlog ends at.
    fn tip(&self) -> u64 {
        self.indexed + self.runs.len() as u64
    }

    /// Whether this is the backlog of a database at `history_indexed` `indexed` and tip `tip`.
    pub(super) fn follows(&self, indexed: u64, tip: u64) -> bool {
        self.indexed == indexed && self.tip() == tip
    }

    /// The backlog of blocks `indexed + 1 ..= tip`, from their change sets.
    pub(super) fn rebuild(txn: &Rw<'_>, indexed: u64, tip: u64) -> Result<Self, StorageError> {
        let mut runs: VecDeque<Run> =
            (indexed..tip).map(|_| Run::new(BlockKeys::default())).collect();
        let from = tables::number_key(indexed + 1);
        fn run<'r>(
            runs: &'r mut VecDeque<Run>,
            first: u64,
            number: u64,
            table: &'static str,
            key: &[u8],
        ) -> Result<&'r mut Run, StorageError> {
            number
                .checked_sub(first)
                .and_then(|i| runs.get_mut(usize::try_from(i).ok()?))
                .ok_or_else(|| corrupt(table, key, "change set of a block after the tip"))
        }
        for (key, _) in entries_from(txn, &open(txn, tables::ACCOUNT_CHANGE_SETS)?, &from)? {
            let (number, address) = tables::parse_account_change_key(&key)
                .ok_or_else(|| corrupt(tables::ACCOUNT_CHANGE_SETS, &key, "malformed key"))?;
            run(&mut runs, indexed + 1, number, tables::ACCOUNT_CHANGE_SETS, &key)?
                .keys
                .accounts
                .push(tables::account_history_key(&address, number));
        }
        for (key, _) in entries_from(txn, &open(txn, tables::STORAGE_CHANGE_SETS)?, &from)? {
            let (number, address, slot) = tables::parse_storage_change_key(&key)
                .ok_or_else(|| corrupt(tables::STORAGE_CHANGE_SETS, &key, "malformed key"))?;
            run(&mut runs, indexed + 1, number, tables::STORAGE_CHANGE_SETS, &key)?
                .keys
                .slots
                .push(tables::storage_history_key(&address, &slot, number));
        }
        // Change set keys are block ‖ address (‖ slot): within a block, the history keys come
        // out in key order already.
        Ok(Self { indexed, runs })
    }

    /// Adds the keys of the block after the tip.
    pub(super) fn push(&mut self, keys: BlockKeys) {
        self.runs.push_back(Run::new(keys));
    }

    /// Writes the keys due now that the tip has moved from `before` to [`Backlog::tip`], and
    /// returns the new `history_indexed`. Every complete batch but the newest is written
    /// whole (only when a commit brings more than a batch of blocks); the newest complete batch
    /// gets the share of its remaining keys that finishes it evenly by the time the next batch
    /// is complete.
    pub(super) fn write_due(&mut self, txn: &Rw<'_>, before: u64) -> Result<u64, StorageError> {
        let batch = HISTORY_INDEX_BATCH;
        let complete = (self.tip() - self.indexed) / batch;
        if complete >= 2 {
            let blocks = ((complete - 1) * batch) as usize;
            self.write(txn, blocks, None)?;
            self.runs.drain(..blocks);
            self.indexed += blocks as u64;
        }
        if self.tip() - self.indexed < batch {
            return Ok(self.indexed);
        }
        // The pending batch's shares run over the commits from the one after it completed up to
        // the one that completes the next batch.
        let start = before.max(self.indexed + batch);
        let deadline = self.indexed + 2 * batch;
        let share = Share { now: self.tip() - start, left: deadline - start };
        self.write(txn, batch as usize, Some(share))?;
        if self.runs.iter().take(batch as usize).all(Run::is_written) {
            self.runs.drain(..batch as usize);
            self.indexed += batch;
        }
        Ok(self.indexed)
    }

    /// Writes the remaining keys of the oldest `blocks` blocks in key order: all of them, or
    /// `share` of them.
    fn write(
        &mut self,
        txn: &Rw<'_>,
        blocks: usize,
        share: Option<Share>,
    ) -> Result<(), StorageError> {
        let runs = self.runs.iter_mut().take(blocks);
        let (mut accounts, mut slots) = (Vec::new(), Vec::new());
        for run in runs {
            accounts.push((run.keys.accounts.as_slice(), &mut run.accounts_written));
            slots.push((run.keys.slots.as_slice(), &mut run.slots_written));
        }
        let mut writer = Writer::new(txn, tables::ACCOUNT_HISTORY)?;
        write_smallest(&mut writer, &mut accounts, share)?;
        let mut writer = Writer::new(txn, tables::STORAGE_HISTORY)?;
        write_smallest(&mut writer, &mut slots, share)
    }
}

impl Run {
    fn new(keys: BlockKeys) -> Self {
        Self { keys, accounts_written: 0, slots_written: 0 }
    }

    fn is_written(&self) -> bool {
        self.accounts_written == self.keys.accounts.len()
            && self.slots_written == self.keys.slots.len()
    }
}

/// `now` of the `left` blocks still to come before a batch must be complete.
#[derive(Clone, Copy)]
struct Share {
    now: u64,
    left: u64,
}

impl Share {
    /// How many of `remaining` keys to write now: rounded up, all of them when nothing is left.
    fn of(self, remaining: usize) -> usize {
        if self.now >= self.left {
            return remaining;
        }
        let keys = (remaining as u128 * self.now as u128).div_ceil(self.left as u128);
        keys as usize
    }
}

/// Writes the smallest not yet written keys of `runs` (each sorted, with its count of written
/// keys) in key order: all of them, or `share` of them.
fn write_smallest<K: Ord + Copy + AsRef<[u8]>>(
    writer: &mut Writer<'_>,
    runs: &mut [(&[K], &mut usize)],
    share: Option<Share>,
) -> Result<(), StorageError> {
    let remaining: usize = runs.iter().map(|(keys, written)| keys.len() - **written).sum();
    let mut count = share.map_or(remaining, |share| share.of(remaining));
    let mut heap = BinaryHeap::with_capacity(runs.len());
    for (i, (keys, written)) in runs.iter().enumerate() {
        if let Some(key) = keys.get(**written) {
            heap.push(Reverse((*key, i)));
        }
    }
    while count > 0
        && let Some(Reverse((key, i))) = heap.pop()
    {
        writer.put(key.as_ref(), &[])?;
        let (keys, written) = &mut runs[i];
        **written += 1;
        if let Some(next) = keys.get(**written) {
            heap.push(Reverse((*next, i)));
        }
        count -= 1;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::Share;

    #[test]
    fn shares_finish_a_batch_evenly_by_the_deadline() {
        // One block per commit over 32 commits: every key written once, the last share last.
        let mut remaining = 1_000usize;
        let mut shares = Vec::new();
        for left in (1..=32u64).rev() {
            let now = Share { now: 1, left }.of(remaining);
            remaining -= now;
            shares.push(now);
        }
        assert_eq!(remaining, 0);
        assert!(shares.iter().all(|&s| (31..=32).contains(&s)), "{shares:?}");
        // Nothing new, nothing due; past the deadline, everything.
        assert_eq!(Share { now: 0, left: 32 }.of(10), 0);
        assert_eq!(Share { now: 5, left: 3 }.of(10), 10);
        assert_eq!(Share { now: 1, left: 32 }.of(0), 0);
    }
}
