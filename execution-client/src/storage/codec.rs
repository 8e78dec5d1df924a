//! Encodings of the values stored in MDBX. Each has a golden test below, so a change to a stored
//! format is deliberate (bump [`SCHEMA_VERSION`](super::SCHEMA_VERSION) when one changes).
//!
//! Fixed-width big-endian fields are used where the value is small and hot (accounts, storage,
//! trie nodes); RLP where Ethereum already defines the encoding (headers, bodies, receipts).

use alloy_consensus::ReceiptEnvelope;
use alloy_eips::eip2718::{Decodable2718, Encodable2718};
use alloy_primitives::{B256, Bytes, U256};
use alloy_rlp::{Decodable, Encodable};
use alloy_trie::{BranchNodeCompact, TrieMask};

/// The part of an account the plain and hashed state keep (code lives in `Bytecodes`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct StoredAccount {
    /// Nonce.
    pub nonce: u64,
    /// Balance in wei.
    pub balance: U256,
    /// Keccak of the code, `KECCAK_EMPTY` without code.
    pub code_hash: B256,
}

/// Length of an encoded [`StoredAccount`].
pub const ACCOUNT_LEN: usize = 72;
/// Length of an encoded hashed account: a [`StoredAccount`] followed by its storage root.
pub const HASHED_ACCOUNT_LEN: usize = 104;

/// Encodes an account: nonce (8) ‖ balance (32) ‖ code hash (32).
pub fn encode_account(account: &StoredAccount) -> [u8; ACCOUNT_LEN] {
    let mut out = [0u8; ACCOUNT_LEN];
    out[..8].copy_from_slice(&account.nonce.to_be_bytes());
    out[8..40].copy_from_slice(&account.balance.to_be_bytes::<32>());
    out[40..72].copy_from_slice(account.code_hash.as_slice());
    out
}

/// Decodes [`encode_account`]; `None` when the length is wrong.
pub fn decode_account(bytes: &[u8]) -> Option<StoredAccount> {
    if bytes.len() != ACCOUNT_LEN {
        return None;
    }
    let nonce = u64::from_be_bytes(bytes[..8].try_into().ok()?);
    let balance = U256::from_be_slice(&bytes[8..40]);
    let code_hash = B256::from_slice(&bytes[40..72]);
    Some(StoredAccount { nonce, balance, code_hash })
}

/// Encodes an account of the hashed state: the account (72) ‖ storage root (32).
pub fn encode_hashed_account(
    account: &StoredAccount,
    storage_root: &B256,
) -> [u8; HASHED_ACCOUNT_LEN] {
    let mut out = [0u8; HASHED_ACCOUNT_LEN];
    out[..ACCOUNT_LEN].copy_from_slice(&encode_account(account));
    out[ACCOUNT_LEN..].copy_from_slice(storage_root.as_slice());
    out
}

/// Decodes [`encode_hashed_account`]; `None` when the length is wrong.
pub fn decode_hashed_account(bytes: &[u8]) -> Option<(StoredAccount, B256)> {
    if bytes.len() != HASHED_ACCOUNT_LEN {
        return None;
    }
    let account = decode_account(&bytes[..ACCOUNT_LEN])?;
    Some((account, B256::from_slice(&bytes[ACCOUNT_LEN..])))
}

/// Encodes an account change set entry: empty when the account did not exist.
pub fn encode_account_change(account: Option<&StoredAccount>) -> Vec<u8> {
    account.map(|a| encode_account(a).to_vec()).unwrap_or_default()
}

/// Decodes [`encode_account_change`]; the outer `None` means the bytes are malformed.
pub fn decode_account_change(bytes: &[u8]) -> Option<Option<StoredAccount>> {
    if bytes.is_empty() { Some(None) } else { decode_account(bytes).map(Some) }
}

/// Decodes a 32-byte big-endian storage value.
pub fn decode_storage_value(bytes: &[u8]) -> Option<U256> {
    (bytes.len() == 32).then(|| U256::from_be_slice(bytes))
}

/// Encodes a branch node: state mask (2) ‖ tree mask (2) ‖ hash mask (2) ‖ root flag (1)
/// ‖ root hash (32, only when the flag is 1) ‖ one 32-byte hash per bit of the hash mask.
pub fn encode_branch_node(node: &BranchNodeCompact) -> Vec<u8> {
    let mut out = Vec::with_capacity(7 + 32 * (node.hashes.len() + 1));
    out.extend_from_slice(&node.state_mask.get().to_be_bytes());
    out.extend_from_slice(&node.tree_mask.get().to_be_bytes());
    out.extend_from_slice(&node.hash_mask.get().to_be_bytes());
    match &node.root_hash {
        Some(root) => {
            out.push(1);
            out.extend_from_slice(root.as_slice());
        }
        None => out.push(0),
    }
    for hash in node.hashes.iter() {
        out.extend_from_slice(hash.as_slice());
    }
    out
}

/// Decodes [`encode_branch_node`], checking the masks are consistent (so a damaged record is an
/// error, never a panic inside alloy-trie).
pub fn decode_branch_node(bytes: &[u8]) -> Result<BranchNodeCompact, String> {
    if bytes.len() < 7 {
        return Err(format!("branch node of {} bytes", bytes.len()));
    }
    let mask = |i: usize| u16::from_be_bytes([bytes[i], bytes[i + 1]]);
    let (state_mask, tree_mask, hash_mask) = (mask(0), mask(2), mask(4));
    if tree_mask & !state_mask != 0 || hash_mask & !state_mask != 0 {
        return Err(format!(
            "masks inconsistent: state {state_mask:#06x} tree {tree_mask:#06x} hash {hash_mask:#06x}"
        ));
    }
    let (root_hash, rest) = match bytes[6] {
        0 => (None, &bytes[7..]),
        1 if bytes.len() >= 39 => (Some(B256::from_slice(&bytes[7..39])), &bytes[39..]),
        flag => return Err(format!("bad root flag {flag} in {} bytes", bytes.len())),
    };
    if rest.len() != 32 * hash_mask.count_ones() as usize {
        return Err(format!("{} hash bytes for hash mask {hash_mask:#06x}", rest.len()));
    }
    let hashes = rest.chunks_exact(32).map(B256::from_slice).collect::<Vec<_>>();
    Ok(BranchNodeCompact::new(
        TrieMask::new(state_mask),
        TrieMask::new(tree_mask),
        TrieMask::new(hash_mask),
        hashes,
        root_hash,
    ))
}

/// Encodes a block's receipts: an RLP list of their EIP-2718 encodings.
pub fn encode_receipts(receipts: &[ReceiptEnvelope]) -> Vec<u8> {
    let items: Vec<Bytes> = receipts.iter().map(|r| Bytes::from(r.encoded_2718())).collect();
    let mut out = Vec::new();
    items.encode(&mut out);
    out
}

/// Decodes [`encode_receipts`].
pub fn decode_receipts(mut bytes: &[u8]) -> Result<Vec<ReceiptEnvelope>, String> {
    let items = Vec::<Bytes>::decode(&mut bytes).map_err(|e| e.to_string())?;
    items
        .iter()
        .map(|item| ReceiptEnvelope::decode_2718(&mut item.as_ref()).map_err(|e| e.to_string()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloy_consensus::{Eip658Value, Receipt, ReceiptWithBloom};
    use alloy_primitives::{Address, Log, LogData, b256, hex};

    #[test]
    fn account_golden() {
        let account = StoredAccount {
            nonce: 0x0102,
            balance: U256::from(0xdead_beefu64),
            code_hash: b256!("c5d2460186f7233c927e7db2dcc703c0e500b653ca82273b7bfad8045d85a470"),
        };
        let encoded = encode_account(&account);
        assert_eq!(
            hex::encode(encoded),
            "0000000000000102\
             00000000000000000000000000000000000000000000000000000000deadbeef\
             c5d2460186f7233c927e7db2dcc703c0e500b653ca82273b7bfad8045d85a470"
        );
        assert_eq!(decode_account(&encoded), Some(account));
        assert_eq!(decode_account(&encoded[1..]), None);

        let root = B256::repeat_byte(0x11);
        let hashed = encode_hashed_account(&account, &root);
        assert_eq!(&hashed[..72], &encoded[..]);
        assert_eq!(&hashed[72..], root.as_slice());
        assert_eq!(decode_hashed_account(&hashed), Some((account, root)));

        assert!(encode_account_change(None).is_empty());
        assert_eq!(decode_account_change(&[]), Some(None));
        assert_eq!(decode_account_change(&encoded), Some(Some(account)));
        assert_eq!(decode_account_change(&[1, 2, 3]), None);
    }

    #[test]
    fn branch_node_golden() {
        let node = BranchNodeCompact::new(
            TrieMask::new(0b1011),
            TrieMask::new(0b0001),
            TrieMask::new(0b1001),
            vec![B256::repeat_byte(0xaa), B256::repeat_byte(0xbb)],
            None,
        );
        let encoded = encode_branch_node(&node);
        assert_eq!(hex::encode(&encoded[..7]), "000b0001000900");
        assert_eq!(encoded.len(), 7 + 64);
        assert_eq!(&encoded[7..39], B256::repeat_byte(0xaa).as_slice());
        assert_eq!(decode_branch_node(&encoded).unwrap(), node);

        let root = BranchNodeCompact::new(
            TrieMask::new(0x8001),
            TrieMask::new(0),
            TrieMask::new(0x8000),
            vec![B256::repeat_byte(0xcc)],
            Some(B256::repeat_byte(0xdd)),
        );
        let encoded = encode_branch_node(&root);
        assert_eq!(hex::encode(&encoded[..8]), "80010000800001dd");
        assert_eq!(decode_branch_node(&encoded).unwrap(), root);

        // Damaged records are errors, not panics.
        assert!(decode_branch_node(&encoded[..5]).is_err());
        assert!(decode_branch_node(&encoded[..encoded.len() - 1]).is_err());
        let mut bad_mask = encoded.clone();
        bad_mask[5] = 0x02; // hash mask bit outside the state mask
        assert!(decode_branch_node(&bad_mask).is_err());
    }

    #[test]
    fn receipts_golden() {
        let receipt = ReceiptWithBloom::from(Receipt {
            status: Eip658Value::Eip658(true),
            cumulative_gas_used: 21_000,
            logs: vec![Log {
                address: Address::repeat_byte(0x42),
                data: LogData::new_unchecked(vec![B256::repeat_byte(1)], Bytes::from_static(&[7])),
            }],
        });
        let receipts =
            vec![ReceiptEnvelope::Legacy(receipt.clone()), ReceiptEnvelope::Eip1559(receipt)];
        let encoded = encode_receipts(&receipts);
        // Outer list of two byte strings; the second is type 0x02 followed by the RLP receipt.
        assert_eq!(hex::encode(&encoded[..4]), "f90293b9");
        assert_eq!(
            keccak(&encoded),
            b256!("0b3a5fd4e6e9056bd6dcaaf5098624978e8d1b1b55edb171596830b5718d3234")
        );
        assert_eq!(decode_receipts(&encoded).unwrap(), receipts);
        assert!(decode_receipts(&encoded[..10]).is_err());
    }

    fn keccak(bytes: &[u8]) -> B256 {
        alloy_primitives::keccak256(bytes)
    }
}
