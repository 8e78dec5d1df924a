//! The HTTP and WS servers: `--http.*`, `--ws.*` and `--rpc.*` flags, CORS, the virtual-host
//! allow-list, body-size and batch limits.

use std::{
    net::{IpAddr, Ipv4Addr, SocketAddr},
    sync::Arc,
    time::Duration,
};

use http::{HeaderValue, Method};
use jsonrpsee::{
    RpcModule,
    server::{
        BatchRequestConfig, Server, ServerConfig, ServerHandle, middleware::http::HostFilterLayer,
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
    /// Virtual hostnames accepted in the `Host` header (comma-separated, `*` for any).
    #[arg(long = "http.vhosts", default_value = "*")]
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
    /// Origins allowed to open WS connections (comma-separated, `*` for any).
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
    /// Most concurrent connections per server.
    #[arg(long = "rpc.max-connections", default_value_t = 500)]
    pub max_connections: u32,
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
            max_connections: self.max_connections,
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
        })
    }

    /// The WS server settings, if `--ws` is on.
    pub fn ws_server(&self) -> Option<ServerSettings> {
        self.ws.then(|| ServerSettings {
            addr: SocketAddr::new(self.ws_addr, self.ws_port),
            apis: split(&self.ws_api),
            cors: self.ws_origins.clone(),
            vhosts: vec!["*".into()],
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
    /// Accepted `Host` names (`*` for any).
    pub vhosts: Vec<String>,
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
    /// A CORS origin or virtual host could not be parsed.
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

fn host_filter(vhosts: &[String]) -> Result<HostFilterLayer, ServerError> {
    if vhosts.is_empty() || vhosts.iter().any(|h| h == "*") {
        return Ok(HostFilterLayer::disable());
    }
    // A bare name accepts any port, as geth does.
    let hosts: Vec<String> =
        vhosts.iter().map(|h| if h.contains(':') { h.clone() } else { format!("{h}:*") }).collect();
    HostFilterLayer::new(hosts.iter().map(String::as_str))
        .map_err(|_| ServerError::Invalid { what: "virtual host", value: vhosts.join(",") })
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
    let server_config = if ws { builder.ws_only() } else { builder.http_only() }.build();
    let middleware = tower::ServiceBuilder::new()
        .layer(cors_layer(settings.cors.as_deref())?)
        .layer(host_filter(&settings.vhosts)?);
    let server = Server::builder()
        .set_config(server_config)
        .set_http_middleware(middleware)
        .build(settings.addr)
        .await
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
