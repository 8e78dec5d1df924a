//! The Engine API client: how `tandem-cl` drives an execution client (ours, reth, geth, …).
//!
//! # Contract
//! - Every call is JSON-RPC 2.0 over HTTP to `--engine` with a fresh HS256 JWT (`iat` = now)
//!   signed with the `--jwt-secret` ([`transport`]).
//! - Method versions follow the fork active at the block's timestamp ([`fork`]): `newPayloadV4`
//!   with `executionRequests` on Prague, `V3` on Cancun; `forkchoiceUpdatedV3` from Cancun;
//!   `getPayloadV4/V3`. Nothing Tandem-specific travels in the calls: a spec-compliant EL works.
//! - At start [`EngineClient::exchange_capabilities`] checks the EL supports the methods the
//!   fork schedule needs, and [`EngineClient::check_genesis`] compares the EL's block 0 hash
//!   (`eth_getBlockByNumber("0x0", false)` on the engine port) with the consensus genesis.
//! - Timeouts per method are the spec's (8 s for `newPayload`/`forkchoiceUpdated`, 1 s for
//!   `getPayload`/`exchangeCapabilities`). Transport failures (EL down, timeout, HTTP 5xx) are
//!   retried with exponential back-off up to `max_attempts`; a JSON-RPC error or an HTTP
//!   401/403 (wrong secret) is returned at once. An `INVALID` or `SYNCING` status is an answer,
//!   not an error: it is logged and returned, and the caller decides (vote or not, sync).
//! - [`EngineClient::el_state`] tells the status endpoint what the last call saw.

pub mod fork;
pub mod payload;
pub mod transport;

#[cfg(test)]
mod tests;

pub use fork::{EngineFork, ForkSchedule};
pub use payload::{PayloadBody, PayloadBodyError, to_body, to_consensus, versioned_hashes};
pub use transport::{HttpTransport, TransportError};

use crate::types::Payload;
use alloy_primitives::{Address, B256};
use alloy_rpc_types_engine::{
    ExecutionPayload, ExecutionPayloadEnvelopeV2, ExecutionPayloadEnvelopeV3,
    ExecutionPayloadEnvelopeV4, ExecutionPayloadV1, ForkchoiceState, ForkchoiceUpdated, JwtSecret,
    PayloadAttributes as EnginePayloadAttributes, PayloadId, PayloadStatus, PayloadStatusEnum,
};
use serde::de::DeserializeOwned;
use serde_json::{Value, json};
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, AtomicU64, Ordering};
use std::time::Duration;
use thiserror::Error;
use tracing::{debug, info, warn};

/// Tunables of the client (defaults: [`EngineConfig::new`]).
#[derive(Clone)]
pub struct EngineConfig {
    /// `http://host:port` of the EL's authenticated port.
    pub url: String,
    /// The shared JWT secret.
    pub jwt_secret: JwtSecret,
    /// Fork activation times from the consensus genesis.
    pub forks: ForkSchedule,
    /// Attempts per call on transport failures (1 = no retry).
    pub max_attempts: u32,
    /// First back-off delay.
    pub backoff_initial: Duration,
    /// Longest back-off delay.
    pub backoff_max: Duration,
    /// Timeout of `newPayload` and `forkchoiceUpdated`.
    pub timeout_long: Duration,
    /// Timeout of `getPayload`, `exchangeCapabilities` and `eth_*` calls.
    pub timeout_short: Duration,
}

impl std::fmt::Debug for EngineConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EngineConfig")
            .field("url", &self.url)
            .field("forks", &self.forks)
            .field("max_attempts", &self.max_attempts)
            .finish_non_exhaustive()
    }
}

impl EngineConfig {
    /// The spec's timeouts, 5 attempts, back-off 100 ms doubling to 2 s.
    pub fn new(url: impl Into<String>, jwt_secret: JwtSecret, forks: ForkSchedule) -> Self {
        Self {
            url: url.into(),
            jwt_secret,
            forks,
            max_attempts: 5,
            backoff_initial: Duration::from_millis(100),
            backoff_max: Duration::from_secs(2),
            timeout_long: Duration::from_secs(8),
            timeout_short: Duration::from_secs(1),
        }
    }
}

/// Why an Engine API call failed.
#[derive(Debug, Error)]
pub enum EngineError {
    /// The engine URL is unusable.
    #[error("{0}")]
    Config(String),
    /// The EL could not be reached (after retries).
    #[error("{method}: execution client unreachable after {attempts} attempt(s): {source}")]
    Transport {
        /// The method.
        method: String,
        /// Attempts made.
        attempts: u32,
        /// The last failure.
        source: TransportError,
    },
    /// The EL answered with a JSON-RPC error.
    #[error("{method}: execution client error {code}: {message}")]
    Rpc {
        /// The method.
        method: String,
        /// JSON-RPC error code (-38001 unknown payload, -38003 invalid attributes, …).
        code: i64,
        /// Its message.
        message: String,
    },
    /// The answer is not what the spec says.
    #[error("{method}: malformed answer: {reason}")]
    Decode {
        /// The method.
        method: String,
        /// What was wrong.
        reason: String,
    },
    /// The payload in a block cannot be sent.
    #[error(transparent)]
    Payload(#[from] PayloadBodyError),
    /// The EL runs another chain.
    #[error(
        "execution client genesis {found} differs from the consensus genesis' EL genesis {expected}: wrong --chain file or data dir"
    )]
    GenesisMismatch {
        /// What the consensus genesis says.
        expected: B256,
        /// What the EL has.
        found: B256,
    },
    /// The EL lacks methods the fork schedule needs.
    #[error("execution client does not support {missing:?}")]
    MissingCapabilities {
        /// The missing methods.
        missing: Vec<String>,
    },
}

/// What the last call told us about the EL (for `/status`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ElState {
    /// No call yet.
    Unknown,
    /// Reachable and answering `VALID`.
    Ready,
    /// Reachable and answering `SYNCING`/`ACCEPTED`.
    Syncing,
    /// Unreachable.
    Down,
}

impl ElState {
    /// Lower-case name.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Unknown => "unknown",
            Self::Ready => "ready",
            Self::Syncing => "syncing",
            Self::Down => "down",
        }
    }
    const fn from_u8(v: u8) -> Self {
        match v {
            1 => Self::Ready,
            2 => Self::Syncing,
            3 => Self::Down,
            _ => Self::Unknown,
        }
    }
}

/// An Engine API client. Cheap to clone; all clones share the EL state.
#[derive(Debug, Clone)]
pub struct EngineClient {
    transport: HttpTransport,
    config: Arc<EngineConfig>,
    state: Arc<AtomicU8>,
    next_id: Arc<AtomicU64>,
}

impl EngineClient {
    /// A client for `config.url`; no call is made yet.
    pub fn new(config: EngineConfig) -> Result<Self, EngineError> {
        let transport =
            HttpTransport::new(&config.url, config.jwt_secret).map_err(EngineError::Config)?;
        Ok(Self {
            transport,
            config: Arc::new(config),
            state: Arc::new(AtomicU8::new(0)),
            next_id: Arc::new(AtomicU64::new(1)),
        })
    }

    /// The fork schedule.
    pub fn forks(&self) -> &ForkSchedule {
        &self.config.forks
    }

    /// What the last call saw.
    pub fn el_state(&self) -> ElState {
        ElState::from_u8(self.state.load(Ordering::Relaxed))
    }

    fn set_state(&self, s: ElState) {
        self.state.store(s as u8, Ordering::Relaxed);
    }

    /// One JSON-RPC call with retries on transport failures.
    pub async fn call<R: DeserializeOwned>(
        &self,
        method: &str,
        params: Value,
        timeout: Duration,
    ) -> Result<R, EngineError> {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let body = json!({ "jsonrpc": "2.0", "id": id, "method": method, "params": params });
        let body = serde_json::to_vec(&body).map_err(|e| EngineError::Decode {
            method: method.to_string(),
            reason: e.to_string(),
        })?;
        let mut delay = self.config.backoff_initial;
        let attempts = self.config.max_attempts.max(1);
        let mut attempt = 1;
        let bytes = loop {
            match self.transport.post(method, body.clone(), timeout).await {
                Ok(bytes) => break bytes,
                Err(e) if e.is_retryable() && attempt < attempts => {
                    self.set_state(ElState::Down);
                    warn!(%method, attempt, retry_in = ?delay, "execution client unavailable: {e}");
                    tokio::time::sleep(delay).await;
                    delay = (delay * 2).min(self.config.backoff_max);
                    attempt += 1;
                }
                Err(source) => {
                    self.set_state(ElState::Down);
                    return Err(EngineError::Transport {
                        method: method.to_string(),
                        attempts: attempt,
                        source,
                    });
                }
            }
        };
        let decode = |reason: String| EngineError::Decode { method: method.to_string(), reason };
        let mut response: Value =
            serde_json::from_slice(&bytes).map_err(|e| decode(format!("not JSON: {e}")))?;
        if let Some(err) = response.get("error").filter(|e| !e.is_null()) {
            return Err(EngineError::Rpc {
                method: method.to_string(),
                code: err.get("code").and_then(Value::as_i64).unwrap_or(0),
                message: err.get("message").and_then(Value::as_str).unwrap_or("").to_string(),
            });
        }
        let result = response
            .get_mut("result")
            .map(Value::take)
            .ok_or_else(|| decode("neither result nor error".into()))?;
        serde_json::from_value(result).map_err(|e| decode(e.to_string()))
    }

    /// `engine_exchangeCapabilities`: fails if the EL lacks a method this schedule will use
    /// from `now` (seconds) on.
    pub async fn exchange_capabilities(&self, now: u64) -> Result<Vec<String>, EngineError> {
        let ours = EngineFork::all_methods();
        let theirs: Vec<String> = self
            .call("engine_exchangeCapabilities", json!([ours]), self.config.timeout_short)
            .await?;
        let current = self.config.forks.at(now);
        let f = &self.config.forks;
        let mut needed = vec![current];
        for (t, fork) in [
            (f.shanghai_time, EngineFork::Shanghai),
            (f.cancun_time, EngineFork::Cancun),
            (f.prague_time, EngineFork::Prague),
        ] {
            if t.is_some_and(|t| t > now) {
                needed.push(fork);
            }
        }
        let mut missing = Vec::new();
        for fork in needed {
            for m in [
                fork.new_payload_method(),
                fork.forkchoice_updated_method(),
                fork.get_payload_method(),
            ] {
                if !theirs.iter().any(|t| t == m) && !missing.iter().any(|x: &String| x == m) {
                    missing.push(m.to_string());
                }
            }
        }
        if !missing.is_empty() {
            return Err(EngineError::MissingCapabilities { missing });
        }
        info!(url = %self.config.url, methods = theirs.len(), "execution client capabilities exchanged");
        Ok(theirs)
    }

    /// Block hash of the EL's block 0.
    pub async fn genesis_hash(&self) -> Result<B256, EngineError> {
        let block: Value = self
            .call("eth_getBlockByNumber", json!(["0x0", false]), self.config.timeout_short)
            .await?;
        let hash =
            block.get("hash").and_then(Value::as_str).ok_or_else(|| EngineError::Decode {
                method: "eth_getBlockByNumber".into(),
                reason: "block 0 has no hash (is the EL initialised?)".into(),
            })?;
        hash.parse().map_err(|e| EngineError::Decode {
            method: "eth_getBlockByNumber".into(),
            reason: format!("hash {hash}: {e}"),
        })
    }

    /// Refuses an EL whose block 0 is not `expected`.
    pub async fn check_genesis(&self, expected: B256) -> Result<(), EngineError> {
        let found = self.genesis_hash().await?;
        if found != expected {
            return Err(EngineError::GenesisMismatch { expected, found });
        }
        Ok(())
    }

    /// Head block number and hash of the EL (`eth_getBlockByNumber("latest")`).
    pub async fn latest_block(&self) -> Result<(u64, B256), EngineError> {
        let block: Value = self
            .call("eth_getBlockByNumber", json!(["latest", false]), self.config.timeout_short)
            .await?;
        let method = || "eth_getBlockByNumber".to_string();
        let hash =
            block.get("hash").and_then(Value::as_str).and_then(|h| h.parse().ok()).ok_or_else(
                || EngineError::Decode { method: method(), reason: "no hash".into() },
            )?;
        let number = block
            .get("number")
            .and_then(Value::as_str)
            .and_then(|n| u64::from_str_radix(n.trim_start_matches("0x"), 16).ok())
            .ok_or_else(|| EngineError::Decode { method: method(), reason: "no number".into() })?;
        Ok((number, hash))
    }

    /// Hash of the EL's canonical block `number` (`eth_getBlockByNumber`), `None` if it has none.
    pub async fn block_hash_at(&self, number: u64) -> Result<Option<B256>, EngineError> {
        let block: Value = self
            .call(
                "eth_getBlockByNumber",
                json!([format!("{number:#x}"), false]),
                self.config.timeout_short,
            )
            .await?;
        if block.is_null() {
            return Ok(None);
        }
        let hash =
            block.get("hash").and_then(Value::as_str).ok_or_else(|| EngineError::Decode {
                method: "eth_getBlockByNumber".into(),
                reason: format!("block {number} has no hash"),
            })?;
        hash.parse().map(Some).map_err(|e| EngineError::Decode {
            method: "eth_getBlockByNumber".into(),
            reason: format!("hash {hash}: {e}"),
        })
    }

    /// `engine_newPayloadVn` for a consensus payload (the version of its timestamp's fork).
    pub async fn new_payload(&self, payload: &Payload) -> Result<PayloadStatus, EngineError> {
        let body = to_body(payload)?;
        let fork = self.config.forks.at(payload.timestamp);
        let method = fork.new_payload_method();
        let exec = &body.execution_payload;
        let params = match fork {
            EngineFork::Paris => json!([exec.as_v1()]),
            EngineFork::Shanghai => json!([exec]),
            EngineFork::Cancun => {
                json!([exec, versioned_hashes(exec)?, payload.parent_beacon_block_root])
            }
            EngineFork::Prague => json!([
                exec,
                versioned_hashes(exec)?,
                payload.parent_beacon_block_root,
                body.execution_requests.clone().unwrap_or_default()
            ]),
        };
        let status: PayloadStatus = self.call(method, params, self.config.timeout_long).await?;
        self.note_status(method, payload.number, payload.block_hash, &status);
        Ok(status)
    }

    /// `engine_forkchoiceUpdatedVn`; the version follows the attributes' timestamp, or
    /// `head_timestamp` without attributes.
    pub async fn forkchoice_updated(
        &self,
        state: ForkchoiceState,
        head_timestamp: u64,
        attributes: Option<EnginePayloadAttributes>,
    ) -> Result<ForkchoiceUpdated, EngineError> {
        let ts = attributes.as_ref().map_or(head_timestamp, |a| a.timestamp);
        let fork = self.config.forks.at(ts);
        let method = fork.forkchoice_updated_method();
        let params = match &attributes {
            Some(a) => json!([state, a]),
            None => json!([state, Value::Null]),
        };
        let updated: ForkchoiceUpdated =
            self.call(method, params, self.config.timeout_long).await?;
        self.note_status(method, 0, state.head_block_hash, &updated.payload_status);
        Ok(updated)
    }

    /// The attributes the spec wants for a payload of `fork`: withdrawals (empty) from
    /// Shanghai, the parent beacon block root from Cancun.
    pub fn engine_attributes(
        &self,
        attributes: &crate::types::PayloadAttributes,
        fee_recipient: Address,
    ) -> EnginePayloadAttributes {
        let fork = self.config.forks.at(attributes.timestamp);
        EnginePayloadAttributes {
            timestamp: attributes.timestamp,
            prev_randao: attributes.prev_randao,
            suggested_fee_recipient: fee_recipient,
            withdrawals: fork.has_withdrawals().then(Vec::new),
            parent_beacon_block_root: fork
                .has_beacon_root()
                .then_some(attributes.parent_beacon_block_root),
            ..Default::default()
        }
    }

    /// `engine_getPayloadVn` for a build started with a payload of `timestamp`.
    pub async fn get_payload(
        &self,
        id: PayloadId,
        timestamp: u64,
    ) -> Result<PayloadBody, EngineError> {
        let fork = self.config.forks.at(timestamp);
        let method = fork.get_payload_method();
        let t = self.config.timeout_short;
        let body = match fork {
            EngineFork::Paris => {
                let p: ExecutionPayloadV1 = self.call(method, json!([id]), t).await?;
                PayloadBody { execution_payload: ExecutionPayload::V1(p), execution_requests: None }
            }
            EngineFork::Shanghai => {
                let e: ExecutionPayloadEnvelopeV2 = self.call(method, json!([id]), t).await?;
                PayloadBody {
                    execution_payload: e.execution_payload.into(),
                    execution_requests: None,
                }
            }
            EngineFork::Cancun => {
                let e: ExecutionPayloadEnvelopeV3 = self.call(method, json!([id]), t).await?;
                PayloadBody {
                    execution_payload: ExecutionPayload::V3(e.execution_payload),
                    execution_requests: None,
                }
            }
            EngineFork::Prague => {
                let e: ExecutionPayloadEnvelopeV4 = self.call(method, json!([id]), t).await?;
                PayloadBody {
                    execution_payload: ExecutionPayload::V3(e.envelope_inner.execution_payload),
                    execution_requests: Some(e.execution_requests),
                }
            }
        };
        self.set_state(ElState::Ready);
        Ok(body)
    }

    fn note_status(&self, method: &str, number: u64, hash: B256, status: &PayloadStatus) {
        match &status.status {
            PayloadStatusEnum::Valid => {
                self.set_state(ElState::Ready);
                debug!(%method, number, %hash, "VALID");
            }
            PayloadStatusEnum::Invalid { validation_error } => {
                self.set_state(ElState::Ready);
                warn!(%method, number, %hash, latest_valid_hash = ?status.latest_valid_hash,
                    "execution client rejected the payload (INVALID): {validation_error}");
            }
            PayloadStatusEnum::Syncing | PayloadStatusEnum::Accepted => {
                self.set_state(ElState::Syncing);
                info!(%method, number, %hash, status = status.status.as_str(),
                    "execution client is syncing: it lacks an ancestor of this block");
            }
        }
    }
}
