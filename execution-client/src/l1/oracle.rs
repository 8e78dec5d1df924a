//! Oracle prices of the perp markets: what the genesis-listed publishers post, their median, and
//! the mark price margin, funding and liquidations are computed at.
//!
//! A publisher's price is fresh while `block - posted_block <= oracle_staleness_blocks`. The
//! oracle price is the median of the fresh prices (publishers in genesis order; an even count
//! takes the floor of the mean of the two middle prices), floored to the tick. The mark price is
//! the median of (oracle, best bid, best ask), an empty book side replaced by the oracle, clamped
//! to `markBandBps` around the oracle; without a fresh oracle price it is the mark the last
//! end-of-block step stored.
//!
//! Slot layout:
//! - `Ns::Oracle (publisher, market, 0) field 0`: `pack(price, posted_block)`.
//! - `Ns::PerpMarket (0x0, market, 0) field 0`: `pack(mark, block)`, the last stored mark (fields
//!   1 and up of `Ns::PerpMarket` belong to [`super::clearinghouse`]).

use alloy_primitives::Address;

use super::{
    Ctx, book,
    error::{L1Error, L1Result},
    events::{self, OraclePrice},
    order::Side,
    store::{Ns, Store, key, pack, unpack},
};

/// Field of `Ns::PerpMarket` holding the last stored mark.
pub const LAST_MARK_FIELD: u8 = 0;

fn price_key(publisher: Address, market: u32) -> alloy_primitives::B256 {
    key(Ns::Oracle, publisher, u64::from(market), 0, 0)
}

fn mark_key(market: u32) -> alloy_primitives::B256 {
    key(Ns::PerpMarket, Address::ZERO, u64::from(market), 0, LAST_MARK_FIELD)
}

/// Records `publisher`'s `price` for perp `market` at the current block.
pub fn post<S: Store>(
    ctx: &mut Ctx<'_, S>,
    publisher: Address,
    market: u32,
    price: u128,
) -> L1Result<()> {
    ctx.config.perp_market(market)?;
    if ctx.config.publisher_index(publisher).is_none() {
        return Err(L1Error::NotPublisher(publisher));
    }
    if price == 0 {
        return Err(L1Error::ZeroAmount);
    }
    ctx.store.store(price_key(publisher, market), pack(price, u128::from(ctx.block)))?;
    events::emit(ctx.store, &OraclePrice { market, publisher, price });
    Ok(())
}

/// The median of the fresh publisher prices of perp `market`, floored to the tick; `None` if
/// no publisher's price is fresh (or the median floors to zero).
pub fn oracle_price<S: Store>(ctx: &mut Ctx<'_, S>, market: u32) -> L1Result<Option<u128>> {
    let tick = ctx.config.perp_market(market)?.tick_size;
    let staleness = ctx.config.oracle_staleness_blocks;
    let mut prices = Vec::with_capacity(ctx.config.oracle_publishers.len());
    for publisher in &ctx.config.oracle_publishers {
        let (price, posted) = unpack(ctx.store.load(price_key(*publisher, market))?);
        // A never-written slot reads as price 0: not a price.
        if price != 0 && u128::from(ctx.block).saturating_sub(posted) <= u128::from(staleness) {
            prices.push(price);
        }
    }
    if prices.is_empty() {
        return Ok(None);
    }
    prices.sort_unstable();
    let mid = prices.len() / 2;
    let median = if prices.len() % 2 == 1 {
        prices[mid]
    } else {
        // lo + (hi - lo) / 2 is the floor of the mean without overflowing.
        let (lo, hi) = (prices[mid - 1], prices[mid]);
        lo + (hi - lo) / 2
    };
    Ok(nonzero(median - median % tick))
}

/// The mark price of perp `market`: median of (oracle, best bid, best ask) with a missing side
/// replaced by the oracle, clamped to the band around the oracle, floored to the tick; without a
/// fresh oracle the last stored mark.
pub fn mark_price<S: Store>(ctx: &mut Ctx<'_, S>, market: u32) -> L1Result<Option<u128>> {
    match oracle_price(ctx, market)? {
        Some(oracle) => mark_with_oracle(ctx, market, oracle),
        None => last_mark(ctx, market),
    }
}

/// The mark price of perp `market` given its fresh oracle price `oracle`.
pub fn mark_with_oracle<S: Store>(
    ctx: &mut Ctx<'_, S>,
    market: u32,
    oracle: u128,
) -> L1Result<Option<u128>> {
    let tick = ctx.config.perp_market(market)?.tick_size;
    let bid = book::best_price(ctx, market, Side::Bid)?.unwrap_or(oracle);
    let ask = book::best_price(ctx, market, Side::Ask)?.unwrap_or(oracle);
    // Clamped to the band around the oracle: two dust orders on a thin book must not be able
    // to move the price liquidations and funding use.
    // The bounds are on the tick grid inside the band; the oracle, floored to the tick, lies
    // between them.
    let band = oracle.saturating_mul(u128::from(ctx.config.mark_band_bps)) / 10_000;
    let low = (oracle - band).div_ceil(tick).saturating_mul(tick);
    let high = oracle.saturating_add(band) / tick * tick;
    let median = median3(oracle, bid, ask).clamp(low.min(oracle), high.max(oracle));
    Ok(nonzero(median - median % tick))
}

/// The mark the end-of-block step last stored for `market` (`None` if never).
pub fn last_mark<S: Store>(ctx: &mut Ctx<'_, S>, market: u32) -> L1Result<Option<u128>> {
    let (mark, _block) = unpack(ctx.store.load(mark_key(market))?);
    Ok(nonzero(mark))
}

/// Stores `mark` as `market`'s fallback mark (the end-of-block step).
pub fn store_mark<S: Store>(ctx: &mut Ctx<'_, S>, market: u32, mark: u128) -> L1Result<()> {
    ctx.store.store(mark_key(market), pack(mark, u128::from(ctx.block)))?;
    Ok(())
}

fn median3(a: u128, b: u128, c: u128) -> u128 {
    a.min(b).max(a.max(b).min(c))
}

fn nonzero(price: u128) -> Option<u128> {
    (price != 0).then_some(price)
}

#[cfg(test)]
mod tests {
    use alloy_sol_types::SolEvent;

    use super::*;
    use crate::l1::{
        config::{L1Config, test_config},
        order::Resting,
        store::MemStore,
    };

    const BTC: u32 = 1;
    const USD: u128 = 1_000_000;

    fn publisher(i: u8) -> Address {
        Address::with_last_byte(0xb0 + i)
    }

    fn post_at(mem: &mut MemStore, config: &L1Config, block: u64, who: u8, price: u128) {
        post(&mut Ctx::new(mem, config, block), publisher(who), BTC, price).unwrap();
    }

    fn oracle_at(mem: &mut MemStore, config: &L1Config, block: u64) -> Option<u128> {
        oracle_price(&mut Ctx::new(mem, config, block), BTC).unwrap()
    }

    #[test]
    fn median_of_odd_and_even_counts_floored_to_tick() {
        let config = test_config();
        let mut mem = MemStore::default();
        assert_eq!(oracle_at(&mut mem, &config, 1), None);
        post_at(&mut mem, &config, 1, 1, 100 * USD);
        assert_eq!(oracle_at(&mut mem, &config, 1), Some(100 * USD));
        // Two prices: floor of the mean (150.5), then floored to the $1 tick.
        post_at(&mut mem, &config, 1, 2, 201 * USD);
        assert_eq!(oracle_at(&mut mem, &config, 1), Some(150 * USD));
        post_at(&mut mem, &config, 1, 3, 300 * USD);
        assert_eq!(oracle_at(&mut mem, &config, 1), Some(201 * USD));
        // An off-tick median is floored.
        post_at(&mut mem, &config, 1, 2, 201 * USD + 999_999);
        assert_eq!(oracle_at(&mut mem, &config, 1), Some(201 * USD));
        // A later post replaces the publisher's price.
        post_at(&mut mem, &config, 2, 1, 1_000 * USD);
        assert_eq!(oracle_at(&mut mem, &config, 2), Some(300 * USD));
        // Huge prices average without overflowing.
        post_at(&mut mem, &config, 3, 1, u128::MAX - u128::MAX % USD);
        post_at(&mut mem, &config, 3, 2, u128::MAX - u128::MAX % USD);
        assert_eq!(oracle_at(&mut mem, &config, 3), Some(u128::MAX - u128::MAX % USD));
    }

    #[test]
    fn stale_prices_are_ignored() {
        let config = test_config();
        let mut mem = MemStore::default();
        post_at(&mut mem, &config, 1, 1, 100 * USD);
        post_at(&mut mem, &config, 5, 2, 200 * USD);
        post_at(&mut mem, &config, 5, 3, 300 * USD);
        assert_eq!(oracle_at(&mut mem, &config, 11), Some(200 * USD));
        // Block 12: publisher 1's price is 11 blocks old (staleness 10); (200 + 300) / 2 remains.
        assert_eq!(oracle_at(&mut mem, &config, 12), Some(250 * USD));
        assert_eq!(oracle_at(&mut mem, &config, 15), Some(250 * USD));
        assert_eq!(oracle_at(&mut mem, &config, 16), None);
    }

    #[test]
    fn posting_is_refused_to_non_publishers_on_spot_markets_and_for_zero() {
        let config = test_config();
        let mut mem = MemStore::default();
        let mut ctx = Ctx::new(&mut mem, &config, 1);
        let stranger = Address::with_last_byte(0x42);
        assert_eq!(post(&mut ctx, stranger, BTC, USD), Err(L1Error::NotPublisher(stranger)));
        assert_eq!(post(&mut ctx, publisher(1), 0, USD), Err(L1Error::NotPerpMarket(0)));
        assert_eq!(post(&mut ctx, publisher(1), 7, USD), Err(L1Error::UnknownMarket(7)));
        assert_eq!(post(&mut ctx, publisher(1), BTC, 0), Err(L1Error::ZeroAmount));
        assert_eq!(oracle_price(&mut ctx, 0), Err(L1Error::NotPerpMarket(0)));
        assert!(mem.slots.is_empty() && mem.logs.is_empty());

        let mut ctx = Ctx::new(&mut mem, &config, 1);
        post(&mut ctx, publisher(2), BTC, 7 * USD).unwrap();
        assert_eq!(mem.logs.len(), 1);
        let log = OraclePrice::decode_log_data(&mem.logs[0]).unwrap();
        assert_eq!((log.market, log.publisher, log.price), (BTC, publisher(2), 7 * USD));
    }

    fn rest(mem: &mut MemStore, config: &L1Config, id: u64, side: Side, price: u128) {
        let order = Resting {
            id,
            owner: Address::with_last_byte(1),
            market: BTC,
            side,
            price,
            remaining: 100_000,
            cloid: 0,
        };
        book::insert(&mut Ctx::new(mem, config, 1), &order).unwrap();
    }

    fn mark_at(mem: &mut MemStore, config: &L1Config, block: u64) -> Option<u128> {
        mark_price(&mut Ctx::new(mem, config, block), BTC).unwrap()
    }

    #[test]
    fn mark_is_the_median_with_the_book_and_falls_back_to_the_stored_mark() {
        // A 10 % band, so the book moves the mark freely here; the band is tested below.
        let mut config = test_config();
        config.mark_band_bps = 1_000;
        let mut mem = MemStore::default();
        assert_eq!(mark_at(&mut mem, &config, 1), None);
        post_at(&mut mem, &config, 1, 1, 100 * USD);
        // Empty book: both sides are the oracle.
        assert_eq!(mark_at(&mut mem, &config, 1), Some(100 * USD));
        // Only a bid above the oracle: median(100, 103, 100) = 100.
        rest(&mut mem, &config, 1, Side::Bid, 103 * USD);
        assert_eq!(mark_at(&mut mem, &config, 1), Some(100 * USD));
        // Bid 103, ask 105 both above the oracle: the bid is the median.
        rest(&mut mem, &config, 2, Side::Ask, 105 * USD);
        assert_eq!(mark_at(&mut mem, &config, 1), Some(103 * USD));
        // The oracle between bid and ask is the median.
        post_at(&mut mem, &config, 2, 1, 104 * USD);
        assert_eq!(mark_at(&mut mem, &config, 2), Some(104 * USD));
        // Oracle above the ask: the ask.
        post_at(&mut mem, &config, 2, 1, 110 * USD);
        assert_eq!(mark_at(&mut mem, &config, 2), Some(105 * USD));

        // Stale oracle: no stored mark yet, then the stored one whatever the book says.
        assert_eq!(mark_at(&mut mem, &config, 13), None);
        store_mark(&mut Ctx::new(&mut mem, &config, 12), BTC, 99 * USD).unwrap();
        assert_eq!(mark_at(&mut mem, &config, 13), Some(99 * USD));
        assert_eq!(last_mark(&mut Ctx::new(&mut mem, &config, 13), BTC).unwrap(), Some(99 * USD));
        assert_eq!(
            mark_price(&mut Ctx::new(&mut mem, &config, 13), 0),
            Err(L1Error::NotPerpMarket(0))
        );
    }

    #[test]
    fn the_book_moves_the_mark_only_within_the_band() {
        let config = test_config();
        assert_eq!(config.mark_band_bps, 100);
        let mut mem = MemStore::default();
        post_at(&mut mem, &config, 1, 1, 1_000 * USD);
        // Dust bid and ask far above the oracle: the median (the bid) is clamped to +1 %.
        rest(&mut mem, &config, 1, Side::Bid, 1_500 * USD);
        rest(&mut mem, &config, 2, Side::Ask, 1_600 * USD);
        assert_eq!(mark_at(&mut mem, &config, 1), Some(1_010 * USD));
        // Inside the band the book decides.
        let mut mem = MemStore::default();
        post_at(&mut mem, &config, 1, 1, 1_000 * USD);
        rest(&mut mem, &config, 1, Side::Bid, 1_004 * USD);
        rest(&mut mem, &config, 2, Side::Ask, 1_006 * USD);
        assert_eq!(mark_at(&mut mem, &config, 1), Some(1_004 * USD));
        // Far below: clamped to -1 %, rounded up onto the tick grid (oracle 999: band 9.99,
        // bound 989.01 -> 990).
        let mut mem = MemStore::default();
        post_at(&mut mem, &config, 1, 1, 999 * USD);
        rest(&mut mem, &config, 1, Side::Bid, 500 * USD);
        rest(&mut mem, &config, 2, Side::Ask, 600 * USD);
        assert_eq!(mark_at(&mut mem, &config, 1), Some(990 * USD));
    }
}
