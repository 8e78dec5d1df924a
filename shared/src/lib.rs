//! `tandem-shared`: what both Tandem clients need — the chain spec from a geth-style
//! `genesis.json`, Engine API JWT secrets and tokens, the Engine API types, logging and metrics
//! set-up, and shutdown signals.

pub mod accept;
pub mod chainspec;
pub mod fixtures;
#[cfg(feature = "test-utils")]
pub mod fuzz_replay;
pub mod jwt;
pub mod l1_genesis;
pub mod logging;
pub mod metrics;
pub mod rate;
pub mod signal;
pub mod system_contracts;

/// Engine API types (payloads, fork choice, statuses), re-exported from alloy.
pub use alloy_rpc_types_engine as engine;
pub use chainspec::{ChainSpec, ChainSpecError, Fork, TandemConfig};
