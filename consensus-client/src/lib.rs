//! `tandem-cl`: the Tandem consensus client.
//!
//! Rooms: [`types`] (blocks, votes, certificates and their encodings), [`crypto`] (signature
//! traits, ed25519), [`core`] (the pure HotStuff state machine), [`safety_rules`] (the persisted
//! guard against equivocation), [`leader`] (election), [`engine_client`] (the Engine API client), [`network`] (libp2p), [`block_store`] (known blocks), [`node`] (how the node loop performs actions),
//! [`storage`] (MDBX persistence), [`sync`] (range sync of committed blocks from peers' storage), `sim` (test-only deterministic simulator), [`genesis`] (the consensus genesis file), [`keys`] (key files), [`testnet`] (the local network generator), [`cli`].

pub mod block_store;
pub mod cli;
pub mod core;
pub mod crypto;
pub mod engine_client;
pub mod genesis;
pub mod keys;
pub mod leader;
pub mod network;
pub mod node;
pub mod safety_rules;
pub mod storage;
pub mod sync;
pub mod testnet;
pub mod types;

#[cfg(test)]
mod sim;
