//! The `tandem-cl` command line.

use clap::Parser;
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
}

/// Parses the command line and runs the chosen command.
pub fn run() -> eyre::Result<()> {
    let cli = Cli::parse();
    tandem_shared::logging::init(&cli.log)?;
    Ok(())
}
