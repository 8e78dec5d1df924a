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
        "d25d6ea151440e70ea9dc1183e95bf5cdca0e547979d8a42c33547cf62e0d6d5",
        745,
    );
    check(
        Message::Vote(vote()),
        "c1068222c9d2ed104c31d0f4c687fbc3fe48aaf4d23e76609bc182046ee69153",
        108,
    );
    check(
        Message::Timeout(timeout()),
        "00fef7a92ad108d4b0c7768f953789dd4eb1c711ee01fbd2b0168f1d2978d2bc",
        515,
    );
    check(
        Message::SyncInfo { high_qc: qc(), high_tc: None },
        "1293f4c40fe26c040c131a154e452ba11de71bb3b102b41ce34413632608cfcc",
        179,
    );
    check(
        Message::BlockRequest { id: B256::repeat_byte(7), count: 32 },
        "72fa97927e5278d05c0b0279923d1a52942ee62d7c5eddca9eb1d9d821d8d513",
        36,
    );
    check(
        Message::BlockResponse { blocks: vec![block()] },
        "a07ffd8457eff5aafe76e6debfb542f7e61c25f088359b10a976e195a63aba0d",
        422,
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
        "fa7958292a35e66596a7b330e50a392ee3641c7e1719ee917fb620f25f93f517",
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
    assert!(matches!(Message::decode(&[0x82, 9]), Err(DecodeError::InvalidTag { tag: 9, .. })));
    // BlockResponse claiming 2^32-1 blocks
    assert!(matches!(
        Message::decode(&[0x82, 5, 0xff, 0xff, 0xff, 0xff]),
        Err(DecodeError::TooLong { .. })
    ));
    assert!(Message::decode(&[]).is_err());
}

/// Messages of the first wire format (no format byte, JSON payloads) and of unknown later
/// formats are refused by name, before anything else is read.
#[test]
fn messages_of_other_wire_formats_are_refused_by_name() {
    let current = Message::Vote(vote()).encode();
    assert_eq!(current[0], 0x80 | crate::types::codec::WIRE_FORMAT);
    // The same vote as format 1 wrote it: tag first.
    let old = &current[1..];
    let err = Message::decode(old).unwrap_err();
    assert_eq!(err, DecodeError::UnsupportedFormat { what: "message", found: 1, expected: 2 });
    assert!(err.to_string().contains("format 1"), "{err}");
    let mut future = current.clone();
    future[0] = 0x80 | 3;
    assert!(matches!(
        Message::decode(&future),
        Err(DecodeError::UnsupportedFormat { found: 3, .. })
    ));
}
