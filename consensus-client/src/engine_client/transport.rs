//! JSON-RPC 2.0 over HTTP/1.1 with a fresh HS256 bearer token per request.
//!
//! One TCP connection per call: the EL is on the same host, a connect costs microseconds, and
//! an EL restart never leaves a dead pooled connection behind.

use alloy_rpc_types_engine::JwtSecret;
use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::Request;
use hyper::header::{AUTHORIZATION, CONTENT_TYPE, HOST};
use hyper_util::rt::TokioIo;
use std::time::Duration;
use thiserror::Error;
use tokio::net::TcpStream;

/// Largest response accepted (a full payload with blobs fits easily).
const MAX_RESPONSE_BYTES: usize = 64 * 1024 * 1024;

/// A failure below JSON-RPC: the request may not have reached the EL, so it may be retried.
#[derive(Debug, Error)]
pub enum TransportError {
    /// TCP connect failed (the EL is down or not listening yet).
    #[error("cannot connect to {addr}: {source}")]
    Connect {
        /// host:port.
        addr: String,
        /// The socket error.
        source: std::io::Error,
    },
    /// The HTTP exchange failed.
    #[error("HTTP error talking to {addr}: {reason}")]
    Http {
        /// host:port.
        addr: String,
        /// What failed.
        reason: String,
    },
    /// The EL answered with an HTTP status other than 200 (401/403: wrong JWT secret).
    #[error("{addr} answered HTTP {status}: {body}")]
    Status {
        /// host:port.
        addr: String,
        /// HTTP status.
        status: u16,
        /// Start of the body.
        body: String,
    },
    /// No answer within the method's timeout.
    #[error("{method} to {addr} timed out after {timeout:?}")]
    Timeout {
        /// host:port.
        addr: String,
        /// The JSON-RPC method.
        method: String,
        /// The limit.
        timeout: Duration,
    },
    /// The token could not be signed.
    #[error("cannot sign the Engine API JWT: {0}")]
    Jwt(String),
}

impl TransportError {
    /// Whether retrying can help (not for authentication failures: the secret will not change).
    pub fn is_retryable(&self) -> bool {
        match self {
            Self::Status { status, .. } => !matches!(status, 401 | 403),
            Self::Jwt(_) => false,
            _ => true,
        }
    }
}

/// Where and how to reach the EL.
#[derive(Clone)]
pub struct HttpTransport {
    host: String,
    port: u16,
    path: String,
    secret: JwtSecret,
}

impl std::fmt::Debug for HttpTransport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "HttpTransport(http://{}:{}{})", self.host, self.port, self.path)
    }
}

impl HttpTransport {
    /// Parses an `http://host:port[/path]` URL.
    pub fn new(url: &str, secret: JwtSecret) -> Result<Self, String> {
        let uri: hyper::Uri = url.parse().map_err(|e| format!("invalid engine URL {url}: {e}"))?;
        match uri.scheme_str() {
            Some("http") => {}
            other => {
                return Err(format!(
                    "engine URL {url}: scheme {other:?} not supported, use http:// (the Engine API is local and JWT-authenticated)"
                ));
            }
        }
        let host = uri.host().ok_or_else(|| format!("engine URL {url} has no host"))?;
        let host = host.trim_start_matches('[').trim_end_matches(']').to_string();
        let port = uri.port_u16().unwrap_or(80);
        let path = uri.path_and_query().map_or("/", |p| p.as_str()).to_string();
        Ok(Self { host, port, path, secret })
    }

    /// `host:port`.
    pub fn addr(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }

    /// Posts `body` and returns the response body; the whole exchange is bounded by `timeout`.
    pub async fn post(
        &self,
        method: &str,
        body: Vec<u8>,
        timeout: Duration,
    ) -> Result<Bytes, TransportError> {
        let addr = self.addr();
        match tokio::time::timeout(timeout, self.exchange(&addr, body)).await {
            Ok(result) => result,
            Err(_) => Err(TransportError::Timeout { addr, method: method.to_string(), timeout }),
        }
    }

    async fn exchange(&self, addr: &str, body: Vec<u8>) -> Result<Bytes, TransportError> {
        let token = tandem_shared::jwt::issue_token(&self.secret, tandem_shared::jwt::unix_now())
            .map_err(|e| TransportError::Jwt(e.to_string()))?;
        let http = |reason: String| TransportError::Http { addr: addr.to_string(), reason };
        let stream = TcpStream::connect((self.host.as_str(), self.port))
            .await
            .map_err(|source| TransportError::Connect { addr: addr.to_string(), source })?;
        let _ = stream.set_nodelay(true);
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|e| http(e.to_string()))?;
        let driver = tokio::spawn(conn);
        let request = Request::post(self.path.as_str())
            .header(HOST, addr)
            .header(CONTENT_TYPE, "application/json")
            .header(AUTHORIZATION, format!("Bearer {token}"))
            .body(Full::new(Bytes::from(body)))
            .map_err(|e| http(e.to_string()))?;
        let response = sender.send_request(request).await.map_err(|e| http(e.to_string()));
        let result = match response {
            Ok(response) => {
                let status = response.status().as_u16();
                let bytes = Limited::new(response.into_body(), MAX_RESPONSE_BYTES)
                    .collect()
                    .await
                    .map(|c| c.to_bytes())
                    .map_err(|e| http(e.to_string()));
                match bytes {
                    Ok(bytes) if status == 200 => Ok(bytes),
                    Ok(bytes) => Err(TransportError::Status {
                        addr: addr.to_string(),
                        status,
                        body: String::from_utf8_lossy(&bytes[..bytes.len().min(200)]).into_owned(),
                    }),
                    Err(e) => Err(e),
                }
            }
            Err(e) => Err(e),
        };
        driver.abort();
        result
    }
}
