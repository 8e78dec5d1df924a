//! The fuzz bodies of `tandem-cl`'s decoders of untrusted bytes: one function per target, taking
//! the raw input. The corpus replay (`tests/fuzz_decoders.rs`, stable `cargo test`) and the
//! libFuzzer targets (`fuzz/`, nightly, `scripts/fuzz`) call the same functions.
//!
//! Each body panics when a property fails: the decoder must not panic, and what it accepts must
//! re-encode to exactly the input (the encodings are canonical) and decode again to the same
//! value. Lengths come from the input, so an unchecked one would allocate or loop for it: the
//! replay overwrites length fields with huge values and libFuzzer runs with a malloc limit.
#![allow(dead_code, clippy::unwrap_used, reason = "test code shared with the fuzz package")]

use alloy_primitives::B256;
use std::fmt::Debug;
use tandem_cl::engine_client::payload::{
    decode_body, encode_body, to_body, to_consensus, versioned_hashes,
};
use tandem_cl::genesis::ConsensusGenesis;
use tandem_cl::sync::{SyncRequest, SyncResponse};
use tandem_cl::types::{
    Block, Codec, CommittedBlock, Message, Payload, Proposal, QuorumCert, Timeout, TimeoutCert,
    Vote,
};

/// What a decoder made of an input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Decoded (and every property held).
    Accepted,
    /// Refused with an error.
    Rejected,
}

/// A fuzz body.
pub type Body = fn(&[u8]) -> Outcome;

/// Every target: its name (the corpus directory and the libFuzzer binary) and its body.
pub const TARGETS: &[(&str, Body)] = &[
    ("message", message),
    ("codec", codec),
    ("payload_body", payload_body),
    ("sync_request", sync_request),
    ("sync_response", sync_response),
    ("genesis", genesis),
];

/// Decodes `bytes` as `T`; an accepted value must re-encode to exactly `bytes` and decode again
/// to itself.
fn canonical<T: Codec + PartialEq + Debug>(bytes: &[u8]) -> Result<T, ()> {
    let Ok(value) = T::decode(bytes) else { return Err(()) };
    let encoded = value.encode();
    assert_eq!(encoded, bytes, "{}: the accepted input is not its value's encoding", T::NAME);
    assert_eq!(value.encoded_len(), bytes.len(), "{}: encoded_len", T::NAME);
    match T::decode(&encoded) {
        Ok(again) => assert_eq!(again, value, "{}: decode(encode(v)) != v", T::NAME),
        Err(e) => panic!("{}: its own encoding does not decode: {e}", T::NAME),
    }
    Ok(value)
}

fn outcome<T, E>(r: Result<T, E>) -> Outcome {
    if r.is_ok() { Outcome::Accepted } else { Outcome::Rejected }
}

/// A gossiped or directly sent consensus message (`Message::decode`, as the network hands it to
/// the node loop).
pub fn message(data: &[u8]) -> Outcome {
    let r = canonical::<Message>(data);
    if let Ok(message) = &r {
        let _ = message.kind();
        match message {
            Message::Proposal(p) => {
                let _ = (p.block.id(), p.block.payload.digest());
                let _ = to_body(&p.block.payload);
            }
            Message::BlockResponse { blocks } => {
                for block in blocks {
                    let _ = (block.id(), to_body(&block.payload));
                }
            }
            _ => {}
        }
    }
    outcome(r)
}

/// Every `Codec` type a message is built of, chosen by the first byte: each must round-trip on
/// its own (storage and sync hand them to `decode` separately).
pub fn codec(data: &[u8]) -> Outcome {
    let Some((&tag, rest)) = data.split_first() else { return Outcome::Rejected };
    match tag % 8 {
        0 => outcome(canonical::<Block>(rest).map(|b| b.id())),
        1 => outcome(canonical::<Proposal>(rest)),
        2 => outcome(canonical::<Vote>(rest)),
        3 => outcome(canonical::<Timeout>(rest)),
        4 => outcome(canonical::<QuorumCert>(rest)),
        5 => outcome(canonical::<TimeoutCert>(rest).map(|tc| tc.max_signed_qc_round())),
        6 => outcome(canonical::<CommittedBlock>(rest)),
        _ => outcome(canonical::<Payload>(rest).map(|p| p.digest())),
    }
}

/// The binary execution payload body a block carries (`engine_client::payload::decode_body`):
/// canonical, and through `to_consensus`/`to_body` back to the same body.
pub fn payload_body(data: &[u8]) -> Outcome {
    let Ok(body) = decode_body(data) else { return Outcome::Rejected };
    assert_eq!(encode_body(&body), data, "payload body: the accepted input is not its encoding");
    let root = B256::repeat_byte(0x42);
    let consensus = to_consensus(&body, root);
    assert_eq!(consensus.body, data, "payload body: to_consensus changed the body");
    match to_body(&consensus) {
        Ok(again) => assert_eq!(again, body, "payload body: to_body(to_consensus(b)) != b"),
        Err(e) => panic!("payload body: to_body refuses what to_consensus made: {e}"),
    }
    let _ = versioned_hashes(&body.execution_payload);
    Outcome::Accepted
}

/// A range-sync request as the sync server receives it.
pub fn sync_request(data: &[u8]) -> Outcome {
    outcome(canonical::<SyncRequest>(data))
}

/// A range-sync response as the sync driver receives it.
pub fn sync_response(data: &[u8]) -> Outcome {
    let r = canonical::<SyncResponse>(data);
    if let Ok(SyncResponse::Blocks(blocks)) = &r {
        for committed in blocks {
            let _ = (committed.block.id(), to_body(&committed.block.payload));
        }
    }
    outcome(r)
}

/// The consensus genesis file (`ConsensusGenesis::from_json_str`): what it accepts has a
/// validator set, a genesis block, and survives a JSON round trip unchanged.
pub fn genesis(data: &[u8]) -> Outcome {
    let Ok(text) = std::str::from_utf8(data) else { return Outcome::Rejected };
    let Ok(genesis) = ConsensusGenesis::from_json_str(text, "<fuzz>") else {
        return Outcome::Rejected;
    };
    let set = genesis.validator_set().unwrap();
    assert!(set.quorum_power() <= set.total_power(), "genesis: quorum above the total power");
    assert!(set.quorum_power() > set.total_power() / 3 * 2, "genesis: quorum not above 2/3");
    for i in 0..genesis.validators.len() {
        let key = genesis.public_key(i).unwrap();
        assert!(genesis.index_of(&key).is_some(), "genesis: validator {i} not found by its key");
    }
    let block = genesis.block();
    let _ = (block.id(), genesis.core_config());
    assert_eq!(Block::decode(&block.encode()).as_ref(), Ok(&block), "genesis block round trip");
    let json = serde_json::to_string(&genesis).unwrap();
    match ConsensusGenesis::from_json_str(&json, "<re-encoded>") {
        Ok(again) => assert_eq!(again, genesis, "genesis: JSON round trip changed it"),
        Err(e) => panic!("genesis: its own JSON is refused: {e}"),
    }
    Outcome::Accepted
}
