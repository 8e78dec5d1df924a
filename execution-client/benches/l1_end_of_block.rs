//! The L1 end-of-block step's cost per block against the number of open perp accounts: the
//! real `l1::engine::end_of_block` on a `MemStore`, with the devnet's configuration (its
//! default `endOfBlockAccounts` budget, 1,024), at 10k, 100k and 1M open accounts; and as the
//! reference, in the same run and on the same state, the same step with a budget of every open
//! account (what the step cost before it was bounded: one pass over all of them).
//!
//! Set-up (not timed): `N` accounts (half long, half short 0.01 ETH of ETH-PERP at 3,000 TUSD,
//! each with 1,000 TUSD of perp cash, opened through the engine's deposits, transfers and
//! orders), after one funding interval so every position has a funding snapshot; then a maker's
//! bid and ask rest just above the oracle, so the mark sits above it and every later funding
//! interval moves the index (every examined position owes something). Every block starts with
//! the three publishers' oracle posts (not timed). All accounts are healthy: the step examines,
//! it does not liquidate.
//!
//! Measured per run: `BLOCKS` successive bounded steps (one of them on a funding interval
//! block), each timed alone; then one reference step. Printed: the median bounded step, the
//! funding block's step, the reference, their ratio, and the slots one bounded step reads.
//!
//! `cargo bench -p tandem-el --bench l1_end_of_block`. Environment (defaults in brackets):
//! `SIZES` [10000,100000,1000000], `RUNS` [5], `BLOCKS` [30].

#![allow(clippy::unwrap_used, missing_docs)]

use std::time::{Duration, Instant};

use alloy_primitives::{Address, keccak256};
use tandem_el::l1::{
    Ctx, L1Config, engine,
    order::{OrderRequest, Side, TimeInForce},
    store::{MemStore, Metered},
};
use tandem_shared::l1_genesis::devnet_config;

const PERP: u32 = 2;
const TUSD: u32 = 1;
/// 3,000 TUSD per ETH.
const PRICE: u128 = 3_000 * 1_000_000;
/// 0.01 ETH: 30 TUSD, above the 10 TUSD minimum notional.
const SIZE: u128 = 10_000_000_000_000_000;

fn publishers() -> [Address; 3] {
    [Address::repeat_byte(0xa1), Address::repeat_byte(0xa2), Address::repeat_byte(0xa3)]
}

fn account(i: usize) -> Address {
    Address::from_slice(&keccak256((i as u64).to_be_bytes())[12..])
}

fn post_oracle(mem: &mut MemStore, config: &L1Config, block: u64) {
    let mut ctx = Ctx::new(mem, config, block);
    for p in publishers() {
        engine::post_oracle_price(&mut ctx, p, PERP, PRICE).unwrap();
    }
}

/// `n` open accounts; returns the state and the next block.
fn set_up(config: &L1Config, n: usize) -> (MemStore, u64) {
    let mut mem = MemStore::default();
    let interval = config.funding_interval_blocks;
    // A funding interval with the mark off the oracle, so the index is not zero.
    post_oracle(&mut mem, config, interval);
    let mut ctx = Ctx::new(&mut mem, config, interval);
    let maker = account(usize::MAX);
    engine::deposit(&mut ctx, maker, TUSD, 1_000_000 * 1_000_000).unwrap();
    engine::perp_transfer(&mut ctx, maker, 1_000_000 * 1_000_000).unwrap();
    // Bid and ask 0.20 and 0.40 TUSD above the oracle: the mark is the bid, 67 ppm above.
    let quote = |side, ticks: u128| OrderRequest {
        market: PERP,
        side,
        price: PRICE + ticks * 10_000,
        size: SIZE,
        tif: TimeInForce::Gtc,
        cloid: 0,
    };
    let place = |ctx: &mut Ctx<'_, MemStore>| {
        let bid = engine::place_order(ctx, maker, &quote(Side::Bid, 20)).unwrap().order_id;
        let ask = engine::place_order(ctx, maker, &quote(Side::Ask, 40)).unwrap().order_id;
        [bid, ask]
    };
    let quotes = place(&mut ctx);
    engine::end_of_block(&mut ctx).unwrap();
    for id in quotes {
        engine::cancel_order(&mut ctx, maker, PERP, id).unwrap();
    }
    let block = interval + 1;
    post_oracle(&mut mem, config, block);
    let mut ctx = Ctx::new(&mut mem, config, block);
    for pair in 0..n / 2 {
        let (short, long) = (account(2 * pair), account(2 * pair + 1));
        for who in [short, long] {
            engine::deposit(&mut ctx, who, TUSD, 1_000 * 1_000_000).unwrap();
            engine::perp_transfer(&mut ctx, who, 1_000 * 1_000_000).unwrap();
        }
        let ask = OrderRequest {
            market: PERP,
            side: Side::Ask,
            price: PRICE,
            size: SIZE,
            tif: TimeInForce::Gtc,
            cloid: 0,
        };
        engine::place_order(&mut ctx, short, &ask).unwrap();
        let take = OrderRequest { side: Side::Bid, tif: TimeInForce::Ioc, ..ask };
        let out = engine::place_order(&mut ctx, long, &take).unwrap();
        assert_eq!(out.filled, SIZE);
    }
    place(&mut ctx);
    mem.logs.clear();
    (mem, block + 1)
}

/// One step on `block`, timed (the oracle posts before it are not).
fn step(mem: &mut MemStore, config: &L1Config, block: u64) -> Duration {
    post_oracle(mem, config, block);
    let started = Instant::now();
    engine::end_of_block(&mut Ctx::new(mem, config, block)).unwrap();
    let took = started.elapsed();
    mem.logs.clear();
    took
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() {
    let env = |name: &str, default: usize| {
        std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
    };
    let sizes: Vec<usize> = std::env::var("SIZES")
        .unwrap_or_else(|_| "10000,100000,1000000".into())
        .split(',')
        .map(|s| s.trim().parse().unwrap())
        .collect();
    let (runs, blocks) = (env("RUNS", 5), env("BLOCKS", 30) as u64);
    let l1 = devnet_config(&publishers(), Address::repeat_byte(0xfe), Address::repeat_byte(0xbb));
    let config = L1Config::from_value(&l1).unwrap();
    let mut full = config.clone();
    let interval = config.funding_interval_blocks;

    println!(
        "| open accounts | bounded step ms (median) | funding-block step ms | all accounts (reference) ms | bounded ÷ reference | slots read per bounded step | runs: bounded ms |"
    );
    println!("|---:|---:|---:|---:|---:|---:|---|");
    for &n in &sizes {
        let started = Instant::now();
        let (mut mem, mut block) = set_up(&config, n);
        eprintln!(
            "{n} open accounts: set up in {:.1} s, {} slots",
            started.elapsed().as_secs_f64(),
            mem.slots.len()
        );
        // The reference visits every open account (the maker's too).
        full.end_of_block_accounts = u32::try_from(n + 2).unwrap();
        let mut bounded = Vec::new();
        let mut funding = Vec::new();
        let mut reference = Vec::new();
        for run in 1..=runs {
            let mut times = Vec::new();
            for _ in 0..blocks {
                let took = step(&mut mem, &config, block);
                if block.is_multiple_of(interval) {
                    funding.push(ms(took));
                } else {
                    times.push(ms(took));
                }
                block += 1;
            }
            let reference_ms = ms(step(&mut mem, &full, block));
            block += 1;
            let med = median(times.clone());
            eprintln!(
                "run {run}, {n} accounts: bounded step median {med:.3} ms (min {:.3}, max {:.3}), reference {reference_ms:.1} ms",
                times.iter().copied().fold(f64::MAX, f64::min),
                times.iter().copied().fold(0.0, f64::max),
            );
            bounded.push(med);
            reference.push(reference_ms);
        }
        // Slots one bounded step reads (not timed).
        post_oracle(&mut mem, &config, block);
        let mut copy = mem.clone();
        let mut metered = Metered::new(&mut copy);
        engine::end_of_block(&mut Ctx::new(&mut metered, &config, block)).unwrap();
        let reads = metered.reads();
        let (b, r) = (median(bounded.clone()), median(reference.clone()));
        let f =
            if funding.is_empty() { "-".to_string() } else { format!("{:.3}", median(funding)) };
        let list = bounded.iter().map(|v| format!("{v:.3}")).collect::<Vec<_>>().join(", ");
        println!("| {n} | {b:.3} | {f} | {r:.1} | {:.4} | {reads} | {list} |", b / r);
    }
}
