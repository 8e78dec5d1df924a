//! JWT authentication of every request on the Engine API port (HTTP and the WS upgrade).
//!
//! A request without a valid `Authorization: Bearer <HS256 token>` whose `iat` is within ±60 s
//! gets HTTP 401 and never reaches a method.

use std::{
    future::Future,
    pin::Pin,
    task::{Context, Poll},
};

use alloy_rpc_types_engine::JwtSecret;
use jsonrpsee::server::{HttpBody, HttpRequest, HttpResponse};
use tandem_shared::jwt;
use tower::{Layer, Service};
use tracing::debug;

/// Tower layer adding [`JwtAuth`].
#[derive(Debug, Clone)]
pub struct JwtAuthLayer {
    secret: JwtSecret,
}

impl JwtAuthLayer {
    /// Authenticates against `secret`.
    pub fn new(secret: JwtSecret) -> Self {
        Self { secret }
    }
}

impl<S> Layer<S> for JwtAuthLayer {
    type Service = JwtAuth<S>;

    fn layer(&self, inner: S) -> Self::Service {
        JwtAuth { inner, secret: self.secret }
    }
}

/// The service that checks the bearer token before the inner service sees the request.
#[derive(Debug, Clone)]
pub struct JwtAuth<S> {
    inner: S,
    secret: JwtSecret,
}

/// Why a request's token was refused (the 401 body).
pub fn check_request<B>(secret: &JwtSecret, request: &HttpRequest<B>) -> Result<(), String> {
    let header = request
        .headers()
        .get(http::header::AUTHORIZATION)
        .ok_or_else(|| "missing Authorization header".to_string())?;
    let value = header.to_str().map_err(|_| "malformed Authorization header".to_string())?;
    let token = value
        .strip_prefix("Bearer ")
        .or_else(|| value.strip_prefix("bearer "))
        .ok_or_else(|| "Authorization header is not a Bearer token".to_string())?;
    jwt::verify_token(secret, token.trim(), jwt::unix_now()).map_err(|e| e.to_string())
}

type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send + 'static>>;

impl<S, B> Service<HttpRequest<B>> for JwtAuth<S>
where
    S: Service<HttpRequest<B>, Response = HttpResponse<HttpBody>>,
    S::Future: Send + 'static,
{
    type Response = HttpResponse<HttpBody>;
    type Error = S::Error;
    type Future = BoxFuture<Result<Self::Response, Self::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: HttpRequest<B>) -> Self::Future {
        match check_request(&self.secret, &request) {
            Ok(()) => Box::pin(self.inner.call(request)),
            Err(reason) => {
                debug!(%reason, "engine API request refused");
                let mut response = HttpResponse::new(HttpBody::from(format!("{reason}\n")));
                *response.status_mut() = http::StatusCode::UNAUTHORIZED;
                Box::pin(async move { Ok(response) })
            }
        }
    }
}
