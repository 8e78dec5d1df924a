//! Whole-engine property tests: random sequences of every action (spot and perp: deposits,
//! withdrawals, orders of every time in force, cancels, perp transfers, oracle posts), with
//! end-of-block steps over advancing blocks and moving oracle prices.
//!
//! After every action: each asset is conserved (spot totals, plus perp cash and the funding pool
//! for the collateral, equal deposits minus withdrawals), holds match resting orders and never exceed totals, the
//! books are consistent, perp positions net to zero, the open-accounts set is exactly the
//! accounts with a position or negative cash, order margins and resting sizes per side match
//! resting perp orders, and a refused action changed nothing. After every end-of-block step no
//! account but the backstop has negative cash without a position.

use std::collections::{BTreeMap, BTreeSet};

use alloy_primitives::Address;
use alloy_sol_types::SolEvent;
use proptest::prelude::*;

use super::{
    Ctx, book,
    clearinghouse::{self, PerpSettlement},
    config::{L1Config, test_config},
    error::L1Result,
    events, matching, oracle,
    order::{OrderRequest, Resting, Side, TimeInForce},
    spot::{self, SpotSettlement},
    store::{MemStore, Ns, Store, to_signed, unpack},
};

/// The engine's entry points, dispatched by market kind as the write contract's are.
mod engine {
    use alloy_primitives::Address;

    use super::*;

    pub(super) fn place_order<S: Store>(
        ctx: &mut Ctx<'_, S>,
        user: Address,
        request: &OrderRequest,
    ) -> L1Result<()> {
        if request.market == SPOT {
            matching::place(ctx, &mut SpotSettlement, user, request).map(|_| ())
        } else {
            matching::place(ctx, &mut PerpSettlement, user, request).map(|_| ())
        }
    }

    pub(super) fn cancel_order<S: Store>(
        ctx: &mut Ctx<'_, S>,
        user: Address,
        market: u32,
        id: u64,
    ) -> L1Result<()> {
        if market == SPOT {
            matching::cancel(ctx, &mut SpotSettlement, user, market, id).map(|_| ())
        } else {
            matching::cancel(ctx, &mut PerpSettlement, user, market, id).map(|_| ())
        }
    }

    pub(super) fn cancel_by_cloid<S: Store>(
        ctx: &mut Ctx<'_, S>,
        user: Address,
        market: u32,
        cloid: u128,
    ) -> L1Result<()> {
        if market == SPOT {
            matching::cancel_by_cloid(ctx, &mut SpotSettlement, user, market, cloid).map(|_| ())
        } else {
            matching::cancel_by_cloid(ctx, &mut PerpSettlement, user, market, cloid).map(|_| ())
        }
    }

    pub(super) use super::{
        clearinghouse::{end_of_block, transfer as perp_transfer},
        oracle::post as post_oracle_price,
        spot::{deposit, withdraw},
    };
}

const ETH: u32 = 0;
const USD: u32 = 1;
const SPOT: u32 = 0;
const PERP: u32 = 1;
/// One dollar in USD units.
const DOLLAR: u128 = 1_000_000;
/// The spot lot: 0.001 ETH.
const ETH_LOT: u128 = 1_000_000_000_000_000;
/// The perp lot: 0.001 BTC.
const BTC_LOT: u128 = 100_000;

fn trader(i: u8) -> Address {
    Address::repeat_byte(0x11 + i)
}

fn publisher(i: u8) -> Address {
    // 0xb1..=0xb3 publish; 0xb4 is refused.
    Address::with_last_byte(0xb1 + i)
}

#[derive(Debug, Clone)]
enum Op {
    Deposit { who: u8, asset: u32, amount: u128 },
    Withdraw { who: u8, asset: u32, amount: u128 },
    Place { who: u8, market: u32, buy: bool, offset: i64, lots: u128, tif: u8, cloid: u128 },
    Cancel { who: u8, owner: u8, market: u32, pick: usize },
    CancelCloid { who: u8, market: u32, cloid: u128 },
    Transfer { who: u8, permille: i128 },
    Post { who: u8, percent: i64, jitter: u128 },
    EndOfBlocks { blocks: u64 },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        3 => (0..4u8, 0..2u32, 1..5_000u128, 0..1_000u128).prop_map(|(who, asset, units, odd)| {
            // Up to 5 ETH or 25,000 USD, with odd amounts.
            let amount = if asset == ETH { units * ETH_LOT + odd } else { units * 5 * DOLLAR + odd };
            Op::Deposit { who, asset, amount }
        }),
        1 => (0..4u8, 0..2u32, 1..2_000u128).prop_map(|(who, asset, units)| {
            let amount = if asset == ETH { units * ETH_LOT } else { units * 5 * DOLLAR };
            Op::Withdraw { who, asset, amount }
        }),
        10 => (0..4u8, 0..2u32, any::<bool>(), -10..=10i64, 1..=1_000u128, 0..4u8, 0..3u128)
            .prop_map(|(who, market, buy, offset, lots, tif, cloid)| Op::Place {
                who, market, buy, offset, lots, tif, cloid
            }),
        2 => (0..4u8, 0..4u8, 0..2u32, any::<usize>())
            .prop_map(|(who, owner, market, pick)| Op::Cancel { who, owner, market, pick }),
        1 => (0..4u8, 0..2u32, 1..3u128)
            .prop_map(|(who, market, cloid)| Op::CancelCloid { who, market, cloid }),
        3 => (0..4u8, -1_100..=1_100i128).prop_map(|(who, permille)| Op::Transfer { who, permille }),
        3 => (0..4u8, -30..=30i64, 0..3_000_000u128)
            .prop_map(|(who, percent, jitter)| Op::Post { who, percent, jitter }),
        2 => (1..=6u64).prop_map(|blocks| Op::EndOfBlocks { blocks }),
    ]
}

/// The chain under test.
struct World {
    config: L1Config,
    mem: MemStore,
    block: u64,
    /// The last posted perp price (orders are placed around it), in USD units per BTC.
    perp_price: u128,
}

impl World {
    /// Four traders with 10 ETH and 100,000 USD (5,000 of it in perps), the oracle at 50,000;
    /// the end-of-block step examines `budget` open accounts per block.
    fn new(budget: u32) -> Self {
        let mut config = test_config();
        config.end_of_block_accounts = budget;
        let mut w =
            Self { config, mem: MemStore::default(), block: 1, perp_price: 50_000 * DOLLAR };
        let mut ctx = w.ctx();
        for i in 0..4 {
            engine::deposit(&mut ctx, trader(i), ETH, 10_000 * ETH_LOT).unwrap();
            engine::deposit(&mut ctx, trader(i), USD, 100_000 * DOLLAR).unwrap();
            engine::perp_transfer(&mut ctx, trader(i), 5_000 * DOLLAR as i128).unwrap();
        }
        for i in 0..3 {
            engine::post_oracle_price(&mut ctx, publisher(i), PERP, 50_000 * DOLLAR).unwrap();
        }
        w
    }

    fn ctx(&mut self) -> Ctx<'_, MemStore> {
        Ctx::new(&mut self.mem, &self.config, self.block)
    }

    fn apply(&mut self, op: &Op) -> L1Result<()> {
        let perp_price = self.perp_price;
        let block = self.block;
        let mut ctx = Ctx::new(&mut self.mem, &self.config, block);
        match *op {
            Op::Deposit { who, asset, amount } => {
                engine::deposit(&mut ctx, trader(who), asset, amount)
            }
            Op::Withdraw { who, asset, amount } => {
                engine::withdraw(&mut ctx, trader(who), asset, amount)
            }
            Op::Place { who, market, buy, offset, lots, tif, cloid } => {
                let (center, step, lot) = if market == SPOT {
                    // 3000 USD per ETH, $1 steps; 0.001 to 1 ETH.
                    (3_000 * DOLLAR, DOLLAR, ETH_LOT)
                } else {
                    // Around the last oracle post, $25 steps; 0.001 to 1 BTC.
                    (perp_price, 25 * DOLLAR, BTC_LOT)
                };
                let price =
                    center.saturating_add_signed(i128::from(offset) * step as i128).max(DOLLAR);
                let request = OrderRequest {
                    market,
                    side: Side::from_is_buy(buy),
                    price,
                    size: lots * lot,
                    tif: TimeInForce::from_u8(tif).expect("tif 0..4"),
                    cloid,
                };
                engine::place_order(&mut ctx, trader(who), &request)
            }
            Op::Cancel { who, owner, market, pick } => {
                let ids = book::orders_of(&mut ctx, trader(owner))?;
                let id = if ids.is_empty() { 999_999 } else { ids[pick % ids.len()] };
                engine::cancel_order(&mut ctx, trader(who), market, id)
            }
            Op::CancelCloid { who, market, cloid } => {
                engine::cancel_by_cloid(&mut ctx, trader(who), market, cloid)
            }
            Op::Transfer { who, permille } => {
                // In: a share of the free spot USD; out: a share of the cash (a little over
                // 100% either way, to be refused sometimes).
                let base = if permille > 0 {
                    let (total, hold) = spot::balance(&mut ctx, trader(who), USD)?;
                    i128::try_from(total - hold).unwrap_or(i128::MAX)
                } else {
                    clearinghouse::account(&mut ctx, trader(who))?.cash.max(DOLLAR as i128)
                };
                engine::perp_transfer(&mut ctx, trader(who), base / 1_000 * permille)
            }
            Op::Post { who, percent, jitter } => {
                let price = (50_000 * DOLLAR)
                    .saturating_add_signed(i128::from(percent) * 500 * DOLLAR as i128)
                    + jitter;
                let result = engine::post_oracle_price(&mut ctx, publisher(who), PERP, price);
                if result.is_ok() {
                    self.perp_price = price - price % DOLLAR;
                }
                result
            }
            Op::EndOfBlocks { blocks } => {
                for b in block..block + blocks {
                    let mut ctx = Ctx::new(&mut self.mem, &self.config, b);
                    engine::end_of_block(&mut ctx).expect("the end-of-block step never fails");
                }
                self.block = block + blocks;
                Ok(())
            }
        }
    }
}

fn decode_all<E: SolEvent>(mem: &MemStore) -> Vec<E> {
    mem.logs.iter().filter_map(|l| E::decode_log_data(l).ok()).collect()
}

/// Every invariant of the whole engine; panics on the first violation. `steps`: the end-of-block
/// steps that just ran (0 after an action).
fn check_invariants(w: &mut World, steps: u64) {
    let config = w.config.clone();
    // Scan all slots: funds anywhere count, whoever holds them.
    let mut spot_sum: BTreeMap<u32, u128> = BTreeMap::new();
    let mut cash_sum: i128 = 0;
    let mut cash_of: BTreeMap<Address, i128> = BTreeMap::new();
    let mut sizes: BTreeMap<(Address, u32), i128> = BTreeMap::new();
    let mut holders = BTreeSet::new();
    for (k, v) in &w.mem.slots {
        let addr = Address::from_slice(&k[1..21]);
        let a = u64::from_be_bytes(k[21..29].try_into().unwrap());
        let field = k[31];
        if k[0] == Ns::Balance as u8 {
            let (total, hold) = unpack(*v);
            assert!(hold <= total, "hold {hold} above total {total} of {addr}");
            *spot_sum.entry(a as u32).or_default() += total;
            holders.insert(addr);
        } else if k[0] == Ns::PerpAccount as u8 && field == 0 {
            cash_sum += to_signed(unpack(*v).1);
            cash_of.insert(addr, to_signed(unpack(*v).1));
            holders.insert(addr);
        } else if k[0] == Ns::Globals as u8 && field == 3 {
            // The funding pool: settled funding not yet paid out, and the payers' rounding.
            cash_sum += to_signed(unpack(*v).1);
        } else if k[0] == Ns::Position as u8 && field == 0 {
            let size = to_signed(unpack(*v).0);
            if size != 0 {
                sizes.insert((addr, a as u32), size);
            }
        }
    }
    let mut ctx = w.ctx();
    for asset in [ETH, USD] {
        let (deposited, withdrawn) = spot::totals(&mut ctx, asset).unwrap();
        let mut sum = i128::try_from(spot_sum.get(&asset).copied().unwrap_or(0)).unwrap();
        if Some(asset) == config.collateral {
            sum += cash_sum;
        }
        assert_eq!(
            sum,
            i128::try_from(deposited - withdrawn).unwrap(),
            "asset {asset} not conserved"
        );
    }

    // Books, and what their resting orders reserve.
    let mut orders: Vec<Resting> = book::assert_consistent(&mut ctx, SPOT);
    orders.extend(book::assert_consistent(&mut ctx, PERP));
    let accounts: BTreeSet<Address> = (0..4)
        .map(trader)
        .chain([config.fee_recipient, config.backstop])
        .chain(holders)
        .chain(sizes.keys().map(|(a, _)| *a))
        .collect();
    for who in &accounts {
        let mine: Vec<&Resting> = orders.iter().filter(|o| o.owner == *who).collect();
        let mut ids: Vec<u64> = mine.iter().map(|o| o.id).collect();
        ids.sort_unstable();
        assert_eq!(book::orders_of(&mut ctx, *who).unwrap(), ids, "order set of {who}");
        let notional = |o: &&Resting| config.notional(o.market, o.price, o.remaining).unwrap();
        let spot_quote: u128 =
            mine.iter().filter(|o| o.market == SPOT && o.side == Side::Bid).map(notional).sum();
        let spot_base: u128 = mine
            .iter()
            .filter(|o| o.market == SPOT && o.side == Side::Ask)
            .map(|o| o.remaining)
            .sum();
        assert_eq!(spot::balance(&mut ctx, *who, ETH).unwrap().1, spot_base, "ETH hold of {who}");
        assert_eq!(spot::balance(&mut ctx, *who, USD).unwrap().1, spot_quote, "USD hold of {who}");
        let perp_open: u128 = mine.iter().filter(|o| o.market == PERP).map(notional).sum();
        let side_size = |side| -> u128 {
            mine.iter().filter(|o| o.market == PERP && o.side == side).map(|o| o.remaining).sum()
        };
        assert_eq!(
            clearinghouse::resting_sizes(&mut ctx, *who, PERP).unwrap(),
            (side_size(Side::Bid), side_size(Side::Ask)),
            "resting perp sizes of {who}"
        );
        let account = clearinghouse::account(&mut ctx, *who).unwrap();
        assert_eq!(account.order_margin, perp_open.div_ceil(20), "order margin of {who}");
        let listed: Vec<(u32, i128)> =
            account.positions.iter().map(|(m, p)| (*m, p.size)).collect();
        let want: Vec<(u32, i128)> =
            sizes.iter().filter(|((a, _), _)| a == who).map(|((_, m), s)| (*m, *s)).collect();
        assert_eq!(listed, want, "positions of {who}");
    }

    // Positions net to zero; the open set is exactly the accounts with one or with debt.
    let net: i128 = sizes.values().sum();
    assert_eq!(net, 0, "perp positions do not net to zero");
    let open = clearinghouse::open_accounts(&mut ctx).unwrap();
    let open_set: BTreeSet<Address> = open.iter().copied().collect();
    assert_eq!(open.len(), open_set.len(), "duplicate in the open set");
    let with_positions: BTreeSet<Address> = sizes.keys().map(|(a, _)| *a).collect();
    let in_debt: BTreeSet<Address> =
        cash_of.iter().filter(|(_, c)| **c < 0).map(|(a, _)| *a).collect();
    assert_eq!(open_set, &with_positions | &in_debt, "open set");
    // The sweep's cursor lies within the set (reading it checks that).
    let cursor = clearinghouse::end_of_block_cursor(&mut ctx).unwrap();
    assert!(cursor as usize <= open.len());
    // Every open account is examined within ceil(n / sweep) + 2 steps, the sweep taking at
    // least three quarters of the budget.
    let sweep = u64::from(config.end_of_block_accounts) * 3 / 4;
    if steps >= (open.len() as u64).div_ceil(sweep) + 2 {
        let unnoticed: Vec<&Address> = in_debt
            .iter()
            .filter(|a| !with_positions.contains(*a) && **a != config.backstop)
            .collect();
        assert!(
            unnoticed.is_empty(),
            "negative cash without a position after the step: {unnoticed:?}"
        );
    }
}

fn run(ops: &[Op], budget: u32) -> Result<(), TestCaseError> {
    let mut w = World::new(budget);
    for op in ops {
        let before = w.mem.clone();
        if let Err(e) = w.apply(op) {
            prop_assert_eq!(&w.mem.slots, &before.slots, "refused {:?} ({}) changed state", op, e);
            prop_assert_eq!(&w.mem.logs, &before.logs);
        }
        let steps = if let Op::EndOfBlocks { blocks } = op { *blocks } else { 0 };
        check_invariants(&mut w, steps);
    }
    let fills = decode_all::<events::Fill>(&w.mem).iter().filter(|f| f.market == PERP).count();
    let liquidations = decode_all::<events::Liquidation>(&w.mem).len();
    let funding = decode_all::<events::Funding>(&w.mem).len();
    let bad_debt = decode_all::<events::BadDebt>(&w.mem).len();
    eprintln!(
        "STATS ops {} perp fills {fills} liquidations {liquidations} funding {funding} bad debt {bad_debt}",
        ops.len()
    );
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, ..ProptestConfig::default() })]

    #[test]
    fn random_actions_conserve_every_asset(ops in proptest::collection::vec(op(), 1..200)) {
        run(&ops, 1_024)?;
    }

    /// The same with a step that examines 4 accounts per block (1 watched, 3 swept): the cursor
    /// and the watch list survive accounts joining and leaving the open set mid-round.
    #[test]
    fn random_actions_with_a_step_budget_below_the_open_set(
        ops in proptest::collection::vec(op(), 1..200)
    ) {
        run(&ops, 4)?;
    }
}
