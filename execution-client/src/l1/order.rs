//! Orders as the book and matching see them, and the seam between matching and settlement.
//!
//! Matching ([`super::matching`]) is the same for every market; what a fill moves is not: spot
//! fills move balances between accounts ([`super::spot`]), perp fills move positions and cash
//! ([`super::clearinghouse`]). Both implement [`Settlement`].

use alloy_primitives::Address;

use super::{Ctx, error::L1Result, store::Store};

/// Buy (bid) or sell (ask).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Side {
    /// A buy order; rests on the bid side.
    Bid,
    /// A sell order; rests on the ask side.
    Ask,
}

impl Side {
    /// The side an order of this side matches against.
    pub const fn opposite(self) -> Self {
        match self {
            Self::Bid => Self::Ask,
            Self::Ask => Self::Bid,
        }
    }

    /// Whether this is a buy.
    pub const fn is_buy(self) -> bool {
        matches!(self, Self::Bid)
    }

    /// `Bid` for a buy.
    pub const fn from_is_buy(is_buy: bool) -> Self {
        if is_buy { Self::Bid } else { Self::Ask }
    }
}

/// How long an order lives and how it may match.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimeInForce {
    /// Good till cancelled: matches, then the remainder rests.
    Gtc,
    /// Immediate or cancel: matches, then the remainder is dropped.
    Ioc,
    /// Post-only (add liquidity only): refused if it would match at placement.
    PostOnly,
    /// Market: IOC at the best opposite price moved by the configured slippage.
    Market,
}

impl TimeInForce {
    /// The ABI encoding: 0 GTC, 1 IOC, 2 post-only, 3 market.
    pub const fn from_u8(v: u8) -> Option<Self> {
        match v {
            0 => Some(Self::Gtc),
            1 => Some(Self::Ioc),
            2 => Some(Self::PostOnly),
            3 => Some(Self::Market),
            _ => None,
        }
    }
}

/// An order as submitted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OrderRequest {
    /// Market index.
    pub market: u32,
    /// Buy or sell.
    pub side: Side,
    /// Limit price (ignored for market orders).
    pub price: u128,
    /// Size in the market's size units.
    pub size: u128,
    /// Time in force.
    pub tif: TimeInForce,
    /// Client order id, unique among the account's resting orders of this market; 0 for none.
    pub cloid: u128,
}

/// A resting order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Resting {
    /// Global order id.
    pub id: u64,
    /// Owner.
    pub owner: Address,
    /// Market index.
    pub market: u32,
    /// Side.
    pub side: Side,
    /// Limit price.
    pub price: u128,
    /// Size still open.
    pub remaining: u128,
    /// Client order id (0 for none).
    pub cloid: u128,
}

/// One trade: `size` at the maker's `price`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fill {
    /// Market index.
    pub market: u32,
    /// The incoming order's owner.
    pub taker: Address,
    /// The incoming order's id.
    pub taker_order: u64,
    /// The taker's side.
    pub taker_side: Side,
    /// The resting order's owner.
    pub maker: Address,
    /// The resting order's id.
    pub maker_order: u64,
    /// Trade price (the maker's limit).
    pub price: u128,
    /// Trade size.
    pub size: u128,
}

/// What the taker's order did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct PlaceOutcome {
    /// Id given to the order (also when nothing rests).
    pub order_id: u64,
    /// Size filled at placement.
    pub filled: u128,
    /// Size left resting on the book.
    pub resting: u128,
}

/// What a market kind does with orders and fills: reserve funds or margin for resting orders,
/// and move value when they trade.
pub trait Settlement<S: Store> {
    /// Checks that `owner` can afford `request` filled completely at `price` (the limit, or the
    /// market order's slippage bound); refuses it otherwise. Nothing is reserved.
    fn admit(
        &mut self,
        ctx: &mut Ctx<'_, S>,
        owner: Address,
        request: &OrderRequest,
        price: u128,
    ) -> L1Result<()>;

    /// Reserves what `order` (about to rest) needs while it rests.
    fn reserve(&mut self, ctx: &mut Ctx<'_, S>, order: &Resting) -> L1Result<()>;

    /// Releases the reservation of `size` of resting `order` (cancelled or self-trade expired).
    fn release(&mut self, ctx: &mut Ctx<'_, S>, order: &Resting, size: u128) -> L1Result<()>;

    /// Settles `fill`: the maker's reservation for `fill.size` is consumed, the taker pays or
    /// receives directly, the taker fee goes to the fee recipient. Returns the fee charged.
    fn settle(&mut self, ctx: &mut Ctx<'_, S>, fill: &Fill) -> L1Result<u128>;
}
