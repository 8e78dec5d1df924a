//! The execution payload inside a consensus block: [`PayloadBody`] (the Engine API payload and,
//! from Prague, its execution requests) encoded as JSON in `Payload::body`, and the binding
//! fields consensus checks copied out of it.
//!
//! JSON is the Engine API's own encoding, so a payload from `getPayload` goes into a block and
//! back into `newPayload` unchanged, whatever EL built it. [`to_body`] refuses a body whose
//! binding fields disagree with the consensus fields (a leader cannot bind one payload and ship
//! another).

use crate::types::{Payload, Withdrawal};
use alloy_consensus::{Transaction as _, TxEnvelope};
use alloy_eips::eip2718::Decodable2718;
use alloy_eips::eip7685::Requests;
use alloy_primitives::B256;
use alloy_rpc_types_engine::ExecutionPayload;
use serde::{Deserialize, Serialize};
use thiserror::Error;

/// The full execution payload a consensus block carries.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PayloadBody {
    /// The payload as `getPayload` returned it.
    pub execution_payload: ExecutionPayload,
    /// EIP-7685 requests (Prague and later).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub execution_requests: Option<Requests>,
}

/// Why a payload could not be converted.
#[derive(Debug, Error)]
pub enum PayloadBodyError {
    /// The body is not a JSON payload body.
    #[error("payload body of block {block_hash} is not a JSON execution payload: {source}")]
    Decode {
        /// The claimed block hash.
        block_hash: B256,
        /// The JSON error.
        source: serde_json::Error,
    },
    /// A binding field differs from the execution payload's.
    #[error("payload {block_hash}: consensus field {field} differs from the execution payload")]
    Mismatch {
        /// The claimed block hash.
        block_hash: B256,
        /// The field.
        field: &'static str,
    },
    /// A transaction does not decode (so its blob hashes cannot be computed).
    #[error("payload {block_hash}: transaction {index} does not decode: {reason}")]
    Transaction {
        /// The block hash.
        block_hash: B256,
        /// Position in the payload.
        index: usize,
        /// Decoder message.
        reason: String,
    },
}

/// Builds the consensus payload from an EL payload and its parent beacon block root.
pub fn to_consensus(body: &PayloadBody, parent_beacon_block_root: B256) -> Payload {
    let p = &body.execution_payload;
    let withdrawals = p
        .withdrawals()
        .map(|ws| {
            ws.iter()
                .map(|w| Withdrawal {
                    index: w.index,
                    validator_index: w.validator_index,
                    address: w.address.into_array(),
                    amount: w.amount,
                })
                .collect()
        })
        .unwrap_or_default();
    Payload {
        block_hash: p.block_hash(),
        parent_hash: p.parent_hash(),
        number: p.block_number(),
        timestamp: p.timestamp(),
        prev_randao: p.prev_randao(),
        parent_beacon_block_root,
        withdrawals,
        // Serializing a value of plain fields cannot fail.
        body: serde_json::to_vec(body).unwrap_or_default(),
    }
}

/// Decodes a consensus payload's body and checks it carries the same binding fields.
pub fn to_body(payload: &Payload) -> Result<PayloadBody, PayloadBodyError> {
    let block_hash = payload.block_hash;
    let body: PayloadBody = serde_json::from_slice(&payload.body)
        .map_err(|source| PayloadBodyError::Decode { block_hash, source })?;
    let p = &body.execution_payload;
    let mismatch = |field| Err(PayloadBodyError::Mismatch { block_hash, field });
    if p.block_hash() != payload.block_hash {
        return mismatch("blockHash");
    }
    if p.parent_hash() != payload.parent_hash {
        return mismatch("parentHash");
    }
    if p.block_number() != payload.number {
        return mismatch("blockNumber");
    }
    if p.timestamp() != payload.timestamp {
        return mismatch("timestamp");
    }
    if p.prev_randao() != payload.prev_randao {
        return mismatch("prevRandao");
    }
    if p.withdrawals().map_or(0, Vec::len) != payload.withdrawals.len() {
        return mismatch("withdrawals");
    }
    Ok(body)
}

/// The EIP-4844 versioned hashes of the payload's blob transactions, in order (the
/// `expectedBlobVersionedHashes` of `newPayloadV3/V4`).
pub fn versioned_hashes(payload: &ExecutionPayload) -> Result<Vec<B256>, PayloadBodyError> {
    let mut out = Vec::new();
    for (index, raw) in payload.transactions().iter().enumerate() {
        // Only type-3 transactions carry blob hashes; skip decoding the others.
        if raw.first() != Some(&3) {
            continue;
        }
        let tx = TxEnvelope::decode_2718_exact(raw.as_ref()).map_err(|e| {
            PayloadBodyError::Transaction {
                block_hash: payload.block_hash(),
                index,
                reason: e.to_string(),
            }
        })?;
        if let Some(hashes) = tx.blob_versioned_hashes() {
            out.extend_from_slice(hashes);
        }
    }
    Ok(out)
}
