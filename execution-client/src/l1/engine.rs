//! The engine's actions as the write contract and the end-of-block step see them: each picks the
//! settlement of its market's kind and calls into the module that owns the concept.

use alloy_primitives::Address;

use super::{
    Ctx, book, clearinghouse,
    clearinghouse::PerpSettlement,
    config::MarketKind,
    error::{L1Error, L1Result},
    matching, oracle,
    order::{OrderRequest, PlaceOutcome},
    spot,
    spot::SpotSettlement,
    store::Store,
};

/// Credits `amount` of `asset` received on the EVM side to `user`'s spot balance.
pub fn deposit<S: Store>(
    ctx: &mut Ctx<'_, S>,
    user: Address,
    asset: u32,
    amount: u128,
) -> L1Result<()> {
    spot::deposit(ctx, user, asset, amount)
}

/// Debits `amount` of `asset` from `user`'s free spot balance, to be paid out on the EVM side.
pub fn withdraw<S: Store>(
    ctx: &mut Ctx<'_, S>,
    user: Address,
    asset: u32,
    amount: u128,
) -> L1Result<()> {
    spot::withdraw(ctx, user, asset, amount)
}

/// Places an order for `user` on the book of `request.market`.
pub fn place_order<S: Store>(
    ctx: &mut Ctx<'_, S>,
    user: Address,
    request: &OrderRequest,
) -> L1Result<PlaceOutcome> {
    match ctx.config.market(request.market)?.kind {
        MarketKind::Spot => matching::place(ctx, &mut SpotSettlement, user, request),
        MarketKind::Perp => matching::place(ctx, &mut PerpSettlement, user, request),
    }
}

/// Cancels `user`'s resting order `id` in `market`; returns the size that was still open.
pub fn cancel_order<S: Store>(
    ctx: &mut Ctx<'_, S>,
    user: Address,
    market: u32,
    id: u64,
) -> L1Result<u128> {
    match ctx.config.market(market)?.kind {
        MarketKind::Spot => matching::cancel(ctx, &mut SpotSettlement, user, market, id),
        MarketKind::Perp => matching::cancel(ctx, &mut PerpSettlement, user, market, id),
    }
}

/// Cancels `user`'s resting order with client id `cloid` in `market`.
pub fn cancel_by_cloid<S: Store>(
    ctx: &mut Ctx<'_, S>,
    user: Address,
    market: u32,
    cloid: u128,
) -> L1Result<u128> {
    if cloid == 0 {
        return Err(L1Error::UnknownCloid(0));
    }
    match ctx.config.market(market)?.kind {
        MarketKind::Spot => {
            matching::cancel_by_cloid(ctx, &mut SpotSettlement, user, market, cloid)
        }
        MarketKind::Perp => {
            matching::cancel_by_cloid(ctx, &mut PerpSettlement, user, market, cloid)
        }
    }
}

/// Moves collateral between `user`'s spot balance and perp account (positive: into perps).
pub fn perp_transfer<S: Store>(ctx: &mut Ctx<'_, S>, user: Address, amount: i128) -> L1Result<()> {
    clearinghouse::transfer(ctx, user, amount)
}

/// Records `publisher`'s price for perp `market`.
pub fn post_oracle_price<S: Store>(
    ctx: &mut Ctx<'_, S>,
    publisher: Address,
    market: u32,
    price: u128,
) -> L1Result<()> {
    oracle::post(ctx, publisher, market, price)
}

/// The deterministic end-of-block step: funding on interval blocks, liquidations, marks.
pub fn end_of_block<S: Store>(ctx: &mut Ctx<'_, S>) -> L1Result<()> {
    clearinghouse::end_of_block(ctx)
}

/// Best bid and ask of `market` (`None` for an empty side).
pub fn best_bid_ask<S: Store>(
    ctx: &mut Ctx<'_, S>,
    market: u32,
) -> L1Result<(Option<u128>, Option<u128>)> {
    ctx.config.market(market)?;
    Ok((
        book::best_price(ctx, market, super::order::Side::Bid)?,
        book::best_price(ctx, market, super::order::Side::Ask)?,
    ))
}
