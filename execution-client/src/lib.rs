//! `tandem-el`: the Tandem execution client.
//!
//! Built so far: the command line and chain inspection. Execution, storage, the transaction
//! pool, JSON-RPC and the Engine API land module by module (see the README's status table).

pub mod cli;
pub mod engine_api;
pub mod executor;
pub mod fixtures;
pub mod fork_choice;
pub mod import;
pub mod l1;
pub mod node;
pub mod p2p;
pub mod payload_builder;
pub mod rpc;
pub mod state_root;
pub mod storage;
pub mod txpool;

#[cfg(test)]
mod testkit;
