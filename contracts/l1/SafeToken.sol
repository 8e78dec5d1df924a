// SPDX-License-Identifier: MIT OR Apache-2.0
pragma solidity ^0.8.24;

/// @title SafeToken
/// @notice ERC-20 calls that work with tokens returning `bool` and with tokens returning nothing
/// (e.g. USDT). A call fails when it reverts (its revert data is bubbled verbatim), returns
/// `false`, or returns nothing from an address without code.
library SafeToken {
    /// `token.transfer(to, amount)`, reverting on failure.
    function safeTransfer(address token, address to, uint256 amount) internal {
        _call(token, abi.encodeWithSelector(0xa9059cbb, to, amount), "SafeToken: transfer failed");
    }

    /// `token.transferFrom(from, to, amount)`, reverting on failure.
    function safeTransferFrom(address token, address from, address to, uint256 amount) internal {
        _call(token, abi.encodeWithSelector(0x23b872dd, from, to, amount), "SafeToken: transferFrom failed");
    }

    /// `token.approve(spender, amount)`, reverting on failure.
    function safeApprove(address token, address spender, uint256 amount) internal {
        _call(token, abi.encodeWithSelector(0x095ea7b3, spender, amount), "SafeToken: approve failed");
    }

    /// `token.balanceOf(owner)`.
    function balanceOf(address token, address owner) internal view returns (uint256) {
        (bool ok, bytes memory ret) = token.staticcall(abi.encodeWithSelector(0x70a08231, owner));
        if (!ok) _bubble(ret);
        require(ret.length >= 32, "SafeToken: balanceOf failed");
        return abi.decode(ret, (uint256));
    }

    function _call(address token, bytes memory data, string memory reason) private {
        (bool ok, bytes memory ret) = token.call(data);
        if (!ok) _bubble(ret);
        if (ret.length == 0) {
            require(token.code.length > 0, reason);
        } else {
            require(ret.length >= 32 && abi.decode(ret, (bool)), reason);
        }
    }

    function _bubble(bytes memory ret) private pure {
        assembly ("memory-safe") {
            revert(add(ret, 32), mload(ret))
        }
    }
}
