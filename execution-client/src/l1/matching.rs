//! Price-time matching, time in force and cancels, the same for every market: what an order
//! reserves and what a fill moves is the [`Settlement`] of the market's kind.
//!
//! An incoming order matches the best opposite orders while their price crosses its limit, at
//! the maker's price, oldest first within a level. A resting order of the same owner that would
//! match is cancelled instead (self-trade prevention: the resting order expires). GTC and
//! post-only remainders rest; IOC and market remainders are dropped.
//!
//! This module owns no slots: the book ([`super::book`]) stores orders, the settlement funds.

use alloy_primitives::Address;

use super::{
    Ctx, book,
    config::L1Config,
    error::{L1Error, L1Result},
    events::{self, OrderCanceled, OrderPlaced},
    order::{Fill, OrderRequest, PlaceOutcome, Resting, Settlement, Side, TimeInForce},
    store::Store,
};

/// Whether a maker at `maker_price` matches a taker on `side` with limit `limit`.
const fn crosses(side: Side, limit: u128, maker_price: u128) -> bool {
    match side {
        Side::Bid => maker_price <= limit,
        Side::Ask => maker_price >= limit,
    }
}

/// A market order's limit: the best opposite price `best` moved by the configured slippage
/// against the taker (buy: up, rounded up to a tick; sell: down, rounded down, at least a tick).
fn market_bound(config: &L1Config, market: u32, side: Side, best: u128) -> L1Result<u128> {
    let tick = config.market(market)?.tick_size;
    let bps = u128::from(config.market_slippage_bps);
    let bound = match side {
        Side::Bid => {
            let moved = best.checked_mul(10_000 + bps).ok_or(L1Error::Overflow)?.div_ceil(10_000);
            moved.div_ceil(tick).checked_mul(tick).ok_or(L1Error::Overflow)?
        }
        Side::Ask => {
            let factor = 10_000u128.checked_sub(bps).ok_or(L1Error::Overflow)?;
            let moved = best.checked_mul(factor).ok_or(L1Error::Overflow)? / 10_000;
            (moved / tick * tick).max(tick)
        }
    };
    Ok(bound)
}

/// Places `owner`'s order `req`: validates, matches, rests a GTC or post-only remainder.
pub fn place<S: Store, T: Settlement<S>>(
    ctx: &mut Ctx<'_, S>,
    settlement: &mut T,
    owner: Address,
    req: &OrderRequest,
) -> L1Result<PlaceOutcome> {
    let (market, side) = (req.market, req.side);
    let opposite = side.opposite();
    let (limit, best_opposite) = if req.tif == TimeInForce::Market {
        let tick = ctx.config.market(market)?.tick_size;
        ctx.config.check_price_size(market, tick, req.size)?;
        let best = book::best_price(ctx, market, opposite)?.ok_or(L1Error::NoLiquidity)?;
        (market_bound(ctx.config, market, side, best)?, Some(best))
    } else {
        ctx.config.check_price_size(market, req.price, req.size)?;
        (req.price, book::best_price(ctx, market, opposite)?)
    };
    let crossing = best_opposite.is_some_and(|best| crosses(side, limit, best));
    if req.tif == TimeInForce::PostOnly && crossing {
        return Err(L1Error::PostOnlyWouldCross);
    }
    settlement.admit(ctx, owner, req, limit)?;
    if book::by_cloid(ctx, owner, market, req.cloid)?.is_some() {
        return Err(L1Error::DuplicateCloid(req.cloid));
    }

    let id = book::next_order_id(ctx)?;
    let mut remaining = req.size;
    // `crossing` was read above: an order that cannot match skips the loop's book reads.
    while crossing && remaining > 0 {
        let Some(maker) = book::best_order(ctx, market, opposite)? else { break };
        if !crosses(side, limit, maker.price) {
            break;
        }
        if maker.owner == owner {
            cancel_loaded(ctx, settlement, &maker)?;
            continue;
        }
        let size = remaining.min(maker.remaining);
        book::reduce_loaded(ctx, &maker, size)?;
        let fill = Fill {
            market,
            taker: owner,
            taker_order: id,
            taker_side: side,
            maker: maker.owner,
            maker_order: maker.id,
            price: maker.price,
            size,
        };
        let fee = settlement.settle(ctx, &fill)?;
        events::emit(
            ctx.store,
            &events::Fill {
                market,
                taker: owner,
                maker: maker.owner,
                takerOrderId: id,
                makerOrderId: maker.id,
                takerIsBuy: side.is_buy(),
                price: maker.price,
                size,
                fee,
            },
        );
        remaining -= size;
    }

    let filled = req.size - remaining;
    let resting = if remaining > 0 && matches!(req.tif, TimeInForce::Gtc | TimeInForce::PostOnly) {
        let order = Resting { id, owner, market, side, price: limit, remaining, cloid: req.cloid };
        book::insert(ctx, &order)?;
        settlement.reserve(ctx, &order)?;
        remaining
    } else {
        0
    };
    events::emit(
        ctx.store,
        &OrderPlaced {
            user: owner,
            market,
            orderId: id,
            cloid: req.cloid,
            isBuy: side.is_buy(),
            price: limit,
            size: req.size,
            resting,
        },
    );
    Ok(PlaceOutcome { order_id: id, filled, resting })
}

/// Removes `order` (as just read from the book), releases its reservation, emits the event.
fn cancel_loaded<S: Store, T: Settlement<S>>(
    ctx: &mut Ctx<'_, S>,
    settlement: &mut T,
    order: &Resting,
) -> L1Result<()> {
    book::remove_loaded(ctx, order)?;
    settlement.release(ctx, order, order.remaining)?;
    events::emit(
        ctx.store,
        &OrderCanceled {
            user: order.owner,
            market: order.market,
            orderId: order.id,
            remaining: order.remaining,
        },
    );
    Ok(())
}

/// Cancels `owner`'s resting order `id` in `market`; returns the size that was still open.
pub fn cancel<S: Store, T: Settlement<S>>(
    ctx: &mut Ctx<'_, S>,
    settlement: &mut T,
    owner: Address,
    market: u32,
    id: u64,
) -> L1Result<u128> {
    let order = match book::get(ctx, id)? {
        Some(order) if order.market == market => order,
        _ => return Err(L1Error::UnknownOrder(id)),
    };
    if order.owner != owner {
        return Err(L1Error::NotOrderOwner(id));
    }
    cancel_loaded(ctx, settlement, &order)?;
    Ok(order.remaining)
}

/// Cancels `owner`'s resting order with client id `cloid` in `market`; returns its remaining size.
pub fn cancel_by_cloid<S: Store, T: Settlement<S>>(
    ctx: &mut Ctx<'_, S>,
    settlement: &mut T,
    owner: Address,
    market: u32,
    cloid: u128,
) -> L1Result<u128> {
    let id = book::by_cloid(ctx, owner, market, cloid)?.ok_or(L1Error::UnknownCloid(cloid))?;
    cancel(ctx, settlement, owner, market, id)
}

/// Cancels all of `owner`'s resting orders in `market`, or in every market for `None` (then
/// `settlement` must be right for every market the owner has orders in).
pub fn cancel_all<S: Store, T: Settlement<S>>(
    ctx: &mut Ctx<'_, S>,
    settlement: &mut T,
    owner: Address,
    market: Option<u32>,
) -> L1Result<()> {
    for id in book::orders_of(ctx, owner)? {
        let Some(order) = book::get(ctx, id)? else { continue };
        if market.is_none_or(|m| m == order.market) {
            cancel_loaded(ctx, settlement, &order)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use alloy_primitives::LogData;
    use alloy_sol_types::SolEvent;
    use proptest::prelude::*;

    use super::*;
    use crate::l1::{
        config::{MAX_PRICE_TICKS, test_config},
        spot::{self, SpotSettlement},
        store::MemStore,
    };

    const ETH: u32 = 0;
    const USD: u32 = 1;
    /// 0.001 ETH, the spot market's lot.
    const LOT: u128 = 1_000_000_000_000_000;
    const GTC: TimeInForce = TimeInForce::Gtc;
    const IOC: TimeInForce = TimeInForce::Ioc;
    const POST: TimeInForce = TimeInForce::PostOnly;
    const MKT: TimeInForce = TimeInForce::Market;

    /// A price in USD cents (the tick) as quote units per ETH.
    const fn px(cents: u128) -> u128 {
        cents * 10_000
    }

    fn acct(n: u8) -> Address {
        Address::repeat_byte(n)
    }

    struct Ex {
        config: L1Config,
        mem: MemStore,
    }

    impl Ex {
        fn new() -> Self {
            Self { config: test_config(), mem: MemStore::default() }
        }

        fn ctx(&mut self) -> Ctx<'_, MemStore> {
            Ctx::new(&mut self.mem, &self.config, 1)
        }

        fn fund(&mut self, who: Address, asset: u32, amount: u128) {
            spot::deposit(&mut self.ctx(), who, asset, amount).unwrap();
        }

        /// A trader with 100 ETH and 1,000,000 USD.
        fn rich(&mut self, n: u8) -> Address {
            self.fund(acct(n), ETH, 100 * 1000 * LOT);
            self.fund(acct(n), USD, 1_000_000 * 1_000_000);
            acct(n)
        }

        fn order(
            &mut self,
            who: Address,
            side: Side,
            cents: u128,
            lots: u128,
            tif: TimeInForce,
            cloid: u128,
        ) -> L1Result<PlaceOutcome> {
            let req =
                OrderRequest { market: 0, side, price: px(cents), size: lots * LOT, tif, cloid };
            place(&mut self.ctx(), &mut SpotSettlement, who, &req)
        }

        fn buy(&mut self, who: Address, cents: u128, lots: u128, tif: TimeInForce) -> PlaceOutcome {
            self.order(who, Side::Bid, cents, lots, tif, 0).unwrap()
        }

        fn sell(
            &mut self,
            who: Address,
            cents: u128,
            lots: u128,
            tif: TimeInForce,
        ) -> PlaceOutcome {
            self.order(who, Side::Ask, cents, lots, tif, 0).unwrap()
        }

        fn cancel(&mut self, who: Address, id: u64) -> L1Result<u128> {
            cancel(&mut self.ctx(), &mut SpotSettlement, who, 0, id)
        }

        fn bal(&mut self, who: Address, asset: u32) -> (u128, u128) {
            spot::balance(&mut self.ctx(), who, asset).unwrap()
        }

        fn notional(&self, cents: u128, lots: u128) -> u128 {
            self.config.notional(0, px(cents), lots * LOT).unwrap()
        }

        fn fee(&self, notional: u128) -> u128 {
            self.config.taker_fee(0, notional).unwrap()
        }

        fn depth(&mut self, side: Side) -> Vec<(u128, u128, u32)> {
            book::depth(&mut self.ctx(), 0, side, 100)
                .unwrap()
                .into_iter()
                .map(|l| (l.price, l.size / LOT, l.orders))
                .collect()
        }

        fn fills(&self) -> Vec<events::Fill> {
            decode_all(&self.mem.logs)
        }

        fn consistent(&mut self) -> Vec<Resting> {
            book::assert_consistent(&mut self.ctx(), 0)
        }

        /// Refused with `want`, nothing stored or emitted.
        fn refused(&mut self, want: L1Error, f: impl FnOnce(&mut Self) -> L1Result<PlaceOutcome>) {
            let before = self.mem.clone();
            assert_eq!(f(self), Err(want));
            assert_eq!(self.mem.slots, before.slots);
            assert_eq!(self.mem.logs, before.logs);
        }
    }

    fn decode_all<E: SolEvent>(logs: &[LogData]) -> Vec<E> {
        logs.iter().filter_map(|l| E::decode_log_data(l).ok()).collect()
    }

    #[test]
    fn a_gas_limit_stops_a_sweep_before_the_unpaid_work() {
        use crate::l1::store::{Metered, StoreError, testing::SCHEDULE as schedule};
        let mut ex = Ex::new();
        let (maker, taker) = (ex.rich(1), ex.rich(2));
        for cents in 0..200 {
            ex.sell(maker, 300_000 + cents, 1, GTC);
        }
        let sweep = OrderRequest {
            market: 0,
            side: Side::Bid,
            price: px(400_000),
            size: 200 * LOT,
            tif: IOC,
            cloid: 0,
        };
        // The full sweep, unlimited, on a copy: what the work costs.
        let mut full = ex.mem.clone();
        let mut metered = Metered::new(&mut full);
        let outcome =
            place(&mut Ctx::new(&mut metered, &ex.config, 1), &mut SpotSettlement, taker, &sweep);
        assert_eq!(outcome.map(|o| o.filled), Ok(200 * LOT));
        let full_reads = metered.reads();
        let full_gas = metered.gas(&schedule);
        // A tenth of that gas: refused as out of gas after about a tenth of the reads.
        let mut limited = ex.mem.clone();
        let mut metered = Metered::with_limit(&mut limited, schedule, full_gas / 10);
        let outcome =
            place(&mut Ctx::new(&mut metered, &ex.config, 1), &mut SpotSettlement, taker, &sweep);
        assert_eq!(outcome, Err(L1Error::Store(StoreError::OutOfGas)));
        // At most one access beyond the limit: a cold slot set from zero.
        assert!(metered.gas(&schedule) <= full_gas / 10 + schedule.create + schedule.cold);
        assert!(
            metered.reads() < full_reads / 5,
            "stopped after {} of {full_reads} reads",
            metered.reads()
        );
    }

    #[test]
    fn price_time_priority() {
        let mut ex = Ex::new();
        let (a, b, c, d, t) = (ex.rich(1), ex.rich(2), ex.rich(3), ex.rich(4), ex.rich(5));
        let oa = ex.sell(a, 300_100, 10, GTC).order_id;
        let ob = ex.sell(b, 300_000, 5, GTC).order_id;
        let oc = ex.sell(c, 300_000, 5, GTC).order_id;
        ex.sell(d, 300_200, 1, GTC);
        assert_eq!(
            ex.depth(Side::Ask),
            vec![(px(300_000), 10, 2), (px(300_100), 10, 1), (px(300_200), 1, 1)]
        );
        let out = ex.buy(t, 300_100, 12, GTC);
        assert_eq!((out.filled, out.resting), (12 * LOT, 0));
        let fills: Vec<_> =
            ex.fills().iter().map(|f| (f.makerOrderId, f.price, f.size / LOT)).collect();
        // Better price first; at one price, the older order first; trades at the maker's price.
        assert_eq!(fills, vec![(ob, px(300_000), 5), (oc, px(300_000), 5), (oa, px(300_100), 2)]);
        assert_eq!(ex.depth(Side::Ask), vec![(px(300_100), 8, 1), (px(300_200), 1, 1)]);
        assert!(ex.depth(Side::Bid).is_empty());
        ex.consistent();
    }

    #[test]
    fn gtc_rests_remainder_after_partial_fills_across_levels() {
        let mut ex = Ex::new();
        let (m, t) = (ex.rich(1), ex.rich(2));
        ex.sell(m, 300_000, 2, GTC);
        ex.sell(m, 300_100, 3, GTC);
        ex.sell(m, 300_300, 3, GTC);
        let usd_before = ex.bal(t, USD).0;
        let out = ex.buy(t, 300_100, 10, GTC);
        assert_eq!((out.filled, out.resting), (5 * LOT, 5 * LOT));
        assert_eq!(ex.depth(Side::Bid), vec![(px(300_100), 5, 1)]);
        assert_eq!(ex.depth(Side::Ask), vec![(px(300_300), 3, 1)]);
        let (n1, n2) = (ex.notional(300_000, 2), ex.notional(300_100, 3));
        let paid = n1 + n2 + ex.fee(n1) + ex.fee(n2);
        // The remainder holds its notional at the limit price; the taker fee is not held.
        assert_eq!(ex.bal(t, USD), (usd_before - paid, ex.notional(300_100, 5)));
        let resting = book::get(&mut ex.ctx(), out.order_id).unwrap().unwrap();
        assert_eq!((resting.owner, resting.price, resting.remaining), (t, px(300_100), 5 * LOT));
        ex.consistent();
    }

    #[test]
    fn ioc_drops_remainder() {
        let mut ex = Ex::new();
        let (m, t) = (ex.rich(1), ex.rich(2));
        ex.sell(m, 300_000, 2, GTC);
        let out = ex.buy(t, 300_500, 10, IOC);
        assert_eq!((out.filled, out.resting), (2 * LOT, 0));
        assert!(ex.depth(Side::Bid).is_empty() && ex.depth(Side::Ask).is_empty());
        assert_eq!(ex.bal(t, USD).1, 0);
        assert!(book::orders_of(&mut ex.ctx(), t).unwrap().is_empty());
        // Nothing to match: the id is still issued and nothing rests.
        let out = ex.sell(t, 290_000, 1, IOC);
        assert_eq!(out, PlaceOutcome { order_id: out.order_id, filled: 0, resting: 0 });
        assert_eq!(book::get(&mut ex.ctx(), out.order_id).unwrap(), None);
    }

    #[test]
    fn post_only_refused_when_crossing_and_rests_otherwise() {
        let mut ex = Ex::new();
        let (m, t) = (ex.rich(1), ex.rich(2));
        ex.sell(m, 300_000, 2, GTC);
        ex.refused(L1Error::PostOnlyWouldCross, |ex| ex.order(t, Side::Bid, 300_000, 1, POST, 0));
        ex.refused(L1Error::PostOnlyWouldCross, |ex| ex.order(t, Side::Bid, 300_001, 1, POST, 0));
        let out = ex.buy(t, 299_999, 1, POST);
        assert_eq!((out.filled, out.resting), (0, LOT));
        let out = ex.sell(t, 300_000, 1, POST);
        assert_eq!(out.resting, LOT);
        assert_eq!(ex.depth(Side::Ask), vec![(px(300_000), 3, 2)]);
        assert_eq!(ex.depth(Side::Bid), vec![(px(299_999), 1, 1)]);
        ex.consistent();
    }

    #[test]
    fn market_orders_fill_within_the_slippage_bound() {
        let mut ex = Ex::new();
        let (m, t) = (ex.rich(1), ex.rich(2));
        ex.refused(L1Error::NoLiquidity, |ex| ex.order(t, Side::Bid, 0, 1, MKT, 0));
        ex.sell(m, 300_000, 2, GTC);
        // 5% above 3000.00 is 3150.00: the level at 3160.00 is out of reach.
        ex.sell(m, 315_000, 1, GTC);
        ex.sell(m, 316_000, 2, GTC);
        let out = ex.buy(t, 0, 10, MKT);
        assert_eq!((out.filled, out.resting), (3 * LOT, 0));
        assert_eq!(ex.depth(Side::Ask), vec![(px(316_000), 2, 1)]);
        assert!(ex.depth(Side::Bid).is_empty());
        let placed: Vec<OrderPlaced> = decode_all(&ex.mem.logs);
        assert_eq!(placed.last().unwrap().price, px(315_000));

        ex.buy(m, 300_000, 1, GTC);
        ex.buy(m, 284_000, 1, GTC);
        let out = ex.sell(t, 1, 5, MKT);
        assert_eq!((out.filled, out.resting), (LOT, 0));
        assert_eq!(ex.depth(Side::Bid), vec![(px(284_000), 1, 1)]);
        // A market order's size must still be a lot multiple.
        ex.refused(L1Error::InvalidSize { size: LOT / 2, lot: LOT }, |ex| {
            let req = OrderRequest {
                market: 0,
                side: Side::Ask,
                price: 0,
                size: LOT / 2,
                tif: MKT,
                cloid: 0,
            };
            place(&mut ex.ctx(), &mut SpotSettlement, t, &req)
        });
    }

    #[test]
    fn market_bound_rounds_against_the_taker() {
        let c = test_config();
        let bound = |side, cents| market_bound(&c, 0, side, px(cents)).unwrap();
        assert_eq!(bound(Side::Bid, 300_000), px(315_000));
        assert_eq!(bound(Side::Bid, 300_001), px(315_002)); // 3150.0105 rounds up
        assert_eq!(bound(Side::Ask, 300_001), px(285_000)); // 2850.0095 rounds down
        assert_eq!(bound(Side::Ask, 1), px(1)); // at least one tick
    }

    #[test]
    fn cancels() {
        let mut ex = Ex::new();
        let (a, b) = (ex.rich(1), ex.rich(2));
        let o1 = ex.order(a, Side::Bid, 290_000, 2, GTC, 11).unwrap().order_id;
        let o2 = ex.order(a, Side::Ask, 310_000, 3, GTC, 12).unwrap().order_id;
        let o3 = ex.sell(a, 311_000, 1, GTC).order_id;
        let o4 = ex.sell(b, 311_000, 1, GTC).order_id;
        assert_eq!(ex.bal(a, USD).1, ex.notional(290_000, 2));
        assert_eq!(ex.bal(a, ETH).1, 4 * LOT);

        assert_eq!(ex.cancel(b, o1), Err(L1Error::NotOrderOwner(o1)));
        assert_eq!(ex.cancel(a, 999), Err(L1Error::UnknownOrder(999)));
        let wrong_market = cancel(&mut ex.ctx(), &mut SpotSettlement, a, 1, o1);
        assert_eq!(wrong_market, Err(L1Error::UnknownOrder(o1)));

        assert_eq!(ex.cancel(a, o1), Ok(2 * LOT));
        assert_eq!(ex.bal(a, USD).1, 0);
        assert_eq!(ex.cancel(a, o1), Err(L1Error::UnknownOrder(o1)));
        let by_cloid =
            |ex: &mut Ex, cloid| cancel_by_cloid(&mut ex.ctx(), &mut SpotSettlement, a, 0, cloid);
        assert_eq!(by_cloid(&mut ex, 11), Err(L1Error::UnknownCloid(11)));
        assert_eq!(by_cloid(&mut ex, 12), Ok(3 * LOT));
        assert_eq!(ex.bal(a, ETH).1, LOT);
        assert_eq!(book::get(&mut ex.ctx(), o2).unwrap(), None);

        let canceled: Vec<OrderCanceled> = decode_all(&ex.mem.logs);
        assert_eq!(canceled.len(), 2);
        assert_eq!((canceled[1].user, canceled[1].market, canceled[1].orderId), (a, 0, o2));
        assert_eq!(canceled[1].remaining, 3 * LOT);

        cancel_all(&mut ex.ctx(), &mut SpotSettlement, a, Some(1)).unwrap();
        assert_eq!(book::orders_of(&mut ex.ctx(), a).unwrap(), vec![o3]);
        cancel_all(&mut ex.ctx(), &mut SpotSettlement, a, None).unwrap();
        assert!(book::orders_of(&mut ex.ctx(), a).unwrap().is_empty());
        assert_eq!(ex.bal(a, ETH).1, 0);
        assert_eq!(ex.depth(Side::Ask), vec![(px(311_000), 1, 1)]);
        assert_eq!(book::orders_of(&mut ex.ctx(), b).unwrap(), vec![o4]);
        ex.consistent();
    }

    #[test]
    fn duplicate_cloid_refused_until_the_order_is_gone() {
        let mut ex = Ex::new();
        let (a, b) = (ex.rich(1), ex.rich(2));
        let o1 = ex.order(a, Side::Bid, 290_000, 1, GTC, 7).unwrap().order_id;
        ex.refused(L1Error::DuplicateCloid(7), |ex| ex.order(a, Side::Ask, 310_000, 1, GTC, 7));
        ex.refused(L1Error::DuplicateCloid(7), |ex| ex.order(a, Side::Ask, 310_000, 1, IOC, 7));
        // Another account may use the same cloid.
        ex.order(b, Side::Bid, 290_000, 1, GTC, 7).unwrap();
        ex.cancel(a, o1).unwrap();
        let o3 = ex.order(a, Side::Ask, 310_000, 1, GTC, 7).unwrap().order_id;
        assert_eq!(book::by_cloid(&mut ex.ctx(), a, 0, 7).unwrap(), Some(o3));
        // Filled completely, the cloid is free again.
        ex.buy(b, 310_000, 1, GTC);
        assert_eq!(book::by_cloid(&mut ex.ctx(), a, 0, 7).unwrap(), None);
        ex.order(a, Side::Ask, 310_000, 1, GTC, 7).unwrap();
        ex.consistent();
    }

    #[test]
    fn self_trade_cancels_the_resting_order() {
        let mut ex = Ex::new();
        let (a, b) = (ex.rich(1), ex.rich(2));
        let own = ex.sell(a, 300_000, 3, GTC).order_id;
        let other = ex.sell(b, 300_000, 2, GTC).order_id;
        let out = ex.buy(a, 300_000, 4, GTC);
        assert_eq!((out.filled, out.resting), (2 * LOT, 2 * LOT));
        let canceled: Vec<OrderCanceled> = decode_all(&ex.mem.logs);
        assert_eq!(canceled.len(), 1);
        assert_eq!((canceled[0].orderId, canceled[0].remaining), (own, 3 * LOT));
        let fills = ex.fills();
        assert_eq!(fills.len(), 1);
        assert_eq!((fills[0].makerOrderId, fills[0].maker, fills[0].size), (other, b, 2 * LOT));
        assert_eq!(ex.bal(a, ETH), (100_000 * LOT + 2 * LOT, 0));
        assert_eq!(ex.depth(Side::Bid), vec![(px(300_000), 2, 1)]);
        assert!(ex.depth(Side::Ask).is_empty());
        ex.consistent();
    }

    #[test]
    fn tick_and_lot_validation() {
        let mut ex = Ex::new();
        let a = ex.rich(1);
        let req = |price, size, tif| OrderRequest {
            market: 0,
            side: Side::Bid,
            price,
            size,
            tif,
            cloid: 0,
        };
        let cases = [
            (
                req(px(300_000) + 1, LOT, GTC),
                L1Error::InvalidPrice { price: px(300_000) + 1, tick: 10_000 },
            ),
            (req(0, LOT, IOC), L1Error::InvalidPrice { price: 0, tick: 10_000 }),
            (req(px(300_000), LOT + 1, GTC), L1Error::InvalidSize { size: LOT + 1, lot: LOT }),
            (req(px(300_000), 0, POST), L1Error::InvalidSize { size: 0, lot: LOT }),
            (OrderRequest { market: 9, ..req(px(1), LOT, GTC) }, L1Error::UnknownMarket(9)),
            (
                req((MAX_PRICE_TICKS + 1) * 10_000, LOT, GTC),
                L1Error::PriceTooHigh {
                    price: (MAX_PRICE_TICKS + 1) * 10_000,
                    max: MAX_PRICE_TICKS * 10_000,
                },
            ),
        ];
        for (r, want) in cases {
            ex.refused(want, |ex| place(&mut ex.ctx(), &mut SpotSettlement, a, &r));
        }
    }

    #[test]
    fn fills_move_balances_and_pay_the_fee() {
        let mut ex = Ex::new();
        let (m, t) = (acct(1), acct(2));
        let fee_recipient = ex.config.fee_recipient;
        ex.fund(m, ETH, 10 * LOT);
        ex.fund(t, USD, 100_000_000);
        // Maker ask holds base.
        let ask = ex.sell(m, 300_000, 10, GTC).order_id;
        assert_eq!(ex.bal(m, ETH), (10 * LOT, 10 * LOT));
        let out = ex.buy(t, 300_000, 4, IOC);
        assert_eq!(out.filled, 4 * LOT);
        let n = ex.notional(300_000, 4);
        let fee = ex.fee(n);
        assert_eq!((n, fee), (12_000_000, 6_000));
        assert_eq!(ex.bal(m, ETH), (6 * LOT, 6 * LOT));
        assert_eq!(ex.bal(m, USD), (n, 0));
        assert_eq!(ex.bal(t, ETH), (4 * LOT, 0));
        assert_eq!(ex.bal(t, USD), (100_000_000 - n - fee, 0));
        assert_eq!(ex.bal(fee_recipient, USD), (fee, 0));
        let f = &ex.fills()[0];
        assert_eq!(
            (f.market, f.taker, f.maker, f.takerOrderId, f.makerOrderId),
            (0, t, m, out.order_id, ask)
        );
        assert_eq!((f.takerIsBuy, f.price, f.size, f.fee), (true, px(300_000), 4 * LOT, fee));

        // Maker bid holds quote; a taker sell receives notional minus fee.
        let bid = ex.buy(t, 290_000, 2, GTC).order_id;
        let hold = ex.notional(290_000, 2);
        assert_eq!(ex.bal(t, USD).1, hold);
        ex.fund(m, ETH, LOT);
        let out = ex.sell(m, 290_000, 1, GTC);
        assert_eq!((out.filled, out.resting), (LOT, 0));
        let n2 = ex.notional(290_000, 1);
        assert_eq!(ex.bal(t, USD), (100_000_000 - n - fee - n2, hold - n2));
        assert_eq!(ex.bal(m, USD), (n + n2 - ex.fee(n2), 0));
        assert_eq!(ex.bal(m, ETH), (6 * LOT, 6 * LOT));
        assert_eq!(ex.bal(fee_recipient, USD), (fee + ex.fee(n2), 0));
        assert_eq!(book::get(&mut ex.ctx(), bid).unwrap().unwrap().remaining, LOT);
        ex.cancel(t, bid).unwrap();
        assert_eq!(ex.bal(t, USD).1, 0);

        let placed: Vec<OrderPlaced> = decode_all(&ex.mem.logs);
        let p = placed.last().unwrap();
        assert_eq!((p.user, p.market, p.orderId, p.cloid), (m, 0, out.order_id, 0));
        assert_eq!((p.isBuy, p.price, p.size, p.resting), (false, px(290_000), LOT, 0));
    }

    #[test]
    fn insufficient_balance_refused_with_nothing_changed() {
        let mut ex = Ex::new();
        let (m, t) = (acct(1), acct(2));
        ex.fund(m, ETH, 3 * LOT);
        let n = ex.notional(300_000, 2);
        // Exactly the notional is not enough: the taker fee must be covered too.
        ex.fund(t, USD, n);
        ex.sell(m, 300_000, 2, GTC);
        let need = n + ex.fee(n);
        ex.refused(L1Error::InsufficientBalance { asset: USD, needed: need, available: n }, |ex| {
            ex.order(t, Side::Bid, 300_000, 2, GTC, 0)
        });
        // Held base is not free: 2 of 3 lots rest.
        ex.refused(
            L1Error::InsufficientBalance { asset: ETH, needed: 2 * LOT, available: LOT },
            |ex| ex.order(m, Side::Ask, 310_000, 2, GTC, 0),
        );
        // A market buy is checked at its slippage bound.
        let bound = ex.notional(315_000, 3);
        ex.refused(
            L1Error::InsufficientBalance {
                asset: USD,
                needed: bound + ex.fee(bound),
                available: n,
            },
            |ex| ex.order(t, Side::Bid, 0, 3, MKT, 0),
        );
        ex.consistent();
    }

    #[derive(Debug, Clone)]
    enum Op {
        Deposit { who: usize, asset: u32, amount: u128 },
        Withdraw { who: usize, asset: u32, amount: u128 },
        Place { who: usize, buy: bool, tif: u8, offset: u128, lots: u128, cloid: u128 },
        Cancel { who: usize, owner: usize, pick: usize },
        CancelCloid { who: usize, cloid: u128 },
        CancelAll { who: usize },
    }

    fn op() -> impl Strategy<Value = Op> {
        let amount = |asset: u32, units: u128, odd: u128| {
            if asset == ETH { units * 5 * LOT + odd } else { units * 20_000_000 + odd }
        };
        let funds = |max: u128| (0..4usize, 0..2u32, 1..max, 0..1000u128);
        let place = (0..4usize, any::<bool>(), 0..4u8, 0..41u128, 1..12u128, 0..4u128);
        prop_oneof![
            2 => funds(40).prop_map(move |(who, asset, units, odd)| {
                Op::Deposit { who, asset, amount: amount(asset, units, odd) }
            }),
            1 => funds(10).prop_map(move |(who, asset, units, odd)| {
                Op::Withdraw { who, asset, amount: amount(asset, units, odd) }
            }),
            8 => place.prop_map(|(who, buy, tif, offset, lots, cloid)| {
                Op::Place { who, buy, tif, offset, lots, cloid }
            }),
            2 => (0..4usize, 0..4usize, any::<usize>())
                .prop_map(|(who, owner, pick)| Op::Cancel { who, owner, pick }),
            1 => (0..4usize, 1..4u128).prop_map(|(who, cloid)| Op::CancelCloid { who, cloid }),
            1 => (0..4usize).prop_map(|who| Op::CancelAll { who }),
        ]
    }

    fn apply(ex: &mut Ex, op: &Op) -> L1Result<()> {
        let who = |i: usize| acct(i as u8 + 1);
        let mut ctx = ex.ctx();
        match *op {
            Op::Deposit { who: w, asset, amount } => spot::deposit(&mut ctx, who(w), asset, amount),
            Op::Withdraw { who: w, asset, amount } => {
                spot::withdraw(&mut ctx, who(w), asset, amount)
            }
            Op::Place { who: w, buy, tif, offset, lots, cloid } => {
                let req = OrderRequest {
                    market: 0,
                    side: Side::from_is_buy(buy),
                    // Within ±0.20 USD of 3000.00, so orders cross often.
                    price: px(299_980 + offset),
                    size: lots * LOT,
                    tif: TimeInForce::from_u8(tif).unwrap(),
                    cloid,
                };
                place(&mut ctx, &mut SpotSettlement, who(w), &req).map(|_| ())
            }
            Op::Cancel { who: w, owner, pick } => {
                let ids = book::orders_of(&mut ctx, who(owner))?;
                let id = if ids.is_empty() { 1_000_000 } else { ids[pick % ids.len()] };
                cancel(&mut ctx, &mut SpotSettlement, who(w), 0, id).map(|_| ())
            }
            Op::CancelCloid { who: w, cloid } => {
                cancel_by_cloid(&mut ctx, &mut SpotSettlement, who(w), 0, cloid).map(|_| ())
            }
            Op::CancelAll { who: w } => cancel_all(&mut ctx, &mut SpotSettlement, who(w), Some(0)),
        }
    }

    fn check_invariants(ex: &mut Ex) {
        let fee_recipient = ex.config.fee_recipient;
        let mut ctx = ex.ctx();
        let orders = book::assert_consistent(&mut ctx, 0);
        let holders: Vec<Address> = (1..=4).map(acct).chain([fee_recipient]).collect();
        for asset in [ETH, USD] {
            let (deposited, withdrawn) = spot::totals(&mut ctx, asset).unwrap();
            let sum: u128 =
                holders.iter().map(|h| spot::balance(&mut ctx, *h, asset).unwrap().0).sum();
            assert_eq!(sum, deposited - withdrawn, "asset {asset} not conserved");
        }
        for h in &holders {
            let mine: Vec<&Resting> = orders.iter().filter(|o| o.owner == *h).collect();
            let mut ids: Vec<u64> = mine.iter().map(|o| o.id).collect();
            ids.sort_unstable();
            assert_eq!(book::orders_of(&mut ctx, *h).unwrap(), ids, "order set of {h}");
            let quote: u128 = mine
                .iter()
                .filter(|o| o.side == Side::Bid)
                .map(|o| ctx.config.notional(0, o.price, o.remaining).unwrap())
                .sum();
            let base: u128 = mine.iter().filter(|o| o.side == Side::Ask).map(|o| o.remaining).sum();
            for (asset, want) in [(ETH, base), (USD, quote)] {
                let (total, hold) = spot::balance(&mut ctx, *h, asset).unwrap();
                assert_eq!(hold, want, "hold of {h} in asset {asset}");
                assert!(hold <= total, "hold above total for {h} in asset {asset}");
            }
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 128, ..ProptestConfig::default() })]

        #[test]
        fn random_trading_conserves_funds_and_keeps_the_book_consistent(
            ops in proptest::collection::vec(op(), 1..150)
        ) {
            let mut ex = Ex::new();
            // Enough to trade from the start; random deposits and withdrawals move it from there.
            for i in 0..4 {
                apply(&mut ex, &Op::Deposit { who: i, asset: ETH, amount: 100 * LOT }).unwrap();
                apply(&mut ex, &Op::Deposit { who: i, asset: USD, amount: 300_000_000 }).unwrap();
            }
            for op in &ops {
                let before = ex.mem.clone();
                if apply(&mut ex, op).is_err() {
                    prop_assert_eq!(&ex.mem.slots, &before.slots, "refused {:?} changed state", op);
                    prop_assert_eq!(&ex.mem.logs, &before.logs);
                }
                check_invariants(&mut ex);
            }
        }
    }
}
