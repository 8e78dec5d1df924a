//! The order books: per market and side a price-sorted doubly linked list of levels (best
//! first), per level a FIFO doubly linked list of orders (time priority, O(1) cancel), per
//! account a linked set of its resting orders (all markets), and a client-id index.
//!
//! The book only stores orders; it moves no funds ([`super::matching`] and the settlements do).
//!
//! Slot layout (`key(ns, addr, a, b, field)`; side `b`: 0 bid, 1 ask; ids and prices 0 = none):
//!
//! - `Globals(0, 0, 0, 0)`: the last order id issued.
//! - `Order(0, id, 0, 0)`, header: owner (bits 0..160) ‖ market (160..192) ‖ flags (192: buy,
//!   194: exists) ‖ price in ticks (200..256, at most [`MAX_PRICE_TICKS`]).
//! - `Order(0, id, 0, 1)`: `pack(remaining, client id)` (client id 0 = none).
//! - `Order(0, id, 0, 2)`: 64-bit limbs level prev, level next, account prev, account next.
//! - `Level(market ‖ price, 0, side, 0)`: `pack(total remaining, order count)`.
//! - `Level(market ‖ price, 0, side, 1)`: `pack(better price, worse price)`.
//! - `Level(market ‖ price, 0, side, 2)`: `pack(head id, tail id)` (head = oldest).
//! - `Book(0, market, side, 0)`: `pack(best price, worst price)`.
//! - `Cloid(h[0..20], h[20..28], h[28..30], h[30])` with `h = keccak256(owner ‖ market ‖
//!   cloid)`: the order id.
//! - `AccountOrders(owner, 0, 0, 0)`: `pack(head id, tail id)` (head = oldest).
//!
//! Three slots per order, because every slot an order creates is a leaf of the state trie that
//! the block writes, hashes and later deletes again: the price is kept in ticks so that the
//! client id fits beside the remaining size.
//!
//! A level's address packs the market (4 bytes, big-endian) and the price (16 bytes), so a
//! level is found from its price without a search; only a new level needs a walk to find its
//! place in the sorted list (O(1) when it becomes the best or the worst level).

use alloy_primitives::{Address, B256, U256, keccak256};

use super::{
    Ctx,
    config::MAX_PRICE_TICKS,
    error::{L1Error, L1Result},
    order::{Resting, Side},
    store::{Ns, Store, StoreError, address_value, key, pack, unpack, value_address},
};

/// One aggregated price level of a book side.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Level {
    /// Limit price of the level.
    pub price: u128,
    /// Total remaining size of its orders.
    pub size: u128,
    /// Number of resting orders.
    pub orders: u32,
}

const FLAG_BUY: u64 = 1;
const FLAG_EXISTS: u64 = 1 << 2;
/// The header's top limb: flags in the low byte, the price in ticks above.
const TICKS_SHIFT: u32 = 8;

const ORDER_HEADER: u8 = 0;
const ORDER_AMOUNTS: u8 = 1;
const ORDER_LINKS: u8 = 2;

const LEVEL_SIZE: u8 = 0;
const LEVEL_LINKS: u8 = 1;
const LEVEL_QUEUE: u8 = 2;

/// The links of an order in its level's queue and its owner's order set.
#[derive(Debug, Clone, Copy, Default)]
struct Links {
    level_prev: u64,
    level_next: u64,
    account_prev: u64,
    account_next: u64,
}

impl Links {
    fn encode(self) -> U256 {
        U256::from_limbs([self.level_prev, self.level_next, self.account_prev, self.account_next])
    }

    fn decode(value: U256) -> Self {
        let [level_prev, level_next, account_prev, account_next] = *value.as_limbs();
        Self { level_prev, level_next, account_prev, account_next }
    }
}

const fn side_index(side: Side) -> u16 {
    match side {
        Side::Bid => 0,
        Side::Ask => 1,
    }
}

/// Whether `a` is a better price than `b` on `side` (higher bid, lower ask).
const fn better(side: Side, a: u128, b: u128) -> bool {
    match side {
        Side::Bid => a > b,
        Side::Ask => a < b,
    }
}

fn corrupt(what: &str) -> L1Error {
    L1Error::Store(StoreError::Backend(format!("corrupt order book: {what}")))
}

fn order_key(id: u64, field: u8) -> B256 {
    key(Ns::Order, Address::ZERO, id, 0, field)
}

fn level_key(market: u32, side: Side, price: u128, field: u8) -> B256 {
    let mut addr = [0u8; 20];
    addr[..4].copy_from_slice(&market.to_be_bytes());
    addr[4..].copy_from_slice(&price.to_be_bytes());
    key(Ns::Level, Address::from(addr), 0, side_index(side), field)
}

fn book_key(market: u32, side: Side) -> B256 {
    key(Ns::Book, Address::ZERO, u64::from(market), side_index(side), 0)
}

fn account_key(owner: Address) -> B256 {
    key(Ns::AccountOrders, owner, 0, 0, 0)
}

fn counter_key() -> B256 {
    key(Ns::Globals, Address::ZERO, 0, 0, 0)
}

// (owner, market, cloid) is 40 bytes, more than a structured key holds: the index is keyed by a
// 248-bit hash, still under its own namespace byte.
fn cloid_key(owner: Address, market: u32, cloid: u128) -> B256 {
    let mut buf = [0u8; 40];
    buf[..20].copy_from_slice(owner.as_slice());
    buf[20..24].copy_from_slice(&market.to_be_bytes());
    buf[24..].copy_from_slice(&cloid.to_be_bytes());
    let h = keccak256(buf);
    let mut a = [0u8; 8];
    a.copy_from_slice(&h[20..28]);
    key(
        Ns::Cloid,
        Address::from_slice(&h[..20]),
        u64::from_be_bytes(a),
        u16::from_be_bytes([h[28], h[29]]),
        h[30],
    )
}

fn load<S: Store>(ctx: &mut Ctx<'_, S>, key: B256) -> L1Result<U256> {
    Ok(ctx.store.load(key)?)
}

fn save<S: Store>(ctx: &mut Ctx<'_, S>, key: B256, value: U256) -> L1Result<()> {
    Ok(ctx.store.store(key, value)?)
}

fn load_pair<S: Store>(ctx: &mut Ctx<'_, S>, key: B256) -> L1Result<(u128, u128)> {
    Ok(unpack(load(ctx, key)?))
}

fn save_pair<S: Store>(ctx: &mut Ctx<'_, S>, key: B256, hi: u128, lo: u128) -> L1Result<()> {
    save(ctx, key, pack(hi, lo))
}

fn to_id(value: u128) -> L1Result<u64> {
    u64::try_from(value).map_err(|_| corrupt("order id out of range"))
}

fn load_ids<S: Store>(ctx: &mut Ctx<'_, S>, key: B256) -> L1Result<(u64, u64)> {
    let (hi, lo) = load_pair(ctx, key)?;
    Ok((to_id(hi)?, to_id(lo)?))
}

fn save_ids<S: Store>(ctx: &mut Ctx<'_, S>, key: B256, hi: u64, lo: u64) -> L1Result<()> {
    save_pair(ctx, key, u128::from(hi), u128::from(lo))
}

fn update_links<S: Store>(
    ctx: &mut Ctx<'_, S>,
    id: u64,
    change: impl FnOnce(&mut Links),
) -> L1Result<()> {
    let k = order_key(id, ORDER_LINKS);
    let mut links = Links::decode(load(ctx, k)?);
    change(&mut links);
    save(ctx, k, links.encode())
}

/// Points order `id`'s next in its owner's order list at `next`: a forged state, for tests.
#[cfg(test)]
pub(crate) fn forge_account_next<S: Store>(ctx: &mut Ctx<'_, S>, id: u64, next: u64) {
    if let Err(e) = update_links(ctx, id, |l| l.account_next = next) {
        panic!("forging order {id}: {e}");
    }
}

/// Issues the next order id (the first is 1).
pub fn next_order_id<S: Store>(ctx: &mut Ctx<'_, S>) -> L1Result<u64> {
    let k = counter_key();
    let last = u64::try_from(load(ctx, k)?).map_err(|_| L1Error::Overflow)?;
    let id = last.checked_add(1).ok_or(L1Error::Overflow)?;
    save(ctx, k, U256::from(id))?;
    Ok(id)
}

/// Rests `order` at the back of its price level, registers its cloid and adds it to its owner's
/// order set.
pub fn insert<S: Store>(ctx: &mut Ctx<'_, S>, order: &Resting) -> L1Result<()> {
    if order.remaining == 0 || order.price == 0 || order.id == 0 {
        return Err(L1Error::ZeroAmount);
    }
    let header = encode_header(ctx, order)?;
    let cloid_slot = if order.cloid == 0 {
        None
    } else {
        let k = cloid_key(order.owner, order.market, order.cloid);
        if !load(ctx, k)?.is_zero() {
            return Err(L1Error::DuplicateCloid(order.cloid));
        }
        Some(k)
    };
    let (market, side, price) = (order.market, order.side, order.price);
    let mut links = Links::default();

    let size_key = level_key(market, side, price, LEVEL_SIZE);
    let (size, count) = load_pair(ctx, size_key)?;
    let queue_key = level_key(market, side, price, LEVEL_QUEUE);
    if count == 0 {
        link_new_level(ctx, market, side, price)?;
        save_ids(ctx, queue_key, order.id, order.id)?;
    } else {
        let (head, tail) = load_ids(ctx, queue_key)?;
        update_links(ctx, tail, |l| l.level_next = order.id)?;
        links.level_prev = tail;
        save_ids(ctx, queue_key, head, order.id)?;
    }
    let size = size.checked_add(order.remaining).ok_or(L1Error::Overflow)?;
    let count = count.checked_add(1).ok_or(L1Error::Overflow)?;
    save_pair(ctx, size_key, size, count)?;

    let acct_key = account_key(order.owner);
    let (head, tail) = load_ids(ctx, acct_key)?;
    if tail == 0 {
        save_ids(ctx, acct_key, order.id, order.id)?;
    } else {
        update_links(ctx, tail, |l| l.account_next = order.id)?;
        links.account_prev = tail;
        save_ids(ctx, acct_key, head, order.id)?;
    }

    if let Some(k) = cloid_slot {
        save(ctx, k, U256::from(order.id))?;
    }
    save(ctx, order_key(order.id, ORDER_HEADER), header)?;
    save_pair(ctx, order_key(order.id, ORDER_AMOUNTS), order.remaining, order.cloid)?;
    save(ctx, order_key(order.id, ORDER_LINKS), links.encode())
}

/// The header slot of `order`; refuses a price off the tick grid or above [`MAX_PRICE_TICKS`]
/// (placement checks both first, so this only guards the encoding).
fn encode_header<S: Store>(ctx: &Ctx<'_, S>, order: &Resting) -> L1Result<U256> {
    let tick = ctx.config.market(order.market)?.tick_size;
    let ticks = order.price / tick;
    if !order.price.is_multiple_of(tick) {
        return Err(L1Error::InvalidPrice { price: order.price, tick });
    }
    if ticks > MAX_PRICE_TICKS {
        let max = MAX_PRICE_TICKS.saturating_mul(tick);
        return Err(L1Error::PriceTooHigh { price: order.price, max });
    }
    let mut top = FLAG_EXISTS | ((ticks as u64) << TICKS_SHIFT);
    if order.side.is_buy() {
        top |= FLAG_BUY;
    }
    Ok(address_value(order.owner) | U256::from_limbs([0, 0, u64::from(order.market) << 32, top]))
}

/// Links a new, empty level at `price` into the sorted level list of (`market`, `side`).
fn link_new_level<S: Store>(
    ctx: &mut Ctx<'_, S>,
    market: u32,
    side: Side,
    price: u128,
) -> L1Result<()> {
    let bk = book_key(market, side);
    let (best, worst) = load_pair(ctx, bk)?;
    let (prev, next) = if best == 0 {
        save_pair(ctx, bk, price, price)?;
        (0, 0)
    } else if better(side, price, best) {
        save_pair(ctx, bk, price, worst)?;
        (0, best)
    } else if better(side, worst, price) {
        save_pair(ctx, bk, best, price)?;
        (worst, 0)
    } else {
        // Strictly between best and worst: walk from the best level, where most orders land.
        let mut cur = best;
        loop {
            let (_, next) = load_pair(ctx, level_key(market, side, cur, LEVEL_LINKS))?;
            if next == 0 {
                return Err(corrupt("level list ends before the worst price"));
            }
            // Each level is worse than the one before: a list that is not (a forged or corrupt
            // state, e.g. a cycle) is refused instead of walked forever.
            if !better(side, cur, next) {
                return Err(corrupt("level list out of price order"));
            }
            if better(side, price, next) {
                break (cur, next);
            }
            cur = next;
        }
    };
    if prev != 0 {
        let k = level_key(market, side, prev, LEVEL_LINKS);
        let (p, _) = load_pair(ctx, k)?;
        save_pair(ctx, k, p, price)?;
    }
    if next != 0 {
        let k = level_key(market, side, next, LEVEL_LINKS);
        let (_, n) = load_pair(ctx, k)?;
        save_pair(ctx, k, price, n)?;
    }
    save_pair(ctx, level_key(market, side, price, LEVEL_LINKS), prev, next)
}

/// The resting order `id`, if any.
pub fn get<S: Store>(ctx: &mut Ctx<'_, S>, id: u64) -> L1Result<Option<Resting>> {
    let header = load(ctx, order_key(id, ORDER_HEADER))?;
    if header.is_zero() {
        return Ok(None);
    }
    let limbs = header.as_limbs();
    let top = limbs[3];
    let market = (limbs[2] >> 32) as u32;
    let tick =
        ctx.config.market(market).map_err(|_| corrupt("order of an unknown market"))?.tick_size;
    let price = u128::from(top >> TICKS_SHIFT)
        .checked_mul(tick)
        .ok_or_else(|| corrupt("order price out of range"))?;
    let (remaining, cloid) = load_pair(ctx, order_key(id, ORDER_AMOUNTS))?;
    Ok(Some(Resting {
        id,
        owner: value_address(header),
        market,
        side: Side::from_is_buy(top & FLAG_BUY != 0),
        price,
        remaining,
        cloid,
    }))
}

/// Removes resting order `id` from the book; returns it as it was.
pub fn remove<S: Store>(ctx: &mut Ctx<'_, S>, id: u64) -> L1Result<Resting> {
    let order = get(ctx, id)?.ok_or(L1Error::UnknownOrder(id))?;
    remove_loaded(ctx, &order)?;
    Ok(order)
}

/// Removes `order`, as just read by [`get`], from the book (saves re-reading it).
pub(super) fn remove_loaded<S: Store>(ctx: &mut Ctx<'_, S>, order: &Resting) -> L1Result<()> {
    let (id, market, side, price) = (order.id, order.market, order.side, order.price);
    let links_key = order_key(id, ORDER_LINKS);
    let links = Links::decode(load(ctx, links_key)?);

    let size_key = level_key(market, side, price, LEVEL_SIZE);
    let (size, count) = load_pair(ctx, size_key)?;
    if count <= 1 {
        unlink_level(ctx, market, side, price)?;
        save(ctx, size_key, U256::ZERO)?;
        save(ctx, level_key(market, side, price, LEVEL_QUEUE), U256::ZERO)?;
    } else {
        let size = size.checked_sub(order.remaining).ok_or_else(|| corrupt("level size"))?;
        save_pair(ctx, size_key, size, count - 1)?;
        if links.level_prev != 0 {
            update_links(ctx, links.level_prev, |l| l.level_next = links.level_next)?;
        }
        if links.level_next != 0 {
            update_links(ctx, links.level_next, |l| l.level_prev = links.level_prev)?;
        }
        if links.level_prev == 0 || links.level_next == 0 {
            let k = level_key(market, side, price, LEVEL_QUEUE);
            let (mut head, mut tail) = load_ids(ctx, k)?;
            if links.level_prev == 0 {
                head = links.level_next;
            }
            if links.level_next == 0 {
                tail = links.level_prev;
            }
            save_ids(ctx, k, head, tail)?;
        }
    }

    if links.account_prev != 0 {
        update_links(ctx, links.account_prev, |l| l.account_next = links.account_next)?;
    }
    if links.account_next != 0 {
        update_links(ctx, links.account_next, |l| l.account_prev = links.account_prev)?;
    }
    if links.account_prev == 0 || links.account_next == 0 {
        let k = account_key(order.owner);
        let (mut head, mut tail) = load_ids(ctx, k)?;
        if links.account_prev == 0 {
            head = links.account_next;
        }
        if links.account_next == 0 {
            tail = links.account_prev;
        }
        save_ids(ctx, k, head, tail)?;
    }

    if order.cloid != 0 {
        save(ctx, cloid_key(order.owner, market, order.cloid), U256::ZERO)?;
    }
    save(ctx, order_key(id, ORDER_HEADER), U256::ZERO)?;
    save(ctx, order_key(id, ORDER_AMOUNTS), U256::ZERO)?;
    save(ctx, links_key, U256::ZERO)
}

/// Unlinks the level at `price` from the sorted level list and deletes its links slot.
fn unlink_level<S: Store>(
    ctx: &mut Ctx<'_, S>,
    market: u32,
    side: Side,
    price: u128,
) -> L1Result<()> {
    let links_key = level_key(market, side, price, LEVEL_LINKS);
    let (prev, next) = load_pair(ctx, links_key)?;
    if prev != 0 {
        let k = level_key(market, side, prev, LEVEL_LINKS);
        let (p, _) = load_pair(ctx, k)?;
        save_pair(ctx, k, p, next)?;
    }
    if next != 0 {
        let k = level_key(market, side, next, LEVEL_LINKS);
        let (_, n) = load_pair(ctx, k)?;
        save_pair(ctx, k, prev, n)?;
    }
    if prev == 0 || next == 0 {
        let bk = book_key(market, side);
        let (mut best, mut worst) = load_pair(ctx, bk)?;
        if prev == 0 {
            best = next;
        }
        if next == 0 {
            worst = prev;
        }
        save_pair(ctx, bk, best, worst)?;
    }
    save(ctx, links_key, U256::ZERO)
}

/// Takes `size` off resting order `id`; removes the order when nothing remains. Returns the
/// order after the change.
pub fn reduce<S: Store>(ctx: &mut Ctx<'_, S>, id: u64, size: u128) -> L1Result<Resting> {
    let order = get(ctx, id)?.ok_or(L1Error::UnknownOrder(id))?;
    reduce_loaded(ctx, &order, size)
}

/// [`reduce`] of `order` as just read by [`get`].
pub(super) fn reduce_loaded<S: Store>(
    ctx: &mut Ctx<'_, S>,
    order: &Resting,
    size: u128,
) -> L1Result<Resting> {
    let remaining = order.remaining.checked_sub(size).ok_or(L1Error::Overflow)?;
    let after = Resting { remaining, ..*order };
    if remaining == 0 {
        remove_loaded(ctx, order)?;
        return Ok(after);
    }
    save_pair(ctx, order_key(order.id, ORDER_AMOUNTS), remaining, order.cloid)?;
    let k = level_key(order.market, order.side, order.price, LEVEL_SIZE);
    let (level_size, count) = load_pair(ctx, k)?;
    let level_size = level_size.checked_sub(size).ok_or_else(|| corrupt("level size"))?;
    save_pair(ctx, k, level_size, count)?;
    Ok(after)
}

/// The best price of `side` of `market`, if any order rests there.
pub fn best_price<S: Store>(
    ctx: &mut Ctx<'_, S>,
    market: u32,
    side: Side,
) -> L1Result<Option<u128>> {
    let (best, _) = load_pair(ctx, book_key(market, side))?;
    Ok((best != 0).then_some(best))
}

/// The oldest order at the best level of `side` of `market`.
pub fn best_order<S: Store>(
    ctx: &mut Ctx<'_, S>,
    market: u32,
    side: Side,
) -> L1Result<Option<Resting>> {
    let Some(best) = best_price(ctx, market, side)? else { return Ok(None) };
    let (head, _) = load_ids(ctx, level_key(market, side, best, LEVEL_QUEUE))?;
    match get(ctx, head)? {
        Some(order) => Ok(Some(order)),
        None => Err(corrupt("best level without orders")),
    }
}

/// How deep a taker would reach taking `size` from `side` of `market` at prices no worse than
/// `limit`, walking the levels best first: the price of the last level it crosses (`None`: the
/// best level is past the limit) and whether the crossed levels hold `size`.
pub fn sweep<S: Store>(
    ctx: &mut Ctx<'_, S>,
    market: u32,
    side: Side,
    limit: u128,
    size: u128,
) -> L1Result<(Option<u128>, bool)> {
    let (mut price, _) = load_pair(ctx, book_key(market, side))?;
    let mut held: u128 = 0;
    let mut last = None;
    // `side` holds the makers: a buyer crosses asks at or below its limit, a seller bids at or
    // above it.
    while price != 0 && if side == Side::Ask { price <= limit } else { price >= limit } {
        let (level, _) = load_pair(ctx, level_key(market, side, price, LEVEL_SIZE))?;
        last = Some(price);
        held = held.saturating_add(level);
        if held >= size {
            return Ok((last, true));
        }
        let (_, next) = load_pair(ctx, level_key(market, side, price, LEVEL_LINKS))?;
        if next != 0 && !better(side, price, next) {
            return Err(corrupt("level list out of price order"));
        }
        price = next;
    }
    Ok((last, false))
}

/// Up to `levels` price levels of `side` of `market`, best first.
pub fn depth<S: Store>(
    ctx: &mut Ctx<'_, S>,
    market: u32,
    side: Side,
    levels: usize,
) -> L1Result<Vec<Level>> {
    let mut out = Vec::new();
    let (mut price, _) = load_pair(ctx, book_key(market, side))?;
    while price != 0 && out.len() < levels {
        let (size, count) = load_pair(ctx, level_key(market, side, price, LEVEL_SIZE))?;
        out.push(Level { price, size, orders: u32::try_from(count).unwrap_or(u32::MAX) });
        let (_, next) = load_pair(ctx, level_key(market, side, price, LEVEL_LINKS))?;
        if next != 0 && !better(side, price, next) {
            return Err(corrupt("level list out of price order"));
        }
        price = next;
    }
    Ok(out)
}

/// The id of `owner`'s resting order in `market` with client id `cloid` (never for cloid 0).
pub fn by_cloid<S: Store>(
    ctx: &mut Ctx<'_, S>,
    owner: Address,
    market: u32,
    cloid: u128,
) -> L1Result<Option<u64>> {
    if cloid == 0 {
        return Ok(None);
    }
    let v = load(ctx, cloid_key(owner, market, cloid))?;
    let id = u64::try_from(v).map_err(|_| corrupt("cloid index out of range"))?;
    Ok((id != 0).then_some(id))
}

/// The ids of `owner`'s resting orders in all markets, oldest first.
pub fn orders_of<S: Store>(ctx: &mut Ctx<'_, S>, owner: Address) -> L1Result<Vec<u64>> {
    let (mut id, _) = load_ids(ctx, account_key(owner))?;
    let mut out = Vec::new();
    while id != 0 {
        out.push(id);
        let next = Links::decode(load(ctx, order_key(id, ORDER_LINKS))?).account_next;
        // Orders join the list at the tail with a fresh, larger id: a list whose ids do not
        // grow (a forged or corrupt state, e.g. a cycle) is refused instead of walked forever.
        if next != 0 && next <= id {
            return Err(corrupt("account order list out of id order"));
        }
        id = next;
    }
    Ok(out)
}

/// Checks every invariant of the book of `market` (both sides) and returns its resting orders;
/// panics on the first violation. For tests of modules that drive the book.
#[cfg(test)]
pub(crate) fn assert_consistent<S: Store>(ctx: &mut Ctx<'_, S>, market: u32) -> Vec<Resting> {
    let mut all = Vec::new();
    let mut tops = [None, None];
    for (i, side) in [Side::Bid, Side::Ask].into_iter().enumerate() {
        let (best, worst) = load_pair(ctx, book_key(market, side)).unwrap();
        assert_eq!(best == 0, worst == 0, "book side {side:?}: best {best} worst {worst}");
        tops[i] = (best != 0).then_some(best);
        let (mut prev, mut price) = (0u128, best);
        while price != 0 {
            let (p, next) = load_pair(ctx, level_key(market, side, price, LEVEL_LINKS)).unwrap();
            assert_eq!(p, prev, "level {price} back link");
            if prev != 0 {
                assert!(better(side, prev, price), "levels out of order: {prev} then {price}");
            }
            let (size, count) = load_pair(ctx, level_key(market, side, price, LEVEL_SIZE)).unwrap();
            let (head, tail) = load_ids(ctx, level_key(market, side, price, LEVEL_QUEUE)).unwrap();
            let (mut sum, mut n, mut prev_id, mut id) = (0u128, 0u128, 0u64, head);
            while id != 0 {
                let o = get(ctx, id).unwrap().unwrap_or_else(|| panic!("order {id} missing"));
                assert_eq!((o.market, o.side, o.price), (market, side, price), "order {id}");
                assert!(o.remaining > 0, "order {id} rests with nothing");
                assert!(id > prev_id, "queue of level {price} not in time order");
                let links = Links::decode(load(ctx, order_key(id, ORDER_LINKS)).unwrap());
                assert_eq!(links.level_prev, prev_id, "order {id} back link");
                if o.cloid != 0 {
                    assert_eq!(by_cloid(ctx, o.owner, market, o.cloid).unwrap(), Some(id));
                }
                sum += o.remaining;
                n += 1;
                all.push(o);
                prev_id = id;
                id = links.level_next;
            }
            assert_eq!(tail, prev_id, "level {price} tail");
            assert_eq!((size, count), (sum, n), "level {price} totals");
            assert!(n > 0, "empty level {price} linked");
            prev = price;
            price = next;
        }
        assert_eq!(prev, worst, "book side {side:?} worst");
    }
    if let [Some(bid), Some(ask)] = tops {
        assert!(bid < ask, "crossed book: bid {bid} ask {ask}");
    }
    all
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::l1::{config::test_config, store::MemStore};

    /// Market 0's tick: the tests name prices in ticks.
    const TICK: u128 = 10_000;

    fn order(id: u64, owner: u8, side: Side, ticks: u128, remaining: u128, cloid: u128) -> Resting {
        let price = ticks * TICK;
        Resting { id, owner: Address::repeat_byte(owner), market: 0, side, price, remaining, cloid }
    }

    fn prices(levels: &[Level]) -> Vec<u128> {
        levels.iter().map(|l| l.price / TICK).collect()
    }

    #[test]
    fn ids_start_at_one_and_increase() {
        let config = test_config();
        let mut mem = MemStore::default();
        let mut ctx = Ctx::new(&mut mem, &config, 1);
        assert_eq!(next_order_id(&mut ctx).unwrap(), 1);
        assert_eq!(next_order_id(&mut ctx).unwrap(), 2);
    }

    #[test]
    fn levels_stay_sorted_and_queues_fifo() {
        let config = test_config();
        let mut mem = MemStore::default();
        let mut ctx = Ctx::new(&mut mem, &config, 1);
        // Bids inserted in scrambled order: new best, new worst, middle, existing level.
        let bids = [(1, 500), (2, 700), (3, 300), (4, 600), (5, 400), (6, 600), (7, 800)];
        for (id, price) in bids {
            insert(&mut ctx, &order(id, 1, Side::Bid, price, 10, 0)).unwrap();
        }
        let asks = [(8, 900), (9, 1200), (10, 1000), (11, 900)];
        for (id, price) in asks {
            insert(&mut ctx, &order(id, 2, Side::Ask, price, 5, 0)).unwrap();
        }
        assert_consistent(&mut ctx, 0);
        let d = depth(&mut ctx, 0, Side::Bid, 10).unwrap();
        assert_eq!(prices(&d), vec![800, 700, 600, 500, 400, 300]);
        assert_eq!(d[2], Level { price: 600 * TICK, size: 20, orders: 2 });
        assert_eq!(prices(&depth(&mut ctx, 0, Side::Ask, 2).unwrap()), vec![900, 1000]);
        assert_eq!(depth(&mut ctx, 0, Side::Ask, 1).unwrap()[0].orders, 2);
        assert_eq!(best_price(&mut ctx, 0, Side::Bid).unwrap(), Some(800 * TICK));
        assert_eq!(best_order(&mut ctx, 0, Side::Ask).unwrap().unwrap().id, 8);

        // Removing the middle of a queue, a whole middle level, and the best level.
        remove(&mut ctx, 4).unwrap();
        remove(&mut ctx, 5).unwrap();
        remove(&mut ctx, 7).unwrap();
        assert_consistent(&mut ctx, 0);
        assert_eq!(prices(&depth(&mut ctx, 0, Side::Bid, 10).unwrap()), vec![700, 600, 500, 300]);
        assert_eq!(best_order(&mut ctx, 0, Side::Bid).unwrap().unwrap().id, 2);
        remove(&mut ctx, 8).unwrap();
        assert_eq!(best_order(&mut ctx, 0, Side::Ask).unwrap().unwrap().id, 11);
        assert!(matches!(remove(&mut ctx, 8), Err(L1Error::UnknownOrder(8))));
        assert_eq!(get(&mut ctx, 8).unwrap(), None);
    }

    #[test]
    fn reduce_keeps_level_totals_and_removes_at_zero() {
        let config = test_config();
        let mut mem = MemStore::default();
        let mut ctx = Ctx::new(&mut mem, &config, 1);
        insert(&mut ctx, &order(1, 1, Side::Ask, 100, 10, 0)).unwrap();
        insert(&mut ctx, &order(2, 1, Side::Ask, 100, 7, 0)).unwrap();
        assert_eq!(reduce(&mut ctx, 1, 4).unwrap().remaining, 6);
        assert_eq!(depth(&mut ctx, 0, Side::Ask, 1).unwrap()[0].size, 13);
        assert!(matches!(reduce(&mut ctx, 1, 7), Err(L1Error::Overflow)));
        assert_eq!(reduce(&mut ctx, 1, 6).unwrap().remaining, 0);
        assert_eq!(get(&mut ctx, 1).unwrap(), None);
        assert_eq!(
            depth(&mut ctx, 0, Side::Ask, 1).unwrap()[0],
            Level { price: 100 * TICK, size: 7, orders: 1 }
        );
        reduce(&mut ctx, 2, 7).unwrap();
        assert_eq!(best_price(&mut ctx, 0, Side::Ask).unwrap(), None);
        assert_consistent(&mut ctx, 0);
        // Everything the book wrote is gone again.
        assert!(mem.slots.keys().all(|k| k[0] == Ns::Globals as u8), "{:?}", mem.slots);
    }

    #[test]
    fn cloids_and_account_sets() {
        let config = test_config();
        let mut mem = MemStore::default();
        let mut ctx = Ctx::new(&mut mem, &config, 1);
        let a = Address::repeat_byte(1);
        insert(&mut ctx, &order(1, 1, Side::Bid, 100, 1, 77)).unwrap();
        insert(&mut ctx, &order(2, 2, Side::Bid, 100, 1, 77)).unwrap();
        insert(&mut ctx, &order(3, 1, Side::Ask, 200, 1, 0)).unwrap();
        insert(&mut ctx, &order(4, 1, Side::Bid, 90, 1, 5)).unwrap();
        assert!(matches!(
            insert(&mut ctx, &order(5, 1, Side::Ask, 300, 1, 77)),
            Err(L1Error::DuplicateCloid(77))
        ));
        // Same cloid in another market is free.
        // Market 1's tick is 1,000,000.
        let other = Resting { market: 1, price: 3_000_000, ..order(6, 1, Side::Ask, 300, 1, 77) };
        insert(&mut ctx, &other).unwrap();
        assert_eq!(by_cloid(&mut ctx, a, 0, 77).unwrap(), Some(1));
        assert_eq!(by_cloid(&mut ctx, a, 1, 77).unwrap(), Some(6));
        assert_eq!(by_cloid(&mut ctx, a, 0, 0).unwrap(), None);
        assert_eq!(get(&mut ctx, 4).unwrap().unwrap().cloid, 5);
        assert_eq!(orders_of(&mut ctx, a).unwrap(), vec![1, 3, 4, 6]);
        remove(&mut ctx, 3).unwrap();
        remove(&mut ctx, 1).unwrap();
        assert_eq!(orders_of(&mut ctx, a).unwrap(), vec![4, 6]);
        assert_eq!(by_cloid(&mut ctx, a, 0, 77).unwrap(), None);
        remove(&mut ctx, 6).unwrap();
        remove(&mut ctx, 4).unwrap();
        assert!(orders_of(&mut ctx, a).unwrap().is_empty());
        assert_eq!(orders_of(&mut ctx, Address::repeat_byte(2)).unwrap(), vec![2]);
        // The cloid is reusable once its order is gone.
        insert(&mut ctx, &order(7, 1, Side::Ask, 300, 1, 77)).unwrap();
        assert_consistent(&mut ctx, 0);
    }

    /// A state override can forge any slot: cycles in the account set or the level list are
    /// refused as a corrupt book, never walked forever.
    #[test]
    fn forged_cycles_are_refused_not_walked() {
        let config = test_config();
        let mut mem = MemStore::default();
        let mut ctx = Ctx::new(&mut mem, &config, 1);
        let a = Address::repeat_byte(1);
        for (id, ticks) in [(1, 100), (2, 200), (3, 300)] {
            insert(&mut ctx, &order(id, 1, Side::Ask, ticks, 1, 0)).unwrap();
        }
        assert_eq!(orders_of(&mut ctx, a).unwrap(), vec![1, 2, 3]);
        // The account set 1 → 2 → 3 → 1.
        update_links(&mut ctx, 3, |l| l.account_next = 1).unwrap();
        let err = orders_of(&mut ctx, a).unwrap_err().to_string();
        assert!(err.contains("corrupt order book"), "{err}");
        update_links(&mut ctx, 3, |l| l.account_next = 0).unwrap();
        // The ask levels 100 → 200 → 100 (the worst, 300, is never reached).
        let k = level_key(0, Side::Ask, 200 * TICK, LEVEL_LINKS);
        let (prev, _) = load_pair(&mut ctx, k).unwrap();
        save_pair(&mut ctx, k, prev, 100 * TICK).unwrap();
        assert!(depth(&mut ctx, 0, Side::Ask, 10).is_err());
        assert!(sweep(&mut ctx, 0, Side::Ask, 1_000 * TICK, u128::MAX).is_err());
        // A new level between best and worst walks the list to find its place.
        assert!(insert(&mut ctx, &order(4, 1, Side::Ask, 250, 1, 0)).is_err());
    }

    #[test]
    fn an_order_is_three_slots_and_keeps_its_extremes() {
        let config = test_config();
        let mut mem = MemStore::default();
        let mut ctx = Ctx::new(&mut mem, &config, 1);
        let top = order(1, 0xff, Side::Ask, MAX_PRICE_TICKS, u128::MAX, u128::MAX);
        insert(&mut ctx, &top).unwrap();
        let low = order(2, 0xfe, Side::Bid, 1, 1, 0);
        insert(&mut ctx, &low).unwrap();
        assert_eq!(get(&mut ctx, 1).unwrap(), Some(top));
        assert_eq!(get(&mut ctx, 2).unwrap(), Some(low));
        assert_eq!(by_cloid(&mut ctx, top.owner, 0, u128::MAX).unwrap(), Some(1));
        // Header, amounts and links (the links of a lone order are zero, so not stored).
        let mut fields: Vec<(u64, u8)> = mem
            .slots
            .keys()
            .filter(|k| k[0] == Ns::Order as u8)
            .map(|k| (u64::from_be_bytes(k[21..29].try_into().unwrap()), k[31]))
            .collect();
        fields.sort_unstable();
        assert_eq!(
            fields,
            vec![(1, ORDER_HEADER), (1, ORDER_AMOUNTS), (2, ORDER_HEADER), (2, ORDER_AMOUNTS)]
        );
        let mut ctx = Ctx::new(&mut mem, &config, 1);
        assert_eq!(reduce(&mut ctx, 1, 1).unwrap().cloid, u128::MAX);
        assert_eq!(get(&mut ctx, 1).unwrap().unwrap().remaining, u128::MAX - 1);
        // Off the tick grid or above the range: refused before anything is written.
        let before = mem.slots.clone();
        let mut ctx = Ctx::new(&mut mem, &config, 1);
        let above = order(3, 1, Side::Ask, MAX_PRICE_TICKS + 1, 1, 0);
        assert!(matches!(insert(&mut ctx, &above), Err(L1Error::PriceTooHigh { .. })));
        let off = Resting { price: TICK + 1, ..order(3, 1, Side::Ask, 1, 1, 0) };
        assert!(matches!(insert(&mut ctx, &off), Err(L1Error::InvalidPrice { .. })));
        assert_eq!(mem.slots, before);
    }
}
