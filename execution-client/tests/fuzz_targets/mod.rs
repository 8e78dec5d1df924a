//! The fuzz bodies of `tandem-el`'s decoders of untrusted bytes (and of the shared chain spec and
//! JWT code it runs on untrusted input): one function per target, taking the raw input. The
//! corpus replay (`tests/fuzz_decoders.rs`, stable `cargo test`) and the libFuzzer targets
//! (`fuzz/`, nightly, `scripts/fuzz`) call the same functions.
//!
//! Each body panics when a property fails: no panic in the decoder, what is accepted re-encodes
//! to exactly the input where the encoding is canonical (RLP, EIP-2718) or to the same value
//! (JSON), and decodes again to itself.
#![allow(dead_code, clippy::unwrap_used, reason = "test code shared with the fuzz package")]

use alloy_consensus::{Block, TxEnvelope};
use alloy_eips::eip2718::{Decodable2718, Encodable2718};
use alloy_primitives::{Address, B256, Bytes, keccak256};
use alloy_rpc_types_engine::{
    CancunPayloadFields, ExecutionPayload, ExecutionPayloadSidecar, ExecutionPayloadV1,
    ExecutionPayloadV2, ExecutionPayloadV3, JwtSecret,
};
use serde_json::Value;
use std::sync::OnceLock;
use tandem_el::engine_api::{check_request, shapes};
use tandem_el::l1::precompile::{StoreCall, call_on_store};
use tandem_el::l1::store::MemStore;
use tandem_el::l1::{
    L1_CORE_ADDRESS, L1Config, READ_ACCOUNT_VALUE, READ_ASSET_INFO, READ_BEST_BID_ASK,
    READ_L1_BLOCK_NUMBER, READ_MARK_PRICE, READ_MARKET_INFO, READ_ORACLE_PRICE, READ_ORDER,
    READ_PERP_POSITION, READ_SPOT_BALANCE,
};
use tandem_el::p2p::{MAX_BATCH_TXS, decode_batch, encode_batch};
use tandem_el::storage::seal_block;
use tandem_el::txpool::senders::recover_sender;
use tandem_el::txpool::{PoolConfig, PoolContext, intrinsic_gas, upfront_cost, validate_stateless};
use tandem_shared::{ChainSpec, Fork, jwt};

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
    ("transaction", transaction),
    ("gossip_batch", gossip_batch),
    ("engine_payload", engine_payload),
    ("chainspec", chainspec),
    ("jwt", jwt_token),
    ("l1_precompile", l1_precompile),
];

/// The chain id the pool contexts use.
pub const CHAIN_ID: u64 = 7_447;

fn outcome<T, E>(r: Result<T, E>) -> Outcome {
    if r.is_ok() { Outcome::Accepted } else { Outcome::Rejected }
}

/// The pool's stateless checks of a decoded transaction under every fork.
fn pool_checks(tx: &TxEnvelope, len: usize) {
    let sender = recover_sender(tx).unwrap_or_default();
    for fork in [Fork::Paris, Fork::Shanghai, Fork::Cancun, Fork::Prague] {
        let ctx = PoolContext {
            chain_id: CHAIN_ID,
            fork,
            block_gas_limit: 60_000_000,
            base_fee: 7,
            head: B256::ZERO,
        };
        let _ = validate_stateless(tx, sender, len, &ctx, &PoolConfig::default());
        let _ = intrinsic_gas(tx, fork);
    }
    let _ = upfront_cost(tx);
}

/// A raw transaction as `eth_sendRawTransaction` (and the pool journal) decodes it: EIP-2718,
/// every type, nothing after it. What is accepted is its own canonical encoding, hashes to the
/// input's keccak, and goes through sender recovery and the pool's stateless checks.
pub fn transaction(data: &[u8]) -> Outcome {
    let mut rest = data;
    let Ok(tx) = TxEnvelope::decode_2718(&mut rest) else { return Outcome::Rejected };
    if !rest.is_empty() {
        return Outcome::Rejected;
    }
    assert_eq!(tx.encoded_2718(), data, "transaction: the accepted input is not its encoding");
    assert_eq!(tx.encode_2718_len(), data.len(), "transaction: encode_2718_len");
    assert_eq!(*tx.tx_hash(), keccak256(data), "transaction: hash is not keccak of the bytes");
    match TxEnvelope::decode_2718_exact(data) {
        Ok(again) => assert_eq!(again, tx, "transaction: decode_2718_exact disagrees"),
        Err(e) => panic!("transaction: decode_2718_exact refuses what decode_2718 took: {e}"),
    }
    pool_checks(&tx, data.len());
    Outcome::Accepted
}

/// A transaction gossip message (`p2p::decode_batch`): 1 to [`MAX_BATCH_TXS`] transactions,
/// and exactly what `encode_batch` makes of them.
pub fn gossip_batch(data: &[u8]) -> Outcome {
    let Ok(txs) = decode_batch(data) else { return Outcome::Rejected };
    assert!((1..=MAX_BATCH_TXS).contains(&txs.len()), "batch of {} accepted", txs.len());
    let encoded: Vec<Bytes> = txs.iter().map(|tx| tx.encoded_2718().into()).collect();
    assert_eq!(
        encode_batch(&encoded),
        data,
        "gossip batch: the accepted input is not its encoding"
    );
    for (tx, bytes) in txs.iter().zip(&encoded) {
        pool_checks(tx, bytes.len());
    }
    Outcome::Accepted
}

/// Parses `value` as the payload version `shape`.
fn parse_payload(value: &Value, shape: u8) -> Result<ExecutionPayload, serde_json::Error> {
    Ok(match shape {
        1 => ExecutionPayload::V1(serde_json::from_value::<ExecutionPayloadV1>(value.clone())?),
        2 => ExecutionPayload::V2(serde_json::from_value::<ExecutionPayloadV2>(value.clone())?),
        _ => ExecutionPayload::V3(serde_json::from_value::<ExecutionPayloadV3>(value.clone())?),
    })
}

/// The payload a block gives back (`getPayload`'s direction), in version `shape`.
fn payload_of(block: &Block<TxEnvelope>, hash: B256, shape: u8) -> ExecutionPayload {
    match shape {
        1 => ExecutionPayload::V1(ExecutionPayloadV1::from_block_unchecked(hash, block)),
        2 => ExecutionPayload::V2(ExecutionPayloadV2::from_block_unchecked(hash, block)),
        _ => ExecutionPayload::V3(ExecutionPayloadV3::from_block_unchecked(hash, block)),
    }
}

/// The payload object of `engine_newPayloadV1..V4` as the EL's Engine API server reads it: its
/// version judged from the keys (`engine_api::shapes`), then serde, then the conversion into a
/// block (`try_into_block_with_sidecar`) and the header hash. What is parsed serializes and
/// parses back to itself; a payload that converts into a block is what that block converts back
/// into, and the block hashes the same after the trip.
pub fn engine_payload(data: &[u8]) -> Outcome {
    let Ok(value) = serde_json::from_slice::<Value>(data) else { return Outcome::Rejected };
    let Some(shape) = value.as_object().and_then(shapes::payload_version) else {
        return Outcome::Rejected;
    };
    let Ok(payload) = parse_payload(&value, shape) else { return Outcome::Rejected };
    let json = serde_json::to_value(&payload).unwrap();
    match parse_payload(&json, shape) {
        Ok(again) => assert_eq!(again, payload, "engine payload: JSON round trip changed it"),
        Err(e) => panic!("engine payload: its own JSON does not parse: {e}"),
    }
    let sidecar = if shape == 3 {
        ExecutionPayloadSidecar::v3(CancunPayloadFields::new(B256::repeat_byte(0xbe), Vec::new()))
    } else {
        ExecutionPayloadSidecar::none()
    };
    let Ok(block) = payload.clone().try_into_block_with_sidecar::<TxEnvelope>(&sidecar) else {
        return Outcome::Rejected;
    };
    let block = seal_block(block);
    let claimed = payload.block_hash();
    let back = payload_of(block.inner(), claimed, shape);
    assert_eq!(back, payload, "engine payload: block -> payload differs from the payload");
    match back.try_into_block_with_sidecar::<TxEnvelope>(&sidecar) {
        Ok(again) => assert_eq!(
            again.header.hash_slow(),
            block.hash(),
            "engine payload: the block hashes differently after a trip"
        ),
        Err(e) => panic!("engine payload: the block's own payload does not convert: {e}"),
    }
    let _ = block.hash() == claimed;
    Outcome::Accepted
}

/// A geth `genesis.json` (`ChainSpec::from_json_str`, both clients' chain spec): what is accepted
/// has a genesis hash and fork schedule, its L1 section is read as the EL reads it, and the
/// genesis written back as JSON is accepted with the same hash.
pub fn chainspec(data: &[u8]) -> Outcome {
    let Ok(text) = std::str::from_utf8(data) else { return Outcome::Rejected };
    let Ok(spec) = ChainSpec::from_json_str(text, "<fuzz>") else { return Outcome::Rejected };
    let hash = spec.genesis_hash();
    for t in [0, 1, 1_700_000_000, u64::MAX / 2, u64::MAX] {
        let _ = (spec.fork_at(t), spec.blob_params_at(t));
    }
    if let Some(l1) = &spec.tandem().l1 {
        let _ = L1Config::from_value(l1);
    }
    let json = serde_json::to_string(spec.genesis()).unwrap();
    match ChainSpec::from_json_str(&json, "<re-encoded>") {
        Ok(again) => assert_eq!(again.genesis_hash(), hash, "chainspec: JSON round trip"),
        Err(e) => panic!("chainspec: the genesis written back is refused: {e}"),
    }
    Outcome::Accepted
}

/// The Engine API secret of the JWT target.
pub const JWT_SECRET: &str = "0x7365637265742d7365637265742d7365637265742d7365637265742d73656372";
/// The clock of the JWT target (seconds).
pub const JWT_NOW: u64 = 1_700_000_000;

/// A JWT as the Engine API server checks it (`jwt::verify_token`, and `check_request` on an
/// `Authorization` header), and a secret file's text (`jwt::parse_secret`). A token accepted
/// under the secret is refused under another one (no input forges the HMAC).
pub fn jwt_token(data: &[u8]) -> Outcome {
    let text = String::from_utf8_lossy(data);
    let _ = jwt::parse_secret(&text);
    let secret = jwt::parse_secret(JWT_SECRET).unwrap();
    let other = JwtSecret::from_hex([0x11u8; 32].map(|b| format!("{b:02x}")).concat()).unwrap();
    if let Ok(value) = http::HeaderValue::from_bytes(data) {
        let request =
            http::Request::builder().header(http::header::AUTHORIZATION, value).body(()).unwrap();
        let _ = check_request(&secret, &request);
    }
    let r = jwt::verify_token(&secret, &text, JWT_NOW);
    if r.is_ok() {
        assert!(
            jwt::verify_token(&other, &text, JWT_NOW).is_err(),
            "jwt: a token verifies under two secrets"
        );
    }
    outcome(r)
}

/// The L1 test chain: ETH (native) and USD (ERC-20 at 0xaa), an ETH/USD spot market (0) and a
/// BTC perp (1), three oracle publishers (0xb1..0xb3).
pub fn l1_config() -> &'static L1Config {
    static CONFIG: OnceLock<L1Config> = OnceLock::new();
    CONFIG.get_or_init(|| {
        let value = serde_json::json!({
            "assets": [
                { "symbol": "ETH", "decimals": 18 },
                { "symbol": "USD", "decimals": 6, "token": "0x00000000000000000000000000000000000000aa" }
            ],
            "markets": [
                { "kind": "spot", "symbol": "ETH/USD", "base": 0, "quote": 1,
                  "tickSize": "10000", "lotSize": "1000000000000000", "takerFeeBps": 5 },
                { "kind": "perp", "symbol": "BTC-PERP", "baseDecimals": 8, "tickSize": "1000000",
                  "lotSize": "100000", "takerFeeBps": 5, "maxLeverage": 20, "maintenanceMarginBps": 250 }
            ],
            "collateral": 1,
            "oraclePublishers": [
                "0x00000000000000000000000000000000000000b1",
                "0x00000000000000000000000000000000000000b2",
                "0x00000000000000000000000000000000000000b3"
            ],
            "oracleStalenessBlocks": 10,
            "fundingIntervalBlocks": 5,
            "feeRecipient": "0x00000000000000000000000000000000000000fe",
            "backstop": "0x00000000000000000000000000000000000000bb"
        });
        L1Config::from_value(&value).unwrap()
    })
}

/// The precompile addresses a selector byte picks from: the ten reads, then the core.
pub const L1_ADDRESSES: [Address; 11] = [
    READ_SPOT_BALANCE,
    READ_PERP_POSITION,
    READ_ACCOUNT_VALUE,
    READ_ORACLE_PRICE,
    READ_MARK_PRICE,
    READ_BEST_BID_ASK,
    READ_ASSET_INFO,
    READ_MARKET_INFO,
    READ_L1_BLOCK_NUMBER,
    READ_ORDER,
    L1_CORE_ADDRESS,
];

/// Most calls one input of the L1 target makes.
pub const MAX_L1_CALLS: usize = 32;

/// Splits the L1 target's input into calls: `[selector u8][length u16 BE][data]` records, at
/// most [`MAX_L1_CALLS`]; a record cut short takes what is left.
pub fn l1_calls(data: &[u8]) -> Vec<(Address, &[u8])> {
    let mut calls = Vec::new();
    let mut rest = data;
    while let [selector, hi, lo, body @ ..] = rest {
        if calls.len() == MAX_L1_CALLS {
            break;
        }
        let len = usize::from(u16::from_be_bytes([*hi, *lo])).min(body.len());
        let (call, next) = body.split_at(len);
        calls.push((L1_ADDRESSES[usize::from(*selector) % L1_ADDRESSES.len()], call));
        rest = next;
    }
    calls
}

/// One record of the L1 target's input (the seed writer).
pub fn l1_record(address: Address, data: &[u8]) -> Vec<u8> {
    let selector = L1_ADDRESSES.iter().position(|a| *a == address).unwrap() as u8;
    let mut out = vec![selector];
    out.extend_from_slice(&u16::try_from(data.len()).unwrap().to_be_bytes());
    out.extend_from_slice(data);
    out
}

/// Calls of the L1 exchange's precompiles with fuzzed input, in sequence on one store
/// (`precompile::call_on_store`: the same decoding and dispatch as inside the EVM, core actions
/// as the write contract sends them, metered): no panic, and no store failure (a read that
/// writes, or a failure of a store that cannot fail, is an engine bug).
pub fn l1_precompile(data: &[u8]) -> Outcome {
    let calls = l1_calls(data);
    if calls.is_empty() {
        return Outcome::Rejected;
    }
    let config = l1_config();
    let mut store = MemStore::default();
    let mut any_output = false;
    for (i, (address, input)) in calls.iter().enumerate() {
        let block = 10 + i as u64 / 4;
        match call_on_store(&mut store, config, block, *address, input, 5_000_000) {
            Some(StoreCall::Fatal(e)) => panic!("l1 precompile: call {i} to {address}: fatal {e}"),
            Some(StoreCall::Output(_)) => any_output = true,
            Some(StoreCall::Revert(_) | StoreCall::OutOfGas) => {}
            None => panic!("l1 precompile: {address} is not an L1 precompile"),
        }
    }
    if any_output { Outcome::Accepted } else { Outcome::Rejected }
}
