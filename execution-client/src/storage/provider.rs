//! State reads at the tip or at a past block, as a revm [`DatabaseRef`].

use super::{MdbxResultExt, StorageError, StoredAccount, codec, corrupt, get_b256, tables};
use alloy_primitives::{Address, B256, U256};
use libmdbx::{NoWriteMap, RO, Transaction};
use revm::DatabaseRef;
use revm::bytecode::Bytecode;
use revm::primitives::KECCAK_EMPTY;
use revm::state::AccountInfo;

/// A consistent read view of the state after one canonical block (the tip for
/// [`Database::latest`](super::Database::latest)). Implements [`DatabaseRef`] for revm.
///
/// Latest reads go to the plain state. Historical reads (block `n` below the tip) find the
/// first block after `n` that changed the key — in the history index up to the last indexed
/// block, then in the change sets of the blocks after it — and return that block's change-set
/// value (the value before it), falling back to the plain state when no later block changed
/// the key.
#[derive(Debug)]
pub struct StateProvider<'db> {
    txn: Transaction<'db, RO, NoWriteMap>,
    number: u64,
    history: Option<History>,
}

/// Where the changes after a historical block are found.
#[derive(Debug, Clone, Copy)]
pub(super) struct History {
    /// The last block in the history indexes.
    pub(super) indexed: u64,
    /// The canonical tip.
    pub(super) tip: u64,
}

impl<'db> StateProvider<'db> {
    pub(super) fn new(
        txn: Transaction<'db, RO, NoWriteMap>,
        number: u64,
        history: Option<History>,
    ) -> Self {
        Self { txn, number, history }
    }

    /// Number of the block whose post-state this reads.
    pub fn block_number(&self) -> u64 {
        self.number
    }

    /// The first block after this one that changed a key, and that block's change-set value:
    /// from `index` (keys `prefix ‖ block`) up to the last indexed block, then from the change
    /// sets (`changes`, keyed by `change_key(block)`) of the blocks after it.
    fn first_change(
        &self,
        history: History,
        index: &'static str,
        prefix: &[u8],
        changes: &'static str,
        change_key: impl Fn(u64) -> Vec<u8>,
    ) -> Result<Option<(u64, Vec<u8>)>, StorageError> {
        let change_table = self.txn.open_table(Some(changes)).op("open change sets")?;
        if self.number < history.indexed {
            let table = self.txn.open_table(Some(index)).op("open history index")?;
            let mut cursor = self.txn.cursor(&table).op("cursor history index")?;
            let mut seek = prefix.to_vec();
            seek.extend_from_slice(&(self.number + 1).to_be_bytes());
            if let Some((key, ())) =
                cursor.set_range::<Vec<u8>, ()>(&seek).op("seek history index")?
                && key.starts_with(prefix)
            {
                let Some(changed_in) = tables::read_u64(&key[prefix.len()..]) else {
                    return Err(corrupt(index, &key, "short key"));
                };
                if changed_in <= history.indexed {
                    let change_key = change_key(changed_in);
                    let Some(value) = self
                        .txn
                        .get::<Vec<u8>>(&change_table, &change_key)
                        .op("read change sets")?
                    else {
                        return Err(corrupt(index, &key, "indexed change set entry is missing"));
                    };
                    return Ok(Some((changed_in, value)));
                }
            }
        }
        for block in history.indexed.max(self.number) + 1..=history.tip {
            if let Some(value) =
                self.txn.get::<Vec<u8>>(&change_table, &change_key(block)).op("read change sets")?
            {
                return Ok(Some((block, value)));
            }
        }
        Ok(None)
    }

    /// The account at `address`; `None` if it does not exist.
    pub fn account(&self, address: Address) -> Result<Option<StoredAccount>, StorageError> {
        if let Some(history) = self.history
            && let Some((changed_in, value)) = self.first_change(
                history,
                tables::ACCOUNT_HISTORY,
                address.as_slice(),
                tables::ACCOUNT_CHANGE_SETS,
                |block| tables::account_change_key(block, &address).to_vec(),
            )?
        {
            return codec::decode_account_change(&value).ok_or_else(|| {
                let key = tables::account_change_key(changed_in, &address);
                corrupt(tables::ACCOUNT_CHANGE_SETS, &key, "malformed account")
            });
        }
        let plain = self.txn.open_table(Some(tables::PLAIN_ACCOUNTS)).op("open PlainAccounts")?;
        match self.txn.get::<Vec<u8>>(&plain, address).op("read PlainAccounts")? {
            Some(bytes) => codec::decode_account(&bytes).map(Some).ok_or_else(|| {
                corrupt(tables::PLAIN_ACCOUNTS, address.as_slice(), "malformed account")
            }),
            None => Ok(None),
        }
    }

    /// The value of `slot` in `address`'s storage; zero if unset.
    pub fn storage(&self, address: Address, slot: B256) -> Result<U256, StorageError> {
        let key = tables::plain_storage_key(&address, &slot);
        if let Some(history) = self.history
            && let Some((changed_in, value)) = self.first_change(
                history,
                tables::STORAGE_HISTORY,
                &key,
                tables::STORAGE_CHANGE_SETS,
                |block| tables::storage_change_key(block, &address, &slot).to_vec(),
            )?
        {
            return codec::decode_storage_value(&value).ok_or_else(|| {
                let key = tables::storage_change_key(changed_in, &address, &slot);
                corrupt(tables::STORAGE_CHANGE_SETS, &key, "malformed value")
            });
        }
        let plain = self.txn.open_table(Some(tables::PLAIN_STORAGE)).op("open PlainStorage")?;
        match self.txn.get::<Vec<u8>>(&plain, key).op("read PlainStorage")? {
            Some(bytes) => codec::decode_storage_value(&bytes)
                .ok_or_else(|| corrupt(tables::PLAIN_STORAGE, &key, "malformed value")),
            None => Ok(U256::ZERO),
        }
    }

    /// Contract code by hash; `None` if unknown (the empty code hash gives empty code).
    pub fn bytecode(&self, code_hash: B256) -> Result<Option<Bytecode>, StorageError> {
        if code_hash == KECCAK_EMPTY {
            return Ok(Some(Bytecode::default()));
        }
        let table = self.txn.open_table(Some(tables::BYTECODES)).op("open Bytecodes")?;
        Ok(self
            .txn
            .get::<Vec<u8>>(&table, code_hash)
            .op("read Bytecodes")?
            .map(|code| Bytecode::new_raw(code.into())))
    }

    /// Hash of canonical block `number`; `None` above the tip.
    pub fn canonical_hash(&self, number: u64) -> Result<Option<B256>, StorageError> {
        let table =
            self.txn.open_table(Some(tables::CANONICAL_HASHES)).op("open CanonicalHashes")?;
        get_b256(&self.txn, &table, tables::CANONICAL_HASHES, &tables::number_key(number))
    }
}

impl DatabaseRef for StateProvider<'_> {
    type Error = StorageError;

    fn basic_ref(&self, address: Address) -> Result<Option<AccountInfo>, StorageError> {
        Ok(self.account(address)?.map(|account| account.to_info()))
    }

    fn code_by_hash_ref(&self, code_hash: B256) -> Result<Bytecode, StorageError> {
        self.bytecode(code_hash)?.ok_or(StorageError::MissingBytecode { code_hash })
    }

    fn storage_ref(&self, address: Address, index: U256) -> Result<U256, StorageError> {
        self.storage(address, B256::from(index.to_be_bytes::<32>()))
    }

    /// Hash of a canonical block; blocks above this view's block (which the EVM never asks for)
    /// and unknown blocks give [`StorageError::UnknownBlock`].
    fn block_hash_ref(&self, number: u64) -> Result<B256, StorageError> {
        match self.canonical_hash(number)? {
            Some(hash) if number <= self.number => Ok(hash),
            _ => Err(StorageError::UnknownBlock { number, tip: self.number }),
        }
    }
}
