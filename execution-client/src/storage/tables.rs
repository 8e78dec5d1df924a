//! The MDBX tables and the layout of their keys.
//!
//! Every table is a plain (non-dup-sort) B-tree; composite keys are concatenations of
//! fixed-width big-endian fields, so MDBX's byte order is the order we iterate in:
//!
//! | table | key | value |
//! |---|---|---|
//! | `Meta` | `client`, `schema`, `chain_id`, `genesis_hash`, `history_indexed` | name, u32, u64, 32 bytes, u64 |
//! | `Headers` | number (8) | RLP header |
//! | `HeaderNumbers` | block hash (32) | number (8) |
//! | `CanonicalHashes` | number (8) | block hash (32) |
//! | `Bodies` | number (8) | RLP `BlockBody` (transactions, ommers, withdrawals) |
//! | `Senders` | number (8) | 20 bytes per transaction, in order |
//! | `Receipts` | number (8) | RLP list of EIP-2718 receipt encodings |
//! | `TxLookup` | tx hash (32) | number (8) ‖ index (4) |
//! | `PlainAccounts` | address (20) | account (72) |
//! | `PlainStorage` | address (20) ‖ slot (32) | value (32), never zero |
//! | `Bytecodes` | code hash (32) | original code bytes |
//! | `HashedAccounts` | keccak(address) (32) | trie account (104, with storage root) |
//! | `HashedStorage` | keccak(address) ‖ keccak(slot) (64) | value (32), never zero |
//! | `AccountTrie` | nibble path, one byte per nibble | branch node |
//! | `StorageTrie` | keccak(address) (32) ‖ nibble path | branch node |
//! | `AccountChangeSets` | number (8) ‖ address (20) | account before the block (empty: absent) |
//! | `StorageChangeSets` | number (8) ‖ address (20) ‖ slot (32) | value before the block (32) |
//! | `AccountHistory` | address (20) ‖ number (8) | empty: the account changed in that block |
//! | `StorageHistory` | address (20) ‖ slot (32) ‖ number (8) | empty: the slot changed in that block |

use alloy_primitives::{Address, B256};
use alloy_trie::Nibbles;

/// Names of all tables, in creation order.
pub const ALL: [&str; 19] = [
    META,
    HEADERS,
    HEADER_NUMBERS,
    CANONICAL_HASHES,
    BODIES,
    SENDERS,
    RECEIPTS,
    TX_LOOKUP,
    PLAIN_ACCOUNTS,
    PLAIN_STORAGE,
    BYTECODES,
    HASHED_ACCOUNTS,
    HASHED_STORAGE,
    ACCOUNT_TRIE,
    STORAGE_TRIE,
    ACCOUNT_CHANGE_SETS,
    STORAGE_CHANGE_SETS,
    ACCOUNT_HISTORY,
    STORAGE_HISTORY,
];

/// Database identity: client, schema version, chain id, genesis hash.
pub const META: &str = "Meta";
/// Block headers by number.
pub const HEADERS: &str = "Headers";
/// Block number by block hash.
pub const HEADER_NUMBERS: &str = "HeaderNumbers";
/// Canonical block hash by number; its last entry is the tip.
pub const CANONICAL_HASHES: &str = "CanonicalHashes";
/// Block bodies by number.
pub const BODIES: &str = "Bodies";
/// Recovered transaction senders by block number.
pub const SENDERS: &str = "Senders";
/// Receipts by block number.
pub const RECEIPTS: &str = "Receipts";
/// Transaction location by transaction hash.
pub const TX_LOOKUP: &str = "TxLookup";
/// Latest account state by address.
pub const PLAIN_ACCOUNTS: &str = "PlainAccounts";
/// Latest storage by address and slot.
pub const PLAIN_STORAGE: &str = "PlainStorage";
/// Contract code by code hash.
pub const BYTECODES: &str = "Bytecodes";
/// Latest accounts by hashed address, with their storage roots: the account trie's leaves.
pub const HASHED_ACCOUNTS: &str = "HashedAccounts";
/// Latest storage by hashed address and hashed slot: the storage tries' leaves.
pub const HASHED_STORAGE: &str = "HashedStorage";
/// Stored branch nodes of the account trie.
pub const ACCOUNT_TRIE: &str = "AccountTrie";
/// Stored branch nodes of every storage trie.
pub const STORAGE_TRIE: &str = "StorageTrie";
/// Account values before each block.
pub const ACCOUNT_CHANGE_SETS: &str = "AccountChangeSets";
/// Storage values before each block.
pub const STORAGE_CHANGE_SETS: &str = "StorageChangeSets";
/// Blocks in which each account changed.
pub const ACCOUNT_HISTORY: &str = "AccountHistory";
/// `Meta` key: the last block up to which every change is in `AccountHistory` and
/// `StorageHistory` (keys of later blocks may be there already); 8 bytes, big-endian; absent in
/// databases that indexed every block as it was committed.
pub const META_HISTORY_INDEXED: &[u8] = b"history_indexed";
/// Blocks in which each storage slot changed.
pub const STORAGE_HISTORY: &str = "StorageHistory";

/// Big-endian block number key.
pub fn number_key(number: u64) -> [u8; 8] {
    number.to_be_bytes()
}

/// `PlainStorage` key.
pub fn plain_storage_key(address: &Address, slot: &B256) -> [u8; 52] {
    let mut key = [0u8; 52];
    key[..20].copy_from_slice(address.as_slice());
    key[20..].copy_from_slice(slot.as_slice());
    key
}

/// `HashedStorage` key.
pub fn hashed_storage_key(hashed_address: &B256, hashed_slot: &B256) -> [u8; 64] {
    let mut key = [0u8; 64];
    key[..32].copy_from_slice(hashed_address.as_slice());
    key[32..].copy_from_slice(hashed_slot.as_slice());
    key
}

/// `AccountChangeSets` key.
pub fn account_change_key(number: u64, address: &Address) -> [u8; 28] {
    let mut key = [0u8; 28];
    key[..8].copy_from_slice(&number.to_be_bytes());
    key[8..].copy_from_slice(address.as_slice());
    key
}

/// `StorageChangeSets` key.
pub fn storage_change_key(number: u64, address: &Address, slot: &B256) -> [u8; 60] {
    let mut key = [0u8; 60];
    key[..8].copy_from_slice(&number.to_be_bytes());
    key[8..28].copy_from_slice(address.as_slice());
    key[28..].copy_from_slice(slot.as_slice());
    key
}

/// `AccountHistory` key.
pub fn account_history_key(address: &Address, number: u64) -> [u8; 28] {
    let mut key = [0u8; 28];
    key[..20].copy_from_slice(address.as_slice());
    key[20..].copy_from_slice(&number.to_be_bytes());
    key
}

/// `StorageHistory` key.
pub fn storage_history_key(address: &Address, slot: &B256, number: u64) -> [u8; 60] {
    let mut key = [0u8; 60];
    key[..20].copy_from_slice(address.as_slice());
    key[20..52].copy_from_slice(slot.as_slice());
    key[52..].copy_from_slice(&number.to_be_bytes());
    key
}

/// `TxLookup` value.
pub fn tx_location(number: u64, index: u32) -> [u8; 12] {
    let mut value = [0u8; 12];
    value[..8].copy_from_slice(&number.to_be_bytes());
    value[8..].copy_from_slice(&index.to_be_bytes());
    value
}

/// Trie node key: `prefix` (empty for the account trie, the hashed address for a storage trie)
/// followed by one byte per nibble of `path`, so byte order equals nibble order.
pub fn trie_key(prefix: &[u8], path: &Nibbles) -> Vec<u8> {
    let mut key = Vec::with_capacity(prefix.len() + path.len());
    key.extend_from_slice(prefix);
    key.extend(path.iter());
    key
}

/// Reads a big-endian `u64` from the first 8 bytes of `bytes`.
pub fn read_u64(bytes: &[u8]) -> Option<u64> {
    let array: [u8; 8] = bytes.get(..8)?.try_into().ok()?;
    Some(u64::from_be_bytes(array))
}

/// Block number and address of an `AccountChangeSets` key; `None` if malformed.
pub fn parse_account_change_key(key: &[u8]) -> Option<(u64, Address)> {
    if key.len() != 28 {
        return None;
    }
    Some((read_u64(key)?, Address::from_slice(&key[8..])))
}

/// Block number, address and slot of a `StorageChangeSets` key; `None` if malformed.
pub fn parse_storage_change_key(key: &[u8]) -> Option<(u64, Address, B256)> {
    if key.len() != 60 {
        return None;
    }
    Some((read_u64(key)?, Address::from_slice(&key[8..28]), B256::from_slice(&key[28..])))
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloy_primitives::hex;

    #[test]
    fn key_layout_golden() {
        let address = Address::repeat_byte(0xaa);
        let slot = B256::repeat_byte(0x01);
        assert_eq!(hex::encode(number_key(0x0102)), "0000000000000102");
        assert_eq!(
            hex::encode(account_change_key(7, &address)),
            format!("0000000000000007{}", "aa".repeat(20))
        );
        assert_eq!(
            hex::encode(account_history_key(&address, 7)),
            format!("{}0000000000000007", "aa".repeat(20))
        );
        assert_eq!(
            hex::encode(storage_change_key(7, &address, &slot)),
            format!("0000000000000007{}{}", "aa".repeat(20), "01".repeat(32))
        );
        assert_eq!(
            hex::encode(storage_history_key(&address, &slot, 7)),
            format!("{}{}0000000000000007", "aa".repeat(20), "01".repeat(32))
        );
        assert_eq!(
            hex::encode(plain_storage_key(&address, &slot)),
            format!("{}{}", "aa".repeat(20), "01".repeat(32))
        );
        assert_eq!(
            hex::encode(hashed_storage_key(&slot, &B256::ZERO)),
            format!("{}{}", "01".repeat(32), "00".repeat(32))
        );
        assert_eq!(hex::encode(tx_location(5, 3)), "000000000000000500000003");
        assert_eq!(hex::encode(trie_key(&[0xee], &Nibbles::from_nibbles([0xa, 0, 3]))), "ee0a0003");
        assert_eq!(read_u64(&number_key(99)), Some(99));
        assert_eq!(read_u64(&[1, 2]), None);
        let (address, slot) = (Address::repeat_byte(0xaa), B256::repeat_byte(0xbb));
        assert_eq!(parse_account_change_key(&account_change_key(7, &address)), Some((7, address)));
        assert_eq!(
            parse_storage_change_key(&storage_change_key(7, &address, &slot)),
            Some((7, address, slot))
        );
        assert_eq!(parse_account_change_key(&[0; 27]), None);
        assert_eq!(parse_storage_change_key(&[0; 59]), None);
    }
}
