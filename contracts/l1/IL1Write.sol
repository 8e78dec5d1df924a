// SPDX-License-Identifier: MIT OR Apache-2.0
pragma solidity ^0.8.24;

/// @dev Where the L1Write system contract is predeployed (runtime code placed in genesis).
address constant L1_WRITE_ADDRESS = 0x3333333333333333333333333333333333333333;

/// @title IL1Write
/// @notice The write interface of the Tandem L1 exchange, for contracts and wallets. Every
/// action acts for `msg.sender` (the L1 account is the caller's address). Failures revert with
/// `Error(string)`, the engine's error text forwarded verbatim.
/// @dev The events are emitted by the engine with the address of L1Write; they mirror
/// `execution-client/src/l1/events.rs` exactly (same names, types, indexed fields).
interface IL1Write {
    /// Funds credited to `user`'s spot balance from the EVM side.
    event Deposit(address indexed user, uint32 indexed asset, uint256 amount);
    /// Funds debited from `user`'s spot balance and sent to the EVM side.
    event Withdraw(address indexed user, uint32 indexed asset, uint256 amount);
    /// Collateral moved between `user`'s spot balance and perp account (positive: into perps).
    event PerpTransfer(address indexed user, int256 amount);
    /// An order accepted; `resting` is what rests on the book after matching.
    event OrderPlaced(
        address indexed user,
        uint32 indexed market,
        uint64 orderId,
        uint128 cloid,
        bool isBuy,
        uint128 price,
        uint128 size,
        uint128 resting
    );
    /// A resting order removed before it filled completely.
    event OrderCanceled(address indexed user, uint32 indexed market, uint64 orderId, uint128 remaining);
    /// A trade between a taker and a resting maker order.
    event Fill(
        uint32 indexed market,
        address indexed taker,
        address indexed maker,
        uint64 takerOrderId,
        uint64 makerOrderId,
        bool takerIsBuy,
        uint128 price,
        uint128 size,
        uint128 fee
    );
    /// A publisher's price for a perp market.
    event OraclePrice(uint32 indexed market, address indexed publisher, uint128 price);
    /// Funding paid for an interval; positive rates mean longs pay shorts.
    event Funding(uint32 indexed market, int64 ratePpm, uint128 oraclePrice, uint128 markPrice);
    /// A position taken over by the backstop at the mark price.
    event Liquidation(address indexed user, uint32 indexed market, int128 size, uint128 markPrice);
    /// A liquidated account's negative value absorbed by the backstop.
    event BadDebt(address indexed user, uint256 amount);

    /// Deposits `msg.value` native ETH into the caller's spot balance.
    function depositEth() external payable;
    /// Pulls `amount` of a registered ERC-20 from the caller (approve L1Write first) and credits
    /// the amount actually received.
    function deposit(address token, uint256 amount) external;
    /// Withdraws `amount` of `asset` from the caller's free spot balance and sends it (ETH or the
    /// ERC-20) to the caller.
    function withdraw(uint32 asset, uint256 amount) external;
    /// Places an order; `tif`: 0 GTC, 1 IOC, 2 post-only, 3 market. `cloid` 0 = none.
    function placeOrder(uint32 market, bool isBuy, uint128 price, uint128 size, uint8 tif, uint128 cloid)
        external
        returns (uint64 orderId, uint128 filled, uint128 resting);
    /// Cancels one of the caller's resting orders; returns its unfilled size.
    function cancelOrder(uint32 market, uint64 orderId) external returns (uint128 remaining);
    /// Cancels one of the caller's resting orders by client order id; returns its unfilled size.
    function cancelByCloid(uint32 market, uint128 cloid) external returns (uint128 remaining);
    /// Moves collateral between the caller's spot balance and perp account (positive: into perps).
    function perpTransfer(int256 amount) external;
    /// Posts the caller's price for a perp market (registered oracle publishers only).
    function postOraclePrice(uint32 market, uint128 price) external;
}
