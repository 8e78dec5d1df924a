//! The HTTP and WS servers: `--http.*`, `--ws.*` and `--rpc.*` flags, CORS, the virtual-host
//! allow-list, the WebSocket origin check, body-size and batch limits (a batch's response has
//! its own cap, geth's 25 MB, below a single call's `--rpc.max-response-size`).
//!
//! Browsers and DNS rebinding, as geth: a web page can make the browser send requests to a
//! node on `localhost`. HTTP requests must name an allowed virtual host (`--http.vhosts`,
//! default `localhost`; an IP literal always passes, since a rebinding attack needs a name);
//! reading a response from another origin needs CORS (`--http.corsdomain`, none by default).
//! WebSocket upgrades are not covered by CORS, so their `Origin` is checked (`--ws.origins`,
//! default: only `http://localhost` and `http://127.0.0.1`, any port); an upgrade without an
//! `Origin` header does not come from a browser and is accepted.

use std::{
    net::{IpAddr, Ipv4Addr, SocketAddr},
    sync::Arc,
    task::{Context, Poll},
    time::Duration,
};

use futures::future::{Either, Ready, ready};
use http::{HeaderValue, Method, StatusCode};
use jsonrpsee::{
    RpcModule,
    core::{
        middleware::{Batch, BatchEntry, Notification, Request, RpcServiceBuilder, RpcServiceT},
        server::{BatchResponseBuilder, MethodResponse},
    },
    server::{
        BatchRequestConfig, HttpBody, HttpRequest, HttpResponse, PingConfig, Server, ServerConfig,
        ServerHandle,
    },
};
use tower_http::cors::{AllowOrigin, Any, CorsLayer};

use super::{RpcConfig, RpcContext, eth_module};

/// Namespaces served when `--http.api`/`--ws.api` are not given.
pub const DEFAULT_APIS: &str = "eth,net,web3,txpool,l1";

/// JSON-RPC server flags, named as reth and geth name them.
#[derive(Debug, Clone, clap::Args)]
pub struct RpcArgs {
    /// Enable the HTTP JSON-RPC server.
    #[arg(long = "http")]
    pub http: bool,
    /// HTTP listen address.
    #[arg(long = "http.addr", default_value_t = IpAddr::V4(Ipv4Addr::LOCALHOST))]
    pub http_addr: IpAddr,
    /// HTTP listen port.
    #[arg(long = "http.port", default_value_t = 8545)]
    pub http_port: u16,
    /// Namespaces served over HTTP (comma-separated: eth,net,web3,txpool,debug).
    #[arg(long = "http.api", default_value = DEFAULT_APIS)]
    pub http_api: String,
    /// Origins allowed by CORS (comma-separated, `*` for any); none by default.
    #[arg(long = "http.corsdomain")]
    pub http_corsdomain: Option<String>,
    /// Virtual hostnames accepted in the `Host` header (comma-separated, `*` for any); an IP
    /// address is always accepted.
    #[arg(long = "http.vhosts", default_value = "localhost")]
    pub http_vhosts: String,
    /// Enable the WS JSON-RPC server.
    #[arg(long = "ws")]
    pub ws: bool,
    /// WS listen address.
    #[arg(long = "ws.addr", default_value_t = IpAddr::V4(Ipv4Addr::LOCALHOST))]
    pub ws_addr: IpAddr,
    /// WS listen port.
    #[arg(long = "ws.port", default_value_t = 8546)]
    pub ws_port: u16,
    /// Namespaces served over WS.
    #[arg(long = "ws.api", default_value = DEFAULT_APIS)]
    pub ws_api: String,
    /// Origins allowed to open WS connections (comma-separated, `*` for any); by default only
    /// `http://localhost` and `http://127.0.0.1` (any port). A connection without an `Origin`
    /// header (not a browser) is always accepted.
    #[arg(long = "ws.origins")]
    pub ws_origins: Option<String>,
    /// Gas cap of `eth_call`/`eth_estimateGas`/`debug_traceCall`.
    #[arg(long = "rpc.gascap", default_value_t = 50_000_000)]
    pub gas_cap: u64,
    /// Time-out of one `eth_call`/`eth_estimateGas`, e.g. `5s`.
    #[arg(long = "rpc.evmtimeout", default_value = "5s", value_parser = humantime_duration)]
    pub evm_timeout: Duration,
    /// Widest block range of one `eth_getLogs`.
    #[arg(long = "rpc.max-logs-range", default_value_t = 10_000)]
    pub max_logs_range: u64,
    /// Most logs one `eth_getLogs` returns.
    #[arg(long = "rpc.max-logs", default_value_t = 20_000)]
    pub max_logs: usize,
    /// Largest request body, in MB.
    #[arg(long = "rpc.max-request-size", default_value_t = 10)]
    pub max_request_mb: u32,
    /// Largest response body, in MB.
    #[arg(long = "rpc.max-response-size", default_value_t = 160)]
    pub max_response_mb: u32,
    /// Most calls in one batch request.
    #[arg(long = "rpc.max-batch-size", default_value_t = 1000)]
    pub max_batch: u32,
    /// Largest response to one batch request, in bytes (geth's flag and default).
    #[arg(long = "rpc.batch-response-max-size", default_value_t = 25_000_000)]
    pub max_batch_response_bytes: u32,
    /// Most concurrent connections per server.
    #[arg(long = "rpc.max-connections", default_value_t = 500)]
    pub max_connections: u32,
    /// Most heavy requests run at once, over all of them: eth_call, eth_estimateGas,
    /// eth_createAccessList, debug_trace*, eth_getProof, eth_getLogs, eth_getFilterLogs,
    /// eth_getFilterChanges, eth_feeHistory, txpool_content/inspect, l1_blockEvents. Others wait
    /// for a slot until their --rpc.evmtimeout deadline. Default: the cores minus two, at least 1.
    #[arg(
        long = "rpc.max-tracing-requests",
        default_value_t = super::default_max_heavy_requests(),
        value_parser = heavy_requests
    )]
    pub max_heavy_requests: usize,
    /// Most subscriptions (`eth_subscribe`) one WebSocket connection may hold (reth's flag).
    #[arg(long = "rpc.max-subscriptions-per-connection", default_value_t = 1024)]
    pub max_subscriptions_per_connection: u32,
    /// A connection (HTTP or WebSocket) whose client accepts none of the bytes sent to it for
    /// this long, because it stopped reading or vanished, is reset and its slot freed.
    #[arg(long = "rpc.stalled-client-timeout", default_value = "30s", value_parser = humantime_duration)]
    pub stalled_client_timeout: Duration,
}

fn heavy_requests(s: &str) -> Result<usize, String> {
    match s.trim().parse::<usize>() {
        Ok(0) => Err("must be at least 1".into()),
        Ok(n) if n > super::heavy::MAX_HEAVY_REQUESTS => {
            Err(format!("must be at most {}", super::heavy::MAX_HEAVY_REQUESTS))
        }
        Ok(n) => Ok(n),
        Err(e) => Err(e.to_string()),
    }
}

fn humantime_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let (number, scale) = if let Some(ms) = s.strip_suffix("ms") {
        (ms, 0.001)
    } else if let Some(secs) = s.strip_suffix('s') {
        (secs, 1.0)
    } else if let Some(mins) = s.strip_suffix('m') {
        (mins, 60.0)
    } else {
        (s, 1.0)
    };
    let value: f64 = number.trim().parse().map_err(|_| format!("invalid duration: {s}"))?;
    if !value.is_finite() || value < 0.0 {
        return Err(format!("invalid duration: {s}"));
    }
    Ok(Duration::from_secs_f64(value * scale))
}

impl RpcArgs {
    /// The limits these flags set.
    pub fn config(&self) -> RpcConfig {
        RpcConfig {
            gas_cap: self.gas_cap,
            evm_timeout: self.evm_timeout,
            max_logs_range: self.max_logs_range,
            max_logs: self.max_logs,
            max_request_bytes: self.max_request_mb.saturating_mul(1024 * 1024),
            max_response_bytes: self.max_response_mb.saturating_mul(1024 * 1024),
            max_batch: self.max_batch,
            max_batch_response_bytes: self.max_batch_response_bytes,
            max_connections: self.max_connections,
            max_heavy_requests: self.max_heavy_requests,
            max_subscriptions_per_connection: self.max_subscriptions_per_connection,
            stalled_client_timeout: self.stalled_client_timeout,
            ..RpcConfig::default()
        }
    }

    /// The HTTP server settings, if `--http` is on.
    pub fn http_server(&self) -> Option<ServerSettings> {
        self.http.then(|| ServerSettings {
            addr: SocketAddr::new(self.http_addr, self.http_port),
            apis: split(&self.http_api),
            cors: self.http_corsdomain.clone(),
            vhosts: split(&self.http_vhosts),
            ws_origins: Vec::new(),
        })
    }

    /// The WS server settings, if `--ws` is on.
    pub fn ws_server(&self) -> Option<ServerSettings> {
        self.ws.then(|| ServerSettings {
            addr: SocketAddr::new(self.ws_addr, self.ws_port),
            apis: split(&self.ws_api),
            cors: None,
            vhosts: vec!["*".into()],
            ws_origins: self.ws_origins.as_deref().map(split).unwrap_or_default(),
        })
    }
}

fn split(list: &str) -> Vec<String> {
    list.split(',').map(|s| s.trim().to_string()).filter(|s| !s.is_empty()).collect()
}

/// Where and what one server serves.
#[derive(Debug, Clone)]
pub struct ServerSettings {
    /// Listen address (port 0 picks a free one).
    pub addr: SocketAddr,
    /// Namespaces served (`eth`, `net`, `web3`, `txpool`, `debug`).
    pub apis: Vec<String>,
    /// CORS origins (comma-separated or `*`).
    pub cors: Option<String>,
    /// Accepted `Host` names (`*` for any; an IP address always passes).
    pub vhosts: Vec<String>,
    /// WS only: origins a WebSocket upgrade may come from (`*` for any; empty: localhost).
    pub ws_origins: Vec<String>,
}

/// The running servers; dropping a handle does not stop its server, [`RpcServerHandles::stop`]
/// does.
#[derive(Debug, Clone, Default)]
pub struct RpcServerHandles {
    /// HTTP address and handle.
    pub http: Option<(SocketAddr, ServerHandle)>,
    /// WS address and handle.
    pub ws: Option<(SocketAddr, ServerHandle)>,
}

impl RpcServerHandles {
    /// Stops both servers.
    pub fn stop(&self) {
        for (_, handle) in self.http.iter().chain(self.ws.iter()) {
            let _ = handle.stop();
        }
    }
}

/// Why a server could not start.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    /// Binding the address failed.
    #[error("rpc server on {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// The I/O error.
        source: std::io::Error,
    },
    /// A CORS origin, virtual host or WS origin could not be parsed.
    #[error("rpc server: invalid {what}: {value}")]
    Invalid {
        /// Which setting.
        what: &'static str,
        /// The value.
        value: String,
    },
    /// An unknown namespace was asked for.
    #[error("rpc server: unknown api namespace {0:?} (known: eth, net, web3, txpool, debug)")]
    UnknownApi(String),
}

/// The methods of `module` whose namespace is in `apis`.
pub fn select_apis(
    mut module: RpcModule<()>,
    apis: &[String],
) -> Result<RpcModule<()>, ServerError> {
    const KNOWN: [&str; 6] = ["eth", "net", "web3", "txpool", "debug", "l1"];
    if let Some(unknown) = apis.iter().find(|a| !KNOWN.contains(&a.as_str())) {
        return Err(ServerError::UnknownApi(unknown.clone()));
    }
    let names: Vec<&'static str> = module.method_names().collect();
    for name in names {
        let namespace = name.split('_').next().unwrap_or_default();
        if !apis.iter().any(|a| a == namespace) {
            module.remove_method(name);
        }
    }
    Ok(module)
}

fn cors_layer(cors: Option<&str>) -> Result<CorsLayer, ServerError> {
    let layer = CorsLayer::new()
        .allow_methods([Method::GET, Method::POST, Method::OPTIONS])
        .allow_headers(Any);
    Ok(match cors.map(str::trim) {
        None | Some("") => CorsLayer::new(),
        Some("*") => layer.allow_origin(Any),
        Some(list) => {
            let origins = split(list)
                .into_iter()
                .map(|o| {
                    HeaderValue::from_str(&o)
                        .map_err(|_| ServerError::Invalid { what: "CORS origin", value: o })
                })
                .collect::<Result<Vec<_>, _>>()?;
            layer.allow_origin(AllowOrigin::list(origins))
        }
    })
}

/// The answer to a request a browser guard refuses (geth's status and words).
fn forbidden(reason: &'static str) -> HttpResponse {
    HttpResponse::builder()
        .status(StatusCode::FORBIDDEN)
        .header(http::header::CONTENT_TYPE, "text/plain")
        .body(HttpBody::from(format!("{reason}\n")))
        .unwrap_or_else(|_| jsonrpsee::server::http::response::denied())
}

/// The host name of an authority (`name`, `name:port`, `[v6]:port`, a bare IPv6 address).
fn host_name(authority: &str) -> &str {
    if let Some(rest) = authority.strip_prefix('[') {
        return rest.split(']').next().unwrap_or(rest);
    }
    match authority.rsplit_once(':') {
        Some((name, _port)) if !name.contains(':') => name,
        _ => authority,
    }
}

/// One allowed WebSocket origin: a missing scheme or port matches any (geth's rule).
#[derive(Debug, Clone, PartialEq, Eq)]
struct OriginRule {
    scheme: Option<String>,
    host: String,
    port: Option<String>,
}

impl OriginRule {
    /// `scheme://host:port`, each part but the host optional; `None` if there is no host.
    fn parse(text: &str) -> Option<Self> {
        let text = text.trim().to_ascii_lowercase();
        let (scheme, rest) = match text.split_once("://") {
            Some((scheme, rest)) => (Some(scheme.to_string()), rest.trim_end_matches('/')),
            None => (None, text.trim_end_matches('/')),
        };
        let rest = rest.to_string();
        let (host, port) = if let Some(inner) = rest.strip_prefix('[') {
            let (host, after) = inner.split_once(']')?;
            (host.to_string(), after.strip_prefix(':').map(str::to_string))
        } else {
            match rest.rsplit_once(':') {
                Some((host, port)) if !host.contains(':') => {
                    (host.to_string(), Some(port.to_string()))
                }
                _ => (rest.clone(), None),
            }
        };
        if host.is_empty()
            || host.contains(['/', '?', '#', '@'])
            || port.as_ref().is_some_and(|p| p.parse::<u16>().is_err())
        {
            return None;
        }
        Some(Self { scheme, host, port })
    }

    fn allows(&self, origin: &Self) -> bool {
        self.scheme.as_ref().is_none_or(|s| Some(s) == origin.scheme.as_ref())
            && self.host == origin.host
            && self.port.as_ref().is_none_or(|p| Some(p) == origin.port.as_ref())
    }
}

/// The browser-facing checks of one server: the `Host` header against the virtual hosts, and
/// the `Origin` of a WebSocket upgrade against the allowed origins.
#[derive(Debug)]
struct BrowserGuard {
    /// Accepted host names and `name:port` authorities, lowercase; `None` accepts any.
    vhosts: Option<Vec<String>>,
    /// Accepted WebSocket origins; `None` checks none (HTTP servers, or `*`).
    origins: Option<Vec<OriginRule>>,
}

impl BrowserGuard {
    fn new(vhosts: &[String], ws: bool, ws_origins: &[String]) -> Result<Self, ServerError> {
        let vhosts = (!vhosts.is_empty() && !vhosts.iter().any(|h| h == "*"))
            .then(|| vhosts.iter().map(|h| h.to_ascii_lowercase()).collect());
        let origins = if !ws || ws_origins.iter().any(|o| o == "*") {
            None
        } else if ws_origins.is_empty() {
            Some(
                ["http://localhost", "http://127.0.0.1"]
                    .into_iter()
                    .filter_map(OriginRule::parse)
                    .collect(),
            )
        } else {
            let rules = ws_origins
                .iter()
                .map(|o| {
                    OriginRule::parse(o)
                        .ok_or_else(|| ServerError::Invalid { what: "WS origin", value: o.clone() })
                })
                .collect::<Result<Vec<_>, _>>()?;
            Some(rules)
        };
        Ok(Self { vhosts, origins })
    }

    /// Why `request` is refused, if it is.
    fn refusal<B>(&self, request: &HttpRequest<B>) -> Option<&'static str> {
        const BAD_HOST: &str = "invalid host specified";
        if let Some(vhosts) = &self.vhosts {
            let authority = match request.headers().get(http::header::HOST) {
                Some(value) => match value.to_str() {
                    Ok(text) => Some(text.to_ascii_lowercase()),
                    Err(_) => return Some(BAD_HOST),
                },
                None => request.uri().authority().map(|a| a.as_str().to_ascii_lowercase()),
            };
            // No host at all is no browser (they always send one): served, as geth does.
            if let Some(authority) = authority {
                let name = host_name(&authority);
                let allowed = name.parse::<IpAddr>().is_ok()
                    || vhosts.iter().any(|v| *v == authority || *v == name);
                if !allowed {
                    return Some(BAD_HOST);
                }
            }
        }
        if let (Some(rules), Some(origin)) =
            (&self.origins, request.headers().get(http::header::ORIGIN))
        {
            const BAD_ORIGIN: &str = "websocket: request origin not allowed";
            let origin = origin.to_str().ok().and_then(OriginRule::parse);
            if !origin.is_some_and(|o| rules.iter().any(|rule| rule.allows(&o))) {
                return Some(BAD_ORIGIN);
            }
        }
        None
    }
}

#[cfg(test)]
impl BrowserGuard {
    fn refuses(&self, host: Option<&str>, origin: Option<&str>) -> bool {
        let mut request = http::Request::builder().uri("/");
        if let Some(host) = host {
            request = request.header(http::header::HOST, host);
        }
        if let Some(origin) = origin {
            request = request.header(http::header::ORIGIN, origin);
        }
        request.body(()).map(|r| self.refusal(&r).is_some()).unwrap_or(true)
    }
}

/// Layer of [`BrowserGuard`] for the server's HTTP middleware.
#[derive(Debug, Clone)]
struct BrowserGuardLayer(Arc<BrowserGuard>);

impl<S> tower::Layer<S> for BrowserGuardLayer {
    type Service = BrowserGuardService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        BrowserGuardService { inner, guard: self.0.clone() }
    }
}

/// A service behind a [`BrowserGuard`]: refused requests never reach it.
#[derive(Debug, Clone)]
struct BrowserGuardService<S> {
    inner: S,
    guard: Arc<BrowserGuard>,
}

impl<S, B> tower::Service<HttpRequest<B>> for BrowserGuardService<S>
where
    S: tower::Service<HttpRequest<B>, Response = HttpResponse>,
{
    type Response = HttpResponse;
    type Error = S::Error;
    type Future = Either<S::Future, Ready<Result<HttpResponse, S::Error>>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: HttpRequest<B>) -> Self::Future {
        match self.guard.refusal(&request) {
            Some(reason) => {
                tracing::debug!(
                    reason,
                    host = ?request.headers().get(http::header::HOST),
                    origin = ?request.headers().get(http::header::ORIGIN),
                    "RPC request refused"
                );
                Either::Right(ready(Ok(forbidden(reason))))
            }
            None => Either::Left(self.inner.call(request)),
        }
    }
}

/// Caps the response to a batch at its own limit, below a single call's (geth: 1,000 calls,
/// 25 MB): a batch answers calls in order until the next one would pass the limit, then the
/// whole batch is refused, so one request cannot make the node build a huge answer.
#[derive(Debug, Clone)]
struct BatchResponseLimit<S> {
    inner: S,
    limit: usize,
}

impl<S> RpcServiceT for BatchResponseLimit<S>
where
    S: RpcServiceT<
            MethodResponse = MethodResponse,
            BatchResponse = MethodResponse,
            NotificationResponse = MethodResponse,
        > + Send
        + Sync
        + Clone
        + 'static,
{
    type MethodResponse = MethodResponse;
    type NotificationResponse = MethodResponse;
    type BatchResponse = MethodResponse;

    fn call<'a>(
        &self,
        request: Request<'a>,
    ) -> impl Future<Output = Self::MethodResponse> + Send + 'a {
        self.inner.call(request)
    }

    fn batch<'a>(&self, batch: Batch<'a>) -> impl Future<Output = Self::BatchResponse> + Send + 'a {
        // As jsonrpsee's own batch loop (calls in order, notifications answered by nothing),
        // with this server's batch limit.
        let service = self.inner.clone();
        let limit = self.limit;
        async move {
            let mut response = BatchResponseBuilder::new_with_limit(limit);
            let mut got_notification = false;
            for entry in batch {
                let answer = match entry {
                    Ok(BatchEntry::Call(request)) => service.call(request).await,
                    Ok(BatchEntry::Notification(notification)) => {
                        got_notification = true;
                        service.notification(notification).await;
                        continue;
                    }
                    Err(error) => {
                        let (error, id) = error.into_parts();
                        MethodResponse::error(id, error)
                    }
                };
                if let Err(too_big) = response.append(answer) {
                    return too_big;
                }
            }
            if response.is_empty() && got_notification {
                MethodResponse::notification()
            } else {
                MethodResponse::from_batch(response.finish())
            }
        }
    }

    fn notification<'a>(
        &self,
        notification: Notification<'a>,
    ) -> impl Future<Output = Self::NotificationResponse> + Send + 'a {
        self.inner.notification(notification)
    }
}

/// Binds an RPC server's listening socket; its connections are reset by the kernel when their
/// client accepts nothing for `stalled`.
///
/// Accepted sockets inherit `TCP_USER_TIMEOUT`. It is needed because jsonrpsee's send task,
/// blocked writing to a client that stopped reading (zero window), never sees the connection's
/// end: without it such a client would hold its socket and connection slot for ever.
fn bind_listener(addr: SocketAddr, stalled: Duration) -> std::io::Result<std::net::TcpListener> {
    use socket2::{Domain, Protocol, Socket, Type};
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    socket.set_reuse_address(true)?;
    socket.set_tcp_user_timeout(Some(stalled))?;
    socket.set_nonblocking(true)?;
    socket.bind(&addr.into())?;
    socket.listen(1024)?;
    Ok(socket.into())
}

async fn start_one(
    ctx: &Arc<RpcContext>,
    settings: &ServerSettings,
    ws: bool,
) -> Result<(SocketAddr, ServerHandle), ServerError> {
    let config = &ctx.config;
    let builder = ServerConfig::builder()
        .max_request_body_size(config.max_request_bytes)
        .max_response_body_size(config.max_response_bytes)
        .max_connections(config.max_connections)
        .set_batch_request_config(BatchRequestConfig::Limit(config.max_batch));
    // A WebSocket connection holds a bounded number of subscriptions and of queued messages,
    // and one that stops answering pings (a client that does not read) is closed.
    let ping = PingConfig::new()
        .ping_interval(config.ws_ping_interval)
        .inactive_limit(config.ws_ping_interval.saturating_mul(2));
    let builder = builder
        .max_subscriptions_per_connection(config.max_subscriptions_per_connection)
        .set_message_buffer_capacity(config.ws_message_buffer.max(1))
        .enable_ws_ping(ping);
    let server_config = if ws { builder.ws_only() } else { builder.http_only() }.build();
    let middleware = tower::ServiceBuilder::new()
        .layer(cors_layer(settings.cors.as_deref())?)
        .layer(BrowserGuardLayer(Arc::new(BrowserGuard::new(
            &settings.vhosts,
            ws,
            &settings.ws_origins,
        )?)));
    let limit = usize::try_from(config.max_batch_response_bytes).unwrap_or(usize::MAX);
    let rpc_middleware =
        RpcServiceBuilder::new().layer_fn(move |inner| BatchResponseLimit { inner, limit });
    let listener = bind_listener(settings.addr, config.stalled_client_timeout)
        .map_err(|source| ServerError::Bind { addr: settings.addr, source })?;
    let server = Server::builder()
        .set_config(server_config)
        .set_http_middleware(middleware)
        .set_rpc_middleware(rpc_middleware)
        .build_from_tcp(listener)
        .map_err(|source| ServerError::Bind { addr: settings.addr, source })?;
    let addr =
        server.local_addr().map_err(|source| ServerError::Bind { addr: settings.addr, source })?;
    let module = select_apis(eth_module(ctx.clone()), &settings.apis)?;
    tracing::info!(%addr, apis = ?settings.apis, transport = if ws { "ws" } else { "http" }, "RPC server started");
    Ok((addr, server.start(module)))
}

/// Starts the HTTP and/or WS servers over `ctx`.
pub async fn start_http_ws(
    ctx: Arc<RpcContext>,
    http: Option<ServerSettings>,
    ws: Option<ServerSettings>,
) -> Result<RpcServerHandles, ServerError> {
    let mut handles = RpcServerHandles::default();
    if let Some(settings) = &http {
        handles.http = Some(start_one(&ctx, settings, false).await?);
    }
    if let Some(settings) = &ws {
        match start_one(&ctx, settings, true).await {
            Ok(handle) => handles.ws = Some(handle),
            Err(error) => {
                handles.stop();
                return Err(error);
            }
        }
    }
    Ok(handles)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn list(items: &[&str]) -> Vec<String> {
        items.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn virtual_hosts_accept_listed_names_and_any_ip_literal() {
        let guard = BrowserGuard::new(&list(&["localhost"]), false, &[]).unwrap();
        for ok in ["localhost", "localhost:8545", "LOCALHOST:1", "127.0.0.1:8545", "10.0.0.7"] {
            assert!(!guard.refuses(Some(ok), None), "{ok}");
        }
        for ok in ["[::1]:8545", "::1", "[fe80::1]"] {
            assert!(!guard.refuses(Some(ok), None), "{ok}");
        }
        // A name a rebinding attacker controls, however it resolves, is refused.
        for bad in
            ["evil.example", "evil.example:8545", "localhost.evil.example", "127.0.0.1.nip.io"]
        {
            assert!(guard.refuses(Some(bad), None), "{bad}");
        }
        // Not a browser: no Host at all is served.
        assert!(!guard.refuses(None, None));
        // `*` accepts any; an HTTP server does not look at Origin (CORS governs reads).
        let any = BrowserGuard::new(&list(&["*"]), false, &[]).unwrap();
        assert!(!any.refuses(Some("evil.example"), Some("https://evil.example")));
        // An entry with a port accepts that port only.
        let port = BrowserGuard::new(&list(&["node.lan:8545"]), false, &[]).unwrap();
        assert!(!port.refuses(Some("node.lan:8545"), None));
        assert!(port.refuses(Some("node.lan:9999"), None));
    }

    #[test]
    fn websocket_origins_default_to_localhost_and_follow_the_flag() {
        let guard = BrowserGuard::new(&list(&["*"]), true, &[]).unwrap();
        assert!(!guard.refuses(Some("localhost:8546"), None), "no Origin: not a browser");
        for ok in ["http://localhost", "http://localhost:3000", "http://127.0.0.1:8080"] {
            assert!(!guard.refuses(None, Some(ok)), "{ok}");
        }
        for bad in [
            "https://evil.example",
            "http://localhost.evil.example",
            "https://localhost",
            "null",
            "file://",
        ] {
            assert!(guard.refuses(None, Some(bad)), "{bad}");
        }
        let listed =
            BrowserGuard::new(&list(&["*"]), true, &list(&["https://app.example"])).unwrap();
        assert!(!listed.refuses(None, Some("https://app.example")));
        assert!(!listed.refuses(None, Some("https://APP.example:443")));
        assert!(listed.refuses(None, Some("http://app.example")));
        assert!(listed.refuses(None, Some("http://localhost")));
        let any = BrowserGuard::new(&list(&["*"]), true, &list(&["*"])).unwrap();
        assert!(!any.refuses(None, Some("https://evil.example")));
        assert!(BrowserGuard::new(&[], true, &list(&["http://"])).is_err());
    }

    #[test]
    fn cli_defaults_guard_browsers() {
        use clap::Parser;
        #[derive(Parser)]
        struct Cli {
            #[command(flatten)]
            rpc: RpcArgs,
        }
        let cli = Cli::parse_from(["tandem-el", "--http", "--ws"]);
        let http = cli.rpc.http_server().unwrap();
        assert_eq!(http.vhosts, ["localhost"]);
        assert_eq!(http.cors, None);
        let ws = cli.rpc.ws_server().unwrap();
        assert!(ws.ws_origins.is_empty());
        assert_eq!(cli.rpc.config().max_batch, 1000);
        assert_eq!(cli.rpc.config().max_batch_response_bytes, 25_000_000);
        let cli = Cli::parse_from(["tandem-el", "--ws", "--ws.origins", "https://a.example, *"]);
        assert_eq!(cli.rpc.ws_server().unwrap().ws_origins, ["https://a.example", "*"]);
    }
}
