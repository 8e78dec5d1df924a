use super::*;
use crate::sim::{Keys, mock_payload, sim_genesis};
use crate::types::{PayloadAttributes, Signature, Withdrawal};

const CHAIN: u64 = 7;

fn qc_of(keys: &Keys, block_id: BlockId, round: u64, signers: &[usize]) -> QuorumCert {
    let msg = Vote::signing_bytes(CHAIN, &block_id, round);
    QuorumCert {
        block_id,
        round,
        signatures: signers.iter().map(|i| (*i as u16, keys.signer(*i).sign(&msg))).collect(),
    }
}

fn check_qc(keys: &Keys, qc: &QuorumCert) -> Result<(), Reject> {
    let (verifier, set) = keys.set();
    verify_qc(qc, &set, &*verifier, CHAIN, &sim_genesis().id())
}

#[test]
fn qc_verification_accepts_quorum_and_rejects_the_rest() {
    for ed in [false, true] {
        let keys = Keys::new(4, ed);
        let id = BlockId::repeat_byte(5);
        assert_eq!(check_qc(&keys, &qc_of(&keys, id, 3, &[0, 1, 2])), Ok(()));
        assert_eq!(check_qc(&keys, &qc_of(&keys, id, 3, &[0, 1, 2, 3])), Ok(()));
        // too few
        assert!(check_qc(&keys, &qc_of(&keys, id, 3, &[0, 1])).is_err());
        // repeated signer cannot make up the quorum
        assert!(check_qc(&keys, &qc_of(&keys, id, 3, &[0, 1, 1])).is_err());
        // unsorted
        assert!(check_qc(&keys, &qc_of(&keys, id, 3, &[1, 0, 2])).is_err());
        // unknown signer
        let mut qc = qc_of(&keys, id, 3, &[0, 1, 2]);
        qc.signatures[2].0 = 9;
        assert!(check_qc(&keys, &qc).is_err());
        // one bad signature
        let mut qc = qc_of(&keys, id, 3, &[0, 1, 2]);
        qc.signatures[1].1 = Signature([3; 64]);
        assert!(matches!(check_qc(&keys, &qc), Err(Reject::InvalidQc { reason: "signature", .. })));
        // signatures for another round
        let mut qc = qc_of(&keys, id, 3, &[0, 1, 2]);
        qc.round = 4;
        assert!(check_qc(&keys, &qc).is_err());
        // genesis QC exactly
        assert_eq!(check_qc(&keys, &QuorumCert::genesis(sim_genesis().id())), Ok(()));
        assert!(check_qc(&keys, &QuorumCert::genesis(id)).is_err());
    }
}

#[test]
fn tc_verification() {
    let keys = Keys::new(4, true);
    let (verifier, set) = keys.set();
    let g = sim_genesis().id();
    let qc2 = qc_of(&keys, BlockId::repeat_byte(2), 2, &[0, 1, 2]);
    let tc_of = |entries: &[(usize, u64)], high_qc: QuorumCert| TimeoutCert {
        round: 5,
        high_qc,
        signatures: entries
            .iter()
            .map(|(i, qr)| {
                (*i as u16, *qr, keys.signer(*i).sign(&Timeout::signing_bytes(CHAIN, 5, *qr)))
            })
            .collect(),
    };
    let ok = tc_of(&[(0, 2), (1, 0), (3, 2)], qc2.clone());
    assert_eq!(verify_tc(&ok, &set, &*verifier, CHAIN, &g), Ok(()));
    // high QC not the highest signed
    let bad = tc_of(&[(0, 2), (1, 0), (3, 2)], QuorumCert::genesis(g));
    assert!(verify_tc(&bad, &set, &*verifier, CHAIN, &g).is_err());
    // not enough
    assert!(
        verify_tc(&tc_of(&[(0, 2), (1, 0)], qc2.clone()), &set, &*verifier, CHAIN, &g).is_err()
    );
    // a signer lying about its QC round
    let mut lie = ok.clone();
    lie.signatures[1].1 = 2;
    assert!(verify_tc(&lie, &set, &*verifier, CHAIN, &g).is_err());
}

fn child(parent: &Block, round: u64, tweak: impl FnOnce(&mut PayloadAttributes)) -> Block {
    let pid = parent.id();
    let mut attrs = PayloadAttributes {
        parent_hash: parent.payload.block_hash,
        number: parent.payload.number + 1,
        timestamp: parent.payload.timestamp + 1,
        prev_randao: crate::types::payload::derive_prev_randao(&pid, round),
        parent_beacon_block_root: pid,
    };
    tweak(&mut attrs);
    Block {
        round,
        parent_id: pid,
        qc: QuorumCert::genesis(pid),
        payload: mock_payload(&attrs, vec![]),
        proposer: 0,
    }
}

fn bind(parent: &Block, b: &Block, now_s: u64, sub_second: bool) -> Result<(), Reject> {
    check_payload_binding(parent, &parent.id(), b, &b.id(), now_s * 1000, sub_second, 4)
}

#[test]
fn payload_binding_rules() {
    let g = sim_genesis();
    let now = g.payload.timestamp + 1;
    assert_eq!(bind(&g, &child(&g, 1, |_| {}), now, false), Ok(()));
    let reason = |b: Block, sub| match bind(&g, &b, now, sub) {
        Err(Reject::PayloadBinding { reason, .. }) => reason,
        other => panic!("{other:?}"),
    };
    assert!(reason(child(&g, 1, |a| a.parent_hash = B256Ext::one()), false).contains("parentHash"));
    assert!(reason(child(&g, 1, |a| a.number += 1), false).contains("number"));
    // equal timestamp: only with sub-second blocks
    let same_ts = child(&g, 1, |a| a.timestamp -= 1);
    assert!(reason(same_ts.clone(), false).contains("timestamp"));
    assert_eq!(bind(&g, &same_ts, now, true), Ok(()));
    assert!(reason(child(&g, 1, |a| a.timestamp -= 2), true).contains("timestamp"));
    // at most max_future_secs ahead of the local clock
    assert_eq!(bind(&g, &child(&g, 1, |a| a.timestamp = now + 4), now, false), Ok(()));
    assert!(reason(child(&g, 1, |a| a.timestamp = now + 5), false).contains("future"));
    assert!(reason(child(&g, 1, |a| a.prev_randao = B256Ext::one()), false).contains("prevRandao"));
    assert!(
        reason(child(&g, 1, |a| a.parent_beacon_block_root = B256Ext::one()), false)
            .contains("Beacon")
    );
    // prevRandao is bound to the round
    assert!(
        reason(
            child(&g, 2, |a| a.prev_randao = crate::types::payload::derive_prev_randao(&g.id(), 1)),
            false
        )
        .contains("prevRandao")
    );
    let mut w = child(&g, 1, |_| {});
    w.payload.withdrawals.push(Withdrawal {
        index: 0,
        validator_index: 0,
        address: [0; 20],
        amount: 1,
    });
    assert!(reason(w, false).contains("withdrawals"));
}

struct B256Ext;
impl B256Ext {
    fn one() -> B256 {
        B256::repeat_byte(1)
    }
}
use alloy_primitives::B256;
