//! Dev mode: a block producer inside the node that drives the fork choice and the payload builder
//! exactly as a consensus client would, for dapp development and EL-only benchmarks.
//!
//! Without a block time, a block is produced as soon as the pool has executable transactions;
//! with one, a block (possibly empty) every interval. Each dev block is at once head, safe and
//! finalized.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use alloy_primitives::{Address, B256};
use alloy_rpc_types_engine::{ForkchoiceState, PayloadAttributes};
use alloy_signer_local::{MnemonicBuilder, coins_bip39::English};
use tandem_shared::{ChainSpec, ChainSpecError, system_contracts};
use tracing::{info, warn};

use super::NodeHandle;
use crate::{fork_choice::ForkchoiceOutcome, payload_builder::payload_id};

/// The dev mnemonic (anvil's and hardhat's).
pub const DEV_MNEMONIC: &str = "test test test test test test test test test test test junk";
/// Chain id of the built-in dev chain.
pub const DEV_CHAIN_ID: u64 = 1337;

/// Dev producer settings.
#[derive(Debug, Clone, Default)]
pub struct DevConfig {
    /// Produce a block every interval; `None`: as soon as transactions arrive.
    pub block_time: Option<Duration>,
    /// Fee recipient of dev blocks.
    pub fee_recipient: Address,
}

/// The first `n` accounts of the dev mnemonic (m/44'/60'/0'/0/i).
pub fn dev_accounts(n: u32) -> Result<Vec<Address>, String> {
    (0..n)
        .map(|i| {
            MnemonicBuilder::<English>::default()
                .phrase(DEV_MNEMONIC)
                .index(i)
                .and_then(|b| b.build())
                .map(|signer| signer.address())
                .map_err(|e| e.to_string())
        })
        .collect()
}

/// The built-in dev chain: Prague at genesis, sub-second blocks, ten funded dev accounts.
pub fn dev_chain_spec() -> Result<ChainSpec, ChainSpecError> {
    let mut alloc = serde_json::to_value(system_contracts::prague_system_contracts())
        .unwrap_or_else(|_| serde_json::json!({}));
    let accounts = dev_accounts(10).map_err(|msg| ChainSpecError::Field {
        file: "<dev>".into(),
        field: "alloc".into(),
        msg,
    })?;
    for address in accounts {
        // 1,000,000 ETH each.
        alloc[address.to_string()] = serde_json::json!({ "balance": "0xd3c21bcecceda1000000" });
    }
    let genesis = serde_json::json!({
        "config": {
            "chainId": DEV_CHAIN_ID, "homesteadBlock": 0, "eip150Block": 0, "eip155Block": 0,
            "eip158Block": 0, "byzantiumBlock": 0, "constantinopleBlock": 0, "petersburgBlock": 0,
            "istanbulBlock": 0, "berlinBlock": 0, "londonBlock": 0, "mergeNetsplitBlock": 0,
            "terminalTotalDifficulty": 0, "terminalTotalDifficultyPassed": true,
            "shanghaiTime": 0, "cancunTime": 0, "pragueTime": 0,
            "depositContractAddress": system_contracts::DEPOSIT_CONTRACT,
            "tandem": { "subSecondBlocks": true }
        },
        "gasLimit": "0x1c9c380", "difficulty": "0x0", "timestamp": "0x0",
        "baseFeePerGas": "0x3b9aca00", "extraData": "0x", "alloc": alloc
    });
    ChainSpec::from_json_str(&genesis.to_string(), "<dev genesis>")
}

fn now_secs() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

/// Runs the producer until the task is aborted.
pub async fn run(node: NodeHandle, config: DevConfig) {
    info!(block_time = ?config.block_time, "dev mode: producing blocks without a consensus client");
    loop {
        match config.block_time {
            Some(interval) => tokio::time::sleep(interval).await,
            None => loop {
                if node.pool.read().status().pending > 0 {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(5)).await;
            },
        }
        if let Err(e) = produce(&node, &config).await {
            warn!(error = %e, "dev block production failed");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}

/// Builds one block on the head and makes it head, safe and finalized.
pub async fn produce(node: &NodeHandle, config: &DevConfig) -> Result<B256, String> {
    let head = node.view.read().head;
    let state = ForkchoiceState {
        head_block_hash: head.hash,
        safe_block_hash: head.hash,
        finalized_block_hash: head.hash,
    };
    let (_, target) = node
        .engine
        .fork_choice_updated(state, true)
        .await
        .map_err(|e| e.to_string())?
        .map_err(|e| e.to_string())?;
    let target = target.ok_or("the head cannot be built on")?;
    let parent_ts = target.parent.timestamp;
    let step = u64::from(!node.spec.sub_second_blocks());
    let timestamp = now_secs().max(parent_ts.saturating_add(step));
    let attributes = PayloadAttributes {
        timestamp,
        prev_randao: head.hash,
        suggested_fee_recipient: config.fee_recipient,
        withdrawals: Some(Vec::new()),
        parent_beacon_block_root: Some(head.hash),
        slot_number: None,
        target_gas_limit: None,
    };
    let id = payload_id(head.hash, &attributes);
    let job = node.jobs.start(id, target, attributes);
    let built = job.resolve().await?;
    let block = built.block.block.clone();
    let hash = block.hash();
    node.engine.insert_built(built.block.clone());
    let status = node
        .engine
        .new_payload(block)
        .await
        .map_err(|e| e.to_string())?
        .map_err(|e| e.to_string())?;
    if !status.status.is_valid() {
        return Err(format!("own block {hash} not valid: {status:?}"));
    }
    let state = ForkchoiceState {
        head_block_hash: hash,
        safe_block_hash: hash,
        finalized_block_hash: hash,
    };
    match node
        .engine
        .fork_choice_updated(state, false)
        .await
        .map_err(|e| e.to_string())?
        .map_err(|e| e.to_string())?
    {
        (ForkchoiceOutcome::Valid { .. }, _) => Ok(hash),
        (other, _) => Err(format!("fork choice to own block {hash}: {other:?}")),
    }
}
