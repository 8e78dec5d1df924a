//! The execution payload inside a consensus block: [`PayloadBody`] (the Engine API payload and,
//! from Prague, its execution requests) in `Payload::body`, and the binding fields consensus
//! checks copied out of it.
//!
//! The body is binary (format [`BODY_FORMAT`]): a version byte, the payload's version (V1, V2,
//! V3), its fields in order with fixed-width integers and length-prefixed byte strings, the
//! transactions as their EIP-2718 bytes, then the optional requests. It holds exactly the
//! fields of the Engine API payload, so a payload from `getPayload` goes into a block and back
//! into `newPayload` unchanged, whatever EL built it; it is half the size of the JSON (no hex)
//! and decodes without a JSON parser. [`to_body`] refuses a body whose binding fields disagree
//! with the consensus fields (a leader cannot bind one payload and ship another).

use crate::types::codec::{DecodeError, Reader, Writer};
use crate::types::{Payload, Withdrawal};
use alloy_consensus::{Transaction as _, TxEnvelope};
use alloy_eips::eip2718::Decodable2718;
use alloy_eips::eip4895::Withdrawal as ElWithdrawal;
use alloy_eips::eip7685::Requests;
use alloy_primitives::{Address, B256, Bloom, Bytes, U256};
use alloy_rpc_types_engine::{
    ExecutionPayload, ExecutionPayloadV1, ExecutionPayloadV2, ExecutionPayloadV3,
    ExecutionPayloadV4,
};
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
    /// The body is not an encoded payload body.
    #[error("payload body of block {block_hash} does not decode: {source}")]
    Decode {
        /// The claimed block hash.
        block_hash: B256,
        /// The decoder's error.
        source: DecodeError,
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
        body: encode_body(body),
    }
}

/// Decodes a consensus payload's body and checks it carries the same binding fields.
pub fn to_body(payload: &Payload) -> Result<PayloadBody, PayloadBodyError> {
    let block_hash = payload.block_hash;
    let body = decode_body(&payload.body)
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

/// Version of the binary body encoding (the JSON bodies of earlier builds are refused).
pub const BODY_FORMAT: u8 = 2;
/// Most transactions (and requests) a body may list: far above what a block's gas allows; the
/// message size limit bounds the real count first.
const MAX_BODY_ITEMS: usize = 1 << 20;
const WHAT: &str = "payload body";

/// The V1 part, withdrawals and blob gas fields of a V3 payload.
type V3Parts<'a> = (&'a ExecutionPayloadV1, Option<&'a Vec<ElWithdrawal>>, Option<(u64, u64)>);

fn v3_parts(p: &ExecutionPayloadV3) -> V3Parts<'_> {
    (
        &p.payload_inner.payload_inner,
        Some(&p.payload_inner.withdrawals),
        Some((p.blob_gas_used, p.excess_blob_gas)),
    )
}

/// Encodes a payload body in the binary format.
pub fn encode_body(body: &PayloadBody) -> Vec<u8> {
    let mut w = Writer::new();
    w.u8(BODY_FORMAT);
    let ((v1, withdrawals, blob), v4) = match &body.execution_payload {
        ExecutionPayload::V1(p) => ((p, None, None), None),
        ExecutionPayload::V2(p) => ((&p.payload_inner, Some(&p.withdrawals), None), None),
        ExecutionPayload::V3(p) => (v3_parts(p), None),
        ExecutionPayload::V4(p) => {
            (v3_parts(&p.payload_inner), Some((&p.block_access_list, p.slot_number)))
        }
    };
    w.u8(match (withdrawals, blob, v4) {
        (None, _, _) => 1,
        (Some(_), None, _) => 2,
        (Some(_), Some(_), None) => 3,
        (Some(_), Some(_), Some(_)) => 4,
    });
    w.b256(&v1.parent_hash);
    w.raw(v1.fee_recipient.as_slice());
    w.b256(&v1.state_root);
    w.b256(&v1.receipts_root);
    w.raw(v1.logs_bloom.as_slice());
    w.b256(&v1.prev_randao);
    w.u64(v1.block_number);
    w.u64(v1.gas_limit);
    w.u64(v1.gas_used);
    w.u64(v1.timestamp);
    w.bytes(&v1.extra_data);
    w.raw(&v1.base_fee_per_gas.to_be_bytes::<32>());
    w.b256(&v1.block_hash);
    w.len(v1.transactions.len());
    for tx in &v1.transactions {
        w.bytes(tx);
    }
    if let Some(ws) = withdrawals {
        w.len(ws.len());
        for wd in ws {
            w.u64(wd.index);
            w.u64(wd.validator_index);
            w.raw(wd.address.as_slice());
            w.u64(wd.amount);
        }
    }
    if let Some((used, excess)) = blob {
        w.u64(used);
        w.u64(excess);
    }
    if let Some((access_list, slot)) = v4 {
        w.bytes(access_list);
        w.u64(slot);
    }
    w.option(body.execution_requests.as_ref(), |w, requests| {
        w.len(requests.len());
        for r in requests.iter() {
            w.bytes(r);
        }
    });
    w.finish()
}

/// Decodes a binary payload body (exactly: no trailing bytes).
pub fn decode_body(bytes: &[u8]) -> Result<PayloadBody, DecodeError> {
    let mut r = Reader::new(bytes);
    let format = r.u8(WHAT)?;
    if format != BODY_FORMAT {
        // Earlier builds stored and sent JSON (`{` = 0x7b).
        return Err(DecodeError::UnsupportedVersion { what: WHAT, version: format });
    }
    let version = r.u8(WHAT)?;
    if !(1..=4).contains(&version) {
        return Err(DecodeError::InvalidTag { what: "execution payload version", tag: version });
    }
    let parent_hash = r.b256(WHAT)?;
    let fee_recipient = Address::from(r.array::<20>(WHAT)?);
    let state_root = r.b256(WHAT)?;
    let receipts_root = r.b256(WHAT)?;
    let logs_bloom = Bloom::from(r.array::<256>(WHAT)?);
    let prev_randao = r.b256(WHAT)?;
    let block_number = r.u64(WHAT)?;
    let gas_limit = r.u64(WHAT)?;
    let gas_used = r.u64(WHAT)?;
    let timestamp = r.u64(WHAT)?;
    let extra_data = Bytes::from(r.bytes(WHAT)?);
    let base_fee_per_gas = U256::from_be_bytes(r.array::<32>(WHAT)?);
    let block_hash = r.b256(WHAT)?;
    let count = r.len(MAX_BODY_ITEMS, "transactions")?;
    let mut transactions = Vec::new();
    for _ in 0..count {
        transactions.push(Bytes::from(r.bytes("transaction")?));
    }
    let v1 = ExecutionPayloadV1 {
        parent_hash,
        fee_recipient,
        state_root,
        receipts_root,
        logs_bloom,
        prev_randao,
        block_number,
        gas_limit,
        gas_used,
        timestamp,
        extra_data,
        base_fee_per_gas,
        block_hash,
        transactions,
    };
    let execution_payload = if version == 1 {
        ExecutionPayload::V1(v1)
    } else {
        let count = r.len(MAX_BODY_ITEMS, "withdrawals")?;
        let mut withdrawals = Vec::new();
        for _ in 0..count {
            withdrawals.push(ElWithdrawal {
                index: r.u64("withdrawal")?,
                validator_index: r.u64("withdrawal")?,
                address: Address::from(r.array::<20>("withdrawal")?),
                amount: r.u64("withdrawal")?,
            });
        }
        let v2 = ExecutionPayloadV2 { payload_inner: v1, withdrawals };
        if version == 2 {
            ExecutionPayload::V2(v2)
        } else {
            let v3 = ExecutionPayloadV3 {
                payload_inner: v2,
                blob_gas_used: r.u64(WHAT)?,
                excess_blob_gas: r.u64(WHAT)?,
            };
            if version == 3 {
                ExecutionPayload::V3(v3)
            } else {
                ExecutionPayload::V4(ExecutionPayloadV4 {
                    payload_inner: v3,
                    block_access_list: Bytes::from(r.bytes(WHAT)?),
                    slot_number: r.u64(WHAT)?,
                })
            }
        }
    };
    let execution_requests = r.option(WHAT, |r| {
        let count = r.len(MAX_BODY_ITEMS, "execution requests")?;
        let mut requests = Vec::new();
        for _ in 0..count {
            requests.push(Bytes::from(r.bytes("execution request")?));
        }
        Ok(Requests::new(requests))
    })?;
    r.finish(WHAT)?;
    Ok(PayloadBody { execution_payload, execution_requests })
}
