//! The [`TrieStore`] over MDBX tables: seeks on cursors of one transaction.

use super::{MdbxResultExt, StorageError, StoredAccount, codec, corrupt, tables};
use crate::state_root::TrieStore;
use alloy_primitives::{B256, U256};
use alloy_trie::{BranchNodeCompact, Nibbles};
use libmdbx::{Cursor, NoWriteMap, Transaction, TransactionKind};

/// Cursors over the trie tables and hashed state of one transaction (read-only for
/// `state_root_with`, the write transaction itself for `unwind_to`).
pub(crate) struct MdbxTrieStore<'txn, K: TransactionKind> {
    account_trie: SeekCursor<'txn, K>,
    storage_trie: SeekCursor<'txn, K>,
    hashed_accounts: SeekCursor<'txn, K>,
    hashed_storage: SeekCursor<'txn, K>,
}

/// A raw key and value.
type Entry = (Vec<u8>, Vec<u8>);

/// A cursor answering "first entry with key `>= k`" for mostly increasing `k`, as the trie walk
/// asks: a seek that lands on the entry the cursor already holds costs nothing, a seek just past
/// it is a `next`, anything else a B-tree `set_range`.
struct SeekCursor<'txn, K: TransactionKind> {
    cursor: Cursor<'txn, K>,
    /// Last requested key and the entry it found (`None`: past the end).
    last: Option<(Vec<u8>, Option<Entry>)>,
    /// All keys have one length, so `key + 1` is the next possible key (not so for trie paths).
    fixed_width: bool,
}

impl<'txn, K: TransactionKind> SeekCursor<'txn, K> {
    fn seek(&mut self, key: &[u8]) -> Result<Option<Entry>, StorageError> {
        if let Some((requested, found)) = &self.last
            && requested.as_slice() <= key
        {
            match found {
                None => return Ok(None),
                Some((found_key, value)) if key <= found_key.as_slice() => {
                    return Ok(Some((found_key.clone(), value.clone())));
                }
                Some((found_key, _)) if self.fixed_width && is_successor(found_key, key) => {
                    let entry = self.cursor.next::<Vec<u8>, Vec<u8>>().op("cursor next")?;
                    self.last = Some((key.to_vec(), entry.clone()));
                    return Ok(entry);
                }
                Some(_) => {}
            }
        }
        let entry = self.cursor.set_range::<Vec<u8>, Vec<u8>>(key).op("cursor seek")?;
        self.last = Some((key.to_vec(), entry.clone()));
        Ok(entry)
    }
}

/// Whether `next` is the byte string right after `key` in fixed-width order (`key + 1`), so the
/// entry after `key` is the first one `>= next`.
fn is_successor(key: &[u8], next: &[u8]) -> bool {
    if key.len() != next.len() {
        return false;
    }
    let mut carry = true;
    for (k, n) in key.iter().zip(next).rev() {
        let (sum, overflow) = if carry { k.overflowing_add(1) } else { (*k, false) };
        if sum != *n {
            return false;
        }
        carry = overflow;
    }
    !carry
}

impl<'txn, K: TransactionKind> MdbxTrieStore<'txn, K> {
    /// Opens the four cursors.
    pub(crate) fn new(txn: &'txn Transaction<'_, K, NoWriteMap>) -> Result<Self, StorageError> {
        let cursor =
            |name: &'static str, fixed_width| -> Result<SeekCursor<'txn, K>, StorageError> {
                let table = txn.open_table(Some(name)).op("open trie table")?;
                Ok(SeekCursor {
                    cursor: txn.cursor(&table).op("open trie cursor")?,
                    last: None,
                    fixed_width,
                })
            };
        Ok(Self {
            account_trie: cursor(tables::ACCOUNT_TRIE, false)?,
            storage_trie: cursor(tables::STORAGE_TRIE, false)?,
            hashed_accounts: cursor(tables::HASHED_ACCOUNTS, true)?,
            hashed_storage: cursor(tables::HASHED_STORAGE, true)?,
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
        match self.account_trie.seek(&key)? {
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
        match self.storage_trie.seek(&key)? {
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
        match self.hashed_accounts.seek(key.as_slice())? {
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
        match self.hashed_storage.seek(&seek)? {
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

#[cfg(test)]
mod tests {
    use super::is_successor;

    #[test]
    fn successor_of_fixed_width_keys() {
        assert!(is_successor(&[0, 0], &[0, 1]));
        assert!(is_successor(&[0, 0xff], &[1, 0]));
        assert!(!is_successor(&[0xff, 0xff], &[0, 0]));
        assert!(!is_successor(&[0, 1], &[0, 1]));
        assert!(!is_successor(&[0, 1], &[0, 3]));
        assert!(!is_successor(&[0, 1], &[0, 2, 0]));
    }
}
