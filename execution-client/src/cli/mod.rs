//! The `tandem-el` command line.

mod chain;
mod db;
mod export;
mod fixtures;
mod import;
mod init;
mod node;

use clap::{Parser, Subcommand};
use tandem_shared::logging::LogArgs;

/// Tandem execution client.
#[derive(Debug, Parser)]
#[command(
    name = "tandem-el",
    version,
    about = "Tandem execution client: revm, MDBX state, Ethereum JSON-RPC and the Engine API"
)]
pub struct Cli {
    /// Logging options.
    #[command(flatten)]
    pub log: LogArgs,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// `tandem-el` subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Inspect a genesis file: chain id, fork schedule and genesis block hash.
    Chain(chain::ChainArgs),
    /// Run Ethereum blockchain and state test fixtures (a file or a folder).
    Fixtures(fixtures::FixturesArgs),
    /// Inspect the database: `db stats --datadir DIR`.
    Db(db::DbArgs),
    /// Create a data directory: the database with the genesis block of `--chain`.
    Init(init::InitArgs),
    /// Import blocks from an RLP file (concatenated blocks) through the node's import path.
    Import(import::ImportArgs),
    /// Export canonical blocks to an RLP file (concatenated blocks).
    Export(export::ExportArgs),
    /// Run the node: Engine API (JWT), transaction pool, and in --dev mode its own block producer.
    Node(Box<node::NodeArgs>),
}

/// Parses the command line and runs the chosen command.
pub fn run() -> eyre::Result<()> {
    let mut cli = Cli::parse();
    if cli.log.filter == "info" {
        // libmdbx reports every environment open at info level: noise at the default level
        // (thousands of lines for `tandem-el fixtures`, which opens a database per test).
        cli.log.filter = "info,libmdbx=warn".into();
    }
    tandem_shared::logging::init(&cli.log)?;
    match cli.command {
        Command::Chain(args) => chain::run(&args),
        Command::Fixtures(args) => fixtures::run(&args),
        Command::Db(args) => db::run(&args),
        Command::Init(args) => init::run(&args),
        Command::Import(args) => import::run(&args),
        Command::Export(args) => export::run(&args),
        Command::Node(args) => node::run(&args),
    }
}
