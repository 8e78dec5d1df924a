//! Prometheus metrics: one global recorder per process and a tiny HTTP endpoint serving it.

use std::{net::SocketAddr, sync::OnceLock};

use http_body_util::Full;
use hyper::{Request, Response, body::Bytes, server::conn::http1, service::service_fn};
use hyper_util::rt::TokioIo;
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use tokio::{net::TcpListener, task::JoinHandle};

/// `--metrics` flag shared by both binaries.
#[derive(Debug, Clone, clap::Args)]
pub struct MetricsArgs {
    /// Serve Prometheus metrics at this address (e.g. 127.0.0.1:9001); off when absent.
    #[arg(long = "metrics", value_name = "ADDR:PORT")]
    pub metrics: Option<SocketAddr>,
}

/// Failure to start the metrics endpoint.
#[derive(Debug, thiserror::Error)]
pub enum MetricsError {
    /// Another recorder was installed first.
    #[error("a metrics recorder is already installed in this process")]
    RecorderTaken,
    /// The listen address could not be bound.
    #[error("cannot listen for metrics on {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// The socket error.
        source: std::io::Error,
    },
}

static HANDLE: OnceLock<Result<PrometheusHandle, ()>> = OnceLock::new();

/// Installs the process-wide Prometheus recorder (idempotent) and returns its handle.
pub fn recorder() -> Result<PrometheusHandle, MetricsError> {
    HANDLE
        .get_or_init(|| {
            let recorder = PrometheusBuilder::new().build_recorder();
            let handle = recorder.handle();
            metrics::set_global_recorder(recorder).map(|()| handle).map_err(|_| ())
        })
        .clone()
        .map_err(|()| MetricsError::RecorderTaken)
}

/// A running metrics endpoint.
#[derive(Debug)]
pub struct MetricsServer {
    /// The bound address (useful when port 0 was asked for).
    pub addr: SocketAddr,
    task: JoinHandle<()>,
}

impl Drop for MetricsServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Serves `GET /metrics` (any path) in the Prometheus text format at `addr`.
pub async fn serve(addr: SocketAddr) -> Result<MetricsServer, MetricsError> {
    let handle = recorder()?;
    let listener =
        TcpListener::bind(addr).await.map_err(|source| MetricsError::Bind { addr, source })?;
    let addr = listener.local_addr().map_err(|source| MetricsError::Bind { addr, source })?;
    let task = tokio::spawn(async move {
        loop {
            let (stream, _) =
                crate::accept::accept_with_backoff("metrics", || listener.accept()).await;
            let handle = handle.clone();
            tokio::spawn(async move {
                let service = service_fn(move |_req: Request<hyper::body::Incoming>| {
                    let body = handle.render();
                    async move {
                        Response::builder()
                            .header("content-type", "text/plain; version=0.0.4")
                            .body(Full::new(Bytes::from(body)))
                    }
                });
                if let Err(e) =
                    http1::Builder::new().serve_connection(TokioIo::new(stream), service).await
                {
                    tracing::debug!(error = %e, "metrics connection closed with an error");
                }
            });
        }
    });
    tracing::info!(%addr, "serving Prometheus metrics");
    Ok(MetricsServer { addr, task })
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[tokio::test]
    async fn endpoint_serves_recorded_metrics() {
        let server = serve("127.0.0.1:0".parse().unwrap()).await.unwrap();
        metrics::counter!("tandem_test_requests_total", "reason" => "test").increment(3);
        let mut stream = tokio::net::TcpStream::connect(server.addr).await.unwrap();
        stream
            .write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            .await
            .unwrap();
        let mut body = String::new();
        stream.read_to_string(&mut body).await.unwrap();
        assert!(body.starts_with("HTTP/1.1 200"), "{body}");
        assert!(body.contains("tandem_test_requests_total{reason=\"test\"} 3"), "{body}");
    }
}
