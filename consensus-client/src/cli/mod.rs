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
}

/// `tandem-cl testnet`.
#[derive(Debug, clap::Args)]
pub struct TestnetArgs {
    /// Number of validators.
    #[arg(long = "validators", value_name = "N")]
    pub validators: usize,
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
    /// Added to every port, to run several networks on one host.
    #[arg(long = "port-offset", default_value_t = 0)]
    pub port_offset: u16,
    /// Directory of the binaries named in the commands (default: beside this `tandem-cl`).
    #[arg(long = "bin-dir", value_name = "DIR")]
    pub bin_dir: Option<PathBuf>,
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
    }
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
        out: args.out,
        chain_id: args.chain_id,
        dev_accounts: args.dev_accounts,
        sub_second_blocks: args.sub_second_blocks,
        bin_dir,
        port_offset: args.port_offset,
        genesis_timestamp: tandem_shared::jwt::unix_now(),
    };
    let manifest = crate::testnet::generate(&params)?;
    let out = std::fs::canonicalize(&params.out).unwrap_or(params.out);
    println!(
        "testnet of {} validators, chain id {}, written to {}",
        manifest.nodes.len(),
        manifest.chain_id,
        out.display()
    );
    println!(
        "start each node with the el_command and cl_command lines of {}/testnet.json",
        out.display()
    );
    Ok(())
}
