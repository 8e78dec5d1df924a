//! A small JSON-RPC client over HTTP (reqwest, keep-alive): single calls, batches, and
//! pre-built request bodies for the timed phase.

use std::time::Duration;

use serde::Deserialize;
use serde_json::{Value, json};

use super::LoadgenError;

/// One node's JSON-RPC endpoint.
#[derive(Debug, Clone)]
pub struct RpcClient {
    http: reqwest::Client,
    url: String,
}

/// The `error` member of a JSON-RPC response.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
pub struct RpcErrorObject {
    /// Error code.
    pub code: i64,
    /// Human-readable message (geth's wording on both nodes).
    pub message: String,
}

/// One response of a batch.
#[derive(Debug, Clone, Deserialize)]
pub struct RpcReply {
    /// The request id it answers.
    pub id: Value,
    /// The result, when the call succeeded.
    #[serde(default)]
    pub result: Option<Value>,
    /// The error, when it failed.
    #[serde(default)]
    pub error: Option<RpcErrorObject>,
}

impl RpcReply {
    /// The result, or the error message.
    pub fn into_result(self) -> Result<Value, String> {
        match (self.error, self.result) {
            (Some(e), _) => Err(e.message),
            (None, Some(v)) => Ok(v),
            (None, None) => Ok(Value::Null),
        }
    }
}

impl RpcClient {
    /// A client for `url` with its own connection pool.
    pub fn new(url: &str) -> Result<Self, LoadgenError> {
        let http = reqwest::Client::builder()
            .tcp_nodelay(true)
            .pool_max_idle_per_host(64)
            .timeout(Duration::from_secs(60))
            .build()
            .map_err(|e| LoadgenError::Http { url: url.to_string(), message: e.to_string() })?;
        Ok(Self { http, url: url.to_string() })
    }

    /// The endpoint's URL.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Posts a ready JSON body and returns the raw response bytes.
    pub async fn post(&self, body: String) -> Result<Vec<u8>, LoadgenError> {
        let http_err = |e: reqwest::Error| LoadgenError::Http {
            url: self.url.clone(),
            message: error_chain(e.without_url()),
        };
        let response = self
            .http
            .post(&self.url)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(body)
            .send()
            .await
            .map_err(http_err)?;
        let status = response.status();
        let bytes = response.bytes().await.map_err(http_err)?;
        if !status.is_success() {
            return Err(LoadgenError::Http {
                url: self.url.clone(),
                message: format!("HTTP {status}: {}", String::from_utf8_lossy(&bytes)),
            });
        }
        Ok(bytes.to_vec())
    }

    /// One call; an RPC error becomes [`LoadgenError::Rpc`].
    pub async fn call(&self, method: &str, params: Value) -> Result<Value, LoadgenError> {
        let body = json!({ "jsonrpc": "2.0", "id": 1, "method": method, "params": params });
        let bytes = self.post(body.to_string()).await?;
        let reply: RpcReply = serde_json::from_slice(&bytes).map_err(|e| LoadgenError::Rpc {
            url: self.url.clone(),
            method: method.to_string(),
            message: format!("unreadable response: {e}"),
        })?;
        reply.into_result().map_err(|message| LoadgenError::Rpc {
            url: self.url.clone(),
            method: method.to_string(),
            message,
        })
    }

    /// A batch of calls in one HTTP request; the replies come back in the calls' order, each
    /// the result or the error message.
    pub async fn batch(
        &self,
        calls: &[(&str, Value)],
    ) -> Result<Vec<Result<Value, String>>, LoadgenError> {
        if calls.is_empty() {
            return Ok(Vec::new());
        }
        let body: Vec<Value> = calls
            .iter()
            .enumerate()
            .map(|(i, (method, params))| {
                json!({ "jsonrpc": "2.0", "id": i, "method": method, "params": params })
            })
            .collect();
        let bytes = self.post(Value::Array(body).to_string()).await?;
        let replies = parse_batch(&bytes, calls.len()).map_err(|message| LoadgenError::Rpc {
            url: self.url.clone(),
            method: calls.first().map(|(m, _)| m.to_string()).unwrap_or_default(),
            message,
        })?;
        Ok(replies)
    }

    /// Many calls, split into batches of `size`.
    pub async fn batch_chunked(
        &self,
        calls: &[(&str, Value)],
        size: usize,
    ) -> Result<Vec<Result<Value, String>>, LoadgenError> {
        let mut out = Vec::with_capacity(calls.len());
        for chunk in calls.chunks(size.max(1)) {
            out.extend(self.batch(chunk).await?);
        }
        Ok(out)
    }
}

/// A reqwest error with its sources (the URL is reported beside it already).
fn error_chain(e: reqwest::Error) -> String {
    let mut message = e.to_string();
    let mut source = std::error::Error::source(&e);
    while let Some(s) = source {
        message = format!("{message}: {s}");
        source = s.source();
    }
    message
}

/// Parses a batch response of `n` calls whose ids are `0..n` into replies in id order.
///
/// A server that refuses the whole batch answers with one error object: that becomes the error.
pub fn parse_batch(bytes: &[u8], n: usize) -> Result<Vec<Result<Value, String>>, String> {
    let value: Value =
        serde_json::from_slice(bytes).map_err(|e| format!("unreadable batch response: {e}"))?;
    let replies: Vec<RpcReply> = match value {
        Value::Array(_) => {
            serde_json::from_value(value).map_err(|e| format!("unreadable batch response: {e}"))?
        }
        other => {
            let reply: RpcReply = serde_json::from_value(other)
                .map_err(|e| format!("unreadable batch response: {e}"))?;
            return Err(reply.into_result().err().unwrap_or_else(|| "not a batch".into()));
        }
    };
    let mut out: Vec<Option<Result<Value, String>>> = vec![None; n];
    for reply in replies {
        let slot = reply.id.as_u64().and_then(|id| usize::try_from(id).ok()).filter(|i| *i < n);
        if let Some(i) = slot {
            out[i] = Some(reply.into_result());
        }
    }
    Ok(out.into_iter().map(|r| r.unwrap_or_else(|| Err("no reply in the batch".into()))).collect())
}

/// A JSON-RPC quantity (`"0x1a"`, or a plain number) as u128.
pub fn quantity(value: &Value) -> Option<u128> {
    match value {
        Value::String(s) => {
            let hex = s.strip_prefix("0x").unwrap_or(s);
            if hex.is_empty() {
                return Some(0);
            }
            u128::from_str_radix(hex, 16).ok()
        }
        Value::Number(n) => n.as_u64().map(u128::from),
        _ => None,
    }
}

/// A JSON-RPC quantity as u64.
pub fn quantity_u64(value: &Value) -> Option<u64> {
    quantity(value).and_then(|q| u64::try_from(q).ok())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn quantities_parse() {
        assert_eq!(quantity(&json!("0x0")), Some(0));
        assert_eq!(quantity(&json!("0x")), Some(0));
        assert_eq!(quantity(&json!("0x3b9aca00")), Some(1_000_000_000));
        assert_eq!(quantity(&json!(7)), Some(7));
        assert_eq!(quantity(&json!("zz")), None);
        assert_eq!(quantity(&Value::Null), None);
        assert_eq!(quantity_u64(&json!("0x539")), Some(1337));
    }

    #[test]
    fn batch_replies_come_back_in_id_order() {
        let body = br#"[{"jsonrpc":"2.0","id":2,"result":"0x2"},
            {"jsonrpc":"2.0","id":0,"error":{"code":-32000,"message":"nonce too low"}},
            {"jsonrpc":"2.0","id":1,"result":"0x1"}]"#;
        let replies = parse_batch(body, 4).unwrap();
        assert_eq!(replies[0], Err("nonce too low".to_string()));
        assert_eq!(replies[1], Ok(json!("0x1")));
        assert_eq!(replies[2], Ok(json!("0x2")));
        assert_eq!(replies[3], Err("no reply in the batch".to_string()));
    }

    #[test]
    fn a_refused_batch_is_one_error() {
        let body =
            br#"{"jsonrpc":"2.0","id":null,"error":{"code":-32600,"message":"batch too large"}}"#;
        assert_eq!(parse_batch(body, 3).unwrap_err(), "batch too large");
        assert!(parse_batch(b"garbage", 1).is_err());
    }
}
