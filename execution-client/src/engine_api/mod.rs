//! The Engine API (`engine_*` on the JWT-authenticated port), to the letter of
//! ethereum/execution-apis `src/engine/` for Paris, Shanghai, Cancun and Prague.
//!
//! Every method checks, in the spec's order: the parameter shapes on the raw JSON keys
//! (`-32602`; unknown fields and nulls count), then the fork of the payload or attributes
//! (`-38005 Unsupported fork`), then semantics. `forkchoiceUpdated` applies the fork choice
//! before it looks at the payload attributes, so an attribute error (`-38003`/`-38005`) never
//! rolls the fork choice back. Responses carry exactly the fields the spec defines, because a
//! consensus client sends a payload back as it received it.

mod auth;
pub mod shapes;

use std::sync::Arc;

use alloy_consensus::{Transaction, TxEnvelope};
use alloy_eips::{eip2718::Encodable2718, eip7685::Requests};
use alloy_primitives::{B256, Bytes, U64};
use alloy_rpc_types_engine::{
    CancunPayloadFields, ExecutionPayload, ExecutionPayloadSidecar, ExecutionPayloadV1,
    ExecutionPayloadV2, ExecutionPayloadV3, ForkchoiceState, PayloadAttributes, PayloadId,
    PayloadStatus, PayloadStatusEnum, PraguePayloadFields,
};
use jsonrpsee::{
    RpcModule,
    core::RegisterMethodError,
    types::{ErrorObjectOwned, Params},
};
use parking_lot::RwLock;
use serde_json::{Value, json};
use tandem_shared::{ChainSpec, Fork};
use tracing::{debug, instrument};

pub use auth::{JwtAuth, JwtAuthLayer, check_request};

use crate::{
    fork_choice::{ChainView, ForkchoiceOutcome, TreeError},
    node::engine::EngineHandle,
    payload_builder::{job::PayloadJobs, payload_id},
    storage::{Database, seal_block},
};

/// JSON-RPC error codes of the Engine API.
pub mod codes {
    /// Malformed parameters.
    pub const INVALID_PARAMS: i32 = -32602;
    /// Internal failure.
    pub const INTERNAL: i32 = -32603;
    /// `getPayload` with an id this node did not hand out.
    pub const UNKNOWN_PAYLOAD: i32 = -38001;
    /// Head, safe and finalized do not form one chain.
    pub const INVALID_FORKCHOICE_STATE: i32 = -38002;
    /// Payload attributes that cannot be built on.
    pub const INVALID_PAYLOAD_ATTRIBUTES: i32 = -38003;
    /// More items asked for than allowed.
    pub const TOO_LARGE_REQUEST: i32 = -38004;
    /// The method version is not defined for the payload's fork.
    pub const UNSUPPORTED_FORK: i32 = -38005;
    /// The re-org would unwind more than allowed.
    pub const TOO_DEEP_REORG: i32 = -38006;
}

/// The methods this node serves, answered to `engine_exchangeCapabilities`.
pub const CAPABILITIES: &[&str] = &[
    "engine_exchangeCapabilities",
    "engine_getClientVersionV1",
    "engine_newPayloadV1",
    "engine_newPayloadV2",
    "engine_newPayloadV3",
    "engine_newPayloadV4",
    "engine_forkchoiceUpdatedV1",
    "engine_forkchoiceUpdatedV2",
    "engine_forkchoiceUpdatedV3",
    "engine_getPayloadV1",
    "engine_getPayloadV2",
    "engine_getPayloadV3",
    "engine_getPayloadV4",
    "engine_getPayloadBodiesByHashV1",
    "engine_getPayloadBodiesByRangeV1",
    "engine_getBlobsV1",
];

/// Most bodies one `getPayloadBodies*` call may ask for.
pub const MAX_BODIES: usize = 1024;
/// Most versioned hashes one `getBlobsV1` call may ask for.
pub const MAX_BLOBS: usize = 128;

/// What the Engine API handlers work with.
#[derive(Debug)]
pub struct EngineApi {
    /// The chain.
    pub spec: Arc<ChainSpec>,
    /// The engine thread.
    pub engine: EngineHandle,
    /// Payload jobs.
    pub jobs: Arc<PayloadJobs>,
    /// The database (bodies by range).
    pub db: Arc<Database>,
    /// The canonical view (bodies by range, eth methods).
    pub view: Arc<RwLock<Arc<ChainView>>>,
}

type RpcResult = Result<Value, ErrorObjectOwned>;

fn error(code: i32, message: impl Into<String>) -> ErrorObjectOwned {
    ErrorObjectOwned::owned(code, message.into(), None::<()>)
}

fn invalid_params(message: impl Into<String>) -> ErrorObjectOwned {
    error(codes::INVALID_PARAMS, message)
}

fn unsupported_fork(method: &str, fork: Fork) -> ErrorObjectOwned {
    error(codes::UNSUPPORTED_FORK, format!("Unsupported fork: {method} is not defined for {fork}"))
}

fn internal(e: impl std::fmt::Display) -> ErrorObjectOwned {
    error(codes::INTERNAL, e.to_string())
}

/// The positional parameters as raw JSON values.
fn raw_params(params: &Params<'_>) -> Result<Vec<Value>, ErrorObjectOwned> {
    if params.as_str().is_none() {
        return Ok(Vec::new());
    }
    params
        .parse::<Vec<Value>>()
        .map_err(|e| invalid_params(format!("params must be an array: {e}")))
}

fn parse<T: serde::de::DeserializeOwned>(value: &Value, what: &str) -> Result<T, ErrorObjectOwned> {
    serde_json::from_value(value.clone()).map_err(|e| invalid_params(format!("{what}: {e}")))
}

fn timestamp_of(object: &serde_json::Map<String, Value>) -> Result<u64, ErrorObjectOwned> {
    let value = object.get("timestamp").ok_or_else(|| invalid_params("missing timestamp"))?;
    parse::<U64>(value, "timestamp").map(|t| t.to::<u64>())
}

fn status_json(status: &PayloadStatus) -> Value {
    let (name, error) = match &status.status {
        PayloadStatusEnum::Invalid { validation_error } => {
            ("INVALID", Some(validation_error.clone()))
        }
        other => (other.as_str(), None),
    };
    json!({ "status": name, "latestValidHash": status.latest_valid_hash, "validationError": error })
}

fn invalid_no_ancestor(error: String) -> Value {
    json!({ "status": "INVALID", "latestValidHash": null, "validationError": error })
}

/// EIP-7685 requests as `newPayloadV4` receives them: each at least a type byte and one data
/// byte, strictly ascending types.
fn parse_requests(value: &Value) -> Result<Requests, ErrorObjectOwned> {
    let list: Vec<Bytes> = parse(value, "executionRequests")?;
    let mut last_type: Option<u8> = None;
    for request in &list {
        if request.len() < 2 {
            return Err(invalid_params("executionRequests: an element has no request data"));
        }
        if last_type.is_some_and(|t| t >= request[0]) {
            return Err(invalid_params(
                "executionRequests: elements must be ordered by strictly ascending request type",
            ));
        }
        last_type = Some(request[0]);
    }
    Ok(Requests::new(list))
}

impl EngineApi {
    /// `engine_newPayloadV{version}`.
    #[instrument(skip_all, fields(version))]
    pub async fn new_payload(&self, version: u8, params: Vec<Value>) -> RpcResult {
        let method = format!("engine_newPayloadV{version}");
        let expected = match version {
            1 | 2 => 1,
            3 => 3,
            _ => 4,
        };
        if params.len() != expected {
            return Err(invalid_params(format!(
                "{method} takes {expected} params, got {}",
                params.len()
            )));
        }
        let object =
            params[0].as_object().ok_or_else(|| invalid_params("payload must be an object"))?;
        let shape = shapes::payload_version(object)
            .ok_or_else(|| invalid_params("payload fields match no ExecutionPayload version"))?;
        let timestamp = timestamp_of(object)?;
        let fork = self.spec.fork_at(timestamp);
        let mut sidecar = ExecutionPayloadSidecar::none();
        match version {
            1 => {
                if shape != 1 {
                    return Err(invalid_params("engine_newPayloadV1 takes an ExecutionPayloadV1"));
                }
                if fork >= Fork::Shanghai {
                    return Err(unsupported_fork(&method, fork));
                }
            }
            2 => {
                if shape == 3 {
                    return Err(invalid_params(
                        "engine_newPayloadV2 takes ExecutionPayloadV1 or V2",
                    ));
                }
                if fork >= Fork::Cancun {
                    return Err(unsupported_fork(&method, fork));
                }
                let wanted = if fork >= Fork::Shanghai { 2 } else { 1 };
                if shape != wanted {
                    return Err(invalid_params(format!(
                        "ExecutionPayloadV{wanted} is required at timestamp {timestamp}"
                    )));
                }
            }
            _ => {
                if shape != 3 {
                    return Err(invalid_params(format!("{method} takes an ExecutionPayloadV3")));
                }
                if params[1].is_null() || params[2].is_null() {
                    return Err(invalid_params(
                        "expectedBlobVersionedHashes and parentBeaconBlockRoot are required",
                    ));
                }
                let hashes: Vec<B256> = parse(&params[1], "expectedBlobVersionedHashes")?;
                let root: B256 = parse(&params[2], "parentBeaconBlockRoot")?;
                let cancun = CancunPayloadFields::new(root, hashes);
                if version == 4 {
                    if params[3].is_null() {
                        return Err(invalid_params("executionRequests is required"));
                    }
                    let requests = parse_requests(&params[3])?;
                    if fork != Fork::Prague {
                        return Err(unsupported_fork(&method, fork));
                    }
                    sidecar =
                        ExecutionPayloadSidecar::v4(cancun, PraguePayloadFields::new(requests));
                } else {
                    if fork != Fork::Cancun {
                        return Err(unsupported_fork(&method, fork));
                    }
                    sidecar = ExecutionPayloadSidecar::v3(cancun);
                }
            }
        }
        let payload = match shape {
            1 => ExecutionPayload::V1(parse::<ExecutionPayloadV1>(&params[0], "payload")?),
            2 => ExecutionPayload::V2(parse::<ExecutionPayloadV2>(&params[0], "payload")?),
            _ => ExecutionPayload::V3(parse::<ExecutionPayloadV3>(&params[0], "payload")?),
        };
        let claimed_hash = payload.block_hash();
        let block = match payload.try_into_block_with_sidecar::<TxEnvelope>(&sidecar) {
            Ok(block) => block,
            Err(e) => return Ok(invalid_no_ancestor(format!("invalid payload: {e}"))),
        };
        let block = seal_block(block);
        if block.hash() != claimed_hash {
            let message = format!(
                "block hash mismatch: payload says {claimed_hash}, header hashes to {}",
                block.hash()
            );
            return Ok(if version == 1 {
                json!({ "status": "INVALID_BLOCK_HASH", "latestValidHash": null, "validationError": message })
            } else {
                invalid_no_ancestor(message)
            });
        }
        if let Some(expected) = sidecar.versioned_hashes() {
            let actual: Vec<B256> = block
                .body
                .transactions
                .iter()
                .flat_map(|tx| tx.blob_versioned_hashes().unwrap_or_default().to_vec())
                .collect();
            if &actual != expected {
                return Ok(invalid_no_ancestor(
                    "blob versioned hashes do not match the payload's blob transactions".into(),
                ));
            }
        }
        debug!(number = block.header.number, hash = %block.hash(), "newPayload");
        let status = self.engine.new_payload(block).await.map_err(internal)?.map_err(internal)?;
        Ok(status_json(&status))
    }

    /// `engine_forkchoiceUpdatedV{version}`.
    #[instrument(skip_all, fields(version))]
    pub async fn fork_choice_updated(&self, version: u8, params: Vec<Value>) -> RpcResult {
        let method = format!("engine_forkchoiceUpdatedV{version}");
        if params.is_empty() || params.len() > 2 {
            return Err(invalid_params(format!("{method} takes 1 or 2 params")));
        }
        let state_object = params[0]
            .as_object()
            .ok_or_else(|| invalid_params("forkchoiceState must be an object"))?;
        if !shapes::is_forkchoice_state(state_object) {
            return Err(invalid_params("forkchoiceState fields do not match ForkchoiceStateV1"));
        }
        let state: ForkchoiceState = parse(&params[0], "forkchoiceState")?;
        let attributes = params.get(1).filter(|v| !v.is_null());
        if let Some(value) = attributes
            && !value.is_object()
        {
            return Err(invalid_params("payloadAttributes must be an object or null"));
        }
        let (outcome, target) = self
            .engine
            .fork_choice_updated(state, attributes.is_some())
            .await
            .map_err(internal)?
            .map_err(|e| match e {
                TreeError::InvalidForkchoiceState(msg) => error(
                    codes::INVALID_FORKCHOICE_STATE,
                    format!("Invalid forkchoice state: {msg}"),
                ),
                TreeError::TooDeepReorg { .. } => {
                    error(codes::TOO_DEEP_REORG, format!("Too deep reorg: {e}"))
                }
                other => internal(other),
            })?;
        let head = match outcome {
            ForkchoiceOutcome::Syncing => {
                return Ok(json!({
                    "payloadStatus": { "status": "SYNCING", "latestValidHash": null, "validationError": null },
                    "payloadId": null
                }));
            }
            ForkchoiceOutcome::Invalid { latest_valid, error } => {
                return Ok(json!({
                    "payloadStatus": { "status": "INVALID", "latestValidHash": latest_valid, "validationError": error },
                    "payloadId": null
                }));
            }
            ForkchoiceOutcome::Valid { head, .. } => head,
        };
        let valid =
            json!({ "status": "VALID", "latestValidHash": head.hash, "validationError": null });
        let Some(value) = attributes else {
            return Ok(json!({ "payloadStatus": valid, "payloadId": null }));
        };
        // The fork choice is applied; from here on errors concern the attributes only.
        let object = value
            .as_object()
            .ok_or_else(|| invalid_params("payloadAttributes must be an object"))?;
        let bad_attributes = |msg: String| {
            error(codes::INVALID_PAYLOAD_ATTRIBUTES, format!("Invalid payload attributes: {msg}"))
        };
        let shape = shapes::attributes_version(object)
            .ok_or_else(|| bad_attributes("fields match no PayloadAttributes version".into()))?;
        let timestamp =
            timestamp_of(object).map_err(|e| bad_attributes(e.message().to_string()))?;
        let fork = self.spec.fork_at(timestamp);
        match version {
            1 => {
                if shape != 1 {
                    return Err(bad_attributes(
                        "engine_forkchoiceUpdatedV1 takes PayloadAttributesV1".into(),
                    ));
                }
                if fork >= Fork::Shanghai {
                    return Err(unsupported_fork(&method, fork));
                }
            }
            2 => {
                if fork >= Fork::Cancun {
                    return Err(unsupported_fork(&method, fork));
                }
                let wanted = if fork >= Fork::Shanghai { 2 } else { 1 };
                if shape != wanted {
                    return Err(bad_attributes(format!(
                        "PayloadAttributesV{wanted} is required at timestamp {timestamp}"
                    )));
                }
            }
            _ => {
                if shape != 3 {
                    return Err(bad_attributes(format!("{method} takes PayloadAttributesV3")));
                }
                if !matches!(fork, Fork::Cancun | Fork::Prague) {
                    return Err(unsupported_fork(&method, fork));
                }
            }
        }
        let attributes: PayloadAttributes =
            serde_json::from_value(value.clone()).map_err(|e| bad_attributes(e.to_string()))?;
        let Some(target) = target else {
            return Ok(json!({ "payloadStatus": valid, "payloadId": null }));
        };
        let parent_ts = target.parent.timestamp;
        let ok = if self.spec.sub_second_blocks() {
            timestamp >= parent_ts
        } else {
            timestamp > parent_ts
        };
        if !ok {
            return Err(bad_attributes(format!(
                "timestamp {timestamp} is not after the head's {parent_ts}"
            )));
        }
        let id = payload_id(head.hash, &attributes);
        self.jobs.start(id, target, attributes);
        Ok(json!({ "payloadStatus": valid, "payloadId": id }))
    }

    /// `engine_getPayloadV{version}`.
    #[instrument(skip_all, fields(version))]
    pub async fn get_payload(&self, version: u8, params: Vec<Value>) -> RpcResult {
        let method = format!("engine_getPayloadV{version}");
        if params.len() != 1 {
            return Err(invalid_params(format!("{method} takes 1 param")));
        }
        let id: PayloadId = parse(&params[0], "payloadId")?;
        let job =
            self.jobs.get(&id).ok_or_else(|| error(codes::UNKNOWN_PAYLOAD, "Unknown payload"))?;
        let built = job.resolve().await.map_err(internal)?;
        let block = built.block.block.clone();
        let fork = self.spec.fork_at(block.header.timestamp);
        let allowed = match version {
            1 => fork == Fork::Paris,
            2 => fork < Fork::Cancun,
            3 => fork == Fork::Cancun,
            _ => fork == Fork::Prague,
        };
        if !allowed {
            return Err(unsupported_fork(&method, fork));
        }
        self.engine.insert_built(built.block.clone());
        let hash = block.hash();
        let inner = block.inner();
        let value = format!("{:#x}", built.fees);
        Ok(match version {
            1 => json!(ExecutionPayloadV1::from_block_unchecked(hash, inner)),
            2 => {
                let payload = if fork >= Fork::Shanghai {
                    json!(ExecutionPayloadV2::from_block_unchecked(hash, inner))
                } else {
                    json!(ExecutionPayloadV1::from_block_unchecked(hash, inner))
                };
                json!({ "executionPayload": payload, "blockValue": value })
            }
            _ => {
                let mut response = json!({
                    "executionPayload": ExecutionPayloadV3::from_block_unchecked(hash, inner),
                    "blockValue": value,
                    "blobsBundle": { "commitments": [], "proofs": [], "blobs": [] },
                    "shouldOverrideBuilder": false,
                });
                if version == 4 {
                    response["executionRequests"] = json!(built.block.requests.clone().take());
                }
                response
            }
        })
    }

    fn body_json(block: &crate::storage::SealedBlock) -> Value {
        let transactions: Vec<Bytes> =
            block.body.transactions.iter().map(|tx| tx.encoded_2718().into()).collect();
        json!({ "transactions": transactions, "withdrawals": block.body.withdrawals })
    }

    /// `engine_getPayloadBodiesByHashV1`.
    pub async fn bodies_by_hash(&self, params: Vec<Value>) -> RpcResult {
        if params.len() != 1 {
            return Err(invalid_params("takes 1 param"));
        }
        let hashes: Vec<B256> = parse(&params[0], "block hashes")?;
        if hashes.len() > MAX_BODIES {
            return Err(error(
                codes::TOO_LARGE_REQUEST,
                format!("Too large request: at most {MAX_BODIES} bodies"),
            ));
        }
        let mut out = Vec::with_capacity(hashes.len());
        for hash in hashes {
            let block = self.engine.block(hash).await.map_err(internal)?.map_err(internal)?;
            out.push(block.as_ref().map_or(Value::Null, Self::body_json));
        }
        Ok(Value::Array(out))
    }

    /// `engine_getPayloadBodiesByRangeV1`.
    pub async fn bodies_by_range(&self, params: Vec<Value>) -> RpcResult {
        if params.len() != 2 {
            return Err(invalid_params("takes 2 params: start, count"));
        }
        let start: u64 = parse::<U64>(&params[0], "start")?.to();
        let count: u64 = parse::<U64>(&params[1], "count")?.to();
        if start < 1 || count < 1 {
            return Err(invalid_params("start and count must be at least 1"));
        }
        if count > MAX_BODIES as u64 {
            return Err(error(
                codes::TOO_LARGE_REQUEST,
                format!("Too large request: at most {MAX_BODIES} bodies"),
            ));
        }
        let view = self.view.read().clone();
        let last = start.saturating_add(count - 1).min(view.head.number);
        let mut out = Vec::new();
        for number in start..=last {
            let block = match view.block_by_number(number) {
                Some(executed) => Some(executed.block.clone()),
                None => self.db.block(number).map_err(internal)?,
            };
            out.push(block.as_ref().map_or(Value::Null, Self::body_json));
        }
        Ok(Value::Array(out))
    }
}

/// Short commit of the build, for `engine_getClientVersionV1`.
const GIT_COMMIT: &str = match option_env!("TANDEM_GIT_COMMIT") {
    Some(commit) => commit,
    None => "00000000",
};

/// The `engine_*` methods bound to `api`.
pub fn engine_module(
    api: Arc<EngineApi>,
) -> Result<RpcModule<Arc<EngineApi>>, RegisterMethodError> {
    let mut module = RpcModule::new(api);
    const NEW_PAYLOAD: [&str; 4] = [
        "engine_newPayloadV1",
        "engine_newPayloadV2",
        "engine_newPayloadV3",
        "engine_newPayloadV4",
    ];
    const GET_PAYLOAD: [&str; 4] = [
        "engine_getPayloadV1",
        "engine_getPayloadV2",
        "engine_getPayloadV3",
        "engine_getPayloadV4",
    ];
    const FORKCHOICE: [&str; 3] =
        ["engine_forkchoiceUpdatedV1", "engine_forkchoiceUpdatedV2", "engine_forkchoiceUpdatedV3"];
    for (version, name) in (1u8..).zip(NEW_PAYLOAD) {
        module.register_async_method(name, move |params, api, _| async move {
            api.new_payload(version, raw_params(&params)?).await
        })?;
    }
    for (version, name) in (1u8..).zip(GET_PAYLOAD) {
        module.register_async_method(name, move |params, api, _| async move {
            api.get_payload(version, raw_params(&params)?).await
        })?;
    }
    for (version, name) in (1u8..).zip(FORKCHOICE) {
        module.register_async_method(name, move |params, api, _| async move {
            api.fork_choice_updated(version, raw_params(&params)?).await
        })?;
    }
    module
        .register_async_method("engine_getPayloadBodiesByHashV1", |params, api, _| async move {
            api.bodies_by_hash(raw_params(&params)?).await
        })?;
    module
        .register_async_method("engine_getPayloadBodiesByRangeV1", |params, api, _| async move {
            api.bodies_by_range(raw_params(&params)?).await
        })?;
    module.register_method("engine_exchangeCapabilities", |params, _, _| -> RpcResult {
        let _: Vec<String> = params.one().map_err(|e| invalid_params(e.to_string()))?;
        Ok(json!(CAPABILITIES))
    })?;
    module.register_method("engine_getClientVersionV1", |_, _, _| -> RpcResult {
        Ok(json!([{
            "code": "TD",
            "name": "tandem-el",
            "version": concat!("v", env!("CARGO_PKG_VERSION")),
            "commit": format!("0x{GIT_COMMIT}"),
        }]))
    })?;
    module.register_method("engine_getBlobsV1", |params, _, _| -> RpcResult {
        let hashes: Vec<B256> = params.one().map_err(|e| invalid_params(e.to_string()))?;
        if hashes.len() > MAX_BLOBS {
            return Err(error(
                codes::TOO_LARGE_REQUEST,
                format!("Too large request: at most {MAX_BLOBS} hashes"),
            ));
        }
        // This node keeps no blob sidecars (blob transactions are refused by its pool).
        Ok(Value::Array(vec![Value::Null; hashes.len()]))
    })?;
    Ok(module)
}
