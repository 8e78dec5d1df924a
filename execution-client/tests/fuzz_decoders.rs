//! Issue #18: the decoders of untrusted bytes are fuzzed. This replays the checked-in corpus of
//! every fuzz target (`tests/fuzz-corpus/<target>/`) and bounded mutations of it through the
//! same bodies the libFuzzer targets in `fuzz/` run (`scripts/fuzz` runs those on nightly).
//!
//! The `valid-*` seeds are written by the code's own encoders and signers:
//! `cargo test -p tandem-el --test fuzz_decoders -- --ignored write_seed_corpus` rewrites them.
#![allow(clippy::unwrap_used, reason = "test code")]

mod fuzz_targets;

use alloy_consensus::{
    Block, BlockBody, Header, SignableTransaction, TxEip1559, TxEip2930, TxEip4844, TxEip7702,
    TxEnvelope, TxLegacy,
};
use alloy_eips::eip2718::Encodable2718;
use alloy_eips::eip2930::{AccessList, AccessListItem};
use alloy_eips::eip4895::Withdrawal;
use alloy_eips::eip7702::{Authorization, SignedAuthorization};
use alloy_primitives::{Address, B256, Bytes, Signature, TxKind, U256};
use alloy_rpc_types_engine::{ExecutionPayloadV1, ExecutionPayloadV2, ExecutionPayloadV3};
use alloy_signer::SignerSync;
use alloy_signer_local::PrivateKeySigner;
use alloy_sol_types::{SolCall, SolValue};
use fuzz_targets::{CHAIN_ID, JWT_NOW, JWT_SECRET, Outcome, TARGETS, l1_record};
use tandem_el::l1::abi::IL1Core;
use tandem_el::l1::{
    L1_CORE_ADDRESS, READ_ASSET_INFO, READ_BEST_BID_ASK, READ_L1_BLOCK_NUMBER, READ_MARKET_INFO,
    READ_ORDER, READ_PERP_POSITION, READ_SPOT_BALANCE,
};
use tandem_el::p2p::encode_batch;
use tandem_shared::fuzz_replay::{replay, write_seed};

const DIR: &str = env!("CARGO_MANIFEST_DIR");

fn body_of(name: &str) -> fuzz_targets::Body {
    TARGETS.iter().find(|(n, _)| *n == name).map(|(_, b)| *b).unwrap()
}

macro_rules! replay_tests {
    ($($test:ident => $target:literal),* $(,)?) => {$(
        #[test]
        fn $test() {
            let runs = replay(DIR, $target, body_of($target), Outcome::Accepted);
            assert!(runs > 0);
        }
    )*};
}

replay_tests!(
    transaction => "transaction",
    gossip_batch => "gossip_batch",
    engine_payload => "engine_payload",
    chainspec => "chainspec",
    jwt => "jwt",
    l1_precompile => "l1_precompile",
);

#[test]
fn every_target_has_a_replay_test_and_a_libfuzzer_binary() {
    let replayed =
        ["transaction", "gossip_batch", "engine_payload", "chainspec", "jwt", "l1_precompile"];
    let manifest = std::fs::read_to_string(format!("{DIR}/fuzz/Cargo.toml")).unwrap();
    for (name, _) in TARGETS {
        assert!(replayed.contains(name), "target {name} has no replay test");
        assert!(manifest.contains(&format!("name = \"{name}\"")), "fuzz/Cargo.toml lacks {name}");
    }
}

// --- seeds ---------------------------------------------------------------------------------

const GWEI: u128 = 1_000_000_000;

fn key() -> PrivateKeySigner {
    PrivateKeySigner::from_bytes(&B256::repeat_byte(0x42)).unwrap()
}

fn sign<T: SignableTransaction<Signature>>(tx: T) -> TxEnvelope
where
    TxEnvelope: From<alloy_consensus::Signed<T>>,
{
    let signature = key().sign_hash_sync(&tx.signature_hash()).unwrap();
    tx.into_signed(signature).into()
}

fn access_list() -> AccessList {
    AccessList(vec![AccessListItem {
        address: Address::repeat_byte(0xcc),
        storage_keys: vec![B256::repeat_byte(1), B256::repeat_byte(2)],
    }])
}

/// One signed transaction of every type, and variants (create, calldata, no chain id).
fn transactions() -> Vec<(&'static str, TxEnvelope)> {
    let to = TxKind::Call(Address::repeat_byte(0xee));
    let legacy = TxLegacy {
        chain_id: Some(CHAIN_ID),
        nonce: 0,
        gas_price: 2 * GWEI,
        gas_limit: 21_000,
        to,
        value: U256::from(1),
        input: Bytes::new(),
    };
    let pre_eip155 = TxLegacy { chain_id: None, nonce: 1, ..legacy.clone() };
    let create = TxLegacy {
        to: TxKind::Create,
        gas_limit: 100_000,
        input: Bytes::from_static(&[0x60, 0x00, 0x60, 0x00, 0xf3]),
        ..legacy.clone()
    };
    let eip2930 = TxEip2930 {
        chain_id: CHAIN_ID,
        nonce: 2,
        gas_price: 2 * GWEI,
        gas_limit: 50_000,
        to,
        value: U256::ZERO,
        access_list: access_list(),
        input: Bytes::from_static(b"\x12\x34\x56\x78"),
    };
    let eip1559 = TxEip1559 {
        chain_id: CHAIN_ID,
        nonce: 3,
        gas_limit: 60_000,
        max_fee_per_gas: 3 * GWEI,
        max_priority_fee_per_gas: GWEI,
        to,
        value: U256::from(1_000_000u64),
        access_list: access_list(),
        input: Bytes::from(vec![0xab; 64]),
    };
    let eip4844 = TxEip4844 {
        chain_id: CHAIN_ID,
        nonce: 4,
        gas_limit: 21_000,
        max_fee_per_gas: 3 * GWEI,
        max_priority_fee_per_gas: GWEI,
        to: Address::repeat_byte(0xee),
        value: U256::ZERO,
        access_list: AccessList::default(),
        blob_versioned_hashes: vec![B256::with_last_byte(1), B256::with_last_byte(2)],
        max_fee_per_blob_gas: 1,
        input: Bytes::new(),
    };
    let auth = Authorization { chain_id: U256::from(CHAIN_ID), address: Address::ZERO, nonce: 6 };
    let auth_sig = key().sign_hash_sync(&auth.signature_hash()).unwrap();
    let eip7702 = TxEip7702 {
        chain_id: CHAIN_ID,
        nonce: 5,
        gas_limit: 100_000,
        max_fee_per_gas: 3 * GWEI,
        max_priority_fee_per_gas: GWEI,
        to: Address::repeat_byte(0xee),
        authorization_list: vec![SignedAuthorization::new_unchecked(
            auth,
            auth_sig.v() as u8,
            auth_sig.r(),
            auth_sig.s(),
        )],
        ..Default::default()
    };
    vec![
        ("legacy", sign(legacy)),
        ("legacy-pre-eip155", sign(pre_eip155)),
        ("legacy-create", sign(create)),
        ("eip2930", sign(eip2930)),
        ("eip1559", sign(eip1559)),
        ("eip4844", sign(eip4844)),
        ("eip7702", sign(eip7702)),
    ]
}

fn block(txs: Vec<TxEnvelope>, shape: u8) -> Block<TxEnvelope> {
    let header = Header {
        parent_hash: B256::repeat_byte(2),
        beneficiary: Address::repeat_byte(0xfe),
        state_root: B256::repeat_byte(5),
        receipts_root: B256::repeat_byte(6),
        mix_hash: B256::repeat_byte(3),
        number: 9,
        gas_limit: 60_000_000,
        gas_used: 21_000,
        timestamp: 1_700_000_000,
        extra_data: Bytes::from_static(b"tandem"),
        base_fee_per_gas: Some(7),
        ..Default::default()
    };
    let withdrawals = (shape >= 2).then(|| {
        vec![Withdrawal {
            index: 1,
            validator_index: 2,
            address: Address::repeat_byte(9),
            amount: 3,
        }]
        .into()
    });
    Block { header, body: BlockBody { transactions: txs, ommers: vec![], withdrawals } }
}

fn payload_json(txs: Vec<TxEnvelope>, shape: u8) -> Vec<u8> {
    let block = block(txs, shape);
    let hash = block.header.hash_slow();
    let value = match shape {
        1 => serde_json::to_value(ExecutionPayloadV1::from_block_unchecked(hash, &block)),
        2 => serde_json::to_value(ExecutionPayloadV2::from_block_unchecked(hash, &block)),
        _ => serde_json::to_value(ExecutionPayloadV3::from_block_unchecked(hash, &block)),
    };
    serde_json::to_vec_pretty(&value.unwrap()).unwrap()
}

fn genesis(config_extra: &str, alloc_extra: &str) -> String {
    format!(
        r#"{{
  "config": {{ "chainId": 7447, "londonBlock": 0, "shanghaiTime": 0, "cancunTime": 100, "pragueTime": 200{config_extra} }},
  "gasLimit": "0x1c9c380",
  "timestamp": "0x0",
  "difficulty": "0x0",
  "alloc": {{ "0x0000000000000000000000000000000000000001": {{ "balance": "0x1" }}{alloc_extra} }}
}}"#
    )
}

fn jwt_of(header: &str, claims: &str) -> String {
    use base64::Engine as _;
    let b64 = |s: &str| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(s);
    format!("{}.{}.c2lnbmF0dXJl", b64(header), b64(claims))
}

/// Writes the `valid-*` seeds (from the encoders and signers) and the hand-made `malformed-*`.
#[test]
#[ignore = "rewrites tests/fuzz-corpus; run with --ignored after a deliberate encoding change"]
fn write_seed_corpus() {
    let txs = transactions();
    // transaction
    for (name, tx) in &txs {
        write_seed(DIR, "transaction", &format!("valid-{name}"), &tx.encoded_2718());
    }
    let eip1559 = txs[4].1.encoded_2718();
    let mut trailing = eip1559.clone();
    trailing.push(0x80);
    write_seed(DIR, "transaction", "malformed-trailing", &trailing);
    write_seed(DIR, "transaction", "malformed-type-5", &[&[5u8][..], &eip1559[1..]].concat());
    write_seed(DIR, "transaction", "malformed-empty-list", &[0xc0]);
    write_seed(DIR, "transaction", "malformed-huge-list", &[0x02, 0xfb, 0xff, 0xff, 0xff, 0xff]);

    // gossip_batch
    let encoded: Vec<Bytes> = txs.iter().map(|(_, tx)| tx.encoded_2718().into()).collect();
    write_seed(DIR, "gossip_batch", "valid-all-types", &encode_batch(&encoded));
    for (i, one) in encoded.iter().enumerate().take(3) {
        write_seed(
            DIR,
            "gossip_batch",
            &format!("valid-single-{i}"),
            &encode_batch(std::slice::from_ref(one)),
        );
    }
    let many: Vec<Bytes> = std::iter::repeat_n(encoded[4].clone(), 256).collect();
    write_seed(DIR, "gossip_batch", "valid-256", &encode_batch(&many));
    let too_many: Vec<Bytes> = std::iter::repeat_n(encoded[0].clone(), 257).collect();
    write_seed(DIR, "gossip_batch", "malformed-257", &encode_batch(&too_many));
    write_seed(DIR, "gossip_batch", "malformed-empty", &encode_batch(&[]));
    write_seed(DIR, "gossip_batch", "malformed-list-element", &[0xc2, 0xc1, 0xc0]);
    write_seed(DIR, "gossip_batch", "malformed-string", &[0x83, 1, 2, 3]);

    // engine_payload
    let all: Vec<TxEnvelope> = txs.iter().map(|(_, tx)| tx.clone()).collect();
    let no_blob: Vec<TxEnvelope> =
        all.iter().filter(|tx| !matches!(tx, TxEnvelope::Eip4844(_))).cloned().collect();
    write_seed(DIR, "engine_payload", "valid-v1-empty.json", &payload_json(vec![], 1));
    write_seed(DIR, "engine_payload", "valid-v1.json", &payload_json(no_blob.clone(), 1));
    write_seed(DIR, "engine_payload", "valid-v2.json", &payload_json(no_blob, 2));
    write_seed(DIR, "engine_payload", "valid-v3-empty.json", &payload_json(vec![], 3));
    write_seed(DIR, "engine_payload", "valid-v3.json", &payload_json(all, 3));
    let v3 = String::from_utf8(payload_json(vec![], 3)).unwrap();
    let cases = [
        ("malformed-v3-half.json", v3.replace("\"excessBlobGas\"", "\"unknownField\"")),
        ("malformed-number.json", v3.replace("\"0x9\"", "\"0x10000000000000000\"")),
        (
            "malformed-bad-tx.json",
            v3.replace("\"transactions\": []", "\"transactions\": [\"0x02c0\"]"),
        ),
        ("malformed-not-object.json", "[1, 2, 3]".to_string()),
    ];
    for (name, text) in cases {
        write_seed(DIR, "engine_payload", name, text.as_bytes());
    }

    // chainspec
    let l1 = serde_json::to_string(&tandem_shared::l1_genesis::devnet_config(
        &[Address::repeat_byte(0xb1)],
        Address::repeat_byte(0xfe),
        Address::repeat_byte(0xbb),
    ))
    .unwrap();
    let specs = [
        ("valid-minimal.json", genesis("", "")),
        ("valid-sub-second.json", genesis(r#", "tandem": { "subSecondBlocks": true }"#, "")),
        ("valid-l1.json", genesis(&format!(r#", "tandem": {{ "l1": {l1} }}"#), "")),
        (
            "valid-blob-schedule.json",
            genesis(
                r#", "blobSchedule": { "cancun": { "target": 3, "max": 6, "baseFeeUpdateFraction": 3338477 }, "prague": { "target": 6, "max": 9, "baseFeeUpdateFraction": 5007716 } }"#,
                "",
            ),
        ),
        (
            "valid-alloc-code.json",
            genesis(
                "",
                r#", "0x00000000000000000000000000000000000000aa": { "balance": "0x0", "code": "0x6000", "storage": { "0x01": "0x02" }, "nonce": "0x1" }"#,
            ),
        ),
        ("malformed-chain-id-0.json", genesis("", "").replace("7447", "0")),
        ("malformed-fork-block.json", genesis(r#", "berlinBlock": 5"#, "")),
        ("malformed-no-alloc.json", genesis("", "").replace("\"alloc\"", "\"allocs\"")),
        ("malformed-l1.json", genesis(r#", "tandem": { "l1": { "assets": 7 } }"#, "")),
    ];
    for (name, text) in specs {
        write_seed(DIR, "chainspec", name, text.as_bytes());
    }

    // jwt
    let secret = tandem_shared::jwt::parse_secret(JWT_SECRET).unwrap();
    let token = tandem_shared::jwt::issue_token(&secret, JWT_NOW).unwrap();
    write_seed(DIR, "jwt", "valid-issued", token.as_bytes());
    let exp = format!(r#"{{"iat":{JWT_NOW},"exp":{}}}"#, JWT_NOW + 10);
    let tokens = [
        ("malformed-bearer", format!("Bearer {token}")),
        (
            "malformed-none-alg",
            jwt_of(r#"{"alg":"none","typ":"JWT"}"#, &format!(r#"{{"iat":{JWT_NOW}}}"#)),
        ),
        ("malformed-bad-signature", jwt_of(r#"{"alg":"HS256","typ":"JWT"}"#, &exp)),
        ("malformed-no-iat", jwt_of(r#"{"alg":"HS256"}"#, "{}")),
        ("malformed-two-parts", "eyJhbGciOiJIUzI1NiJ9.e30".to_string()),
        ("malformed-secret-text", JWT_SECRET.to_string()),
        ("malformed-header-not-json", "bm90IGpzb24.e30.c2ln".to_string()),
        ("malformed-rs256", jwt_of(r#"{"alg":"RS256"}"#, &exp)),
    ];
    for (name, text) in tokens {
        write_seed(DIR, "jwt", name, text.as_bytes());
    }

    // l1_precompile: sequences of calls
    let user = Address::repeat_byte(0x77);
    let usd = Address::with_last_byte(0xaa);
    let core = |call: Vec<u8>| l1_record(L1_CORE_ADDRESS, &call);
    let deposit_usd = core(
        IL1Core::depositCall { user, token: usd, amount: U256::from(1_000_000_000u64) }
            .abi_encode(),
    );
    let deposit_eth = core(
        IL1Core::depositCall { user, token: Address::ZERO, amount: U256::from(10u128.pow(19)) }
            .abi_encode(),
    );
    let order = |is_buy: bool, price: u128| {
        core(
            IL1Core::placeOrderCall {
                user,
                market: 0,
                isBuy: is_buy,
                price,
                size: 10u128.pow(15),
                tif: 0,
                cloid: 1,
            }
            .abi_encode(),
        )
    };
    let read_balance = l1_record(READ_SPOT_BALANCE, &(user, 1u32).abi_encode_params());
    let sequences: Vec<(&str, Vec<Vec<u8>>)> = vec![
        ("deposit-read", vec![deposit_usd.clone(), read_balance.clone()]),
        (
            "orders-cross",
            vec![
                deposit_usd.clone(),
                deposit_eth.clone(),
                order(true, 2_000_000_000),
                order(false, 2_000_000_000),
                l1_record(READ_BEST_BID_ASK, &0u32.abi_encode()),
                l1_record(READ_ORDER, &1u64.abi_encode()),
            ],
        ),
        (
            "cancel",
            vec![
                deposit_usd.clone(),
                order(true, 1_000_000_000),
                core(IL1Core::cancelOrderCall { user, market: 0, orderId: 1 }.abi_encode()),
                core(IL1Core::cancelByCloidCall { user, market: 0, cloid: 1 }.abi_encode()),
            ],
        ),
        (
            "perp",
            vec![
                deposit_usd.clone(),
                core(
                    IL1Core::perpTransferCall {
                        user,
                        amount: alloy_primitives::I256::try_from(500_000i64).unwrap(),
                    }
                    .abi_encode(),
                ),
                core(
                    IL1Core::postOraclePriceCall {
                        user: Address::with_last_byte(0xb1),
                        market: 1,
                        price: 60_000_000_000,
                    }
                    .abi_encode(),
                ),
                l1_record(READ_PERP_POSITION, &(user, 1u32).abi_encode_params()),
            ],
        ),
        (
            "withdraw",
            vec![
                deposit_usd.clone(),
                core(
                    IL1Core::withdrawCall { user, asset: 1, amount: U256::from(5u64) }.abi_encode(),
                ),
                read_balance.clone(),
            ],
        ),
        (
            "reads",
            vec![
                l1_record(READ_ASSET_INFO, &1u32.abi_encode()),
                l1_record(READ_MARKET_INFO, &0u32.abi_encode()),
                l1_record(READ_MARKET_INFO, &1u32.abi_encode()),
                l1_record(READ_L1_BLOCK_NUMBER, &[]),
            ],
        ),
    ];
    for (name, calls) in sequences {
        write_seed(DIR, "l1_precompile", &format!("valid-{name}"), &calls.concat());
    }
    let malformed: Vec<(&str, Vec<u8>)> = vec![
        ("malformed-end-of-block", core(IL1Core::endOfBlockCall {}.abi_encode())),
        ("malformed-unknown-selector", core(vec![0xde, 0xad, 0xbe, 0xef])),
        ("malformed-short-read", l1_record(READ_SPOT_BALANCE, &[0u8; 63])),
        ("malformed-address-word", l1_record(READ_SPOT_BALANCE, &[0xffu8; 64])),
    ];
    for (name, bytes) in malformed {
        write_seed(DIR, "l1_precompile", name, &bytes);
    }
}
