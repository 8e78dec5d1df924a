//! The incremental Merkle-Patricia state root.
//!
//! # Data
//!
//! The trie's leaves are the *hashed state*: `HashedAccounts` (keccak(address) → nonce, balance,
//! code hash and the account's storage root) and `HashedStorage` (keccak(address) ‖ keccak(slot)
//! → value). Besides the leaves, the database keeps the trie's *branch nodes* as
//! [`BranchNodeCompact`] records (`AccountTrie`, `StorageTrie`): for a branch at path `P` its
//! state mask (which children exist), tree mask (which children have stored nodes below) and
//! hash mask with the hashes of its children that are themselves branch nodes. alloy-trie's
//! [`HashBuilder`](alloy_trie::HashBuilder) with updates decides which branches are stored: those
//! with at least one branch child. Bottom branches (only leaf children) are not stored; their
//! ≤16 leaves are cheap to re-read.
//!
//! # Incremental root
//!
//! A block's changes become a [`HashedPostState`] (hashed keys, new values, wiped storages). For
//! every touched account with storage changes the storage trie root is recomputed, then the
//! account trie root, each by [`trie_root`]: a walk over the stored branch nodes that reuses the
//! stored hash of every branch child with no changed key under it (the [`PrefixSet`] answers
//! that), reads leaves only in the changed regions (stored leaves merged with the block's new
//! values) and feeds both, in key order, to a hash builder. The work is proportional to the
//! changed keys times the trie depth (≈ log₁₆ of the state size), not to the state size.
//!
//! The result is the root and the [`TrieUpdates`] — new, changed and deleted branch nodes, new
//! storage roots and the hashed state to write — which storage commits in the block's write
//! transaction. A wiped storage (self-destruct, or an account that stops existing) drops every
//! stored node and leaf of that account and rebuilds its storage trie from the new slots only.
//!
//! Storage tries of different accounts are independent, so
//! [`compute_state_root_parallel`] computes them on rayon's pool, each thread with its own
//! cursors on the same MDBX read snapshot, before the account trie.
//!
//! The same computation serves unwinding: the hashed post state is then the values *before* the
//! unwound blocks, read from the change sets; and batches: the hashed post states of several
//! blocks merge ([`HashedPostState::extend`]) into one computation.

mod overlay;
mod prefix_set;
mod trie;

pub use overlay::OverlayStore;

pub use prefix_set::PrefixSet;
pub use trie::{NodeUpdates, TrieSource, trie_proof, trie_root};

use crate::storage::{StorageError, StoredAccount};
use alloy_primitives::{Address, B256, Bytes, U256, keccak256};
use alloy_trie::{BranchNodeCompact, EMPTY_ROOT_HASH, Nibbles, TrieAccount};
use revm::database::BundleState;
use std::collections::BTreeMap;

/// Read access to the stored trie and hashed state, as of the current tip.
pub trait TrieStore {
    /// First stored account-trie node with path `>= path`.
    fn seek_account_node(
        &mut self,
        path: &Nibbles,
    ) -> Result<Option<(Nibbles, BranchNodeCompact)>, StorageError>;
    /// First stored node of `owner`'s storage trie with path `>= path`.
    fn seek_storage_node(
        &mut self,
        owner: &B256,
        path: &Nibbles,
    ) -> Result<Option<(Nibbles, BranchNodeCompact)>, StorageError>;
    /// First hashed account with key `>= key`: (key, account, storage root).
    fn seek_hashed_account(
        &mut self,
        key: &B256,
    ) -> Result<Option<(B256, StoredAccount, B256)>, StorageError>;
    /// First non-zero slot of `owner` with hashed slot `>= key`.
    fn seek_hashed_storage(
        &mut self,
        owner: &B256,
        key: &B256,
    ) -> Result<Option<(B256, U256)>, StorageError>;
}

/// New values of one account's storage, by hashed slot; zero means deleted.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HashedStorage {
    /// Every stored slot of the account is dropped before `slots` apply.
    pub wiped: bool,
    /// New values by keccak(slot); zero deletes.
    pub slots: BTreeMap<B256, U256>,
}

/// A block's state changes keyed for the trie: new account values (`None`: the account no longer
/// exists) and storage changes, by keccak(address).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HashedPostState {
    /// New account values by keccak(address).
    pub accounts: BTreeMap<B256, Option<StoredAccount>>,
    /// Storage changes by keccak(address).
    pub storages: BTreeMap<B256, HashedStorage>,
}

impl HashedPostState {
    /// The changes a revm bundle makes: accounts whose info changed or that were destroyed, and
    /// slots whose present value differs from the original. Accounts whose info is `None` (never
    /// created, self-destructed, EIP-161 cleared) are removed with all their storage.
    pub fn from_bundle(bundle: &BundleState) -> Self {
        let mut post = Self::default();
        for (address, account) in &bundle.state {
            let destroyed = account.was_destroyed() || account.info.is_none();
            let changed_slots: BTreeMap<B256, U256> = account
                .storage
                .iter()
                .filter(|(_, slot)| {
                    destroyed || slot.present_value != slot.previous_or_original_value
                })
                .map(|(slot, value)| {
                    (keccak256(B256::from(slot.to_be_bytes::<32>())), value.present_value)
                })
                .collect();
            if !destroyed && !account.is_info_changed() && changed_slots.is_empty() {
                continue;
            }
            let hashed = keccak256(address);
            let info = account.info.as_ref().map(StoredAccount::from_info);
            post.accounts.insert(hashed, info);
            if destroyed || !changed_slots.is_empty() {
                post.storages
                    .insert(hashed, HashedStorage { wiped: destroyed, slots: changed_slots });
            }
        }
        post
    }
}

impl HashedPostState {
    /// Applies the changes of a later block on top of these: later account values win, a later
    /// wipe drops the earlier slot changes, later slots override earlier ones.
    pub fn extend(&mut self, later: HashedPostState) {
        self.accounts.extend(later.accounts);
        for (owner, storage) in later.storages {
            match self.storages.get_mut(&owner) {
                Some(existing) if !storage.wiped => existing.slots.extend(storage.slots),
                _ => {
                    self.storages.insert(owner, storage);
                }
            }
        }
    }
}

/// One account's storage changes as written by storage.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StorageTrieUpdates {
    /// Drop every leaf and node of the account first.
    pub wiped: bool,
    /// New slot values by hashed slot (zero deletes).
    pub slots: BTreeMap<B256, U256>,
    /// Branch node changes of the account's storage trie.
    pub nodes: NodeUpdates,
}

/// Everything the state root computation wants written: the result of
/// [`Database::state_root_with`](crate::storage::Database::state_root_with), consumed by
/// [`Database::commit_block`](crate::storage::Database::commit_block).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TrieUpdates {
    /// Hash of the canonical tip the updates were computed on.
    pub(crate) parent_hash: B256,
    /// The new state root.
    pub(crate) state_root: B256,
    /// New hashed accounts with their storage roots (`None` deletes).
    pub(crate) accounts: BTreeMap<B256, Option<(StoredAccount, B256)>>,
    /// Storage changes by hashed address.
    pub(crate) storages: BTreeMap<B256, StorageTrieUpdates>,
    /// Account trie branch node changes.
    pub(crate) account_nodes: NodeUpdates,
}

impl TrieUpdates {
    /// The state root these updates produce.
    pub fn state_root(&self) -> B256 {
        self.state_root
    }

    /// Hash of the block the updates apply on top of.
    pub fn parent_hash(&self) -> B256 {
        self.parent_hash
    }

    /// Number of account-trie node writes and deletes.
    pub fn account_node_changes(&self) -> usize {
        self.account_nodes.len()
    }

    /// Number of storage-trie node writes and deletes over all accounts.
    pub fn storage_node_changes(&self) -> usize {
        self.storages.values().map(|s| s.nodes.len()).sum()
    }
}

/// RLP of an account leaf.
fn account_leaf(account: &StoredAccount, storage_root: B256) -> Vec<u8> {
    alloy_rlp::encode(TrieAccount {
        nonce: account.nonce,
        balance: account.balance,
        storage_root,
        code_hash: account.code_hash,
    })
}

/// RLP of a storage leaf.
fn storage_leaf(value: &U256) -> Vec<u8> {
    alloy_rlp::encode(value)
}

/// Computes the state root of the stored state with `post` applied, and the updates that write it.
/// The returned updates have a zero parent hash; the caller stamps it.
pub fn compute_state_root<S: TrieStore>(
    store: &mut S,
    post: HashedPostState,
) -> Result<TrieUpdates, StorageError> {
    let (accounts, jobs) = storage_jobs(post);
    let mut storage = BTreeMap::new();
    for (owner, job) in jobs {
        storage.insert(owner, storage_trie_root(store, owner, job)?);
    }
    finish(store, accounts, storage)
}

/// [`compute_state_root`] with the storage tries computed in parallel (rayon), each on its own
/// store from `new_store` (for MDBX: new cursors on the same read transaction, so every thread
/// sees the same snapshot), then the account trie.
pub fn compute_state_root_parallel<S, F>(
    new_store: F,
    post: HashedPostState,
) -> Result<TrieUpdates, StorageError>
where
    S: TrieStore,
    F: Fn() -> Result<S, StorageError> + Sync,
{
    use rayon::prelude::*;
    let (accounts, jobs) = storage_jobs(post);
    let storage = if jobs.len() < 2 {
        let mut store = new_store()?;
        jobs.into_iter()
            .map(|(owner, job)| Ok((owner, storage_trie_root(&mut store, owner, job)?)))
            .collect::<Result<BTreeMap<_, _>, StorageError>>()?
    } else {
        jobs.into_par_iter()
            .map(|(owner, job)| {
                let mut store = new_store()?;
                Ok((owner, storage_trie_root(&mut store, owner, job)?))
            })
            .collect::<Result<BTreeMap<_, _>, StorageError>>()?
    };
    finish(&mut new_store()?, accounts, storage)
}

/// New account values, and the storage tries to recompute (none for accounts that are gone).
type Jobs = (BTreeMap<B256, Option<StoredAccount>>, Vec<(B256, HashedStorage)>);

fn storage_jobs(post: HashedPostState) -> Jobs {
    let HashedPostState { accounts, storages } = post;
    let jobs = storages
        .into_iter()
        .filter(|(owner, _)| !matches!(accounts.get(owner), Some(None)))
        .collect();
    (accounts, jobs)
}

/// Root and node changes of `owner`'s storage trie with `storage` applied.
pub fn storage_trie_root<S: TrieStore>(
    store: &mut S,
    owner: B256,
    storage: HashedStorage,
) -> Result<(B256, StorageTrieUpdates), StorageError> {
    let changed = PrefixSet::new(storage.slots.keys().map(Nibbles::unpack).collect::<Vec<_>>());
    let overlay: BTreeMap<B256, Option<Vec<u8>>> = storage
        .slots
        .iter()
        .map(|(slot, value)| (*slot, (!value.is_zero()).then(|| storage_leaf(value))))
        .collect();
    let mut source = StorageSource { store, owner, wiped: storage.wiped, overlay: &overlay };
    let (root, nodes) = trie_root(&mut source, &changed)?;
    Ok((root, StorageTrieUpdates { wiped: storage.wiped, slots: storage.slots, nodes }))
}

/// The account trie over the new accounts and the already computed storage tries.
fn finish<S: TrieStore>(
    store: &mut S,
    new_accounts: BTreeMap<B256, Option<StoredAccount>>,
    storage: BTreeMap<B256, (B256, StorageTrieUpdates)>,
) -> Result<TrieUpdates, StorageError> {
    let (mut updates, leaves) = account_leaves(store, new_accounts, storage)?;
    let changed = PrefixSet::new(leaves.keys().map(Nibbles::unpack).collect::<Vec<_>>());
    let mut source = AccountSource { store, overlay: &leaves };
    let (root, nodes) = trie_root(&mut source, &changed)?;
    updates.state_root = root;
    updates.account_nodes = nodes;
    Ok(updates)
}

/// New leaf RLPs by hashed key (`None`: removed).
type Leaves = BTreeMap<B256, Option<Vec<u8>>>;

/// New account leaves (`None`: removed) of the touched accounts, with their storage roots, and
/// the account and storage updates (all but the account trie nodes and root).
fn account_leaves<S: TrieStore>(
    store: &mut S,
    new_accounts: BTreeMap<B256, Option<StoredAccount>>,
    mut storage: BTreeMap<B256, (B256, StorageTrieUpdates)>,
) -> Result<(TrieUpdates, Leaves), StorageError> {
    let mut touched: Vec<B256> = new_accounts.keys().chain(storage.keys()).copied().collect();
    touched.sort_unstable();
    touched.dedup();

    let mut updates = TrieUpdates::default();
    let mut leaves: BTreeMap<B256, Option<Vec<u8>>> = BTreeMap::new();
    for hashed in touched {
        let account = match new_accounts.get(&hashed) {
            Some(account) => account.map(|a| (a, None)),
            None => store
                .seek_hashed_account(&hashed)?
                .filter(|(key, _, _)| *key == hashed)
                .map(|(_, account, root)| (account, Some(root))),
        };
        let Some((account, old_root)) = account else {
            // Gone (or never existed): drop the leaf and everything stored for its storage.
            updates.accounts.insert(hashed, None);
            updates
                .storages
                .insert(hashed, StorageTrieUpdates { wiped: true, ..Default::default() });
            leaves.insert(hashed, None);
            continue;
        };
        let storage_root = match storage.remove(&hashed) {
            Some((root, storage_updates)) => {
                updates.storages.insert(hashed, storage_updates);
                root
            }
            None => match old_root {
                Some(root) => root,
                None => store
                    .seek_hashed_account(&hashed)?
                    .filter(|(key, _, _)| *key == hashed)
                    .map_or(EMPTY_ROOT_HASH, |(_, _, root)| root),
            },
        };
        updates.accounts.insert(hashed, Some((account, storage_root)));
        leaves.insert(hashed, Some(account_leaf(&account, storage_root)));
    }
    Ok((updates, leaves))
}

/// An EIP-1186 proof of one account and some of its storage slots.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StateProof {
    /// The account and its storage root, `None` when it does not exist.
    pub account: Option<(StoredAccount, B256)>,
    /// The account trie nodes from the root along keccak(address), root first.
    pub account_proof: Vec<Bytes>,
    /// Per requested slot: the slot, its value and the storage trie nodes along keccak(slot).
    pub storage: Vec<(B256, U256, Vec<Bytes>)>,
    /// The state root the proofs lead to.
    pub state_root: B256,
}

/// Proves `address` and its `slots` in the stored state with `post` applied (the state root
/// computation with the walk also following the proven keys).
pub fn compute_proof<S: TrieStore>(
    store: &mut S,
    post: HashedPostState,
    address: Address,
    slots: &[B256],
) -> Result<StateProof, StorageError> {
    let owner = keccak256(address);
    let (accounts, jobs) = storage_jobs(post);
    let mut storage = BTreeMap::new();
    let mut target_storage = HashedStorage::default();
    for (hashed, job) in jobs {
        if hashed == owner {
            target_storage = job;
        } else {
            storage.insert(hashed, storage_trie_root(store, hashed, job)?);
        }
    }
    let exists = match accounts.get(&owner) {
        Some(account) => account.is_some(),
        None => store.seek_hashed_account(&owner)?.is_some_and(|(key, _, _)| key == owner),
    };

    // The target's storage trie, with proofs of the requested slots and their values.
    let hashed_slots: Vec<B256> = slots.iter().map(keccak256).collect();
    let mut storage_proofs = Vec::with_capacity(slots.len());
    if exists {
        let changed =
            PrefixSet::new(target_storage.slots.keys().map(Nibbles::unpack).collect::<Vec<_>>());
        let overlay: BTreeMap<B256, Option<Vec<u8>>> = target_storage
            .slots
            .iter()
            .map(|(slot, value)| (*slot, (!value.is_zero()).then(|| storage_leaf(value))))
            .collect();
        let mut source =
            StorageSource { store, owner, wiped: target_storage.wiped, overlay: &overlay };
        let (root, nodes) = trie_proof(&mut source, &changed, &hashed_slots)?;
        for (slot, hashed) in slots.iter().zip(&hashed_slots) {
            let value = match source.seek_leaf(hashed)? {
                Some((key, rlp)) if key == *hashed => {
                    <U256 as alloy_rlp::Decodable>::decode(&mut rlp.as_slice()).map_err(|e| {
                        StorageError::Corrupt {
                            table: "HashedStorage",
                            key: hex::encode(hashed),
                            reason: format!("slot value: {e}"),
                        }
                    })?
                }
                _ => U256::ZERO,
            };
            let proof = nodes
                .matching_nodes_sorted(&Nibbles::unpack(hashed))
                .into_iter()
                .map(|(_, node)| node)
                .collect();
            storage_proofs.push((*slot, value, proof));
        }
        let updates = StorageTrieUpdates { wiped: target_storage.wiped, ..Default::default() };
        storage.insert(owner, (root, updates));
    } else {
        storage_proofs.extend(slots.iter().map(|slot| (*slot, U256::ZERO, Vec::new())));
    }

    // The account trie, with the target's leaf (or where its path leaves the trie).
    let mut touched = accounts;
    if exists && !touched.contains_key(&owner) {
        // Its storage root is recomputed above: make its leaf part of the walk.
        if let Some((_, account, _)) =
            store.seek_hashed_account(&owner)?.filter(|(key, _, _)| *key == owner)
        {
            touched.insert(owner, Some(account));
        }
    }
    let (updates, leaves) = account_leaves(store, touched, storage)?;
    let changed = PrefixSet::new(leaves.keys().map(Nibbles::unpack).collect::<Vec<_>>());
    let mut source = AccountSource { store, overlay: &leaves };
    let (state_root, nodes) = trie_proof(&mut source, &changed, &[owner])?;
    let account_proof =
        nodes.matching_nodes_sorted(&Nibbles::unpack(owner)).into_iter().map(|(_, n)| n).collect();
    let account = updates.accounts.get(&owner).copied().flatten();
    Ok(StateProof { account, account_proof, storage: storage_proofs, state_root })
}

/// Seeks the merged view of a stored leaf source and an overlay of new values (`None` deletes).
fn merged_seek(
    mut stored: impl FnMut(&B256) -> Result<Option<(B256, Vec<u8>)>, StorageError>,
    overlay: &BTreeMap<B256, Option<Vec<u8>>>,
    key: &B256,
) -> Result<Option<(B256, Vec<u8>)>, StorageError> {
    let mut from = *key;
    loop {
        let below = stored(&from)?;
        let over = overlay.range(from..).next();
        match over {
            Some((over_key, over_value)) if below.as_ref().is_none_or(|(k, _)| over_key <= k) => {
                match over_value {
                    Some(value) => return Ok(Some((*over_key, value.clone()))),
                    None => match trie::successor(over_key) {
                        Some(next) => from = next,
                        None => return Ok(None),
                    },
                }
            }
            _ => return Ok(below),
        }
    }
}

/// The account trie of a store with new leaves on top.
struct AccountSource<'a, S> {
    store: &'a mut S,
    overlay: &'a BTreeMap<B256, Option<Vec<u8>>>,
}

impl<S: TrieStore> TrieSource for AccountSource<'_, S> {
    type Error = StorageError;

    fn seek_node(
        &mut self,
        path: &Nibbles,
    ) -> Result<Option<(Nibbles, BranchNodeCompact)>, StorageError> {
        self.store.seek_account_node(path)
    }

    fn seek_leaf(&mut self, key: &B256) -> Result<Option<(B256, Vec<u8>)>, StorageError> {
        let store = &mut *self.store;
        merged_seek(
            |from| {
                Ok(store
                    .seek_hashed_account(from)?
                    .map(|(key, account, root)| (key, account_leaf(&account, root))))
            },
            self.overlay,
            key,
        )
    }
}

/// One storage trie of a store with new slot values on top.
struct StorageSource<'a, S> {
    store: &'a mut S,
    owner: B256,
    wiped: bool,
    overlay: &'a BTreeMap<B256, Option<Vec<u8>>>,
}

impl<S: TrieStore> TrieSource for StorageSource<'_, S> {
    type Error = StorageError;

    fn seek_node(
        &mut self,
        path: &Nibbles,
    ) -> Result<Option<(Nibbles, BranchNodeCompact)>, StorageError> {
        if self.wiped { Ok(None) } else { self.store.seek_storage_node(&self.owner, path) }
    }

    fn seek_leaf(&mut self, key: &B256) -> Result<Option<(B256, Vec<u8>)>, StorageError> {
        let (store, owner, wiped) = (&mut *self.store, self.owner, self.wiped);
        merged_seek(
            |from| {
                if wiped {
                    return Ok(None);
                }
                Ok(store
                    .seek_hashed_storage(&owner, from)?
                    .map(|(slot, value)| (slot, storage_leaf(&value))))
            },
            self.overlay,
            key,
        )
    }
}

#[cfg(test)]
mod tests;
