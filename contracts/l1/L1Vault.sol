// SPDX-License-Identifier: MIT OR Apache-2.0
pragma solidity ^0.8.24;

import {L1Read} from "./L1Read.sol";
import {IL1Write, L1_WRITE_ADDRESS} from "./IL1Write.sol";
import {SafeToken} from "./SafeToken.sol";

/// @title L1Vault
/// @notice EXAMPLE (small, not audited): a vault that trades on the Tandem L1 exchange with its
/// depositors' funds.
///  - Users `deposit` a registered ERC-20 (typically the USD collateral) and receive shares; the
///    vault moves the tokens into its own L1 spot balance (approve L1Write, then deposit).
///  - The `owner` (the deployer) places and cancels spot/perp orders and moves collateral between
///    the vault's spot balance and perp account, all through L1Write: the vault's address is the
///    L1 account.
///  - Share price = totalAssets() / totalShares, with totalAssets() read from the L1: the
///    vault's spot balance of `asset` (including amounts held by resting orders) plus its perp
///    account value when positive. Other spot assets the vault may have bought are NOT valued,
///    and the perp account value only makes sense in `asset` if `asset` is the perp collateral.
///  - `withdraw(shares)` burns shares and withdraws their value from the L1 to the user. It needs
///    that much FREE spot balance: the owner keeps enough out of orders and perps.
/// Share math uses one virtual share and one virtual asset unit (rounding always favours the
/// vault), so the first depositor gets `amount` shares.
contract L1Vault {
    IL1Write private constant L1_WRITE = IL1Write(L1_WRITE_ADDRESS);

    /// The account allowed to trade with the vault's funds (the deployer).
    address public immutable owner;
    /// The L1 asset index of the deposit token.
    uint32 public immutable asset;
    /// The deposit token (the ERC-20 registered for `asset`).
    address public immutable token;

    /// Total shares outstanding.
    uint256 public totalShares;
    /// Shares of each depositor.
    mapping(address => uint256) public sharesOf;

    event Deposited(address indexed user, uint256 amount, uint256 shares);
    event Withdrawn(address indexed user, uint256 shares, uint256 amount);

    modifier onlyOwner() {
        require(msg.sender == owner, "L1Vault: not the owner");
        _;
    }

    /// A vault of L1 asset `asset_` (must be an ERC-20 asset); the deployer is the owner.
    constructor(uint32 asset_) {
        address token_ = L1Read.assetInfo(asset_).token;
        require(token_ != address(0), "L1Vault: the asset must be an ERC-20");
        owner = msg.sender;
        asset = asset_;
        token = token_;
    }

    // ---- depositors ----

    /// Pulls `amount` tokens from the caller (approve the vault first), deposits what was
    /// received into the vault's L1 spot balance and mints shares at the current price.
    function deposit(uint256 amount) external returns (uint256 shares) {
        uint256 assetsBefore = totalAssets();
        uint256 balanceBefore = SafeToken.balanceOf(token, address(this));
        SafeToken.safeTransferFrom(token, msg.sender, address(this), amount);
        uint256 received = SafeToken.balanceOf(token, address(this)) - balanceBefore;

        shares = received * (totalShares + 1) / (assetsBefore + 1);
        require(shares > 0, "L1Vault: deposit too small");
        totalShares += shares;
        sharesOf[msg.sender] += shares;

        SafeToken.safeApprove(token, L1_WRITE_ADDRESS, received);
        L1_WRITE.deposit(token, received);
        emit Deposited(msg.sender, received, shares);
    }

    /// Burns `shares` of the caller and sends their value, withdrawn from the L1, to the caller;
    /// returns the amount sent.
    function withdraw(uint256 shares) external returns (uint256 amount) {
        require(shares > 0 && shares <= sharesOf[msg.sender], "L1Vault: invalid shares");
        uint256 value = convertToAssets(shares);
        require(value > 0, "L1Vault: nothing to withdraw");
        sharesOf[msg.sender] -= shares;
        totalShares -= shares;

        uint256 balanceBefore = SafeToken.balanceOf(token, address(this));
        L1_WRITE.withdraw(asset, value);
        amount = SafeToken.balanceOf(token, address(this)) - balanceBefore;
        SafeToken.safeTransfer(token, msg.sender, amount);
        emit Withdrawn(msg.sender, shares, amount);
    }

    /// The vault's assets on the L1, in `asset` units: spot total (including holds) plus the perp
    /// account value if positive.
    function totalAssets() public view returns (uint256) {
        (uint256 spot,) = L1Read.spotBalance(address(this), asset);
        int256 perp = L1Read.accountValue(address(this)).accountValue;
        return perp > 0 ? spot + uint256(perp) : spot;
    }

    /// What `shares` are worth now (rounded down).
    function convertToAssets(uint256 shares) public view returns (uint256) {
        return shares * (totalAssets() + 1) / (totalShares + 1);
    }

    // ---- owner: trading through L1Write ----

    /// Places a spot or perp order for the vault (`tif`: 0 GTC, 1 IOC, 2 post-only, 3 market).
    function placeOrder(uint32 market, bool isBuy, uint128 price, uint128 size, uint8 tif, uint128 cloid)
        external
        onlyOwner
        returns (uint64 orderId, uint128 filled, uint128 resting)
    {
        return L1_WRITE.placeOrder(market, isBuy, price, size, tif, cloid);
    }

    /// Cancels a resting order of the vault.
    function cancelOrder(uint32 market, uint64 orderId) external onlyOwner returns (uint128 remaining) {
        return L1_WRITE.cancelOrder(market, orderId);
    }

    /// Cancels a resting order of the vault by client order id.
    function cancelByCloid(uint32 market, uint128 cloid) external onlyOwner returns (uint128 remaining) {
        return L1_WRITE.cancelByCloid(market, cloid);
    }

    /// Moves collateral between the vault's spot balance and perp account (positive: into perps).
    function perpTransfer(int256 amount) external onlyOwner {
        L1_WRITE.perpTransfer(amount);
    }
}
