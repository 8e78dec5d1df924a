//! `tandem-el` binary entry point.

fn main() -> eyre::Result<()> {
    tandem_el::cli::run()
}
