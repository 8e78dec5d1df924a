//! Engine API conformance, written from ethereum/execution-apis `src/engine/`, against the real
//! `tandem-el node` process over HTTP with JWT: auth, error codes, statuses, build → get → new →
//! fcU cycles across Shanghai, Cancun and Prague, re-orgs, and restart after kill -9.

#![allow(clippy::unwrap_used)]

use std::{
    io::{Read, Write},
    net::{SocketAddr, TcpListener, TcpStream},
    path::{Path, PathBuf},
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use alloy_rpc_types_engine::JwtSecret;
use serde_json::{Value, json};
use tandem_e2e::{ChildGuard, binary};
use tandem_shared::jwt;

const ZERO: &str = "0x0000000000000000000000000000000000000000000000000000000000000000";

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|a| a.port()).unwrap()
}

/// A raw HTTP/1.1 POST; returns (status code, body).
fn post(addr: SocketAddr, body: &str, token: Option<&str>) -> (u16, String) {
    let mut stream = TcpStream::connect(addr).unwrap();
    stream.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let auth = token.map(|t| format!("Authorization: Bearer {t}\r\n")).unwrap_or_default();
    let request = format!(
        "POST / HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\n{auth}Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(request.as_bytes()).unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    let status = response.split_whitespace().nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
    let body = response.split("\r\n\r\n").nth(1).unwrap_or_default().to_string();
    // Chunked responses: take the JSON between the first '{' and the last '}'.
    let body = match (body.find(['{', '[']), body.rfind(['}', ']'])) {
        (Some(a), Some(b)) if b >= a => body[a..=b].to_string(),
        _ => body,
    };
    (status, body)
}

struct El {
    _child: ChildGuard,
    addr: SocketAddr,
    secret: JwtSecret,
    datadir: PathBuf,
}

fn genesis(dir: &Path, cancun: u64, prague: u64) -> PathBuf {
    genesis_with(dir, cancun, prague, false)
}

fn genesis_with(dir: &Path, cancun: u64, prague: u64, sub_second: bool) -> PathBuf {
    let mut alloc =
        serde_json::to_value(tandem_shared::system_contracts::prague_system_contracts()).unwrap();
    alloc["0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266"] =
        json!({ "balance": "0xd3c21bcecceda1000000" });
    let genesis = json!({
        "config": { "chainId": 1337, "shanghaiTime": 0, "cancunTime": cancun, "pragueTime": prague,
                    "depositContractAddress": tandem_shared::system_contracts::DEPOSIT_CONTRACT,
                    "tandem": { "subSecondBlocks": sub_second } },
        "gasLimit": "0x1c9c380", "difficulty": "0x0", "timestamp": "0x0", "baseFeePerGas": "0x3b9aca00",
        "alloc": alloc
    });
    let path = dir.join("genesis.json");
    std::fs::write(&path, genesis.to_string()).unwrap();
    path
}

impl El {
    fn start(chain: &Path, datadir: &Path) -> Self {
        let port = free_port();
        let child = ChildGuard::spawn(
            Command::new(binary("tandem-el").unwrap())
                .args(["node", "--chain"])
                .arg(chain)
                .arg("--datadir")
                .arg(datadir)
                .args([
                    "--authrpc.port",
                    &port.to_string(),
                    "--engine.persistence-threshold",
                    "1",
                    "--p2p.port",
                    "0",
                ])
                .stdout(Stdio::null())
                .stderr(Stdio::null()),
        )
        .unwrap();
        let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
        let deadline = Instant::now() + Duration::from_secs(30);
        let secret_path = datadir.join("jwt.hex");
        loop {
            if secret_path.exists() && TcpStream::connect(addr).is_ok() {
                break;
            }
            assert!(Instant::now() < deadline, "tandem-el did not start");
            std::thread::sleep(Duration::from_millis(50));
        }
        let secret = jwt::read_secret(&secret_path).unwrap();
        Self { _child: child, addr, secret, datadir: datadir.to_path_buf() }
    }

    fn token(&self) -> String {
        jwt::issue_token(&self.secret, jwt::unix_now()).unwrap()
    }

    fn raw(&self, method: &str, params: Value) -> Value {
        let body =
            json!({ "jsonrpc": "2.0", "id": 1, "method": method, "params": params }).to_string();
        let (status, body) = post(self.addr, &body, Some(&self.token()));
        assert_eq!(status, 200, "{method}: HTTP {status}: {body}");
        serde_json::from_str(&body).unwrap_or_else(|e| panic!("{method}: {e}: {body}"))
    }

    fn call(&self, method: &str, params: Value) -> Value {
        let response = self.raw(method, params);
        assert!(response.get("error").is_none(), "{method}: {response}");
        response["result"].clone()
    }

    fn error_code(&self, method: &str, params: Value) -> i64 {
        let response = self.raw(method, params);
        response["error"]["code"]
            .as_i64()
            .unwrap_or_else(|| panic!("{method}: expected an error, got {response}"))
    }

    fn head(&self) -> Value {
        self.call("eth_getBlockByNumber", json!(["latest", false]))
    }

    /// fcU with attributes on `head`, then getPayload: the payload response.
    fn build(&self, head: &str, timestamp: u64, fcu_version: u8, get_version: u8) -> Value {
        let attrs = json!({
            "timestamp": format!("{timestamp:#x}"),
            "prevRandao": ZERO,
            "suggestedFeeRecipient": "0x00000000000000000000000000000000000000fe",
            "withdrawals": [],
            "parentBeaconBlockRoot": ZERO,
        });
        let result = self.call(
            &format!("engine_forkchoiceUpdatedV{fcu_version}"),
            json!([{ "headBlockHash": head, "safeBlockHash": ZERO, "finalizedBlockHash": ZERO }, attrs]),
        );
        assert_eq!(result["payloadStatus"]["status"], "VALID", "{result}");
        let id = result["payloadId"].clone();
        assert!(id.is_string(), "{result}");
        self.call(&format!("engine_getPayloadV{get_version}"), json!([id]))
    }

    /// newPayloadV4 then fcU to it; returns the block hash.
    fn import_v4(&self, response: &Value, finalize: bool) -> String {
        let payload = &response["executionPayload"];
        let status = self
            .call("engine_newPayloadV4", json!([payload, [], ZERO, response["executionRequests"]]));
        assert_eq!(status["status"], "VALID", "{status}");
        let hash = payload["blockHash"].as_str().unwrap().to_string();
        assert_eq!(status["latestValidHash"], hash);
        assert!(status["validationError"].is_null());
        let finalized = if finalize { hash.clone() } else { ZERO.to_string() };
        let fcu = self.call(
            "engine_forkchoiceUpdatedV3",
            json!([{ "headBlockHash": hash, "safeBlockHash": finalized, "finalizedBlockHash": finalized }, null]),
        );
        assert_eq!(fcu["payloadStatus"]["status"], "VALID", "{fcu}");
        assert!(fcu["payloadId"].is_null());
        hash
    }
}

fn ts(head: &Value) -> u64 {
    u64::from_str_radix(head["timestamp"].as_str().unwrap().trim_start_matches("0x"), 16).unwrap()
}

#[test]
fn jwt_authentication() {
    let dir = tempfile::tempdir().unwrap();
    let el = El::start(&genesis(dir.path(), 0, 0), &dir.path().join("el"));
    let body = r#"{"jsonrpc":"2.0","id":1,"method":"eth_chainId","params":[]}"#;
    assert_eq!(post(el.addr, body, Some(&el.token())).0, 200);
    assert_eq!(post(el.addr, body, None).0, 401, "missing token");
    let wrong = jwt::issue_token(&JwtSecret::random(), jwt::unix_now()).unwrap();
    assert_eq!(post(el.addr, body, Some(&wrong)).0, 401, "wrong secret");
    let stale = jwt::issue_token(&el.secret, jwt::unix_now() - 120).unwrap();
    assert_eq!(post(el.addr, body, Some(&stale)).0, 401, "stale iat");
    let future = jwt::issue_token(&el.secret, jwt::unix_now() + 120).unwrap();
    assert_eq!(post(el.addr, body, Some(&future)).0, 401, "future iat");
    assert_eq!(post(el.addr, body, Some("not.a.jwt")).0, 401, "malformed");
    let claims = format!("{{\"iat\":{}}}", jwt::unix_now());
    let none = format!("eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0.{}.", base64_url(claims.as_bytes()));
    assert_eq!(post(el.addr, body, Some(&none)).0, 401, "alg none");
}

/// Unpadded base64url, enough for the test's `alg: none` token.
fn base64_url(bytes: &[u8]) -> String {
    const TABLE: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let b = [chunk[0], *chunk.get(1).unwrap_or(&0), *chunk.get(2).unwrap_or(&0)];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..=chunk.len() {
            out.push(TABLE[((n >> (18 - 6 * i)) & 63) as usize] as char);
        }
    }
    out
}

#[test]
fn prague_cycles_statuses_and_error_codes() {
    let dir = tempfile::tempdir().unwrap();
    let el = El::start(&genesis(dir.path(), 0, 0), &dir.path().join("el"));
    let caps = el.call("engine_exchangeCapabilities", json!([["engine_newPayloadV4"]]));
    assert!(caps.as_array().unwrap().contains(&json!("engine_forkchoiceUpdatedV3")));
    let version = el.call(
        "engine_getClientVersionV1",
        json!([{ "code": "LH", "name": "Lighthouse", "version": "v1", "commit": "0x01020304" }]),
    );
    assert_eq!(version[0]["code"], "TD");

    // The eth_ subset the spec requires on this port, and nothing else.
    let code =
        el.call("eth_getCode", json!(["0x000F3df6D732807Ef1319fB7B8bB8522d0Beac02", "latest"]));
    assert!(code.as_str().unwrap().len() > 10, "beacon roots contract code: {code}");
    assert_eq!(
        el.call("eth_getLogs", json!([{ "fromBlock": "0x0", "toBlock": "latest" }])),
        json!([])
    );
    assert_eq!(
        el.call(
            "eth_call",
            json!([{ "to": "0x0000000000000000000000000000000000000001" }, "latest"])
        ),
        "0x"
    );
    assert_eq!(el.error_code("eth_sendRawTransaction", json!(["0xdeadbeef"])), -32000);
    assert_eq!(
        el.error_code(
            "eth_getBalance",
            json!(["0x0000000000000000000000000000000000000001", "latest"])
        ),
        -32601
    );
    assert_eq!(el.error_code("debug_traceCall", json!([{}, "latest", {}])), -32601);

    let genesis_block = el.head();
    let genesis_hash = genesis_block["hash"].as_str().unwrap().to_string();
    let t0 = ts(&genesis_block);

    // build → get → new → fcU, twice; the second finalizes.
    let first = el.build(&genesis_hash, t0 + 1, 3, 4);
    assert_eq!(first["blobsBundle"], json!({ "commitments": [], "proofs": [], "blobs": [] }));
    assert_eq!(first["shouldOverrideBuilder"], false);
    assert!(first["blockValue"].is_string());
    let keys: Vec<&str> =
        first["executionPayload"].as_object().unwrap().keys().map(String::as_str).collect();
    assert_eq!(keys.len(), 17, "exactly the ExecutionPayloadV3 fields: {keys:?}");
    let h1 = el.import_v4(&first, false);
    let second = el.build(&h1, t0 + 2, 3, 4);
    let h2 = el.import_v4(&second, true);
    assert_eq!(el.call("eth_blockNumber", json!([])), "0x2");
    assert_eq!(el.call("eth_getBlockByNumber", json!(["finalized", false]))["hash"], h2);

    // Known payload: VALID again without re-execution.
    let again = el.call(
        "engine_newPayloadV4",
        json!([second["executionPayload"], [], ZERO, second["executionRequests"]]),
    );
    assert_eq!(again["status"], "VALID");

    // Wrong structure versions and forks.
    let payload = &second["executionPayload"];
    let mut v2 = payload.clone();
    v2.as_object_mut().unwrap().remove("blobGasUsed");
    v2.as_object_mut().unwrap().remove("excessBlobGas");
    assert_eq!(el.error_code("engine_newPayloadV4", json!([v2, [], ZERO, []])), -32602);
    let mut extra = payload.clone();
    extra["slotNumber"] = json!("0x1");
    assert_eq!(el.error_code("engine_newPayloadV4", json!([extra, [], ZERO, []])), -32602);
    assert_eq!(el.error_code("engine_newPayloadV4", json!([payload, null, ZERO, []])), -32602);
    assert_eq!(el.error_code("engine_newPayloadV4", json!([payload, [], ZERO, ["0x01"]])), -32602);
    assert_eq!(
        el.error_code("engine_newPayloadV4", json!([payload, [], ZERO, ["0x0101", "0x0001"]])),
        -32602
    );
    assert_eq!(
        el.error_code("engine_newPayloadV3", json!([payload, [], ZERO])),
        -38005,
        "V3 is Cancun only"
    );
    assert_eq!(el.error_code("engine_newPayloadV2", json!([v2])), -38005);
    assert_eq!(el.error_code("engine_getPayloadV4", json!(["0x0000000000000001"])), -38001);
    assert_eq!(el.error_code("engine_getPayloadBodiesByRangeV1", json!(["0x0", "0x1"])), -32602);
    assert_eq!(el.error_code("engine_getPayloadBodiesByRangeV1", json!(["0x1", "0x401"])), -38004);
    assert_eq!(el.error_code("engine_getBlobsV1", json!([vec![ZERO; 129]])), -38004);

    // Bodies: by range up to the head, by hash with null for unknown.
    let bodies = el.call("engine_getPayloadBodiesByRangeV1", json!(["0x1", "0x10"]));
    assert_eq!(bodies.as_array().unwrap().len(), 2);
    let by_hash = el.call(
        "engine_getPayloadBodiesByHashV1",
        json!([[h1, "0x".to_string() + &"ab".repeat(32)]]),
    );
    assert!(by_hash[0]["transactions"].is_array() && by_hash[1].is_null());

    // Block hash mismatch: INVALID with null latestValidHash.
    let mut tampered = payload.clone();
    tampered["gasUsed"] = json!("0x1");
    let status =
        el.call("engine_newPayloadV4", json!([tampered, [], ZERO, second["executionRequests"]]));
    assert_eq!(status["status"], "INVALID");
    assert!(status["latestValidHash"].is_null());

    // Expected blob versioned hashes that the block's transactions do not carry: INVALID, null.
    let status = el.call(
        "engine_newPayloadV4",
        json!([
            payload,
            ["0x01".to_string() + &"00".repeat(31)],
            ZERO,
            second["executionRequests"]
        ]),
    );
    assert_eq!(status["status"], "INVALID", "{status}");
    assert!(status["latestValidHash"].is_null());

    // Unknown head: SYNCING; unknown finalized: -38002 (nothing applied).
    let unknown = "0x".to_string() + &"42".repeat(32);
    let fcu = el.call("engine_forkchoiceUpdatedV3", json!([{ "headBlockHash": unknown, "safeBlockHash": ZERO, "finalizedBlockHash": ZERO }, null]));
    assert_eq!(fcu["payloadStatus"]["status"], "SYNCING");
    assert!(fcu["payloadStatus"]["latestValidHash"].is_null());
    let code = el.error_code("engine_forkchoiceUpdatedV3", json!([{ "headBlockHash": h2, "safeBlockHash": ZERO, "finalizedBlockHash": unknown }, null]));
    assert_eq!(code, -38002);
    assert_eq!(
        el.error_code("engine_forkchoiceUpdatedV3", json!([{ "headBlockHash": h2 }, null])),
        -32602
    );

    // Bad attributes: the fork choice is applied anyway, then -38003 / -38005.
    let third = el.build(&h2, t0 + 3, 3, 4);
    let h3 = third["executionPayload"]["blockHash"].as_str().unwrap().to_string();
    let status = el.call(
        "engine_newPayloadV4",
        json!([third["executionPayload"], [], ZERO, third["executionRequests"]]),
    );
    assert_eq!(status["status"], "VALID");
    let stale_attrs = json!({ "timestamp": format!("{:#x}", t0 + 1), "prevRandao": ZERO,
        "suggestedFeeRecipient": "0x00000000000000000000000000000000000000fe", "withdrawals": [], "parentBeaconBlockRoot": ZERO });
    let code = el.error_code("engine_forkchoiceUpdatedV3", json!([{ "headBlockHash": h3, "safeBlockHash": ZERO, "finalizedBlockHash": ZERO }, stale_attrs]));
    assert_eq!(code, -38003);
    assert_eq!(
        el.call("eth_blockNumber", json!([])),
        "0x3",
        "fork choice applied despite bad attributes"
    );
    let v2_attrs = json!({ "timestamp": format!("{:#x}", t0 + 9), "prevRandao": ZERO,
        "suggestedFeeRecipient": "0x00000000000000000000000000000000000000fe", "withdrawals": [] });
    let code = el.error_code("engine_forkchoiceUpdatedV3", json!([{ "headBlockHash": h3, "safeBlockHash": ZERO, "finalizedBlockHash": ZERO }, v2_attrs]));
    assert_eq!(code, -38003);
    let code = el.error_code("engine_forkchoiceUpdatedV2", json!([{ "headBlockHash": h3, "safeBlockHash": ZERO, "finalizedBlockHash": ZERO }, v2_attrs]));
    assert_eq!(code, -38005, "V2 attributes after Cancun");

    // Re-org: a sibling of block 3 becomes head.
    let sibling = el.build(&h2, t0 + 4, 3, 4);
    let s3 = el.import_v4(&sibling, false);
    assert_eq!(el.head()["hash"], s3);
    let back = el.call(
        "engine_forkchoiceUpdatedV3",
        json!([{ "headBlockHash": h3, "safeBlockHash": ZERO, "finalizedBlockHash": h2 }, null]),
    );
    assert_eq!(back["payloadStatus"]["status"], "VALID");
    assert_eq!(el.head()["hash"], h3);

    // Malformed JSON-RPC never crashes the server.
    let (status, body) = post(el.addr, "{not json", Some(&el.token()));
    assert_eq!(status, 200);
    assert!(body.contains("-32700"), "{body}");
    assert_eq!(el.error_code("engine_nope", json!([])), -32601);
}

#[test]
fn cancun_and_shanghai_method_versions() {
    let dir = tempfile::tempdir().unwrap();
    // Cancun from genesis, Prague far in the future.
    let el = El::start(&genesis(dir.path(), 0, 1 << 40), &dir.path().join("el"));
    let head = el.head();
    let hash = head["hash"].as_str().unwrap().to_string();
    let built = el.build(&hash, ts(&head) + 1, 3, 3);
    assert!(built.get("executionRequests").is_none(), "V3 response has no requests");
    let status = el.call("engine_newPayloadV3", json!([built["executionPayload"], [], ZERO]));
    assert_eq!(status["status"], "VALID", "{status}");
    assert_eq!(
        el.error_code("engine_newPayloadV4", json!([built["executionPayload"], [], ZERO, []])),
        -38005
    );
    // getPayloadV4 of a Cancun payload is the wrong version.
    let attrs = json!({ "timestamp": format!("{:#x}", ts(&head) + 2), "prevRandao": ZERO,
        "suggestedFeeRecipient": "0x00000000000000000000000000000000000000fe", "withdrawals": [], "parentBeaconBlockRoot": ZERO });
    let fcu = el.call("engine_forkchoiceUpdatedV3", json!([{ "headBlockHash": hash, "safeBlockHash": ZERO, "finalizedBlockHash": ZERO }, attrs]));
    assert_eq!(el.error_code("engine_getPayloadV4", json!([fcu["payloadId"]])), -38005);
    assert_eq!(el.error_code("engine_getPayloadV2", json!([fcu["payloadId"]])), -38005);
}

#[test]
fn restart_after_kill_keeps_finalized_blocks() {
    let dir = tempfile::tempdir().unwrap();
    let chain = genesis(dir.path(), 0, 0);
    let datadir = dir.path().join("el");
    let (h1, h2) = {
        let el = El::start(&chain, &datadir);
        let g = el.head();
        let t0 = ts(&g);
        let first = el.build(g["hash"].as_str().unwrap(), t0 + 1, 3, 4);
        let h1 = el.import_v4(&first, true);
        let second = el.build(&h1, t0 + 2, 3, 4);
        // Not finalized, and head within the persistence threshold: may be lost on kill -9.
        let h2 = el.import_v4(&second, false);
        (h1, h2)
        // Dropping the guard sends SIGKILL.
    };
    let el = El::start(&chain, &datadir);
    assert_eq!(el.datadir, datadir);
    let head = el.head();
    let number = head["number"].as_str().unwrap();
    assert!(number == "0x1" || number == "0x2", "head after restart: {head}");
    if number == "0x2" {
        assert_eq!(head["hash"], h2);
    }
    // The finalized block survived; a CL replays the rest with newPayload.
    let block = el.call("eth_getBlockByHash", json!([h1, false]));
    assert_eq!(block["hash"], h1);
}

#[test]
fn equal_timestamps_only_with_sub_second_blocks() {
    for sub_second in [true, false] {
        let dir = tempfile::tempdir().unwrap();
        let el = El::start(&genesis_with(dir.path(), 0, 0, sub_second), &dir.path().join("el"));
        let g = el.head();
        let first = el.build(g["hash"].as_str().unwrap(), ts(&g) + 1, 3, 4);
        let h1 = el.import_v4(&first, false);
        let same = json!({ "timestamp": format!("{:#x}", ts(&g) + 1), "prevRandao": ZERO,
            "suggestedFeeRecipient": "0x00000000000000000000000000000000000000fe", "withdrawals": [], "parentBeaconBlockRoot": ZERO });
        let state =
            json!({ "headBlockHash": h1, "safeBlockHash": ZERO, "finalizedBlockHash": ZERO });
        if sub_second {
            let fcu = el.call("engine_forkchoiceUpdatedV3", json!([state, same]));
            let got = el.call("engine_getPayloadV4", json!([fcu["payloadId"]]));
            let h2 = el.import_v4(&got, false);
            assert_eq!(el.head()["hash"], h2, "a block with its parent's timestamp is valid");
        } else {
            assert_eq!(el.error_code("engine_forkchoiceUpdatedV3", json!([state, same])), -38003);
        }
    }
}
