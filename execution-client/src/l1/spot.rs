//! Spot balances: per account and asset a total and a hold (the part reserved by resting orders;
//! free = total - hold), deposits and withdrawals with per-asset totals for exact accounting
//! checks, and [`SpotSettlement`], what a spot fill moves.
//!
//! Slot layout (`key(ns, addr, a, b, field)`):
//!
//! | record | key | value |
//! |---|---|---|
//! | balance | `Balance(owner, asset, 0, 0)` | `pack(total, hold)` |
//! | asset totals | `AssetTotals(0, asset, 0, 0)` | `pack(deposited, withdrawn)` |
//!
//! A resting bid holds `notional(price, remaining)` of the quote asset, a resting ask holds
//! `remaining` of the base asset. Takers pay directly from their free balance.

use alloy_primitives::{Address, B256, U256};

use super::{
    Ctx,
    error::{L1Error, L1Result},
    events::{self, Deposit, Withdraw},
    order::{Fill, OrderRequest, Resting, Settlement, Side},
    store::{Ns, Store, key, pack, unpack},
};

fn balance_key(owner: Address, asset: u32) -> B256 {
    key(Ns::Balance, owner, u64::from(asset), 0, 0)
}

fn totals_key(asset: u32) -> B256 {
    key(Ns::AssetTotals, Address::ZERO, u64::from(asset), 0, 0)
}

/// `owner`'s balance of `asset`: (total, hold).
pub fn balance<S: Store>(
    ctx: &mut Ctx<'_, S>,
    owner: Address,
    asset: u32,
) -> L1Result<(u128, u128)> {
    Ok(unpack(ctx.store.load(balance_key(owner, asset))?))
}

/// Applies `change` to (total, hold) of `owner`'s `asset` in one read and one write.
fn update<S: Store>(
    ctx: &mut Ctx<'_, S>,
    owner: Address,
    asset: u32,
    change: impl FnOnce(u128, u128) -> L1Result<(u128, u128)>,
) -> L1Result<()> {
    let k = balance_key(owner, asset);
    let (total, hold) = unpack(ctx.store.load(k)?);
    let (total, hold) = change(total, hold)?;
    Ok(ctx.store.store(k, pack(total, hold))?)
}

fn insufficient(asset: u32, needed: u128, total: u128, hold: u128) -> L1Error {
    L1Error::InsufficientBalance { asset, needed, available: total.saturating_sub(hold) }
}

/// Adds `amount` to `owner`'s total of `asset`.
pub fn credit<S: Store>(
    ctx: &mut Ctx<'_, S>,
    owner: Address,
    asset: u32,
    amount: u128,
) -> L1Result<()> {
    if amount == 0 {
        return Ok(());
    }
    update(ctx, owner, asset, |total, hold| {
        Ok((total.checked_add(amount).ok_or(L1Error::Overflow)?, hold))
    })
}

/// Takes `amount` from `owner`'s free balance of `asset` (total - hold).
pub fn debit<S: Store>(
    ctx: &mut Ctx<'_, S>,
    owner: Address,
    asset: u32,
    amount: u128,
) -> L1Result<()> {
    if amount == 0 {
        return Ok(());
    }
    update(ctx, owner, asset, |total, hold| {
        if total.saturating_sub(hold) < amount {
            return Err(insufficient(asset, amount, total, hold));
        }
        Ok((total - amount, hold))
    })
}

/// Credits `amount` of `asset` received from the EVM side and records it in the asset totals.
pub fn deposit<S: Store>(
    ctx: &mut Ctx<'_, S>,
    owner: Address,
    asset: u32,
    amount: u128,
) -> L1Result<()> {
    ctx.config.asset(asset)?;
    if amount == 0 {
        return Err(L1Error::ZeroAmount);
    }
    let k = totals_key(asset);
    let (deposited, withdrawn) = unpack(ctx.store.load(k)?);
    let deposited = deposited.checked_add(amount).ok_or(L1Error::Overflow)?;
    credit(ctx, owner, asset, amount)?;
    ctx.store.store(k, pack(deposited, withdrawn))?;
    events::emit(ctx.store, &Deposit { user: owner, asset, amount: U256::from(amount) });
    Ok(())
}

/// Debits `amount` of `asset` from `owner`'s free balance to be paid out on the EVM side.
pub fn withdraw<S: Store>(
    ctx: &mut Ctx<'_, S>,
    owner: Address,
    asset: u32,
    amount: u128,
) -> L1Result<()> {
    ctx.config.asset(asset)?;
    if amount == 0 {
        return Err(L1Error::ZeroAmount);
    }
    let k = totals_key(asset);
    let (deposited, withdrawn) = unpack(ctx.store.load(k)?);
    let withdrawn = withdrawn.checked_add(amount).ok_or(L1Error::Overflow)?;
    debit(ctx, owner, asset, amount)?;
    ctx.store.store(k, pack(deposited, withdrawn))?;
    events::emit(ctx.store, &Withdraw { user: owner, asset, amount: U256::from(amount) });
    Ok(())
}

/// All deposits and withdrawals of `asset` ever: (deposited, withdrawn).
pub fn totals<S: Store>(ctx: &mut Ctx<'_, S>, asset: u32) -> L1Result<(u128, u128)> {
    Ok(unpack(ctx.store.load(totals_key(asset))?))
}

/// The (base, quote) assets of spot `market`.
fn assets(ctx: &Ctx<'_, impl Store>, market: u32) -> L1Result<(u32, u32)> {
    let m = ctx.config.spot_market(market)?;
    match (m.base, m.quote) {
        (Some(base), Some(quote)) => Ok((base, quote)),
        _ => Err(L1Error::NotSpotMarket(market)),
    }
}

/// What a resting `order` holds: (asset, amount).
fn order_hold(ctx: &Ctx<'_, impl Store>, order: &Resting, size: u128) -> L1Result<(u32, u128)> {
    let (base, quote) = assets(ctx, order.market)?;
    Ok(match order.side {
        Side::Bid => (quote, ctx.config.notional(order.market, order.price, size)?),
        Side::Ask => (base, size),
    })
}

/// Spot settlement: holds for resting orders, balance moves for fills.
#[derive(Debug, Clone, Copy, Default)]
pub struct SpotSettlement;

impl<S: Store> Settlement<S> for SpotSettlement {
    fn admit(
        &mut self,
        ctx: &mut Ctx<'_, S>,
        owner: Address,
        request: &OrderRequest,
        price: u128,
    ) -> L1Result<()> {
        let (base, quote) = assets(ctx, request.market)?;
        // Dust orders would cost the book as much state as real ones.
        let notional = ctx.config.notional(request.market, price, request.size)?;
        let min = ctx.config.min_notional(request.market)?;
        if notional < min {
            return Err(L1Error::OrderBelowMinNotional { notional, min });
        }
        let (asset, needed) = match request.side {
            Side::Bid => {
                let notional = ctx.config.notional(request.market, price, request.size)?;
                let fee = ctx.config.taker_fee(request.market, notional)?;
                (quote, notional.checked_add(fee).ok_or(L1Error::Overflow)?)
            }
            Side::Ask => (base, request.size),
        };
        let (total, hold) = balance(ctx, owner, asset)?;
        if total.saturating_sub(hold) < needed {
            return Err(insufficient(asset, needed, total, hold));
        }
        Ok(())
    }

    fn reserve(&mut self, ctx: &mut Ctx<'_, S>, order: &Resting) -> L1Result<()> {
        let (asset, amount) = order_hold(ctx, order, order.remaining)?;
        update(ctx, order.owner, asset, |total, hold| {
            let new_hold = hold.checked_add(amount).ok_or(L1Error::Overflow)?;
            if new_hold > total {
                return Err(insufficient(asset, amount, total, hold));
            }
            Ok((total, new_hold))
        })
    }

    fn release(&mut self, ctx: &mut Ctx<'_, S>, order: &Resting, size: u128) -> L1Result<()> {
        let (asset, amount) = order_hold(ctx, order, size)?;
        update(ctx, order.owner, asset, |total, hold| {
            Ok((total, hold.checked_sub(amount).ok_or(L1Error::Overflow)?))
        })
    }

    fn settle(&mut self, ctx: &mut Ctx<'_, S>, fill: &Fill) -> L1Result<u128> {
        let (base, quote) = assets(ctx, fill.market)?;
        let notional = ctx.config.notional(fill.market, fill.price, fill.size)?;
        let fee = ctx.config.taker_fee(fill.market, notional)?;
        // The maker's side comes out of its hold; the taker pays from its free balance.
        let (maker_gives, maker_gets, taker_gets) = match fill.taker_side {
            Side::Bid => ((base, fill.size), (quote, notional), (base, fill.size)),
            Side::Ask => (
                (quote, notional),
                (base, fill.size),
                (quote, notional.checked_sub(fee).ok_or(L1Error::Overflow)?),
            ),
        };
        let (asset, amount) = maker_gives;
        update(ctx, fill.maker, asset, |total, hold| {
            Ok((
                total.checked_sub(amount).ok_or(L1Error::Overflow)?,
                hold.checked_sub(amount).ok_or(L1Error::Overflow)?,
            ))
        })?;
        credit(ctx, fill.maker, maker_gets.0, maker_gets.1)?;
        match fill.taker_side {
            Side::Bid => {
                debit(ctx, fill.taker, quote, notional.checked_add(fee).ok_or(L1Error::Overflow)?)?
            }
            Side::Ask => debit(ctx, fill.taker, base, fill.size)?,
        }
        credit(ctx, fill.taker, taker_gets.0, taker_gets.1)?;
        let recipient = ctx.config.fee_recipient;
        credit(ctx, recipient, quote, fee)?;
        Ok(fee)
    }
}

#[cfg(test)]
mod tests {
    use alloy_sol_types::SolEvent;

    use super::*;
    use crate::l1::{config::test_config, store::MemStore};

    #[test]
    fn deposits_withdrawals_and_totals() {
        let config = test_config();
        let mut mem = MemStore::default();
        let mut ctx = Ctx::new(&mut mem, &config, 1);
        let a = Address::repeat_byte(1);
        deposit(&mut ctx, a, 1, 1_000).unwrap();
        deposit(&mut ctx, a, 1, 500).unwrap();
        withdraw(&mut ctx, a, 1, 300).unwrap();
        assert_eq!(balance(&mut ctx, a, 1).unwrap(), (1_200, 0));
        assert_eq!(totals(&mut ctx, 1).unwrap(), (1_500, 300));
        assert_eq!(totals(&mut ctx, 0).unwrap(), (0, 0));
        assert!(matches!(deposit(&mut ctx, a, 1, 0), Err(L1Error::ZeroAmount)));
        assert!(matches!(withdraw(&mut ctx, a, 1, 0), Err(L1Error::ZeroAmount)));
        assert!(matches!(deposit(&mut ctx, a, 9, 1), Err(L1Error::UnknownAsset(9))));
        assert!(matches!(
            withdraw(&mut ctx, a, 1, 1_201),
            Err(L1Error::InsufficientBalance { asset: 1, needed: 1_201, available: 1_200 })
        ));
        assert_eq!(totals(&mut ctx, 1).unwrap(), (1_500, 300));

        let d = Deposit::decode_log_data(&mem.logs[0]).unwrap();
        assert_eq!((d.user, d.asset, d.amount), (a, 1, U256::from(1_000)));
        let w = Withdraw::decode_log_data(&mem.logs[2]).unwrap();
        assert_eq!((w.user, w.asset, w.amount), (a, 1, U256::from(300)));
        assert_eq!(mem.logs.len(), 3);
    }

    #[test]
    fn debit_takes_only_free_balance() {
        let config = test_config();
        let mut mem = MemStore::default();
        let mut ctx = Ctx::new(&mut mem, &config, 1);
        let a = Address::repeat_byte(1);
        credit(&mut ctx, a, 0, 100).unwrap();
        let ask = Resting {
            id: 1,
            owner: a,
            market: 0,
            side: Side::Ask,
            price: 10_000,
            remaining: 60,
            cloid: 0,
        };
        SpotSettlement.reserve(&mut ctx, &ask).unwrap();
        assert_eq!(balance(&mut ctx, a, 0).unwrap(), (100, 60));
        assert!(matches!(
            debit(&mut ctx, a, 0, 41),
            Err(L1Error::InsufficientBalance { asset: 0, needed: 41, available: 40 })
        ));
        debit(&mut ctx, a, 0, 40).unwrap();
        assert_eq!(balance(&mut ctx, a, 0).unwrap(), (60, 60));
        // A hold above the total is refused.
        assert!(SpotSettlement.reserve(&mut ctx, &Resting { remaining: 1, ..ask }).is_err());
        SpotSettlement.release(&mut ctx, &ask, 60).unwrap();
        assert_eq!(balance(&mut ctx, a, 0).unwrap(), (60, 0));
        assert!(matches!(credit(&mut ctx, a, 0, u128::MAX), Err(L1Error::Overflow)));
    }
}
