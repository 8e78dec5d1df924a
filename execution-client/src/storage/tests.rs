//! Database tests: identity checks, block round trips, random chains checked against an
//! in-memory model (roots, history at every block, unwind), and rejection of bad commits.

use super::*;
use alloy_consensus::{Eip658Value, Receipt, ReceiptWithBloom, Signed, TxLegacy};
use alloy_primitives::{Bytes, Signature, TxKind, U256, keccak256};
use alloy_trie::TrieAccount;
use alloy_trie::root::{state_root_unhashed, storage_root_unhashed};
use revm::DatabaseRef;
use revm::bytecode::Bytecode;
use revm::database::{AccountStatus, BundleAccount, states::StorageSlot};
use revm::primitives::KECCAK_EMPTY;
use std::collections::BTreeMap;

pub(crate) const GENESIS: &str = r#"{
  "config": { "chainId": 1337, "londonBlock": 0, "shanghaiTime": 0, "cancunTime": 0 },
  "gasLimit": "0x1c9c380",
  "timestamp": "0x0",
  "difficulty": "0x0",
  "alloc": {
    "0x00000000000000000000000000000000000000aa": { "balance": "0x10", "nonce": "0x1" },
    "0x00000000000000000000000000000000000000bb": {
      "balance": "0x0",
      "code": "0x600160005500",
      "storage": { "0x0000000000000000000000000000000000000000000000000000000000000001": "0x0000000000000000000000000000000000000000000000000000000000000002" }
    }
  }
}"#;

pub(crate) fn spec() -> ChainSpec {
    ChainSpec::from_json_str(GENESIS, "genesis.json").unwrap()
}

/// Plain state as a model: account and its storage.
pub(crate) type ModelState = BTreeMap<Address, (StoredAccount, BTreeMap<B256, U256>)>;

pub(crate) fn model_root(state: &ModelState) -> B256 {
    state_root_unhashed(state.iter().map(|(address, (account, storage))| {
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

pub(crate) fn genesis_model(spec: &ChainSpec) -> ModelState {
    spec.genesis()
        .alloc
        .iter()
        .map(|(address, account)| {
            let code_hash =
                account.code.as_ref().filter(|c| !c.is_empty()).map_or(KECCAK_EMPTY, keccak256);
            let storage = account
                .storage
                .iter()
                .flatten()
                .map(|(k, v)| (*k, U256::from_be_bytes(v.0)))
                .filter(|(_, v)| !v.is_zero())
                .collect();
            (
                *address,
                (
                    StoredAccount {
                        nonce: account.nonce.unwrap_or(0),
                        balance: account.balance,
                        code_hash,
                    },
                    storage,
                ),
            )
        })
        .collect()
}

/// Deterministic xorshift generator.
pub(crate) struct Rng(pub(crate) u64);

impl Rng {
    pub(crate) fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    pub(crate) fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

fn info(account: &StoredAccount) -> AccountInfo {
    account.to_info()
}

/// A random block's bundle over `universe` addresses; applies it to `model`.
pub(crate) fn random_bundle(
    rng: &mut Rng,
    model: &mut ModelState,
    universe: u64,
    touches: u64,
) -> BundleState {
    let mut bundle = BundleState::default();
    for _ in 0..touches {
        let address = Address::from_word(keccak256(rng.below(universe).to_be_bytes()));
        if bundle.state.contains_key(&address) {
            continue;
        }
        let original = model.get(&address).map(|(a, _)| *a);
        let original_info = original.as_ref().map(info);
        let account = match rng.below(10) {
            0 => {
                model.remove(&address);
                BundleAccount::new(
                    original_info,
                    None,
                    Default::default(),
                    AccountStatus::Destroyed,
                )
            }
            1 => {
                // Self-destruct and re-create with code and fresh storage in the same block.
                let code = Bytes::from(vec![0x60, rng.below(256) as u8, 0x00]);
                let code_hash = keccak256(&code);
                bundle.contracts.insert(code_hash, Bytecode::new_raw(code));
                let new =
                    StoredAccount { nonce: 1, balance: U256::from(rng.below(100)), code_hash };
                let mut storage = BTreeMap::new();
                let mut slots = revm::database::StorageWithOriginalValues::default();
                for _ in 0..rng.below(4) {
                    let slot = U256::from(rng.below(30));
                    let value = U256::from(1 + rng.below(5));
                    storage.insert(B256::from(slot.to_be_bytes::<32>()), value);
                    slots.insert(slot, StorageSlot::new_changed(U256::ZERO, value));
                }
                model.insert(address, (new, storage));
                BundleAccount::new(
                    original_info,
                    Some(info(&new)),
                    slots,
                    AccountStatus::DestroyedChanged,
                )
            }
            2..=5 => {
                let entry = model.entry(address).or_insert_with(|| {
                    (
                        StoredAccount { nonce: 1, balance: U256::from(1), code_hash: KECCAK_EMPTY },
                        BTreeMap::new(),
                    )
                });
                let mut slots = revm::database::StorageWithOriginalValues::default();
                for _ in 0..1 + rng.below(5) {
                    let slot = U256::from(rng.below(30));
                    let key = B256::from(slot.to_be_bytes::<32>());
                    if slots.contains_key(&slot) {
                        continue;
                    }
                    let old = entry.1.get(&key).copied().unwrap_or_default();
                    let value = U256::from(rng.below(4));
                    if value.is_zero() {
                        entry.1.remove(&key);
                    } else {
                        entry.1.insert(key, value);
                    }
                    slots.insert(slot, StorageSlot::new_changed(old, value));
                }
                let status = if original.is_some() {
                    AccountStatus::Changed
                } else {
                    AccountStatus::InMemoryChange
                };
                BundleAccount::new(original_info, Some(info(&entry.0)), slots, status)
            }
            _ => {
                let entry = model.entry(address).or_insert_with(|| {
                    (
                        StoredAccount { nonce: 0, balance: U256::ZERO, code_hash: KECCAK_EMPTY },
                        BTreeMap::new(),
                    )
                });
                entry.0.nonce += 1;
                entry.0.balance = U256::from(rng.next());
                let status = if original.is_some() {
                    AccountStatus::Changed
                } else {
                    AccountStatus::InMemoryChange
                };
                BundleAccount::new(original_info, Some(info(&entry.0)), Default::default(), status)
            }
        };
        bundle.state.insert(address, account);
    }
    bundle
}

/// An empty-bodied child of the tip with the given state root.
pub(crate) fn child_block(db: &Database, state_root: B256, salt: u64) -> SealedBlock {
    let (number, parent_hash) = db.canonical_tip().unwrap();
    let header = Header {
        number: number + 1,
        parent_hash,
        state_root,
        timestamp: number + 1,
        extra_data: Bytes::from(salt.to_be_bytes().to_vec()),
        ..Default::default()
    };
    seal_block(Block {
        header,
        body: BlockBody { transactions: vec![], ommers: vec![], withdrawals: None },
    })
}

/// Computes the root, checks it against the model and commits.
pub(crate) fn commit(
    db: &Database,
    bundle: BundleState,
    model: &ModelState,
    salt: u64,
) -> SealedBlock {
    let (root, updates) = db.state_root_with(&bundle).unwrap();
    assert_eq!(root, model_root(model), "incremental root differs from a full recompute");
    let block = child_block(db, root, salt);
    db.commit_block(&block, &[], &[], bundle, updates).unwrap();
    block
}

/// Asserts `provider` reads exactly `model` for every address of the universe and every slot.
fn assert_state(provider: &StateProvider<'_>, model: &ModelState, universe: u64, context: &str) {
    for i in 0..universe {
        let address = Address::from_word(keccak256(i.to_be_bytes()));
        let expected = model.get(&address);
        assert_eq!(
            provider.account(address).unwrap(),
            expected.map(|(a, _)| *a),
            "{context}: account {i}"
        );
        for slot in 0..30u64 {
            let key = B256::from(U256::from(slot).to_be_bytes::<32>());
            let value = expected.and_then(|(_, s)| s.get(&key)).copied().unwrap_or_default();
            assert_eq!(
                provider.storage(address, key).unwrap(),
                value,
                "{context}: account {i} slot {slot}"
            );
        }
    }
}

#[test]
fn init_writes_genesis_and_reopens() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db");
    let spec = spec();
    let db = Database::init(&path, &spec).unwrap();
    assert_eq!(db.canonical_tip().unwrap(), (0, spec.genesis_hash()));
    assert_eq!(db.header(0).unwrap().unwrap(), *spec.genesis_header());
    assert_eq!(db.block_number(spec.genesis_hash()).unwrap(), Some(0));
    let block = db.block(spec.genesis_hash()).unwrap().unwrap();
    assert_eq!(block.hash(), spec.genesis_hash());
    assert_eq!(block.body.withdrawals, Some(Default::default()));

    let state = db.latest().unwrap();
    let contract = Address::with_last_byte(0xbb);
    let account = state.basic_ref(contract).unwrap().unwrap();
    assert_eq!(
        state.code_by_hash_ref(account.code_hash).unwrap().original_bytes().as_ref(),
        &[0x60, 1, 0x60, 0, 0x55, 0]
    );
    assert_eq!(state.storage_ref(contract, U256::from(1)).unwrap(), U256::from(2));
    assert_eq!(state.basic_ref(Address::with_last_byte(0xaa)).unwrap().unwrap().nonce, 1);
    assert_eq!(state.basic_ref(Address::with_last_byte(0xcc)).unwrap(), None);
    assert_eq!(state.block_hash_ref(0).unwrap(), spec.genesis_hash());
    drop(state);
    let (root, _) = db.state_root_with(&BundleState::default()).unwrap();
    assert_eq!(root, spec.genesis_header().state_root);
    drop(db);

    let db = Database::open(&path).unwrap();
    assert_eq!((db.chain_id(), db.genesis_hash()), (1337, spec.genesis_hash()));
    drop(db);
    // `init` again on the same chain opens it; another chain is refused.
    Database::init(&path, &spec).unwrap();
    let other = ChainSpec::from_json_str(&GENESIS.replace("1337", "1338"), "other.json").unwrap();
    assert!(matches!(
        Database::init(&path, &other),
        Err(StorageError::ChainMismatch { found_chain_id: 1337, .. })
    ));
}

/// As many state readers as the heavy-request pool may hold, plus the rest of the node's, are
/// open at once: MDBX's default reader table (about a hundred slots) would refuse them.
#[test]
fn many_readers_are_open_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let spec = spec();
    let db = Database::init(&dir.path().join("db"), &spec).unwrap();
    let readers =
        (0..crate::storage::MAX_READERS / 2).map(|_| db.latest().unwrap()).collect::<Vec<_>>();
    for state in readers.iter().step_by(256) {
        assert_eq!(state.basic_ref(Address::with_last_byte(0xaa)).unwrap().unwrap().nonce, 1);
    }
}

#[test]
fn refuses_missing_and_foreign_directories_untouched() {
    let dir = tempfile::tempdir().unwrap();
    let empty = dir.path().join("empty");
    std::fs::create_dir(&empty).unwrap();
    assert!(matches!(Database::open(&empty), Err(StorageError::NotInitialized { .. })));
    assert_eq!(std::fs::read_dir(&empty).unwrap().count(), 0, "open must not create files");

    let foreign = dir.path().join("foreign");
    std::fs::create_dir(&foreign).unwrap();
    let garbage = vec![0x5a; 64 * 1024];
    std::fs::write(foreign.join(DATA_FILE), &garbage).unwrap();
    let err = Database::open(&foreign).unwrap_err();
    assert!(matches!(err, StorageError::Foreign { .. }), "{err}");
    assert_eq!(
        std::fs::read(foreign.join(DATA_FILE)).unwrap(),
        garbage,
        "foreign file was modified"
    );
    assert!(matches!(Database::init(&foreign, &spec()), Err(StorageError::Foreign { .. })));

    // An MDBX environment of another program (no Meta table).
    let other = dir.path().join("other");
    {
        let env = libmdbx::Database::<NoWriteMap>::open_with_options(
            &other,
            DatabaseOptions { max_tables: Some(4), ..Default::default() },
        )
        .unwrap();
        let txn = env.begin_rw_txn().unwrap();
        let table = txn.create_table(Some("Stuff"), TableFlags::default()).unwrap();
        txn.put(&table, b"k", b"v", libmdbx::WriteFlags::empty()).unwrap();
        txn.commit().unwrap();
    }
    let before = std::fs::read(other.join(DATA_FILE)).unwrap();
    let err = Database::open(&other).unwrap_err();
    assert!(err.to_string().contains("no Meta table"), "{err}");
    assert_eq!(std::fs::read(other.join(DATA_FILE)).unwrap(), before);

    let nonempty = dir.path().join("nonempty");
    std::fs::create_dir(&nonempty).unwrap();
    std::fs::write(nonempty.join("notes.txt"), b"hello").unwrap();
    assert!(matches!(Database::init(&nonempty, &spec()), Err(StorageError::Foreign { .. })));
}

#[test]
fn block_receipts_and_transactions_round_trip() {
    let dir = tempfile::tempdir().unwrap();
    let db = Database::init(dir.path(), &spec()).unwrap();
    let txs: Vec<TxEnvelope> = (0..3u64)
        .map(|nonce| {
            let tx = TxLegacy {
                nonce,
                gas_limit: 21_000,
                to: TxKind::Call(Address::with_last_byte(1)),
                chain_id: Some(1337),
                ..Default::default()
            };
            TxEnvelope::Legacy(Signed::new_unhashed(tx, Signature::test_signature()))
        })
        .collect();
    let receipts: Vec<ReceiptEnvelope> = (0..3u64)
        .map(|i| {
            ReceiptEnvelope::Legacy(ReceiptWithBloom::from(Receipt {
                status: Eip658Value::Eip658(true),
                cumulative_gas_used: 21_000 * (i + 1),
                logs: vec![],
            }))
        })
        .collect();
    let senders = vec![Address::with_last_byte(9); 3];
    let (root, updates) = db.state_root_with(&BundleState::default()).unwrap();
    let mut block = child_block(&db, root, 0).into_inner();
    block.body.transactions = txs.clone();
    block.body.withdrawals = Some(Default::default());
    let block = seal_block(block);
    db.commit_block(&block, &senders, &receipts, BundleState::default(), updates).unwrap();

    assert_eq!(db.block(1).unwrap().unwrap(), block);
    assert_eq!(db.block(block.hash()).unwrap().unwrap().body, block.body);
    assert_eq!(db.senders(1).unwrap().unwrap(), senders);
    assert_eq!(db.receipts(1).unwrap().unwrap(), receipts);
    let (tx, location) = db.transaction_by_hash(*txs[2].tx_hash()).unwrap().unwrap();
    assert_eq!(tx, txs[2]);
    assert_eq!(location, TxLocation { block_number: 1, block_hash: block.hash(), index: 2 });
    assert_eq!(db.transaction_by_hash(B256::repeat_byte(1)).unwrap(), None);
    assert_eq!(db.header(2).unwrap(), None);

    db.unwind_to(0).unwrap();
    assert_eq!(db.transaction_by_hash(*txs[0].tx_hash()).unwrap(), None);
    assert_eq!(db.block(block.hash()).unwrap(), None);
    assert_eq!(db.receipts(1).unwrap(), None);
}

#[test]
fn bad_commits_are_refused_and_change_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let db = Database::init(dir.path(), &spec()).unwrap();
    let mut model = genesis_model(&spec());
    let bundle = random_bundle(&mut Rng(5), &mut model, 20, 10);
    let (root, updates) = db.state_root_with(&bundle).unwrap();

    let wrong_root = child_block(&db, B256::repeat_byte(1), 0);
    let err = db.commit_block(&wrong_root, &[], &[], bundle.clone(), updates.clone()).unwrap_err();
    assert!(matches!(err, StorageError::StateRootMismatch { number: 1, .. }), "{err}");

    let mut orphan = child_block(&db, root, 0).into_inner();
    orphan.header.parent_hash = B256::repeat_byte(2);
    let err = db
        .commit_block(&seal_block(orphan), &[], &[], bundle.clone(), updates.clone())
        .unwrap_err();
    assert!(matches!(err, StorageError::NotChildOfTip { tip_number: 0, .. }), "{err}");

    let block = child_block(&db, root, 0);
    let err = db
        .commit_block(&block, &[Address::ZERO], &[], bundle.clone(), updates.clone())
        .unwrap_err();
    assert!(matches!(err, StorageError::BodyLengthMismatch { what: "senders", .. }), "{err}");
    assert_eq!(db.canonical_tip().unwrap().0, 0);

    db.commit_block(&block, &[], &[], bundle.clone(), updates.clone()).unwrap();
    // The same updates again are stale: the tip moved.
    let next = child_block(&db, root, 1);
    let err = db.commit_block(&next, &[], &[], bundle, updates).unwrap_err();
    assert!(matches!(err, StorageError::StaleTrieUpdates { number: 2, .. }), "{err}");
    assert!(matches!(db.unwind_to(5), Err(StorageError::UnwindTarget { target: 5, tip: 1 })));
    assert!(matches!(db.at_block(2), Err(StorageError::UnknownBlock { number: 2, tip: 1 })));
}

/// Asserts the state at each of `numbers` (read through `Database::at_block`) is `snapshots`'.
fn assert_history(
    db: &Database,
    snapshots: &[ModelState],
    numbers: impl IntoIterator<Item = u64>,
    universe: u64,
    context: &str,
) {
    for number in numbers {
        let provider = db.at_block(number).unwrap();
        assert_eq!(provider.block_number(), number);
        let context = format!("{context} {number}");
        assert_state(&provider, &snapshots[number as usize], universe, &context);
    }
}

#[test]
fn random_chain_history_and_unwind() {
    let dir = tempfile::tempdir().unwrap();
    let spec = spec();
    let db = Database::init(dir.path(), &spec).unwrap();
    let universe = 40;
    let mut rng = Rng(0x1234_5678);
    let mut model = genesis_model(&spec);
    let mut snapshots = vec![model.clone()];
    let mut blocks = Vec::new();
    // Past two history index batches: blocks 1..=32 are in the indexes, half of the keys of
    // 33..=64 too (written in shares until block 96), 65..=80 only in their change sets.
    for salt in 0..80 {
        let bundle = random_bundle(&mut rng, &mut model, universe, 12);
        blocks.push(commit(&db, bundle, &model, salt));
        snapshots.push(model.clone());
    }
    assert_eq!(2 * HISTORY_INDEX_BATCH, 64);
    assert_eq!(db.canonical_tip().unwrap(), (80, blocks[79].hash()));
    assert_state(&db.latest().unwrap(), &snapshots[80], universe, "latest");
    assert_history(&db, &snapshots, 0..80, universe, "at block");

    // Unwind below the indexed blocks: state, roots and block data are those of block 50.
    db.unwind_to(50).unwrap();
    assert_eq!(db.canonical_tip().unwrap(), (50, blocks[49].hash()));
    assert_state(&db.latest().unwrap(), &snapshots[50], universe, "after unwind to 50");
    assert_history(&db, &snapshots, [0, 12, 31, 32, 33, 49], universe, "after unwind, at block");
    let (root, _) = db.state_root_with(&BundleState::default()).unwrap();
    assert_eq!(root, db.header(50).unwrap().unwrap().state_root);
    assert_eq!(db.header(51).unwrap(), None);
    assert_eq!(db.block_number(blocks[65].hash()).unwrap(), None);

    // A different fork on top keeps the trie and the history consistent (its blocks 33..=64
    // in the index by block 96, the keys of the unwound ones gone), and can itself be unwound
    // to genesis.
    let mut model = snapshots[50].clone();
    snapshots.truncate(51);
    for salt in 100..140 {
        let bundle = random_bundle(&mut rng, &mut model, universe, 12);
        commit(&db, bundle, &model, salt);
        snapshots.push(model.clone());
    }
    assert_state(&db.latest().unwrap(), &model, universe, "fork");
    assert_history(&db, &snapshots, 0..90, universe, "fork, at block");
    db.unwind_to(0).unwrap();
    assert_state(&db.latest().unwrap(), &snapshots[0], universe, "unwound to genesis");
    let (root, _) = db.state_root_with(&BundleState::default()).unwrap();
    assert_eq!(root, spec.genesis_header().state_root);
    let stats = db.stats().unwrap();
    for table in
        ["AccountChangeSets", "StorageChangeSets", "AccountHistory", "StorageHistory", "TxLookup"]
    {
        assert_eq!(
            stats.iter().find(|s| s.name == table).unwrap().entries,
            0,
            "{table} not emptied"
        );
    }
}

#[test]
fn a_database_that_indexed_every_block_reads_and_goes_on() {
    // Databases written before the batched history indexes have every block indexed and no
    // `history_indexed` record: made here by committing two batches (the first is then in the
    // index), unwinding to the end of the first, and removing the record.
    let dir = tempfile::tempdir().unwrap();
    let spec = spec();
    let universe = 30;
    let mut rng = Rng(0x5eed);
    let mut model = genesis_model(&spec);
    let mut snapshots = vec![model.clone()];
    {
        let db = Database::init(dir.path(), &spec).unwrap();
        for salt in 0..2 * HISTORY_INDEX_BATCH {
            commit(&db, random_bundle(&mut rng, &mut model, universe, 10), &model, salt);
            snapshots.push(model.clone());
        }
        db.unwind_to(HISTORY_INDEX_BATCH).unwrap();
        snapshots.truncate(HISTORY_INDEX_BATCH as usize + 1);
        model = snapshots[HISTORY_INDEX_BATCH as usize].clone();
        let (indexed, entries, changes) = history_counts(&db, HISTORY_INDEX_BATCH);
        assert_eq!((indexed, entries), (HISTORY_INDEX_BATCH, changes));
    }
    {
        let env = libmdbx::Database::<NoWriteMap>::open_with_options(
            dir.path(),
            DatabaseOptions { max_tables: Some(32), ..Default::default() },
        )
        .unwrap();
        let txn = env.begin_rw_txn().unwrap();
        let meta = txn.open_table(Some(tables::META)).unwrap();
        assert!(txn.del(&meta, tables::META_HISTORY_INDEXED, None).unwrap());
        txn.commit().unwrap();
    }
    let db = Database::open(dir.path()).unwrap();
    for salt in 100..110 {
        commit(&db, random_bundle(&mut rng, &mut model, universe, 10), &model, salt);
        snapshots.push(model.clone());
    }
    assert_history(&db, &snapshots, 0..42, universe, "at block");
}

/// `history_indexed`, the entries of both history indexes, and the change set entries of the
/// blocks up to `through`.
fn history_counts(db: &Database, through: u64) -> (u64, usize, usize) {
    let txn = db.env.begin_ro_txn().unwrap();
    let (tip, _) = read_tip(&txn).unwrap();
    let indexed = read_history_indexed(&txn, tip).unwrap();
    let count = |name: &'static str, through: u64| {
        let table = txn.open_table(Some(name)).unwrap();
        writer::entries_from(&txn, &table, &[])
            .unwrap()
            .into_iter()
            .filter(|(key, _)| tables::read_u64(key).unwrap() <= through)
            .count()
    };
    let index = |name: &'static str| {
        let table = txn.open_table(Some(name)).unwrap();
        writer::entries_from(&txn, &table, &[]).unwrap().len()
    };
    let changes =
        count(tables::ACCOUNT_CHANGE_SETS, through) + count(tables::STORAGE_CHANGE_SETS, through);
    (indexed, index(tables::ACCOUNT_HISTORY) + index(tables::STORAGE_HISTORY), changes)
}

#[test]
fn history_batches_are_written_in_shares() {
    let dir = tempfile::tempdir().unwrap();
    let spec = spec();
    let universe = 40;
    let mut rng = Rng(0x5_4a2e);
    let mut model = genesis_model(&spec);
    let mut snapshots = vec![model.clone()];
    let mut db = Database::init(dir.path(), &spec).unwrap();
    let next_block =
        |db: &Database, rng: &mut Rng, model: &mut ModelState, snapshots: &mut Vec<_>| {
            let bundle = random_bundle(rng, model, universe, 12);
            commit(db, bundle, model, snapshots.len() as u64);
            snapshots.push(model.clone());
        };
    // A batch completes at block 32 and nothing is indexed yet.
    for _ in 1..=32 {
        next_block(&db, &mut rng, &mut model, &mut snapshots);
    }
    let (indexed, entries, _) = history_counts(&db, 32);
    assert_eq!((indexed, entries), (0, 0));
    // Each of the next batch's commits writes a share of it, in key order.
    let mut last = 0;
    for number in 33..=45 {
        next_block(&db, &mut rng, &mut model, &mut snapshots);
        let (indexed, entries, batch) = history_counts(&db, 32);
        assert_eq!(indexed, 0, "block {number}");
        assert!(last < entries && entries < batch, "block {number}: {last} < {entries} < {batch}");
        last = entries;
    }
    assert_history(&db, &snapshots, 0..=45, universe, "mid-batch, at block");
    // Reopened mid-batch: the backlog is rebuilt from the change sets, and the batch is complete
    // (and only it) when the next one is.
    drop(db);
    db = Database::open(dir.path()).unwrap();
    for _ in 46..=64 {
        next_block(&db, &mut rng, &mut model, &mut snapshots);
    }
    let (indexed, entries, batch) = history_counts(&db, 32);
    assert_eq!((indexed, entries), (32, batch));
    assert_history(&db, &snapshots, 0..=64, universe, "reopened, at block");

    // One commit of 36 blocks: the batch 33..=64 whole, and a share of 65..=96.
    let mut pending: Vec<ExecutedBlock> = Vec::new();
    let mut updates = None;
    for number in 65..=100u64 {
        let bundle = random_bundle(&mut rng, &mut model, universe, 12);
        snapshots.push(model.clone());
        let parent_hash = match pending.last() {
            Some(last) => last.block.hash(),
            None => db.canonical_tip().unwrap().1,
        };
        let header = Header {
            number,
            parent_hash,
            state_root: model_root(&model),
            timestamp: number,
            ..Default::default()
        };
        let earlier: Vec<&BundleState> = pending.iter().map(|b| &b.bundle).collect();
        let (root, over) = db.state_root_with_pending(&earlier, &bundle).unwrap();
        assert_eq!(root, header.state_root);
        updates = Some(over);
        let block = seal_block(Block { header, body: BlockBody::default() });
        pending.push(ExecutedBlock { block, senders: vec![], receipts: vec![], bundle });
    }
    db.commit_blocks(&pending, updates.unwrap()).unwrap();
    let (indexed, entries, through_64) = history_counts(&db, 64);
    let (_, _, through_96) = history_counts(&db, 96);
    assert_eq!(indexed, 64);
    assert!(
        through_64 < entries && entries < through_96,
        "{through_64} < {entries} < {through_96}"
    );
    assert_history(&db, &snapshots, 0..=100, universe, "after a bulk commit, at block");

    // Unwound into the pending batch, then a fork on top: the index ends up exactly the change
    // sets of the indexed blocks (the unwound blocks' keys gone, none twice).
    db.unwind_to(70).unwrap();
    snapshots.truncate(71);
    model = snapshots[70].clone();
    assert_history(&db, &snapshots, 0..=70, universe, "unwound, at block");
    for _ in 71..=128 {
        next_block(&db, &mut rng, &mut model, &mut snapshots);
    }
    let (indexed, entries, batch) = history_counts(&db, 96);
    assert_eq!((indexed, entries), (96, batch));
    assert_history(&db, &snapshots, 0..=128, universe, "fork, at block");
}

/// Parameters of the crash test's chain: universe, touches per block, seed.
const CRASH_UNIVERSE: u64 = 400;
const CRASH_TOUCHES: u64 = 150;
const CRASH_SEED: u64 = 0xc0ffee;

/// The model after `blocks` blocks of the crash test's chain, and its RNG positioned after them.
fn crash_chain_model(blocks: u64) -> (ModelState, Rng) {
    let mut rng = Rng(CRASH_SEED);
    let mut model = genesis_model(&spec());
    for _ in 0..blocks {
        random_bundle(&mut rng, &mut model, CRASH_UNIVERSE, CRASH_TOUCHES);
    }
    (model, rng)
}

/// Child side of `kill_9_leaves_the_last_full_block`: commits blocks forever, printing each tip.
#[test]
#[ignore = "spawned by kill_9_leaves_the_last_full_block"]
fn crash_writer_child() {
    use std::io::Write;
    let Some(path) = std::env::var_os("TANDEM_CRASH_DB") else { return };
    let db = Database::init(std::path::Path::new(&path), &spec()).unwrap();
    let (tip, _) = db.canonical_tip().unwrap();
    let (mut model, mut rng) = crash_chain_model(tip);
    loop {
        let bundle = random_bundle(&mut rng, &mut model, CRASH_UNIVERSE, CRASH_TOUCHES);
        let (number, _) = db.canonical_tip().unwrap();
        commit(&db, bundle, &model, number + 1);
        let mut out = std::io::stdout().lock();
        writeln!(out, "committed {}", number + 1).unwrap();
        out.flush().unwrap();
    }
}

#[test]
fn kill_9_leaves_the_last_full_block() {
    use std::io::{BufRead, BufReader};
    use std::process::{Command, Stdio};
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db");
    let exe = std::env::current_exe().unwrap();
    let mut last_seen = 0;
    for round in 0..5u64 {
        let mut child = Command::new(&exe)
            .args([
                "storage::tests::crash_writer_child",
                "--exact",
                "--ignored",
                "--nocapture",
                "--test-threads=1",
            ])
            .env("TANDEM_CRASH_DB", &path)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let mut lines = BufReader::new(stdout).lines();
        // Let it commit a few blocks, then kill it at a varying point inside the next one.
        let mut committed = 0;
        while committed < 4 {
            let line = lines.next().expect("child exited early").unwrap();
            if let Some(n) = line.strip_prefix("committed ") {
                last_seen = n.trim().parse().unwrap();
                committed += 1;
            }
        }
        std::thread::sleep(std::time::Duration::from_millis(1 + 9 * round));
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();

        let db = Database::open(&path).unwrap();
        let (tip, tip_hash) = db.canonical_tip().unwrap();
        assert!(tip >= last_seen, "tip {tip} is behind the last reported commit {last_seen}");
        eprintln!("round {round}: killed after reported block {last_seen}, reopened at tip {tip}");
        let header = db.header(tip).unwrap().unwrap();
        assert_eq!(header.hash_slow(), tip_hash);
        for number in 1..=tip {
            assert!(db.block(number).unwrap().is_some(), "block {number} incomplete");
            assert!(db.receipts(number).unwrap().is_some(), "receipts {number} missing");
        }
        let (model, _) = crash_chain_model(tip);
        assert_eq!(model_root(&model), header.state_root);
        let (root, _) = db.state_root_with(&BundleState::default()).unwrap();
        assert_eq!(root, header.state_root, "stored trie does not match the tip");
        let provider = db.latest().unwrap();
        for i in 0..CRASH_UNIVERSE {
            let address = Address::from_word(keccak256(i.to_be_bytes()));
            assert_eq!(
                provider.account(address).unwrap(),
                model.get(&address).map(|(a, _)| *a),
                "account {i} at tip {tip}"
            );
        }
    }
}

#[test]
fn batch_commit_matches_block_by_block() {
    let spec = spec();
    let universe = 40;
    let (single_dir, batch_dir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let single = Database::init(single_dir.path(), &spec).unwrap();
    let batched = Database::init(batch_dir.path(), &spec).unwrap();
    let mut rng = Rng(0xba7c4);
    let mut model = genesis_model(&spec);
    let mut snapshots = vec![model.clone()];
    let mut pending: Vec<ExecutedBlock> = Vec::new();
    let mut pending_updates: Option<TrieUpdates> = None;
    let mut batches = 0;
    for number in 1..=14u64 {
        let bundle = random_bundle(&mut rng, &mut model, universe, 10);
        snapshots.push(model.clone());
        // The same block for both databases: header root from the model.
        let (tip, parent_hash) = match pending.last() {
            Some(last) => (last.block.header.number, last.block.hash()),
            None => batched.canonical_tip().unwrap(),
        };
        assert_eq!(tip + 1, number);
        let header = Header {
            number,
            parent_hash,
            state_root: model_root(&model),
            timestamp: number,
            ..Default::default()
        };
        let block = seal_block(Block { header, body: BlockBody::default() });
        let (root, updates) = single.state_root_with(&bundle).unwrap();
        assert_eq!(root, block.header.state_root);
        single.commit_block(&block, &[], &[], bundle.clone(), updates).unwrap();

        let earlier: Vec<&BundleState> = pending.iter().map(|b| &b.bundle).collect();
        let (root, updates) = batched.state_root_with_pending(&earlier, &bundle).unwrap();
        assert_eq!(root, block.header.state_root, "pending root at block {number}");
        // Incremental over the pending blocks' updates: same root, same updates to write.
        let (root, over) = match &pending_updates {
            Some(pending) => batched.state_root_over(pending, &bundle).unwrap(),
            None => batched.state_root_with(&bundle).unwrap(),
        };
        assert_eq!(root, block.header.state_root, "root over pending updates at block {number}");
        let updates = if number % 2 == 0 { over.clone() } else { updates };
        pending_updates = Some(over);
        pending.push(ExecutedBlock { block, senders: vec![], receipts: vec![], bundle });
        // Persist in batches of 1, 2, 3, 4, 1, 2 blocks, then the last one.
        if pending.len() == 1 + batches % 4 || number == 14 {
            batches += 1;
            batched.commit_blocks(&pending, updates).unwrap();
            pending.clear();
            pending_updates = None;
        }
    }
    assert_eq!(batches, 7, "batches of 1, 2, 3, 4, 1, 2 and 1 blocks");
    assert_eq!(batched.canonical_tip().unwrap(), single.canonical_tip().unwrap());
    for number in [0, 3, 6, 9, 13] {
        assert_state(
            &batched.at_block(number).unwrap(),
            &snapshots[number as usize],
            universe,
            &format!("batched at {number}"),
        );
    }
    assert_state(&batched.latest().unwrap(), &snapshots[14], universe, "batched latest");
    // Same entries in every table (sizes may differ with page allocation).
    let counts = |db: &Database| {
        db.stats().unwrap().into_iter().map(|s| (s.name, s.entries)).collect::<Vec<_>>()
    };
    assert_eq!(counts(&batched), counts(&single));
    batched.unwind_to(5).unwrap();
    assert_state(&batched.latest().unwrap(), &snapshots[5], universe, "batched unwound to 5");
}

#[test]
fn merged_post_state_of_blocks() {
    use crate::state_root::{HashedPostState, HashedStorage};
    let (a, b) = (B256::repeat_byte(1), B256::repeat_byte(2));
    let (s1, s2) = (B256::repeat_byte(0x11), B256::repeat_byte(0x22));
    let mut merged = HashedPostState::default();
    merged.accounts.insert(a, Some(StoredAccount::default()));
    merged.storages.insert(a, HashedStorage { wiped: false, slots: [(s1, U256::from(1))].into() });
    merged.storages.insert(b, HashedStorage { wiped: true, slots: [(s1, U256::from(5))].into() });
    let mut later = HashedPostState::default();
    later.accounts.insert(a, None);
    later.storages.insert(a, HashedStorage { wiped: true, slots: BTreeMap::new() });
    later.storages.insert(b, HashedStorage { wiped: false, slots: [(s2, U256::from(6))].into() });
    merged.extend(later);
    assert_eq!(merged.accounts[&a], None);
    assert_eq!(merged.storages[&a], HashedStorage { wiped: true, slots: BTreeMap::new() });
    // An earlier wipe stays, later slots add to the earlier ones.
    assert_eq!(
        merged.storages[&b],
        HashedStorage { wiped: true, slots: [(s1, U256::from(5)), (s2, U256::from(6))].into() }
    );
}
