//! The status endpoint: `GET /status` (JSON: round, committed height and id, head, peers, EL
//! state, validator index) and `GET /health` (200 `ok`).

use super::service::Status;
use bytes::Bytes;
use http_body_util::Full;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use tokio::net::TcpListener;

/// A running status server; stops when dropped.
#[derive(Debug)]
pub struct StatusServer {
    /// The bound address.
    pub addr: SocketAddr,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for StatusServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn reply(status: &Mutex<Status>, path: &str) -> Response<Full<Bytes>> {
    let (code, body) = match path {
        "/health" => (200, Bytes::from_static(b"ok")),
        "/status" => {
            let s = status.lock().map(|s| s.clone()).unwrap_or_default();
            (200, Bytes::from(serde_json::to_vec(&s).unwrap_or_default()))
        }
        _ => (404, Bytes::from_static(b"not found: try /status or /health")),
    };
    let mut r = Response::new(Full::new(body));
    *r.status_mut() = hyper::StatusCode::from_u16(code).unwrap_or_default();
    r
}

/// Serves the endpoint at `addr`.
pub async fn serve(addr: SocketAddr, status: Arc<Mutex<Status>>) -> std::io::Result<StatusServer> {
    let listener = TcpListener::bind(addr).await?;
    let addr = listener.local_addr()?;
    let task = tokio::spawn(async move {
        loop {
            let (stream, _) =
                tandem_shared::accept::accept_with_backoff("status", || listener.accept()).await;
            let status = status.clone();
            tokio::spawn(async move {
                let svc = service_fn(move |req: Request<hyper::body::Incoming>| {
                    let r = reply(&status, req.uri().path());
                    async move { Ok::<_, std::convert::Infallible>(r) }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), svc)
                    .await;
            });
        }
    });
    Ok(StatusServer { addr, task })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths() {
        let s = Mutex::new(Status { round: 7, peers: 3, el: "ready".into(), ..Status::default() });
        assert_eq!(reply(&s, "/health").status(), 200);
        assert_eq!(reply(&s, "/nope").status(), 404);
        let r = reply(&s, "/status");
        assert_eq!(r.status(), 200);
    }
}
