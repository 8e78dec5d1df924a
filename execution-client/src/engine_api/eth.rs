//! The `eth_` methods the Engine API spec requires on the authenticated port that a consensus
//! client needs before anything else: chain id, block number, syncing, blocks by number/hash.
//!
//! Blocks are returned with their header fields, hash and transaction hashes.

use std::sync::Arc;

use alloy_eips::BlockNumberOrTag;
use alloy_primitives::{B256, U64};
use jsonrpsee::{RpcModule, core::RegisterMethodError, types::ErrorObjectOwned};
use serde_json::{Value, json};

use super::EngineApi;
use crate::storage::SealedBlock;

fn block_json(block: &SealedBlock) -> Value {
    let mut value = serde_json::to_value(&block.header).unwrap_or(Value::Null);
    if let Value::Object(map) = &mut value {
        map.insert("hash".into(), json!(block.hash()));
        let hashes: Vec<B256> = block.body.transactions.iter().map(|tx| *tx.tx_hash()).collect();
        map.insert("transactions".into(), json!(hashes));
        map.insert("uncles".into(), json!([]));
        map.insert("totalDifficulty".into(), json!("0x0"));
        if let Some(withdrawals) = &block.body.withdrawals {
            map.insert("withdrawals".into(), json!(withdrawals));
        }
    }
    value
}

fn rpc_error(e: impl std::fmt::Display) -> ErrorObjectOwned {
    ErrorObjectOwned::owned(-32603, e.to_string(), None::<()>)
}

impl EngineApi {
    fn block_by_number(
        &self,
        tag: BlockNumberOrTag,
    ) -> Result<Option<SealedBlock>, ErrorObjectOwned> {
        let view = self.view.read().clone();
        let number = match tag {
            BlockNumberOrTag::Number(n) => n,
            BlockNumberOrTag::Earliest => 0,
            BlockNumberOrTag::Latest | BlockNumberOrTag::Pending => view.head.number,
            BlockNumberOrTag::Safe => match view.safe {
                Some(b) => b.number,
                None => {
                    return Err(ErrorObjectOwned::owned(
                        -39001,
                        "safe block not found",
                        None::<()>,
                    ));
                }
            },
            BlockNumberOrTag::Finalized => match view.finalized {
                Some(b) => b.number,
                None => {
                    return Err(ErrorObjectOwned::owned(
                        -39001,
                        "finalized block not found",
                        None::<()>,
                    ));
                }
            },
        };
        if number > view.head.number {
            return Ok(None);
        }
        match view.block_by_number(number) {
            Some(executed) => Ok(Some(executed.block.clone())),
            None => self.db.block(number).map_err(rpc_error),
        }
    }
}

/// The `eth_` subset for the authenticated port.
pub fn eth_subset(api: Arc<EngineApi>) -> Result<RpcModule<Arc<EngineApi>>, RegisterMethodError> {
    let mut module = RpcModule::new(api);
    module.register_method("eth_chainId", |_, api, _| {
        Ok::<_, ErrorObjectOwned>(U64::from(api.spec.chain_id()))
    })?;
    module.register_method("eth_blockNumber", |_, api, _| {
        Ok::<_, ErrorObjectOwned>(U64::from(api.view.read().head.number))
    })?;
    module.register_method("eth_syncing", |_, _, _| Ok::<_, ErrorObjectOwned>(false))?;
    module.register_method("eth_getBlockByNumber", |params, api, _| {
        let mut seq = params.sequence();
        let tag: BlockNumberOrTag =
            seq.next().map_err(|e| ErrorObjectOwned::owned(-32602, e.to_string(), None::<()>))?;
        Ok::<_, ErrorObjectOwned>(
            api.block_by_number(tag)?.as_ref().map_or(Value::Null, block_json),
        )
    })?;
    module.register_async_method("eth_getBlockByHash", |params, api, _| async move {
        let mut seq = params.sequence();
        let hash: B256 =
            seq.next().map_err(|e| ErrorObjectOwned::owned(-32602, e.to_string(), None::<()>))?;
        let block = api.engine.block(hash).await.map_err(rpc_error)?.map_err(rpc_error)?;
        Ok::<_, ErrorObjectOwned>(block.as_ref().map_or(Value::Null, block_json))
    })?;
    Ok(module)
}
