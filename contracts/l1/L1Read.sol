// SPDX-License-Identifier: MIT OR Apache-2.0
pragma solidity ^0.8.24;

/// @title L1Read
/// @notice Views of the Tandem L1 exchange state through its read precompiles
/// (`0x…0800`–`0x…0809`). Each precompile takes `abi.encode(args)` WITHOUT a selector and returns
/// `abi.encode(results)`; this library does the `staticcall`, decodes the answer and bubbles a
/// revert (`Error(string)`, e.g. an unknown asset or no fresh oracle price) verbatim.
/// @dev Gas of a read: 2000 + 65 * (input bytes + output bytes), plus 2100 per L1 slot read
/// for the first time in the transaction and 100 per slot read again (EIP-2929). Input of the wrong length
/// reverts with a reason and consumes all the gas of the frame (cannot happen through this
/// library). All functions are `internal`: they are inlined into the caller, no linking.
/// Execution-client side: `execution-client/src/l1/precompile.rs`.
library L1Read {
    address internal constant SPOT_BALANCE = 0x0000000000000000000000000000000000000800;
    address internal constant PERP_POSITION = 0x0000000000000000000000000000000000000801;
    address internal constant ACCOUNT_VALUE = 0x0000000000000000000000000000000000000802;
    address internal constant ORACLE_PRICE = 0x0000000000000000000000000000000000000803;
    address internal constant MARK_PRICE = 0x0000000000000000000000000000000000000804;
    address internal constant BEST_BID_ASK = 0x0000000000000000000000000000000000000805;
    address internal constant ASSET_INFO = 0x0000000000000000000000000000000000000806;
    address internal constant MARKET_INFO = 0x0000000000000000000000000000000000000807;
    address internal constant L1_BLOCK_NUMBER = 0x0000000000000000000000000000000000000808;
    address internal constant ORDER_INFO = 0x0000000000000000000000000000000000000809;

    /// A perp position (`perpPosition`). Amounts in the collateral asset's units.
    struct Position {
        int256 size; // signed, base size units (positive = long)
        uint256 entryPrice; // average entry price
        uint256 margin; // initial margin at the mark price
        int256 unrealizedPnl;
    }

    /// A perp account (`accountValue`). Amounts in the collateral asset's units.
    struct Account {
        int256 accountValue; // cash + Σ size * mark / scale
        int256 cash;
        uint256 initialMargin;
        uint256 maintenanceMargin;
    }

    /// An asset (`assetInfo`).
    struct Asset {
        address token; // address(0) = native ETH
        uint8 decimals;
        string symbol;
    }

    /// A market (`marketInfo`). Perp markets: `base` = type(uint32).max, `quote` = the collateral.
    struct Market {
        bool isPerp;
        uint32 base;
        uint32 quote;
        uint256 tickSize;
        uint256 lotSize;
        uint32 takerFeeBps;
        uint32 maxLeverage;
        uint32 maintenanceMarginBps;
        uint8 baseDecimals;
    }

    /// A resting order (`orderInfo`).
    struct Order {
        address owner;
        uint32 market;
        bool isBuy;
        uint128 price;
        uint128 remaining;
        uint128 cloid;
    }

    /// Spot balance of `user` in `asset`: `total` includes `hold` (locked by resting orders).
    function spotBalance(address user, uint32 asset) internal view returns (uint256 total, uint256 hold) {
        (total, hold) = abi.decode(_read(SPOT_BALANCE, abi.encode(user, asset)), (uint256, uint256));
    }

    /// Perp position of `user` in perp `market`.
    function perpPosition(address user, uint32 market) internal view returns (Position memory) {
        // A static struct encodes exactly like its flattened fields.
        return abi.decode(_read(PERP_POSITION, abi.encode(user, market)), (Position));
    }

    /// Perp account value, cash and margins of `user`.
    function accountValue(address user) internal view returns (Account memory) {
        return abi.decode(_read(ACCOUNT_VALUE, abi.encode(user)), (Account));
    }

    /// Oracle price (median of fresh publisher prices) of perp `market`; reverts if none is fresh.
    function oraclePrice(uint32 market) internal view returns (uint256) {
        return abi.decode(_read(ORACLE_PRICE, abi.encode(market)), (uint256));
    }

    /// Mark price of perp `market`; reverts if there is none.
    function markPrice(uint32 market) internal view returns (uint256) {
        return abi.decode(_read(MARK_PRICE, abi.encode(market)), (uint256));
    }

    /// Best bid and ask of `market`; 0 = empty side.
    function bestBidAsk(uint32 market) internal view returns (uint256 bid, uint256 ask) {
        (bid, ask) = abi.decode(_read(BEST_BID_ASK, abi.encode(market)), (uint256, uint256));
    }

    /// Token, decimals and symbol of `asset`.
    function assetInfo(uint32 asset) internal view returns (Asset memory info) {
        // Dynamic (string): the answer is three top-level values, not one encoded struct.
        (info.token, info.decimals, info.symbol) =
            abi.decode(_read(ASSET_INFO, abi.encode(asset)), (address, uint8, string));
    }

    /// Parameters of `market`.
    function marketInfo(uint32 market) internal view returns (Market memory) {
        return abi.decode(_read(MARKET_INFO, abi.encode(market)), (Market));
    }

    /// The L1 block number: the last block whose end-of-block step ran.
    function l1BlockNumber() internal view returns (uint64) {
        return abi.decode(_read(L1_BLOCK_NUMBER, ""), (uint64));
    }

    /// The resting order `orderId`; reverts if it is not resting.
    function orderInfo(uint64 orderId) internal view returns (Order memory) {
        return abi.decode(_read(ORDER_INFO, abi.encode(orderId)), (Order));
    }

    /// `staticcall` of a read precompile; bubbles its revert data verbatim. An empty answer means
    /// there is no precompile at `target` (the chain has no L1).
    function _read(address target, bytes memory input) private view returns (bytes memory ret) {
        bool ok;
        (ok, ret) = target.staticcall(input);
        if (!ok) {
            assembly ("memory-safe") {
                revert(add(ret, 32), mload(ret))
            }
        }
        require(ret.length > 0, "L1Read: no answer (is the L1 enabled on this chain?)");
    }
}
