//! Payload building: a block on a given parent from the pool's best transactions.
//!
//! [`build_payload`] executes the pool's transactions by effective tip on the parent's state
//! until the gas limit is reached, skipping (and reporting) transactions that fail validation
//! and the later nonces of their senders, then seals a header with every root computed the same
//! way `newPayload` checks them. [`PayloadId`]s are derived from the parent and the attributes,
//! so the same request always names the same payload. Jobs that keep improving a payload until
//! `getPayload` live in [`job`].

pub mod job;

use std::{borrow::Cow, sync::Arc};

use alloy_consensus::{
    Block, BlockBody, EMPTY_OMMER_ROOT_HASH, Header, TxEnvelope, TxReceipt,
    proofs::{calculate_receipt_root, calculate_transaction_root, calculate_withdrawals_root},
    transaction::Recovered,
};
use alloy_eips::eip1559::{BaseFeeParams, calc_next_block_base_fee};
use alloy_evm::{
    block::{BlockExecutionError, BlockExecutor, BlockValidationError},
    eth::{
        EthBlockExecutionCtx, EthBlockExecutor, EthEvmBuilder, receipt_builder::AlloyReceiptBuilder,
    },
};
use alloy_primitives::{Address, B256, Bloom, Bytes, U256, keccak256};
use alloy_rlp::Encodable;
use alloy_rpc_types_engine::{PayloadAttributes, PayloadId};
use revm::database::{State, states::bundle_state::BundleRetention};
use tandem_shared::Fork;

use crate::{
    executor::{CollisionCheck, Executor, ForkSchedule},
    fork_choice::{self, ExecutedBlock, OverlayState},
    storage::{Database, StorageError, seal_block},
    txpool::PooledTx,
};

/// Extra data Tandem puts in the blocks it builds.
pub const DEFAULT_EXTRA_DATA: &[u8] = b"tandem";

/// Most bytes of encoded transactions a built block carries.
///
/// Consensus messages are capped at 10 MiB (gossip and direct frames) and carry the payload in
/// binary, about the size of its transactions; 7 MiB of transactions keeps a proposal under
/// that cap with room for the header and certificates, and the block under EIP-7934's 8 MiB of
/// RLP. Without a cap, about 5.7 MB of calldata fits a 60M-gas block, and a larger gas limit
/// lets a block outgrow any message: its proposal cannot be sent, the transactions stay in
/// every pool and every later leader builds the same block.
pub const MAX_BLOCK_TRANSACTIONS_BYTES: usize = 7 * 1024 * 1024;

/// What a payload builds on.
#[derive(Debug, Clone)]
pub struct BuildTarget {
    /// Parent header.
    pub parent: Header,
    /// Parent hash.
    pub parent_hash: B256,
    /// The parent's in-memory ancestors, newest first (empty for the persisted tip).
    pub layers: Vec<Arc<ExecutedBlock>>,
}

/// A built block and what it pays its fee recipient.
#[derive(Debug, Clone)]
pub struct BuiltPayload {
    /// The executed block.
    pub block: Arc<ExecutedBlock>,
    /// Sum of priority fees paid to the fee recipient (`blockValue`).
    pub fees: U256,
    /// Pool transactions that failed and should leave the pool.
    pub invalid: Vec<B256>,
}

/// Building failed for a reason other than a bad transaction.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    /// The database failed.
    #[error("storage: {0}")]
    Storage(#[from] StorageError),
    /// The parent's state is not available (unknown or pruned).
    #[error("parent {0} is not available to build on")]
    UnknownParent(B256),
    /// The EVM or a system call failed.
    #[error("building on {parent}: {msg}")]
    Execution {
        /// The parent.
        parent: B256,
        /// What failed.
        msg: String,
    },
}

/// The deterministic payload id of a build request.
pub fn payload_id(parent: B256, attributes: &PayloadAttributes) -> PayloadId {
    let mut buf = Vec::with_capacity(160);
    buf.extend_from_slice(parent.as_slice());
    buf.extend_from_slice(&attributes.timestamp.to_be_bytes());
    buf.extend_from_slice(attributes.prev_randao.as_slice());
    buf.extend_from_slice(attributes.suggested_fee_recipient.as_slice());
    if let Some(withdrawals) = &attributes.withdrawals {
        withdrawals.encode(&mut buf);
    }
    if let Some(root) = attributes.parent_beacon_block_root {
        buf.extend_from_slice(root.as_slice());
    }
    let hash = keccak256(&buf);
    let mut id = [0u8; 8];
    id.copy_from_slice(&hash[..8]);
    PayloadId::new(id)
}

/// The header fields of the next block that do not depend on its transactions.
fn next_header(
    executor: &Executor,
    parent: &Header,
    parent_hash: B256,
    attributes: &PayloadAttributes,
    extra_data: Bytes,
) -> Header {
    let chain = executor.chain();
    let ts = attributes.timestamp;
    let cancun = chain.is_active(Fork::Cancun, ts);
    let excess_blob_gas = chain.blob_params_at(ts).filter(|_| cancun).map(|params| {
        parent
            .excess_blob_gas
            .unwrap_or(0)
            .saturating_add(parent.blob_gas_used.unwrap_or(0))
            .saturating_sub(params.target_blob_gas_per_block())
    });
    Header {
        parent_hash,
        ommers_hash: EMPTY_OMMER_ROOT_HASH,
        beneficiary: attributes.suggested_fee_recipient,
        number: parent.number + 1,
        gas_limit: parent.gas_limit,
        timestamp: ts,
        extra_data,
        mix_hash: attributes.prev_randao,
        base_fee_per_gas: Some(calc_next_block_base_fee(
            parent.gas_used,
            parent.gas_limit,
            parent.base_fee_per_gas.unwrap_or_default(),
            BaseFeeParams::ethereum(),
        )),
        blob_gas_used: cancun.then_some(0),
        excess_blob_gas,
        parent_beacon_block_root: if cancun { attributes.parent_beacon_block_root } else { None },
        ..Default::default()
    }
}

/// Builds a block on `target` from `transactions` in the order given, skipping those that do
/// not fit (gas, or [`MAX_BLOCK_TRANSACTIONS_BYTES`]) or fail.
pub fn build_payload(
    executor: &Executor,
    db: &Database,
    target: &BuildTarget,
    attributes: &PayloadAttributes,
    transactions: impl IntoIterator<Item = Arc<PooledTx>>,
    extra_data: Bytes,
) -> Result<BuiltPayload, BuildError> {
    build_payload_within(
        executor,
        db,
        target,
        attributes,
        transactions,
        extra_data,
        MAX_BLOCK_TRANSACTIONS_BYTES,
    )
}

/// [`build_payload`] with at most `max_transactions_bytes` of encoded transactions.
pub fn build_payload_within(
    executor: &Executor,
    db: &Database,
    target: &BuildTarget,
    attributes: &PayloadAttributes,
    transactions: impl IntoIterator<Item = Arc<PooledTx>>,
    extra_data: Bytes,
    max_transactions_bytes: usize,
) -> Result<BuiltPayload, BuildError> {
    let chain = executor.chain();
    let (parent, parent_hash, layers) = (&target.parent, target.parent_hash, &target.layers);
    let mut header = next_header(executor, parent, parent_hash, attributes, extra_data);
    let exec_err =
        |e: BlockExecutionError| BuildError::Execution { parent: parent_hash, msg: e.to_string() };
    let withdrawals: Option<Vec<alloy_eips::eip4895::Withdrawal>> =
        if chain.is_active(Fork::Shanghai, header.timestamp) {
            Some(attributes.withdrawals.clone().unwrap_or_default())
        } else {
            None
        };
    let base_fee = header.base_fee_per_gas.unwrap_or_default();
    let overlay = OverlayState::new(db.latest()?, layers.clone());
    let state = State::builder().with_database_ref(&overlay).with_bundle_update().build();
    let env = executor.evm_env(&header);
    let precompiles = executor.precompiles(&env);
    let evm = EthEvmBuilder::new(state, env)
        .precompiles(precompiles)
        .inspector(CollisionCheck::new(executor.collisions().clone()))
        .set_inspect(!executor.collisions().is_empty())
        .build();
    let ctx = EthBlockExecutionCtx {
        parent_hash,
        parent_beacon_block_root: header.parent_beacon_block_root,
        ommers: &[],
        withdrawals: withdrawals.as_deref().map(Cow::Borrowed),
        extra_data: header.extra_data.clone(),
        tx_count_hint: None,
        slot_number: None,
    };
    let mut block_executor =
        EthBlockExecutor::new(evm, ctx, ForkSchedule(chain), AlloyReceiptBuilder::default());
    block_executor.apply_pre_execution_changes().map_err(exec_err)?;

    let mut included: Vec<TxEnvelope> = Vec::new();
    let mut senders: Vec<Address> = Vec::new();
    let mut invalid = Vec::new();
    let mut gas_used = 0u64;
    let mut tx_bytes = 0usize;
    let mut fees = U256::ZERO;
    let mut skipped_senders = std::collections::HashSet::new();
    for pooled in transactions {
        if skipped_senders.contains(&pooled.sender) {
            continue;
        }
        let size = alloy_eips::eip2718::Encodable2718::encode_2718_len(&pooled.tx);
        if gas_used + alloy_consensus::Transaction::gas_limit(&pooled.tx) > header.gas_limit
            || tx_bytes + size > max_transactions_bytes
        {
            // Does not fit; its sender's later nonces cannot go either.
            skipped_senders.insert(pooled.sender);
            continue;
        }
        let recovered = Recovered::new_unchecked(&pooled.tx, pooled.sender);
        match block_executor.execute_transaction(recovered) {
            Ok(output) => {
                let used = output.tx_gas_used();
                gas_used += used;
                let tip = pooled.effective_tip(base_fee).unwrap_or_default();
                fees += U256::from(tip) * U256::from(used);
                tx_bytes += size;
                included.push(pooled.tx.clone());
                senders.push(pooled.sender);
            }
            Err(BlockExecutionError::Validation(
                BlockValidationError::InvalidTx { .. }
                | BlockValidationError::TransactionGasLimitMoreThanAvailableBlockGas { .. },
            )) => {
                skipped_senders.insert(pooled.sender);
                invalid.push(pooled.hash);
            }
            Err(other) => return Err(exec_err(other)),
        }
    }
    // The step's logs have no receipt; `l1_blockEvents` recomputes them from the block.
    executor
        .end_of_block(block_executor.evm_mut())
        .map_err(|e| BuildError::Execution { parent: parent_hash, msg: e.to_string() })?;
    let (evm, result) = block_executor.finish().map_err(exec_err)?;
    let (mut state, _env) = alloy_evm::Evm::finish(evm);
    state.merge_transitions(BundleRetention::Reverts);
    let bundle = state.take_bundle();
    drop(state);
    drop(overlay);

    header.gas_used = result.gas_used;
    header.transactions_root = calculate_transaction_root(&included);
    header.receipts_root = calculate_receipt_root(&result.receipts);
    header.logs_bloom = result.receipts.iter().fold(Bloom::ZERO, |mut acc, r| {
        acc.accrue_bloom(&r.bloom());
        acc
    });
    header.withdrawals_root = withdrawals.as_deref().map(calculate_withdrawals_root);
    if chain.is_active(Fork::Cancun, header.timestamp) {
        header.blob_gas_used = Some(result.blob_gas_used);
    }
    if chain.is_active(Fork::Prague, header.timestamp) {
        header.requests_hash = Some(result.requests.requests_hash());
    }
    let trie_updates = fork_choice::trie_delta_after(db, parent_hash, layers, &bundle)?;
    header.state_root = trie_updates.state_root();

    let body = BlockBody {
        transactions: included,
        ommers: Vec::new(),
        withdrawals: withdrawals.map(Into::into),
    };
    let block = seal_block(Block { header, body });
    let executed = ExecutedBlock {
        block,
        senders,
        receipts: result.receipts,
        bundle,
        requests: result.requests,
        trie_updates,
    };
    Ok(BuiltPayload { block: Arc::new(executed), fees, invalid })
}

#[cfg(test)]
mod tests;
