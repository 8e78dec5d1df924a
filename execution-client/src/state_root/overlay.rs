//! The trie of blocks that are validated but not yet persisted: the stored trie and hashed state
//! with the cumulative [`TrieUpdates`] of those blocks on top, so the next block's root is
//! incremental over the last pending root instead of over the persisted tip.

use super::{StorageTrieUpdates, TrieStore, TrieUpdates};
use crate::storage::{StorageError, StoredAccount};
use alloy_primitives::{B256, U256};
use alloy_trie::{BranchNodeCompact, Nibbles};

impl TrieUpdates {
    /// Folds the updates of the next block (computed on top of `self`) into `self`, so the result
    /// takes the persisted tip straight to `later`'s root.
    pub fn merge(&mut self, later: TrieUpdates) {
        self.state_root = later.state_root;
        self.accounts.extend(later.accounts);
        self.account_nodes.extend(later.account_nodes);
        for (owner, storage) in later.storages {
            match self.storages.get_mut(&owner) {
                Some(existing) if !storage.wiped => {
                    existing.slots.extend(storage.slots);
                    existing.nodes.extend(storage.nodes);
                }
                _ => {
                    self.storages.insert(owner, storage);
                }
            }
        }
    }

    /// The updates of consecutive blocks (oldest first, each computed on the state after the
    /// one before) folded into one set that takes the state after block `base` to the last
    /// block's; `None` for no blocks.
    pub fn fold<'a>(base: B256, deltas: impl IntoIterator<Item = &'a TrieUpdates>) -> Option<Self> {
        let mut deltas = deltas.into_iter();
        let mut folded = deltas.next()?.clone();
        folded.parent_hash = base;
        for delta in deltas {
            folded.merge(delta.clone());
        }
        Some(folded)
    }
}

/// A [`TrieStore`] reading `inner` (the persisted state) through `pending` updates.
pub struct OverlayStore<'a, S> {
    inner: S,
    pending: &'a TrieUpdates,
}

impl<'a, S> OverlayStore<'a, S> {
    /// `inner` seen through `pending`.
    pub fn new(inner: S, pending: &'a TrieUpdates) -> Self {
        Self { inner, pending }
    }

    fn storage(&self, owner: &B256) -> Option<&'a StorageTrieUpdates> {
        self.pending.storages.get(owner)
    }
}

/// First entry `>= key` of the stored source merged with an overlay (`None` values delete).
fn merged<K: Ord + Copy, V>(
    mut stored: impl FnMut(&K) -> Result<Option<(K, V)>, StorageError>,
    overlay: impl Fn(&K) -> Option<(K, Option<V>)>,
    successor: impl Fn(&K) -> Option<K>,
    key: &K,
) -> Result<Option<(K, V)>, StorageError> {
    let mut from = *key;
    loop {
        let below = stored(&from)?;
        match overlay(&from) {
            Some((over_key, over_value)) if below.as_ref().is_none_or(|(k, _)| over_key <= *k) => {
                match over_value {
                    Some(value) => return Ok(Some((over_key, value))),
                    None => match successor(&over_key) {
                        Some(next) => from = next,
                        None => return Ok(None),
                    },
                }
            }
            _ => return Ok(below),
        }
    }
}

/// The smallest node path after `path` in nibble order.
fn next_path(path: &Nibbles) -> Option<Nibbles> {
    if path.len() < 64 {
        let mut next = *path;
        next.push(0);
        Some(next)
    } else {
        path.increment()
    }
}

impl<S: TrieStore> TrieStore for OverlayStore<'_, S> {
    fn seek_account_node(
        &mut self,
        path: &Nibbles,
    ) -> Result<Option<(Nibbles, BranchNodeCompact)>, StorageError> {
        let (inner, nodes) = (&mut self.inner, &self.pending.account_nodes);
        merged(
            |from| inner.seek_account_node(from),
            |from| nodes.range(*from..).next().map(|(p, n)| (*p, n.clone())),
            next_path,
            path,
        )
    }

    fn seek_storage_node(
        &mut self,
        owner: &B256,
        path: &Nibbles,
    ) -> Result<Option<(Nibbles, BranchNodeCompact)>, StorageError> {
        let storage = self.storage(owner);
        let wiped = storage.is_some_and(|s| s.wiped);
        let inner = &mut self.inner;
        merged(
            |from| if wiped { Ok(None) } else { inner.seek_storage_node(owner, from) },
            |from| {
                storage.and_then(|s| s.nodes.range(*from..).next().map(|(p, n)| (*p, n.clone())))
            },
            next_path,
            path,
        )
    }

    fn seek_hashed_account(
        &mut self,
        key: &B256,
    ) -> Result<Option<(B256, StoredAccount, B256)>, StorageError> {
        let (inner, accounts) = (&mut self.inner, &self.pending.accounts);
        Ok(merged(
            |from| Ok(inner.seek_hashed_account(from)?.map(|(k, a, r)| (k, (a, r)))),
            |from| accounts.range(*from..).next().map(|(k, v)| (*k, *v)),
            super::trie::successor,
            key,
        )?
        .map(|(k, (a, r))| (k, a, r)))
    }

    fn seek_hashed_storage(
        &mut self,
        owner: &B256,
        key: &B256,
    ) -> Result<Option<(B256, U256)>, StorageError> {
        let storage = self.storage(owner);
        let wiped = storage.is_some_and(|s| s.wiped);
        let inner = &mut self.inner;
        merged(
            |from| if wiped { Ok(None) } else { inner.seek_hashed_storage(owner, from) },
            |from| {
                storage.and_then(|s| {
                    s.slots.range(*from..).next().map(|(k, v)| (*k, (!v.is_zero()).then_some(*v)))
                })
            },
            super::trie::successor,
            key,
        )
    }
}
