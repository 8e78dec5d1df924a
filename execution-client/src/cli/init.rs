//! `tandem-el init --chain FILE --datadir DIR`: create the database and write genesis.

use std::path::{Path, PathBuf};

use eyre::WrapErr;
use tandem_shared::ChainSpec;

use crate::storage::{self, Database};

/// Name of the copy of the genesis file kept in the data directory.
pub const GENESIS_FILE: &str = "genesis.json";

/// Arguments of `tandem-el init`.
#[derive(Debug, clap::Args)]
pub struct InitArgs {
    /// Path to a geth-style genesis.json.
    #[arg(long = "chain", value_name = "FILE")]
    pub chain: PathBuf,
    /// The node's data directory (created if missing).
    #[arg(long = "datadir", value_name = "DIR")]
    pub datadir: PathBuf,
}

/// Initialises the data directory: the database with genesis, and a copy of the genesis file.
pub fn run(args: &InitArgs) -> eyre::Result<()> {
    let spec = ChainSpec::from_file(&args.chain)?;
    let db = Database::init(&storage::db_dir(&args.datadir), &spec)?;
    let copy = args.datadir.join(GENESIS_FILE);
    if !copy.exists() {
        std::fs::copy(&args.chain, &copy)
            .wrap_err_with(|| format!("copy {} to {}", args.chain.display(), copy.display()))?;
    }
    let (tip, tip_hash) = db.canonical_tip()?;
    println!(
        "initialised {} for chain {}: genesis {}, tip {tip} {tip_hash}",
        args.datadir.display(),
        spec.chain_id(),
        spec.genesis_hash()
    );
    Ok(())
}

/// The chain spec of an initialised data directory: `--chain` if given (it must be the
/// database's chain), else the copy `init` left there.
pub fn load_chain(datadir: &Path, chain: Option<&Path>, db: &Database) -> eyre::Result<ChainSpec> {
    let file = chain.map_or_else(|| datadir.join(GENESIS_FILE), Path::to_path_buf);
    let spec = ChainSpec::from_file(&file)?;
    if spec.genesis_hash() != db.genesis_hash() || spec.chain_id() != db.chain_id() {
        eyre::bail!(
            "{} is chain {} with genesis {}, but the database in {} holds chain {} with genesis {}",
            file.display(),
            spec.chain_id(),
            spec.genesis_hash(),
            datadir.display(),
            db.chain_id(),
            db.genesis_hash()
        );
    }
    Ok(spec)
}
