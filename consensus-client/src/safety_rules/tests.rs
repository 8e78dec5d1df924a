use super::*;
use crate::crypto::test_scheme::HashSigner;
use crate::types::{Payload, Signature};
use alloy_primitives::B256;

fn qc(round: Round) -> QuorumCert {
    QuorumCert { block_id: B256::repeat_byte(round as u8), round, signatures: vec![] }
}

fn block(round: Round, qc_round: Round, body: u8) -> Block {
    Block {
        round,
        parent_id: B256::repeat_byte(qc_round as u8),
        qc: qc(qc_round),
        payload: Payload {
            block_hash: B256::ZERO,
            parent_hash: B256::ZERO,
            number: 1,
            timestamp: 0,
            prev_randao: B256::ZERO,
            parent_beacon_block_root: B256::ZERO,
            withdrawals: vec![],
            body: vec![body],
        },
        proposer: 0,
    }
}

fn tc(round: Round, qc_rounds: &[Round]) -> TimeoutCert {
    let high = qc_rounds.iter().copied().max().unwrap_or(0);
    TimeoutCert {
        round,
        high_qc: qc(high),
        signatures: qc_rounds
            .iter()
            .enumerate()
            .map(|(i, r)| (i as u16, *r, Signature([0; 64])))
            .collect(),
    }
}

fn rules() -> (SafetyRules, HashSigner) {
    (SafetyRules::new(SafetyData::new(qc(0)), 7), HashSigner { secret: [1; 32] })
}

#[test]
fn votes_once_per_round_and_only_increasing() {
    let (mut sr, s) = rules();
    let b = block(1, 0, 0);
    let v = sr.vote(&b, b.id(), None, 0, &s).unwrap();
    assert_eq!((v.round, sr.data().last_voted_round), (1, 1));
    assert_eq!(sr.data().last_vote.as_ref(), Some(&v));
    // a different block in the same round
    let b2 = block(1, 0, 1);
    assert_eq!(
        sr.vote(&b2, b2.id(), None, 0, &s),
        Err(SafetyError::AlreadyVoted { round: 1, last_voted_round: 1 })
    );
    let b3 = block(2, 1, 0);
    assert!(sr.vote(&b3, b3.id(), None, 0, &s).is_ok());
}

#[test]
fn vote_needs_qc_of_previous_round_or_tc() {
    let (mut sr, s) = rules();
    let b = block(5, 3, 0);
    assert!(matches!(sr.vote(&b, b.id(), None, 0, &s), Err(SafetyError::NotJustified { .. })));
    // TC of the wrong round
    assert!(matches!(
        sr.vote(&b, b.id(), Some(&tc(3, &[3, 3, 3])), 0, &s),
        Err(SafetyError::NotJustified { .. })
    ));
    // TC of round 4 whose highest QC is 4: block extends QC 3 → unsafe (could fork a certified block)
    assert_eq!(
        sr.vote(&b, b.id(), Some(&tc(4, &[3, 4, 2])), 0, &s),
        Err(SafetyError::BelowTcHighQc { round: 5, qc_round: 3, tc_qc_round: 4 })
    );
    assert!(sr.vote(&b, b.id(), Some(&tc(4, &[3, 1, 2])), 0, &s).is_ok());
}

#[test]
fn preferred_round_blocks_votes_below_the_lock() {
    let (mut sr, s) = rules();
    // observing QC of round 6 whose block's parent is round 5: lock at 5
    assert!(sr.observe_qc(&qc(6), Some(5)));
    assert_eq!((sr.data().preferred_round, sr.data().one_chain_round), (5, 6));
    assert!(!sr.observe_qc(&qc(6), Some(5)));
    let b = block(8, 4, 0);
    assert!(matches!(
        sr.vote(&b, b.id(), Some(&tc(7, &[4, 4, 4])), 0, &s),
        Err(SafetyError::BelowPreferredRound { .. })
    ));
}

#[test]
fn timeout_raises_last_voted_round_and_is_never_re_signed() {
    let (mut sr, s) = rules();
    let t = sr.timeout(1, &qc(0), None, 0, &s).unwrap();
    assert_eq!(sr.data().last_voted_round, 1);
    // no vote in a round after timing it out
    let b = block(1, 0, 0);
    assert!(matches!(sr.vote(&b, b.id(), None, 0, &s), Err(SafetyError::AlreadyVoted { .. })));
    // asking again returns the stored timeout, identical
    assert_eq!(sr.timeout(1, &qc(0), None, 0, &s).unwrap(), t);
    // a timeout after voting in the same round is allowed
    let (mut sr, s) = rules();
    let b = block(1, 0, 0);
    sr.vote(&b, b.id(), None, 0, &s).unwrap();
    assert!(sr.timeout(1, &qc(0), None, 0, &s).is_ok());
    // but not for an older round than the last vote
    let (mut sr, s) = rules();
    sr.vote(&block(1, 0, 0), block(1, 0, 0).id(), None, 0, &s).unwrap();
    sr.vote(&block(2, 1, 0), block(2, 1, 0).id(), None, 0, &s).unwrap();
    assert!(matches!(sr.timeout(1, &qc(0), None, 0, &s), Err(SafetyError::TimeoutTooOld { .. })));
}

#[test]
fn timeout_must_carry_the_highest_qc_and_follow_it() {
    let (mut sr, s) = rules();
    sr.observe_qc(&qc(4), None);
    assert!(matches!(
        sr.timeout(6, &qc(3), Some(&tc(5, &[3, 3, 3])), 0, &s),
        Err(SafetyError::StaleTimeoutQc { .. })
    ));
    assert!(matches!(sr.timeout(7, &qc(4), None, 0, &s), Err(SafetyError::NotJustified { .. })));
    assert!(sr.timeout(5, &qc(4), None, 0, &s).is_ok());
}

#[test]
fn proposes_once_per_round() {
    let (mut sr, s) = rules();
    let b = block(3, 2, 0);
    sr.propose(b.clone(), b.id(), None, &s).unwrap();
    let b2 = block(3, 2, 1);
    assert_eq!(
        sr.propose(b2.clone(), b2.id(), None, &s),
        Err(SafetyError::AlreadyProposed { round: 3, last_proposed_round: 3 })
    );
}

#[test]
fn safety_data_round_trips_and_rejects_unknown_versions() {
    let (mut sr, s) = rules();
    let b = block(1, 0, 0);
    sr.vote(&b, b.id(), None, 0, &s).unwrap();
    sr.timeout(1, &qc(0), Some(&tc(0, &[])), 0, &s).unwrap();
    let bytes = sr.data().encode();
    assert_eq!(SafetyData::decode(&bytes).unwrap(), *sr.data());
    let mut v2 = bytes.clone();
    v2[0] = 2;
    assert!(matches!(
        SafetyData::decode(&v2),
        Err(DecodeError::UnsupportedVersion { version: 2, .. })
    ));
    assert!(SafetyData::decode(&bytes[..bytes.len() - 1]).is_err());
}

/// A vote records the QC of the block it votes for, so a later timeout cannot carry an older
/// high QC even if the caller never passed that QC to `observe_qc`.
#[test]
fn a_vote_records_its_blocks_qc() {
    let (mut sr, s) = rules();
    let b = block(6, 5, 0);
    sr.vote(&b, b.id(), Some(&tc(5, &[4, 5, 3])), 0, &s).unwrap();
    assert_eq!((sr.data().one_chain_round, sr.data().high_qc.round), (5, 5));
    assert_eq!(
        sr.timeout(7, &qc(4), Some(&tc(6, &[4, 4, 4])), 0, &s),
        Err(SafetyError::StaleTimeoutQc { round: 7, qc_round: 4, one_chain_round: 5 })
    );
    assert!(sr.timeout(7, &qc(5), Some(&tc(6, &[5, 4, 4])), 0, &s).is_ok());
}
