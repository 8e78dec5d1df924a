//! The perp clearinghouse: perp accounts, margin, perp settlement, collateral transfers, funding
//! and liquidations.
//!
//! Cash accounting ("perps as spot with negative holdings"): a fill of size `q` at price `p`
//! moves the buyer's cash by `-q·p/scale` and the seller's by `+q·p/scale` (exact for tick- and
//! lot-aligned inputs) and their positions by `+q` / `-q`. An account's value is
//! `cash − unsettled funding + Σ size·mark/scale`. Trades, liquidations (positions handed to the
//! backstop at the mark) and funding move cash between accounts and the funding pool, so
//! `Σ cash + funding pool + Σ collateral spot balances` only changes by deposits and withdrawals.
//! The entry notional of a position is kept for display only (entry price, unrealized PnL).
//!
//! Funding is an index per market, not a walk of the accounts: each funding interval adds
//! `oracle × rate (ppm)` to the market's cumulative index, and a position remembers the index
//! it last settled at. What it owes is `size · (index − snapshot) / (scale · 10⁶)`, rounded up
//! (payers pay the fraction, receivers do not get it). It settles, into or out of the funding
//! pool, whenever the position changes (every trade, liquidations included); until then margin
//! checks, views and the end-of-block step count it in the account's value and cash. The pool is
//! what payers settled minus what receivers settled: it may be below zero while payers have not
//! settled yet, and keeps the rounding once everyone has.
//!
//! Margins round up: initial margin `⌈notional / maxLeverage⌉`, maintenance margin
//! `⌈notional · maintenanceMarginBps / 10⁴⌉`, resting-order margin `⌈open notional /
//! maxLeverage⌉` per market. A position in a market without any mark yet (no fresh oracle ever
//! reached an end-of-block step) is valued at its entry notional.
//!
//! Admission ([`PerpSettlement`]) assumes the order pays the taker fee on its full size at its
//! limit (a market order at its slippage bound), and that all of it trades at the worst price it
//! can reach: the deepest book level it crosses now, or its limit when a remainder may rest. It
//! loses at once what that price is worse than the mark (a buy above it, a sell below it), so a
//! market order on a book at the mark loses nothing. The part of an order that
//! reduces the position — net of the account's resting orders on the same side, which may reduce
//! it first — needs no margin; the rest needs the initial margin of its notional at the larger of
//! that price and the mark. An order that only reduces is admitted even when the account is
//! under-margined, as long as it does not take the account below zero by trading worse than the
//! mark: it can only lower the account's risk.
//!
//! An account that ends a trade with cash below zero and no position left (it reduced at a loss,
//! or paid the fee from an empty account) stays in the open set, so the end-of-block step finds
//! it and the backstop absorbs the debt, with a `BadDebt` event.
//!
//! The end-of-block step's work is bounded per block, whatever the number of open accounts: it
//! moves each market's funding index on interval blocks (work per market) and examines at most
//! `endOfBlockAccounts` (B) open accounts, at the marks of the start of the step (cancelling a
//! liquidated account's orders moves the book). An account is liquidated when its value is
//! below its maintenance margin, or its cash below zero without a position (the backstop absorbs
//! the debt). Which accounts, in this order:
//! 1. **The watch list**: at most B/4 accounts that an earlier step found below the initial margin
//!    of their positions (above maintenance). They are examined every block and leave the list
//!    once liquidated, closed or back above their initial margin. Between initial and maintenance
//!    margin lies a price move of (10⁴/maxLeverage − maintenanceMarginBps) bps of the notional
//!    (2.5 % on the devnet's 20× markets), so an account seen at risk is liquidated in the first
//!    block it falls below maintenance. A full list takes no more (the sweep still finds them).
//! 2. **The sweep**: the rest of the budget (at least 3B/4 = S) goes to the next members of the
//!    open set after a persistent cursor, which resumes there next block. The members before the
//!    cursor are those examined in the current round: a removal keeps them there (see
//!    `open_remove`), new members are appended after it, and a round that ends starts over at the
//!    next block. So every open account is examined at least once every ⌈N/S⌉ + 2 blocks, N the
//!    largest size of the open set meanwhile (1,024 by default: 768 per block, a million open
//!    accounts every ≈ 1,300 blocks); each one found below its initial margin joins the list.
//!
//! No account is examined twice in one step, the backstop never. The budget bounds the slots a
//! step reads (an account's are its set entry, cash, position bitmap and per position its size
//! and funding snapshot; a liquidation adds its orders and trades). A stored count, cursor or
//! watch list that could not have been produced (a count above 2⁴⁰, a cursor past the count, a
//! list longer than B/4, a member whose stored index is not its place) is a corrupt state and an
//! error, found after bounded work; nothing is ever sized from a stored value.
//!
//! Slot layout (`a` is the market where it applies):
//! - `Ns::PerpAccount (owner) field 0`: `pack(open-set index, cash)`; the index is 1-based, 0 when
//!   the account is not in the open set; cash is signed ([`from_signed`]).
//! - `Ns::PerpAccount (owner) field 1`: bitmap of the markets the account has a position in.
//! - `Ns::PerpAccount (owner) field 2`: bitmap of the markets it has resting orders in.
//! - `Ns::Position (owner, a) field 0`: `pack(size (signed), entry notional)`.
//! - `Ns::Position (owner, a) field 1`: `pack(bid lots ‖ ask lots, open notional)`: the sizes of
//!   the owner's resting orders in the market, in lots, one side in each 64-bit half of the upper
//!   half, and their notional.
//! - `Ns::Position (owner, a) field 2`: the funding index the position last settled at (a signed
//!   256-bit word; zero without a position).
//! - `Ns::OpenAccounts (0x0) field 0`: number of accounts in the open set (accounts with a
//!   position, or with cash below zero);
//!   `Ns::OpenAccounts (0x0, i) field 1`: the `i`-th of them (1-based);
//!   `Ns::OpenAccounts (0x0) field 2`: the sweep's cursor (members examined this round);
//!   `Ns::OpenAccounts (0x0) field 3`: length of the watch list, `(0x0, i) field 3` its `i`-th.
//! - `Ns::PerpMarket (0x0, a) field 0` is the oracle's last mark ([`oracle::LAST_MARK_FIELD`]);
//!   `field 1`: the market's cumulative funding index (a signed 256-bit word).
//! - `Ns::Globals (0x0) field 1`: the L1 block number (last end-of-block step);
//!   `field 2`: total bad debt absorbed by the backstop; `field 3`: the funding pool (signed).
//!   Field 0 is the book's order id counter.

use alloy_primitives::{Address, B256, I256, U256};

use super::{
    Ctx, book,
    config::L1Config,
    error::{L1Error, L1Result},
    events::{self, BadDebt, Funding, Liquidation, PerpTransfer},
    matching, oracle,
    order::{Fill, OrderRequest, Resting, Settlement, Side, TimeInForce},
    spot,
    store::{
        Ns, Store, StoreError, address_value, from_signed, key, pack, to_signed, unpack,
        value_address,
    },
};

const CASH_FIELD: u8 = 0;
const POSITIONS_FIELD: u8 = 1;
const ORDERS_FIELD: u8 = 2;
const POSITION_FIELD: u8 = 0;
const OPEN_NOTIONAL_FIELD: u8 = 1;
const FUNDING_SNAPSHOT_FIELD: u8 = 2;
const OPEN_COUNT_FIELD: u8 = 0;
const OPEN_MEMBER_FIELD: u8 = 1;
const CURSOR_FIELD: u8 = 2;
const WATCH_FIELD: u8 = 3;
const FUNDING_INDEX_FIELD: u8 = 1;
const BLOCK_NUMBER_FIELD: u8 = 1;
const BAD_DEBT_FIELD: u8 = 2;
const FUNDING_POOL_FIELD: u8 = 3;

/// Parts per million: the unit of funding rates.
const PPM: u128 = 1_000_000;
/// Basis points per unit: the unit of maintenance margins.
const BPS: u128 = 10_000;

/// One perp position as reads and views show it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct PositionView {
    /// Signed size (positive: long).
    pub size: i128,
    /// Average entry price (floored).
    pub entry_price: u128,
    /// Initial margin at the mark price.
    pub margin: u128,
    /// Value at the mark price minus entry notional.
    pub unrealized_pnl: i128,
}

/// A perp account as reads and views show it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct AccountView {
    /// Settled cash (negative when longs were bought on credit).
    pub cash: i128,
    /// Funding the positions owe and have not settled yet (negative: are owed).
    pub funding_owed: i128,
    /// Cash minus unsettled funding plus positions at mark prices.
    pub account_value: i128,
    /// Initial margin of positions and resting orders.
    pub initial_margin: u128,
    /// Maintenance margin of positions (liquidation below it).
    pub maintenance_margin: u128,
    /// Part of the initial margin that resting orders need.
    pub order_margin: u128,
    /// Open positions, by market.
    pub positions: Vec<(u32, PositionView)>,
}

/// Settlement of perp markets: margin checks, open-order notional, cash and positions.
#[derive(Debug, Clone, Copy, Default)]
pub struct PerpSettlement;

fn account_key(owner: Address, field: u8) -> B256 {
    key(Ns::PerpAccount, owner, 0, 0, field)
}

fn position_key(owner: Address, market: u32, field: u8) -> B256 {
    key(Ns::Position, owner, u64::from(market), 0, field)
}

fn open_key(index: u64, field: u8) -> B256 {
    key(Ns::OpenAccounts, Address::ZERO, index, 0, field)
}

fn globals_key(field: u8) -> B256 {
    key(Ns::Globals, Address::ZERO, 0, 0, field)
}

fn market_key(market: u32, field: u8) -> B256 {
    key(Ns::PerpMarket, Address::ZERO, u64::from(market), 0, field)
}

/// A forged or corrupt open set or watch list: an error, never a long walk or an allocation.
fn corrupt(what: String) -> L1Error {
    L1Error::Store(StoreError::Backend(format!("corrupt open set: {what}")))
}

fn i256(v: i128) -> I256 {
    I256::try_from(v).unwrap_or(I256::ZERO)
}

fn signed(v: u128) -> L1Result<i128> {
    i128::try_from(v).map_err(|_| L1Error::Overflow)
}

fn add(a: i128, b: i128) -> L1Result<i128> {
    a.checked_add(b).ok_or(L1Error::Overflow)
}

fn sum(a: u128, b: u128) -> L1Result<u128> {
    a.checked_add(b).ok_or(L1Error::Overflow)
}

/// `⌊a·b/d⌋` without intermediate overflow.
fn mul_div(a: u128, b: u128, d: u128) -> L1Result<u128> {
    if d == 0 {
        return Err(L1Error::Overflow);
    }
    u128::try_from(U256::from(a) * U256::from(b) / U256::from(d)).map_err(|_| L1Error::Overflow)
}

/// The market indices set in `map`, ascending.
fn markets_in(map: U256) -> impl Iterator<Item = u32> {
    let limbs = *map.as_limbs();
    (0u32..).zip(limbs).flat_map(|(i, limb)| {
        std::iter::successors((limb != 0).then_some(limb), |w| {
            let next = w & (w - 1);
            (next != 0).then_some(next)
        })
        .map(move |w| i * 64 + w.trailing_zeros())
    })
}

fn bit(market: u32) -> U256 {
    U256::from(1) << market as usize
}

/// Leverage and maintenance basis points of perp `market`.
fn risk_params(config: &L1Config, market: u32) -> L1Result<(u128, u128)> {
    let m = config.perp_market(market)?;
    let (Some(lev), Some(mm)) = (m.max_leverage, m.maintenance_margin_bps) else {
        return Err(L1Error::NotPerpMarket(market));
    };
    Ok((u128::from(lev), u128::from(mm)))
}

/// Initial margin of `notional` at `leverage`, rounded up.
pub fn initial_margin(notional: u128, leverage: u128) -> u128 {
    notional.div_ceil(leverage.max(1))
}

/// Maintenance margin of `notional` at `bps`, rounded up.
pub fn maintenance_margin(notional: u128, bps: u128) -> L1Result<u128> {
    Ok(notional.checked_mul(bps).ok_or(L1Error::Overflow)?.div_ceil(BPS))
}

/// Funding rate in ppm for an interval: `(mark - oracle)·10⁶ / oracle`, the division truncated
/// toward zero, clamped to `±cap`.
pub fn funding_rate_ppm(oracle: u128, mark: u128, cap: u32) -> L1Result<i128> {
    if oracle == 0 {
        return Err(L1Error::ZeroAmount);
    }
    let premium = signed(mark)?
        .checked_sub(signed(oracle)?)
        .and_then(|d| d.checked_mul(PPM as i128))
        .ok_or(L1Error::Overflow)?
        / signed(oracle)?;
    let cap = i128::from(cap);
    Ok(premium.clamp(-cap, cap))
}

/// Funding a position of `size` owes for the index moving from `from` to `to` (negative: it
/// receives): `size · (to − from) / (scale · 10⁶)`, rounded up, so payers pay the fraction and
/// receivers do not get it.
pub fn funding_owed(scale: u128, size: i128, from: I256, to: I256) -> L1Result<i128> {
    let delta = to.checked_sub(from).ok_or(L1Error::Overflow)?;
    if delta.is_zero() || size == 0 {
        return Ok(0);
    }
    let product = i256(size).checked_mul(delta).ok_or(L1Error::Overflow)?;
    let divisor = scale.checked_mul(PPM).ok_or(L1Error::Overflow)?;
    let divisor = I256::try_from(divisor).map_err(|_| L1Error::Overflow)?;
    let quotient = product.checked_div(divisor).ok_or(L1Error::Overflow)?;
    // Division truncates toward zero: that already rounds a negative (received) amount up.
    let remainder = product.checked_rem(divisor).ok_or(L1Error::Overflow)?;
    let owed = if remainder.is_positive() { quotient + I256::ONE } else { quotient };
    i128::try_from(owed).map_err(|_| L1Error::Overflow)
}

/// The cumulative funding index of perp `market`: the sum over funding intervals of
/// `oracle price × rate in ppm`.
pub fn funding_index<S: Store>(ctx: &mut Ctx<'_, S>, market: u32) -> L1Result<I256> {
    Ok(I256::from_raw(ctx.store.load(market_key(market, FUNDING_INDEX_FIELD))?))
}

/// Funding settled by payers minus funding settled to receivers: positive while receivers have
/// not settled yet, and the payers' rounding stays in it.
pub fn funding_pool<S: Store>(ctx: &mut Ctx<'_, S>) -> L1Result<i128> {
    Ok(to_signed(unpack(ctx.store.load(globals_key(FUNDING_POOL_FIELD))?).1))
}

/// Adds one interval's funding at `rate_ppm` and `oracle` to `market`'s index.
fn accrue_funding<S: Store>(
    ctx: &mut Ctx<'_, S>,
    market: u32,
    oracle: u128,
    rate_ppm: i128,
) -> L1Result<()> {
    if rate_ppm == 0 {
        return Ok(());
    }
    let oracle = I256::try_from(oracle).map_err(|_| L1Error::Overflow)?;
    let step = oracle.checked_mul(i256(rate_ppm)).ok_or(L1Error::Overflow)?;
    let index = funding_index(ctx, market)?.checked_add(step).ok_or(L1Error::Overflow)?;
    ctx.store.store(market_key(market, FUNDING_INDEX_FIELD), index.into_raw())?;
    Ok(())
}

/// The funding index at which `owner`'s position in `market` last settled (zero without one).
fn funding_snapshot<S: Store>(ctx: &mut Ctx<'_, S>, owner: Address, market: u32) -> L1Result<I256> {
    Ok(I256::from_raw(ctx.store.load(position_key(owner, market, FUNDING_SNAPSHOT_FIELD))?))
}

fn load_cash<S: Store>(ctx: &mut Ctx<'_, S>, owner: Address) -> L1Result<(u128, i128)> {
    let (index, cash) = unpack(ctx.store.load(account_key(owner, CASH_FIELD))?);
    Ok((index, to_signed(cash)))
}

fn store_cash<S: Store>(
    ctx: &mut Ctx<'_, S>,
    owner: Address,
    index: u128,
    cash: i128,
) -> L1Result<()> {
    ctx.store.store(account_key(owner, CASH_FIELD), pack(index, from_signed(cash)))?;
    Ok(())
}

fn load_position<S: Store>(
    ctx: &mut Ctx<'_, S>,
    owner: Address,
    market: u32,
) -> L1Result<(i128, u128)> {
    let (size, entry) = unpack(ctx.store.load(position_key(owner, market, POSITION_FIELD))?);
    Ok((to_signed(size), entry))
}

/// Marks and funding indices of the perp markets, each read at most once per operation.
struct Marks {
    marks: Vec<Option<Option<u128>>>,
    indices: Vec<Option<I256>>,
}

impl Marks {
    fn new(config: &L1Config) -> Self {
        Self { marks: vec![None; config.markets.len()], indices: vec![None; config.markets.len()] }
    }

    fn set(&mut self, market: u32, mark: Option<u128>) {
        if let Some(slot) = self.marks.get_mut(market as usize) {
            *slot = Some(mark);
        }
    }

    fn get<S: Store>(&mut self, ctx: &mut Ctx<'_, S>, market: u32) -> L1Result<Option<u128>> {
        if let Some(Some(mark)) = self.marks.get(market as usize) {
            return Ok(*mark);
        }
        let mark = oracle::mark_price(ctx, market)?;
        self.set(market, mark);
        Ok(mark)
    }

    fn index<S: Store>(&mut self, ctx: &mut Ctx<'_, S>, market: u32) -> L1Result<I256> {
        if let Some(Some(index)) = self.indices.get(market as usize) {
            return Ok(*index);
        }
        let index = funding_index(ctx, market)?;
        if let Some(slot) = self.indices.get_mut(market as usize) {
            *slot = Some(index);
        }
        Ok(index)
    }

    /// Funding `owner`'s position of `size` in `market` owes since it last settled.
    fn owed<S: Store>(
        &mut self,
        ctx: &mut Ctx<'_, S>,
        owner: Address,
        market: u32,
        size: i128,
    ) -> L1Result<i128> {
        if size == 0 {
            return Ok(0);
        }
        let index = self.index(ctx, market)?;
        let snapshot = funding_snapshot(ctx, owner, market)?;
        funding_owed(ctx.config.price_scale(market)?, size, snapshot, index)
    }
}

/// Signed value and absolute notional of a position at `mark` (at its entry notional when the
/// market has no mark). The notional is floored, so the value rounds toward zero; both are exact
/// for the lot-aligned sizes and tick-aligned marks the engine produces.
fn position_value(
    config: &L1Config,
    market: u32,
    size: i128,
    entry: u128,
    mark: Option<u128>,
) -> L1Result<(i128, u128)> {
    let notional = match mark {
        Some(mark) => config.notional(market, mark, size.unsigned_abs())?,
        None => entry,
    };
    let value = signed(notional)?;
    Ok((if size < 0 { -value } else { value }, notional))
}

/// What margin checks need of an account.
#[derive(Debug, Default)]
struct Risk {
    /// Open-set index (0: not in it).
    index: u128,
    /// Settled cash.
    cash: i128,
    /// Unsettled funding the positions owe (negative: are owed), counted in `value`.
    owed: i128,
    value: i128,
    position_margin: u128,
    maintenance: u128,
    order_margin: u128,
}

/// A position as the end-of-block step loads it: market, size, entry notional.
type Held = (u32, i128, u128);

/// Cash, value and margins of `owner`'s positions, unsettled funding included; and the
/// positions.
fn position_risk<S: Store>(
    ctx: &mut Ctx<'_, S>,
    owner: Address,
    marks: &mut Marks,
) -> L1Result<(Risk, Vec<Held>)> {
    let config = ctx.config;
    let (index, cash) = load_cash(ctx, owner)?;
    let mut r = Risk { index, cash, value: cash, ..Risk::default() };
    let map = ctx.store.load(account_key(owner, POSITIONS_FIELD))?;
    // At most one entry per bit of the 256-bit map.
    let mut positions = Vec::new();
    for market in markets_in(map) {
        let (size, entry) = load_position(ctx, owner, market)?;
        let owed = marks.owed(ctx, owner, market, size)?;
        let mark = marks.get(ctx, market)?;
        let (value, notional) = position_value(config, market, size, entry, mark)?;
        let (lev, mm) = risk_params(config, market)?;
        let credit = owed.checked_neg().ok_or(L1Error::Overflow)?;
        r.owed = add(r.owed, owed)?;
        r.value = add(add(r.value, value)?, credit)?;
        r.position_margin = sum(r.position_margin, initial_margin(notional, lev))?;
        r.maintenance = sum(r.maintenance, maintenance_margin(notional, mm)?)?;
        positions.push((market, size, entry));
    }
    Ok((r, positions))
}

fn risk<S: Store>(ctx: &mut Ctx<'_, S>, owner: Address, marks: &mut Marks) -> L1Result<Risk> {
    let config = ctx.config;
    let (mut r, _) = position_risk(ctx, owner, marks)?;
    let orders = ctx.store.load(account_key(owner, ORDERS_FIELD))?;
    for market in markets_in(orders) {
        let (_, open) = unpack(ctx.store.load(position_key(owner, market, OPEN_NOTIONAL_FIELD))?);
        let (lev, _) = risk_params(config, market)?;
        r.order_margin = sum(r.order_margin, initial_margin(open, lev))?;
    }
    Ok(r)
}

/// More open accounts than a chain can ever have paid for (each one set a slot from zero, at
/// 20,000 gas: years of full blocks): a stored count above it is a forged or corrupt state.
const MAX_OPEN_ACCOUNTS: u64 = 1 << 40;

/// The number of accounts in the open set; a count no chain could have reached is an error.
fn open_count<S: Store>(ctx: &mut Ctx<'_, S>) -> L1Result<u64> {
    let count = ctx.store.load(open_key(0, OPEN_COUNT_FIELD))?;
    u64::try_from(count)
        .ok()
        .filter(|&n| n <= MAX_OPEN_ACCOUNTS)
        .ok_or_else(|| corrupt(format!("count {count}")))
}

/// How many members of the open set the end-of-block sweep has examined in its current round:
/// members `1..=cursor` were, the others were not. At most the count.
fn sweep_cursor<S: Store>(ctx: &mut Ctx<'_, S>, count: u64) -> L1Result<u64> {
    let cursor = ctx.store.load(open_key(0, CURSOR_FIELD))?;
    u64::try_from(cursor)
        .ok()
        .filter(|&c| c <= count)
        .ok_or_else(|| corrupt(format!("sweep cursor {cursor} past the count {count}")))
}

fn open_member<S: Store>(ctx: &mut Ctx<'_, S>, index: u64) -> L1Result<Address> {
    Ok(value_address(ctx.store.load(open_key(index, OPEN_MEMBER_FIELD))?))
}

/// Appends `owner` to the open set (after the sweep's cursor: examined in this round); returns
/// its 1-based index.
fn open_insert<S: Store>(ctx: &mut Ctx<'_, S>, owner: Address) -> L1Result<u128> {
    let count = open_count(ctx)?;
    let index = count.checked_add(1).ok_or(L1Error::Overflow)?;
    ctx.store.store(open_key(index, OPEN_MEMBER_FIELD), address_value(owner))?;
    ctx.store.store(open_key(0, OPEN_COUNT_FIELD), U256::from(index))?;
    Ok(u128::from(index))
}

/// Moves the member at `from` to `to`, keeping its stored index current.
fn open_move<S: Store>(ctx: &mut Ctx<'_, S>, from: u64, to: u64) -> L1Result<()> {
    let who = open_member(ctx, from)?;
    ctx.store.store(open_key(to, OPEN_MEMBER_FIELD), address_value(who))?;
    let (_, cash) = load_cash(ctx, who)?;
    store_cash(ctx, who, u128::from(to), cash)
}

/// Removes the member at 1-based `index`, keeping the examined members (`1..=cursor`) before
/// the others: a hole among the examined is filled by the last examined member and the cursor
/// steps back, so the hole moves to the cursor; the last member fills that hole. No member that
/// the round has not examined yet ever moves behind the cursor.
fn open_remove<S: Store>(ctx: &mut Ctx<'_, S>, index: u128) -> L1Result<()> {
    let count = open_count(ctx)?;
    let index = u64::try_from(index).map_err(|_| L1Error::Overflow)?;
    if index == 0 || index > count {
        return Err(corrupt(format!("member index {index} past the count {count}")));
    }
    let cursor = sweep_cursor(ctx, count)?;
    let mut hole = index;
    if index <= cursor {
        if index != cursor {
            open_move(ctx, cursor, index)?;
        }
        hole = cursor;
        ctx.store.store(open_key(0, CURSOR_FIELD), U256::from(cursor - 1))?;
    }
    if hole != count {
        open_move(ctx, count, hole)?;
    }
    ctx.store.store(open_key(count, OPEN_MEMBER_FIELD), U256::ZERO)?;
    ctx.store.store(open_key(0, OPEN_COUNT_FIELD), U256::from(count - 1))?;
    Ok(())
}

/// Puts `owner`, at open-set index `index` (0: not in it), into the open set or takes it out;
/// returns its index after.
fn set_open<S: Store>(
    ctx: &mut Ctx<'_, S>,
    owner: Address,
    index: u128,
    member: bool,
) -> L1Result<u128> {
    match (index != 0, member) {
        (false, true) => open_insert(ctx, owner),
        (true, false) => open_remove(ctx, index).map(|()| 0),
        _ => Ok(index),
    }
}

/// Stores `owner`'s `cash`, keeping it in the open set exactly while it has a position or its
/// cash is below zero.
fn store_cash_synced<S: Store>(
    ctx: &mut Ctx<'_, S>,
    owner: Address,
    index: u128,
    cash: i128,
) -> L1Result<()> {
    let member = cash < 0 || !ctx.store.load(account_key(owner, POSITIONS_FIELD))?.is_zero();
    let index = set_open(ctx, owner, index, member)?;
    store_cash(ctx, owner, index, cash)
}

/// The accounts in the open set (with a position, or with cash below zero), in set order; a
/// walk of the whole set, for tests and tools, never for the protocol's per-block work.
pub fn open_accounts<S: Store>(ctx: &mut Ctx<'_, S>) -> L1Result<Vec<Address>> {
    let count = open_count(ctx)?;
    // Grown as members are read, never sized from the stored count.
    let mut out = Vec::new();
    for i in 1..=count {
        out.push(open_member(ctx, i)?);
    }
    Ok(out)
}

/// The sweep's cursor over the open set (members examined in the current round).
pub fn end_of_block_cursor<S: Store>(ctx: &mut Ctx<'_, S>) -> L1Result<u64> {
    let count = open_count(ctx)?;
    sweep_cursor(ctx, count)
}

/// Entry notional after adding `delta` (worth `notional`) to a position of `size`.
fn entry_after(size: i128, entry: u128, delta: i128, notional: u128) -> L1Result<u128> {
    if size == 0 || (size > 0) == (delta > 0) {
        return sum(entry, notional);
    }
    let (old, d) = (size.unsigned_abs(), delta.unsigned_abs());
    if d <= old {
        // Reducing keeps the average entry price: entry shrinks in proportion (floored).
        mul_div(entry, old - d, old)
    } else {
        // Flipping: the new position was entered at this trade's price.
        mul_div(notional, d - old, d)
    }
}

/// Settles the funding `owner`'s position of `size` in `market` owes since it last settled
/// (through the funding pool) and moves its snapshot to the current index, or clears it when the
/// position becomes `new_size` = 0; returns `cash` after.
fn settle_funding<S: Store>(
    ctx: &mut Ctx<'_, S>,
    owner: Address,
    market: u32,
    (size, new_size): (i128, i128),
    cash: i128,
) -> L1Result<i128> {
    let index = funding_index(ctx, market)?;
    // A closed position's snapshot was cleared with it.
    let snapshot = if size == 0 { I256::ZERO } else { funding_snapshot(ctx, owner, market)? };
    let owed = funding_owed(ctx.config.price_scale(market)?, size, snapshot, index)?;
    if owed != 0 {
        let pool = add(funding_pool(ctx)?, owed)?;
        ctx.store.store(globals_key(FUNDING_POOL_FIELD), pack(0, from_signed(pool)))?;
    }
    let after = if new_size == 0 { I256::ZERO } else { index };
    if after != snapshot {
        ctx.store.store(position_key(owner, market, FUNDING_SNAPSHOT_FIELD), after.into_raw())?;
    }
    cash.checked_sub(owed).ok_or(L1Error::Overflow)
}

/// Adds `delta` to `owner`'s position in `market` against `notional` of cash (paid when buying,
/// received when selling), minus `fee`, after settling the position's funding; keeps the
/// position bitmap and open set current.
fn trade<S: Store>(
    ctx: &mut Ctx<'_, S>,
    owner: Address,
    market: u32,
    delta: i128,
    notional: u128,
    fee: u128,
) -> L1Result<()> {
    let (mut index, cash) = load_cash(ctx, owner)?;
    let (size, entry) = load_position(ctx, owner, market)?;
    let value = signed(notional)?;
    let flow = if delta > 0 { -value } else { value };
    let new_size = add(size, delta)?;
    let cash = settle_funding(ctx, owner, market, (size, new_size), cash)?;
    let cash = add(add(cash, flow)?, -signed(fee)?)?;
    let new_entry = if new_size == 0 { 0 } else { entry_after(size, entry, delta, notional)? };
    ctx.store.store(
        position_key(owner, market, POSITION_FIELD),
        pack(from_signed(new_size), new_entry),
    )?;
    let positions_key = account_key(owner, POSITIONS_FIELD);
    let has_positions = if (size == 0) != (new_size == 0) {
        let before = ctx.store.load(positions_key)?;
        let after = if new_size == 0 { before & !bit(market) } else { before | bit(market) };
        ctx.store.store(positions_key, after)?;
        !after.is_zero()
    } else {
        new_size != 0 || !ctx.store.load(positions_key)?.is_zero()
    };
    // Negative cash without a position keeps the account in the open set: the end-of-block
    // step must find it and have the backstop absorb the debt.
    index = set_open(ctx, owner, index, has_positions || cash < 0)?;
    store_cash(ctx, owner, index, cash)
}

/// The (bid, ask) lot counts in the upper half of the open-notional slot, 64 bits each.
fn split_lots(packed: u128) -> [u128; 2] {
    [packed >> 64, packed & u128::from(u64::MAX)]
}

/// [`split_lots`] reversed; a count past 64 bits is an overflow.
fn join_lots([bids, asks]: [u128; 2]) -> L1Result<u128> {
    let max = u128::from(u64::MAX);
    if bids > max || asks > max {
        return Err(L1Error::Overflow);
    }
    Ok((bids << 64) | asks)
}

/// Sizes of `owner`'s resting orders in `market`: (bids, asks), in size units.
pub(super) fn resting_sizes<S: Store>(
    ctx: &mut Ctx<'_, S>,
    owner: Address,
    market: u32,
) -> L1Result<(u128, u128)> {
    let lot = ctx.config.market(market)?.lot_size;
    let (lots, _) = unpack(ctx.store.load(position_key(owner, market, OPEN_NOTIONAL_FIELD))?);
    let [bids, asks] = split_lots(lots).map(|n| n.checked_mul(lot).ok_or(L1Error::Overflow));
    Ok((bids?, asks?))
}

/// Adds (`add`) or removes `size` (worth `notional`) of `owner`'s resting `side` orders in
/// `market`.
fn change_open<S: Store>(
    ctx: &mut Ctx<'_, S>,
    owner: Address,
    market: u32,
    side: Side,
    size: u128,
    notional: u128,
    add: bool,
) -> L1Result<()> {
    let lot = ctx.config.market(market)?.lot_size;
    let k = position_key(owner, market, OPEN_NOTIONAL_FIELD);
    let (lots, open) = unpack(ctx.store.load(k)?);
    let new = if add { open.checked_add(notional) } else { open.checked_sub(notional) }
        .ok_or(L1Error::Overflow)?;
    // Sizes are whole lots (checked at placement).
    let mut sides = split_lots(lots);
    let count = &mut sides[usize::from(!side.is_buy())];
    let delta = size / lot;
    *count = if add { count.checked_add(delta) } else { count.checked_sub(delta) }
        .ok_or(L1Error::Overflow)?;
    ctx.store.store(k, pack(join_lots(sides)?, new))?;
    if (open == 0) != (new == 0) {
        let orders_key = account_key(owner, ORDERS_FIELD);
        let map = ctx.store.load(orders_key)?;
        let map = if new == 0 { map & !bit(market) } else { map | bit(market) };
        ctx.store.store(orders_key, map)?;
    }
    Ok(())
}

/// Refuses an order below the market's minimum notional (at its limit `price`), or one that,
/// filled completely, would leave a position of `size` neither zero nor worth the minimum at
/// `reference` (the mark): a million dust positions cannot be opened for the price of one. An
/// order that closes the position to zero is admitted whatever its size.
fn check_min_notional(
    config: &L1Config,
    market: u32,
    size: i128,
    request: &OrderRequest,
    price: u128,
    reference: u128,
) -> L1Result<()> {
    let delta = signed(request.size)?;
    let after = add(size, if request.side.is_buy() { delta } else { -delta })?;
    if after == 0 {
        return Ok(());
    }
    let min = config.min_notional(market)?;
    let notional = config.notional(market, price, request.size)?;
    if notional < min {
        return Err(L1Error::OrderBelowMinNotional { notional, min });
    }
    let notional = config.notional(market, reference, after.unsigned_abs())?;
    if notional < min {
        return Err(L1Error::PositionBelowMinNotional { notional, min });
    }
    Ok(())
}

impl<S: Store> Settlement<S> for PerpSettlement {
    fn admit(
        &mut self,
        ctx: &mut Ctx<'_, S>,
        owner: Address,
        request: &OrderRequest,
        price: u128,
    ) -> L1Result<()> {
        let market = request.market;
        let config = ctx.config;
        let (lev, _) = risk_params(config, market)?;
        let oracle = oracle::oracle_price(ctx, market)?.ok_or(L1Error::NoOraclePrice(market))?;
        let mark = oracle::mark_with_oracle(ctx, market, oracle)?;
        let reference = mark.unwrap_or(oracle);
        let (size, _) = load_position(ctx, owner, market)?;
        check_min_notional(config, market, size, request, price, reference)?;
        // Resting orders on the same side may reduce the position first: only what they leave
        // can be reduced without margin, or stacked orders would open positions unmargined.
        let (bids, asks) = resting_sizes(ctx, owner, market)?;
        let reducing = match request.side {
            Side::Bid if size < 0 => size.unsigned_abs().saturating_sub(bids).min(request.size),
            Side::Ask if size > 0 => size.unsigned_abs().saturating_sub(asks).min(request.size),
            _ => 0,
        };
        let rest = request.size - reducing;
        // The worst price the order can trade at: the deepest level it reaches in the book now,
        // or its limit when a remainder may rest (and fill there later). The account's own
        // orders on the other side are cancelled, not filled, as the order reaches them: the
        // walk covers them too, so they cannot hide how deep the order really goes.
        let own = if request.side == Side::Bid { asks } else { bids };
        let reach = request.size.checked_add(own).ok_or(L1Error::Overflow)?;
        let (last, covered) = book::sweep(ctx, market, request.side.opposite(), price, reach)?;
        let rests = matches!(request.tif, TimeInForce::Gtc | TimeInForce::PostOnly);
        let worst = if covered || !rests { last } else { Some(price) };
        // An immediate-or-cancel order that reaches nothing trades nothing.
        let Some(worst) = worst else { return Ok(()) };
        // Trading worse than the mark loses the difference at once.
        let worse = match request.side {
            Side::Bid => worst.saturating_sub(reference),
            Side::Ask => reference.saturating_sub(worst),
        };
        let loss = config.notional(market, worse, request.size)?;
        // An order that only reduces, at no loss against the mark, lowers the account's risk:
        // admitted even when under-margined.
        if rest == 0 && loss == 0 {
            return Ok(());
        }
        let fee = config.taker_fee(market, config.notional(market, price, request.size)?)?;
        let mut marks = Marks::new(config);
        marks.set(market, mark);
        let r = risk(ctx, owner, &mut marks)?;
        let available = r
            .value
            .checked_sub(signed(fee)?)
            .and_then(|v| v.checked_sub(signed(loss).ok()?))
            .ok_or(L1Error::Overflow)?;
        let needed = if rest == 0 {
            // Reducing at a loss: only as far as the account stays above zero.
            0
        } else {
            let order_margin =
                initial_margin(config.notional(market, worst.max(reference), rest)?, lev);
            sum(sum(r.position_margin, r.order_margin)?, order_margin)?
        };
        if available < signed(needed)? {
            return Err(L1Error::InsufficientMargin { needed, available });
        }
        Ok(())
    }

    fn reserve(&mut self, ctx: &mut Ctx<'_, S>, order: &Resting) -> L1Result<()> {
        let notional = ctx.config.notional(order.market, order.price, order.remaining)?;
        change_open(ctx, order.owner, order.market, order.side, order.remaining, notional, true)
    }

    fn release(&mut self, ctx: &mut Ctx<'_, S>, order: &Resting, size: u128) -> L1Result<()> {
        let notional = ctx.config.notional(order.market, order.price, size)?;
        change_open(ctx, order.owner, order.market, order.side, size, notional, false)
    }

    fn settle(&mut self, ctx: &mut Ctx<'_, S>, fill: &Fill) -> L1Result<u128> {
        let market = fill.market;
        let collateral = ctx.config.quote_asset(market)?;
        let notional = ctx.config.notional(market, fill.price, fill.size)?;
        let fee = ctx.config.taker_fee(market, notional)?;
        let size = signed(fill.size)?;
        let taker_delta = if fill.taker_side.is_buy() { size } else { -size };
        trade(ctx, fill.taker, market, taker_delta, notional, fee)?;
        trade(ctx, fill.maker, market, -taker_delta, notional, 0)?;
        let maker_side = fill.taker_side.opposite();
        change_open(ctx, fill.maker, market, maker_side, fill.size, notional, false)?;
        if fee != 0 {
            spot::credit(ctx, ctx.config.fee_recipient, collateral, fee)?;
        }
        Ok(fee)
    }
}

/// Moves collateral between `owner`'s spot balance and perp cash (positive: into perps); out
/// of perps only what the account value leaves above the initial margin of positions and orders.
pub fn transfer<S: Store>(ctx: &mut Ctx<'_, S>, owner: Address, amount: i128) -> L1Result<()> {
    let collateral = ctx.config.collateral.ok_or(L1Error::NoPerps)?;
    if amount == 0 {
        return Err(L1Error::ZeroAmount);
    }
    let abs = amount.unsigned_abs();
    let (index, cash) = load_cash(ctx, owner)?;
    if amount > 0 {
        spot::debit(ctx, owner, collateral, abs)?;
        // Paying off negative cash may take a position-less account out of the open set.
        store_cash_synced(ctx, owner, index, add(cash, amount)?)?;
    } else {
        let r = risk(ctx, owner, &mut Marks::new(ctx.config))?;
        let margin = sum(r.position_margin, r.order_margin)?;
        let free = r.value.checked_sub(signed(margin)?).ok_or(L1Error::Overflow)?;
        if free < signed(abs)? {
            return Err(L1Error::InsufficientMargin {
                needed: sum(margin, abs)?,
                available: r.value,
            });
        }
        store_cash(ctx, owner, index, add(cash, amount)?)?;
        spot::credit(ctx, owner, collateral, abs)?;
    }
    let amount = I256::try_from(amount).map_err(|_| L1Error::Overflow)?;
    events::emit(ctx.store, &PerpTransfer { user: owner, amount });
    Ok(())
}

fn position_view(
    config: &L1Config,
    market: u32,
    size: i128,
    entry: u128,
    mark: Option<u128>,
) -> L1Result<PositionView> {
    if size == 0 {
        return Ok(PositionView::default());
    }
    let (lev, _) = risk_params(config, market)?;
    let (value, notional) = position_value(config, market, size, entry, mark)?;
    let cost = if size < 0 { -signed(entry)? } else { signed(entry)? };
    Ok(PositionView {
        size,
        entry_price: mul_div(entry, config.price_scale(market)?, size.unsigned_abs())?,
        margin: initial_margin(notional, lev),
        unrealized_pnl: value.checked_sub(cost).ok_or(L1Error::Overflow)?,
    })
}

/// `owner`'s position in perp `market` at the mark price.
pub fn position<S: Store>(
    ctx: &mut Ctx<'_, S>,
    owner: Address,
    market: u32,
) -> L1Result<PositionView> {
    ctx.config.perp_market(market)?;
    let (size, entry) = load_position(ctx, owner, market)?;
    if size == 0 {
        return Ok(PositionView::default());
    }
    let mark = oracle::mark_price(ctx, market)?;
    position_view(ctx.config, market, size, entry, mark)
}

/// `owner`'s perp account: cash, value and margins at mark prices, positions.
pub fn account<S: Store>(ctx: &mut Ctx<'_, S>, owner: Address) -> L1Result<AccountView> {
    let config = ctx.config;
    let mut marks = Marks::new(config);
    let r = risk(ctx, owner, &mut marks)?;
    let mut positions = Vec::new();
    for market in markets_in(ctx.store.load(account_key(owner, POSITIONS_FIELD))?) {
        let (size, entry) = load_position(ctx, owner, market)?;
        let mark = marks.get(ctx, market)?;
        positions.push((market, position_view(config, market, size, entry, mark)?));
    }
    Ok(AccountView {
        cash: r.cash,
        funding_owed: r.owed,
        account_value: r.value,
        initial_margin: sum(r.position_margin, r.order_margin)?,
        maintenance_margin: r.maintenance,
        order_margin: r.order_margin,
        positions,
    })
}

/// The L1 block number: the last block whose end-of-block step ran (0 before the first).
pub fn l1_block_number<S: Store>(ctx: &mut Ctx<'_, S>) -> L1Result<u64> {
    let (_, block) = unpack(ctx.store.load(globals_key(BLOCK_NUMBER_FIELD))?);
    u64::try_from(block).map_err(|_| L1Error::Overflow)
}

/// Total bad debt the backstop has absorbed.
pub fn bad_debt<S: Store>(ctx: &mut Ctx<'_, S>) -> L1Result<u128> {
    Ok(unpack(ctx.store.load(globals_key(BAD_DEBT_FIELD))?).1)
}

/// Hands all of `owner`'s positions to the backstop at the mark, after cancelling its resting
/// perp orders (their funding settles as they move); the backstop absorbs a negative remainder.
fn liquidate<S: Store>(
    ctx: &mut Ctx<'_, S>,
    owner: Address,
    positions: &[Held],
    marks: &mut Marks,
) -> L1Result<()> {
    let config = ctx.config;
    let backstop = config.backstop;
    let orders = ctx.store.load(account_key(owner, ORDERS_FIELD))?;
    for market in markets_in(orders) {
        matching::cancel_all(ctx, &mut PerpSettlement, owner, Some(market))?;
    }
    for &(market, size, entry) in positions {
        let mark = marks.get(ctx, market)?;
        let (_, notional) = position_value(config, market, size, entry, mark)?;
        trade(ctx, owner, market, -size, notional, 0)?;
        trade(ctx, backstop, market, size, notional, 0)?;
        let price = match mark {
            Some(mark) => mark,
            None => mul_div(entry, config.price_scale(market)?, size.unsigned_abs())?,
        };
        events::emit(ctx.store, &Liquidation { user: owner, market, size, markPrice: price });
    }
    let (index, cash) = load_cash(ctx, owner)?;
    if cash < 0 {
        // No position and no debt left: out of the open set.
        let index = set_open(ctx, owner, index, false)?;
        store_cash(ctx, owner, index, 0)?;
        let (backstop_index, backstop_cash) = load_cash(ctx, backstop)?;
        store_cash_synced(ctx, backstop, backstop_index, add(backstop_cash, cash)?)?;
        let debt = cash.unsigned_abs();
        let total = sum(bad_debt(ctx)?, debt)?;
        ctx.store.store(globals_key(BAD_DEBT_FIELD), pack(0, total))?;
        events::emit(ctx.store, &BadDebt { user: owner, amount: U256::from(debt) });
    }
    Ok(())
}

/// What the end-of-block step found when it examined an account.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Verdict {
    /// Not in the open set (any more): nothing to check.
    Closed,
    /// At or above the initial margin of its positions.
    Healthy,
    /// Below the initial margin, at or above maintenance: watched every block.
    AtRisk,
    /// Below maintenance (or in debt without a position): handed to the backstop.
    Liquidated,
}

/// Examines `owner` at the step's marks and liquidates it below maintenance. `before` runs just
/// before a liquidation (the sweep stores its cursor there: a liquidation moves members).
fn examine<S: Store>(
    ctx: &mut Ctx<'_, S>,
    owner: Address,
    marks: &mut Marks,
    before: impl FnOnce(&mut Ctx<'_, S>) -> L1Result<()>,
) -> L1Result<Verdict> {
    let (r, positions) = position_risk(ctx, owner, marks)?;
    if r.index == 0 {
        return Ok(Verdict::Closed);
    }
    if r.value < signed(r.maintenance)? {
        before(ctx)?;
        liquidate(ctx, owner, &positions, marks)?;
        return Ok(Verdict::Liquidated);
    }
    Ok(if r.value < signed(r.position_margin)? { Verdict::AtRisk } else { Verdict::Healthy })
}

fn watch_key(index: u64) -> B256 {
    open_key(index, WATCH_FIELD)
}

/// The watch list: at most `capacity` accounts found below their initial margin. A longer
/// stored list is a forged or corrupt state.
fn watch_list<S: Store>(ctx: &mut Ctx<'_, S>, capacity: u64) -> L1Result<Vec<Address>> {
    let count = ctx.store.load(watch_key(0))?;
    let count = u64::try_from(count)
        .ok()
        .filter(|&n| n <= capacity)
        .ok_or_else(|| corrupt(format!("watch list of {count} above its capacity {capacity}")))?;
    let mut out = Vec::new();
    for i in 1..=count {
        out.push(value_address(ctx.store.load(watch_key(i))?));
    }
    Ok(out)
}

/// Replaces the stored watch list of `old` entries by `new`.
fn store_watch_list<S: Store>(
    ctx: &mut Ctx<'_, S>,
    old: &[Address],
    new: &[Address],
) -> L1Result<()> {
    for i in 0..old.len().max(new.len()) {
        let (before, after) = (old.get(i), new.get(i));
        if before != after {
            let value = after.map_or(U256::ZERO, |a| address_value(*a));
            ctx.store.store(watch_key(i as u64 + 1), value)?;
        }
    }
    if old.len() != new.len() {
        ctx.store.store(watch_key(0), U256::from(new.len()))?;
    }
    Ok(())
}

/// The accounts part of the end-of-block step: at most `endOfBlockAccounts` open accounts
/// examined, the watch list's first, then the sweep's next ones (see the module docs).
fn examine_accounts<S: Store>(ctx: &mut Ctx<'_, S>, marks: &mut Marks) -> L1Result<()> {
    let budget = u64::from(ctx.config.end_of_block_accounts);
    let capacity = budget / 4;
    let backstop = ctx.config.backstop;
    let watched = watch_list(ctx, capacity)?;
    // Examined this block: an account is examined once per step.
    let mut seen = std::collections::HashSet::new();
    let mut still = Vec::new();
    for &owner in &watched {
        if owner != backstop
            && seen.insert(owner)
            && examine(ctx, owner, marks, |_| Ok(()))? == Verdict::AtRisk
        {
            still.push(owner);
        }
    }

    let mut sweep = budget - watched.len() as u64;
    let mut count = open_count(ctx)?;
    let mut cursor = sweep_cursor(ctx, count)?;
    if cursor == count {
        // The last step ended a round: this one starts the next from the first member.
        cursor = 0;
    }
    // A round that ends within this step does not start again in it: no account is visited
    // twice by one step.
    while sweep > 0 && cursor < count {
        let index = cursor + 1;
        let owner = open_member(ctx, index)?;
        let (stored, _) = load_cash(ctx, owner)?;
        if stored != u128::from(index) {
            return Err(corrupt(format!("member {index} ({owner}) has index {stored}")));
        }
        cursor = index;
        sweep -= 1;
        if owner == backstop || !seen.insert(owner) {
            continue;
        }
        let verdict = examine(ctx, owner, marks, |ctx| {
            ctx.store.store(open_key(0, CURSOR_FIELD), U256::from(index))?;
            Ok(())
        })?;
        match verdict {
            Verdict::AtRisk if (still.len() as u64) < capacity => still.push(owner),
            Verdict::Liquidated => {
                // Members moved: the liquidated account's place holds one not examined yet.
                count = open_count(ctx)?;
                cursor = sweep_cursor(ctx, count)?;
            }
            _ => {}
        }
    }
    if cursor != sweep_cursor(ctx, count)? {
        ctx.store.store(open_key(0, CURSOR_FIELD), U256::from(cursor))?;
    }
    store_watch_list(ctx, &watched, &still)
}

/// The deterministic end-of-block step: funding indices on interval blocks, a bounded number of
/// liquidation checks, marks and the L1 block number.
pub fn end_of_block<S: Store>(ctx: &mut Ctx<'_, S>) -> L1Result<()> {
    let config = ctx.config;
    let perp_markets: Vec<u32> = config.perp_markets().collect();
    if config.collateral.is_some() && !perp_markets.is_empty() {
        // Marks from the start of the step: cancelling a liquidated account's orders moves the
        // book, and every account of this block is judged at the same prices.
        let mut marks = Marks::new(config);
        for &market in &perp_markets {
            marks.get(ctx, market)?;
        }
        if ctx.block.is_multiple_of(config.funding_interval_blocks) {
            for &market in &perp_markets {
                let Some(oracle) = oracle::oracle_price(ctx, market)? else { continue };
                let mark = marks.get(ctx, market)?.unwrap_or(oracle);
                let rate_ppm = funding_rate_ppm(oracle, mark, config.max_funding_rate_ppm)?;
                accrue_funding(ctx, market, oracle, rate_ppm)?;
                let event = Funding {
                    market,
                    ratePpm: i64::try_from(rate_ppm).map_err(|_| L1Error::Overflow)?,
                    oraclePrice: oracle,
                    markPrice: mark,
                };
                events::emit(ctx.store, &event);
            }
        }
        examine_accounts(ctx, &mut marks)?;
        for &market in &perp_markets {
            if let Some(mark) = marks.get(ctx, market)? {
                oracle::store_mark(ctx, market, mark)?;
            }
        }
    }
    ctx.store.store(globals_key(BLOCK_NUMBER_FIELD), pack(0, u128::from(ctx.block)))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use alloy_sol_types::SolEvent;

    use std::collections::BTreeSet;

    use super::*;
    use crate::l1::{
        config::test_config,
        order::PlaceOutcome,
        store::{MemStore, Metered},
    };

    const BTC: u32 = 1;
    const USD_ASSET: u32 = 1;
    /// One dollar in USD units (6 decimals).
    const USD: u128 = 1_000_000;
    /// One whole BTC in size units (8 decimals).
    const COIN: u128 = 100_000_000;
    /// The BTC-PERP lot: 0.001 BTC.
    const LOT: u128 = 100_000;

    fn user(n: u8) -> Address {
        Address::with_last_byte(n)
    }

    fn alice() -> Address {
        user(0xa1)
    }

    fn bob() -> Address {
        user(0xa2)
    }

    fn carol() -> Address {
        user(0xa3)
    }

    fn fee_recipient() -> Address {
        Address::with_last_byte(0xfe)
    }

    fn backstop() -> Address {
        Address::with_last_byte(0xbb)
    }

    /// A test chain: the test config, its state and the current block.
    struct Chain {
        config: L1Config,
        mem: MemStore,
        block: u64,
    }

    impl Chain {
        fn new() -> Self {
            Self { config: test_config(), mem: MemStore::default(), block: 1 }
        }

        fn ctx(&mut self) -> Ctx<'_, MemStore> {
            Ctx::new(&mut self.mem, &self.config, self.block)
        }

        /// All three publishers post `price`.
        fn oracle(&mut self, price: u128) {
            for p in 1..=3 {
                oracle::post(&mut self.ctx(), user(0xb0 + p), BTC, price).unwrap();
            }
        }

        /// Deposits `amount` USD to `who` and moves it into perps.
        fn fund(&mut self, who: Address, amount: u128) {
            spot::deposit(&mut self.ctx(), who, USD_ASSET, amount).unwrap();
            transfer(&mut self.ctx(), who, amount as i128).unwrap();
        }

        fn place(
            &mut self,
            who: Address,
            side: Side,
            price: u128,
            size: u128,
            tif: TimeInForce,
        ) -> L1Result<PlaceOutcome> {
            let req = OrderRequest { market: BTC, side, price, size, tif, cloid: 0 };
            matching::place(&mut self.ctx(), &mut PerpSettlement, who, &req)
        }

        /// `taker` takes `size` from a resting `maker` order at `price`.
        fn trade(
            &mut self,
            maker: Address,
            taker: Address,
            taker_side: Side,
            price: u128,
            size: u128,
        ) {
            let rest =
                self.place(maker, taker_side.opposite(), price, size, TimeInForce::Gtc).unwrap();
            assert_eq!(rest.resting, size);
            let take = self.place(taker, taker_side, price, size, TimeInForce::Ioc).unwrap();
            assert_eq!(take.filled, size);
        }

        fn account(&mut self, who: Address) -> AccountView {
            account(&mut self.ctx(), who).unwrap()
        }

        fn position(&mut self, who: Address) -> PositionView {
            position(&mut self.ctx(), who, BTC).unwrap()
        }

        fn cash(&mut self, who: Address) -> i128 {
            // Settled as if now: what the account's cash is worth.
            let a = self.account(who);
            a.cash - a.funding_owed
        }

        fn spot_usd(&mut self, who: Address) -> u128 {
            spot::balance(&mut self.ctx(), who, USD_ASSET).unwrap().0
        }

        fn open(&mut self) -> Vec<Address> {
            open_accounts(&mut self.ctx()).unwrap()
        }

        fn end_block(&mut self) {
            end_of_block(&mut self.ctx()).unwrap();
            self.block += 1;
        }

        fn logs<E: SolEvent>(&self) -> Vec<E> {
            self.mem.logs.iter().filter_map(|l| E::decode_log_data(l).ok()).collect()
        }
    }

    fn fee(notional: u128) -> u128 {
        notional * 5 / 10_000
    }

    /// A state override can forge the open set's count: it sizes nothing and is refused when
    /// no chain could have paid for it (2^50 once aborted the node on a 22 PB allocation).
    #[test]
    fn a_forged_open_count_is_an_error_not_an_allocation() {
        let config = test_config();
        for count in [U256::from(1u64) << 50, U256::from(u64::MAX), U256::MAX] {
            let mut mem = MemStore::default();
            mem.store(open_key(0, OPEN_COUNT_FIELD), count).unwrap();
            let mut ctx = Ctx::new(&mut mem, &config, 1);
            let err = open_accounts(&mut ctx).unwrap_err().to_string();
            assert!(err.contains("corrupt open set"), "{count}: {err}");
            assert!(end_of_block(&mut ctx).is_err(), "{count}");
        }
    }

    #[test]
    fn margin_arithmetic_rounds_up() {
        assert_eq!(initial_margin(100, 20), 5);
        assert_eq!(initial_margin(101, 20), 6);
        assert_eq!(initial_margin(0, 20), 0);
        assert_eq!(maintenance_margin(40, 250).unwrap(), 1);
        assert_eq!(maintenance_margin(41, 250).unwrap(), 2);
        assert_eq!(maintenance_margin(1, 250).unwrap(), 1);
        assert_eq!(maintenance_margin(u128::MAX, 250), Err(L1Error::Overflow));
        // Payers round up, receivers down (owed rounds toward +∞ either way).
        let i = |v: i64| I256::try_from(v).unwrap();
        assert_eq!(funding_owed(1, 1, i(0), i(3_000_003)).unwrap(), 4);
        assert_eq!(funding_owed(1, -1, i(0), i(3_000_003)).unwrap(), -3);
        assert_eq!(funding_owed(1, 1, i(0), i(3_000_000)).unwrap(), 3);
        assert_eq!(funding_owed(1, 1, i(3_000_003), i(0)).unwrap(), -3);
        assert_eq!(funding_owed(1, -1, i(3_000_003), i(0)).unwrap(), 4);
        assert_eq!(funding_owed(1, 0, i(0), i(5)).unwrap(), 0);
        assert_eq!(funding_owed(1, i128::MAX, i(0), I256::MAX), Err(L1Error::Overflow));
        // Truncated toward zero on both sides, then clamped.
        assert_eq!(funding_rate_ppm(3, 4, 500_000).unwrap(), 333_333);
        assert_eq!(funding_rate_ppm(3, 2, 500_000).unwrap(), -333_333);
        assert_eq!(funding_rate_ppm(3, 4, 5_000).unwrap(), 5_000);
        assert_eq!(funding_rate_ppm(3, 1, 5_000).unwrap(), -5_000);
        assert_eq!(funding_rate_ppm(3, 3, 5_000).unwrap(), 0);
        assert_eq!(entry_after(0, 0, 5, 50).unwrap(), 50);
        assert_eq!(entry_after(5, 50, 5, 70).unwrap(), 120);
        assert_eq!(entry_after(-5, 50, -5, 70).unwrap(), 120);
        assert_eq!(entry_after(3, 10, -1, 999).unwrap(), 6); // 10 * 2 / 3, floored
        assert_eq!(entry_after(3, 10, -3, 999).unwrap(), 0);
        assert_eq!(entry_after(3, 10, -5, 100).unwrap(), 40); // flipped: 2 of 5 at this trade
        let map = bit(0) | bit(63) | bit(64) | bit(200) | bit(255);
        assert_eq!(markets_in(map).collect::<Vec<_>>(), vec![0, 63, 64, 200, 255]);
        assert_eq!(markets_in(U256::ZERO).count(), 0);
    }

    #[test]
    fn admission_needs_a_fresh_oracle_and_margin() {
        let mut c = Chain::new();
        c.fund(alice(), 1_000 * USD);
        c.fund(bob(), 100_000 * USD);
        let buy =
            |c: &mut Chain, size| c.place(alice(), Side::Bid, 50_000 * USD, size, TimeInForce::Gtc);
        assert_eq!(buy(&mut c, COIN), Err(L1Error::NoOraclePrice(BTC)));
        c.oracle(50_000 * USD);
        // 1 BTC at 50000 needs 2500 of initial margin; 1000 - 25 fee is available.
        assert_eq!(
            buy(&mut c, COIN),
            Err(L1Error::InsufficientMargin { needed: 2_500 * USD, available: 975 * USD as i128 })
        );
        // 0.3 BTC: 750 margin + 7.5 fee fits in 1000.
        let placed = buy(&mut c, 300 * LOT).unwrap();
        assert_eq!(placed.resting, 300 * LOT);
        let a = c.account(alice());
        assert_eq!((a.order_margin, a.initial_margin), (750 * USD, 750 * USD));
        // The next 0.1 BTC would need 750 + 250 + 2.5 fee > 1000.
        assert!(matches!(buy(&mut c, 100 * LOT), Err(L1Error::InsufficientMargin { .. })));
        // Cancelling releases the order margin.
        matching::cancel(&mut c.ctx(), &mut PerpSettlement, alice(), BTC, placed.order_id).unwrap();
        let a = c.account(alice());
        assert_eq!((a.order_margin, a.initial_margin), (0, 0));
        assert!(
            c.mem.slots.keys().all(|k| !(k[0] == Ns::Position as u8 && k[1..21] == alice()[..]))
        );

        // Stale oracle: refused again.
        c.block += 11;
        assert_eq!(buy(&mut c, LOT), Err(L1Error::NoOraclePrice(BTC)));
        // Spot markets are not perp markets.
        let req = OrderRequest {
            market: 0,
            side: Side::Bid,
            price: 10_000,
            size: 1_000_000_000_000_000,
            tif: TimeInForce::Gtc,
            cloid: 0,
        };
        assert_eq!(
            PerpSettlement.admit(&mut c.ctx(), alice(), &req, 10_000),
            Err(L1Error::NotPerpMarket(0))
        );
    }

    #[test]
    fn reducing_orders_are_admitted_when_under_margined() {
        let mut c = Chain::new();
        c.oracle(50_000 * USD);
        c.fund(alice(), 3_000 * USD);
        c.fund(bob(), 100_000 * USD);
        c.trade(bob(), alice(), Side::Bid, 50_000 * USD, COIN);
        // At 48500 alice's value 1475 is below her initial margin 2425 (above maintenance).
        c.oracle(48_500 * USD);
        let a = c.account(alice());
        assert_eq!(a.account_value, 1_475 * USD as i128);
        assert_eq!(a.initial_margin, 2_425 * USD);
        // Increasing is refused, so is a sell of more than the position.
        let sell =
            |c: &mut Chain, size| c.place(alice(), Side::Ask, 49_000 * USD, size, TimeInForce::Gtc);
        assert!(matches!(
            c.place(alice(), Side::Bid, 40_000 * USD, LOT, TimeInForce::Gtc),
            Err(L1Error::InsufficientMargin { .. })
        ));
        assert!(matches!(sell(&mut c, 2 * COIN), Err(L1Error::InsufficientMargin { .. })));
        // Selling (part of) the position is admitted.
        assert_eq!(sell(&mut c, COIN / 2).unwrap().resting, COIN / 2);
        assert_eq!(sell(&mut c, COIN / 2).unwrap().resting, COIN / 2);
        // The resting asks already close the position: one more would open a short.
        assert!(matches!(sell(&mut c, LOT), Err(L1Error::InsufficientMargin { .. })));
        // Selling below the mark loses at once; only as far as the account stays above zero.
        matching::cancel_all(&mut c.ctx(), &mut PerpSettlement, alice(), Some(BTC)).unwrap();
        assert!(matches!(
            c.place(alice(), Side::Ask, 47_000 * USD, COIN, TimeInForce::Gtc),
            Err(L1Error::InsufficientMargin { needed: 0, .. })
        ));
        assert_eq!(
            c.place(alice(), Side::Ask, 47_500 * USD, COIN, TimeInForce::Gtc).unwrap().resting,
            COIN
        );
    }

    #[test]
    fn stacked_resting_orders_cannot_open_an_unmargined_position() {
        let mut c = long_alice(3_000 * USD);
        c.fund(carol(), 1_000_000 * USD);
        // Alice is long 1 BTC with 2975 of value: room for about 0.1 BTC more of initial margin.
        let ask = |c: &mut Chain, price| c.place(alice(), Side::Ask, price, COIN, TimeInForce::Gtc);
        assert_eq!(ask(&mut c, 50_100 * USD).unwrap().resting, COIN);
        // A second 1 BTC ask would only ever open a 1 BTC short: it needs margin for it.
        assert!(matches!(ask(&mut c, 50_200 * USD), Err(L1Error::InsufficientMargin { .. })));
        // Bids are the other side: the ask does not reduce anything for them.
        assert!(matches!(
            c.place(alice(), Side::Bid, 40_000 * USD, COIN, TimeInForce::Gtc),
            Err(L1Error::InsufficientMargin { .. })
        ));
        // Both asks fill in the worst case only when both were margined: carol lifts the one.
        c.place(carol(), Side::Bid, 50_100 * USD, COIN, TimeInForce::Ioc).unwrap();
        assert_eq!(c.position(alice()).size, 0);
        assert_eq!(resting_sizes(&mut c.ctx(), alice(), BTC).unwrap(), (0, 0));
        // Flat now with 3075 of cash, a 1 BTC ask needs its full initial margin (2510).
        assert_eq!(ask(&mut c, 50_200 * USD).unwrap().resting, COIN);
        assert_eq!(resting_sizes(&mut c.ctx(), alice(), BTC).unwrap(), (0, COIN));
        assert!(matches!(ask(&mut c, 50_300 * USD), Err(L1Error::InsufficientMargin { .. })));
    }

    #[test]
    fn buying_far_above_the_mark_needs_margin_for_the_loss() {
        let mut c = Chain::new();
        c.oracle(50_000 * USD);
        c.fund(alice(), 5_000 * USD);
        c.fund(bob(), 1_000_000 * USD);
        // Bob's ask at twice the oracle; the mark stays within 1 % of the oracle.
        c.place(bob(), Side::Ask, 100_000 * USD, COIN / 10, TimeInForce::Gtc).unwrap();
        assert_eq!(oracle::mark_price(&mut c.ctx(), BTC).unwrap(), Some(50_000 * USD));
        // 0.1 BTC at 100000 needs only 500 of margin at the limit, but loses 5000 at once.
        assert!(matches!(
            c.place(alice(), Side::Bid, 100_000 * USD, COIN / 10, TimeInForce::Ioc),
            Err(L1Error::InsufficientMargin { .. })
        ));
        // At the mark the same size is admitted.
        c.place(bob(), Side::Ask, 50_000 * USD, COIN / 10, TimeInForce::Gtc).unwrap();
        assert_eq!(
            c.place(alice(), Side::Bid, 50_000 * USD, COIN / 10, TimeInForce::Ioc).unwrap().filled,
            COIN / 10
        );
    }

    #[test]
    fn a_market_order_closes_a_leveraged_position_on_a_book_at_the_mark() {
        let mut c = long_alice(3_000 * USD);
        // At 49,000 alice's value is 1,975 (4 % of the notional): under the initial margin and
        // under the market order's 5 % slippage bound, above maintenance.
        c.oracle(49_000 * USD);
        c.place(bob(), Side::Bid, 49_000 * USD, COIN, TimeInForce::Gtc).unwrap();
        assert_eq!(c.account(alice()).account_value, 1_975 * USD as i128);
        // The bound (46,550) is not where it trades: the bid at the mark fills it all.
        let out = c.place(alice(), Side::Ask, 0, COIN, TimeInForce::Market).unwrap();
        assert_eq!(out.filled, COIN);
        assert_eq!(c.position(alice()).size, 0);
        // 3,000 - 25 - 1,000 lost - 24.50 fee on 49,000.
        assert_eq!(c.cash(alice()), 1_950_500_000);

        // A market buy opening at 20x needs no more than its margin when the ask is at the mark.
        c.fund(carol(), 2_600 * USD);
        c.place(bob(), Side::Ask, 49_000 * USD, COIN, TimeInForce::Gtc).unwrap();
        let out = c.place(carol(), Side::Bid, 0, COIN, TimeInForce::Market).unwrap();
        assert_eq!(out.filled, COIN);
    }

    #[test]
    fn own_orders_cannot_hide_how_deep_an_order_trades() {
        let mut c = Chain::new();
        c.oracle(50_000 * USD);
        c.fund(alice(), 600 * USD);
        c.fund(bob(), 1_000_000 * USD);
        // Alice's own ask at the mark, bob's 10 % above it.
        c.place(alice(), Side::Ask, 50_000 * USD, COIN / 10, TimeInForce::Gtc).unwrap();
        c.place(bob(), Side::Ask, 55_000 * USD, COIN / 10, TimeInForce::Gtc).unwrap();
        // Her IOC buy cancels her own ask and takes bob's at 55,000: 500 lost at once, which
        // her 600 cannot carry beside 275 + 250 of margin.
        assert!(matches!(
            c.place(alice(), Side::Bid, 55_000 * USD, COIN / 10, TimeInForce::Ioc),
            Err(L1Error::InsufficientMargin { .. })
        ));
        // Without bob's ask the same order only meets her own, which is cancelled: no loss.
        matching::cancel_all(&mut c.ctx(), &mut PerpSettlement, bob(), Some(BTC)).unwrap();
        let out = c.place(alice(), Side::Bid, 55_000 * USD, COIN / 10, TimeInForce::Ioc).unwrap();
        assert_eq!(out.filled, 0);
        assert!(book::orders_of(&mut c.ctx(), alice()).unwrap().is_empty());
    }

    #[test]
    fn negative_cash_without_a_position_is_absorbed_at_the_end_of_the_block() {
        let mut c = long_alice(3_000 * USD);
        // Alice's value is 2975; she sells the whole coin at 47100, inside the 3000 she can
        // lose, to carol, paying the fee on 47100: 2975 - 2900 - 23.55 = 51.45 left.
        c.fund(carol(), 1_000_000 * USD);
        c.oracle(50_000 * USD);
        c.place(carol(), Side::Bid, 47_100 * USD, COIN, TimeInForce::Gtc).unwrap();
        c.place(alice(), Side::Ask, 47_100 * USD, COIN, TimeInForce::Ioc).unwrap();
        assert_eq!(c.position(alice()).size, 0);
        assert!(c.cash(alice()) > 0);
        assert!(!c.open().contains(&alice()));

        // Dave goes long with exactly enough, then the oracle falls 2 %: he closes at the new
        // mark and his cash ends below zero with no position left.
        let dave = user(0xa4);
        c.fund(dave, 2_600 * USD);
        c.place(carol(), Side::Ask, 50_000 * USD, COIN, TimeInForce::Gtc).unwrap();
        c.place(dave, Side::Bid, 50_000 * USD, COIN, TimeInForce::Ioc).unwrap();
        c.block = 2;
        c.oracle(47_400 * USD);
        c.place(carol(), Side::Bid, 47_400 * USD, COIN, TimeInForce::Gtc).unwrap();
        // 2600 - 25 - 2600 (the loss) - 23.70 fee.
        c.place(dave, Side::Ask, 47_400 * USD, COIN, TimeInForce::Ioc).unwrap();
        let debt = 25 * USD + 23_700_000;
        assert_eq!(c.position(dave).size, 0);
        assert_eq!(c.cash(dave), -(debt as i128));
        // Still in the open set, so the end-of-block step finds it.
        assert!(c.open().contains(&dave));
        let backstop_before = c.cash(backstop());
        c.end_block();
        assert_eq!(c.cash(dave), 0);
        assert!(!c.open().contains(&dave));
        assert_eq!(c.cash(backstop()), backstop_before - debt as i128);
        let logged = c.logs::<BadDebt>();
        assert_eq!(logged.len(), 1);
        assert_eq!((logged[0].user, logged[0].amount), (dave, U256::from(debt)));
        assert_eq!(bad_debt(&mut c.ctx()).unwrap(), debt);
        // The backstop's cash is negative with no position: it is in the open set too.
        assert!(c.open().contains(&backstop()));
    }

    #[test]
    fn positions_open_increase_reduce_close_and_flip() {
        let mut c = Chain::new();
        c.oracle(50_000 * USD);
        c.fund(alice(), 10_000 * USD);
        c.fund(bob(), 100_000 * USD);
        let start = 10_000 * USD as i128;
        let bob_start = 100_000 * USD as i128;

        // Bob's resting ask reserves order margin until it fills.
        c.place(bob(), Side::Ask, 50_000 * USD, COIN, TimeInForce::Gtc).unwrap();
        assert_eq!(c.account(bob()).order_margin, 2_500 * USD);
        c.place(alice(), Side::Bid, 50_000 * USD, COIN, TimeInForce::Ioc).unwrap();
        let f1 = fee(50_000 * USD);
        assert_eq!(c.account(bob()).order_margin, 0);
        assert_eq!(c.cash(alice()), start - 50_000 * USD as i128 - f1 as i128);
        assert_eq!(c.cash(bob()), bob_start + 50_000 * USD as i128);
        assert_eq!(c.spot_usd(fee_recipient()), f1);
        let p = c.position(alice());
        assert_eq!((p.size, p.entry_price, p.unrealized_pnl), (COIN as i128, 50_000 * USD, 0));
        assert_eq!(p.margin, 2_500 * USD);
        assert_eq!(c.position(bob()).size, -(COIN as i128));
        assert_eq!(c.open(), vec![alice(), bob()]);

        // Increase at 52000: entry price averages to 51000.
        c.trade(bob(), alice(), Side::Bid, 52_000 * USD, COIN);
        let f2 = fee(52_000 * USD);
        let p = c.position(alice());
        assert_eq!((p.size, p.entry_price), (2 * COIN as i128, 51_000 * USD));
        // Mark 50000 (empty book): 2 BTC worth 100000 against 102000 paid.
        assert_eq!(p.unrealized_pnl, -(2_000 * USD as i128));
        assert_eq!(c.position(bob()).entry_price, 51_000 * USD);

        // Reduce by half a coin at 53000: the entry price stays.
        c.trade(bob(), alice(), Side::Ask, 53_000 * USD, COIN / 2);
        let f3 = fee(26_500 * USD);
        let p = c.position(alice());
        assert_eq!((p.size, p.entry_price), (3 * COIN as i128 / 2, 51_000 * USD));
        let bob_p = c.position(bob());
        assert_eq!((bob_p.size, bob_p.entry_price), (-(3 * COIN as i128) / 2, 51_000 * USD));

        // Close at 54000: alice realized (53000-51000)*0.5 + (54000-51000)*1.5 = 5500 minus fees.
        c.trade(bob(), alice(), Side::Ask, 54_000 * USD, 3 * COIN / 2);
        let f4 = fee(81_000 * USD);
        assert_eq!(c.position(alice()), PositionView::default());
        assert_eq!(c.position(bob()), PositionView::default());
        let fees = (f1 + f2 + f3 + f4) as i128;
        assert_eq!(c.cash(alice()), start + 5_500 * USD as i128 - fees);
        assert_eq!(c.cash(bob()), bob_start - 5_500 * USD as i128);
        assert_eq!(c.account(alice()).account_value, c.cash(alice()));
        assert_eq!(c.spot_usd(fee_recipient()), fees as u128);
        assert!(c.open().is_empty());

        // Flip: long 1 at 50000, then sell 3 at 49000 -> short 2 entered at 49000.
        c.trade(bob(), alice(), Side::Bid, 50_000 * USD, COIN);
        c.trade(bob(), alice(), Side::Ask, 49_000 * USD, 3 * COIN);
        let p = c.position(alice());
        assert_eq!((p.size, p.entry_price), (-2 * COIN as i128, 49_000 * USD));
        let bob_p = c.position(bob());
        assert_eq!((bob_p.size, bob_p.entry_price), (2 * COIN as i128, 49_000 * USD));
        assert_eq!(c.open(), vec![alice(), bob()]);
        // Cash is conserved: the two accounts plus fees are what was put in.
        let total = c.cash(alice()) + c.cash(bob()) + c.spot_usd(fee_recipient()) as i128;
        assert_eq!(total, start + bob_start);
        assert_eq!(c.logs::<Liquidation>().len(), 0);
    }

    #[test]
    fn transfers_in_and_out_respect_the_withdrawable_value() {
        let mut c = Chain::new();
        c.oracle(50_000 * USD);
        assert_eq!(transfer(&mut c.ctx(), alice(), 0), Err(L1Error::ZeroAmount));
        assert!(matches!(
            transfer(&mut c.ctx(), alice(), 1),
            Err(L1Error::InsufficientBalance { asset: USD_ASSET, .. })
        ));
        spot::deposit(&mut c.ctx(), alice(), USD_ASSET, 10_000 * USD).unwrap();
        transfer(&mut c.ctx(), alice(), 6_000 * USD as i128).unwrap();
        assert_eq!(c.spot_usd(alice()), 4_000 * USD);
        assert_eq!(c.cash(alice()), 6_000 * USD as i128);
        c.fund(bob(), 100_000 * USD);
        c.trade(bob(), alice(), Side::Bid, 50_000 * USD, COIN);
        // Value 6000 - 25 fee, initial margin 2500: 3475 can leave.
        let over = -(3_475 * USD as i128) - 1;
        assert_eq!(
            transfer(&mut c.ctx(), alice(), over),
            Err(L1Error::InsufficientMargin {
                needed: 2_500 * USD + 3_475 * USD + 1,
                available: 5_975 * USD as i128
            })
        );
        // A resting order's margin is not withdrawable either.
        c.place(alice(), Side::Bid, 40_000 * USD, 10 * LOT, TimeInForce::Gtc).unwrap();
        assert!(transfer(&mut c.ctx(), alice(), -(3_475 * USD as i128)).is_err());
        transfer(&mut c.ctx(), alice(), -(3_455 * USD as i128)).unwrap();
        assert_eq!(c.spot_usd(alice()), 7_455 * USD);
        let a = c.account(alice());
        assert_eq!(a.account_value as u128, a.initial_margin);
        let events = c.logs::<PerpTransfer>();
        assert_eq!(events.last().unwrap().user, alice());
        assert_eq!(events.last().unwrap().amount, I256::try_from(-(3_455 * USD as i128)).unwrap());
    }

    /// Alice long `COIN` against bob (plenty of collateral) at 50000 with `collateral`.
    fn long_alice(collateral: u128) -> Chain {
        let mut c = Chain::new();
        c.oracle(50_000 * USD);
        c.fund(alice(), collateral);
        c.fund(bob(), 1_000_000 * USD);
        c.trade(bob(), alice(), Side::Bid, 50_000 * USD, COIN);
        c
    }

    #[test]
    fn funding_accrues_on_interval_blocks_and_settles_when_a_position_changes() {
        let mut c = Chain::new();
        c.oracle(50_003 * USD);
        for who in [alice(), bob(), carol()] {
            c.fund(who, 100_000 * USD);
        }
        c.fund(user(0xd0), 100_000 * USD);
        // Alice long 2 lots; bob and carol short 1 lot each.
        c.trade(bob(), alice(), Side::Bid, 50_003 * USD, LOT);
        c.trade(carol(), alice(), Side::Bid, 50_003 * USD, LOT);
        // A resting bid at 50004 and ask at 50010: mark = median(50003, 50004, 50010) = 50004.
        c.place(user(0xd0), Side::Bid, 50_004 * USD, LOT, TimeInForce::Gtc).unwrap();
        c.place(user(0xd0), Side::Ask, 50_010 * USD, LOT, TimeInForce::Gtc).unwrap();
        let before: Vec<i128> = [alice(), bob(), carol()].iter().map(|w| c.cash(*w)).collect();
        let fees_before = c.spot_usd(fee_recipient());
        c.block = 4;
        c.end_block();
        assert_eq!(c.logs::<Funding>().len(), 0);
        let after: Vec<i128> = [alice(), bob(), carol()].iter().map(|w| c.cash(*w)).collect();
        assert_eq!(before, after);

        // Block 5: rate = 1e6 / 50003 = 19.99 -> 19 ppm; a lot is worth 50.003 USD.
        c.end_block();
        let f = c.logs::<Funding>();
        assert_eq!(f.len(), 1);
        assert_eq!((f[0].market, f[0].ratePpm), (BTC, 19));
        assert_eq!((f[0].oraclePrice, f[0].markPrice), (50_003 * USD, 50_004 * USD));
        // The step visits no account for it: one index per market moves, by oracle × rate.
        assert_eq!(funding_index(&mut c.ctx(), BTC).unwrap(), i256(50_003 * USD as i128 * 19));
        // Accounts show it at once: alice owes ceil(100.006 USD * 19e-6) = 1901, each short is
        // owed floor(950.057) = 950. Nothing moved yet: the pool is empty.
        assert_eq!(c.cash(alice()), before[0] - 1_901);
        assert_eq!(c.cash(bob()), before[1] + 950);
        assert_eq!(c.cash(carol()), before[2] + 950);
        assert_eq!(funding_pool(&mut c.ctx()).unwrap(), 0);
        assert_eq!(c.spot_usd(fee_recipient()), fees_before);

        // Mark below the oracle: shorts pay longs.
        c.block = 10;
        c.oracle(50_020 * USD);
        c.end_block();
        let f = c.logs::<Funding>();
        // (50010 - 50020) * 1e6 / 50020 = -199.92 -> -199 ppm.
        assert_eq!(f[1].ratePpm, -199);
        // Both intervals settle as one amount, rounded once: a short lot owes
        // ceil(9953.98 - 950.057) = 9004 (paid 9954 and got 950 when rounded per interval);
        // alice is owed floor(19907.96 - 1900.114) = 18007.
        assert_eq!(c.cash(bob()), before[1] - 9_004);
        assert_eq!(c.cash(carol()), before[2] - 9_004);
        assert_eq!(c.cash(alice()), before[0] + 18_007);

        // Bob closes his short (buys d0's ask at 50010): his funding settles into the pool.
        let bob_before = c.cash(bob());
        c.place(bob(), Side::Bid, 50_010 * USD, LOT, TimeInForce::Ioc).unwrap();
        assert_eq!(c.position(bob()).size, 0);
        assert_eq!(funding_pool(&mut c.ctx()).unwrap(), 9_004);
        let paid = 50_010 * USD / 1_000 + fee(50_010 * USD / 1_000);
        assert_eq!(c.cash(bob()), bob_before - paid as i128);
        // Alice and carol settle as they close; the pool keeps the rounding: 2 × 9004 - 18007.
        c.place(alice(), Side::Ask, 50_004 * USD, LOT, TimeInForce::Ioc).unwrap();
        c.place(user(0xd0), Side::Ask, 50_004 * USD, LOT, TimeInForce::Gtc).unwrap();
        c.place(carol(), Side::Bid, 50_004 * USD, LOT, TimeInForce::Ioc).unwrap();
        c.trade(user(0xd0), alice(), Side::Ask, 50_004 * USD, LOT);
        assert_eq!((c.position(alice()).size, c.position(carol()).size), (0, 0));
        // D0 traded in and out after the last interval: it owes nothing.
        assert_eq!(funding_pool(&mut c.ctx()).unwrap(), 1);
    }

    #[test]
    fn settlement_and_end_of_block_touch_few_slots() {
        let mut c = long_alice(10_000 * USD);
        // Two lots rest, one fills: the maker keeps open orders (no bitmap change).
        c.place(bob(), Side::Ask, 50_000 * USD, 2 * LOT, TimeInForce::Gtc).unwrap();
        let maker_order = book::orders_of(&mut c.ctx(), bob()).unwrap()[0];
        let fill = Fill {
            market: BTC,
            taker: alice(),
            taker_order: 999,
            taker_side: Side::Bid,
            maker: bob(),
            maker_order,
            price: 50_000 * USD,
            size: LOT,
        };
        let mut metered = Metered::new(&mut c.mem);
        PerpSettlement.settle(&mut Ctx::new(&mut metered, &c.config, c.block), &fill).unwrap();
        // Cash, position and funding snapshot of both sides, the market's funding index (for
        // each side), the maker's open notional, the fee balance.
        assert_eq!((metered.reads(), metered.creates + metered.updates), (10, 6));

        let eob_reads = |c: &mut Chain| {
            let mut snapshot = c.mem.clone();
            let mut metered = Metered::new(&mut snapshot);
            end_of_block(&mut Ctx::new(&mut metered, &c.config, c.block)).unwrap();
            metered.reads()
        };
        let two = eob_reads(&mut c);
        c.fund(carol(), 10_000 * USD);
        c.fund(user(0xd0), 10_000 * USD);
        // Below bob's resting ask, which the direct settle above left on the book.
        c.trade(carol(), user(0xd0), Side::Ask, 49_000 * USD, LOT);
        assert_eq!(c.open().len(), 4);
        // Per open account with one position: its set entry, cash (its index checked, then its
        // value), position bitmap, position and the position's funding snapshot.
        assert_eq!(eob_reads(&mut c) - two, 2 * 6);
    }

    #[test]
    fn no_funding_without_a_fresh_oracle() {
        let mut c = long_alice(10_000 * USD);
        let cash = c.cash(alice());
        c.block = 15;
        c.end_block();
        assert_eq!(c.cash(alice()), cash);
        assert!(c.logs::<Funding>().is_empty());
    }

    #[test]
    fn liquidation_below_maintenance_only() {
        // Value at p: 3000 - 25 - 50000 + p; maintenance 0.025 p. Liquidation below ~48230.
        let mut c = long_alice(3_000 * USD);
        // A resting order of alice's, cancelled by the liquidation below.
        c.place(alice(), Side::Bid, 30_000 * USD, LOT, TimeInForce::Gtc).unwrap();
        c.block = 2;
        c.oracle(48_500 * USD);
        c.end_block();
        assert!(c.logs::<Liquidation>().is_empty());
        assert_eq!(c.position(alice()).size, COIN as i128);
        assert_eq!(clearinghouse_block(&mut c), 2);

        c.oracle(48_000 * USD);
        c.end_block();
        let liq = c.logs::<Liquidation>();
        assert_eq!(liq.len(), 1);
        assert_eq!((liq[0].user, liq[0].market, liq[0].size), (alice(), BTC, COIN as i128));
        assert_eq!(liq[0].markPrice, 48_000 * USD);
        assert_eq!(c.position(alice()), PositionView::default());
        assert_eq!(c.cash(alice()), 975 * USD as i128);
        assert_eq!(c.account(alice()).order_margin, 0);
        assert!(book::orders_of(&mut c.ctx(), alice()).unwrap().is_empty());
        let b = c.position(backstop());
        assert_eq!((b.size, b.entry_price), (COIN as i128, 48_000 * USD));
        assert_eq!(c.cash(backstop()), -(48_000 * USD as i128));
        assert!(c.logs::<BadDebt>().is_empty());
        assert_eq!(c.open(), vec![bob(), backstop()]);
    }

    fn clearinghouse_block(c: &mut Chain) -> u64 {
        l1_block_number(&mut c.ctx()).unwrap()
    }

    #[test]
    fn bad_debt_is_absorbed_by_the_backstop() {
        let mut c = long_alice(3_000 * USD);
        c.block = 2;
        c.oracle(47_000 * USD);
        c.end_block();
        assert_eq!(c.position(alice()), PositionView::default());
        // Value 3000 - 25 - 3000 = -25: the backstop pays it.
        assert_eq!(c.cash(alice()), 0);
        assert_eq!(c.cash(backstop()), -(47_000 * USD as i128) - 25 * USD as i128);
        let debt = c.logs::<BadDebt>();
        assert_eq!(debt.len(), 1);
        assert_eq!((debt[0].user, debt[0].amount), (alice(), U256::from(25 * USD)));
        assert_eq!(bad_debt(&mut c.ctx()).unwrap(), 25 * USD);
        // Alice left the set last (after the backstop joined it): swap-remove order.
        assert_eq!(c.open(), vec![backstop(), bob()]);
        // The stored mark serves once the oracle is stale.
        c.block = 30;
        assert_eq!(oracle::mark_price(&mut c.ctx(), BTC).unwrap(), Some(47_000 * USD));
        assert_eq!(c.position(backstop()).unrealized_pnl, 0);
    }

    /// Loads of a store, in order.
    struct Recorder<'a> {
        mem: &'a mut MemStore,
        loads: Vec<B256>,
    }

    impl Store for Recorder<'_> {
        fn load(&mut self, key: B256) -> Result<U256, StoreError> {
            self.loads.push(key);
            self.mem.load(key)
        }

        fn store(&mut self, key: B256, value: U256) -> Result<(), StoreError> {
            self.mem.store(key, value)
        }

        fn emit(&mut self, log: alloy_primitives::LogData) {
            self.mem.emit(log);
        }
    }

    /// The `i`-th of many traders.
    fn many(i: u32) -> Address {
        Address::left_padding_from(&(0x0100_0000 + i).to_be_bytes())
    }

    /// A chain whose step examines 16 accounts per block (4 watched, 12 to 16 swept), with
    /// `pairs` pairs of traders long and short one lot at 50,000 (10,000 USD each: healthy).
    fn crowded(pairs: u32) -> Chain {
        let mut c = Chain::new();
        c.config.end_of_block_accounts = 16;
        c.oracle(50_000 * USD);
        for i in 0..pairs {
            let (short, long) = (many(2 * i), many(2 * i + 1));
            c.fund(short, 10_000 * USD);
            c.fund(long, 10_000 * USD);
            c.trade(short, long, Side::Bid, 50_000 * USD, LOT);
        }
        c
    }

    impl Chain {
        /// Runs the step on block `self.block` with fresh oracle prices at `price`; returns the
        /// accounts it examined (whose position bitmap it read), in order.
        fn step_at(&mut self, price: u128) -> Vec<Address> {
            self.oracle(price);
            let mut recorder = Recorder { mem: &mut self.mem, loads: Vec::new() };
            end_of_block(&mut Ctx::new(&mut recorder, &self.config, self.block)).unwrap();
            self.block += 1;
            recorder
                .loads
                .iter()
                .filter(|k| k[0] == Ns::PerpAccount as u8 && k[31] == POSITIONS_FIELD)
                .map(|k| Address::from_slice(&k[1..21]))
                .collect()
        }
    }

    #[test]
    fn one_step_examines_at_most_its_budget_whatever_the_open_set_size() {
        let reads = |pairs: u32| {
            let mut c = crowded(pairs);
            assert_eq!(c.open().len() as u32, 2 * pairs);
            let mut mem = c.mem.clone();
            let mut metered = Metered::new(&mut mem);
            end_of_block(&mut Ctx::new(&mut metered, &c.config, c.block)).unwrap();
            let examined = c.step_at(50_000 * USD);
            assert_eq!(examined.len(), 16, "{pairs} pairs");
            metered.reads()
        };
        // 40 and 400 open accounts: the same work, as for 4 million.
        assert_eq!(reads(20), reads(200));
    }

    #[test]
    fn the_sweep_resumes_next_block_and_covers_every_account() {
        let mut c = crowded(50);
        let accounts: BTreeSet<Address> = c.open().into_iter().collect();
        let mut seen = BTreeSet::new();
        let mut cursors = Vec::new();
        // 100 accounts, 16 per block: one round takes 7 blocks.
        for block in 0..7 {
            let examined = c.step_at(50_000 * USD);
            assert!(examined.len() <= 16);
            // No account twice in one step, none twice in one round.
            assert!(examined.iter().all(|a| seen.insert(*a)), "block {block}");
            cursors.push(end_of_block_cursor(&mut c.ctx()).unwrap());
            if block == 2 {
                // Accounts come and go mid-round: two pairs examined already and two not yet
                // close (swap-removal moves members), and a new pair opens (appended).
                for pair in [0, 1, 40, 41] {
                    c.trade(many(2 * pair), many(2 * pair + 1), Side::Ask, 50_000 * USD, LOT);
                }
                c.fund(many(1_000), 10_000 * USD);
                c.fund(many(1_001), 10_000 * USD);
                c.trade(many(1_000), many(1_001), Side::Bid, 50_000 * USD, LOT);
            }
        }
        assert_eq!(cursors, vec![16, 32, 48, 60, 76, 92, 94]);
        let closed: BTreeSet<Address> =
            [0, 1, 2, 3, 80, 81, 82, 83].into_iter().map(many).collect();
        let stayed: BTreeSet<Address> = &accounts - &closed;
        let opened = BTreeSet::from([many(1_000), many(1_001)]);
        // Every account open for the whole round was examined in it, and so were the new ones.
        assert!(stayed.is_subset(&seen), "missed: {:?}", &stayed - &seen);
        assert!(opened.is_subset(&seen));
        // The next block starts the next round from the first member.
        let next = c.step_at(50_000 * USD);
        assert_eq!(next.first(), c.open().first());
        assert_eq!(end_of_block_cursor(&mut c.ctx()).unwrap(), 16);
    }

    #[test]
    fn a_liquidatable_account_is_liquidated_within_the_bound() {
        // 200 healthy accounts, then alice (long 1 BTC with 3,000) last in the set.
        let mut c = crowded(100);
        c.fund(alice(), 3_000 * USD);
        c.fund(bob(), 1_000_000 * USD);
        c.trade(bob(), alice(), Side::Bid, 50_000 * USD, COIN);
        let n = c.open().len() as u64;
        // The budget's sweep share is at least 12 of 16: every account is examined within
        // ceil(n / 12) + 2 blocks of any block.
        let bound = n.div_ceil(12) + 2;
        c.step_at(50_000 * USD);
        // Alice falls below maintenance at 48,000.
        let mut blocks = 0;
        while c.position(alice()).size != 0 {
            blocks += 1;
            assert!(blocks <= bound, "not liquidated within {bound} blocks");
            c.step_at(48_000 * USD);
        }
        // The step is bounded: it did not reach her at once.
        assert!(blocks > 1, "liquidated in {blocks} blocks");
        let liq = c.logs::<Liquidation>();
        assert_eq!((liq.len(), liq[0].user), (1, alice()));
    }

    #[test]
    fn an_account_below_its_initial_margin_is_watched_every_block() {
        let mut c = crowded(100);
        c.fund(alice(), 3_000 * USD);
        c.fund(bob(), 1_000_000 * USD);
        c.trade(bob(), alice(), Side::Bid, 50_000 * USD, COIN);
        // At 48,500 alice is below her initial margin (2,425), above maintenance: the sweep
        // puts her on the watch list when it reaches her.
        let mut blocks = 0;
        while watch_list(&mut c.ctx(), 4).unwrap() != vec![alice()] {
            blocks += 1;
            assert!(blocks < 30);
            c.step_at(48_500 * USD);
        }
        // The sweep starts its next round far from her; she is checked every block before it.
        for _ in 0..3 {
            let examined = c.step_at(48_500 * USD);
            assert_eq!(examined[0], alice());
            assert_eq!(examined.len(), 16);
        }
        assert!(end_of_block_cursor(&mut c.ctx()).unwrap() < 50);
        // The price falls: the very next step liquidates her, then she leaves the list.
        let examined = c.step_at(48_000 * USD);
        assert_eq!(examined[0], alice());
        assert_eq!(c.position(alice()).size, 0);
        assert!(watch_list(&mut c.ctx(), 4).unwrap().is_empty());
        assert_eq!(c.logs::<Liquidation>().len(), 1);
        // An account back above its initial margin leaves the list too: carol at 48,500.
        c.fund(carol(), 3_000 * USD);
        c.trade(bob(), carol(), Side::Bid, 48_500 * USD, COIN);
        c.block += 1;
        while watch_list(&mut c.ctx(), 4).unwrap() != vec![carol()] {
            c.step_at(47_000 * USD);
        }
        c.step_at(48_500 * USD);
        assert!(watch_list(&mut c.ctx(), 4).unwrap().is_empty());
    }

    /// State overrides can forge any slot: the step refuses a malformed open set or watch list
    /// with an error after bounded work, and never sizes anything from a stored count.
    #[test]
    fn a_forged_open_set_or_watch_list_is_an_error_after_bounded_work() {
        let forged = |slots: &[(B256, U256)]| {
            let mut c = crowded(3);
            for &(k, v) in slots {
                c.mem.store(k, v).unwrap();
            }
            let mut metered = Metered::new(&mut c.mem);
            let result = end_of_block(&mut Ctx::new(&mut metered, &c.config, c.block));
            assert!(metered.reads() < 200, "{} reads", metered.reads());
            result.map_err(|e| e.to_string())
        };
        let count = open_key(0, OPEN_COUNT_FIELD);
        // A count a chain could hold, but members that do not say they are members.
        let err = forged(&[(count, U256::from(MAX_OPEN_ACCOUNTS))]).unwrap_err();
        assert!(err.contains("member 7") && err.contains("has index 0"), "{err}");
        let err = forged(&[(count, U256::from(1u64) << 50)]).unwrap_err();
        assert!(err.contains("corrupt open set: count"), "{err}");
        let err = forged(&[(open_key(0, CURSOR_FIELD), U256::from(7))]).unwrap_err();
        assert!(err.contains("sweep cursor 7 past the count 6"), "{err}");
        for n in [U256::from(5), U256::from(u64::MAX), U256::MAX] {
            let err = forged(&[(watch_key(0), n)]).unwrap_err();
            assert!(err.contains("above its capacity 4"), "{err}");
        }
        // A member listed twice (the taker joined first; the copy's stored index is 1).
        let err = forged(&[(open_key(2, OPEN_MEMBER_FIELD), address_value(many(1)))]).unwrap_err();
        assert!(err.contains("member 2") && err.contains("has index 1"), "{err}");
        // A watched address that is not open is dropped, not an error.
        forged(&[(watch_key(0), U256::from(1)), (watch_key(1), address_value(carol()))]).unwrap();
    }

    #[test]
    fn a_forged_order_cycle_of_a_liquidated_account_is_an_error_not_a_hang() {
        let mut c = long_alice(3_000 * USD);
        c.place(alice(), Side::Bid, 30_000 * USD, LOT, TimeInForce::Gtc).unwrap();
        c.place(alice(), Side::Bid, 31_000 * USD, LOT, TimeInForce::Gtc).unwrap();
        let ids = book::orders_of(&mut c.ctx(), alice()).unwrap();
        book::forge_account_next(&mut c.ctx(), ids[1], ids[0]);
        c.block = 2;
        c.oracle(48_000 * USD);
        let err = end_of_block(&mut c.ctx()).unwrap_err().to_string();
        assert!(err.contains("corrupt order book"), "{err}");
    }

    #[test]
    fn dust_orders_and_dust_positions_are_refused_closing_is_not() {
        let mut c = Chain::new();
        // 100 USD: two lots at 50,000.
        c.config.markets[BTC as usize].min_notional = Some(100 * USD);
        c.oracle(50_000 * USD);
        c.fund(alice(), 10_000 * USD);
        c.fund(bob(), 100_000 * USD);
        let min = 100 * USD;
        assert_eq!(
            c.place(alice(), Side::Bid, 50_000 * USD, LOT, TimeInForce::Gtc),
            Err(L1Error::OrderBelowMinNotional { notional: 50 * USD, min })
        );
        // A market order's notional is at its slippage bound (5 % under the best bid).
        c.place(bob(), Side::Bid, 50_000 * USD, 10 * LOT, TimeInForce::Gtc).unwrap();
        assert_eq!(
            c.place(alice(), Side::Ask, 0, 2 * LOT, TimeInForce::Market),
            Err(L1Error::OrderBelowMinNotional { notional: 95 * USD, min })
        );
        matching::cancel_all(&mut c.ctx(), &mut PerpSettlement, bob(), Some(BTC)).unwrap();
        c.trade(bob(), alice(), Side::Bid, 50_000 * USD, 3 * LOT);
        // Reducing 3 lots to 1 would leave 50 USD.
        assert_eq!(
            c.place(alice(), Side::Ask, 50_000 * USD, 2 * LOT, TimeInForce::Gtc),
            Err(L1Error::PositionBelowMinNotional { notional: 50 * USD, min })
        );
        // Flipping to a 1-lot short likewise.
        assert!(matches!(
            c.place(alice(), Side::Ask, 50_000 * USD, 4 * LOT, TimeInForce::Gtc),
            Err(L1Error::PositionBelowMinNotional { .. })
        ));
        // The minimum grows (a chain's config is fixed; a test's may change): the 150 USD
        // position is below it now, and closing it is still allowed, with an order below it.
        c.config.markets[BTC as usize].min_notional = Some(1_000 * USD);
        c.trade(bob(), alice(), Side::Ask, 50_000 * USD, 3 * LOT);
        assert_eq!(c.position(alice()).size, 0);
        assert_eq!(c.position(bob()).size, 0);

        // Spot: a resting order below the minimum is refused, at the minimum admitted.
        let mut c = Chain::new();
        c.config.markets[0].min_notional = Some(10 * USD);
        spot::deposit(&mut c.ctx(), alice(), USD_ASSET, 1_000 * USD).unwrap();
        let eth_lot = 1_000_000_000_000_000;
        let bid = |c: &mut Chain, lots: u128| {
            let req = OrderRequest {
                market: 0,
                side: Side::Bid,
                price: 3_000 * USD,
                size: lots * eth_lot,
                tif: TimeInForce::Gtc,
                cloid: 0,
            };
            matching::place(&mut c.ctx(), &mut spot::SpotSettlement, alice(), &req)
        };
        assert_eq!(
            bid(&mut c, 3),
            Err(L1Error::OrderBelowMinNotional { notional: 9 * USD, min: 10 * USD })
        );
        assert_eq!(bid(&mut c, 4).unwrap().resting, 4 * eth_lot);
    }
}
