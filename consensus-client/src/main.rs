//! `tandem-cl` binary entry point.

fn main() -> eyre::Result<()> {
    tandem_cl::cli::run()
}
