//! `tandem-el node`: run the execution client.

use std::{
    net::{IpAddr, Ipv4Addr, SocketAddr},
    path::PathBuf,
    sync::Arc,
    time::Duration,
};

use alloy_primitives::Address;
use tandem_shared::{ChainSpec, jwt, metrics::MetricsArgs, signal::shutdown_signal};
use tracing::info;

use super::init::load_chain;
use crate::{
    fork_choice::TreeConfig,
    node::{self, NodeConfig, dev},
    p2p::{self, P2pArgs, P2pConfig},
    payload_builder::job::JobConfig,
    rpc::{RpcArgs, RpcContext, start_http_ws},
    storage::{self, Database},
    txpool::PoolConfig,
};

/// Arguments of `tandem-el node`.
#[derive(Debug, clap::Args)]
pub struct NodeArgs {
    /// Path to a geth-style genesis.json (required for a new data dir unless --dev).
    #[arg(long = "chain", value_name = "FILE")]
    pub chain: Option<PathBuf>,
    /// Data directory (database, JWT secret, transaction journal).
    #[arg(long = "datadir", value_name = "DIR")]
    pub datadir: Option<PathBuf>,
    /// Engine API listen address.
    #[arg(long = "authrpc.addr", default_value_t = IpAddr::V4(Ipv4Addr::LOCALHOST))]
    pub authrpc_addr: IpAddr,
    /// Engine API port.
    #[arg(long = "authrpc.port", default_value_t = 8551)]
    pub authrpc_port: u16,
    /// Engine API JWT secret file (hex); created with mode 0600 if missing. Default: <datadir>/jwt.hex.
    #[arg(long = "authrpc.jwtsecret", value_name = "FILE")]
    pub jwtsecret: Option<PathBuf>,
    /// Run without a consensus client: an internal producer makes blocks (dev chain unless --chain).
    #[arg(long = "dev")]
    pub dev: bool,
    /// With --dev: a block every interval (e.g. 200ms, 2s) instead of one per batch of transactions.
    #[arg(long = "dev.block-time", value_parser = humantime::parse_duration)]
    pub dev_block_time: Option<Duration>,
    /// Canonical blocks this far behind the head are written to disk.
    #[arg(long = "engine.persistence-threshold", default_value_t = 2)]
    pub persistence_threshold: u64,
    /// Minimum priority fee (wei) the pool accepts.
    #[arg(long = "txpool.pricelimit", default_value_t = 1)]
    pub price_limit: u128,
    /// Most transactions the pool holds.
    #[arg(long = "txpool.max-count", default_value_t = 20_000)]
    pub pool_max_count: usize,
    /// Most non-executable (nonce-gapped or unaffordable) transactions the pool holds per account.
    #[arg(long = "txpool.accountqueue", default_value_t = 64, value_parser = clap::value_parser!(u64).range(1..))]
    pub account_queue: u64,
    /// How long an account's non-executable transactions stay in the pool while it makes no progress (e.g. 3h, 90m).
    #[arg(long = "txpool.lifetime", default_value = "3h", value_parser = parse_lifetime)]
    pub pool_lifetime: Duration,
    /// Public JSON-RPC (HTTP and WS).
    #[command(flatten)]
    pub rpc: RpcArgs,
    /// Transaction gossip with other execution clients.
    #[command(flatten)]
    pub p2p: P2pArgs,
    /// Metrics.
    #[command(flatten)]
    pub metrics: MetricsArgs,
}

impl NodeArgs {
    /// The pool's limits from the `--txpool.*` flags.
    pub fn pool_config(&self) -> PoolConfig {
        PoolConfig {
            min_tip: self.price_limit,
            max_count: self.pool_max_count,
            account_queue: usize::try_from(self.account_queue).unwrap_or(usize::MAX),
            lifetime: self.pool_lifetime,
            ..PoolConfig::default()
        }
    }
}

/// A positive duration such as `3h` or `90m` (a zero lifetime would drop every queued
/// transaction at the next block).
fn parse_lifetime(text: &str) -> Result<Duration, String> {
    let lifetime = humantime::parse_duration(text).map_err(|e| e.to_string())?;
    if lifetime.is_zero() {
        return Err("must be longer than zero".into());
    }
    Ok(lifetime)
}

fn default_datadir(chain_id: u64) -> PathBuf {
    let home = std::env::var_os("HOME").map_or_else(|| PathBuf::from("."), PathBuf::from);
    home.join(".local").join("share").join("tandem-el").join(chain_id.to_string())
}

/// File in the data directory holding the node's libp2p identity.
const P2P_KEY_FILE: &str = "p2p.key";

/// Loads the node's libp2p identity, creating it (mode 0600) on first start.
fn load_or_create_p2p_key(path: &std::path::Path) -> eyre::Result<libp2p::identity::Keypair> {
    if path.exists() {
        let bytes = std::fs::read(path)?;
        return libp2p::identity::Keypair::from_protobuf_encoding(&bytes)
            .map_err(|e| eyre::eyre!("{}: not a libp2p key: {e}", path.display()));
    }
    let keypair = libp2p::identity::Keypair::generate_ed25519();
    let bytes = keypair.to_protobuf_encoding()?;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    std::io::Write::write_all(&mut options.open(path)?, &bytes)?;
    Ok(keypair)
}

fn start_gossip(
    datadir: &std::path::Path,
    args: &P2pArgs,
    rpc: Arc<RpcContext>,
) -> eyre::Result<p2p::GossipHandle> {
    let keypair = load_or_create_p2p_key(&datadir.join(P2P_KEY_FILE))?;
    let config = P2pConfig {
        keypair,
        listen_addr: args.addr,
        port: args.port,
        bootnodes: args.bootnodes.clone(),
    };
    let gossip = p2p::spawn(config, rpc)?;
    info!(peer_id = %gossip.peer_id, "transaction gossip started");
    Ok(gossip)
}

/// Runs the node until SIGTERM/SIGINT.
pub fn run(args: &NodeArgs) -> eyre::Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    runtime.block_on(run_async(args))
}

async fn run_async(args: &NodeArgs) -> eyre::Result<()> {
    let spec = match (&args.chain, args.dev) {
        (Some(path), _) => ChainSpec::from_file(path)?,
        (None, true) => dev::dev_chain_spec()?,
        (None, false) => {
            let datadir = args.datadir.as_ref().ok_or_else(|| {
                eyre::eyre!("--chain or --datadir of an initialised node is required (or --dev)")
            })?;
            let db = Database::open(&storage::db_dir(datadir))?;
            let spec = load_chain(datadir, None, &db)?;
            drop(db);
            spec
        }
    };
    let datadir = args.datadir.clone().unwrap_or_else(|| default_datadir(spec.chain_id()));
    std::fs::create_dir_all(&datadir)?;
    let secret_path = args.jwtsecret.clone().unwrap_or_else(|| datadir.join("jwt.hex"));
    let (secret, created) = jwt::read_or_create_secret(&secret_path)?;
    info!(path = %secret_path.display(), created, "Engine API JWT secret");
    let _metrics = match args.metrics.metrics {
        Some(addr) => Some(tandem_shared::metrics::serve(addr).await?),
        None => None,
    };
    let config = NodeConfig {
        datadir: datadir.clone(),
        spec: Arc::new(spec),
        authrpc: SocketAddr::new(args.authrpc_addr, args.authrpc_port),
        jwt: secret,
        tree: TreeConfig {
            persistence_threshold: args.persistence_threshold,
            ..TreeConfig::default()
        },
        pool: args.pool_config(),
        jobs: JobConfig::default(),
        rpc: args.rpc.config(),
        dev: args.dev.then_some(dev::DevConfig {
            block_time: args.dev_block_time,
            fee_recipient: Address::ZERO,
        }),
    };
    info!(chain_id = config.spec.chain_id(), genesis = %config.spec.genesis_hash(), datadir = %datadir.display(), "starting tandem-el");
    let running = node::launch(config).await?;
    let rpc = running.rpc.clone();
    let servers =
        match start_http_ws(rpc.clone(), args.rpc.http_server(), args.rpc.ws_server()).await {
            Ok(servers) => servers,
            Err(e) => {
                running.shutdown().await;
                return Err(e.into());
            }
        };
    let gossip = match start_gossip(&datadir, &args.p2p, rpc) {
        Ok(gossip) => gossip,
        Err(e) => {
            servers.stop();
            running.shutdown().await;
            return Err(e);
        }
    };
    let signal = shutdown_signal().await;
    info!(signal, "shutting down");
    gossip.stop();
    servers.stop();
    running.shutdown().await;
    Ok(())
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        node: NodeArgs,
    }

    #[test]
    fn txpool_flags_parse_like_geth() {
        let defaults = Cli::parse_from(["x"]).node.pool_config();
        assert_eq!(defaults.account_queue, 64);
        assert_eq!(defaults.lifetime, Duration::from_secs(3 * 3600));
        let cli = Cli::parse_from(["x", "--txpool.accountqueue", "16", "--txpool.lifetime", "90m"]);
        let config = cli.node.pool_config();
        assert_eq!((config.account_queue, config.lifetime), (16, Duration::from_secs(90 * 60)));
        assert!(Cli::try_parse_from(["x", "--txpool.accountqueue", "0"]).is_err());
        assert!(Cli::try_parse_from(["x", "--txpool.lifetime", "0s"]).is_err());
    }
}
