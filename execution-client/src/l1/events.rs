//! The EVM logs the engine emits from [`super::L1_WRITE_ADDRESS`], so indexers and `eth_getLogs`
//! see deposits, orders, fills and oracle updates. `contracts/l1/L1Write.sol` declares the same
//! events. `Funding`, `Liquidation` and `BadDebt` come from the end-of-block system step, which
//! has no transaction and so no receipt: `eth_getLogs` does not see them, the `l1_blockEvents`
//! RPC method serves them (and the node logs liquidations and bad debt).

use alloy_sol_types::{SolEvent, sol};

use super::store::Store;

sol! {
    /// Funds credited to `user`'s spot balance from the EVM side.
    event Deposit(address indexed user, uint32 indexed asset, uint256 amount);
    /// Funds debited from `user`'s spot balance and sent to the EVM side.
    event Withdraw(address indexed user, uint32 indexed asset, uint256 amount);
    /// Collateral moved between `user`'s spot balance and perp account (positive: into perps).
    event PerpTransfer(address indexed user, int256 amount);
    /// An order accepted; `resting` is what rests on the book after matching.
    event OrderPlaced(address indexed user, uint32 indexed market, uint64 orderId, uint128 cloid, bool isBuy, uint128 price, uint128 size, uint128 resting);
    /// A resting order removed before it filled completely.
    event OrderCanceled(address indexed user, uint32 indexed market, uint64 orderId, uint128 remaining);
    /// A trade between a taker and a resting maker order.
    event Fill(uint32 indexed market, address indexed taker, address indexed maker, uint64 takerOrderId, uint64 makerOrderId, bool takerIsBuy, uint128 price, uint128 size, uint128 fee);
    /// A publisher's price for a perp market.
    event OraclePrice(uint32 indexed market, address indexed publisher, uint128 price);
    /// Funding paid for an interval; positive rates mean longs pay shorts.
    event Funding(uint32 indexed market, int64 ratePpm, uint128 oraclePrice, uint128 markPrice);
    /// A position taken over by the backstop at the mark price.
    event Liquidation(address indexed user, uint32 indexed market, int128 size, uint128 markPrice);
    /// A liquidated account's negative value absorbed by the backstop.
    event BadDebt(address indexed user, uint256 amount);
}

/// Emits `event` on `store`.
pub fn emit<S: Store, E: SolEvent>(store: &mut S, event: &E) {
    store.emit(event.encode_log_data());
}
