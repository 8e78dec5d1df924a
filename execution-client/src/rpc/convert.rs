//! Consensus types to their JSON-RPC shapes (alloy's `rpc-types-eth`).

use alloy_consensus::{
    Header, ReceiptEnvelope, Transaction as _, TxEnvelope, transaction::Recovered,
};
use alloy_eips::eip7840::BlobParams;
use alloy_primitives::{Address, B256, U256};
use alloy_rlp::Encodable;
use alloy_rpc_types_eth::{
    Block, BlockTransactions, Header as RpcHeader, Log, Transaction, TransactionReceipt,
};

use super::chain::{BlockData, LocatedTx};

/// A block as `eth_getBlockBy*` returns it, with full transactions or hashes.
pub(crate) fn rpc_block(data: &BlockData, full: bool) -> Block<Transaction> {
    let block = &data.block;
    let header = &block.header;
    let size = block.inner().length();
    let transactions = if full {
        BlockTransactions::Full(
            block
                .body
                .transactions
                .iter()
                .enumerate()
                .map(|(index, tx)| {
                    rpc_transaction(&LocatedTx {
                        tx: tx.clone(),
                        sender: data.senders.get(index).copied().unwrap_or_default(),
                        block_hash: data.hash(),
                        block_number: data.number(),
                        index,
                        base_fee: header.base_fee_per_gas,
                        timestamp: header.timestamp,
                    })
                })
                .collect(),
        )
    } else {
        BlockTransactions::Hashes(block.body.transactions.iter().map(|t| *t.tx_hash()).collect())
    };
    Block {
        header: RpcHeader {
            hash: data.hash(),
            inner: header.clone(),
            total_difficulty: Some(U256::ZERO),
            size: Some(U256::from(size)),
        },
        uncles: Vec::new(),
        transactions,
        withdrawals: block.body.withdrawals.clone(),
    }
}

/// A header as `eth_subscribe("newHeads")` sends it.
pub(crate) fn rpc_header(header: &Header, hash: B256) -> RpcHeader {
    RpcHeader { hash, inner: header.clone(), total_difficulty: Some(U256::ZERO), size: None }
}

/// A mined transaction.
pub(crate) fn rpc_transaction(located: &LocatedTx) -> Transaction {
    let effective_gas_price = located.tx.effective_gas_price(located.base_fee);
    Transaction {
        inner: Recovered::new_unchecked(located.tx.clone(), located.sender),
        block_hash: Some(located.block_hash),
        block_number: Some(located.block_number),
        transaction_index: Some(located.index as u64),
        effective_gas_price: Some(effective_gas_price),
        block_timestamp: Some(located.timestamp),
    }
}

/// A pooled (not yet mined) transaction.
pub(crate) fn rpc_pending_transaction(tx: &TxEnvelope, sender: Address) -> Transaction {
    Transaction {
        inner: Recovered::new_unchecked(tx.clone(), sender),
        block_hash: None,
        block_number: None,
        transaction_index: None,
        effective_gas_price: None,
        block_timestamp: None,
    }
}

/// The RPC receipts of a block's transactions (`eth_getBlockReceipts`).
pub(crate) fn rpc_receipts(
    data: &BlockData,
    receipts: &[ReceiptEnvelope],
    blob_params: Option<BlobParams>,
) -> Vec<TransactionReceipt> {
    let blob_gas_price = blob_gas_price(data, blob_params);
    let mut log_index = 0u64;
    let mut previous_cumulative = 0u64;
    let mut out = Vec::with_capacity(receipts.len());
    for (index, receipt) in receipts.iter().enumerate() {
        let Some(built) =
            build_receipt(data, receipt, index, log_index, previous_cumulative, blob_gas_price)
        else {
            break;
        };
        log_index += receipt.logs().len() as u64;
        previous_cumulative = receipt.cumulative_gas_used();
        out.push(built);
    }
    out
}

/// The RPC receipt of transaction `index` of a block (`eth_getTransactionReceipt`), without
/// building the others': only their log counts and the previous cumulative gas are needed.
pub(crate) fn rpc_receipt(
    data: &BlockData,
    receipts: &[ReceiptEnvelope],
    index: usize,
    blob_params: Option<BlobParams>,
) -> Option<TransactionReceipt> {
    let receipt = receipts.get(index)?;
    let log_index = receipts[..index].iter().map(|r| r.logs().len() as u64).sum();
    let previous_cumulative =
        index.checked_sub(1).and_then(|i| receipts.get(i)).map_or(0, |r| r.cumulative_gas_used());
    build_receipt(
        data,
        receipt,
        index,
        log_index,
        previous_cumulative,
        blob_gas_price(data, blob_params),
    )
}

fn blob_gas_price(data: &BlockData, blob_params: Option<BlobParams>) -> Option<u128> {
    data.header()
        .excess_blob_gas
        .zip(blob_params)
        .map(|(excess, params)| params.calc_blob_fee(excess))
}

/// One RPC receipt; `log_index` is the block-wide index of its first log.
fn build_receipt(
    data: &BlockData,
    receipt: &ReceiptEnvelope,
    index: usize,
    mut log_index: u64,
    previous_cumulative: u64,
    blob_gas_price: Option<u128>,
) -> Option<TransactionReceipt> {
    let header = data.header();
    let tx = data.block.body.transactions.get(index)?;
    let sender = data.senders.get(index).copied().unwrap_or_default();
    let gas_used = receipt.cumulative_gas_used().saturating_sub(previous_cumulative);
    let tx_hash = *tx.tx_hash();
    let inner = receipt.clone().map_logs(|log| {
        let rpc = Log {
            inner: log,
            block_hash: Some(data.hash()),
            block_number: Some(data.number()),
            block_timestamp: Some(header.timestamp),
            transaction_hash: Some(tx_hash),
            transaction_index: Some(index as u64),
            log_index: Some(log_index),
            removed: false,
        };
        log_index += 1;
        rpc
    });
    let contract_address = tx.to().is_none().then(|| sender.create(tx.nonce()));
    Some(TransactionReceipt {
        inner,
        transaction_hash: tx_hash,
        transaction_index: Some(index as u64),
        block_hash: Some(data.hash()),
        block_number: Some(data.number()),
        gas_used,
        effective_gas_price: tx.effective_gas_price(header.base_fee_per_gas),
        blob_gas_used: tx.blob_gas_used(),
        blob_gas_price: tx.blob_gas_used().and(blob_gas_price),
        from: sender,
        to: tx.to(),
        contract_address,
    })
}

/// The logs of one block in RPC form, in order, with block-wide log indexes.
pub(crate) fn block_logs(data: &BlockData, receipts: &[ReceiptEnvelope]) -> Vec<Log> {
    let header = data.header();
    let mut out = Vec::new();
    let mut log_index = 0u64;
    for (index, (tx, receipt)) in data.block.body.transactions.iter().zip(receipts).enumerate() {
        for log in receipt.logs() {
            out.push(Log {
                inner: log.clone(),
                block_hash: Some(data.hash()),
                block_number: Some(data.number()),
                block_timestamp: Some(header.timestamp),
                transaction_hash: Some(*tx.tx_hash()),
                transaction_index: Some(index as u64),
                log_index: Some(log_index),
                removed: false,
            });
            log_index += 1;
        }
    }
    out
}
