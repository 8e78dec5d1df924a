//! Registration of the `eth_`, `net_`, `web3_`, `txpool_` and `debug_` methods.

use std::{collections::BTreeMap, sync::Arc};

use alloy_consensus::{Transaction as _, TxEnvelope};
use alloy_eips::{BlockId, BlockNumberOrTag, eip2718::Decodable2718};
use alloy_primitives::{Address, B256, Bytes, U64, U256, keccak256};
use alloy_rpc_types_eth::{
    AccessListResult, BlockOverrides, FeeHistory, Filter, TransactionRequest, state::StateOverride,
};
use alloy_rpc_types_trace::geth::{GethDebugTracingCallOptions, GethDebugTracingOptions};
use jsonrpsee::{
    RpcModule,
    types::{ErrorObjectOwned, Params},
};
use revm::{DatabaseRef, database::CacheDB};
use serde_json::{Value, json};

use super::{
    RpcContext, RpcError, RpcResult,
    call::apply_overrides,
    convert::{rpc_block, rpc_pending_transaction, rpc_receipt, rpc_receipts, rpc_transaction},
    filters,
    heavy::{Deadline, run_heavy},
};
use crate::txpool::{AccountReader, Origin, PoolError};

type MethodResult<T> = Result<T, ErrorObjectOwned>;

/// Most reward percentiles one `eth_feeHistory` takes (geth's `maxQueryLimit`).
pub const MAX_REWARD_PERCENTILES: usize = 100;

/// The public RPC methods over `ctx` (the `engine_` namespace is not here).
pub fn eth_module(ctx: Arc<RpcContext>) -> RpcModule<()> {
    let mut module = RpcModule::new(());
    if let Err(error) = register_all(&mut module, ctx) {
        // Names are static and unique; a clash is a programming error caught by the unit tests.
        tracing::error!(%error, "registering RPC methods");
    }
    module
}

macro_rules! sync_method {
    ($module:expr, $ctx:expr, $name:literal, $f:expr) => {{
        let ctx = $ctx.clone();
        $module.register_method($name, move |params, _, _| $f(&ctx, params))?;
    }};
}

/// A method run by [`run_heavy`] as `$f(ctx, params, deadline)`; `$permits`, a field of the
/// context, is the method's own smaller bound where it has one.
macro_rules! heavy_method {
    ($module:expr, $ctx:expr, $name:literal, $f:expr) => {{
        heavy_method!(@register $module, $ctx, $name, |_: &RpcContext| None, $f)
    }};
    ($module:expr, $ctx:expr, $name:literal, $permits:ident, $f:expr) => {{
        heavy_method!(@register $module, $ctx, $name, |c: &RpcContext| Some(c.$permits.clone()), $f)
    }};
    (@register $module:expr, $ctx:expr, $name:literal, $permits:expr, $f:expr) => {{
        let ctx = $ctx.clone();
        $module.register_async_method($name, move |params, _, _| {
            let ctx = ctx.clone();
            async move {
                let permits = ($permits)(&ctx);
                run_heavy(ctx, $name, permits, move |ctx, deadline| $f(&ctx, params, &deadline))
                    .await
            }
        })?;
    }};
}

fn register_all(
    module: &mut RpcModule<()>,
    ctx: Arc<RpcContext>,
) -> Result<(), jsonrpsee::core::RegisterMethodError> {
    // web3_, net_
    sync_method!(module, ctx, "web3_clientVersion", |c: &RpcContext, _p: Params<'_>| {
        MethodResult::Ok(c.client_version.clone())
    });
    sync_method!(module, ctx, "web3_sha3", |_c: &RpcContext, p: Params<'_>| {
        let (data,): (Bytes,) = p.parse()?;
        MethodResult::Ok(keccak256(&data))
    });
    sync_method!(module, ctx, "net_version", |c: &RpcContext, _p: Params<'_>| {
        MethodResult::Ok(c.spec.chain_id().to_string())
    });
    sync_method!(module, ctx, "net_listening", |_c: &RpcContext, _p: Params<'_>| {
        MethodResult::Ok(true)
    });
    sync_method!(module, ctx, "net_peerCount", |c: &RpcContext, _p: Params<'_>| {
        MethodResult::Ok(U64::from(c.peer_count.load(std::sync::atomic::Ordering::Relaxed)))
    });

    // chain
    sync_method!(module, ctx, "eth_chainId", |c: &RpcContext, _p: Params<'_>| {
        MethodResult::Ok(U64::from(c.spec.chain_id()))
    });
    sync_method!(module, ctx, "eth_syncing", |_c: &RpcContext, _p: Params<'_>| {
        MethodResult::Ok(false)
    });
    sync_method!(module, ctx, "eth_accounts", |_c: &RpcContext, _p: Params<'_>| {
        MethodResult::Ok(Vec::<Address>::new())
    });
    sync_method!(module, ctx, "eth_blockNumber", |c: &RpcContext, _p: Params<'_>| {
        MethodResult::Ok(U64::from(c.snapshot().head.number))
    });
    sync_method!(module, ctx, "eth_gasPrice", |c: &RpcContext, _p: Params<'_>| {
        let (base, tip) = c.suggested_fees()?;
        MethodResult::Ok(U256::from(u128::from(base) + tip))
    });
    sync_method!(module, ctx, "eth_maxPriorityFeePerGas", |c: &RpcContext, _p: Params<'_>| {
        let (_, tip) = c.suggested_fees()?;
        MethodResult::Ok(U256::from(tip))
    });
    sync_method!(module, ctx, "eth_blobBaseFee", |c: &RpcContext, _p: Params<'_>| {
        let view = c.snapshot();
        let (header, _) =
            c.header_by_number(&view, view.head.number)?.ok_or(RpcError::HeaderNotFound)?;
        let fee = c
            .spec
            .blob_params_at(header.timestamp)
            .zip(header.excess_blob_gas)
            .map(|(params, excess)| params.calc_blob_fee(excess))
            .unwrap_or(1);
        MethodResult::Ok(U256::from(fee))
    });
    // Up to `max_fee_history` blocks and their receipts: a heavy request.
    heavy_method!(module, ctx, "eth_feeHistory", |c: &RpcContext, p: Params<'_>, d: &Deadline| {
        let mut seq = p.sequence();
        let count: U64 = seq.next()?;
        let newest: BlockNumberOrTag = seq.next()?;
        let percentiles: Option<Vec<f64>> = seq.optional_next()?;
        MethodResult::Ok(c.fee_history(count.to(), newest, percentiles, d)?)
    });

    // state
    sync_method!(module, ctx, "eth_getBalance", |c: &RpcContext, p: Params<'_>| {
        let (address, block) = address_and_block(p)?;
        let view = c.snapshot();
        let (state, _) = c.state_at_id(&view, block)?;
        MethodResult::Ok(
            state.basic_ref(address).map_err(RpcError::from)?.map_or(U256::ZERO, |a| a.balance),
        )
    });
    sync_method!(module, ctx, "eth_getTransactionCount", |c: &RpcContext, p: Params<'_>| {
        let (address, block) = address_and_block(p)?;
        let view = c.snapshot();
        let (state, _) = c.state_at_id(&view, block)?;
        let nonce = state.basic_ref(address).map_err(RpcError::from)?.map_or(0, |a| a.nonce);
        if block == BlockId::Number(BlockNumberOrTag::Pending)
            && let Some(pending) = c.pool.read().pending_nonce(address)
        {
            return MethodResult::Ok(U64::from(pending.max(nonce)));
        }
        MethodResult::Ok(U64::from(nonce))
    });
    sync_method!(module, ctx, "eth_getCode", |c: &RpcContext, p: Params<'_>| {
        let (address, block) = address_and_block(p)?;
        let view = c.snapshot();
        let (state, _) = c.state_at_id(&view, block)?;
        let Some(account) = state.basic_ref(address).map_err(RpcError::from)? else {
            return MethodResult::Ok(Bytes::new());
        };
        let code = match account.code {
            Some(code) => code,
            None => state.code_by_hash_ref(account.code_hash).map_err(RpcError::from)?,
        };
        MethodResult::Ok(code.original_bytes())
    });
    sync_method!(module, ctx, "eth_getStorageAt", |c: &RpcContext, p: Params<'_>| {
        let mut seq = p.sequence();
        let address: Address = seq.next()?;
        let slot: U256 = seq.next()?;
        let block: Option<BlockId> = seq.optional_next()?;
        let view = c.snapshot();
        let (state, _) = c.state_at_id(&view, block.unwrap_or_default())?;
        let value = state.storage_ref(address, slot).map_err(RpcError::from)?;
        MethodResult::Ok(B256::from(value))
    });

    // Proofs walk the trie (disk, hashing): a bounded number at once.
    let proof = |c: &RpcContext, p: Params<'_>, d: &Deadline| {
        let mut seq = p.sequence();
        let address: Address = seq.next()?;
        let keys: Vec<alloy_serde::storage::JsonStorageKey> = seq.next()?;
        let block: Option<BlockId> = seq.optional_next()?;
        // One trie walk of at most MAX_PROOF_KEYS keys: it cannot be stopped half-way.
        d.check()?;
        MethodResult::Ok(c.proof(address, keys, block.unwrap_or_default())?)
    };
    heavy_method!(module, ctx, "eth_getProof", proof_permits, proof);

    // blocks
    sync_method!(module, ctx, "eth_getBlockByNumber", |c: &RpcContext, p: Params<'_>| {
        let mut seq = p.sequence();
        let tag: BlockNumberOrTag = seq.next()?;
        let full: Option<bool> = seq.optional_next()?;
        let view = c.snapshot();
        let block = c.block_by_id(&view, BlockId::Number(tag))?;
        MethodResult::Ok(block.map(|b| rpc_block(&b, full.unwrap_or(false))))
    });
    sync_method!(module, ctx, "eth_getBlockByHash", |c: &RpcContext, p: Params<'_>| {
        let mut seq = p.sequence();
        let hash: B256 = seq.next()?;
        let full: Option<bool> = seq.optional_next()?;
        let view = c.snapshot();
        let block = c.block_by_id(&view, BlockId::from(hash))?;
        MethodResult::Ok(block.map(|b| rpc_block(&b, full.unwrap_or(false))))
    });
    sync_method!(
        module,
        ctx,
        "eth_getBlockTransactionCountByNumber",
        |c: &RpcContext, p: Params<'_>| {
            let (tag,): (BlockNumberOrTag,) = p.parse()?;
            let view = c.snapshot();
            let block = c.block_by_id(&view, BlockId::Number(tag))?;
            MethodResult::Ok(block.map(|b| U64::from(b.block.body.transactions.len())))
        }
    );
    sync_method!(
        module,
        ctx,
        "eth_getBlockTransactionCountByHash",
        |c: &RpcContext, p: Params<'_>| {
            let (hash,): (B256,) = p.parse()?;
            let view = c.snapshot();
            let block = c.block_by_id(&view, BlockId::from(hash))?;
            MethodResult::Ok(block.map(|b| U64::from(b.block.body.transactions.len())))
        }
    );
    sync_method!(module, ctx, "eth_getUncleCountByBlockNumber", |c: &RpcContext, p: Params<'_>| {
        let (tag,): (BlockNumberOrTag,) = p.parse()?;
        let view = c.snapshot();
        MethodResult::Ok(c.block_by_id(&view, BlockId::Number(tag))?.map(|_| U64::ZERO))
    });
    sync_method!(module, ctx, "eth_getUncleCountByBlockHash", |c: &RpcContext, p: Params<'_>| {
        let (hash,): (B256,) = p.parse()?;
        let view = c.snapshot();
        MethodResult::Ok(c.block_by_id(&view, BlockId::from(hash))?.map(|_| U64::ZERO))
    });
    sync_method!(module, ctx, "eth_getBlockReceipts", |c: &RpcContext, p: Params<'_>| {
        let (id,): (BlockId,) = p.parse()?;
        let view = c.snapshot();
        let Some(block) = c.block_by_id(&view, id)? else { return MethodResult::Ok(None) };
        let receipts = c.receipts_by_number(&view, block.number())?.unwrap_or_default();
        let params = c.spec.blob_params_at(block.header().timestamp);
        MethodResult::Ok(Some(rpc_receipts(&block, &receipts, params)))
    });

    // transactions
    sync_method!(module, ctx, "eth_getTransactionByHash", |c: &RpcContext, p: Params<'_>| {
        let (hash,): (B256,) = p.parse()?;
        let view = c.snapshot();
        if let Some(located) = c.transaction_by_hash(&view, hash)? {
            return MethodResult::Ok(Some(rpc_transaction(&located)));
        }
        let pooled = c.pool.read().get(&hash);
        MethodResult::Ok(pooled.map(|tx| rpc_pending_transaction(&tx.tx, tx.sender)))
    });
    sync_method!(module, ctx, "eth_getRawTransactionByHash", |c: &RpcContext, p: Params<'_>| {
        use alloy_eips::eip2718::Encodable2718;
        let (hash,): (B256,) = p.parse()?;
        let view = c.snapshot();
        if let Some(located) = c.transaction_by_hash(&view, hash)? {
            return MethodResult::Ok(Some(Bytes::from(located.tx.encoded_2718())));
        }
        let pooled = c.pool.read().get(&hash);
        MethodResult::Ok(pooled.map(|tx| Bytes::from(tx.tx.encoded_2718())))
    });
    sync_method!(
        module,
        ctx,
        "eth_getTransactionByBlockHashAndIndex",
        |c: &RpcContext, p: Params<'_>| {
            let (hash, index): (B256, U64) = p.parse()?;
            c.tx_by_block_and_index(BlockId::from(hash), index.to())
        }
    );
    sync_method!(
        module,
        ctx,
        "eth_getTransactionByBlockNumberAndIndex",
        |c: &RpcContext, p: Params<'_>| {
            let (tag, index): (BlockNumberOrTag, U64) = p.parse()?;
            c.tx_by_block_and_index(BlockId::Number(tag), index.to())
        }
    );
    sync_method!(module, ctx, "eth_getTransactionReceipt", |c: &RpcContext, p: Params<'_>| {
        let (hash,): (B256,) = p.parse()?;
        let view = c.snapshot();
        let Some(located) = c.transaction_by_hash(&view, hash)? else {
            return MethodResult::Ok(None);
        };
        let Some(block) = c.block_by_number(&view, located.block_number)? else {
            return MethodResult::Ok(None);
        };
        let receipts = c.receipts_by_number(&view, located.block_number)?.unwrap_or_default();
        let params = c.spec.blob_params_at(block.header().timestamp);
        MethodResult::Ok(rpc_receipt(&block, &receipts, located.index, params))
    });
    let send_ctx = ctx.clone();
    module.register_async_method("eth_sendRawTransaction", move |p, _, _| {
        let ctx = send_ctx.clone();
        async move {
            let (raw,): (Bytes,) = p.parse()?;
            ctx.send_raw_transaction(raw).await.map_err(ErrorObjectOwned::from)
        }
    })?;

    // EVM
    heavy_method!(module, ctx, "eth_call", |c: &RpcContext, p: Params<'_>, d: &Deadline| {
        let mut seq = p.sequence();
        let request: TransactionRequest = seq.next()?;
        let block: Option<BlockId> = seq.optional_next()?;
        let overrides: Option<StateOverride> = seq.optional_next()?;
        let block_overrides: Option<BlockOverrides> = seq.optional_next()?;
        let view = c.snapshot();
        let (state, header) = c.state_at_id(&view, block.unwrap_or_default())?;
        let call = c.prepare_call(&header, &request, block_overrides.as_ref())?;
        let mut db = CacheDB::new(&state);
        if let Some(overrides) = overrides {
            apply_overrides(&mut db, overrides)?;
        }
        MethodResult::Ok(c.call(&db, &call, d)?)
    });
    heavy_method!(module, ctx, "eth_estimateGas", |c: &RpcContext, p: Params<'_>, d: &Deadline| {
        let mut seq = p.sequence();
        let request: TransactionRequest = seq.next()?;
        let block: Option<BlockId> = seq.optional_next()?;
        let overrides: Option<StateOverride> = seq.optional_next()?;
        let view = c.snapshot();
        let (state, header) = c.state_at_id(&view, block.unwrap_or_default())?;
        let call = c.prepare_call(&header, &request, None)?;
        let mut db = CacheDB::new(&state);
        if let Some(overrides) = overrides {
            apply_overrides(&mut db, overrides)?;
        }
        MethodResult::Ok(U64::from(c.estimate_gas(&db, call, d)?))
    });
    let access_list = |c: &RpcContext, p: Params<'_>, d: &Deadline| {
        let mut seq = p.sequence();
        let request: TransactionRequest = seq.next()?;
        let block: Option<BlockId> = seq.optional_next()?;
        let view = c.snapshot();
        let (state, header) = c.state_at_id(&view, block.unwrap_or_default())?;
        let call = c.prepare_call(&header, &request, None)?;
        let (access_list, gas_used, error) = c.create_access_list(&state, call, d)?;
        MethodResult::Ok(AccessListResult { access_list, gas_used: U256::from(gas_used), error })
    };
    heavy_method!(module, ctx, "eth_createAccessList", access_list);
    heavy_method!(module, ctx, "debug_traceCall", |c: &RpcContext, p: Params<'_>, d: &Deadline| {
        let mut seq = p.sequence();
        let request: TransactionRequest = seq.next()?;
        let block: Option<BlockId> = seq.optional_next()?;
        let opts: Option<GethDebugTracingCallOptions> = seq.optional_next()?;
        let opts = opts.unwrap_or_default();
        let view = c.snapshot();
        let (state, header) = c.state_at_id(&view, block.unwrap_or_default())?;
        let call = c.prepare_call(&header, &request, opts.block_overrides.as_ref())?;
        let mut db = CacheDB::new(&state);
        if let Some(overrides) = opts.state_overrides.clone() {
            apply_overrides(&mut db, overrides)?;
        }
        MethodResult::Ok(c.trace_call(&db, &call, opts.tracing_options, None, d)?)
    });
    // Replays the block up to the transaction: a bounded number at once.
    let trace = |c: &RpcContext, p: Params<'_>, d: &Deadline| {
        let mut seq = p.sequence();
        let hash: B256 = seq.next()?;
        let opts: Option<GethDebugTracingOptions> = seq.optional_next()?;
        let view = c.snapshot();
        let located = c
            .transaction_by_hash(&view, hash)?
            .ok_or_else(|| RpcError::Execution(format!("transaction {hash} not found")))?;
        let block =
            c.block_by_number(&view, located.block_number)?.ok_or(RpcError::HeaderNotFound)?;
        let parent = located.block_number.checked_sub(1).ok_or(RpcError::HeaderNotFound)?;
        let state = view.state_at(&c.db, parent).map_err(RpcError::from)?;
        MethodResult::Ok(c.trace_transaction(
            &state,
            &block,
            located.index,
            opts.unwrap_or_default(),
            d,
        )?)
    };
    heavy_method!(module, ctx, "debug_traceTransaction", replay_permits, trace);

    // logs and filters
    heavy_method!(module, ctx, "eth_getLogs", |c: &RpcContext, p: Params<'_>, d: &Deadline| {
        let (filter,): (Filter,) = p.parse()?;
        MethodResult::Ok(c.logs(&filter, d)?)
    });
    filters::register(module, ctx.clone())?;

    // txpool_
    sync_method!(module, ctx, "txpool_status", |c: &RpcContext, _p: Params<'_>| {
        let status = c.pool.read().status();
        MethodResult::Ok(json!({
            "pending": U64::from(status.pending),
            "queued": U64::from(status.queued),
        }))
    });
    // Every pooled transaction as JSON (the pool holds thousands): a heavy request.
    heavy_method!(module, ctx, "txpool_content", |c: &RpcContext, _p: Params<'_>, d: &Deadline| {
        let content = c.pool.read().content();
        let side = |m: &BTreeMap<Address, BTreeMap<u64, Arc<crate::txpool::PooledTx>>>| -> RpcResult<Value> {
            let mut out = serde_json::Map::new();
            for (sender, txs) in m {
                d.check()?;
                let mut by_nonce = serde_json::Map::new();
                for (nonce, tx) in txs {
                    by_nonce.insert(
                        nonce.to_string(),
                        serde_json::to_value(rpc_pending_transaction(&tx.tx, tx.sender))
                            .unwrap_or(Value::Null),
                    );
                }
                out.insert(sender.to_checksum(None), Value::Object(by_nonce));
            }
            RpcResult::Ok(Value::Object(out))
        };
        MethodResult::Ok(
            json!({ "pending": side(&content.pending)?, "queued": side(&content.queued)? }),
        )
    });
    heavy_method!(module, ctx, "txpool_inspect", |c: &RpcContext, _p: Params<'_>, d: &Deadline| {
        let content = c.pool.read().content();
        let side = |m: &BTreeMap<Address, BTreeMap<u64, Arc<crate::txpool::PooledTx>>>| -> RpcResult<Value> {
            let mut out = serde_json::Map::new();
            for (sender, txs) in m {
                d.check()?;
                let mut by_nonce = serde_json::Map::new();
                for (nonce, tx) in txs {
                    let to =
                        tx.tx.to().map_or("contract creation".to_string(), |a| a.to_checksum(None));
                    let summary = format!(
                        "{}: {} wei + {} gas × {} wei",
                        to,
                        tx.tx.value(),
                        tx.tx.gas_limit(),
                        tx.tx.max_fee_per_gas()
                    );
                    by_nonce.insert(nonce.to_string(), Value::String(summary));
                }
                out.insert(sender.to_checksum(None), Value::Object(by_nonce));
            }
            RpcResult::Ok(Value::Object(out))
        };
        MethodResult::Ok(
            json!({ "pending": side(&content.pending)?, "queued": side(&content.queued)? }),
        )
    });
    super::l1::register(module, ctx.clone())?;
    Ok(())
}

/// `(address, block)` with the block defaulting to `latest`.
fn address_and_block(p: Params<'_>) -> MethodResult<(Address, BlockId)> {
    let mut seq = p.sequence();
    let address: Address = seq.next()?;
    let block: Option<BlockId> = seq.optional_next()?;
    Ok((address, block.unwrap_or_default()))
}

/// Nonce and balance of senders from the latest state of the view, for pool validation.
struct LatestAccounts<'a, S>(&'a S);

impl<S: DatabaseRef<Error = crate::storage::StorageError>> AccountReader for LatestAccounts<'_, S> {
    fn nonce_and_balance(&self, address: Address) -> Result<(u64, U256), PoolError> {
        let info = self.0.basic_ref(address).map_err(|e| PoolError::State(e.to_string()))?;
        Ok(info.map_or((0, U256::ZERO), |a| (a.nonce, a.balance)))
    }
}

impl RpcContext {
    /// `eth_sendRawTransaction`: decode, recover off the async threads, add to the pool against
    /// the latest state, journal, announce.
    pub async fn send_raw_transaction(self: &Arc<Self>, raw: Bytes) -> RpcResult<B256> {
        let ctx = self.clone();
        tokio::task::spawn_blocking(move || ctx.add_raw_transaction(&raw))
            .await
            .map_err(|e| RpcError::Internal(e.to_string()))?
    }

    /// The synchronous part of [`RpcContext::send_raw_transaction`].
    pub fn add_raw_transaction(&self, raw: &[u8]) -> RpcResult<B256> {
        let mut bytes = raw;
        let tx =
            TxEnvelope::decode_2718(&mut bytes).map_err(|e| PoolError::Decode(e.to_string()))?;
        if !bytes.is_empty() {
            return Err(PoolError::Decode("input contains more than one value".into()).into());
        }
        let hash = *tx.tx_hash();
        let sender = self.senders.recover(&tx)?;
        let view = self.snapshot();
        let state = view.latest_state(&self.db)?;
        self.pool.write().add(tx, sender, Origin::Local, &LatestAccounts(&state))?;
        if let Some(journal) = &self.journal
            && let Err(error) = journal.lock().append(raw)
        {
            tracing::warn!(%error, %hash, "journaling a local transaction");
        }
        let _ = self.pending_txs.send(hash);
        Ok(hash)
    }

    /// Base fee of the next block and the suggested tip.
    fn suggested_fees(&self) -> RpcResult<(u64, u128)> {
        let base_fee = self.pool.read().context().base_fee;
        let view = self.snapshot();
        // The median tip paid in the last few blocks, at least the configured minimum.
        let mut tips = Vec::new();
        let head = view.head.number;
        for number in head.saturating_sub(19)..=head {
            if let Some(block) = self.block_by_number(&view, number)? {
                let fee = block.header().base_fee_per_gas.unwrap_or_default();
                tips.extend(
                    block
                        .block
                        .body
                        .transactions
                        .iter()
                        .filter_map(|t| t.effective_tip_per_gas(fee)),
                );
            }
        }
        tips.sort_unstable();
        let median = tips.get(tips.len() / 2).copied().unwrap_or(0);
        Ok((base_fee, median.max(self.config.min_suggested_tip)))
    }

    fn tx_by_block_and_index(
        &self,
        id: BlockId,
        index: usize,
    ) -> MethodResult<Option<alloy_rpc_types_eth::Transaction>> {
        let view = self.snapshot();
        let Some(block) = self.block_by_id(&view, id)? else { return Ok(None) };
        let Some(tx) = block.block.body.transactions.get(index) else { return Ok(None) };
        Ok(Some(rpc_transaction(&super::chain::LocatedTx {
            tx: tx.clone(),
            sender: block.senders.get(index).copied().unwrap_or_default(),
            block_hash: block.hash(),
            block_number: block.number(),
            index,
            base_fee: block.header().base_fee_per_gas,
            timestamp: block.header().timestamp,
        })))
    }

    /// `eth_feeHistory`.
    pub(crate) fn fee_history(
        &self,
        count: u64,
        newest: BlockNumberOrTag,
        percentiles: Option<Vec<f64>>,
        deadline: &Deadline,
    ) -> RpcResult<FeeHistory> {
        use alloy_eips::eip1559::BaseFeeParams;
        let view = self.snapshot();
        let count = count.min(self.config.max_fee_history);
        let newest = self.resolve_number(&view, newest)?.ok_or(RpcError::HeaderNotFound)?;
        // Each percentile costs a pass over every block's transactions: geth's bound and words.
        if percentiles.as_ref().is_some_and(|p| p.len() > MAX_REWARD_PERCENTILES) {
            return Err(RpcError::InvalidParams(format!(
                "invalid reward percentiles: over the query limit {MAX_REWARD_PERCENTILES}"
            )));
        }
        if let Some(p) = &percentiles
            && (p.iter().any(|v| !(0.0..=100.0).contains(v)) || p.windows(2).any(|w| w[0] > w[1]))
        {
            return Err(RpcError::InvalidParams(
                "invalid reward percentiles: must be ascending and within [0, 100]".into(),
            ));
        }
        if count == 0 {
            return Ok(FeeHistory { oldest_block: newest, ..Default::default() });
        }
        let oldest = (newest + 1).saturating_sub(count);
        let mut history = FeeHistory { oldest_block: oldest, ..Default::default() };
        let mut rewards = Vec::new();
        let mut last_header = None;
        for number in oldest..=newest {
            deadline.check()?;
            let block = self.block_by_number(&view, number)?.ok_or(RpcError::HeaderNotFound)?;
            let header = block.header().clone();
            let base_fee = header.base_fee_per_gas.unwrap_or_default();
            history.base_fee_per_gas.push(u128::from(base_fee));
            history.gas_used_ratio.push(if header.gas_limit == 0 {
                0.0
            } else {
                header.gas_used as f64 / header.gas_limit as f64
            });
            let blob_params = self.spec.blob_params_at(header.timestamp);
            history.base_fee_per_blob_gas.push(
                blob_params
                    .zip(header.excess_blob_gas)
                    .map_or(0, |(p, excess)| p.calc_blob_fee(excess)),
            );
            history.blob_gas_used_ratio.push(
                blob_params
                    .map(|p| p.max_blob_gas_per_block())
                    .filter(|max| *max > 0)
                    .map_or(0.0, |max| header.blob_gas_used.unwrap_or(0) as f64 / max as f64),
            );
            if let Some(percentiles) = &percentiles {
                let receipts = self.receipts_by_number(&view, number)?.unwrap_or_default();
                rewards.push(block_rewards(&block, &receipts, base_fee, percentiles));
            }
            last_header = Some(header);
        }
        if let Some(header) = last_header {
            // The base fee of the block after the newest.
            let next = header.next_block_base_fee(BaseFeeParams::ethereum()).unwrap_or_default();
            history.base_fee_per_gas.push(u128::from(next));
            let blob_params = self.spec.blob_params_at(header.timestamp);
            history.base_fee_per_blob_gas.push(
                blob_params
                    .and_then(|p| header.next_block_excess_blob_gas(p).map(|e| p.calc_blob_fee(e)))
                    .unwrap_or(0),
            );
        }
        history.reward = percentiles.map(|_| rewards);
        Ok(history)
    }
}

/// Tips at the given gas-weighted percentiles of one block (as geth computes them).
fn block_rewards(
    block: &super::chain::BlockData,
    receipts: &[alloy_consensus::ReceiptEnvelope],
    base_fee: u64,
    percentiles: &[f64],
) -> Vec<u128> {
    let mut previous = 0u64;
    let mut txs: Vec<(u128, u64)> = block
        .block
        .body
        .transactions
        .iter()
        .zip(receipts)
        .map(|(tx, receipt)| {
            let cumulative = receipt.cumulative_gas_used();
            let used = cumulative.saturating_sub(previous);
            previous = cumulative;
            (tx.effective_tip_per_gas(base_fee).unwrap_or(0), used)
        })
        .collect();
    if txs.is_empty() {
        return vec![0; percentiles.len()];
    }
    txs.sort_unstable_by_key(|(tip, _)| *tip);
    let total: u64 = txs.iter().map(|(_, used)| used).sum();
    let mut out = Vec::with_capacity(percentiles.len());
    let mut index = 0;
    let mut sum = txs[0].1;
    for p in percentiles {
        let threshold = (total as f64 * p / 100.0) as u64;
        while sum < threshold && index + 1 < txs.len() {
            index += 1;
            sum += txs[index].1;
        }
        out.push(txs[index].0);
    }
    out
}
