//! `eth_call`, `eth_estimateGas`, `eth_createAccessList` and `debug_trace*`: one transaction
//! run by revm on a block's state, never committed.
//!
//! As geth does for calls: the nonce is not checked, the gas is capped by `--rpc.gascap`
//! (default: the block gas limit, under the cap; a larger request raises the block's gas limit
//! for the call), and a call with no fee fields runs at gas price zero with a zero base fee
//! (geth's `NoBaseFee`), and a `from` address holding code is allowed (EIP-3607 applies to
//! transactions, not simulations: wallets simulate calls from smart accounts).

use alloy_consensus::{Header, TxEnvelope};
use alloy_eips::eip2930::AccessList;
use alloy_evm::{Evm, EvmEnv, eth::EthEvmBuilder};
use alloy_primitives::{Address, Bytes, TxKind, U256};
use alloy_rpc_types_eth::{BlockOverrides, TransactionRequest, state::StateOverride};
use alloy_rpc_types_trace::geth::{GethDebugTracingOptions, GethTrace};
use revm::{
    Database, DatabaseRef,
    bytecode::Bytecode,
    context::{
        TxEnv,
        either::Either,
        result::{EVMError, ExecutionResult, HaltReason, InvalidTransaction, OutOfGasError},
    },
    database::CacheDB,
};
use revm_inspectors::{access_list::AccessListInspector, tracing::DebugInspector};

use super::{
    RpcContext, RpcError, RpcResult, chain::BlockData, decode_revert_reason, heavy::Deadline,
    trace_budget::TraceBudget,
};
use crate::storage::StorageError;

/// Gas of a plain value transfer.
const TRANSFER_GAS: u64 = 21_000;

/// A call request resolved against a block: the EVM environment and the transaction.
#[derive(Debug, Clone)]
pub(crate) struct PreparedCall {
    pub env: EvmEnv,
    pub tx: TxEnv,
}

impl RpcContext {
    /// The EVM environment of a call on top of `header`'s state.
    fn call_env(&self, header: &Header, no_fee: bool, block: Option<&BlockOverrides>) -> EvmEnv {
        let mut env = self.executor.evm_env(header);
        env.cfg_env.disable_nonce_check = true;
        env.cfg_env.disable_eip3607 = true;
        if no_fee {
            // As geth's NoBaseFee: a call that pays nothing runs with a zero base fee.
            env.block_env.basefee = 0;
        }
        if let Some(block) = block {
            if let Some(number) = block.number {
                env.block_env.number = number;
            }
            if let Some(time) = block.time {
                env.block_env.timestamp = U256::from(time);
            }
            if let Some(gas_limit) = block.gas_limit {
                env.block_env.gas_limit = gas_limit;
            }
            if let Some(coinbase) = block.coinbase {
                env.block_env.beneficiary = coinbase;
            }
            if let Some(random) = block.random {
                env.block_env.prevrandao = Some(random);
            }
            if let Some(base_fee) = block.base_fee {
                env.block_env.basefee = base_fee.saturating_to();
            }
        }
        env
    }

    /// Resolves a request into an environment and a transaction.
    pub(crate) fn prepare_call(
        &self,
        header: &Header,
        request: &TransactionRequest,
        block: Option<&BlockOverrides>,
    ) -> RpcResult<PreparedCall> {
        let gas_cap = self.config.gas_cap;
        let gas_limit = match request.gas {
            Some(gas) => gas.min(gas_cap),
            None => header.gas_limit.min(gas_cap),
        };
        let has_1559 =
            request.max_fee_per_gas.is_some() || request.max_priority_fee_per_gas.is_some();
        if request.gas_price.is_some() && has_1559 {
            return Err(RpcError::InvalidParams(
                "both gasPrice and (maxFeePerGas or maxPriorityFeePerGas) specified".into(),
            ));
        }
        let (gas_price, gas_priority_fee) = match (request.gas_price, has_1559) {
            (Some(price), _) => (price, None),
            (None, true) => {
                let max_fee = request.max_fee_per_gas.unwrap_or_else(|| {
                    u128::from(header.base_fee_per_gas.unwrap_or_default())
                        + request.max_priority_fee_per_gas.unwrap_or_default()
                });
                let tip = request.max_priority_fee_per_gas.unwrap_or_default();
                if tip > max_fee {
                    return Err(RpcError::InvalidParams(
                        "max priority fee per gas higher than max fee per gas".into(),
                    ));
                }
                (max_fee, Some(tip))
            }
            (None, false) => (0, None),
        };
        let no_fee = gas_price == 0;
        let mut env = self.call_env(header, no_fee, block);
        // A call may ask for more gas than the block holds (up to the cap).
        env.block_env.gas_limit = env.block_env.gas_limit.max(gas_limit);
        let authorization_list: Vec<_> = request
            .authorization_list
            .clone()
            .unwrap_or_default()
            .into_iter()
            .map(Either::Left)
            .collect();
        let access_list = request.access_list.clone().unwrap_or_default();
        let tx_type = if !authorization_list.is_empty() {
            4
        } else if gas_priority_fee.is_some() {
            2
        } else if !access_list.0.is_empty() {
            1
        } else {
            0
        };
        let tx = TxEnv {
            tx_type,
            caller: request.from.unwrap_or_default(),
            gas_limit,
            gas_price,
            kind: request.to.unwrap_or(TxKind::Create),
            value: request.value.unwrap_or_default(),
            data: request.input.input().cloned().unwrap_or_default(),
            nonce: request.nonce.unwrap_or_default(),
            chain_id: Some(self.spec.chain_id()),
            access_list,
            gas_priority_fee,
            blob_hashes: Vec::new(),
            max_fee_per_blob_gas: 0,
            authorization_list,
        };
        Ok(PreparedCall { env, tx })
    }

    /// Runs `call` on `state` (with `overrides` applied) and returns its result; the EVM is
    /// halted at `deadline` (then the time-out is the error, whatever the halted run returned).
    pub(crate) fn run_call<S: DatabaseRef<Error = StorageError> + std::fmt::Debug>(
        &self,
        state: S,
        call: &PreparedCall,
        deadline: &Deadline,
    ) -> RpcResult<ExecutionResult> {
        deadline.check()?;
        let db = CacheDB::new(state);
        let mut evm = EthEvmBuilder::new(db, call.env.clone())
            .precompiles(self.executor.precompiles(&call.env))
            .activate_inspector(deadline.inspector())
            .build();
        let result = evm.transact_raw(call.tx.clone());
        if evm.inspector().passed() {
            return Err(deadline.error());
        }
        Ok(result.map_err(evm_error)?.result)
    }

    /// Whether `call` succeeds; a gas limit under the intrinsic cost counts as failure (the
    /// gas used after refunds can be below it, e.g. EIP-7702 authorizations of existing accounts).
    fn succeeds<S: DatabaseRef<Error = StorageError> + std::fmt::Debug>(
        &self,
        state: S,
        call: &PreparedCall,
        deadline: &Deadline,
    ) -> RpcResult<bool> {
        match self.run_call(state, call, deadline) {
            Ok(result) => Ok(result.is_success()),
            Err(RpcError::Execution(_)) => Ok(false),
            Err(other) => Err(other),
        }
    }

    /// `eth_call`: the output, or the revert as error code 3.
    pub(crate) fn call<S: DatabaseRef<Error = StorageError> + std::fmt::Debug>(
        &self,
        state: S,
        call: &PreparedCall,
        deadline: &Deadline,
    ) -> RpcResult<Bytes> {
        into_output(self.run_call(state, call, deadline)?)
    }

    /// `eth_estimateGas`: the least gas limit with which the call succeeds (binary search); each
    /// run is halted at `deadline` and no round starts after it.
    pub(crate) fn estimate_gas<S: DatabaseRef<Error = StorageError> + std::fmt::Debug>(
        &self,
        state: S,
        mut call: PreparedCall,
        deadline: &Deadline,
    ) -> RpcResult<u64> {
        let state = CacheDB::new(state);
        let mut hi = call.tx.gas_limit;
        // The sender can pay for at most balance / price gas.
        if call.tx.gas_price > 0 {
            let balance = state.basic_ref(call.tx.caller)?.map_or(U256::ZERO, |a| a.balance);
            let available = balance
                .checked_sub(call.tx.value)
                .ok_or_else(|| RpcError::Execution("insufficient funds for transfer".into()))?;
            let allowance = available / U256::from(call.tx.gas_price);
            hi = hi.min(allowance.saturating_to());
        }
        // A plain transfer to an account without code costs exactly 21000.
        if let TxKind::Call(to) = call.tx.kind
            && call.tx.data.is_empty()
            && call.tx.authorization_list.is_empty()
            && call.tx.access_list.0.is_empty()
        {
            let code_empty = state
                .basic_ref(to)?
                .is_none_or(|a| a.code_hash == alloy_primitives::KECCAK256_EMPTY);
            if code_empty && hi >= TRANSFER_GAS {
                call.tx.gas_limit = TRANSFER_GAS;
                if self.run_call(&state, &call, deadline)?.is_success() {
                    return Ok(TRANSFER_GAS);
                }
            }
        }
        call.tx.gas_limit = hi;
        let first = self.run_call(&state, &call, deadline)?;
        let used = match first {
            ExecutionResult::Success { .. } => first.tx_gas_used(),
            ExecutionResult::Revert { output, .. } => return Err(reverted(output)),
            ExecutionResult::Halt { reason, .. } => {
                return Err(match reason {
                    HaltReason::OutOfGas(_) => {
                        RpcError::Execution(format!("gas required exceeds allowance ({hi})"))
                    }
                    other => RpcError::Execution(halt_message(&other)),
                });
            }
        };
        let mut lo = used.saturating_sub(1);
        // Most calls succeed with a little over the gas they used (the 63/64 rule).
        let optimistic = used.saturating_add(2_300).saturating_mul(64) / 63;
        if optimistic < hi {
            call.tx.gas_limit = optimistic;
            if self.succeeds(&state, &call, deadline)? {
                hi = optimistic;
            } else {
                lo = optimistic;
            }
        }
        while lo + 1 < hi {
            deadline.check()?;
            let mid = lo + (hi - lo) / 2;
            call.tx.gas_limit = mid;
            if self.succeeds(&state, &call, deadline)? {
                hi = mid;
            } else {
                lo = mid;
            }
        }
        Ok(hi)
    }

    /// `eth_createAccessList`: the slots the call touches, iterated until stable, and its gas.
    pub(crate) fn create_access_list<S: DatabaseRef<Error = StorageError> + std::fmt::Debug>(
        &self,
        state: S,
        mut call: PreparedCall,
        deadline: &Deadline,
    ) -> RpcResult<(AccessList, u64, Option<String>)> {
        let state = CacheDB::new(state);
        let mut list = call.tx.access_list.clone();
        for _ in 0..8 {
            deadline.check()?;
            let inspector = (deadline.inspector(), AccessListInspector::new(list.clone()));
            call.tx.access_list = list.clone();
            if call.tx.tx_type == 0 {
                call.tx.tx_type = 1;
            }
            let db = CacheDB::new(&state);
            let mut evm = EthEvmBuilder::new(db, call.env.clone())
                .precompiles(self.executor.precompiles(&call.env))
                .activate_inspector(inspector)
                .build();
            let result = evm.transact_raw(call.tx.clone());
            if evm.inspector().0.passed() {
                return Err(deadline.error());
            }
            let result = result.map_err(evm_error)?;
            let next = evm.inspector().1.access_list();
            let gas = result.result.tx_gas_used();
            let error = match &result.result {
                ExecutionResult::Success { .. } => None,
                ExecutionResult::Revert { output, .. } => {
                    Some(reverted(output.clone()).to_string())
                }
                ExecutionResult::Halt { reason, .. } => Some(halt_message(reason)),
            };
            if next == list {
                return Ok((next, gas, error));
            }
            list = next;
        }
        Err(RpcError::Execution("access list did not converge".into()))
    }

    /// Runs `call` under the tracer `opts` asks for, halted at `deadline` (a tracer's record of
    /// an endless loop would otherwise grow until the gas runs out).
    pub(crate) fn trace_call<S: DatabaseRef<Error = StorageError> + std::fmt::Debug>(
        &self,
        state: S,
        call: &PreparedCall,
        opts: GethDebugTracingOptions,
        tx_context: Option<revm_inspectors::tracing::TransactionContext>,
        deadline: &Deadline,
    ) -> RpcResult<GethTrace> {
        deadline.check()?;
        // The record is held in memory until the run ends: it may not outgrow the answer.
        let budget = TraceBudget::new(&opts, u64::from(self.config.max_response_bytes));
        let inspector =
            DebugInspector::new(opts).map_err(|e| RpcError::InvalidParams(e.to_string()))?;
        let db = CacheDB::new(state);
        let mut evm = EthEvmBuilder::new(db, call.env.clone())
            .precompiles(self.executor.precompiles(&call.env))
            .activate_inspector(((deadline.inspector(), budget), inspector))
            .build();
        let result = evm.transact_raw(call.tx.clone());
        let (limits, _) = evm.inspector();
        if limits.0.passed() {
            return Err(deadline.error());
        }
        if limits.1.exceeded() {
            return Err(RpcError::LimitExceeded(format!(
                "trace larger than the response limit of {} bytes: record less (disableStack, \
                 no enableMemory, or a tracer such as callTracer) or raise --rpc.max-response-size",
                limits.1.limit()
            )));
        }
        let result = result.map_err(evm_error)?;
        let block_env = call.env.block_env.clone();
        let (db, (_, inspector), _) = evm.components_mut();
        inspector
            .get_result(tx_context, &call.tx, &block_env, &result, db)
            .map_err(|e| RpcError::Internal(e.to_string()))
    }

    /// `debug_traceTransaction`: applies the block's pre-transaction system calls (EIP-2935,
    /// EIP-4788) and replays its earlier transactions on the parent's state, then traces the
    /// transaction — so it sees exactly the state it saw in the block.
    pub(crate) fn trace_transaction<S: DatabaseRef<Error = StorageError> + std::fmt::Debug>(
        &self,
        parent_state: S,
        block: &BlockData,
        index: usize,
        opts: GethDebugTracingOptions,
        deadline: &Deadline,
    ) -> RpcResult<GethTrace> {
        use revm::DatabaseCommit;
        let transactions = &block.block.body.transactions;
        let (Some(target), Some(sender)) = (transactions.get(index), block.senders.get(index))
        else {
            return Err(RpcError::Internal(format!("no transaction {index} in block")));
        };
        let env = self.executor.evm_env(block.header());
        let mut db = CacheDB::new(parent_state);
        {
            let mut evm = EthEvmBuilder::new(&mut db, env.clone())
                .precompiles(self.executor.precompiles(&env))
                .build();
            alloy_evm::block::SystemCaller::new(crate::executor::ForkSchedule(&self.spec))
                .apply_pre_execution_changes(block.header(), &mut evm)
                .map_err(|e| RpcError::Internal(format!("block system calls: {e}")))?;
        }
        // The replay stops at the deadline like the traced call: a block holds up to its gas
        // limit of earlier transactions.
        for (tx, sender) in transactions.iter().zip(&block.senders).take(index) {
            deadline.check()?;
            let mut evm = EthEvmBuilder::new(&mut db, env.clone())
                .precompiles(self.executor.precompiles(&env))
                .activate_inspector(deadline.inspector())
                .build();
            let result = evm.transact_raw(tx_env(tx, *sender));
            if evm.inspector().passed() {
                return Err(deadline.error());
            }
            let result = result.map_err(evm_error)?;
            drop(evm);
            db.commit(result.state);
        }
        let call = PreparedCall { env, tx: tx_env(target, *sender) };
        let context = revm_inspectors::tracing::TransactionContext {
            block_hash: Some(block.hash()),
            tx_hash: Some(*target.tx_hash()),
            tx_index: Some(index),
        };
        self.trace_call(&db, &call, opts, Some(context), deadline)
    }
}

/// The revm transaction of a signed transaction.
pub(crate) fn tx_env(tx: &TxEnvelope, sender: Address) -> TxEnv {
    use alloy_evm::FromRecoveredTx;
    TxEnv::from_recovered_tx(tx, sender)
}

/// The output of a successful call, or the revert/halt as an error.
fn into_output(result: ExecutionResult) -> RpcResult<Bytes> {
    match result {
        ExecutionResult::Success { output, .. } => Ok(output.into_data()),
        ExecutionResult::Revert { output, .. } => Err(reverted(output)),
        ExecutionResult::Halt { reason, .. } => Err(RpcError::Execution(halt_message(&reason))),
    }
}

/// A revert as geth reports it.
pub(crate) fn reverted(output: Bytes) -> RpcError {
    RpcError::Reverted { reason: decode_revert_reason(&output), data: output }
}

/// geth's words for a halted call.
fn halt_message(reason: &HaltReason) -> String {
    match reason {
        HaltReason::OutOfGas(OutOfGasError::Basic | OutOfGasError::ReentrancySentry) => {
            "out of gas".into()
        }
        HaltReason::OutOfGas(_) => "out of gas".into(),
        HaltReason::OpcodeNotFound | HaltReason::InvalidFEOpcode => "invalid opcode".into(),
        HaltReason::StackUnderflow => "stack underflow".into(),
        HaltReason::StackOverflow => "stack limit reached 1024".into(),
        HaltReason::InvalidJump => "invalid jump destination".into(),
        HaltReason::CallTooDeep => "max call depth exceeded".into(),
        HaltReason::OutOfFunds => "insufficient balance for transfer".into(),
        HaltReason::CreateCollision => "contract address collision".into(),
        HaltReason::CreateContractSizeLimit => "max code size exceeded".into(),
        other => format!("execution halted: {other:?}"),
    }
}

/// EVM errors: invalid transactions in geth's words, database failures as they are.
fn evm_error(error: EVMError<StorageError>) -> RpcError {
    match error {
        EVMError::Transaction(invalid) => RpcError::Execution(match invalid {
            InvalidTransaction::LackOfFundForMaxFee { fee, balance } => {
                format!("insufficient funds for gas * price + value: have {balance} want {fee}")
            }
            InvalidTransaction::GasPriceLessThanBasefee => {
                "max fee per gas less than block base fee".into()
            }
            InvalidTransaction::CallGasCostMoreThanGasLimit { initial_gas, gas_limit } => {
                format!("intrinsic gas too low: have {gas_limit}, want {initial_gas}")
            }
            InvalidTransaction::PriorityFeeGreaterThanMaxFee => {
                "max priority fee per gas higher than max fee per gas".into()
            }
            other => other.to_string(),
        }),
        EVMError::Database(error) => RpcError::Storage(error),
        // A precompile that refuses to run the call at all (the L1 core asked for the
        // protocol-only end-of-block step): the request's fault, not the node's.
        EVMError::Custom(message) => RpcError::Execution(message),
        other => RpcError::Internal(other.to_string()),
    }
}

/// Overlays `overrides` on a state: balances, nonces, code, whole storage or single slots.
pub(crate) fn apply_overrides<S: DatabaseRef<Error = StorageError>>(
    db: &mut CacheDB<S>,
    overrides: StateOverride,
) -> RpcResult<()> {
    for (address, account) in overrides {
        if account.state.is_some() && account.state_diff.is_some() {
            return Err(RpcError::InvalidParams(format!(
                "account {address} has both 'state' and 'stateDiff'"
            )));
        }
        let mut info = db.basic(address)?.unwrap_or_default();
        if let Some(balance) = account.balance {
            info.balance = balance;
        }
        if let Some(nonce) = account.nonce {
            info.nonce = nonce;
        }
        if let Some(code) = account.code {
            let code = Bytecode::new_raw(code);
            info.code_hash = code.hash_slow();
            info.code = Some(code);
        }
        db.insert_account_info(address, info);
        if let Some(state) = account.state {
            db.replace_account_storage(
                address,
                state.into_iter().map(|(k, v)| (k.into(), v.into())).collect(),
            )?;
        }
        if let Some(diff) = account.state_diff {
            for (slot, value) in diff {
                db.insert_account_storage(address, slot.into(), value.into())?;
            }
        }
    }
    Ok(())
}
