//! `tandem-delayer`: a transparent TCP delayer (see `tandem_e2e::delay`). Connections that an
//! nftables `redirect` sends to `--listen` are relayed to their original destination with every
//! chunk delivered `--delay` late in each direction; its own connections carry `--mark`, so the
//! redirect rule can let them pass. Needs `CAP_NET_ADMIN` for the mark.

use std::time::Duration;

use clap::Parser;
use tandem_e2e::delay::{self, Config};
use tokio::net::TcpListener;

/// Relays redirected TCP connections to their original destination, delayed.
#[derive(Debug, Parser)]
#[command(name = "tandem-delayer", version)]
struct Args {
    /// Port to accept redirected connections on (on 127.0.0.1, where `redirect` sends them).
    #[arg(long)]
    listen: u16,
    /// Delay added to each direction (e.g. `50ms`).
    #[arg(long, value_parser = humantime::parse_duration)]
    delay: Duration,
    /// `SO_MARK` of the delayer's own connections (0: none).
    #[arg(long, default_value_t = 0)]
    mark: u32,
    /// Bytes queued per direction of a connection before it stops reading.
    #[arg(long, default_value_t = 4 << 20)]
    max_queued: usize,
}

#[tokio::main]
async fn main() -> eyre::Result<()> {
    let args = Args::parse();
    let listener = TcpListener::bind(("127.0.0.1", args.listen)).await?;
    let config = Config {
        delay: args.delay,
        mark: (args.mark != 0).then_some(args.mark),
        max_queued: args.max_queued,
    };
    eprintln!("tandem-delayer: 127.0.0.1:{} with {:?} each way", args.listen, args.delay);
    delay::serve(listener, config).await?;
    Ok(())
}
