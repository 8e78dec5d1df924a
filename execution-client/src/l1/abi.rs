//! The Solidity ABI of the EVM interface: the core precompile's calls (forwarded by the write
//! contract) and the read precompiles' inputs and outputs. `contracts/l1/` holds the same
//! interfaces in Solidity.

use alloy_sol_types::sol;

sol! {
    /// The privileged core precompile; only the write contract (and the system step) call it.
    interface IL1Core {
        function deposit(address user, address token, uint256 amount) external;
        function withdraw(address user, uint32 asset, uint256 amount) external returns (address token);
        function placeOrder(address user, uint32 market, bool isBuy, uint128 price, uint128 size, uint8 tif, uint128 cloid) external returns (uint64 orderId, uint128 filled, uint128 resting);
        function cancelOrder(address user, uint32 market, uint64 orderId) external returns (uint128 remaining);
        function cancelByCloid(address user, uint32 market, uint128 cloid) external returns (uint128 remaining);
        function perpTransfer(address user, int256 amount) external;
        function postOraclePrice(address user, uint32 market, uint128 price) external;
        /// The end-of-block step; only the system address may call it.
        function endOfBlock() external;
    }
}
