//! Randomized tests of the incremental root against a from-scratch root over all keys.

use super::*;
use alloy_primitives::{Address, keccak256};
use alloy_trie::root::{state_root_unhashed, storage_root_unhashed};
use proptest::prelude::*;
use revm::primitives::KECCAK_EMPTY;

/// The trie tables in memory, updated exactly as storage writes them.
#[derive(Default)]
struct MemStore {
    account_nodes: BTreeMap<Nibbles, BranchNodeCompact>,
    storage_nodes: BTreeMap<(B256, Nibbles), BranchNodeCompact>,
    accounts: BTreeMap<B256, (StoredAccount, B256)>,
    storage: BTreeMap<(B256, B256), U256>,
    /// Node reads, to check the work stays proportional to the change.
    node_reads: usize,
    leaf_reads: usize,
}

impl TrieStore for MemStore {
    fn seek_account_node(
        &mut self,
        path: &Nibbles,
    ) -> Result<Option<(Nibbles, BranchNodeCompact)>, StorageError> {
        self.node_reads += 1;
        Ok(self.account_nodes.range(*path..).next().map(|(p, n)| (*p, n.clone())))
    }

    fn seek_storage_node(
        &mut self,
        owner: &B256,
        path: &Nibbles,
    ) -> Result<Option<(Nibbles, BranchNodeCompact)>, StorageError> {
        self.node_reads += 1;
        Ok(self
            .storage_nodes
            .range((*owner, *path)..)
            .next()
            .filter(|((o, _), _)| o == owner)
            .map(|((_, p), n)| (*p, n.clone())))
    }

    fn seek_hashed_account(
        &mut self,
        key: &B256,
    ) -> Result<Option<(B256, StoredAccount, B256)>, StorageError> {
        self.leaf_reads += 1;
        Ok(self.accounts.range(*key..).next().map(|(k, (a, r))| (*k, *a, *r)))
    }

    fn seek_hashed_storage(
        &mut self,
        owner: &B256,
        key: &B256,
    ) -> Result<Option<(B256, U256)>, StorageError> {
        self.leaf_reads += 1;
        Ok(self
            .storage
            .range((*owner, *key)..)
            .next()
            .filter(|((o, _), _)| o == owner)
            .map(|((_, s), v)| (*s, *v)))
    }
}

impl MemStore {
    /// Mirrors `storage::writer::write_trie_updates`.
    fn apply(&mut self, updates: &TrieUpdates) {
        for (owner, storage) in &updates.storages {
            if storage.wiped {
                self.storage.retain(|(o, _), _| o != owner);
                self.storage_nodes.retain(|(o, _), _| o != owner);
            }
            for (slot, value) in &storage.slots {
                if value.is_zero() {
                    self.storage.remove(&(*owner, *slot));
                } else {
                    self.storage.insert((*owner, *slot), *value);
                }
            }
            for (path, node) in &storage.nodes {
                match node {
                    Some(node) => self.storage_nodes.insert((*owner, *path), node.clone()),
                    None => self.storage_nodes.remove(&(*owner, *path)),
                };
            }
        }
        for (hashed, account) in &updates.accounts {
            match account {
                Some(value) => self.accounts.insert(*hashed, *value),
                None => self.accounts.remove(hashed),
            };
        }
        for (path, node) in &updates.account_nodes {
            match node {
                Some(node) => self.account_nodes.insert(*path, node.clone()),
                None => self.account_nodes.remove(path),
            };
        }
    }
}

/// The reference model: plain state, rooted from scratch with alloy-trie.
#[derive(Default, Clone)]
struct Model {
    accounts: BTreeMap<Address, (StoredAccount, BTreeMap<B256, U256>)>,
}

impl Model {
    fn root(&self) -> B256 {
        state_root_unhashed(self.accounts.iter().map(|(address, (account, storage))| {
            let storage_root = storage_root_unhashed(storage.iter().map(|(k, v)| (*k, *v)));
            (
                *address,
                TrieAccount {
                    nonce: account.nonce,
                    balance: account.balance,
                    storage_root,
                    code_hash: account.code_hash,
                },
            )
        }))
    }
}

/// A small deterministic generator (xorshift), seeded by proptest.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

fn address(i: u64) -> Address {
    Address::from_word(keccak256(i.to_be_bytes()))
}

fn slot(i: u64) -> B256 {
    B256::from(U256::from(i))
}

/// One random block over `universe` addresses: updates the model and returns the hashed changes.
fn random_block(rng: &mut Rng, model: &mut Model, universe: u64, touches: u64) -> HashedPostState {
    let mut post = HashedPostState::default();
    for _ in 0..touches {
        let address = address(rng.below(universe));
        let hashed = keccak256(address);
        match rng.below(10) {
            // Delete the account with its storage (self-destruct / EIP-161 clear).
            0 => {
                model.accounts.remove(&address);
                post.accounts.insert(hashed, None);
                post.storages.insert(hashed, HashedStorage { wiped: true, slots: BTreeMap::new() });
            }
            // Destroy and recreate in the same block (wipe + new slots).
            1 => {
                let account = StoredAccount {
                    nonce: 1,
                    balance: U256::from(rng.below(1000)),
                    code_hash: B256::repeat_byte(7),
                };
                let mut storage = BTreeMap::new();
                let mut hashed_slots = BTreeMap::new();
                for _ in 0..rng.below(4) {
                    let (s, v) = (slot(rng.below(40)), U256::from(rng.below(3)));
                    if v.is_zero() {
                        storage.remove(&s);
                    } else {
                        storage.insert(s, v);
                    }
                    hashed_slots.insert(keccak256(s), v);
                }
                model.accounts.insert(address, (account, storage));
                post.accounts.insert(hashed, Some(account));
                post.storages.insert(hashed, HashedStorage { wiped: true, slots: hashed_slots });
            }
            // Storage writes (zero deletes) on an existing or new account.
            2..=5 => {
                let entry = model.accounts.entry(address).or_insert_with(|| {
                    (
                        StoredAccount { nonce: 0, balance: U256::from(1), code_hash: KECCAK_EMPTY },
                        BTreeMap::new(),
                    )
                });
                post.accounts.insert(hashed, Some(entry.0));
                let changes = post.storages.entry(hashed).or_default();
                for _ in 0..1 + rng.below(6) {
                    let (s, v) = (slot(rng.below(60)), U256::from(rng.below(4)));
                    if v.is_zero() {
                        entry.1.remove(&s);
                    } else {
                        entry.1.insert(s, v);
                    }
                    changes.slots.insert(keccak256(s), v);
                }
            }
            // Balance/nonce change (creates the account if missing).
            _ => {
                let entry = model.accounts.entry(address).or_insert_with(|| {
                    (
                        StoredAccount { nonce: 0, balance: U256::ZERO, code_hash: KECCAK_EMPTY },
                        BTreeMap::new(),
                    )
                });
                entry.0.balance = U256::from(rng.next());
                entry.0.nonce += 1;
                post.accounts.insert(hashed, Some(entry.0));
            }
        }
    }
    post
}

/// Genesis of `n` accounts, a few with storage.
fn genesis(rng: &mut Rng, model: &mut Model, n: u64) -> HashedPostState {
    let mut post = HashedPostState::default();
    for i in 0..n {
        let address = address(i);
        let account = StoredAccount {
            nonce: i % 3,
            balance: U256::from(rng.next()),
            code_hash: KECCAK_EMPTY,
        };
        let mut storage = BTreeMap::new();
        if i % 7 == 0 {
            let changes = post.storages.entry(keccak256(address)).or_default();
            for _ in 0..rng.below(50) {
                let (s, v) = (slot(rng.below(60)), U256::from(1 + rng.below(100)));
                storage.insert(s, v);
                changes.slots.insert(keccak256(s), v);
            }
        }
        model.accounts.insert(address, (account, storage));
        post.accounts.insert(keccak256(address), Some(account));
    }
    post
}

fn check_sequence(seed: u64, accounts: u64, blocks: usize, touches: u64) {
    let mut rng = Rng(seed | 1);
    let mut model = Model::default();
    let mut store = MemStore::default();
    let post = genesis(&mut rng, &mut model, accounts);
    let updates = compute_state_root(&mut store, post).unwrap();
    assert_eq!(updates.state_root, model.root(), "genesis root, seed {seed}");
    store.apply(&updates);
    for block in 0..blocks {
        let post = random_block(&mut rng, &mut model, accounts + accounts / 4, touches);
        let updates = compute_state_root(&mut store, post).unwrap();
        assert_eq!(updates.state_root, model.root(), "block {block}, seed {seed}");
        store.apply(&updates);
        // A rebuild from the leaves alone gives the same root and the same stored nodes.
        let mut fresh = MemStore {
            accounts: store.accounts.clone(),
            storage: store.storage.clone(),
            ..Default::default()
        };
        let all: HashedPostState = HashedPostState::default();
        let rebuilt = rebuild(&mut fresh, all);
        assert_eq!(rebuilt, updates.state_root, "rebuild, block {block}, seed {seed}");
        assert_eq!(
            fresh.account_nodes, store.account_nodes,
            "stored account nodes, block {block}, seed {seed}"
        );
        assert_eq!(
            fresh.storage_nodes, store.storage_nodes,
            "stored storage nodes, block {block}, seed {seed}"
        );
    }
}

/// Full rebuild of the trie nodes from the hashed leaves of `store` (nodes empty).
fn rebuild(store: &mut MemStore, _: HashedPostState) -> B256 {
    // Recompute every storage trie, then the account trie, with every key marked changed.
    let owners: Vec<B256> = store.accounts.keys().copied().collect();
    let mut post = HashedPostState::default();
    for owner in owners {
        let slots: BTreeMap<B256, U256> = store
            .storage
            .range((owner, B256::ZERO)..)
            .take_while(|((o, _), _)| *o == owner)
            .map(|((_, s), v)| (*s, *v))
            .collect();
        let account = store.accounts[&owner].0;
        post.accounts.insert(owner, Some(account));
        if !slots.is_empty() {
            post.storages.insert(owner, HashedStorage { wiped: false, slots });
        }
    }
    let updates = compute_state_root(store, post).unwrap();
    store.apply(&updates);
    updates.state_root
}

#[test]
fn empty_state_has_empty_root() {
    let mut store = MemStore::default();
    let updates = compute_state_root(&mut store, HashedPostState::default()).unwrap();
    assert_eq!(updates.state_root, EMPTY_ROOT_HASH);
    assert!(updates.account_nodes.is_empty());
}

#[test]
fn deleting_everything_returns_to_the_empty_root() {
    let mut rng = Rng(42);
    let mut model = Model::default();
    let mut store = MemStore::default();
    let updates = compute_state_root(&mut store, genesis(&mut rng, &mut model, 300)).unwrap();
    store.apply(&updates);
    assert!(!store.account_nodes.is_empty());
    let mut post = HashedPostState::default();
    for address in model.accounts.keys() {
        post.accounts.insert(keccak256(address), None);
    }
    let updates = compute_state_root(&mut store, post).unwrap();
    assert_eq!(updates.state_root, EMPTY_ROOT_HASH);
    store.apply(&updates);
    assert!(
        store.account_nodes.is_empty(),
        "stale account nodes left: {:?}",
        store.account_nodes.keys()
    );
    assert!(
        store.storage_nodes.is_empty() && store.storage.is_empty() && store.accounts.is_empty()
    );
}

#[test]
fn unchanged_state_reuses_the_stored_root() {
    let mut rng = Rng(7);
    let mut model = Model::default();
    let mut store = MemStore::default();
    let updates = compute_state_root(&mut store, genesis(&mut rng, &mut model, 2000)).unwrap();
    store.apply(&updates);
    store.node_reads = 0;
    store.leaf_reads = 0;
    let again = compute_state_root(&mut store, HashedPostState::default()).unwrap();
    assert_eq!(again.state_root, model.root());
    assert_eq!((store.node_reads, store.leaf_reads), (1, 0));
}

#[test]
fn work_grows_with_touched_keys_not_state_size() {
    // One balance change on a 2k and a 20k state: the node and leaf reads must stay small and
    // nearly equal (one more trie level at most), not grow 10x with the state.
    let mut reads = Vec::new();
    for size in [2_000u64, 20_000] {
        let mut rng = Rng(99);
        let mut model = Model::default();
        let mut store = MemStore::default();
        let updates = compute_state_root(&mut store, genesis(&mut rng, &mut model, size)).unwrap();
        store.apply(&updates);
        store.node_reads = 0;
        store.leaf_reads = 0;
        let mut post = HashedPostState::default();
        let target = address(size / 2);
        let entry = model.accounts.get_mut(&target).unwrap();
        entry.0.balance += U256::from(1);
        post.accounts.insert(keccak256(target), Some(entry.0));
        let updates = compute_state_root(&mut store, post).unwrap();
        assert_eq!(updates.state_root, model.root());
        reads.push(store.node_reads + store.leaf_reads);
    }
    assert!(reads[0] < 60 && reads[1] < 60, "reads per touched key: {reads:?}");
}

#[test]
fn fixed_seeds() {
    for seed in [1, 2, 3, 0xdead_beef] {
        check_sequence(seed, 400, 6, 40);
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    #[test]
    fn incremental_root_equals_full_recompute(seed in any::<u64>(), accounts in 1u64..600, touches in 1u64..80) {
        check_sequence(seed, accounts, 4, touches);
    }

    #[test]
    fn tiny_states(seed in any::<u64>(), accounts in 1u64..6, touches in 1u64..6) {
        check_sequence(seed, accounts, 8, touches);
    }
}

#[test]
fn hashed_post_state_from_bundle() {
    use revm::database::states::StorageSlot;
    use revm::database::{AccountStatus, BundleAccount, StorageWithOriginalValues};
    use revm::state::AccountInfo;

    let info = |balance: u64| AccountInfo { balance: U256::from(balance), ..Default::default() };
    let slots = |entries: &[(u64, u64, u64)]| -> StorageWithOriginalValues {
        entries
            .iter()
            .map(|(slot, old, new)| {
                (U256::from(*slot), StorageSlot::new_changed(U256::from(*old), U256::from(*new)))
            })
            .collect()
    };
    let (changed, unchanged, destroyed, recreated, removed) = (
        Address::repeat_byte(1),
        Address::repeat_byte(2),
        Address::repeat_byte(3),
        Address::repeat_byte(4),
        Address::repeat_byte(5),
    );
    let mut bundle = BundleState::default();
    // Balance changed, one slot changed and one written back to its original value.
    bundle.state.insert(
        changed,
        BundleAccount::new(
            Some(info(1)),
            Some(info(2)),
            slots(&[(1, 0, 5), (2, 7, 7)]),
            AccountStatus::Changed,
        ),
    );
    // Loaded but unchanged: not part of the post state.
    bundle.state.insert(
        unchanged,
        BundleAccount::new(
            Some(info(3)),
            Some(info(3)),
            slots(&[(1, 4, 4)]),
            AccountStatus::Loaded,
        ),
    );
    // Self-destructed: gone, storage wiped.
    bundle.state.insert(
        destroyed,
        BundleAccount::new(Some(info(3)), None, slots(&[]), AccountStatus::Destroyed),
    );
    // Destroyed and re-created in the block: storage wiped, new slots (even equal ones) kept.
    bundle.state.insert(
        recreated,
        BundleAccount::new(
            Some(info(3)),
            Some(info(1)),
            slots(&[(9, 9, 9)]),
            AccountStatus::DestroyedChanged,
        ),
    );
    // EIP-161 clear of an empty account: info None.
    bundle.state.insert(
        removed,
        BundleAccount::new(Some(info(0)), None, slots(&[]), AccountStatus::Changed),
    );

    let post = HashedPostState::from_bundle(&bundle);
    let h = |a: Address| keccak256(a);
    let s = |i: u64| keccak256(B256::from(U256::from(i)));
    assert_eq!(post.accounts.len(), 4);
    assert_eq!(post.accounts[&h(changed)].unwrap().balance, U256::from(2));
    assert!(!post.accounts.contains_key(&h(unchanged)));
    assert_eq!(post.accounts[&h(destroyed)], None);
    assert_eq!(post.accounts[&h(removed)], None);
    assert_eq!(
        post.storages[&h(changed)],
        HashedStorage { wiped: false, slots: [(s(1), U256::from(5))].into() }
    );
    assert_eq!(post.storages[&h(destroyed)], HashedStorage { wiped: true, slots: BTreeMap::new() });
    assert_eq!(
        post.storages[&h(recreated)],
        HashedStorage { wiped: true, slots: [(s(9), U256::from(9))].into() }
    );
    assert!(post.storages[&h(removed)].wiped);
}

/// Checks EIP-1186 proofs of every kind of account (present, with storage, deleted in the
/// pending changes, never created) against the model, on a store with pending changes on top.
fn check_proofs(seed: u64) {
    use alloy_trie::proof::verify_proof;
    let mut rng = Rng(seed | 1);
    let mut model = Model::default();
    let mut store = MemStore::default();
    let accounts = 300;
    let updates = compute_state_root(&mut store, genesis(&mut rng, &mut model, accounts)).unwrap();
    store.apply(&updates);
    for _ in 0..3 {
        let post = random_block(&mut rng, &mut model, accounts + accounts / 4, 40);
        let updates = compute_state_root(&mut store, post).unwrap();
        store.apply(&updates);
    }
    // Not applied: the proofs must see these changes on top of the store.
    let pending = random_block(&mut rng, &mut model, accounts + accounts / 4, 40);
    let root = model.root();
    let slots: Vec<B256> = (0..64).map(slot).collect();
    for i in (0..accounts + accounts / 2).step_by(7) {
        let address = address(i);
        let proof = compute_proof(&mut store, pending.clone(), address, &slots).unwrap();
        assert_eq!(proof.state_root, root, "seed {seed}, account {i}");
        let key = Nibbles::unpack(keccak256(address));
        let entry = model.accounts.get(&address);
        let expected = entry.map(|(account, storage)| {
            let storage_root = storage_root_unhashed(storage.iter().map(|(k, v)| (*k, *v)));
            assert_eq!(proof.account, Some((*account, storage_root)), "seed {seed}, {i}");
            alloy_rlp::encode(TrieAccount {
                nonce: account.nonce,
                balance: account.balance,
                storage_root,
                code_hash: account.code_hash,
            })
        });
        if entry.is_none() {
            assert_eq!(proof.account, None);
        }
        verify_proof(root, key, expected, &proof.account_proof)
            .unwrap_or_else(|e| panic!("account proof, seed {seed}, account {i}: {e}"));
        let storage_root = proof.account.map_or(EMPTY_ROOT_HASH, |(_, r)| r);
        for (slot, value, nodes) in &proof.storage {
            let want = entry.and_then(|(_, s)| s.get(slot)).copied().unwrap_or_default();
            assert_eq!(*value, want, "seed {seed}, account {i}, slot {slot}");
            let expected = (!want.is_zero()).then(|| alloy_rlp::encode(want));
            verify_proof(storage_root, Nibbles::unpack(keccak256(slot)), expected, nodes)
                .unwrap_or_else(|e| panic!("storage proof, seed {seed}, {i}, {slot}: {e}"));
        }
    }
}

#[test]
fn proofs_verify_against_the_root_for_present_changed_deleted_and_absent_keys() {
    for seed in [1, 7, 42, 1234] {
        check_proofs(seed);
    }
}
