//! The native L1 exchange: spot and perpetual order books inside the block's state transition.
//!
//! Opt-in per chain through genesis `config.tandem.l1` ([`config::L1Config`]). Its state lives in
//! the storage of [`L1_WRITE_ADDRESS`] (a system contract predeployed at genesis), so the state
//! root, `newPayload` validation, crash safety and sync cover it like any other contract state.
//! It changes only through the block being executed: calls of the write contract, processed in
//! transaction order, and one deterministic end-of-block step (funding indices, a bounded number
//! of liquidation checks).
//!
//! The engine is pure: every module works on a [`store::Store`] of storage slots, which is a
//! `HashMap` in unit tests and the EVM journal inside a block ([`precompile`]).
//!
//! - [`config`]: assets, markets and oracle publishers from the genesis file.
//! - [`store`]: the slot store the engine reads and writes, slot keys and value packing.
//! - [`order`]: order requests, resting orders, fills and the [`order::Settlement`] seam.
//! - [`book`]: the order book of one market (price levels, FIFO queues, per-account orders).
//! - [`matching`]: price-time matching, time in force, cancels.
//! - [`spot`]: balances, holds, deposits and withdrawals, spot settlement.
//! - [`clearinghouse`]: perp accounts, margin, perp settlement, funding and liquidations.
//! - [`oracle`]: publisher prices, the oracle median and the mark price.
//! - [`events`]: the EVM logs the engine emits.

pub mod abi;
pub mod book;
pub mod clearinghouse;
pub mod config;
pub mod engine;
pub mod error;
pub mod events;
pub mod matching;
pub mod oracle;
pub mod order;
pub mod precompile;
pub mod spot;
pub mod store;
#[cfg(test)]
mod tests;
pub mod view;

use alloy_primitives::{Address, address};

pub use config::L1Config;
pub use error::L1Error;
pub use store::Store;

/// The write system contract (predeployed at genesis); its storage holds the L1 state.
pub use tandem_shared::l1_genesis::L1_WRITE_ADDRESS;

/// The privileged core precompile the write contract forwards actions to.
pub const L1_CORE_ADDRESS: Address = address!("0x00000000000000000000000000000000000008ff");

/// The caller of the end-of-block step (EIP-4788/7002's system address).
pub const SYSTEM_CALLER: Address = address!("0xfffffffffffffffffffffffffffffffffffffffe");

/// Read precompile: spot balance `(address user, uint32 asset) -> (uint256 total, uint256 hold)`.
pub const READ_SPOT_BALANCE: Address = address!("0x0000000000000000000000000000000000000800");
/// Read precompile: perp position of a user in a market.
pub const READ_PERP_POSITION: Address = address!("0x0000000000000000000000000000000000000801");
/// Read precompile: perp account value and margins of a user.
pub const READ_ACCOUNT_VALUE: Address = address!("0x0000000000000000000000000000000000000802");
/// Read precompile: oracle price of a perp market.
pub const READ_ORACLE_PRICE: Address = address!("0x0000000000000000000000000000000000000803");
/// Read precompile: mark price of a perp market.
pub const READ_MARK_PRICE: Address = address!("0x0000000000000000000000000000000000000804");
/// Read precompile: best bid and ask of a market.
pub const READ_BEST_BID_ASK: Address = address!("0x0000000000000000000000000000000000000805");
/// Read precompile: asset info.
pub const READ_ASSET_INFO: Address = address!("0x0000000000000000000000000000000000000806");
/// Read precompile: market info.
pub const READ_MARKET_INFO: Address = address!("0x0000000000000000000000000000000000000807");
/// Read precompile: the L1 block number (the last block whose end-of-block step ran).
pub const READ_L1_BLOCK_NUMBER: Address = address!("0x0000000000000000000000000000000000000808");
/// Read precompile: a resting order by id.
pub const READ_ORDER: Address = address!("0x0000000000000000000000000000000000000809");

/// What every engine operation works with: the slot store, the chain's L1 config and the number
/// of the block being executed.
#[derive(Debug)]
pub struct Ctx<'a, S> {
    /// The L1 state.
    pub store: &'a mut S,
    /// Assets, markets and publishers.
    pub config: &'a L1Config,
    /// The block being executed (oracle staleness, funding intervals).
    pub block: u64,
}

impl<'a, S: Store> Ctx<'a, S> {
    /// A context over `store` for block `block`.
    pub fn new(store: &'a mut S, config: &'a L1Config, block: u64) -> Self {
        Self { store, config, block }
    }
}
