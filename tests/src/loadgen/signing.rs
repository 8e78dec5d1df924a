//! Deterministic sender keys, fee choice, and EIP-1559 signing (in parallel, before any timing).

use alloy_consensus::{SignableTransaction, TxEip1559, TxEnvelope};
use alloy_eips::eip2718::Encodable2718;
use alloy_primitives::{B256, Bytes, TxKind, U256, keccak256};
use alloy_signer::SignerSync;
use alloy_signer_local::{MnemonicBuilder, PrivateKeySigner, coins_bip39::English};

use super::LoadgenError;

/// The sender keys: `keccak256(seed || i)` for `i in 0..n`, the same on every run with the
/// same seed (so re-runs reuse funded accounts).
pub fn sender_keys(seed: &str, n: usize) -> Result<Vec<PrivateKeySigner>, LoadgenError> {
    (0..n)
        .map(|i| {
            let mut material = seed.as_bytes().to_vec();
            material.extend_from_slice(&(i as u64).to_be_bytes());
            PrivateKeySigner::from_bytes(&keccak256(&material))
                .map_err(|e| LoadgenError::Signing(format!("sender key {i}: {e}")))
        })
        .collect()
}

/// Key `index` of a BIP-39 mnemonic (m/44'/60'/0'/0/index).
pub fn mnemonic_key(phrase: &str, index: u32) -> Result<PrivateKeySigner, LoadgenError> {
    MnemonicBuilder::<English>::default()
        .phrase(phrase)
        .index(index)
        .and_then(|b| b.build())
        .map_err(|e| LoadgenError::Signing(format!("mnemonic key {index}: {e}")))
}

/// Key `index` of the dev mnemonic [`super::DEV_MNEMONIC`] (the accounts devnets and anvil fund).
pub fn dev_key(index: u32) -> Result<PrivateKeySigner, LoadgenError> {
    mnemonic_key(super::DEV_MNEMONIC, index)
}

/// The fee fields every transaction of a run uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct Fees {
    /// `maxFeePerGas`.
    pub max_fee_per_gas: u128,
    /// `maxPriorityFeePerGas`.
    pub max_priority_fee_per_gas: u128,
}

/// Priority fee of every transaction: 1 gwei.
pub const PRIORITY_FEE: u128 = 1_000_000_000;

impl Fees {
    /// Fees with headroom: the cap is three times the current base fee (or gas price when the
    /// node reports no base fee) plus the tip, so a rising base fee does not strand transactions.
    pub fn with_headroom(base_fee: Option<u128>, gas_price: u128) -> Self {
        Self::with_multiplier(base_fee, gas_price, 3)
    }

    /// Fees whose cap is `multiplier` times the current base fee plus the tip: a long run of
    /// full blocks raises the base fee by 12.5 % per block (EIP-1559), and a cap below it
    /// leaves the remaining transactions waiting.
    pub fn with_multiplier(base_fee: Option<u128>, gas_price: u128, multiplier: u128) -> Self {
        let base = base_fee.unwrap_or(gas_price).max(gas_price.saturating_sub(PRIORITY_FEE));
        Self {
            max_fee_per_gas: base.saturating_mul(multiplier.max(1)).saturating_add(PRIORITY_FEE),
            max_priority_fee_per_gas: PRIORITY_FEE,
        }
    }

    /// The most a transaction with `gas_limit` can pay for gas.
    pub fn max_cost(&self, gas_limit: u64) -> u128 {
        self.max_fee_per_gas.saturating_mul(u128::from(gas_limit))
    }
}

/// What to sign: everything but the signer and the chain id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TxRequest {
    /// Index of the signing key.
    pub signer: usize,
    /// Nonce.
    pub nonce: u64,
    /// Recipient, or create.
    pub to: TxKind,
    /// Value in wei.
    pub value: U256,
    /// Calldata or init code.
    pub input: Bytes,
    /// Gas limit.
    pub gas_limit: u64,
}

/// A signed transaction ready for `eth_sendRawTransaction`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedTx {
    /// Transaction hash.
    pub hash: B256,
    /// EIP-2718 encoding.
    pub raw: Bytes,
}

impl SignedTx {
    /// The raw encoding as a `0x` hex string.
    pub fn raw_hex(&self) -> String {
        format!("{}", self.raw)
    }
}

/// Signs one EIP-1559 transaction.
pub fn sign(
    key: &PrivateKeySigner,
    chain_id: u64,
    fees: Fees,
    request: &TxRequest,
) -> Result<SignedTx, LoadgenError> {
    let tx = TxEip1559 {
        chain_id,
        nonce: request.nonce,
        gas_limit: request.gas_limit,
        max_fee_per_gas: fees.max_fee_per_gas,
        max_priority_fee_per_gas: fees.max_priority_fee_per_gas,
        to: request.to,
        value: request.value,
        access_list: Default::default(),
        input: request.input.clone(),
    };
    let signature = key
        .sign_hash_sync(&tx.signature_hash())
        .map_err(|e| LoadgenError::Signing(e.to_string()))?;
    let envelope = TxEnvelope::from(tx.into_signed(signature));
    Ok(SignedTx { hash: *envelope.tx_hash(), raw: Bytes::from(envelope.encoded_2718()) })
}

/// Signs every request, split over the machine's cores; the result keeps the requests' order.
pub fn sign_all(
    keys: &[PrivateKeySigner],
    chain_id: u64,
    fees: Fees,
    requests: &[TxRequest],
) -> Result<Vec<SignedTx>, LoadgenError> {
    let threads = std::thread::available_parallelism().map_or(1, usize::from).max(1);
    let chunk = requests.len().div_ceil(threads).max(1);
    let parts: Vec<Result<Vec<SignedTx>, LoadgenError>> = std::thread::scope(|scope| {
        let handles: Vec<_> = requests
            .chunks(chunk)
            .map(|part| {
                scope.spawn(move || {
                    part.iter()
                        .map(|r| {
                            let key = keys.get(r.signer).ok_or_else(|| {
                                LoadgenError::Signing(format!("no key {}", r.signer))
                            })?;
                            sign(key, chain_id, fees, r)
                        })
                        .collect()
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join().unwrap_or_else(|_| Err(LoadgenError::Signing("signer panicked".into())))
            })
            .collect()
    });
    let mut out = Vec::with_capacity(requests.len());
    for part in parts {
        out.extend(part?);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use alloy_consensus::transaction::SignerRecoverable;
    use alloy_eips::eip2718::Decodable2718;
    use alloy_primitives::Address;

    use super::*;

    #[test]
    fn sender_keys_are_deterministic_and_distinct() {
        let a = sender_keys("tandem-loadgen", 5).unwrap();
        let b = sender_keys("tandem-loadgen", 5).unwrap();
        let c = sender_keys("other", 5).unwrap();
        let addr = |k: &Vec<PrivateKeySigner>| k.iter().map(|k| k.address()).collect::<Vec<_>>();
        assert_eq!(addr(&a), addr(&b));
        assert_ne!(addr(&a), addr(&c));
        let mut unique = addr(&a);
        unique.dedup();
        assert_eq!(unique.len(), 5);
    }

    #[test]
    fn dev_account_zero_is_the_well_known_one() {
        let key =
            mnemonic_key("test test test test test test test test test test test junk", 0).unwrap();
        assert_eq!(
            key.address(),
            "0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266".parse::<Address>().unwrap()
        );
    }

    #[test]
    fn fees_have_headroom_over_the_base_fee() {
        let f = Fees::with_headroom(Some(1_000_000_000), 2_000_000_000);
        assert_eq!(f.max_priority_fee_per_gas, PRIORITY_FEE);
        assert_eq!(f.max_fee_per_gas, 3_000_000_000 + PRIORITY_FEE);
        assert!(f.max_fee_per_gas >= 2 * 1_000_000_000 + f.max_priority_fee_per_gas);
        // No base fee reported: the gas price stands in.
        let f = Fees::with_headroom(None, 7);
        assert_eq!(f.max_fee_per_gas, 21 + PRIORITY_FEE);
        assert_eq!(f.max_cost(21_000), 21_000 * f.max_fee_per_gas);
    }

    #[test]
    fn signed_transactions_decode_and_recover_to_their_sender_in_order() {
        let keys = sender_keys("t", 3).unwrap();
        let fees = Fees::with_headroom(Some(1_000_000_000), 1_000_000_000);
        let requests: Vec<TxRequest> = (0..9)
            .map(|i| TxRequest {
                signer: i % 3,
                nonce: (i / 3) as u64,
                to: TxKind::Call(Address::repeat_byte(0xb0)),
                value: U256::from(1),
                input: Bytes::new(),
                gas_limit: 21_000,
            })
            .collect();
        let signed = sign_all(&keys, 1337, fees, &requests).unwrap();
        assert_eq!(signed.len(), 9);
        for (tx, request) in signed.iter().zip(&requests) {
            let envelope = TxEnvelope::decode_2718(&mut tx.raw.as_ref()).unwrap();
            assert_eq!(*envelope.tx_hash(), tx.hash);
            assert_eq!(envelope.recover_signer().unwrap(), keys[request.signer].address());
            assert!(tx.raw_hex().starts_with("0x02"));
        }
    }
}
