//! A transparent TCP delayer: latency for the namespace lab ([`crate::netns`]), where the
//! kernel has no `netem` and no `nft_queue`.
//!
//! Inside a node's namespace, an nftables NAT rule redirects the node's new TCP connections to
//! the other nodes to the delayer's port. The delayer accepts each one, reads where it was
//! going (`SO_ORIGINAL_DST`, kept by the NAT), connects there itself with a socket marked with
//! `SO_MARK` (a `meta mark … return` rule before the redirect lets that connection through) and
//! relays both directions:
//!
//! - every chunk read is delivered `delay` after it was read: each direction is a queue of
//!   `(deliver at, bytes)`, so order is kept and the delay adds latency without limiting
//!   throughput (reading goes on while earlier chunks wait);
//! - a direction whose queue holds more than [`Config::max_queued`] bytes stops reading until
//!   the writer catches up, so memory per connection is bounded and TCP back-pressure reaches
//!   the sender;
//! - an end of stream is delivered like data, `delay` late, as a half-close (`shutdown`) of the
//!   other side; the connection ends when both directions have ended;
//! - an error on either socket ends the whole connection quietly (both sockets are dropped).

use std::{
    io,
    net::SocketAddr,
    sync::Arc,
    time::{Duration, Instant},
};

use socket2::SockRef;
use tokio::{
    io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt},
    net::{TcpListener, TcpSocket, TcpStream},
    sync::{Semaphore, mpsc},
};

/// Bytes read at once from a socket.
const CHUNK: usize = 64 * 1024;

/// How the delayer treats connections.
#[derive(Debug, Clone)]
pub struct Config {
    /// Added to every chunk, in each direction.
    pub delay: Duration,
    /// `SO_MARK` of the delayer's outgoing connections (`None`: unmarked).
    pub mark: Option<u32>,
    /// Bytes a direction may hold before it stops reading.
    pub max_queued: usize,
}

impl Config {
    /// A delay with no mark and a 4 MiB queue per direction.
    pub fn new(delay: Duration) -> Self {
        Self { delay, mark: None, max_queued: 4 << 20 }
    }
}

/// Why the delayer could not serve.
#[derive(Debug, thiserror::Error)]
pub enum DelayError {
    /// The listener failed to accept.
    #[error("accept on {addr}: {source}")]
    Accept {
        /// The listening address.
        addr: String,
        /// The error.
        source: io::Error,
    },
}

/// Accepts redirected connections on `listener` and relays each to its original destination,
/// delayed; returns only if accepting fails.
pub async fn serve(listener: TcpListener, config: Config) -> Result<(), DelayError> {
    let addr = listener.local_addr().map(|a| a.to_string()).unwrap_or_default();
    loop {
        let (inbound, _) = listener
            .accept()
            .await
            .map_err(|source| DelayError::Accept { addr: addr.clone(), source })?;
        let config = config.clone();
        // A connection that fails ends quietly: its peers see it closed, as on a real link
        // whose far end went away (a node that is down refuses the delayer's connect).
        tokio::spawn(async move { forward(inbound, &config).await });
    }
}

/// Relays one redirected connection to where it was going.
async fn forward(inbound: TcpStream, config: &Config) -> io::Result<()> {
    let dst = SockRef::from(&inbound)
        .original_dst_v4()?
        .as_socket()
        .ok_or_else(|| io::Error::other("original destination is not an IP address"))?;
    let outbound = connect(dst, config.mark).await?;
    relay(inbound, outbound, config).await
}

/// Connects to `dst` from a socket carrying `mark`, so the redirect rule passes it by.
pub async fn connect(dst: SocketAddr, mark: Option<u32>) -> io::Result<TcpStream> {
    let socket = if dst.is_ipv4() { TcpSocket::new_v4()? } else { TcpSocket::new_v6()? };
    if let Some(mark) = mark {
        SockRef::from(&socket).set_mark(mark)?;
    }
    socket.connect(dst).await
}

/// Relays `a` and `b` to each other, every chunk `config.delay` late, until both directions
/// have ended or either fails.
pub async fn relay(a: TcpStream, b: TcpStream, config: &Config) -> io::Result<()> {
    // Small messages (votes) must not wait for Nagle on top of the delay.
    a.set_nodelay(true)?;
    b.set_nodelay(true)?;
    let (ar, aw) = a.into_split();
    let (br, bw) = b.into_split();
    tokio::try_join!(pipe(ar, bw, config), pipe(br, aw, config))?;
    Ok(())
}

/// One direction: what is read from `reader` is written to `writer` `config.delay` after it
/// was read; the end of `reader` becomes a shutdown of `writer`, also delayed.
pub async fn pipe<R, W>(mut reader: R, mut writer: W, config: &Config) -> io::Result<()>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    // Permits are queued bytes: the reader takes them, the writer gives them back.
    let room = Arc::new(Semaphore::new(config.max_queued.min(Semaphore::MAX_PERMITS)));
    // Unbounded in messages, bounded in bytes by `room` (an end of stream costs nothing).
    let (tx, mut rx) = mpsc::unbounded_channel::<(Instant, Vec<u8>)>();
    let delay = config.delay;
    let chunk = CHUNK.min(config.max_queued.max(1));
    let read = {
        let room = room.clone();
        async move {
            let mut buf = vec![0; chunk];
            loop {
                let n = reader.read(&mut buf).await?;
                let at = Instant::now() + delay;
                // Queued at its own size: a vote must not hold a whole read buffer.
                let bytes = buf[..n].to_vec();
                if n > 0 {
                    let permits = u32::try_from(n).unwrap_or(u32::MAX);
                    room.acquire_many(permits)
                        .await
                        .map_err(|_| io::Error::other("queue closed"))?
                        .forget();
                }
                // The writer is gone only after a write failed; that error ends the relay.
                if tx.send((at, bytes)).is_err() || n == 0 {
                    return Ok::<_, io::Error>(());
                }
            }
        }
    };
    let write = async move {
        while let Some((at, buf)) = rx.recv().await {
            tokio::time::sleep_until(at.into()).await;
            if buf.is_empty() {
                return writer.shutdown().await;
            }
            writer.write_all(&buf).await?;
            room.add_permits(buf.len());
        }
        // The reader failed; its error ends the relay.
        Ok(())
    };
    tokio::try_join!(read, write)?;
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    /// A relay between `listener`'s next connection and `target`, in the background.
    async fn relay_once(listener: TcpListener, target: SocketAddr, config: Config) {
        tokio::spawn(async move {
            let (inbound, _) = listener.accept().await.unwrap();
            let outbound = connect(target, None).await.unwrap();
            let _ = relay(inbound, outbound, &config).await;
        });
    }

    /// An echo server that closes its side once the client has closed its own.
    async fn echo_server() -> SocketAddr {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            let (mut s, _) = listener.accept().await.unwrap();
            let (mut r, mut w) = s.split();
            tokio::io::copy(&mut r, &mut w).await.unwrap();
            w.shutdown().await.unwrap();
        });
        addr
    }

    async fn delayed_client(delay: Duration) -> TcpStream {
        let echo = echo_server().await;
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        relay_once(listener, echo, Config::new(delay)).await;
        let client = TcpStream::connect(addr).await.unwrap();
        client.set_nodelay(true).unwrap();
        client
    }

    #[tokio::test]
    async fn an_echo_round_trip_takes_the_delay_both_ways_and_keeps_order() {
        let delay = Duration::from_millis(100);
        let mut client = delayed_client(delay).await;
        let sent = Instant::now();
        client.write_all(b"ping").await.unwrap();
        let mut got = [0u8; 4];
        client.read_exact(&mut got).await.unwrap();
        assert_eq!(&got, b"ping");
        assert!(sent.elapsed() >= 2 * delay, "round trip {:?} < 2 × {delay:?}", sent.elapsed());

        // Many writes in a row come back in order, and pipelined: each waits the delay once,
        // not behind every earlier chunk's delay (20 chunks would take 4 s one after another).
        let mut expected = Vec::new();
        let sent = Instant::now();
        for k in 0..20u8 {
            let chunk = vec![k; 1000];
            client.write_all(&chunk).await.unwrap();
            expected.extend(chunk);
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        client.shutdown().await.unwrap();
        let mut back = Vec::new();
        client.read_to_end(&mut back).await.unwrap();
        assert_eq!(back, expected, "bytes reordered or lost");
        assert!(sent.elapsed() >= 2 * delay);
        assert!(
            sent.elapsed() < 20 * delay,
            "chunks delayed one after another: {:?}",
            sent.elapsed()
        );
    }

    #[tokio::test]
    async fn a_half_close_is_delivered_late_and_the_other_way_stays_open() {
        let delay = Duration::from_millis(50);
        let mut client = delayed_client(delay).await;
        client.write_all(b"last words").await.unwrap();
        // The echo server answers only after it sees our end of stream.
        client.shutdown().await.unwrap();
        let mut back = Vec::new();
        client.read_to_end(&mut back).await.unwrap();
        assert_eq!(back, b"last words");
    }

    #[tokio::test]
    async fn a_direction_stops_reading_when_its_queue_is_full() {
        // The writer side is never read: only the duplex buffers and the queue can fill.
        let (mut source, reader) = tokio::io::duplex(1024);
        let (writer, _sink) = tokio::io::duplex(1024);
        let config = Config { delay: Duration::ZERO, mark: None, max_queued: 8 * 1024 };
        tokio::spawn(async move { pipe(reader, writer, &config).await });
        let mut accepted = 0usize;
        let chunk = [7u8; 256];
        while tokio::time::timeout(Duration::from_millis(200), source.write_all(&chunk))
            .await
            .is_ok()
        {
            accepted += chunk.len();
            assert!(accepted < 1 << 20, "the pipe kept reading past its bound");
        }
        // The queue (8 KiB, plus one read past it) and two 1 KiB duplex buffers.
        assert!(accepted <= 8 * 1024 + 8 * 1024 + 2 * 1024 + chunk.len(), "{accepted} bytes taken");
    }
}
