//! Header and body rules checked before execution: the header against its parent, the body
//! against the header's roots.

use alloy_consensus::{
    BlockHeader, EMPTY_OMMER_ROOT_HASH, Header, Transaction, TxEnvelope, Typed2718,
    proofs::{calculate_transaction_root, calculate_withdrawals_root},
};
use alloy_eips::{
    eip1559::{BaseFeeParams, calc_next_block_base_fee},
    eip4844::DATA_GAS_PER_BLOB,
};
use alloy_primitives::{B64, B256, U256};
use tandem_shared::{ChainSpec, Fork};

use super::InvalidBlock;

/// Most bytes `extraData` may carry.
pub const MAXIMUM_EXTRA_DATA_SIZE: usize = 32;
/// Smallest gas limit a block may have.
pub const MINIMUM_GAS_LIMIT: u64 = 5000;
/// Largest gas limit a block may have (2^63 - 1, as geth).
pub const MAXIMUM_GAS_LIMIT: u64 = i64::MAX as u64;
/// The gas limit may move by less than `parent / GAS_LIMIT_BOUND_DIVISOR` per block.
pub const GAS_LIMIT_BOUND_DIVISOR: u64 = 1024;

/// Checks a header against its parent (`parent_hash` is the parent's hash).
pub fn validate_header(
    chain: &ChainSpec,
    header: &Header,
    parent: &Header,
    parent_hash: B256,
) -> Result<(), InvalidBlock> {
    if header.parent_hash != parent_hash {
        return Err(InvalidBlock::ParentHash { expected: parent_hash, got: header.parent_hash });
    }
    if Some(header.number) != parent.number.checked_add(1) {
        return Err(InvalidBlock::Number { parent: parent.number, got: header.number });
    }
    let equal_allowed = chain.sub_second_blocks();
    let timestamp_ok = if equal_allowed {
        header.timestamp >= parent.timestamp
    } else {
        header.timestamp > parent.timestamp
    };
    if !timestamp_ok {
        return Err(InvalidBlock::Timestamp {
            parent: parent.timestamp,
            got: header.timestamp,
            equal_allowed,
        });
    }
    validate_standalone(chain, header)?;

    let bound = parent.gas_limit / GAS_LIMIT_BOUND_DIVISOR;
    if header.gas_limit.abs_diff(parent.gas_limit) >= bound
        || header.gas_limit < MINIMUM_GAS_LIMIT
        || header.gas_limit > MAXIMUM_GAS_LIMIT
    {
        return Err(InvalidBlock::GasLimit { parent: parent.gas_limit, got: header.gas_limit });
    }

    let expected_base_fee = calc_next_block_base_fee(
        parent.gas_used,
        parent.gas_limit,
        parent.base_fee_per_gas.unwrap_or_default(),
        BaseFeeParams::ethereum(),
    );
    if header.base_fee_per_gas != Some(expected_base_fee) {
        return Err(InvalidBlock::BaseFee {
            expected: expected_base_fee,
            got: header.base_fee_per_gas,
        });
    }

    if let (Some(params), Some(excess)) =
        (chain.blob_params_at(header.timestamp), header.excess_blob_gas)
    {
        // Across the Cancun transition the parent has no blob fields: both count as zero.
        let parent_total =
            parent.excess_blob_gas.unwrap_or(0).saturating_add(parent.blob_gas_used.unwrap_or(0));
        let expected = parent_total.saturating_sub(params.target_blob_gas_per_block());
        if excess != expected {
            return Err(InvalidBlock::ExcessBlobGas { expected, got: excess });
        }
    }
    Ok(())
}

/// Checks the rules a header must meet on its own (fork fields, post-merge constants, sizes).
pub fn validate_standalone(chain: &ChainSpec, header: &Header) -> Result<(), InvalidBlock> {
    if header.extra_data.len() > MAXIMUM_EXTRA_DATA_SIZE {
        return Err(InvalidBlock::ExtraData(header.extra_data.len()));
    }
    if header.gas_used > header.gas_limit {
        return Err(InvalidBlock::GasUsedAboveLimit {
            used: header.gas_used,
            limit: header.gas_limit,
        });
    }
    if header.ommers_hash != EMPTY_OMMER_ROOT_HASH {
        return Err(InvalidBlock::PostMerge("ommers"));
    }
    if header.difficulty != U256::ZERO {
        return Err(InvalidBlock::PostMerge("non-zero difficulty"));
    }
    if header.nonce != B64::ZERO {
        return Err(InvalidBlock::PostMerge("non-zero nonce"));
    }
    if header.base_fee_per_gas.is_none() {
        return Err(InvalidBlock::ForkField { field: "baseFeePerGas", expected: true });
    }
    let ts = header.timestamp;
    let shanghai = chain.is_active(Fork::Shanghai, ts);
    let cancun = chain.is_active(Fork::Cancun, ts);
    let prague = chain.is_active(Fork::Prague, ts);
    let fields: [(&'static str, bool, bool); 5] = [
        ("withdrawalsRoot", shanghai, header.withdrawals_root.is_some()),
        ("blobGasUsed", cancun, header.blob_gas_used.is_some()),
        ("excessBlobGas", cancun, header.excess_blob_gas.is_some()),
        ("parentBeaconBlockRoot", cancun, header.parent_beacon_block_root.is_some()),
        ("requestsHash", prague, header.requests_hash.is_some()),
    ];
    for (field, expected, present) in fields {
        if expected != present {
            return Err(InvalidBlock::ForkField { field, expected });
        }
    }
    if let (Some(params), Some(used)) = (chain.blob_params_at(ts), header.blob_gas_used) {
        let max = params.max_blob_gas_per_block();
        if used > max || used % DATA_GAS_PER_BLOB != 0 {
            return Err(InvalidBlock::BlobGasUsed {
                expected: used - used % DATA_GAS_PER_BLOB,
                got: used,
                max,
            });
        }
    }
    if header.slot_number().is_some() || header.block_access_list_hash().is_some() {
        return Err(InvalidBlock::ForkField { field: "post-Prague field", expected: false });
    }
    Ok(())
}

/// Checks the body against the header: transaction and withdrawals roots, no ommers, the
/// transaction types the fork allows, and the blob gas the transactions use.
pub fn validate_body(
    chain: &ChainSpec,
    header: &Header,
    transactions: &[TxEnvelope],
    ommers: &[Header],
    withdrawals: Option<&[alloy_eips::eip4895::Withdrawal]>,
) -> Result<(), InvalidBlock> {
    if !ommers.is_empty() {
        return Err(InvalidBlock::Body("ommers in a post-merge block"));
    }
    let tx_root = calculate_transaction_root(transactions);
    if tx_root != header.transactions_root {
        return Err(InvalidBlock::RootMismatch {
            what: "transactions root",
            header: header.transactions_root,
            computed: tx_root,
        });
    }
    match (header.withdrawals_root, withdrawals) {
        (Some(expected), Some(withdrawals)) => {
            let computed = calculate_withdrawals_root(withdrawals);
            if computed != expected {
                return Err(InvalidBlock::RootMismatch {
                    what: "withdrawals root",
                    header: expected,
                    computed,
                });
            }
        }
        (None, None) => {}
        (Some(_), None) => return Err(InvalidBlock::Body("withdrawals missing")),
        (None, Some(_)) => return Err(InvalidBlock::Body("withdrawals before Shanghai")),
    }
    let ts = header.timestamp;
    let cancun = chain.is_active(Fork::Cancun, ts);
    let prague = chain.is_active(Fork::Prague, ts);
    let mut blob_gas = 0u64;
    for (index, tx) in transactions.iter().enumerate() {
        let allowed = match tx.ty() {
            3 => cancun,
            4 => prague,
            _ => true,
        };
        if let TxEnvelope::Eip4844(signed) = tx
            && signed.tx().as_with_sidecar().is_some()
        {
            return Err(InvalidBlock::Body("blob transaction with its sidecar inside a block"));
        }
        if !allowed {
            return Err(InvalidBlock::TxType { index, hash: *tx.tx_hash(), tx_type: tx.ty() });
        }
        blob_gas = blob_gas.saturating_add(tx.blob_gas_used().unwrap_or(0));
    }
    if let Some(params) = chain.blob_params_at(ts) {
        let max = params.max_blob_gas_per_block();
        let got = header.blob_gas_used().unwrap_or(0);
        if blob_gas > max || got != blob_gas {
            return Err(InvalidBlock::BlobGasUsed { expected: blob_gas, got, max });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloy_primitives::Bytes;

    fn chain(sub_second: bool) -> ChainSpec {
        let tandem = if sub_second { r#", "tandem": { "subSecondBlocks": true }"# } else { "" };
        let json = format!(
            r#"{{ "config": {{ "chainId": 7, "shanghaiTime": 0, "cancunTime": 0{tandem} }},
                "gasLimit": "0x1c9c380", "baseFeePerGas": "0x3b9aca00", "alloc": {{}} }}"#
        );
        ChainSpec::from_json_str(&json, "g.json").unwrap()
    }

    /// A valid child of the genesis header.
    fn child(spec: &ChainSpec) -> Header {
        let parent = spec.genesis_header();
        Header {
            parent_hash: spec.genesis_hash(),
            number: 1,
            timestamp: parent.timestamp + 1,
            gas_limit: parent.gas_limit,
            base_fee_per_gas: Some(calc_next_block_base_fee(
                parent.gas_used,
                parent.gas_limit,
                parent.base_fee_per_gas.unwrap(),
                BaseFeeParams::ethereum(),
            )),
            withdrawals_root: Some(alloy_trie::EMPTY_ROOT_HASH),
            blob_gas_used: Some(0),
            excess_blob_gas: Some(0),
            parent_beacon_block_root: Some(B256::ZERO),
            ..Default::default()
        }
    }

    fn check(spec: &ChainSpec, header: &Header) -> Result<(), InvalidBlock> {
        validate_header(spec, header, spec.genesis_header(), spec.genesis_hash())
    }

    #[test]
    fn a_valid_child_passes() {
        let spec = chain(false);
        check(&spec, &child(&spec)).unwrap();
    }

    #[test]
    fn each_broken_rule_is_named() {
        let spec = chain(false);
        type Breaks = fn(&mut Header);
        let cases: Vec<(Breaks, &str)> = vec![
            (|h| h.parent_hash = B256::repeat_byte(1), "parent hash"),
            (|h| h.number = 2, "number"),
            (|h| h.timestamp = 0, "timestamp"),
            (|h| h.gas_limit += h.gas_limit / 1024, "gas limit"),
            (|h| h.gas_limit = 4999, "gas limit"),
            (|h| h.gas_used = h.gas_limit + 1, "gas used"),
            (|h| h.base_fee_per_gas = Some(1), "base fee"),
            (|h| h.extra_data = Bytes::from(vec![0; 33]), "extra data"),
            (|h| h.difficulty = U256::from(1), "difficulty"),
            (|h| h.nonce = B64::from(1u64), "nonce"),
            (|h| h.ommers_hash = B256::ZERO, "ommers"),
            (|h| h.excess_blob_gas = Some(DATA_GAS_PER_BLOB), "excess blob gas"),
            (|h| h.blob_gas_used = Some(DATA_GAS_PER_BLOB * 7), "blob gas used"),
            (|h| h.parent_beacon_block_root = None, "parentBeaconBlockRoot"),
            (|h| h.requests_hash = Some(B256::ZERO), "requestsHash"),
            (|h| h.withdrawals_root = None, "withdrawalsRoot"),
        ];
        for (breaks, what) in cases {
            let mut header = child(&spec);
            breaks(&mut header);
            let err = check(&spec, &header).expect_err(what).to_string();
            assert!(err.contains(what), "{what}: {err}");
        }
    }

    #[test]
    fn gas_limit_may_move_just_below_the_bound() {
        let spec = chain(false);
        let mut header = child(&spec);
        header.gas_limit += header.gas_limit / 1024 - 1;
        check(&spec, &header).unwrap();
        header.gas_limit =
            spec.genesis_header().gas_limit - (spec.genesis_header().gas_limit / 1024 - 1);
        check(&spec, &header).unwrap();
    }

    #[test]
    fn equal_timestamps_only_with_sub_second_blocks() {
        for sub_second in [false, true] {
            let spec = chain(sub_second);
            let mut header = child(&spec);
            header.timestamp = spec.genesis_header().timestamp;
            assert_eq!(check(&spec, &header).is_ok(), sub_second);
        }
    }
}
