// SPDX-License-Identifier: MIT OR Apache-2.0
pragma solidity ^0.8.24;

/// @title TestUSD
/// @notice A minimal ERC-20 ("Test USD", TUSD, 6 decimals) for devnets and tests, typically the
/// L1's USD collateral. It has NO constructor and NO mint: the genesis generator places its
/// runtime code (`out/TestUSD.runtime.bin`) in genesis and pre-fills the storage directly.
///
/// STORAGE LAYOUT (fixed; the genesis generator depends on it — do not reorder or add state):
///   slot 0: mapping(address => uint256) balanceOf
///           balanceOf[a] lives at keccak256(abi.encode(a, uint256(0)))
///   slot 1: mapping(address => mapping(address => uint256)) allowance
///           allowance[o][s] lives at keccak256(abi.encode(s, keccak256(abi.encode(o, uint256(1)))))
///   slot 2: uint256 totalSupply (must equal the sum of the pre-filled balances)
/// name, symbol and decimals are constants (code, not storage).
contract TestUSD {
    mapping(address => uint256) public balanceOf; // slot 0
    mapping(address => mapping(address => uint256)) public allowance; // slot 1
    uint256 public totalSupply; // slot 2

    string public constant name = "Test USD";
    string public constant symbol = "TUSD";
    uint8 public constant decimals = 6;

    event Transfer(address indexed from, address indexed to, uint256 value);
    event Approval(address indexed owner, address indexed spender, uint256 value);

    /// Moves `value` from the caller to `to`.
    function transfer(address to, uint256 value) external returns (bool) {
        _move(msg.sender, to, value);
        return true;
    }

    /// Lets `spender` move up to `value` of the caller's tokens (type(uint256).max = unlimited).
    function approve(address spender, uint256 value) external returns (bool) {
        allowance[msg.sender][spender] = value;
        emit Approval(msg.sender, spender, value);
        return true;
    }

    /// Moves `value` from `from` to `to` using the caller's allowance.
    function transferFrom(address from, address to, uint256 value) external returns (bool) {
        uint256 allowed = allowance[from][msg.sender];
        if (allowed != type(uint256).max) {
            require(allowed >= value, "TestUSD: insufficient allowance");
            unchecked {
                allowance[from][msg.sender] = allowed - value;
            }
        }
        _move(from, to, value);
        return true;
    }

    function _move(address from, address to, uint256 value) private {
        require(to != address(0), "TestUSD: transfer to the zero address");
        uint256 balance = balanceOf[from];
        require(balance >= value, "TestUSD: insufficient balance");
        unchecked {
            balanceOf[from] = balance - value;
        }
        // Checked: genesis balances are not guaranteed to sum to totalSupply.
        balanceOf[to] += value;
        emit Transfer(from, to, value);
    }
}
