//! `tandem-el`: the Tandem execution client.
//!
//! Built so far: the command line and chain inspection. Execution, storage, the transaction
//! pool, JSON-RPC and the Engine API land module by module (see the README's status table).

pub mod cli;
pub mod executor;
pub mod fixtures;
pub mod import;
pub mod state_root;
pub mod storage;
pub mod txpool;
