//! `tandem-el export --datadir DIR FILE.rlp`: write canonical blocks as concatenated RLP (the
//! format of `geth export`, read back by `tandem-el import`).

use std::{io::Write, path::PathBuf};

use alloy_rlp::Encodable;
use eyre::WrapErr;

use crate::storage::{self, Database};

/// Arguments of `tandem-el export`.
#[derive(Debug, clap::Args)]
pub struct ExportArgs {
    /// The file to write.
    #[arg(value_name = "FILE.rlp")]
    pub file: PathBuf,
    /// The node's data directory.
    #[arg(long = "datadir", value_name = "DIR")]
    pub datadir: PathBuf,
    /// First block to write (default: genesis, as geth does).
    #[arg(long = "from", value_name = "N", default_value_t = 0)]
    pub from: u64,
    /// Last block to write (default: the canonical tip).
    #[arg(long = "to", value_name = "N")]
    pub to: Option<u64>,
}

/// Writes blocks `from..=to` of the canonical chain.
pub fn run(args: &ExportArgs) -> eyre::Result<()> {
    let db = Database::open(&storage::db_dir(&args.datadir))?;
    let (tip, _) = db.canonical_tip()?;
    let to = args.to.unwrap_or(tip).min(tip);
    let file = std::fs::File::create(&args.file)
        .wrap_err_with(|| format!("create {}", args.file.display()))?;
    let mut out = std::io::BufWriter::new(file);
    let mut buf = Vec::new();
    let mut written = 0u64;
    for number in args.from..=to {
        let Some(block) = db.block(number)? else {
            eyre::bail!("canonical block {number} missing from the database");
        };
        buf.clear();
        block.inner().encode(&mut buf);
        out.write_all(&buf).wrap_err_with(|| format!("write {}", args.file.display()))?;
        written += 1;
    }
    out.flush().wrap_err_with(|| format!("write {}", args.file.display()))?;
    println!("exported {written} blocks ({}..={to}) to {}", args.from, args.file.display());
    Ok(())
}
