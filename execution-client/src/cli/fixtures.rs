//! `tandem-el fixtures DIR_OR_FILE`: run Ethereum blockchain and state test fixtures.

use std::path::PathBuf;

use crate::fixtures::{self, Format, SKIPS};

/// Arguments of `tandem-el fixtures`.
#[derive(Debug, clap::Args)]
pub struct FixturesArgs {
    /// A fixture JSON file or a folder searched for them.
    #[arg(value_name = "DIR_OR_FILE")]
    pub path: PathBuf,
    /// Files run in parallel (default: the number of cores).
    #[arg(long = "jobs", value_name = "N")]
    pub jobs: Option<usize>,
}

/// Runs the fixtures, prints one line per failure and the totals; fails when anything failed.
pub fn run(args: &FixturesArgs) -> eyre::Result<()> {
    let jobs =
        args.jobs.unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
    let report = fixtures::run(&args.path, jobs, &fixtures::default_backend())?;
    for failure in &report.failures {
        if failure.test.is_empty() {
            println!("FAIL {}: {}", failure.file.display(), failure.reason);
        } else {
            println!("FAIL {} :: {}: {}", failure.file.display(), failure.test, failure.reason);
        }
    }
    for (reason, count) in &report.skips {
        let pattern = SKIPS.iter().find(|(_, r)| r == reason).map_or("", |(p, _)| p);
        println!("SKIP {count} entries matching `{pattern}`: {reason}");
    }
    for format in [Format::Blockchain, Format::State] {
        if let Some(c) = report.by_format.get(&format) {
            println!(
                "{format}: {} passed, {} failed, {} skipped ({:.2}% pass rate)",
                c.passed,
                c.failed,
                c.skipped,
                c.pass_rate() * 100.0
            );
        }
    }
    let total = report.total();
    println!("{} passed, {} failed, {} skipped", total.passed, total.failed, total.skipped);
    if total.failed > 0 || !report.failures.is_empty() {
        eyre::bail!("{} fixture entries failed", total.failed.max(report.failures.len().min(1)));
    }
    Ok(())
}
