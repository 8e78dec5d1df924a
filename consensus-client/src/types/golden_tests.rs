//! Golden encodings: a change to any of these bytes is a change to what is stored or sent and
//! must be deliberate (bump a version, keep reading the old one).

use super::*;
use crate::core::{Evidence, EvidenceKind};
use crate::safety_rules::SafetyData;
use crate::storage::ChainMeta;
use alloy_primitives::B256;

fn sig(b: u8) -> Signature {
    Signature([b; 64])
}

fn qc() -> QuorumCert {
    QuorumCert {
        block_id: B256::repeat_byte(0xAA),
        round: 3,
        signatures: vec![(0, sig(1)), (2, sig(2))],
    }
}

fn tc() -> TimeoutCert {
    TimeoutCert { round: 4, high_qc: qc(), signatures: vec![(1, 3, sig(3))] }
}

fn payload() -> Payload {
    Payload {
        block_hash: B256::repeat_byte(0x01),
        parent_hash: B256::repeat_byte(0x02),
        number: 9,
        timestamp: 1_700_000_000,
        prev_randao: B256::repeat_byte(0x03),
        parent_beacon_block_root: B256::repeat_byte(0x04),
        withdrawals: vec![Withdrawal { index: 1, validator_index: 2, address: [5; 20], amount: 6 }],
        body: vec![0xDE, 0xAD],
    }
}

fn block() -> Block {
    Block {
        round: 5,
        parent_id: B256::repeat_byte(0xAA),
        qc: qc(),
        payload: payload(),
        proposer: 1,
    }
}

fn vote() -> Vote {
    Vote { block_id: B256::repeat_byte(0xBB), round: 5, voter: 3, signature: sig(4) }
}

fn timeout() -> Timeout {
    Timeout { round: 5, high_qc: qc(), high_tc: Some(tc()), signer: 2, signature: sig(5) }
}

fn proposal() -> Proposal {
    Proposal { block: block(), tc: Some(tc()), signature: sig(6) }
}

/// SHA-256 of the encoding, so the golden values stay one line each; the full bytes of the
/// small types are checked too.
fn digest(bytes: &[u8]) -> String {
    use sha2::{Digest, Sha256};
    hex::encode(Sha256::digest(bytes))
}

fn check<T: Codec + PartialEq + std::fmt::Debug>(
    value: T,
    expected_digest: &str,
    expected_len: usize,
) {
    let bytes = value.encode();
    assert_eq!(T::decode(&bytes).unwrap(), value, "{} round trip", T::NAME);
    assert_eq!(
        (digest(&bytes), bytes.len()),
        (expected_digest.to_string(), expected_len),
        "{} encoding changed",
        T::NAME
    );
    // strictness: trailing bytes and truncation are errors
    let mut longer = bytes.clone();
    longer.push(0);
    assert!(T::decode(&longer).is_err());
    assert!(T::decode(&bytes[..bytes.len() - 1]).is_err());
}

#[test]
fn vote_bytes() {
    let expected =
        format!("{}{}{}{}", "bb".repeat(32), "0000000000000005", "0003", "04".repeat(64));
    assert_eq!(hex::encode(vote().encode()), expected);
}

#[test]
fn qc_bytes() {
    let expected = format!(
        "{}{}{}{}{}{}{}",
        "aa".repeat(32),
        "0000000000000003",
        "00000002",
        "0000",
        "01".repeat(64),
        "0002",
        "02".repeat(64)
    );
    assert_eq!(hex::encode(qc().encode()), expected);
}

#[test]
fn signing_bytes() {
    assert_eq!(
        hex::encode(Vote::signing_bytes(7, &B256::repeat_byte(0xBB), 5)),
        format!(
            "{}{}{}{}",
            hex::encode(b"tandem/v1/vote"),
            "0000000000000007",
            "bb".repeat(32),
            "0000000000000005"
        )
    );
    assert_eq!(
        hex::encode(Timeout::signing_bytes(7, 5, 3)),
        format!(
            "{}{}{}{}",
            hex::encode(b"tandem/v1/timeout"),
            "0000000000000007",
            "0000000000000005",
            "0000000000000003"
        )
    );
    assert_eq!(
        hex::encode(Proposal::signing_bytes(7, &B256::repeat_byte(1))),
        format!("{}{}{}", hex::encode(b"tandem/v1/proposal"), "0000000000000007", "01".repeat(32))
    );
}

#[test]
fn golden_encodings() {
    check(payload(), "365514d0afa133f5ff547026846e1b453c79b8ceae2838b4da253070729d82dc", 198);
    check(block(), "cb7fed835b2424eb5a70e6f132bcaf3881bb7eba363d14bd4ca443e79235188f", 416);
    check(tc(), "b80864f02bd3a4276743905ec81552926e7007e9190d865ac503e371d44f3756", 262);
    check(timeout(), "9366638acff613ffb41fa40d57cb92727be84f727f267b9e6a8a0df133648e35", 513);
    check(proposal(), "545af15bc0ad2f2a63eebdfa8aff02c534a63ac7152d49df4dd61065007e7fa5", 743);
    check(
        Message::Proposal(proposal()),
        "1878488ee0dc6d5d041c114043fad6edc4c9d988820ce7c0a65eee3a6e17e04e",
        744,
    );
    check(
        Message::Vote(vote()),
        "b3d1998030e7ffbadfa1c08965f7030e765363eb1c6c8b844f9f5b62b4877316",
        107,
    );
    check(
        Message::Timeout(timeout()),
        "1b3ffb79e18c1017bc71eb4c65758bf4d7107cce53cceb3e370bacb0aae100fe",
        514,
    );
    check(
        Message::SyncInfo { high_qc: qc(), high_tc: None },
        "95bffb6d13ac3392eae82f5ab1f9d68e70c84f3ba0601c1b676062b31fd51710",
        178,
    );
    check(
        Message::BlockRequest { id: B256::repeat_byte(7), count: 32 },
        "b6f51870b476f10c6e3541c5ee9849cf8e3d9e0383a7902bd92328433d19e01d",
        35,
    );
    check(
        Message::BlockResponse { blocks: vec![block()] },
        "b625fdf09eb23608de002fa9f49f6d5a7bbd445c145802bf45a61b8695238a6b",
        421,
    );
    let mut safety = SafetyData::new(qc());
    safety.last_voted_round = 5;
    safety.preferred_round = 2;
    safety.one_chain_round = 3;
    safety.high_tc = Some(tc());
    safety.last_vote = Some(vote());
    safety.last_timeout = Some(timeout());
    safety.last_proposal = Some(proposal());
    check(safety, "0152cfc478455b9144765350ea58f20355988f404cf3368dc2eb7070f7a9c50d", 1829);
    check(
        ChainMeta { chain_id: 7, genesis_id: B256::repeat_byte(9) },
        "e379acd8d2ac746435c59eb72d2c1de03f05d17a1a04d9dc2e1c4d892c660e57",
        41,
    );
    check(
        Evidence {
            kind: EvidenceKind::Timeout,
            round: 5,
            signer: 1,
            first: (B256::repeat_byte(1), sig(1)),
            second: (B256::repeat_byte(2), sig(2)),
        },
        "f7031477331a7106bbed10744d07bfbf7fbec9a8bce2390312c117a136f2718d",
        203,
    );
}

#[test]
fn block_id_is_stable() {
    assert_eq!(
        block().id().to_string(),
        "0x172bb4812cfda4fa49ab6d793eea9364de4cefad5b474849d103e9e0951d4e80"
    );
}

#[test]
fn decoder_rejects_bad_tags_and_huge_lengths() {
    assert!(matches!(Message::decode(&[9]), Err(DecodeError::InvalidTag { tag: 9, .. })));
    // BlockResponse claiming 2^32-1 blocks
    assert!(matches!(
        Message::decode(&[5, 0xff, 0xff, 0xff, 0xff]),
        Err(DecodeError::TooLong { .. })
    ));
    assert!(Message::decode(&[]).is_err());
}
