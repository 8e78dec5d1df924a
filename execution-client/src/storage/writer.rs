//! The write transactions: genesis, block commit and unwind.

use super::history::{Backlog, BlockKeys};
use super::{
    CLIENT_NAME, Env, MdbxResultExt, SCHEMA_VERSION, StorageError, StoredAccount, codec, corrupt,
    read_body, read_header, read_history_indexed, read_tip, tables, trie_store::MdbxTrieStore,
};
use crate::state_root::{self, HashedPostState, HashedStorage, NodeUpdates, TrieUpdates};
use alloy_consensus::{BlockBody, ReceiptEnvelope, TxEnvelope};
use alloy_eips::eip4895::Withdrawals;
use alloy_primitives::{Address, B256, U256, keccak256};
use libmdbx::{Cursor, NoWriteMap, RW, Table, Transaction, TransactionKind, WriteFlags};
use parking_lot::Mutex;
use revm::database::BundleState;
use revm::primitives::KECCAK_EMPTY;
use std::collections::BTreeMap;
use tandem_shared::ChainSpec;

/// A write transaction.
pub(super) type Rw<'env> = Transaction<'env, RW, NoWriteMap>;

/// A raw key and value.
type Entry = (Vec<u8>, Vec<u8>);

/// Opens table `name`.
pub(super) fn open<'t>(txn: &'t Rw<'_>, name: &'static str) -> Result<Table<'t>, StorageError> {
    txn.open_table(Some(name)).op("open table")
}

fn put(txn: &Rw<'_>, table: &Table<'_>, key: &[u8], value: &[u8]) -> Result<(), StorageError> {
    txn.put(table, key, value, WriteFlags::empty()).op("put")
}

/// Writes to one table through one cursor. Bulk writes go in key order: MDBX then finds each
/// key on the page of the one before (or a page up the cursor's stack) instead of searching the
/// tree from the root and looking every page of the path up among the dirty pages.
pub(super) struct Writer<'t> {
    cursor: Cursor<'t, RW>,
}

impl<'t> Writer<'t> {
    /// A writer to table `name`.
    pub(super) fn new(txn: &'t Rw<'_>, name: &'static str) -> Result<Self, StorageError> {
        let table = open(txn, name)?;
        Ok(Self { cursor: txn.cursor(&table).op("open cursor")? })
    }

    /// Puts `key`, replacing its value if present.
    pub(super) fn put(&mut self, key: &[u8], value: &[u8]) -> Result<(), StorageError> {
        self.cursor.put(key, value, WriteFlags::empty()).op("put")
    }

    /// Puts `key` after every key of the table without a search; MDBX refuses (an error,
    /// nothing written) a key that does not sort after the last one.
    fn append(&mut self, key: &[u8], value: &[u8]) -> Result<(), StorageError> {
        self.cursor.put(key, value, WriteFlags::APPEND).op("append")
    }

    /// Deletes `key` if present.
    fn del(&mut self, key: &[u8]) -> Result<(), StorageError> {
        if self.cursor.set::<()>(key).op("seek")?.is_some() {
            self.cursor.del(WriteFlags::empty()).op("delete")?;
        }
        Ok(())
    }
}

fn del(txn: &Rw<'_>, table: &Table<'_>, key: &[u8]) -> Result<(), StorageError> {
    txn.del(table, key, None).op("delete").map(|_| ())
}

/// Deletes every entry whose key starts with `prefix`; returns the deleted entries.
fn delete_prefix(
    txn: &Rw<'_>,
    table: &Table<'_>,
    prefix: &[u8],
) -> Result<Vec<Entry>, StorageError> {
    let mut entries = Vec::new();
    {
        let mut cursor = txn.cursor(table).op("open cursor")?;
        let mut item = cursor.set_range::<Vec<u8>, Vec<u8>>(prefix).op("seek")?;
        while let Some((key, value)) = item {
            if !key.starts_with(prefix) {
                break;
            }
            entries.push((key, value));
            item = cursor.next::<Vec<u8>, Vec<u8>>().op("next")?;
        }
    }
    for (key, _) in &entries {
        del(txn, table, key)?;
    }
    Ok(entries)
}

/// Writes genesis and the meta records in one transaction.
pub(super) fn write_genesis(env: &Env, spec: &ChainSpec) -> Result<(), StorageError> {
    let txn = env.begin_rw_txn().op("begin write transaction")?;
    let header = spec.genesis_header().clone();
    let (number, hash) = (header.number, spec.genesis_hash());
    let body: BlockBody<TxEnvelope> = BlockBody {
        transactions: Vec::new(),
        ommers: Vec::new(),
        withdrawals: header.withdrawals_root.map(|_| Withdrawals::default()),
    };
    write_block_data(&txn, number, hash, &alloy_rlp::encode(&header), &body, &[], &[])?;

    let (plain_accounts, plain_storage, bytecodes) = (
        open(&txn, tables::PLAIN_ACCOUNTS)?,
        open(&txn, tables::PLAIN_STORAGE)?,
        open(&txn, tables::BYTECODES)?,
    );
    let mut post = HashedPostState::default();
    for (address, account) in &spec.genesis().alloc {
        let code_hash = match account.code.as_ref().filter(|code| !code.is_empty()) {
            Some(code) => {
                let code_hash = keccak256(code);
                put(&txn, &bytecodes, code_hash.as_slice(), code)?;
                code_hash
            }
            None => KECCAK_EMPTY,
        };
        let stored = StoredAccount {
            nonce: account.nonce.unwrap_or(0),
            balance: account.balance,
            code_hash,
        };
        put(&txn, &plain_accounts, address.as_slice(), &codec::encode_account(&stored))?;
        let hashed = keccak256(address);
        post.accounts.insert(hashed, Some(stored));
        let mut storage = HashedStorage::default();
        for (slot, value) in account.storage.iter().flatten() {
            let value = U256::from_be_bytes(value.0);
            if !value.is_zero() {
                put(
                    &txn,
                    &plain_storage,
                    &tables::plain_storage_key(address, slot),
                    &value.to_be_bytes::<32>(),
                )?;
                storage.slots.insert(keccak256(slot), value);
            }
        }
        if !storage.slots.is_empty() {
            post.storages.insert(hashed, storage);
        }
    }
    let updates = state_root::compute_state_root(&mut MdbxTrieStore::new(&txn)?, post)?;
    if updates.state_root != header.state_root {
        return Err(StorageError::GenesisStateRoot {
            computed: updates.state_root,
            expected: header.state_root,
        });
    }
    write_trie_updates(&txn, &updates)?;

    let meta = open(&txn, tables::META)?;
    put(&txn, &meta, b"client", CLIENT_NAME.as_bytes())?;
    put(&txn, &meta, b"schema", &SCHEMA_VERSION.to_be_bytes())?;
    put(&txn, &meta, b"chain_id", &spec.chain_id().to_be_bytes())?;
    put(&txn, &meta, b"genesis_hash", hash.as_slice())?;
    put(&txn, &meta, tables::META_HISTORY_INDEXED, &number.to_be_bytes())?;
    txn.commit().op("commit genesis")?;
    Ok(())
}

/// Header, body, senders, receipts and the indexes of one block.
fn write_block_data(
    txn: &Rw<'_>,
    number: u64,
    hash: B256,
    header_rlp: &[u8],
    body: &BlockBody<TxEnvelope>,
    senders: &[Address],
    receipts: &[ReceiptEnvelope],
) -> Result<(), StorageError> {
    let key = tables::number_key(number);
    put(txn, &open(txn, tables::HEADERS)?, &key, header_rlp)?;
    put(txn, &open(txn, tables::HEADER_NUMBERS)?, hash.as_slice(), &key)?;
    put(txn, &open(txn, tables::CANONICAL_HASHES)?, &key, hash.as_slice())?;
    put(txn, &open(txn, tables::BODIES)?, &key, &alloy_rlp::encode(body))?;
    let senders: Vec<u8> = senders.iter().flat_map(|address| address.0.0).collect();
    put(txn, &open(txn, tables::SENDERS)?, &key, &senders)?;
    put(txn, &open(txn, tables::RECEIPTS)?, &key, &codec::encode_receipts(receipts))?;
    let lookup = open(txn, tables::TX_LOOKUP)?;
    for (index, tx) in body.transactions.iter().enumerate() {
        let index = u32::try_from(index).unwrap_or(u32::MAX);
        put(txn, &lookup, tx.tx_hash().as_slice(), &tables::tx_location(number, index))?;
    }
    Ok(())
}

/// Hashed state and trie node changes (all maps in key order).
fn write_trie_updates(txn: &Rw<'_>, updates: &TrieUpdates) -> Result<(), StorageError> {
    let (hashed_storage_table, storage_trie_table) =
        (open(txn, tables::HASHED_STORAGE)?, open(txn, tables::STORAGE_TRIE)?);
    let mut hashed_storage = Writer::new(txn, tables::HASHED_STORAGE)?;
    let mut storage_trie = Writer::new(txn, tables::STORAGE_TRIE)?;
    for (owner, storage) in &updates.storages {
        if storage.wiped {
            delete_prefix(txn, &hashed_storage_table, owner.as_slice())?;
            delete_prefix(txn, &storage_trie_table, owner.as_slice())?;
        }
        for (slot, value) in &storage.slots {
            let key = tables::hashed_storage_key(owner, slot);
            if value.is_zero() {
                hashed_storage.del(&key)?;
            } else {
                hashed_storage.put(&key, &value.to_be_bytes::<32>())?;
            }
        }
        write_nodes(&mut storage_trie, owner.as_slice(), &storage.nodes)?;
    }
    let mut hashed_accounts = Writer::new(txn, tables::HASHED_ACCOUNTS)?;
    for (hashed, account) in &updates.accounts {
        match account {
            Some((account, root)) => hashed_accounts
                .put(hashed.as_slice(), &codec::encode_hashed_account(account, root))?,
            None => hashed_accounts.del(hashed.as_slice())?,
        }
    }
    write_nodes(&mut Writer::new(txn, tables::ACCOUNT_TRIE)?, &[], &updates.account_nodes)
}

fn write_nodes(
    table: &mut Writer<'_>,
    prefix: &[u8],
    nodes: &NodeUpdates,
) -> Result<(), StorageError> {
    for (path, node) in nodes {
        let key = tables::trie_key(prefix, path);
        match node {
            Some(node) => table.put(&key, &codec::encode_branch_node(node))?,
            None => table.del(&key)?,
        }
    }
    Ok(())
}

/// See [`super::Database::commit_blocks`]; a single block is a batch of one.
pub(super) fn commit_blocks(
    env: &Env,
    backlog: &Mutex<Option<Backlog>>,
    blocks: &[super::BlockParts<'_>],
    updates: &TrieUpdates,
) -> Result<(), StorageError> {
    // Held for the whole commit: MDBX serializes writers anyway, and the backlog must move with
    // the database.
    let mut slot = backlog.lock();
    let Some((last, _, _, _)) = blocks.last() else { return Ok(()) };
    for (block, senders, receipts, _) in blocks {
        let (number, hash) = (block.header.number, block.hash());
        let transactions = block.body.transactions.len();
        for (what, got) in [("senders", senders.len()), ("receipts", receipts.len())] {
            if got != transactions {
                return Err(StorageError::BodyLengthMismatch {
                    number,
                    hash,
                    transactions,
                    what,
                    got,
                });
            }
        }
    }
    if updates.state_root != last.header.state_root {
        return Err(StorageError::StateRootMismatch {
            number: last.header.number,
            hash: last.hash(),
            expected: last.header.state_root,
            computed: updates.state_root,
        });
    }
    let txn = env.begin_rw_txn().op("begin write transaction")?;
    let (first_tip_number, first_tip_hash) = read_tip(&txn)?;
    if updates.parent_hash != first_tip_hash {
        let first = blocks[0].0;
        return Err(StorageError::StaleTrieUpdates {
            number: first.header.number,
            hash: first.hash(),
            computed_on: updates.parent_hash,
            tip_hash: first_tip_hash,
        });
    }
    let indexed = read_history_indexed(&txn, first_tip_number)?;
    // Taken out for the commit: a failed commit leaves none, and the next one rebuilds it.
    let mut backlog = match slot.take() {
        Some(backlog) if backlog.follows(indexed, first_tip_number) => backlog,
        _ => Backlog::rebuild(&txn, indexed, first_tip_number)?,
    };
    let (mut tip_number, mut tip_hash) = (first_tip_number, first_tip_hash);
    for (block, senders, receipts, bundle) in blocks {
        let (hash, header) = (block.hash(), &block.header);
        let number = header.number;
        if number != tip_number + 1 || header.parent_hash != tip_hash {
            return Err(StorageError::NotChildOfTip {
                number,
                hash,
                parent_hash: header.parent_hash,
                tip_number,
                tip_hash,
            });
        }
        write_block_data(
            &txn,
            number,
            hash,
            &alloy_rlp::encode(header),
            &block.body,
            senders,
            receipts,
        )?;
        backlog.push(write_plain_state(&txn, number, bundle)?);
        (tip_number, tip_hash) = (number, hash);
    }
    write_trie_updates(&txn, updates)?;
    let indexed = backlog.write_due(&txn, first_tip_number)?;
    // Recorded every time: a database from before the batches has no record yet, and its
    // absence means "every block is indexed".
    put(&txn, &open(&txn, tables::META)?, tables::META_HISTORY_INDEXED, &indexed.to_be_bytes())?;
    txn.commit().op("commit blocks")?;
    *slot = Some(backlog);
    Ok(())
}

/// Plain state, bytecode and change sets of block `number`; returns the block's history index
/// keys (written later, [`Backlog`]).
fn write_plain_state(
    txn: &Rw<'_>,
    number: u64,
    bundle: &BundleState,
) -> Result<BlockKeys, StorageError> {
    let mut history = BlockKeys::default();
    let plain_accounts = open(txn, tables::PLAIN_ACCOUNTS)?;
    let plain_storage_table = open(txn, tables::PLAIN_STORAGE)?;
    let mut plain_storage = Writer::new(txn, tables::PLAIN_STORAGE)?;
    let mut account_changes = Writer::new(txn, tables::ACCOUNT_CHANGE_SETS)?;
    let mut storage_changes = Writer::new(txn, tables::STORAGE_CHANGE_SETS)?;

    let mut accounts: Vec<_> = bundle.state.iter().collect();
    accounts.sort_unstable_by_key(|(address, _)| **address);
    for (address, account) in accounts {
        let destroyed = account.was_destroyed() || account.info.is_none();
        let old = match txn.get::<Vec<u8>>(&plain_accounts, address).op("read PlainAccounts")? {
            Some(bytes) => Some(codec::decode_account(&bytes).ok_or_else(|| {
                corrupt(tables::PLAIN_ACCOUNTS, address.as_slice(), "malformed account")
            })?),
            None => None,
        };
        let new = account.info.as_ref().map(StoredAccount::from_info);

        // Old values of every slot this block changes.
        let mut slot_changes: BTreeMap<B256, U256> = BTreeMap::new();
        if destroyed {
            for (key, value) in delete_prefix(txn, &plain_storage_table, address.as_slice())? {
                let value = codec::decode_storage_value(&value)
                    .ok_or_else(|| corrupt(tables::PLAIN_STORAGE, &key, "malformed value"))?;
                slot_changes.insert(B256::from_slice(&key[20..]), value);
            }
        }
        // In key order, for the writer's cursor.
        let mut slots: Vec<_> = account.storage.iter().collect();
        slots.sort_unstable_by_key(|(slot, _)| **slot);
        for (slot, value) in slots {
            let slot = B256::from(slot.to_be_bytes::<32>());
            let key = tables::plain_storage_key(address, &slot);
            let new_value = value.present_value;
            if destroyed {
                slot_changes.entry(slot).or_insert(U256::ZERO);
            } else {
                // The bundle's original value is the parent's, which is the plain state now:
                // the blocks are written in order, each on its parent.
                let old_value = value.original_value();
                if old_value == new_value {
                    continue;
                }
                slot_changes.insert(slot, old_value);
            }
            if new_value.is_zero() {
                plain_storage.del(&key)?;
            } else {
                plain_storage.put(&key, &new_value.to_be_bytes::<32>())?;
            }
        }
        if destroyed && new.is_none() {
            // Nothing written after the destruction survives a non-existent account.
            delete_prefix(txn, &plain_storage_table, address.as_slice())?;
        }

        // Change sets are keyed by block number first and written in key order (accounts and
        // slots sorted), after every earlier block's: appended, not searched for.
        if old != new || !slot_changes.is_empty() {
            account_changes.append(
                &tables::account_change_key(number, address),
                &codec::encode_account_change(old.as_ref()),
            )?;
            history.accounts.push(tables::account_history_key(address, number));
        }
        match &new {
            Some(account) if old.as_ref() != Some(account) => {
                put(txn, &plain_accounts, address.as_slice(), &codec::encode_account(account))?
            }
            None if old.is_some() => del(txn, &plain_accounts, address.as_slice())?,
            _ => {}
        }
        for (slot, old_value) in slot_changes {
            storage_changes.append(
                &tables::storage_change_key(number, address, &slot),
                &old_value.to_be_bytes::<32>(),
            )?;
            history.slots.push(tables::storage_history_key(address, &slot, number));
        }
    }

    let bytecodes = open(txn, tables::BYTECODES)?;
    for (code_hash, code) in &bundle.contracts {
        if *code_hash != KECCAK_EMPTY {
            put(txn, &bytecodes, code_hash.as_slice(), &code.original_bytes())?;
        }
    }
    Ok(history)
}

/// See [`super::Database::unwind_to`].
pub(super) fn unwind_to(env: &Env, target: u64) -> Result<(), StorageError> {
    let txn = env.begin_rw_txn().op("begin write transaction")?;
    let (tip, _) = read_tip(&txn)?;
    if target > tip {
        return Err(StorageError::UnwindTarget { target, tip });
    }
    if target == tip {
        return Ok(());
    }
    let Some(target_header) = read_header(&txn, target)? else {
        return Err(StorageError::UnknownBlock { number: target, tip });
    };
    let first = tables::number_key(target + 1);

    // Values before block target+1: the earliest change set entry of each key wins.
    let mut old_accounts: BTreeMap<Address, Option<StoredAccount>> = BTreeMap::new();
    let account_changes = open(&txn, tables::ACCOUNT_CHANGE_SETS)?;
    let account_history = open(&txn, tables::ACCOUNT_HISTORY)?;
    for (key, value) in delete_prefix_from(&txn, &account_changes, &first)? {
        let (number, address) = tables::parse_account_change_key(&key)
            .ok_or_else(|| corrupt(tables::ACCOUNT_CHANGE_SETS, &key, "malformed key"))?;
        let old = codec::decode_account_change(&value)
            .ok_or_else(|| corrupt(tables::ACCOUNT_CHANGE_SETS, &key, "malformed account"))?;
        old_accounts.entry(address).or_insert(old);
        del(&txn, &account_history, &tables::account_history_key(&address, number))?;
    }
    let mut old_slots: BTreeMap<(Address, B256), U256> = BTreeMap::new();
    let storage_changes = open(&txn, tables::STORAGE_CHANGE_SETS)?;
    let storage_history = open(&txn, tables::STORAGE_HISTORY)?;
    for (key, value) in delete_prefix_from(&txn, &storage_changes, &first)? {
        let (number, address, slot) = tables::parse_storage_change_key(&key)
            .ok_or_else(|| corrupt(tables::STORAGE_CHANGE_SETS, &key, "malformed key"))?;
        let old = codec::decode_storage_value(&value)
            .ok_or_else(|| corrupt(tables::STORAGE_CHANGE_SETS, &key, "malformed value"))?;
        old_slots.entry((address, slot)).or_insert(old);
        del(&txn, &storage_history, &tables::storage_history_key(&address, &slot, number))?;
    }

    let mut post = HashedPostState::default();
    for (address, old) in &old_accounts {
        post.accounts.insert(keccak256(address), *old);
    }
    for ((address, slot), old) in &old_slots {
        post.storages.entry(keccak256(address)).or_default().slots.insert(keccak256(slot), *old);
    }
    let updates = state_root::compute_state_root(&mut MdbxTrieStore::new(&txn)?, post)?;
    if updates.state_root != target_header.state_root {
        return Err(StorageError::UnwindStateRoot {
            number: target,
            hash: target_header.hash_slow(),
            expected: target_header.state_root,
            computed: updates.state_root,
        });
    }

    let (plain_accounts, plain_storage) =
        (open(&txn, tables::PLAIN_ACCOUNTS)?, open(&txn, tables::PLAIN_STORAGE)?);
    for (address, old) in &old_accounts {
        match old {
            Some(account) => {
                put(&txn, &plain_accounts, address.as_slice(), &codec::encode_account(account))?
            }
            None => del(&txn, &plain_accounts, address.as_slice())?,
        }
    }
    for ((address, slot), old) in &old_slots {
        let key = tables::plain_storage_key(address, slot);
        if old.is_zero() {
            del(&txn, &plain_storage, &key)?;
        } else {
            put(&txn, &plain_storage, &key, &old.to_be_bytes::<32>())?;
        }
    }
    write_trie_updates(&txn, &updates)?;

    let lookup = open(&txn, tables::TX_LOOKUP)?;
    let header_numbers = open(&txn, tables::HEADER_NUMBERS)?;
    let canonical = open(&txn, tables::CANONICAL_HASHES)?;
    for number in target + 1..=tip {
        let key = tables::number_key(number);
        if let Some(body) = read_body(&txn, number)? {
            for tx in &body.transactions {
                del(&txn, &lookup, tx.tx_hash().as_slice())?;
            }
        }
        if let Some(hash) = txn.get::<Vec<u8>>(&canonical, key).op("read CanonicalHashes")? {
            del(&txn, &header_numbers, &hash)?;
        }
        for name in [
            tables::CANONICAL_HASHES,
            tables::HEADERS,
            tables::BODIES,
            tables::SENDERS,
            tables::RECEIPTS,
        ] {
            del(&txn, &open(&txn, name)?, &key)?;
        }
    }
    let indexed = read_history_indexed(&txn, tip)?;
    if indexed > target {
        put(&txn, &open(&txn, tables::META)?, tables::META_HISTORY_INDEXED, &target.to_be_bytes())?;
    }
    txn.commit().op("commit unwind")?;
    Ok(())
}

/// The state before block `first` (and after its parent), as a post state to apply on the tip:
/// the oldest change set entry of every key changed from `first` on. Read only.
pub(super) fn post_state_before<K: TransactionKind>(
    txn: &Transaction<'_, K, NoWriteMap>,
    first: u64,
) -> Result<HashedPostState, StorageError> {
    let from = tables::number_key(first);
    let mut post = HashedPostState::default();
    let table = txn.open_table(Some(tables::ACCOUNT_CHANGE_SETS)).op("open table")?;
    for (key, value) in entries_from(txn, &table, &from)? {
        let (_, address) = tables::parse_account_change_key(&key)
            .ok_or_else(|| corrupt(tables::ACCOUNT_CHANGE_SETS, &key, "malformed key"))?;
        let old = codec::decode_account_change(&value)
            .ok_or_else(|| corrupt(tables::ACCOUNT_CHANGE_SETS, &key, "malformed account"))?;
        post.accounts.entry(keccak256(address)).or_insert(old);
    }
    let table = txn.open_table(Some(tables::STORAGE_CHANGE_SETS)).op("open table")?;
    for (key, value) in entries_from(txn, &table, &from)? {
        let (_, address, slot) = tables::parse_storage_change_key(&key)
            .ok_or_else(|| corrupt(tables::STORAGE_CHANGE_SETS, &key, "malformed key"))?;
        let old = codec::decode_storage_value(&value)
            .ok_or_else(|| corrupt(tables::STORAGE_CHANGE_SETS, &key, "malformed value"))?;
        post.storages
            .entry(keccak256(address))
            .or_default()
            .slots
            .entry(keccak256(slot))
            .or_insert(old);
    }
    Ok(post)
}

/// Every entry with key `>= from`, in key order.
pub(super) fn entries_from<K: TransactionKind>(
    txn: &Transaction<'_, K, NoWriteMap>,
    table: &Table<'_>,
    from: &[u8],
) -> Result<Vec<Entry>, StorageError> {
    let mut entries = Vec::new();
    let mut cursor = txn.cursor(table).op("open cursor")?;
    let mut item = cursor.set_range::<Vec<u8>, Vec<u8>>(from).op("seek")?;
    while let Some(entry) = item {
        entries.push(entry);
        item = cursor.next::<Vec<u8>, Vec<u8>>().op("next")?;
    }
    Ok(entries)
}

/// Deletes every entry with key `>= from`; returns them in key order.
fn delete_prefix_from(
    txn: &Rw<'_>,
    table: &Table<'_>,
    from: &[u8],
) -> Result<Vec<Entry>, StorageError> {
    let entries = entries_from(txn, table, from)?;
    for (key, _) in &entries {
        del(txn, table, key)?;
    }
    Ok(entries)
}
