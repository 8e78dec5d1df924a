//! Engine client against a mock EL: an HTTP server on an ephemeral loopback port that checks
//! every request's JWT and answers by method.

use super::*;
use crate::types::payload::derive_prev_randao;
use alloy_primitives::{Bloom, Bytes as ABytes, U256};
use alloy_rpc_types_engine::{ExecutionPayloadV2, ExecutionPayloadV3};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use std::sync::Mutex;
use std::sync::atomic::AtomicUsize;
use tokio::net::TcpListener;

type Handler = dyn Fn(&str, &Value) -> Result<Value, (i64, String)> + Send + Sync;

struct Mock {
    url: String,
    calls: Arc<Mutex<Vec<(String, Value)>>>,
    bad_tokens: Arc<AtomicUsize>,
}

fn secret() -> JwtSecret {
    JwtSecret::from_hex("42".repeat(32)).unwrap()
}

async fn mock(handler: Arc<Handler>) -> Mock {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let calls: Arc<Mutex<Vec<(String, Value)>>> = Arc::default();
    let bad_tokens = Arc::new(AtomicUsize::new(0));
    let (c, b) = (calls.clone(), bad_tokens.clone());
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else { return };
            let (handler, calls, bad) = (handler.clone(), c.clone(), b.clone());
            tokio::spawn(async move {
                let svc = service_fn(move |req: Request<hyper::body::Incoming>| {
                    let (handler, calls, bad) = (handler.clone(), calls.clone(), bad.clone());
                    async move {
                        let token = req
                            .headers()
                            .get("authorization")
                            .and_then(|v| v.to_str().ok())
                            .and_then(|v| v.strip_prefix("Bearer "))
                            .map(str::to_string)
                            .unwrap_or_default();
                        let ok = tandem_shared::jwt::verify_token(
                            &secret(),
                            &token,
                            tandem_shared::jwt::unix_now(),
                        )
                        .is_ok();
                        let body = req.into_body().collect().await.unwrap().to_bytes();
                        if !ok {
                            bad.fetch_add(1, Ordering::SeqCst);
                            return Ok::<_, std::convert::Infallible>(
                                Response::builder()
                                    .status(401)
                                    .body(Full::new(Bytes::from_static(b"bad jwt")))
                                    .unwrap(),
                            );
                        }
                        let req: Value = serde_json::from_slice(&body).unwrap();
                        let method = req["method"].as_str().unwrap().to_string();
                        calls.lock().unwrap().push((method.clone(), req["params"].clone()));
                        let reply = match handler(&method, &req["params"]) {
                            Ok(result) => json!({"jsonrpc":"2.0","id":req["id"],"result":result}),
                            Err((code, message)) => json!({"jsonrpc":"2.0","id":req["id"],
                                "error":{"code":code,"message":message}}),
                        };
                        Ok(Response::new(Full::new(Bytes::from(
                            serde_json::to_vec(&reply).unwrap(),
                        ))))
                    }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), svc)
                    .await;
            });
        }
    });
    Mock { url, calls, bad_tokens }
}

fn client(url: &str) -> EngineClient {
    let mut cfg = EngineConfig::new(url, secret(), ForkSchedule::prague_at_genesis());
    cfg.backoff_initial = Duration::from_millis(10);
    cfg.max_attempts = 3;
    EngineClient::new(cfg).unwrap()
}

fn exec_payload(number: u64, timestamp: u64, parent: B256, randao: B256) -> ExecutionPayloadV3 {
    ExecutionPayloadV3 {
        payload_inner: ExecutionPayloadV2 {
            payload_inner: ExecutionPayloadV1 {
                parent_hash: parent,
                fee_recipient: Address::repeat_byte(0xfe),
                state_root: B256::repeat_byte(1),
                receipts_root: B256::repeat_byte(2),
                logs_bloom: Bloom::ZERO,
                prev_randao: randao,
                block_number: number,
                gas_limit: 30_000_000,
                gas_used: 21_000,
                timestamp,
                extra_data: ABytes::new(),
                base_fee_per_gas: U256::from(7),
                block_hash: B256::repeat_byte(0xbb),
                transactions: vec![ABytes::from_static(&[0x02, 0xc0])],
            },
            withdrawals: vec![],
        },
        blob_gas_used: 0,
        excess_blob_gas: 0,
    }
}

fn valid() -> Value {
    json!({"status":"VALID","latestValidHash":B256::repeat_byte(0xbb),"validationError":null})
}

#[tokio::test]
async fn every_call_carries_a_fresh_valid_jwt_and_prague_versions() {
    let parent = B256::repeat_byte(0xaa);
    let beacon_root = B256::repeat_byte(0xcc);
    let randao = derive_prev_randao(&beacon_root, 5);
    let exec = exec_payload(1, 1_000, parent, randao);
    let exec_json = serde_json::to_value(&exec).unwrap();
    let handler: Arc<Handler> = Arc::new(move |method, _params| match method {
        "engine_exchangeCapabilities" => Ok(json!(EngineFork::all_methods())),
        "engine_forkchoiceUpdatedV3" => {
            Ok(json!({"payloadStatus":valid(),"payloadId":"0x0000000000000007"}))
        }
        "engine_getPayloadV4" => Ok(json!({
            "executionPayload": exec_json,
            "blockValue": "0x1",
            "blobsBundle": {"commitments":[],"proofs":[],"blobs":[]},
            "shouldOverrideBuilder": false,
            "executionRequests": ["0x01aa"]
        })),
        "engine_newPayloadV4" => Ok(valid()),
        other => Err((-32601, format!("method {other} not found"))),
    });
    let m = mock(handler).await;
    let c = client(&m.url);
    c.exchange_capabilities(0).await.unwrap();

    let attrs = crate::types::PayloadAttributes {
        parent_hash: parent,
        number: 1,
        timestamp: 1_000,
        prev_randao: randao,
        parent_beacon_block_root: beacon_root,
    };
    let engine_attrs = c.engine_attributes(&attrs, Address::repeat_byte(0xfe));
    let state = ForkchoiceState {
        head_block_hash: parent,
        safe_block_hash: parent,
        finalized_block_hash: parent,
    };
    let updated = c.forkchoice_updated(state, 999, Some(engine_attrs)).await.unwrap();
    let id = updated.payload_id.unwrap();
    let body = c.get_payload(id, 1_000).await.unwrap();
    let payload = to_consensus(&body, beacon_root);
    assert!(attrs.matches(&payload), "binding fields copied: {payload:?}");
    assert_eq!(payload.block_hash, B256::repeat_byte(0xbb));

    let status = c.new_payload(&payload).await.unwrap();
    assert_eq!(status.status, PayloadStatusEnum::Valid);
    assert_eq!(c.el_state(), ElState::Ready);
    assert_eq!(m.bad_tokens.load(Ordering::SeqCst), 0);

    let calls = m.calls.lock().unwrap().clone();
    let names: Vec<&str> = calls.iter().map(|(m, _)| m.as_str()).collect();
    assert_eq!(
        names,
        [
            "engine_exchangeCapabilities",
            "engine_forkchoiceUpdatedV3",
            "engine_getPayloadV4",
            "engine_newPayloadV4"
        ]
    );
    let fcu = &calls[1].1;
    assert_eq!(fcu[1]["withdrawals"], json!([]));
    assert_eq!(fcu[1]["parentBeaconBlockRoot"], json!(beacon_root));
    assert_eq!(fcu[1]["timestamp"], json!("0x3e8"));
    let np = &calls[3].1;
    assert_eq!(np.as_array().unwrap().len(), 4);
    assert_eq!(np[0]["blockHash"], json!(B256::repeat_byte(0xbb)));
    assert_eq!(np[1], json!([]));
    assert_eq!(np[2], json!(beacon_root));
    assert_eq!(np[3], json!(["0x01aa"]));
}

#[tokio::test]
async fn a_wrong_secret_is_not_retried_and_says_http_401() {
    let m = mock(Arc::new(|_, _| Ok(json!([])))).await;
    let mut cfg = EngineConfig::new(&m.url, JwtSecret::random(), ForkSchedule::default());
    cfg.backoff_initial = Duration::from_millis(10);
    let c = EngineClient::new(cfg).unwrap();
    let err = c.exchange_capabilities(0).await.unwrap_err();
    assert!(matches!(err, EngineError::Transport { attempts: 1, .. }), "{err}");
    assert!(err.to_string().contains("401"), "{err}");
    assert_eq!(m.bad_tokens.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn an_el_that_is_down_is_retried_then_reported() {
    // Bind then drop: the port is closed, connects are refused.
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let c = client(&format!("http://127.0.0.1:{port}"));
    let err = c.genesis_hash().await.unwrap_err();
    assert!(matches!(err, EngineError::Transport { attempts: 3, .. }), "{err}");
    assert_eq!(c.el_state(), ElState::Down);
}

#[tokio::test]
async fn genesis_mismatch_is_refused_and_invalid_is_an_answer() {
    let genesis = B256::repeat_byte(0x99);
    let handler: Arc<Handler> = Arc::new(move |method, params| match method {
        "eth_getBlockByNumber" if params[0] == "0x0" => {
            Ok(json!({"hash": genesis, "number": "0x0"}))
        }
        "engine_newPayloadV4" => Ok(json!({"status":"INVALID","latestValidHash":genesis,
            "validationError":"bad state root"})),
        "engine_forkchoiceUpdatedV3" => Ok(
            json!({"payloadStatus":{"status":"SYNCING","latestValidHash":null},"payloadId":null}),
        ),
        _ => Err((-32601, "not found".into())),
    });
    let m = mock(handler).await;
    let c = client(&m.url);
    c.check_genesis(genesis).await.unwrap();
    let err = c.check_genesis(B256::repeat_byte(1)).await.unwrap_err();
    assert!(matches!(err, EngineError::GenesisMismatch { found, .. } if found == genesis));

    let body = PayloadBody {
        execution_payload: ExecutionPayload::V3(exec_payload(1, 5, genesis, B256::ZERO)),
        execution_requests: Some(Default::default()),
    };
    let payload = to_consensus(&body, B256::ZERO);
    let status = c.new_payload(&payload).await.unwrap();
    assert!(matches!(status.status, PayloadStatusEnum::Invalid { .. }));
    let state = ForkchoiceState::default();
    let updated = c.forkchoice_updated(state, 5, None).await.unwrap();
    assert_eq!(updated.payload_status.status, PayloadStatusEnum::Syncing);
    assert_eq!(c.el_state(), ElState::Syncing);
    let rpc = c.latest_block().await.unwrap_err();
    assert!(matches!(rpc, EngineError::Rpc { code: -32601, .. }), "{rpc}");
}

#[tokio::test]
async fn missing_capabilities_are_named() {
    let m = mock(Arc::new(|_, _| Ok(json!(["engine_newPayloadV3"])))).await;
    let err = client(&m.url).exchange_capabilities(0).await.unwrap_err();
    let EngineError::MissingCapabilities { missing } = err else { panic!("{err}") };
    assert!(missing.contains(&"engine_newPayloadV4".to_string()));
    assert!(missing.contains(&"engine_getPayloadV4".to_string()));
}

#[test]
fn a_body_that_disagrees_with_the_binding_fields_is_refused() {
    let body = PayloadBody {
        execution_payload: ExecutionPayload::V3(exec_payload(3, 9, B256::ZERO, B256::ZERO)),
        execution_requests: None,
    };
    let mut payload = to_consensus(&body, B256::ZERO);
    assert_eq!(to_body(&payload).unwrap(), body);
    payload.number = 4;
    assert!(matches!(
        to_body(&payload),
        Err(PayloadBodyError::Mismatch { field: "blockNumber", .. })
    ));
    payload.body = b"junk".to_vec();
    assert!(matches!(to_body(&payload), Err(PayloadBodyError::Decode { .. })));
}

#[test]
fn urls_other_than_http_are_refused() {
    let cfg = EngineConfig::new("https://x:1", secret(), ForkSchedule::default());
    assert!(matches!(EngineClient::new(cfg), Err(EngineError::Config(_))));
    let cfg = EngineConfig::new("http://127.0.0.1:8551", secret(), ForkSchedule::default());
    assert!(EngineClient::new(cfg).is_ok());
}

/// The binary body holds every field of each payload version exactly, is refused when
/// truncated or in the JSON of earlier builds, and is much smaller than JSON.
#[test]
fn payload_bodies_round_trip_in_binary_and_json_bodies_are_refused() {
    use crate::engine_client::payload::{BODY_FORMAT, decode_body, encode_body};
    use alloy_rpc_types_engine::{ExecutionPayloadV1, ExecutionPayloadV4};
    let mut v3 = exec_payload(7, 11, B256::repeat_byte(3), B256::repeat_byte(4));
    v3.payload_inner.payload_inner.transactions =
        (0..50u8).map(|i| ABytes::from(vec![0x02, i, 0xff, 0x10])).collect();
    v3.payload_inner.payload_inner.extra_data = ABytes::from_static(b"tandem");
    v3.payload_inner.payload_inner.logs_bloom = Bloom::repeat_byte(0x5a);
    v3.payload_inner.withdrawals = vec![alloy_eips::eip4895::Withdrawal {
        index: 1,
        validator_index: 2,
        address: Address::repeat_byte(9),
        amount: 3,
    }];
    v3.blob_gas_used = 131_072;
    v3.excess_blob_gas = 5;
    let v1: ExecutionPayloadV1 = v3.payload_inner.payload_inner.clone();
    let bodies = [
        PayloadBody { execution_payload: ExecutionPayload::V1(v1), execution_requests: None },
        PayloadBody {
            execution_payload: ExecutionPayload::V2(v3.payload_inner.clone()),
            execution_requests: None,
        },
        PayloadBody {
            execution_payload: ExecutionPayload::V3(v3.clone()),
            execution_requests: Some(alloy_eips::eip7685::Requests::new(vec![
                ABytes::from_static(&[0x00, 1, 2]),
                ABytes::from_static(&[0x01]),
            ])),
        },
        PayloadBody {
            execution_payload: ExecutionPayload::V4(ExecutionPayloadV4 {
                payload_inner: v3.clone(),
                block_access_list: ABytes::from_static(&[0xc0]),
                slot_number: 99,
            }),
            execution_requests: Some(Default::default()),
        },
    ];
    for body in &bodies {
        let bytes = encode_body(body);
        assert_eq!(bytes[0], BODY_FORMAT);
        assert_eq!(&decode_body(&bytes).unwrap(), body);
        for cut in [1, bytes.len() / 2, bytes.len() - 1] {
            assert!(decode_body(&bytes[..cut]).is_err(), "truncated at {cut}");
        }
        let mut longer = bytes.clone();
        longer.push(0);
        assert!(decode_body(&longer).is_err(), "trailing byte");
        let json = serde_json::to_vec(body).unwrap();
        assert!(
            bytes.len() * 3 < json.len() * 2,
            "{} binary vs {} JSON bytes",
            bytes.len(),
            json.len()
        );
        assert!(matches!(
            decode_body(&json),
            Err(crate::types::codec::DecodeError::UnsupportedVersion { version: b'{', .. })
        ));
    }
}
