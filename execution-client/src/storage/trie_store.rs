//! The [`TrieStore`] over MDBX tables: seeks on cursors of one transaction.

use super::{MdbxResultExt, StorageError, StoredAccount, codec, corrupt, tables};
use crate::state_root::TrieStore;
use alloy_primitives::{B256, U256};
use alloy_trie::{BranchNodeCompact, Nibbles};
use libmdbx::{Cursor, NoWriteMap, Transaction, TransactionKind};

/// Cursors over the trie tables and hashed state of one transaction (read-only for
/// `state_root_with`, the write transaction itself for `unwind_to`).
pub(crate) struct MdbxTrieStore<'txn, K: TransactionKind> {
    account_trie: Cursor<'txn, K>,
    storage_trie: Cursor<'txn, K>,
    hashed_accounts: Cursor<'txn, K>,
    hashed_storage: Cursor<'txn, K>,
}

impl<'txn, K: TransactionKind> MdbxTrieStore<'txn, K> {
    /// Opens the four cursors.
    pub(crate) fn new(txn: &'txn Transaction<'_, K, NoWriteMap>) -> Result<Self, StorageError> {
        let cursor = |name: &'static str| -> Result<Cursor<'txn, K>, StorageError> {
            let table = txn.open_table(Some(name)).op("open trie table")?;
            txn.cursor(&table).op("open trie cursor")
        };
        Ok(Self {
            account_trie: cursor(tables::ACCOUNT_TRIE)?,
            storage_trie: cursor(tables::STORAGE_TRIE)?,
            hashed_accounts: cursor(tables::HASHED_ACCOUNTS)?,
            hashed_storage: cursor(tables::HASHED_STORAGE)?,
        })
    }
}

/// Decodes a stored node found at `key`, whose path starts after `prefix_len` bytes.
fn node_at(
    table: &'static str,
    key: &[u8],
    prefix_len: usize,
    value: &[u8],
) -> Result<(Nibbles, BranchNodeCompact), StorageError> {
    let path = &key[prefix_len..];
    if path.len() > 64 || path.iter().any(|nibble| *nibble > 0xf) {
        return Err(corrupt(table, key, "key is not a nibble path"));
    }
    let node = codec::decode_branch_node(value).map_err(|reason| corrupt(table, key, reason))?;
    Ok((Nibbles::from_nibbles_unchecked(path), node))
}

impl<K: TransactionKind> TrieStore for MdbxTrieStore<'_, K> {
    fn seek_account_node(
        &mut self,
        path: &Nibbles,
    ) -> Result<Option<(Nibbles, BranchNodeCompact)>, StorageError> {
        let key = tables::trie_key(&[], path);
        match self.account_trie.set_range::<Vec<u8>, Vec<u8>>(&key).op("seek AccountTrie")? {
            Some((key, value)) => node_at(tables::ACCOUNT_TRIE, &key, 0, &value).map(Some),
            None => Ok(None),
        }
    }

    fn seek_storage_node(
        &mut self,
        owner: &B256,
        path: &Nibbles,
    ) -> Result<Option<(Nibbles, BranchNodeCompact)>, StorageError> {
        let key = tables::trie_key(owner.as_slice(), path);
        match self.storage_trie.set_range::<Vec<u8>, Vec<u8>>(&key).op("seek StorageTrie")? {
            Some((key, value)) if key.starts_with(owner.as_slice()) => {
                node_at(tables::STORAGE_TRIE, &key, 32, &value).map(Some)
            }
            _ => Ok(None),
        }
    }

    fn seek_hashed_account(
        &mut self,
        key: &B256,
    ) -> Result<Option<(B256, StoredAccount, B256)>, StorageError> {
        match self
            .hashed_accounts
            .set_range::<Vec<u8>, Vec<u8>>(key.as_slice())
            .op("seek HashedAccounts")?
        {
            Some((found, value)) => {
                if found.len() != 32 {
                    return Err(corrupt(tables::HASHED_ACCOUNTS, &found, "key is not 32 bytes"));
                }
                let (account, root) = codec::decode_hashed_account(&value)
                    .ok_or_else(|| corrupt(tables::HASHED_ACCOUNTS, &found, "malformed account"))?;
                Ok(Some((B256::from_slice(&found), account, root)))
            }
            None => Ok(None),
        }
    }

    fn seek_hashed_storage(
        &mut self,
        owner: &B256,
        key: &B256,
    ) -> Result<Option<(B256, U256)>, StorageError> {
        let seek = tables::hashed_storage_key(owner, key);
        match self.hashed_storage.set_range::<Vec<u8>, Vec<u8>>(&seek).op("seek HashedStorage")? {
            Some((found, value)) if found.starts_with(owner.as_slice()) => {
                if found.len() != 64 {
                    return Err(corrupt(tables::HASHED_STORAGE, &found, "key is not 64 bytes"));
                }
                let value = codec::decode_storage_value(&value)
                    .ok_or_else(|| corrupt(tables::HASHED_STORAGE, &found, "malformed value"))?;
                Ok(Some((B256::from_slice(&found[32..]), value)))
            }
            _ => Ok(None),
        }
    }
}
