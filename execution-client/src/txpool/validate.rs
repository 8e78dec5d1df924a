//! Checks a transaction can make without the sender's account state.

use alloy_consensus::{Transaction, TxEnvelope, Typed2718};
use alloy_primitives::{Address, U256};
use revm::context_interface::cfg::gas::calculate_initial_tx_gas;
use tandem_shared::Fork;

use super::{PoolConfig, PoolContext, PoolError};
use crate::executor::spec_id;

/// EIP-3860 limit on init code (twice the EIP-170 code size limit).
pub const MAX_INITCODE_SIZE: usize = 2 * 24_576;

/// Intrinsic gas of a transaction under `fork`: the larger of the initial gas and (Prague) the
/// EIP-7623 calldata floor.
pub fn intrinsic_gas(tx: &TxEnvelope, fork: Fork) -> u64 {
    let (accounts, slots) = tx.access_list().map_or((0, 0), |list| {
        (list.len() as u64, list.iter().map(|item| item.storage_keys.len() as u64).sum())
    });
    let auths = tx.authorization_list().map_or(0, |list| list.len() as u64);
    let gas = calculate_initial_tx_gas(
        spec_id(fork),
        tx.input(),
        tx.is_create(),
        accounts,
        slots,
        auths,
        None,
    );
    let initial = gas.initial_regular_gas.saturating_add(gas.initial_state_gas);
    if fork >= Fork::Prague { initial.max(gas.floor_gas) } else { initial }
}

/// Everything that can be checked from the transaction and the chain context alone.
pub fn validate_stateless(
    tx: &TxEnvelope,
    sender: Address,
    encoded_len: usize,
    ctx: &PoolContext,
    config: &PoolConfig,
) -> Result<(), PoolError> {
    match tx {
        TxEnvelope::Eip4844(_) => return Err(PoolError::BlobNotSupported),
        TxEnvelope::Eip7702(_) if ctx.fork < Fork::Prague => {
            return Err(PoolError::TxTypeNotSupported);
        }
        TxEnvelope::Legacy(_)
        | TxEnvelope::Eip2930(_)
        | TxEnvelope::Eip1559(_)
        | TxEnvelope::Eip7702(_) => {}
    }
    if tx.ty() > 4 {
        return Err(PoolError::TxTypeNotSupported);
    }
    if encoded_len > config.max_tx_bytes {
        return Err(PoolError::Oversized { size: encoded_len, limit: config.max_tx_bytes });
    }
    if let Some(chain_id) = tx.chain_id()
        && chain_id != ctx.chain_id
    {
        return Err(PoolError::WrongChainId { have: chain_id, want: ctx.chain_id });
    }
    if tx.is_create() && ctx.fork >= Fork::Shanghai && tx.input().len() > MAX_INITCODE_SIZE {
        return Err(PoolError::InitCodeTooLarge {
            size: tx.input().len(),
            limit: MAX_INITCODE_SIZE,
        });
    }
    if let TxEnvelope::Eip7702(signed) = tx
        && signed.tx().authorization_list.is_empty()
    {
        return Err(PoolError::EmptyAuthorizationList);
    }
    if tx.gas_limit() > ctx.block_gas_limit {
        return Err(PoolError::ExceedsBlockGasLimit);
    }
    let fee_cap = tx.max_fee_per_gas();
    let tip = tx.max_priority_fee_per_gas().unwrap_or(fee_cap);
    if U256::from(fee_cap).checked_mul(U256::from(tx.gas_limit())).is_none() {
        return Err(PoolError::FeeCapVeryHigh);
    }
    if tip > fee_cap {
        return Err(PoolError::TipAboveFeeCap { address: sender, tip, fee_cap });
    }
    if tip < config.min_tip {
        return Err(PoolError::Underpriced { tip, minimum: config.min_tip });
    }
    let needed = intrinsic_gas(tx, ctx.fork);
    if tx.gas_limit() < needed {
        return Err(PoolError::IntrinsicGasTooLow { gas: tx.gas_limit(), needed });
    }
    Ok(())
}

/// Upfront cost: gas limit × fee cap + value (what the sender's balance must cover).
pub fn upfront_cost(tx: &TxEnvelope) -> U256 {
    U256::from(tx.gas_limit())
        .saturating_mul(U256::from(tx.max_fee_per_gas()))
        .saturating_add(tx.value())
}
