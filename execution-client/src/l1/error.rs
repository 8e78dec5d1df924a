//! Why an L1 action was refused; the message is the revert reason contracts see.

use alloy_primitives::Address;

use super::store::StoreError;

/// An L1 action refused, or the state behind it unreadable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum L1Error {
    /// Reading or writing the state failed (a database error, not the caller's fault).
    #[error(transparent)]
    Store(#[from] StoreError),
    /// No asset with this index.
    #[error("unknown asset {0}")]
    UnknownAsset(u32),
    /// No market with this index.
    #[error("unknown market {0}")]
    UnknownMarket(u32),
    /// The action needs a spot market.
    #[error("market {0} is not a spot market")]
    NotSpotMarket(u32),
    /// The action needs a perp market.
    #[error("market {0} is not a perp market")]
    NotPerpMarket(u32),
    /// The token is not a registered asset.
    #[error("token {0} is not a registered asset")]
    UnknownToken(Address),
    /// Amount, price or size of zero where one is needed.
    #[error("amount must be positive")]
    ZeroAmount,
    /// Price zero or not a multiple of the market's tick size.
    #[error("price {price} is not a positive multiple of the tick size {tick}")]
    InvalidPrice {
        /// The price given.
        price: u128,
        /// The market's tick size.
        tick: u128,
    },
    /// Price above the largest the book stores (`MAX_PRICE_TICKS` ticks).
    #[error("price {price} is above the market's maximum price {max}")]
    PriceTooHigh {
        /// The price given.
        price: u128,
        /// The market's largest price.
        max: u128,
    },
    /// Size zero or not a multiple of the market's lot size.
    #[error("size {size} is not a positive multiple of the lot size {lot}")]
    InvalidSize {
        /// The size given.
        size: u128,
        /// The market's lot size.
        lot: u128,
    },
    /// An amount does not fit the engine's integers.
    #[error("amount overflow")]
    Overflow,
    /// Not enough free balance (total minus hold).
    #[error("insufficient balance of asset {asset}: need {needed}, available {available}")]
    InsufficientBalance {
        /// The asset.
        asset: u32,
        /// What the action needs.
        needed: u128,
        /// What is free.
        available: u128,
    },
    /// The perp account would fall below its initial margin.
    #[error("insufficient margin: need {needed}, account value {available}")]
    InsufficientMargin {
        /// Margin the account would need.
        needed: u128,
        /// Its account value (may be negative).
        available: i128,
    },
    /// The order's notional (at its limit, a market order at its slippage bound) is below the
    /// market's minimum.
    #[error("order notional {notional} is below the market's minimum notional {min}")]
    OrderBelowMinNotional {
        /// The order's notional.
        notional: u128,
        /// The market's minimum.
        min: u128,
    },
    /// The perp position the order would leave, filled completely, is neither zero nor at least
    /// the market's minimum notional (at the mark).
    #[error(
        "the position left would be worth {notional}, below the market's minimum notional {min}: reduce it to zero or keep at least the minimum"
    )]
    PositionBelowMinNotional {
        /// The position's notional after the order.
        notional: u128,
        /// The market's minimum.
        min: u128,
    },
    /// A post-only order would have matched at placement.
    #[error("post-only order would cross the book")]
    PostOnlyWouldCross,
    /// A market order found no resting order to price against.
    #[error("no liquidity for a market order")]
    NoLiquidity,
    /// No resting order with this id in this market.
    #[error("unknown order {0}")]
    UnknownOrder(u64),
    /// The order belongs to another account.
    #[error("order {0} belongs to another account")]
    NotOrderOwner(u64),
    /// The account already has a resting order with this client id.
    #[error("client order id {0} is already in use")]
    DuplicateCloid(u128),
    /// No resting order of the account with this client id.
    #[error("unknown client order id {0}")]
    UnknownCloid(u128),
    /// Only genesis-listed publishers may post oracle prices.
    #[error("{0} is not an oracle publisher")]
    NotPublisher(Address),
    /// The market has no fresh oracle price.
    #[error("market {0} has no fresh oracle price")]
    NoOraclePrice(u32),
    /// Time in force outside 0 (GTC), 1 (IOC), 2 (post-only), 3 (market).
    #[error("invalid time in force {0}")]
    InvalidTif(u8),
    /// The chain has no perp collateral asset, so no perp account.
    #[error("perps are not enabled on this chain")]
    NoPerps,
}

/// The result of an engine operation.
pub type L1Result<T> = Result<T, L1Error>;
