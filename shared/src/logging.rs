//! Logging set-up shared by both binaries: `tracing` with an env filter, text or JSON.

use tracing_subscriber::{EnvFilter, fmt, prelude::*};

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Text,
    /// One JSON object per line, for log shippers.
    Json,
}

/// Logging flags common to `tandem-el` and `tandem-cl`.
#[derive(Debug, Clone, clap::Args)]
pub struct LogArgs {
    /// Log line format.
    #[arg(long = "log.format", value_enum, default_value_t = LogFormat::Text, global = true)]
    pub format: LogFormat,
    /// Log filter in `RUST_LOG` syntax, e.g. `info,tandem_el::engine_api=debug`.
    #[arg(long = "log.filter", env = "RUST_LOG", default_value = "info", global = true)]
    pub filter: String,
}

/// The filter string could not be parsed, or a subscriber is already installed.
#[derive(Debug, thiserror::Error)]
pub enum LoggingError {
    /// Bad `--log.filter` / `RUST_LOG`.
    #[error("invalid log filter {filter:?}: {msg}")]
    Filter {
        /// The filter given.
        filter: String,
        /// Parser message.
        msg: String,
    },
    /// `init` was called twice.
    #[error("logging is already initialised: {0}")]
    AlreadySet(String),
}

/// Builds the env filter from a filter string.
pub fn env_filter(filter: &str) -> Result<EnvFilter, LoggingError> {
    EnvFilter::try_new(filter)
        .map_err(|e| LoggingError::Filter { filter: filter.to_string(), msg: e.to_string() })
}

/// Installs the global subscriber writing to stderr.
pub fn init(args: &LogArgs) -> Result<(), LoggingError> {
    let filter = env_filter(&args.filter)?;
    let registry = tracing_subscriber::registry().with(filter);
    let result = match args.format {
        // Colours only on a terminal: redirected logs (devnet, systemd) stay plain text.
        LogFormat::Text => registry
            .with(
                fmt::layer()
                    .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
                    .with_writer(std::io::stderr),
            )
            .try_init(),
        LogFormat::Json => registry
            .with(fmt::layer().json().with_current_span(true).with_writer(std::io::stderr))
            .try_init(),
    };
    result.map_err(|e| LoggingError::AlreadySet(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filters_parse_or_fail_clearly() {
        assert!(env_filter("info,tandem_el=debug").is_ok());
        let err = env_filter("info,=[").err().map(|e| e.to_string()).unwrap_or_default();
        assert!(err.contains("invalid log filter"), "{err}");
    }
}
