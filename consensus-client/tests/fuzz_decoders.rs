//! Issue #18: the decoders of untrusted bytes are fuzzed. This replays the checked-in corpus of
//! every fuzz target (`tests/fuzz-corpus/<target>/`) and bounded mutations of it through the
//! same bodies the libFuzzer targets in `fuzz/` run (`scripts/fuzz` runs those on nightly).
//!
//! The `valid-*` seeds are written by the code's own encoders:
//! `cargo test -p tandem-cl --test fuzz_decoders -- --ignored write_seed_corpus` rewrites them.
#![allow(clippy::unwrap_used, reason = "test code")]

mod fuzz_targets;

use alloy_eips::eip4895::Withdrawal as ElWithdrawal;
use alloy_eips::eip7685::Requests;
use alloy_primitives::{Address, B256, Bloom, Bytes, U256};
use alloy_rpc_types_engine::{
    ExecutionPayload, ExecutionPayloadV1, ExecutionPayloadV2, ExecutionPayloadV3,
    ExecutionPayloadV4,
};
use fuzz_targets::{Outcome, TARGETS};
use tandem_cl::engine_client::ForkSchedule;
use tandem_cl::engine_client::payload::{PayloadBody, encode_body, to_consensus};
use tandem_cl::genesis::{ConsensusGenesis, GenesisValidator};
use tandem_cl::sync::{SyncRequest, SyncResponse};
use tandem_cl::types::{
    Block, Codec, CommittedBlock, Message, Payload, Proposal, QuorumCert, Signature, Timeout,
    TimeoutCert, Vote, Withdrawal,
};
use tandem_shared::fuzz_replay::{replay, write_seed};

const DIR: &str = env!("CARGO_MANIFEST_DIR");

fn body_of(name: &str) -> fuzz_targets::Body {
    TARGETS.iter().find(|(n, _)| *n == name).map(|(_, b)| *b).unwrap()
}

macro_rules! replay_tests {
    ($($target:ident),* $(,)?) => {$(
        #[test]
        fn $target() {
            let runs = replay(DIR, stringify!($target), body_of(stringify!($target)), Outcome::Accepted);
            assert!(runs > 0);
        }
    )*};
}

replay_tests!(message, codec, payload_body, sync_request, sync_response, genesis);

#[test]
fn every_target_has_a_replay_test_and_a_libfuzzer_binary() {
    let replayed = ["message", "codec", "payload_body", "sync_request", "sync_response", "genesis"];
    let manifest = std::fs::read_to_string(format!("{DIR}/fuzz/Cargo.toml")).unwrap();
    for (name, _) in TARGETS {
        assert!(replayed.contains(name), "target {name} has no replay test");
        assert!(manifest.contains(&format!("name = \"{name}\"")), "fuzz/Cargo.toml lacks {name}");
    }
}

// --- seeds ---------------------------------------------------------------------------------

fn sig(b: u8) -> Signature {
    Signature([b; 64])
}

fn qc(round: u64, signers: u16) -> QuorumCert {
    QuorumCert {
        block_id: B256::repeat_byte(round as u8),
        round,
        signatures: (0..signers).map(|i| (i, sig(i as u8 + 1))).collect(),
    }
}

fn tc() -> TimeoutCert {
    TimeoutCert { round: 8, high_qc: qc(6, 3), signatures: vec![(0, 6, sig(7)), (2, 5, sig(8))] }
}

fn v1() -> ExecutionPayloadV1 {
    ExecutionPayloadV1 {
        parent_hash: B256::repeat_byte(2),
        fee_recipient: Address::repeat_byte(0xfe),
        state_root: B256::repeat_byte(5),
        receipts_root: B256::repeat_byte(6),
        logs_bloom: Bloom::repeat_byte(0x11),
        prev_randao: B256::repeat_byte(3),
        block_number: 9,
        gas_limit: 60_000_000,
        gas_used: 21_000,
        timestamp: 1_700_000_000,
        extra_data: Bytes::from_static(b"tandem"),
        base_fee_per_gas: U256::from(7u64),
        block_hash: B256::repeat_byte(1),
        // Opaque to consensus: a legacy-looking and a typed transaction, and a blob-typed one
        // that does not decode (versioned_hashes refuses it).
        transactions: vec![
            Bytes::from_static(&[0xf8, 0x01, 0x80]),
            Bytes::from_static(&[0x02, 0xc0]),
            Bytes::from_static(&[0x03, 0xc1, 0x80]),
        ],
    }
}

fn bodies() -> Vec<(&'static str, PayloadBody)> {
    let v2 = ExecutionPayloadV2 {
        payload_inner: v1(),
        withdrawals: vec![ElWithdrawal {
            index: 1,
            validator_index: 2,
            address: Address::repeat_byte(9),
            amount: 3,
        }],
    };
    let v3 = ExecutionPayloadV3 {
        payload_inner: v2.clone(),
        blob_gas_used: 131_072,
        excess_blob_gas: 5,
    };
    let mut empty = v3.clone();
    empty.payload_inner.payload_inner.transactions.clear();
    empty.payload_inner.withdrawals.clear();
    empty.payload_inner.payload_inner.extra_data = Bytes::new();
    let requests = Requests::new(vec![Bytes::from_static(&[0, 1, 2]), Bytes::from_static(&[1, 7])]);
    vec![
        (
            "v1",
            PayloadBody { execution_payload: ExecutionPayload::V1(v1()), execution_requests: None },
        ),
        (
            "v2",
            PayloadBody { execution_payload: ExecutionPayload::V2(v2), execution_requests: None },
        ),
        (
            "v3",
            PayloadBody {
                execution_payload: ExecutionPayload::V3(v3.clone()),
                execution_requests: None,
            },
        ),
        (
            "v3-empty",
            PayloadBody {
                execution_payload: ExecutionPayload::V3(empty),
                execution_requests: Some(Requests::default()),
            },
        ),
        (
            "v3-requests",
            PayloadBody {
                execution_payload: ExecutionPayload::V3(v3.clone()),
                execution_requests: Some(requests.clone()),
            },
        ),
        (
            "v4",
            PayloadBody {
                execution_payload: ExecutionPayload::V4(ExecutionPayloadV4 {
                    payload_inner: v3,
                    block_access_list: Bytes::from_static(&[0xc0]),
                    slot_number: 99,
                }),
                execution_requests: Some(requests),
            },
        ),
    ]
}

fn payload() -> Payload {
    to_consensus(&bodies()[2].1, B256::repeat_byte(0xAA))
}

fn block(round: u64) -> Block {
    Block { round, parent_id: B256::repeat_byte(6), qc: qc(6, 3), payload: payload(), proposer: 1 }
}

fn small_block() -> Block {
    let mut p = payload();
    p.body = vec![];
    p.withdrawals = vec![Withdrawal { index: 1, validator_index: 2, address: [5; 20], amount: 6 }];
    Block { round: 2, parent_id: B256::ZERO, qc: qc(1, 1), payload: p, proposer: 0 }
}

fn vote() -> Vote {
    Vote { block_id: B256::repeat_byte(0xBB), round: 7, voter: 3, signature: sig(4) }
}

fn timeout(tc: Option<TimeoutCert>) -> Timeout {
    Timeout { round: 9, high_qc: qc(6, 3), high_tc: tc, signer: 2, signature: sig(5) }
}

fn messages() -> Vec<(&'static str, Message)> {
    vec![
        ("proposal", Message::Proposal(Proposal { block: block(7), tc: None, signature: sig(9) })),
        (
            "proposal-tc",
            Message::Proposal(Proposal { block: block(9), tc: Some(tc()), signature: sig(9) }),
        ),
        ("vote", Message::Vote(vote())),
        ("timeout", Message::Timeout(timeout(None))),
        ("timeout-tc", Message::Timeout(timeout(Some(tc())))),
        ("sync-info", Message::SyncInfo { high_qc: qc(6, 3), high_tc: None }),
        ("sync-info-tc", Message::SyncInfo { high_qc: qc(6, 3), high_tc: Some(tc()) }),
        ("block-request", Message::BlockRequest { id: B256::repeat_byte(1), count: 32 }),
        ("block-response", Message::BlockResponse { blocks: vec![block(7), small_block()] }),
        ("block-response-empty", Message::BlockResponse { blocks: vec![] }),
    ]
}

fn genesis_json(n: u8) -> String {
    let genesis = ConsensusGenesis {
        chain_id: 7_447,
        el_genesis_hash: B256::repeat_byte(0x10),
        el_genesis_timestamp: 1_700_000_000,
        el_genesis_mix_hash: B256::repeat_byte(0x20),
        forks: ForkSchedule::prague_at_genesis(),
        sub_second_blocks: n.is_multiple_of(2),
        validators: (0..n)
            .map(|i| GenesisValidator {
                name: format!("node{i}"),
                public_key: format!("0x{}", hex::encode([i + 1; 32])),
                voting_power: u64::from(i) + 1,
                peer_id: "12D3KooWDpJ7As7BWAwRMfu1VU2WCqNjvq387JEYKDBj4kx6nXTN".into(),
            })
            .collect(),
    };
    serde_json::to_string_pretty(&genesis).unwrap()
}

/// Writes the `valid-*` seeds (from the encoders) and the hand-made `malformed-*` ones.
#[test]
#[ignore = "rewrites tests/fuzz-corpus; run with --ignored after a deliberate encoding change"]
fn write_seed_corpus() {
    // message
    for (name, m) in messages() {
        write_seed(DIR, "message", &format!("valid-{name}"), &m.encode());
    }
    let vote_bytes = Message::Vote(vote()).encode();
    write_seed(DIR, "message", "malformed-format-1", &vote_bytes[1..]);
    write_seed(DIR, "message", "malformed-unknown-tag", &[0x82, 9]);
    let mut huge = vec![0x82, 5];
    huge.extend_from_slice(&u32::MAX.to_be_bytes());
    write_seed(DIR, "message", "malformed-huge-list", &huge);
    let mut trailing = vote_bytes.clone();
    trailing.push(0);
    write_seed(DIR, "message", "malformed-trailing", &trailing);

    // codec: a tag byte, then the value
    let values: Vec<(&str, u8, Vec<u8>)> = vec![
        ("block", 0, block(7).encode()),
        ("block-small", 0, small_block().encode()),
        (
            "proposal",
            1,
            Proposal { block: small_block(), tc: Some(tc()), signature: sig(1) }.encode(),
        ),
        ("vote", 2, vote().encode()),
        ("timeout", 3, timeout(Some(tc())).encode()),
        ("qc", 4, qc(3, 4).encode()),
        ("qc-empty", 4, qc(0, 0).encode()),
        ("tc", 5, tc().encode()),
        ("committed", 6, CommittedBlock { block: small_block(), qc: qc(2, 3) }.encode()),
        ("payload", 7, payload().encode()),
    ];
    for (name, tag, bytes) in &values {
        let mut input = vec![*tag];
        input.extend_from_slice(bytes);
        write_seed(DIR, "codec", &format!("valid-{name}"), &input);
    }
    write_seed(DIR, "codec", "malformed-empty", &[]);
    let mut bad_option = vec![3];
    bad_option.extend_from_slice(&timeout(None).encode());
    bad_option[1 + 8 + 32 + 8 + 4 + 3 * 66] = 2;
    write_seed(DIR, "codec", "malformed-option-tag", &bad_option);

    // payload_body
    for (name, body) in bodies() {
        write_seed(DIR, "payload_body", &format!("valid-{name}"), &encode_body(&body));
    }
    let json = serde_json::to_vec(&bodies()[2].1).unwrap();
    write_seed(DIR, "payload_body", "malformed-json-body", &json);
    let mut v5 = encode_body(&bodies()[0].1);
    v5[1] = 5;
    write_seed(DIR, "payload_body", "malformed-version-5", &v5);

    // sync_request / sync_response
    write_seed(DIR, "sync_request", "valid-status", &SyncRequest::Status.encode());
    for (i, (from, to)) in [(1, 256), (0, 0), (u64::MAX, u64::MAX), (10, 3)].iter().enumerate() {
        let r = SyncRequest::Blocks { from_height: *from, to_height: *to };
        write_seed(DIR, "sync_request", &format!("valid-blocks-{i}"), &r.encode());
    }
    write_seed(DIR, "sync_request", "malformed-format-1", &[1, 0]);
    write_seed(DIR, "sync_request", "malformed-tag", &[0x82, 2]);
    write_seed(DIR, "sync_request", "malformed-short", &[0x82, 1, 0, 0]);
    let committed = |round| CommittedBlock { block: block(round), qc: qc(round, 3) };
    let responses = [
        ("status", SyncResponse::Status { committed_height: 12 }),
        ("busy", SyncResponse::Busy),
        ("blocks", SyncResponse::Blocks(vec![committed(7), committed(8)])),
        ("blocks-empty", SyncResponse::Blocks(vec![])),
        (
            "blocks-small",
            SyncResponse::Blocks(vec![CommittedBlock { block: small_block(), qc: qc(2, 1) }]),
        ),
    ];
    for (name, r) in &responses {
        write_seed(DIR, "sync_response", &format!("valid-{name}"), &r.encode());
    }
    let mut too_many = vec![0x82, 1];
    too_many.extend_from_slice(&257u32.to_be_bytes());
    write_seed(DIR, "sync_response", "malformed-257-blocks", &too_many);
    let mut max = vec![0x82, 1];
    max.extend_from_slice(&256u32.to_be_bytes());
    write_seed(DIR, "sync_response", "malformed-256-blocks-none-sent", &max);
    write_seed(DIR, "sync_response", "malformed-tag", &[0x82, 3]);

    // genesis
    for n in [1u8, 4, 7] {
        write_seed(
            DIR,
            "genesis",
            &format!("valid-{n}-validators.json"),
            genesis_json(n).as_bytes(),
        );
    }
    let four = genesis_json(4);
    let cases = [
        ("malformed-no-validators.json", genesis_json(0)),
        (
            "malformed-duplicate-key.json",
            four.replace(&hex::encode([2u8; 32]), &hex::encode([1u8; 32])),
        ),
        ("malformed-zero-power.json", four.replace("\"votingPower\": 1", "\"votingPower\": 0")),
        (
            "malformed-power-overflow.json",
            four.replace("\"votingPower\": 1,", "\"votingPower\": 18446744073709551615,"),
        ),
        ("malformed-short-key.json", four.replace(&hex::encode([3u8; 32]), "0303")),
        ("malformed-unknown-field.json", four.replacen('{', "{\"extra\": 1,", 1)),
    ];
    for (name, text) in cases {
        write_seed(DIR, "genesis", name, text.as_bytes());
    }
}
