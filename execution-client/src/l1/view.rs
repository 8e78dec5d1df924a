//! Read-only views of the L1 state at a block, for the `l1_*` JSON-RPC methods: the engine's own
//! read functions over a store that reads a state snapshot and refuses writes.

use alloy_primitives::{Address, B256, LogData, U256};
use revm::DatabaseRef;
use serde::Serialize;

use super::{
    Ctx, L1_WRITE_ADDRESS, book, clearinghouse,
    config::{L1Config, MarketKind},
    error::L1Result,
    oracle,
    order::Side,
    spot,
    store::{Store, StoreError},
};

/// The L1 state of a [`DatabaseRef`] snapshot, read-only: a write would be an engine bug and is
/// reported as one (as the read precompiles do).
#[derive(Debug)]
pub struct SnapshotStore<DB> {
    db: DB,
}

impl<DB: DatabaseRef> SnapshotStore<DB> {
    /// A view of `db`'s L1 state.
    pub fn new(db: DB) -> Self {
        Self { db }
    }
}

impl<DB> Store for SnapshotStore<DB>
where
    DB: DatabaseRef,
    DB::Error: std::fmt::Display,
{
    fn load(&mut self, key: B256) -> Result<U256, StoreError> {
        self.db
            .storage_ref(L1_WRITE_ADDRESS, key.into())
            .map_err(|e| StoreError::Backend(e.to_string()))
    }

    fn store(&mut self, key: B256, _value: U256) -> Result<(), StoreError> {
        Err(StoreError::Backend(format!("read path wrote slot {key}")))
    }

    fn emit(&mut self, _log: LogData) {}
}

/// One price level of a book side, amounts as decimal strings.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct LevelView {
    /// Price.
    pub price: String,
    /// Total resting size.
    pub size: String,
    /// Number of orders.
    pub orders: u32,
}

/// A market's book depth and prices.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct BookView {
    /// Market index.
    pub market: u32,
    /// Market symbol.
    pub symbol: String,
    /// Bids, best first.
    pub bids: Vec<LevelView>,
    /// Asks, best first.
    pub asks: Vec<LevelView>,
    /// Oracle price (perps with a fresh price).
    pub oracle_price: Option<String>,
    /// Mark price (perps).
    pub mark_price: Option<String>,
}

/// One spot balance.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct BalanceView {
    /// Asset index.
    pub asset: u32,
    /// Asset symbol.
    pub symbol: String,
    /// Total balance.
    pub total: String,
    /// Part on hold for resting orders.
    pub hold: String,
}

/// One perp position.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PositionSummary {
    /// Market index.
    pub market: u32,
    /// Signed size (positive: long).
    pub size: String,
    /// Average entry price.
    pub entry_price: String,
    /// Initial margin at the mark price.
    pub margin: String,
    /// Unrealized PnL at the mark price.
    pub unrealized_pnl: String,
}

/// A resting order.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct OrderView {
    /// Order id.
    pub id: u64,
    /// Market index.
    pub market: u32,
    /// `buy` or `sell`.
    pub side: &'static str,
    /// Limit price.
    pub price: String,
    /// Open size.
    pub remaining: String,
    /// Client order id (0: none).
    pub cloid: String,
}

/// Everything about one account: spot balances, perp account, resting orders.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AccountSummary {
    /// The account.
    pub address: Address,
    /// Spot balances (assets with a non-zero total).
    pub spot: Vec<BalanceView>,
    /// Perp cash, settled.
    pub cash: String,
    /// Funding the positions owe and have not settled yet (negative: are owed); counted in the
    /// account value.
    pub unsettled_funding: String,
    /// Perp account value at mark prices.
    pub account_value: String,
    /// Initial margin of positions and resting orders.
    pub initial_margin: String,
    /// Maintenance margin of positions.
    pub maintenance_margin: String,
    /// Open positions.
    pub positions: Vec<PositionSummary>,
    /// Resting orders.
    pub orders: Vec<OrderView>,
}

/// One event of a block's end-of-block step, decoded, with the log it was emitted as.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SystemEventView {
    /// The event's fields, and its name as `event`.
    #[serde(flatten)]
    pub event: SystemEvent,
    /// The log's topics.
    pub topics: Vec<B256>,
    /// The log's data.
    pub data: alloy_primitives::Bytes,
}

/// The events of the end-of-block step (as declared in `IL1Write.sol`), amounts as decimal
/// strings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "event", rename_all_fields = "camelCase")]
pub enum SystemEvent {
    /// Funding paid for an interval; a positive rate means longs pay.
    Funding {
        /// The perp market.
        market: u32,
        /// Rate of the interval in ppm.
        rate_ppm: i64,
        /// Oracle price.
        oracle_price: String,
        /// Mark price.
        mark_price: String,
    },
    /// A position taken over by the backstop at the mark.
    Liquidation {
        /// The liquidated account.
        user: Address,
        /// The perp market.
        market: u32,
        /// Size taken over, signed.
        size: String,
        /// Mark price.
        mark_price: String,
    },
    /// A liquidated account's debt absorbed by the backstop.
    BadDebt {
        /// The account.
        user: Address,
        /// Debt absorbed.
        amount: String,
    },
}

/// The end-of-block step's `log` decoded (`None` for a log the step does not emit).
pub fn system_event(log: &alloy_primitives::Log) -> Option<SystemEventView> {
    use alloy_sol_types::SolEvent;

    use super::events::{BadDebt, Funding, Liquidation};
    if log.address != L1_WRITE_ADDRESS {
        return None;
    }
    let event = if let Ok(e) = Funding::decode_log_data(&log.data) {
        SystemEvent::Funding {
            market: e.market,
            rate_ppm: e.ratePpm,
            oracle_price: e.oraclePrice.to_string(),
            mark_price: e.markPrice.to_string(),
        }
    } else if let Ok(e) = Liquidation::decode_log_data(&log.data) {
        SystemEvent::Liquidation {
            user: e.user,
            market: e.market,
            size: e.size.to_string(),
            mark_price: e.markPrice.to_string(),
        }
    } else if let Ok(e) = BadDebt::decode_log_data(&log.data) {
        SystemEvent::BadDebt { user: e.user, amount: e.amount.to_string() }
    } else {
        return None;
    };
    Some(SystemEventView { event, topics: log.data.topics().to_vec(), data: log.data.data.clone() })
}

fn order_view(order: &super::order::Resting) -> OrderView {
    OrderView {
        id: order.id,
        market: order.market,
        side: if order.side == Side::Bid { "buy" } else { "sell" },
        price: order.price.to_string(),
        remaining: order.remaining.to_string(),
        cloid: order.cloid.to_string(),
    }
}

/// Book depth (`levels` per side) of `market`.
pub fn book<S: Store>(ctx: &mut Ctx<'_, S>, market: u32, levels: usize) -> L1Result<BookView> {
    let m = ctx.config.market(market)?;
    let (symbol, is_perp) = (m.symbol.clone(), m.kind == MarketKind::Perp);
    let side = |ctx: &mut Ctx<'_, S>, side| -> L1Result<Vec<LevelView>> {
        Ok(book::depth(ctx, market, side, levels)?
            .into_iter()
            .map(|l| LevelView {
                price: l.price.to_string(),
                size: l.size.to_string(),
                orders: l.orders,
            })
            .collect())
    };
    let bids = side(ctx, Side::Bid)?;
    let asks = side(ctx, Side::Ask)?;
    let (oracle_price, mark_price) = if is_perp {
        (
            oracle::oracle_price(ctx, market)?.map(|p| p.to_string()),
            oracle::mark_price(ctx, market)?.map(|p| p.to_string()),
        )
    } else {
        (None, None)
    };
    Ok(BookView { market, symbol, bids, asks, oracle_price, mark_price })
}

/// The summary of `user`'s L1 account.
pub fn account<S: Store>(ctx: &mut Ctx<'_, S>, user: Address) -> L1Result<AccountSummary> {
    let config: &L1Config = ctx.config;
    let mut spot_balances = Vec::new();
    for (index, asset) in config.assets.iter().enumerate() {
        let (total, hold) = spot::balance(ctx, user, index as u32)?;
        if total != 0 {
            spot_balances.push(BalanceView {
                asset: index as u32,
                symbol: asset.symbol.clone(),
                total: total.to_string(),
                hold: hold.to_string(),
            });
        }
    }
    let perp = clearinghouse::account(ctx, user)?;
    let positions = perp
        .positions
        .iter()
        .map(|(market, p)| PositionSummary {
            market: *market,
            size: p.size.to_string(),
            entry_price: p.entry_price.to_string(),
            margin: p.margin.to_string(),
            unrealized_pnl: p.unrealized_pnl.to_string(),
        })
        .collect();
    let mut orders = Vec::new();
    for id in book::orders_of(ctx, user)? {
        if let Some(order) = book::get(ctx, id)? {
            orders.push(order_view(&order));
        }
    }
    Ok(AccountSummary {
        address: user,
        spot: spot_balances,
        cash: perp.cash.to_string(),
        unsettled_funding: perp.funding_owed.to_string(),
        account_value: perp.account_value.to_string(),
        initial_margin: perp.initial_margin.to_string(),
        maintenance_margin: perp.maintenance_margin.to_string(),
        positions,
        orders,
    })
}

/// A resting order by id.
pub fn order<S: Store>(ctx: &mut Ctx<'_, S>, id: u64) -> L1Result<Option<OrderView>> {
    Ok(book::get(ctx, id)?.map(|o| order_view(&o)))
}

#[cfg(test)]
mod tests {
    use alloy_primitives::Log;
    use alloy_sol_types::SolEvent;

    use super::*;
    use crate::l1::events::{BadDebt, Fill, Funding};

    #[test]
    fn system_events_decode_and_other_logs_do_not() {
        let funding = Funding { market: 2, ratePpm: -150, oraclePrice: 3_000, markPrice: 2_999 };
        let log = Log { address: L1_WRITE_ADDRESS, data: funding.encode_log_data() };
        let view = system_event(&log).unwrap();
        let want = SystemEvent::Funding {
            market: 2,
            rate_ppm: -150,
            oracle_price: "3000".into(),
            mark_price: "2999".into(),
        };
        assert_eq!(view.event, want);
        let json = serde_json::to_value(&view).unwrap();
        assert_eq!(json["event"], "Funding");
        assert_eq!(json["ratePpm"], -150);
        assert_eq!(json["markPrice"], "2999");
        assert!(json.get("user").is_none(), "{json}");
        assert_eq!(json["data"], format!("{}", log.data.data));

        let debt = BadDebt { user: Address::repeat_byte(3), amount: U256::from(7) };
        let view = system_event(&Log { address: L1_WRITE_ADDRESS, data: debt.encode_log_data() });
        let want = SystemEvent::BadDebt { user: Address::repeat_byte(3), amount: "7".into() };
        assert_eq!(view.map(|v| v.event), Some(want));
        // Another contract's log of the same shape, and a fill, are not step events.
        let elsewhere = Log { address: Address::repeat_byte(9), data: debt.encode_log_data() };
        assert_eq!(system_event(&elsewhere), None);
        let fill = Fill {
            market: 0,
            taker: Address::ZERO,
            maker: Address::ZERO,
            takerOrderId: 1,
            makerOrderId: 2,
            takerIsBuy: true,
            price: 1,
            size: 1,
            fee: 0,
        };
        assert_eq!(
            system_event(&Log { address: L1_WRITE_ADDRESS, data: fill.encode_log_data() }),
            None
        );
    }
}
