//! `tandem-el db stats --datadir DIR`: what the database holds, per table.

use std::path::PathBuf;

use crate::storage::{self, Database};

/// Arguments of `tandem-el db`.
#[derive(Debug, clap::Args)]
pub struct DbArgs {
    /// What to do with the database.
    #[command(subcommand)]
    pub command: DbCommand,
}

/// `tandem-el db` subcommands.
#[derive(Debug, clap::Subcommand)]
pub enum DbCommand {
    /// Print the chain, the canonical tip and each table's entry count and size.
    Stats {
        /// The node's data directory (the database is its `db` folder).
        #[arg(long = "datadir", value_name = "DIR")]
        datadir: PathBuf,
    },
}

/// Runs a `tandem-el db` subcommand.
pub fn run(args: &DbArgs) -> eyre::Result<()> {
    match &args.command {
        DbCommand::Stats { datadir } => stats(&storage::db_dir(datadir)),
    }
}

fn stats(path: &std::path::Path) -> eyre::Result<()> {
    let db = Database::open(path)?;
    let (tip, tip_hash) = db.canonical_tip()?;
    println!("database   {}", path.display());
    println!("chain id   {}", db.chain_id());
    println!("genesis    {}", db.genesis_hash());
    println!("tip        {tip} {tip_hash}");
    println!("file size  {}", human(db.file_size()?));
    println!();
    println!("{:<20} {:>14} {:>12}", "table", "entries", "size");
    let tables = db.stats()?;
    for table in &tables {
        println!("{:<20} {:>14} {:>12}", table.name, table.entries, human(table.size_bytes));
    }
    let total: u64 = tables.iter().map(|t| t.size_bytes).sum();
    println!("{:<20} {:>14} {:>12}", "total", "", human(total));
    Ok(())
}

/// Bytes in binary units.
fn human(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 { format!("{bytes} B") } else { format!("{value:.1} {}", UNITS[unit]) }
}

#[cfg(test)]
mod tests {
    use super::{human, stats};
    use crate::storage::{Database, db_dir};

    #[test]
    fn human_sizes() {
        assert_eq!(human(512), "512 B");
        assert_eq!(human(1536), "1.5 KiB");
        assert_eq!(human(3 << 30), "3.0 GiB");
    }

    #[test]
    fn stats_of_a_fresh_database() {
        let dir = tempfile::tempdir().unwrap();
        assert!(stats(&db_dir(dir.path())).is_err(), "no database yet");
        let genesis = r#"{ "config": { "chainId": 7 }, "gasLimit": "0x1000000", "alloc": {} }"#;
        let spec = tandem_shared::ChainSpec::from_json_str(genesis, "g.json").unwrap();
        drop(Database::init(&db_dir(dir.path()), &spec).unwrap());
        stats(&db_dir(dir.path())).unwrap();
    }
}
