use super::*;
use crate::types::{PublicKey, Signature, Validator};

fn set(powers: &[u64]) -> ValidatorSet {
    ValidatorSet::new(
        powers
            .iter()
            .enumerate()
            .map(|(i, p)| Validator { public_key: PublicKey([i as u8; 32]), voting_power: *p })
            .collect(),
    )
    .unwrap()
}

fn vote(voter: u16, block: u8, round: u64) -> Vote {
    Vote {
        block_id: BlockId::repeat_byte(block),
        round,
        voter,
        signature: Signature([voter as u8; 64]),
    }
}

fn qc(round: u64) -> QuorumCert {
    QuorumCert { block_id: BlockId::repeat_byte(round as u8), round, signatures: vec![] }
}

fn timeout(signer: u16, round: u64, qc_round: u64) -> Timeout {
    Timeout {
        round,
        high_qc: qc(qc_round),
        high_tc: None,
        signer,
        signature: Signature([signer as u8; 64]),
    }
}

#[test]
fn qc_forms_exactly_at_quorum_once_with_sorted_signers() {
    let vs = set(&[1, 1, 1, 1]);
    let mut agg = VoteAggregator::default();
    assert_eq!(agg.add(vote(3, 1, 5), &vs), VoteOutcome::Added);
    assert_eq!(agg.add(vote(0, 1, 5), &vs), VoteOutcome::Added);
    let VoteOutcome::Certified(qc) = agg.add(vote(2, 1, 5), &vs) else { panic!("no QC") };
    assert_eq!(qc.round, 5);
    assert_eq!(qc.signatures.iter().map(|s| s.0).collect::<Vec<_>>(), vec![0, 2, 3]);
    // a fourth vote does not form a second QC
    assert_eq!(agg.add(vote(1, 1, 5), &vs), VoteOutcome::Added);
}

#[test]
fn votes_for_different_blocks_do_not_add_up() {
    let vs = set(&[1, 1, 1, 1]);
    let mut agg = VoteAggregator::default();
    agg.add(vote(0, 1, 5), &vs);
    agg.add(vote(1, 1, 5), &vs);
    assert_eq!(agg.add(vote(2, 2, 5), &vs), VoteOutcome::Added);
    assert_eq!(agg.add(vote(3, 2, 5), &vs), VoteOutcome::Added);
}

#[test]
fn weighted_quorum_needs_more_than_two_thirds_of_power() {
    let vs = set(&[4, 3, 2, 1]); // quorum 7
    let mut agg = VoteAggregator::default();
    assert_eq!(agg.add(vote(0, 1, 1), &vs), VoteOutcome::Added); // 4
    assert_eq!(agg.add(vote(2, 1, 1), &vs), VoteOutcome::Added); // 6
    assert!(matches!(agg.add(vote(3, 1, 1), &vs), VoteOutcome::Certified(_))); // 7
}

#[test]
fn duplicate_and_equivocating_votes() {
    let vs = set(&[1, 1, 1, 1]);
    let mut agg = VoteAggregator::default();
    agg.add(vote(0, 1, 5), &vs);
    assert!(agg.is_duplicate(&vote(0, 1, 5)));
    assert_eq!(agg.add(vote(0, 1, 5), &vs), VoteOutcome::Duplicate);
    assert_eq!(agg.add(vote(0, 2, 5), &vs), VoteOutcome::Equivocation(Box::new(vote(0, 1, 5))));
    // the equivocating vote never counts
    agg.add(vote(1, 2, 5), &vs);
    assert_eq!(agg.add(vote(2, 2, 5), &vs), VoteOutcome::Added);
    agg.prune_below(6);
    assert!(!agg.is_duplicate(&vote(0, 1, 5)));
}

#[test]
fn tc_forms_at_quorum_with_the_highest_qc() {
    let vs = set(&[1, 1, 1, 1]);
    let mut agg = TimeoutAggregator::default();
    assert_eq!(agg.add(timeout(0, 9, 4), &vs), TimeoutOutcome::Added { power: 1 });
    assert_eq!(agg.add(timeout(0, 9, 4), &vs), TimeoutOutcome::Duplicate);
    assert_eq!(agg.add(timeout(2, 9, 7), &vs), TimeoutOutcome::Added { power: 2 });
    assert_eq!(agg.power(9), 2);
    let TimeoutOutcome::Certified(tc) = agg.add(timeout(1, 9, 6), &vs) else { panic!("no TC") };
    assert_eq!(tc.round, 9);
    assert_eq!(tc.high_qc.round, 7);
    assert_eq!(tc.max_signed_qc_round(), 7);
    assert_eq!(
        tc.signatures.iter().map(|s| (s.0, s.1)).collect::<Vec<_>>(),
        vec![(0, 4), (1, 6), (2, 7)]
    );
    assert_eq!(agg.add(timeout(3, 9, 7), &vs), TimeoutOutcome::Added { power: 4 });
    // a conflicting timeout from the same signer
    assert!(matches!(agg.add(timeout(2, 9, 5), &vs), TimeoutOutcome::Equivocation(_)));
}
