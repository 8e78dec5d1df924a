//! `tandem-el import --datadir DIR FILE.rlp`: import blocks from a file of concatenated RLP
//! blocks (what `tandem-el export` and `geth export` write) through the node's import path.

use std::{path::PathBuf, sync::Arc, time::Instant};

use alloy_consensus::{Block, TxEnvelope};
use alloy_rlp::Decodable;
use eyre::WrapErr;

use crate::{
    executor::Executor,
    import::{BatchImporter, ImportOutcome},
    storage::{self, Database, seal_block},
};

/// Arguments of `tandem-el import`.
#[derive(Debug, clap::Args)]
pub struct ImportArgs {
    /// The RLP file: blocks one after another.
    #[arg(value_name = "FILE.rlp")]
    pub file: PathBuf,
    /// The node's data directory (made by `tandem-el init`).
    #[arg(long = "datadir", value_name = "DIR")]
    pub datadir: PathBuf,
    /// The genesis file; defaults to the copy `init` keeps in the data directory.
    #[arg(long = "chain", value_name = "FILE")]
    pub chain: Option<PathBuf>,
    /// Blocks committed per MDBX write transaction (a crash loses at most one batch).
    #[arg(long = "batch", value_name = "N", default_value_t = 64)]
    pub batch: usize,
}

/// Imports every block of the file in order; stops at the first block that fails.
pub fn run(args: &ImportArgs) -> eyre::Result<()> {
    let db = Database::open(&storage::db_dir(&args.datadir))?;
    let spec = super::init::load_chain(&args.datadir, args.chain.as_deref(), &db)?;
    let executor = Executor::new(Arc::new(spec))?;
    let bytes =
        std::fs::read(&args.file).wrap_err_with(|| format!("read {}", args.file.display()))?;
    let mut buf = bytes.as_slice();
    let (mut imported, mut known, mut gas) = (0u64, 0u64, 0u64);
    let started = Instant::now();
    let mut importer = BatchImporter::new(&db, &executor, args.batch);
    let mut failure = None;
    while !buf.is_empty() {
        let offset = bytes.len() - buf.len();
        let block = match Block::<TxEnvelope>::decode(&mut buf) {
            Ok(block) => seal_block(block),
            Err(e) => {
                failure = Some(eyre::eyre!(
                    "{}: undecodable block at byte {offset}: {e}",
                    args.file.display()
                ));
                break;
            }
        };
        match importer.import(&block) {
            Ok(ImportOutcome::Imported { number, gas_used, .. }) => {
                imported += 1;
                gas += gas_used;
                if number % 1000 == 0 {
                    tracing::info!(number, "imported");
                }
            }
            Ok(ImportOutcome::AlreadyKnown { .. }) => known += 1,
            Err(e) => {
                failure = Some(e.into());
                break;
            }
        }
    }
    // The blocks before a failure are valid: commit them before reporting it.
    importer.flush()?;
    if let Some(failure) = failure {
        return Err(failure);
    }
    let secs = started.elapsed().as_secs_f64();
    let (tip, tip_hash) = db.canonical_tip()?;
    println!(
        "imported {imported} blocks ({known} already known), {:.1} Mgas in {secs:.2}s ({:.1} Mgas/s); tip {tip} {tip_hash}",
        gas as f64 / 1e6,
        if secs > 0.0 { gas as f64 / 1e6 / secs } else { 0.0 }
    );
    Ok(())
}
