// SPDX-License-Identifier: MIT OR Apache-2.0
pragma solidity ^0.8.24;

import {IL1Core, L1_CORE_ADDRESS} from "./IL1Core.sol";
import {IL1Write} from "./IL1Write.sol";
import {SafeToken} from "./SafeToken.sol";

/// @title L1Write
/// @notice The write system contract of the Tandem L1 exchange, predeployed at
/// `0x3333333333333333333333333333333333333333` (its runtime code is placed in genesis). Each
/// function forwards to the core precompile `0x…08ff` with `msg.sender` as the user; the core
/// checks that its caller is this contract. Core failures are bubbled verbatim
/// (`Error(string)` with the engine's error text).
/// @dev Constraints, checked by `compile.js`: no constructor, no storage variables, no
/// immutables — the persistent storage of this address belongs to the engine (the L1 state).
/// The only state this code touches is one transient-storage slot (EIP-1153), a reentrancy
/// lock for `deposit`, which never reaches the persistent storage.
/// The contract holds the EVM side of every deposit (ETH and ERC-20 balances) and pays
/// withdrawals out of it.
contract L1Write is IL1Write {
    /// @dev Transient slot of the `deposit` reentrancy lock: keccak256("tandem.l1write.deposit.lock").
    uint256 private constant LOCK_SLOT = 0xea5b31314abb23831e393e8386a54ebec1f125a96d178c10cbb56b6a492e7b19;

    /// @inheritdoc IL1Write
    function depositEth() external payable {
        _core(abi.encodeCall(IL1Core.deposit, (msg.sender, address(0), msg.value)));
    }

    /// @inheritdoc IL1Write
    /// @dev Credits the balance delta actually received (fee-on-transfer tokens), under a
    /// transient lock so that a token hook cannot re-enter and have one transfer counted twice.
    /// An unregistered token reverts in the core (and the transfer is undone with it).
    function deposit(address token, uint256 amount) external {
        require(token != address(0), "L1Write: use depositEth() for native ETH");
        uint256 locked;
        assembly {
            locked := tload(LOCK_SLOT)
        }
        require(locked == 0, "L1Write: reentrant deposit");
        assembly {
            tstore(LOCK_SLOT, 1)
        }
        uint256 before = SafeToken.balanceOf(token, address(this));
        SafeToken.safeTransferFrom(token, msg.sender, address(this), amount);
        uint256 received = SafeToken.balanceOf(token, address(this)) - before;
        _core(abi.encodeCall(IL1Core.deposit, (msg.sender, token, received)));
        assembly {
            tstore(LOCK_SLOT, 0)
        }
    }

    /// @inheritdoc IL1Write
    /// @dev The core debits the balance first; the payout then goes to `msg.sender` (a failing
    /// ETH receiver or token transfer reverts the whole withdrawal with its revert data).
    function withdraw(uint32 asset, uint256 amount) external {
        address token = abi.decode(_core(abi.encodeCall(IL1Core.withdraw, (msg.sender, asset, amount))), (address));
        if (token == address(0)) {
            (bool ok, bytes memory ret) = msg.sender.call{value: amount}("");
            if (!ok) _bubble(ret);
        } else {
            SafeToken.safeTransfer(token, msg.sender, amount);
        }
    }

    /// @inheritdoc IL1Write
    function placeOrder(uint32 market, bool isBuy, uint128 price, uint128 size, uint8 tif, uint128 cloid)
        external
        returns (uint64 orderId, uint128 filled, uint128 resting)
    {
        bytes memory ret =
            _core(abi.encodeCall(IL1Core.placeOrder, (msg.sender, market, isBuy, price, size, tif, cloid)));
        (orderId, filled, resting) = abi.decode(ret, (uint64, uint128, uint128));
    }

    /// @inheritdoc IL1Write
    function cancelOrder(uint32 market, uint64 orderId) external returns (uint128 remaining) {
        remaining = abi.decode(_core(abi.encodeCall(IL1Core.cancelOrder, (msg.sender, market, orderId))), (uint128));
    }

    /// @inheritdoc IL1Write
    function cancelByCloid(uint32 market, uint128 cloid) external returns (uint128 remaining) {
        remaining = abi.decode(_core(abi.encodeCall(IL1Core.cancelByCloid, (msg.sender, market, cloid))), (uint128));
    }

    /// @inheritdoc IL1Write
    function perpTransfer(int256 amount) external {
        _core(abi.encodeCall(IL1Core.perpTransfer, (msg.sender, amount)));
    }

    /// @inheritdoc IL1Write
    function postOraclePrice(uint32 market, uint128 price) external {
        _core(abi.encodeCall(IL1Core.postOraclePrice, (msg.sender, market, price)));
    }

    /// @notice Plain ETH transfers are refused: use `depositEth()`.
    receive() external payable {
        revert("L1Write: plain ETH transfers are refused, use depositEth()");
    }

    /// @notice Unknown functions are refused.
    fallback() external payable {
        revert("L1Write: unknown function");
    }

    /// @dev Low-level call of the core precompile (it has no code); bubbles failures verbatim.
    function _core(bytes memory data) private returns (bytes memory ret) {
        bool ok;
        (ok, ret) = L1_CORE_ADDRESS.call(data);
        if (!ok) _bubble(ret);
    }

    function _bubble(bytes memory ret) private pure {
        assembly ("memory-safe") {
            revert(add(ret, 32), mload(ret))
        }
    }
}
