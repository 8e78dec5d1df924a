// SPDX-License-Identifier: MIT OR Apache-2.0
pragma solidity ^0.8.24;

/// @dev The privileged core precompile. It has no code, so call it with low-level calls only
/// (`address(L1_CORE_ADDRESS).call(abi.encodeCall(IL1Core.deposit, (...)))`): Solidity's
/// high-level calls of functions without return values revert on the code-size check.
address constant L1_CORE_ADDRESS = 0x00000000000000000000000000000000000008FF;

/// @title IL1Core
/// @notice The core precompile of the Tandem L1 exchange (`0x…08ff`). Only the L1Write system
/// contract (`0x3333…3333`) may call it, directly (no delegatecall) and not in a static context;
/// it acts for `user`. Failures revert with `Error(string)` (the engine's error text).
/// Execution-client side: `execution-client/src/l1/abi.rs`.
interface IL1Core {
    /// Credits `amount` of `token` (address(0) = native ETH) to `user`'s spot balance.
    function deposit(address user, address token, uint256 amount) external;
    /// Debits `amount` of `asset` from `user`'s free spot balance; returns the asset's token
    /// (address(0) = native ETH), which the caller then sends to `user`.
    function withdraw(address user, uint32 asset, uint256 amount) external returns (address token);
    /// Places an order; `tif`: 0 GTC, 1 IOC, 2 post-only, 3 market. `cloid` 0 = none.
    function placeOrder(address user, uint32 market, bool isBuy, uint128 price, uint128 size, uint8 tif, uint128 cloid)
        external
        returns (uint64 orderId, uint128 filled, uint128 resting);
    /// Cancels a resting order of `user`; returns its unfilled size.
    function cancelOrder(address user, uint32 market, uint64 orderId) external returns (uint128 remaining);
    /// Cancels a resting order of `user` by client order id; returns its unfilled size.
    function cancelByCloid(address user, uint32 market, uint128 cloid) external returns (uint128 remaining);
    /// Moves collateral between `user`'s spot balance and perp account (positive: spot -> perp).
    function perpTransfer(address user, int256 amount) external;
    /// Posts `user`'s (an oracle publisher's) price for a perp market.
    function postOraclePrice(address user, uint32 market, uint128 price) external;
    /// The end-of-block step (funding, liquidations); only the system address may call it.
    function endOfBlock() external;
}
