//! The `tandem-cl` command line: `testnet`, `keys generate`, `node`.

use clap::{Parser, Subcommand};
use eyre::WrapErr;
use std::path::PathBuf;
use tandem_shared::logging::LogArgs;

/// Tandem consensus client.
#[derive(Debug, Parser)]
#[command(
    name = "tandem-cl",
    version,
    about = "Tandem consensus client: two-chain HotStuff BFT driving an execution client over the Engine API"
)]
pub struct Cli {
    /// Logging options.
    #[command(flatten)]
    pub log: LogArgs,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Write keys, genesis files and start commands for a local network.
    Testnet(TestnetArgs),
    /// Key management.
    #[command(subcommand)]
    Keys(KeysCommand),
    /// Run a node driving an EL over the Engine API: a validator with `--validator-key`, a
    /// follower without.
    Node(Box<NodeArgs>),
}

/// `tandem-cl node`.
#[derive(Debug, clap::Args)]
pub struct NodeArgs {
    /// Consensus data directory.
    #[arg(long = "datadir", value_name = "DIR")]
    pub datadir: PathBuf,
    /// Consensus genesis file.
    #[arg(long = "genesis", value_name = "FILE")]
    pub genesis: PathBuf,
    /// Validator key file; without it the node follows the chain (syncs, drives its EL, never
    /// votes).
    #[arg(long = "validator-key", value_name = "FILE")]
    pub validator_key: Option<PathBuf>,
    /// libp2p key file (default: DATADIR/p2p.key, created if missing).
    #[arg(long = "p2p.key", value_name = "FILE")]
    pub p2p_key: Option<PathBuf>,
    /// Engine API URL of the execution client.
    #[arg(long = "engine", default_value = "http://127.0.0.1:8551")]
    pub engine: String,
    /// JWT secret shared with the execution client.
    #[arg(long = "jwt-secret", value_name = "FILE")]
    pub jwt_secret: PathBuf,
    /// p2p listen address.
    #[arg(long = "p2p.addr", default_value = "0.0.0.0")]
    pub p2p_addr: std::net::IpAddr,
    /// p2p TCP port.
    #[arg(long = "p2p.port", default_value_t = 9000)]
    pub p2p_port: u16,
    /// Bootnodes, comma-separated multiaddrs with `/p2p/<peer id>`.
    #[arg(long = "bootnodes", value_delimiter = ',')]
    pub bootnodes: Vec<libp2p::Multiaddr>,
    /// Fee recipient of the blocks this validator builds.
    #[arg(long = "fee-recipient", default_value = "0x0000000000000000000000000000000000000000")]
    pub fee_recipient: alloy_primitives::Address,
    /// Minimum interval between proposals (default 200ms; chains without subSecondBlocks
    /// are paced at one block per second by the timestamps anyway).
    #[arg(long = "block-time", value_parser = humantime::parse_duration, default_value = "200ms")]
    pub block_time: std::time::Duration,
    /// Status endpoint port (/status, /health); off when absent.
    #[arg(long = "http.port")]
    pub http_port: Option<u16>,
    /// Status endpoint address.
    #[arg(long = "http.addr", default_value = "127.0.0.1")]
    pub http_addr: std::net::IpAddr,
    /// Rounds of committed history kept in memory for peers' block fetches (older history is
    /// served by range sync from disk; a small value exercises range sync in tests).
    #[arg(long = "retained-rounds", default_value_t = crate::block_store::RETAINED_COMMITTED_ROUNDS, hide = true)]
    pub retained_rounds: u64,
    /// Doppelganger protection: after a restart whose safety data may be stale (wiped, restored
    /// from a backup, behind the certificates the network shows), sign nothing until the
    /// network has passed the round found at start. Turn it off only to restart a chain halted
    /// because abstaining validators leave no quorum, and only for a key known to have signed
    /// nothing elsewhere: without it, a stale copy of a key can sign twice in one round.
    #[arg(long = "doppelganger-protection", default_value_t = true, action = clap::ArgAction::Set)]
    pub doppelganger_protection: bool,
    /// Metrics.
    #[command(flatten)]
    pub metrics: tandem_shared::metrics::MetricsArgs,
}

/// `tandem-cl testnet`.
#[derive(Debug, clap::Args)]
pub struct TestnetArgs {
    /// Number of validators.
    #[arg(long = "validators", value_name = "N")]
    pub validators: usize,
    /// Number of follower nodes (no validator key: they sync, drive their EL, never vote).
    #[arg(long = "followers", value_name = "N", default_value_t = 0)]
    pub followers: usize,
    /// Output directory.
    #[arg(long = "out", value_name = "DIR")]
    pub out: PathBuf,
    /// Chain id.
    #[arg(long = "chain-id", default_value_t = 1337)]
    pub chain_id: u64,
    /// Accounts of the dev mnemonic to fund (at least 10 always are).
    #[arg(long = "dev-accounts", value_name = "N", default_value_t = 10)]
    pub dev_accounts: u32,
    /// Let blocks share their parent's timestamp (`false`: a standard genesis any EL accepts).
    #[arg(long = "sub-second-blocks", default_value_t = true, action = clap::ArgAction::Set)]
    pub sub_second_blocks: bool,
    /// Enable the native L1 exchange in the EL genesis (spot and perp markets, oracle
    /// publishers and a test USD token; see `tandem_shared::l1_genesis`).
    #[arg(long = "l1")]
    pub l1: bool,
    /// Added to every port, to run several networks on one host.
    #[arg(long = "port-offset", default_value_t = 0)]
    pub port_offset: u16,
    /// Directory of the binaries named in the commands (default: beside this `tandem-cl`).
    #[arg(long = "bin-dir", value_name = "DIR")]
    pub bin_dir: Option<PathBuf>,
    /// One address per node, comma-separated (nodes in their own network namespaces): each
    /// node's p2p, JSON-RPC, status and metrics listen there and peers dial it. Default: every
    /// node on 127.0.0.1.
    #[arg(long = "hosts", value_name = "IP,IP,...", value_delimiter = ',')]
    pub hosts: Vec<std::net::IpAddr>,
}

/// `tandem-cl keys …`.
#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// Write a new validator key and libp2p key into a directory.
    Generate {
        /// Directory for `validator.key` and `p2p.key`.
        #[arg(long = "out", value_name = "DIR", default_value = ".")]
        out: PathBuf,
    },
}

/// Parses the command line and runs the chosen command.
pub fn run() -> eyre::Result<()> {
    let cli = Cli::parse();
    tandem_shared::logging::init(&cli.log)?;
    match cli.command {
        Command::Testnet(args) => testnet(args),
        Command::Keys(KeysCommand::Generate { out }) => {
            let k = crate::keys::generate(&out)?;
            println!("validator key: {}", k.validator_key.display());
            println!("public key:    {}", hex::encode(k.public_key.0));
            println!("p2p key:       {}", k.p2p_key.display());
            println!("peer id:       {}", k.peer_id);
            Ok(())
        }
        Command::Node(args) => node(*args),
    }
}

fn node(args: NodeArgs) -> eyre::Result<()> {
    let runtime = tokio::runtime::Runtime::new().wrap_err("cannot start the async runtime")?;
    runtime.block_on(async move {
        let _metrics = match args.metrics.metrics {
            Some(addr) => Some(tandem_shared::metrics::serve(addr).await?),
            None => None,
        };
        let config = crate::node::service::NodeConfig {
            p2p_key: args.p2p_key.unwrap_or_else(|| args.datadir.join(crate::keys::P2P_KEY_FILE)),
            datadir: args.datadir,
            genesis: args.genesis,
            validator_key: args.validator_key,
            engine: args.engine,
            jwt_secret: args.jwt_secret,
            p2p_addr: args.p2p_addr,
            p2p_port: args.p2p_port,
            bootnodes: args.bootnodes,
            fee_recipient: args.fee_recipient,
            block_time: args.block_time,
            http: args.http_port.map(|p| std::net::SocketAddr::new(args.http_addr, p)),
            sync: crate::sync::SyncConfig::default(),
            retained_rounds: args.retained_rounds,
            doppelganger_protection: args.doppelganger_protection,
        };
        crate::node::service::run(config, tandem_shared::signal::shutdown_signal()).await?;
        Ok(())
    })
}

fn testnet(args: TestnetArgs) -> eyre::Result<()> {
    let bin_dir = match args.bin_dir {
        Some(d) => d,
        None => std::env::current_exe()
            .wrap_err("cannot locate the running tandem-cl")?
            .parent()
            .map(PathBuf::from)
            .unwrap_or_default(),
    };
    let bin_dir = std::fs::canonicalize(&bin_dir).unwrap_or(bin_dir);
    let params = crate::testnet::TestnetParams {
        validators: args.validators,
        followers: args.followers,
        out: args.out,
        chain_id: args.chain_id,
        dev_accounts: args.dev_accounts,
        sub_second_blocks: args.sub_second_blocks,
        l1: args.l1,
        bin_dir,
        port_offset: args.port_offset,
        genesis_timestamp: tandem_shared::jwt::unix_now(),
        hosts: args.hosts,
    };
    let manifest = crate::testnet::generate(&params)?;
    let out = std::fs::canonicalize(&params.out).unwrap_or(params.out);
    println!(
        "testnet of {} validators and {} followers, chain id {}, written to {}",
        params.validators,
        params.followers,
        manifest.chain_id,
        out.display()
    );
    println!(
        "start each node with the el_command and cl_command lines of {}/testnet.json",
        out.display()
    );
    Ok(())
}
