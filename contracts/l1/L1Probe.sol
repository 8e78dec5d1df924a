// SPDX-License-Identifier: MIT OR Apache-2.0
pragma solidity ^0.8.24;

import {L1Read} from "./L1Read.sol";
import {IL1Write, L1_WRITE_ADDRESS} from "./IL1Write.sol";
import {SafeToken} from "./SafeToken.sol";

/// @title L1Probe
/// @notice Test contract for the execution client's EVM-level tests of the L1 exchange.
///  - one view per read precompile, returning its decoded answer (flattened) through L1Read;
///  - one function per L1Write action, so the probe itself is the L1 account (`msg.sender` of
///    L1Write is the probe);
///  - `rawCall` / `rawStaticCall`: low-level calls with a gas limit that return success, return
///    data and the gas used instead of reverting (gas and failure tests).
/// Not access controlled: anyone may drive it. Not for production use.
contract L1Probe {
    IL1Write private constant L1_WRITE = IL1Write(L1_WRITE_ADDRESS);

    // ---- reads (0x…0800 – 0x…0809) ----

    function spotBalance(address user, uint32 asset) external view returns (uint256 total, uint256 hold) {
        return L1Read.spotBalance(user, asset);
    }

    function perpPosition(address user, uint32 market)
        external
        view
        returns (int256 size, uint256 entryPrice, uint256 margin, int256 unrealizedPnl)
    {
        L1Read.Position memory p = L1Read.perpPosition(user, market);
        return (p.size, p.entryPrice, p.margin, p.unrealizedPnl);
    }

    function accountValue(address user)
        external
        view
        returns (int256 value, int256 cash, uint256 initialMargin, uint256 maintenanceMargin)
    {
        L1Read.Account memory a = L1Read.accountValue(user);
        return (a.accountValue, a.cash, a.initialMargin, a.maintenanceMargin);
    }

    function oraclePrice(uint32 market) external view returns (uint256 price) {
        return L1Read.oraclePrice(market);
    }

    function markPrice(uint32 market) external view returns (uint256 price) {
        return L1Read.markPrice(market);
    }

    function bestBidAsk(uint32 market) external view returns (uint256 bid, uint256 ask) {
        return L1Read.bestBidAsk(market);
    }

    function assetInfo(uint32 asset) external view returns (address token, uint8 decimals, string memory symbol) {
        L1Read.Asset memory a = L1Read.assetInfo(asset);
        return (a.token, a.decimals, a.symbol);
    }

    function marketInfo(uint32 market)
        external
        view
        returns (
            bool isPerp,
            uint32 base,
            uint32 quote,
            uint256 tickSize,
            uint256 lotSize,
            uint32 takerFeeBps,
            uint32 maxLeverage,
            uint32 maintenanceMarginBps,
            uint8 baseDecimals
        )
    {
        L1Read.Market memory m = L1Read.marketInfo(market);
        return (
            m.isPerp,
            m.base,
            m.quote,
            m.tickSize,
            m.lotSize,
            m.takerFeeBps,
            m.maxLeverage,
            m.maintenanceMarginBps,
            m.baseDecimals
        );
    }

    function l1BlockNumber() external view returns (uint64) {
        return L1Read.l1BlockNumber();
    }

    function orderInfo(uint64 orderId)
        external
        view
        returns (address owner, uint32 market, bool isBuy, uint128 price, uint128 remaining, uint128 cloid)
    {
        L1Read.Order memory o = L1Read.orderInfo(orderId);
        return (o.owner, o.market, o.isBuy, o.price, o.remaining, o.cloid);
    }

    // ---- writes through L1Write (the probe is the L1 account) ----

    /// Deposits `msg.value` ETH for the probe.
    function depositEth() external payable {
        L1_WRITE.depositEth{value: msg.value}();
    }

    /// Deposits `amount` of `token` held by the probe (fund the probe first): approves L1Write
    /// for `amount`, then deposits.
    function deposit(address token, uint256 amount) external {
        SafeToken.safeApprove(token, L1_WRITE_ADDRESS, amount);
        L1_WRITE.deposit(token, amount);
    }

    /// Withdraws to the probe (ETH lands in `receive`, tokens in the probe's balance).
    function withdraw(uint32 asset, uint256 amount) external {
        L1_WRITE.withdraw(asset, amount);
    }

    function placeOrder(uint32 market, bool isBuy, uint128 price, uint128 size, uint8 tif, uint128 cloid)
        external
        returns (uint64 orderId, uint128 filled, uint128 resting)
    {
        return L1_WRITE.placeOrder(market, isBuy, price, size, tif, cloid);
    }

    function cancelOrder(uint32 market, uint64 orderId) external returns (uint128 remaining) {
        return L1_WRITE.cancelOrder(market, orderId);
    }

    function cancelByCloid(uint32 market, uint128 cloid) external returns (uint128 remaining) {
        return L1_WRITE.cancelByCloid(market, cloid);
    }

    function perpTransfer(int256 amount) external {
        L1_WRITE.perpTransfer(amount);
    }

    function postOraclePrice(uint32 market, uint128 price) external {
        L1_WRITE.postOraclePrice(market, price);
    }

    // ---- raw calls (gas / failure tests) ----

    /// CALL `target` with `data`, forwarding `msg.value` and at most `gas` gas (capped by the
    /// 63/64 rule). Never reverts itself on failure. `gasUsed` = gasleft() just before the CALL
    /// minus gasleft() just after it: the callee's gas plus the CALL opcode's own cost (100 for a
    /// warm target, 2600 cold, + 9000 with value) and a few gas of stack operations; the input is
    /// copied to memory and the return data copied out outside the measured window.
    function rawCall(address target, bytes calldata data, uint256 gas)
        external
        payable
        returns (bool ok, bytes memory ret, uint256 gasUsed)
    {
        bytes memory input = data;
        uint256 limit = gas;
        assembly ("memory-safe") {
            let g0 := gas()
            ok := call(limit, target, callvalue(), add(input, 32), mload(input), 0, 0)
            let g1 := gas()
            gasUsed := sub(g0, g1)
        }
        ret = _returnData();
    }

    /// STATICCALL `target` with `data` and at most `gas` gas; like `rawCall` without value.
    function rawStaticCall(address target, bytes calldata data, uint256 gas)
        external
        view
        returns (bool ok, bytes memory ret, uint256 gasUsed)
    {
        bytes memory input = data;
        uint256 limit = gas;
        assembly ("memory-safe") {
            let g0 := gas()
            ok := staticcall(limit, target, add(input, 32), mload(input), 0, 0)
            let g1 := gas()
            gasUsed := sub(g0, g1)
        }
        ret = _returnData();
    }

    /// Accepts ETH (withdrawals, funding).
    receive() external payable {}

    function _returnData() private pure returns (bytes memory ret) {
        assembly ("memory-safe") {
            ret := mload(0x40)
            mstore(ret, returndatasize())
            returndatacopy(add(ret, 32), 0, returndatasize())
            mstore(0x40, add(add(ret, 32), and(add(returndatasize(), 31), not(31))))
        }
    }
}
