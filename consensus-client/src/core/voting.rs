//! What a replica checks before it votes: certificates (signatures and quorum), and that the
//! execution payload is bound to the consensus chain.
//!
//! Payload binding, against the parent block P of block B proposed in round r:
//! `parentHash == P.payload.blockHash`, `number == P.payload.number + 1`,
//! `timestamp ≥ P.payload.timestamp` (strictly greater unless sub-second blocks are enabled),
//! `timestamp ≤ local clock + max_future_secs`, `prevRandao == derive_prev_randao(P.id, r)`,
//! `parentBeaconBlockRoot == P.id`, no withdrawals. Validity of the payload itself (state root,
//! transactions) is the executor's call (`Action::ValidatePayload`). The voting rule itself
//! lives in [`crate::safety_rules`].

use super::Reject;
use crate::crypto::{BatchItem, Verifier};
use crate::types::payload::derive_prev_randao;
use crate::types::{
    Block, BlockId, QuorumCert, Timeout, TimeoutCert, ValidatorIndex, ValidatorSet, Vote,
};

/// Checks a QC: genesis QC exactly, or signers strictly increasing and known, quorum power, and
/// every signature valid (batch-verified).
pub fn verify_qc(
    qc: &QuorumCert,
    validators: &ValidatorSet,
    verifier: &dyn Verifier,
    chain_id: u64,
    genesis_id: &BlockId,
) -> Result<(), Reject> {
    if qc.round == 0 {
        return if qc.block_id == *genesis_id && qc.signatures.is_empty() {
            Ok(())
        } else {
            Err(Reject::InvalidQc { round: 0, block_id: qc.block_id, reason: "bad genesis QC" })
        };
    }
    let bad = |reason| Reject::InvalidQc { round: qc.round, block_id: qc.block_id, reason };
    check_signers(qc.signatures.iter().map(|(i, _)| *i), validators).map_err(bad)?;
    let msg = Vote::signing_bytes(chain_id, &qc.block_id, qc.round);
    let items: Vec<BatchItem<'_>> =
        qc.signatures.iter().map(|(i, s)| (*i, msg.as_slice(), s)).collect();
    verifier.verify_batch(&items).map_err(|_| bad("signature"))
}

/// Checks a TC: signers strictly increasing and known, quorum power, its QC is the highest
/// signed one and valid, and every timeout signature valid (batch-verified).
pub fn verify_tc(
    tc: &TimeoutCert,
    validators: &ValidatorSet,
    verifier: &dyn Verifier,
    chain_id: u64,
    genesis_id: &BlockId,
) -> Result<(), Reject> {
    let bad = |reason| Reject::InvalidTc { round: tc.round, reason };
    if tc.round == 0 {
        return Err(bad("round 0"));
    }
    check_signers(tc.signatures.iter().map(|(i, _, _)| *i), validators).map_err(bad)?;
    if tc.high_qc.round != tc.max_signed_qc_round() {
        return Err(bad("high QC is not the highest signed"));
    }
    if tc.signatures.iter().any(|(_, qr, _)| *qr >= tc.round) {
        return Err(bad("signed QC round not below the TC round"));
    }
    verify_qc(&tc.high_qc, validators, verifier, chain_id, genesis_id)?;
    let msgs: Vec<Vec<u8>> = tc
        .signatures
        .iter()
        .map(|(_, qr, _)| Timeout::signing_bytes(chain_id, tc.round, *qr))
        .collect();
    let items: Vec<BatchItem<'_>> =
        tc.signatures.iter().zip(&msgs).map(|((i, _, s), m)| (*i, m.as_slice(), s)).collect();
    verifier.verify_batch(&items).map_err(|_| bad("signature"))
}

fn check_signers(
    signers: impl Iterator<Item = ValidatorIndex>,
    validators: &ValidatorSet,
) -> Result<(), &'static str> {
    let mut last: Option<ValidatorIndex> = None;
    let mut power: u64 = 0;
    for i in signers {
        if last.is_some_and(|l| i <= l) {
            return Err("signers not strictly increasing");
        }
        if validators.get(i).is_none() {
            return Err("unknown signer");
        }
        power += validators.power(i);
        last = Some(i);
    }
    if power < validators.quorum_power() {
        return Err("not enough voting power");
    }
    Ok(())
}

/// Checks the payload binding of `block` to its `parent` (see the module docs).
pub fn check_payload_binding(
    parent: &Block,
    parent_id: &BlockId,
    block: &Block,
    block_id: &BlockId,
    now_ms: u64,
    sub_second_blocks: bool,
    max_future_secs: u64,
) -> Result<(), Reject> {
    let p = &block.payload;
    let bad = |reason| Reject::PayloadBinding { round: block.round, block_id: *block_id, reason };
    if p.parent_hash != parent.payload.block_hash {
        return Err(bad("parentHash is not the parent's payload hash"));
    }
    if Some(p.number) != parent.payload.number.checked_add(1) {
        return Err(bad("number is not the parent's + 1"));
    }
    let min_ts = parent.payload.timestamp + u64::from(!sub_second_blocks);
    if p.timestamp < min_ts {
        return Err(bad("timestamp not after the parent's"));
    }
    if p.timestamp > now_ms / 1000 + max_future_secs {
        return Err(bad("timestamp too far in the future"));
    }
    if p.prev_randao != derive_prev_randao(parent_id, block.round) {
        return Err(bad("prevRandao is not the derived value"));
    }
    if p.parent_beacon_block_root != *parent_id {
        return Err(bad("parentBeaconBlockRoot is not the parent block id"));
    }
    if !p.withdrawals.is_empty() {
        return Err(bad("withdrawals not empty"));
    }
    Ok(())
}

#[cfg(test)]
mod tests;
