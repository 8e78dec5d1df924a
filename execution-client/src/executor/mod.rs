//! Block execution: revm under the fork active at each block's timestamp.
//!
//! A block goes through three steps, each a function here so the node's import path, the
//! payload builder and the fixture runner share them:
//!
//! 1. [`header::validate_header`] and [`header::validate_body`]: the header against its parent
//!    (hash linkage, number, timestamp — equal to the parent's only with
//!    `config.tandem.subSecondBlocks` — gas limit bounds, EIP-1559 base fee, EIP-4844 blob gas
//!    with the chain spec's blob schedule, extra data, post-merge constants, fork fields) and the
//!    body against the header (transactions and withdrawals roots, transaction types, blob gas).
//! 2. [`Executor::execute`]: senders recovered in parallel ([`recover_senders`]), then
//!    alloy-evm's Ethereum block executor over revm: EIP-2935 and EIP-4788 system calls before
//!    the transactions, EIP-4895 withdrawals and the EIP-7685 requests (EIP-6110 deposits from
//!    the deposit contract's logs, EIP-7002 and EIP-7251 system contracts) after them. EIP-7610
//!    storage collisions, which revm does not check, come from [`collision`]. The result is the
//!    block's receipts, requests and revm [`BundleState`] (with reverts), executed over any
//!    [`DatabaseRef`] state: the database, an in-memory tree overlay or a test's `pre`.
//! 3. [`validate_post_execution`]: gas used, receipts root, logs bloom and requests hash. The
//!    state root is the caller's (it needs the storage's trie).

pub mod collision;
mod error;
pub mod header;
pub mod spec;

use std::borrow::Cow;

use alloy_consensus::{
    Block, Header, ReceiptEnvelope, TxEnvelope, TxReceipt,
    proofs::calculate_receipt_root,
    transaction::{Recovered, SignerRecoverable},
};
use alloy_eips::{
    eip7002::WITHDRAWAL_REQUEST_PREDEPLOY_ADDRESS,
    eip7251::CONSOLIDATION_REQUEST_PREDEPLOY_ADDRESS, eip7685::Requests,
};
use alloy_evm::{
    EvmEnv,
    block::{BlockExecutionError, BlockExecutor, BlockValidationError},
    eth::{
        EthBlockExecutionCtx, EthBlockExecutor, EthEvmBuilder, receipt_builder::AlloyReceiptBuilder,
    },
};
use alloy_primitives::{Address, B256, Bloom, KECCAK256_EMPTY, Log, U256};
use rayon::prelude::*;
use revm::{
    Database, DatabaseRef,
    bytecode::Bytecode,
    context::{BlockEnv, CfgEnv},
    context_interface::block::BlobExcessGasAndPrice,
    database::{BundleState, State, states::bundle_state::BundleRetention},
    state::AccountInfo,
};
use std::sync::Arc;
use tandem_shared::{ChainSpec, Fork};

use alloy_evm::precompiles::PrecompilesMap;
use revm::precompile::{PrecompileSpecId, Precompiles};

use crate::l1::{L1Config, config::ConfigError, precompile::EndOfBlockError};

pub use collision::{CollisionCandidates, CollisionCheck};
pub use error::{BlockError, BlockErrorKind, InvalidBlock};
pub use spec::{ForkSchedule, spec_id};

/// What executing a block produced.
#[derive(Debug)]
pub struct BlockExecutionOutput {
    /// State changes with original values (reverts), for storage and the state root.
    pub bundle: BundleState,
    /// One receipt per transaction.
    pub receipts: Vec<ReceiptEnvelope>,
    /// Gas used by the transactions.
    pub gas_used: u64,
    /// Blob gas used by the transactions.
    pub blob_gas_used: u64,
    /// EIP-7685 requests (empty before Prague).
    pub requests: Requests,
    /// Logs of the end-of-block system step (the L1's funding, liquidations, bad debt): no
    /// receipt carries them.
    pub system_logs: Vec<Log>,
}

/// Executes blocks of one chain: its spec, its EIP-7610 collision candidates and, when the chain
/// enables it, the L1 exchange's configuration.
#[derive(Debug, Clone)]
pub struct Executor {
    chain: Arc<ChainSpec>,
    collisions: CollisionCandidates,
    l1: Option<Arc<L1Config>>,
}

impl Executor {
    /// An executor for `chain`; collision candidates come from its genesis alloc. Fails when
    /// `config.tandem.l1` is present but invalid.
    pub fn new(chain: Arc<ChainSpec>) -> Result<Self, ConfigError> {
        let collisions = CollisionCandidates::from_alloc(&chain.genesis().alloc);
        let l1 = match &chain.tandem().l1 {
            Some(raw) => Some(Arc::new(L1Config::from_value(raw)?)),
            None => None,
        };
        Ok(Self { chain, collisions, l1 })
    }

    /// The L1 exchange's configuration, when the chain enables it.
    pub fn l1_config(&self) -> Option<&L1Config> {
        self.l1.as_deref()
    }

    /// The chain spec.
    pub fn chain(&self) -> &ChainSpec {
        &self.chain
    }

    /// The shared chain spec.
    pub fn chain_arc(&self) -> &Arc<ChainSpec> {
        &self.chain
    }

    /// The EIP-7610 collision candidates.
    pub fn collisions(&self) -> &CollisionCandidates {
        &self.collisions
    }

    /// The revm environment of a block with this header.
    pub fn evm_env(&self, header: &Header) -> EvmEnv {
        evm_env(&self.chain, header)
    }

    /// The precompiles under `env`: the fork's, plus the L1's when the chain enables it.
    pub fn precompiles(&self, env: &EvmEnv) -> PrecompilesMap {
        let mut map = PrecompilesMap::from_static(Precompiles::new(
            PrecompileSpecId::from_spec_id(env.cfg_env.spec),
        ));
        if let Some(l1) = &self.l1 {
            crate::l1::precompile::install(&mut map, l1);
        }
        map
    }

    /// Runs the chain's end-of-block steps after the transactions (the L1 exchange's, if any);
    /// returns their logs.
    pub fn end_of_block<E>(&self, evm: &mut E) -> Result<Vec<Log>, BlockErrorKind>
    where
        E: alloy_evm::Evm<Precompiles = PrecompilesMap>,
        E::DB: revm::DatabaseCommit,
    {
        let Some(l1) = &self.l1 else {
            return Ok(Vec::new());
        };
        crate::l1::precompile::run_end_of_block(evm, l1).map_err(|e| match e {
            EndOfBlockError::Internal(msg) => BlockErrorKind::Internal(msg),
            failed @ EndOfBlockError::Failed(_) => {
                BlockErrorKind::Invalid(InvalidBlock::Execution(failed.to_string()))
            }
        })
    }

    /// Executes `block` (whose senders are `senders`) on `state`, the state after its parent.
    ///
    /// Errors are [`BlockErrorKind::Invalid`] when a transaction or system call breaks a rule,
    /// [`BlockErrorKind::Internal`] when reading `state` fails.
    pub fn execute<DB>(
        &self,
        block: &Block<TxEnvelope>,
        senders: &[Address],
        state: DB,
    ) -> Result<BlockExecutionOutput, BlockErrorKind>
    where
        DB: DatabaseRef,
        DB::Error: std::error::Error + Send + Sync + 'static,
    {
        let header = &block.header;
        if senders.len() != block.body.transactions.len() {
            return Err(BlockErrorKind::Internal(format!(
                "{} senders for {} transactions",
                senders.len(),
                block.body.transactions.len()
            )));
        }
        let db = State::builder().with_database_ref(Opaque(state)).with_bundle_update().build();
        let env = self.evm_env(header);
        let precompiles = self.precompiles(&env);
        let evm = EthEvmBuilder::new(db, env)
            .precompiles(precompiles)
            .inspector(CollisionCheck::new(self.collisions.clone()))
            .set_inspect(!self.collisions.is_empty())
            .build();
        let ctx = EthBlockExecutionCtx {
            parent_hash: header.parent_hash,
            parent_beacon_block_root: header.parent_beacon_block_root,
            ommers: &[],
            withdrawals: block.body.withdrawals.as_ref().map(|w| Cow::Borrowed(w.as_slice())),
            extra_data: header.extra_data.clone(),
            tx_count_hint: Some(block.body.transactions.len()),
            slot_number: None,
        };
        let fork_schedule = ForkSchedule(&self.chain);
        let mut executor =
            EthBlockExecutor::new(evm, ctx, fork_schedule, AlloyReceiptBuilder::default());
        executor.apply_pre_execution_changes().map_err(classify)?;
        for (tx, sender) in block.body.transactions.iter().zip(senders) {
            executor
                .execute_transaction(Recovered::new_unchecked(tx, *sender))
                .map_err(classify)?;
        }
        let system_logs = self.end_of_block(executor.evm_mut())?;
        if self.chain.is_active(Fork::Prague, header.timestamp) {
            // EIP-7002 / EIP-7251: a block whose request contracts have no code is invalid.
            for address in
                [WITHDRAWAL_REQUEST_PREDEPLOY_ADDRESS, CONSOLIDATION_REQUEST_PREDEPLOY_ADDRESS]
            {
                let account = alloy_evm::Evm::db_mut(executor.evm_mut())
                    .basic(address)
                    .map_err(|e| BlockErrorKind::Internal(e.to_string()))?;
                if account.is_none_or(|a| a.code_hash == KECCAK256_EMPTY) {
                    return Err(BlockErrorKind::Invalid(InvalidBlock::Execution(format!(
                        "system contract {address} has no code"
                    ))));
                }
            }
        }
        let (evm, result) = executor.finish().map_err(classify)?;
        let (mut db, _env) = alloy_evm::Evm::finish(evm);
        db.merge_transitions(BundleRetention::Reverts);
        Ok(BlockExecutionOutput {
            bundle: db.take_bundle(),
            receipts: result.receipts,
            gas_used: result.gas_used,
            blob_gas_used: result.blob_gas_used,
            requests: result.requests,
            system_logs,
        })
    }
}

/// A state reader shown opaquely in debug output (alloy-evm wants `Debug` databases).
struct Opaque<DB>(DB);

impl<DB> std::fmt::Debug for Opaque<DB> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("StateReader")
    }
}

impl<DB: DatabaseRef> DatabaseRef for Opaque<DB> {
    type Error = DB::Error;

    fn basic_ref(&self, address: Address) -> Result<Option<AccountInfo>, Self::Error> {
        self.0.basic_ref(address)
    }

    fn code_by_hash_ref(&self, code_hash: B256) -> Result<Bytecode, Self::Error> {
        self.0.code_by_hash_ref(code_hash)
    }

    fn storage_ref(&self, address: Address, index: U256) -> Result<U256, Self::Error> {
        self.0.storage_ref(address, index)
    }

    fn block_hash_ref(&self, number: u64) -> Result<B256, Self::Error> {
        self.0.block_hash_ref(number)
    }
}

/// Sorts alloy-evm's errors into invalid blocks and internal (database) failures.
fn classify(err: BlockExecutionError) -> BlockErrorKind {
    match err {
        BlockExecutionError::Validation(BlockValidationError::InvalidTx { hash, error }) => {
            BlockErrorKind::Invalid(InvalidBlock::Execution(format!("transaction {hash}: {error}")))
        }
        BlockExecutionError::Validation(other) => {
            BlockErrorKind::Invalid(InvalidBlock::Execution(other.to_string()))
        }
        BlockExecutionError::Internal(internal) => BlockErrorKind::Internal(internal.to_string()),
    }
}

/// The revm environment (spec id, chain id, blob limits, block values) of a block.
pub fn evm_env(chain: &ChainSpec, header: &Header) -> EvmEnv {
    let fork = chain.fork_at(header.timestamp);
    let blob_params = chain.blob_params_at(header.timestamp);
    let mut cfg = CfgEnv::new_with_spec(spec_id(fork)).with_chain_id(chain.chain_id());
    if let Some(params) = &blob_params {
        cfg.set_max_blobs_per_tx(params.max_blobs_per_tx);
    }
    let blob_excess_gas_and_price =
        header.excess_blob_gas.zip(blob_params).map(|(excess, params)| BlobExcessGasAndPrice {
            excess_blob_gas: excess,
            blob_gasprice: params.calc_blob_fee(excess),
        });
    let block = BlockEnv {
        number: U256::from(header.number),
        beneficiary: header.beneficiary,
        timestamp: U256::from(header.timestamp),
        difficulty: U256::ZERO,
        prevrandao: Some(header.mix_hash),
        gas_limit: header.gas_limit,
        basefee: header.base_fee_per_gas.unwrap_or_default(),
        blob_excess_gas_and_price,
        slot_num: 0,
    };
    EvmEnv::new(cfg, block)
}

/// Recovers every transaction's sender, in parallel.
pub fn recover_senders(transactions: &[TxEnvelope]) -> Result<Vec<Address>, InvalidBlock> {
    transactions
        .par_iter()
        .enumerate()
        .map(|(index, tx)| {
            tx.recover_signer().map_err(|_| InvalidBlock::Signature { index, hash: *tx.tx_hash() })
        })
        .collect()
}

/// Checks execution's results against the header: gas used, receipts root, logs bloom and
/// requests hash.
pub fn validate_post_execution(
    header: &Header,
    output: &BlockExecutionOutput,
) -> Result<(), InvalidBlock> {
    if output.gas_used != header.gas_used {
        return Err(InvalidBlock::GasUsed { header: header.gas_used, computed: output.gas_used });
    }
    let receipts_root = calculate_receipt_root(&output.receipts);
    if receipts_root != header.receipts_root {
        return Err(InvalidBlock::RootMismatch {
            what: "receipts root",
            header: header.receipts_root,
            computed: receipts_root,
        });
    }
    let bloom = output.receipts.iter().fold(Bloom::ZERO, |mut acc, r| {
        acc.accrue_bloom(&r.bloom());
        acc
    });
    if bloom != header.logs_bloom {
        return Err(InvalidBlock::Bloom {
            header: Box::new(header.logs_bloom),
            computed: Box::new(bloom),
        });
    }
    if let Some(expected) = header.requests_hash {
        let computed = output.requests.requests_hash();
        if computed != expected {
            return Err(InvalidBlock::RootMismatch {
                what: "requests hash",
                header: expected,
                computed,
            });
        }
    }
    Ok(())
}

/// Validates `block` against its parent and executes it on `state`, the parent's state: the
/// whole path except the state root, which needs the storage's trie.
pub fn validate_and_execute<DB>(
    executor: &Executor,
    block: &Block<TxEnvelope>,
    hash: B256,
    parent: &Header,
    parent_hash: B256,
    state: DB,
) -> Result<(Vec<Address>, BlockExecutionOutput), BlockError>
where
    DB: DatabaseRef,
    DB::Error: std::error::Error + Send + Sync + 'static,
{
    let header = &block.header;
    let err = |kind: BlockErrorKind| BlockError::new(header.number, hash, kind);
    let invalid = |e: InvalidBlock| err(BlockErrorKind::Invalid(e));
    header::validate_header(executor.chain(), header, parent, parent_hash).map_err(invalid)?;
    header::validate_body(
        executor.chain(),
        header,
        &block.body.transactions,
        &block.body.ommers,
        block.body.withdrawals.as_deref().map(|w| w.as_slice()),
    )
    .map_err(invalid)?;
    let senders = recover_senders(&block.body.transactions).map_err(invalid)?;
    let output = executor.execute(block, &senders, state).map_err(err)?;
    validate_post_execution(header, &output).map_err(invalid)?;
    Ok((senders, output))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec_with_l1(l1: Option<serde_json::Value>) -> Arc<ChainSpec> {
        let mut genesis: serde_json::Value =
            serde_json::from_str(&crate::testkit::genesis_json(&[], false)).unwrap();
        if let Some(l1) = l1 {
            genesis["config"]["tandem"] = serde_json::json!({ "l1": l1 });
        }
        Arc::new(ChainSpec::from_json_str(&genesis.to_string(), "test").unwrap())
    }

    #[test]
    fn l1_precompiles_exist_only_on_l1_chains() {
        let l1 = serde_json::to_value(crate::l1::config::test_config()).unwrap();
        let header = Header::default();
        let plain = Executor::new(spec_with_l1(None)).unwrap();
        assert!(plain.l1_config().is_none());
        let map = plain.precompiles(&plain.evm_env(&header));
        assert!(map.get(&crate::l1::READ_SPOT_BALANCE).is_none());
        assert!(map.get(&crate::l1::L1_CORE_ADDRESS).is_none());
        assert!(
            map.get(&alloy_primitives::address!("0x0000000000000000000000000000000000000001"))
                .is_some()
        );

        let with = Executor::new(spec_with_l1(Some(l1))).unwrap();
        assert!(with.l1_config().is_some());
        let map = with.precompiles(&with.evm_env(&header));
        for address in [
            crate::l1::READ_SPOT_BALANCE,
            crate::l1::READ_ORDER,
            crate::l1::READ_L1_BLOCK_NUMBER,
            crate::l1::L1_CORE_ADDRESS,
        ] {
            assert!(map.get(&address).is_some(), "{address}");
        }
    }

    #[test]
    fn an_invalid_l1_config_is_refused_with_its_field() {
        let mut l1 = serde_json::to_value(crate::l1::config::test_config()).unwrap();
        l1["markets"][1]["maxLeverage"] = serde_json::json!(0);
        let err = Executor::new(spec_with_l1(Some(l1))).unwrap_err().to_string();
        assert!(err.contains("markets[1].maxLeverage"), "{err}");
    }
}
