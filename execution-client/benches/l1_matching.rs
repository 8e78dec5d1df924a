//! Native L1 exchange matching throughput on one core, in orders/s: the engine over an in-memory
//! slot map (reference), and the engine over the L1 state in the MDBX state trie with the
//! incremental state root and a durable commit per block, for the same orders in the same run.
//!
//! Set-up (not timed): a chain whose genesis enables the devnet L1 configuration
//! (`tandem_shared::l1_genesis::devnet_config`: ETH/TUSD spot = market 0, ETH-PERP = market 2),
//! `ACCOUNTS` funded accounts (1000 ETH and 10M TUSD each, 5M TUSD moved into perp cash), the
//! deposits committed to MDBX as block 1. Then `ORDERS` actions are generated from a seeded
//! xorshift on a scratch copy of the engine (so cancels name orders that still rest, and
//! refused actions are dropped): 20 % cancels of resting orders (`CANCEL_PCT`), and placements on the spot
//! and the perp market (passive GTC away from the mid, aggressive GTC/IOC through it, market
//! orders); about 40 % of the placements trade and 60 % rest, and the books grow to thousands
//! of resting orders. The make-up is printed: slot loads and stores per action, and the gas the
//! core precompile would charge for them.
//!
//! Measured per run, with the same actions:
//! - **memory**: `l1::engine` on a `MemStore` (hash map), blocks of 1,000 actions;
//! - **trie, K**: blocks of K actions on one thread, as the node's block tree runs them: each
//!   block reads slots from the state after its parent (the not yet persisted blocks' values,
//!   then `Database::latest`, the persisted plain state) through a write cache, turns the
//!   changed slots into a `BundleState` of account 0x3333…3333, computes its root from the
//!   trie changes of the blocks above the persisted tip (`Database::trie_delta`), and persists
//!   the block once it is `THRESHOLD` blocks behind the head (`Database::commit_block_parts`,
//!   one durable MDBX write transaction with the block's own trie changes). The last block
//!   persists the blocks still in memory.
//!
//! Every block starts with the three publishers' oracle posts for the perp market (not counted
//! as orders), as publishers do each block. The end-of-block step (funding indices, liquidation
//! checks of up to 1,024 open accounts) runs after each block with `END_OF_BLOCK=1`, and
//! not by default, since it is not matching.
//!
//! `cargo bench -p tandem-el --bench l1_matching`. Environment (defaults in brackets):
//! - `ORDERS` [200000], `ACCOUNTS` [1000], `BLOCKS` = block sizes K [1000,5000,10000,20000],
//!   `RUNS` [5], `THRESHOLD` [2, the node's `--engine.persistence-threshold`];
//! - `CANCEL_PCT` [20], or `BOOK=N`: instead of a cancel share, cancel a random resting order
//!   whenever more than N rest, so the book stays near N;
//! - `END_OF_BLOCK=1`, `DURABLE=0` (commit without fsync), `TRACE=1` (every block's phases).
//!
//! Prints the workload's make-up and per-run lines on stderr and a markdown table of the medians
//! on stdout.

#![allow(clippy::unwrap_used, missing_docs)]

use std::time::{Duration, Instant};

use alloy_consensus::{Block, BlockBody, Header};
use alloy_genesis::Genesis;
use alloy_primitives::{
    Address, B256, Bytes, LogData, U256, keccak256,
    map::{B256Map, Entry},
};
use revm::{
    DatabaseRef,
    database::{
        AccountStatus, BundleAccount, BundleState, StorageWithOriginalValues, states::StorageSlot,
    },
    state::AccountInfo,
};
use tandem_el::{
    l1::{
        Ctx, L1_WRITE_ADDRESS, L1Config, book, engine,
        order::{OrderRequest, Side, TimeInForce},
        precompile::{
            COLD_SLOT_GAS, CORE_BASE_GAS, CORE_CREATE_GAS, CORE_LOG_GAS, CORE_UPDATE_GAS,
            WARM_READ_GAS,
        },
        store::{MemStore, Store, StoreError},
    },
    state_root::TrieUpdates,
    storage::{BlockParts, Database, DatabaseConfig, SealedBlock, StateProvider, seal_block},
};
use tandem_shared::{ChainSpec, l1_genesis::devnet_config};

const SPOT: u32 = 0;
const PERP: u32 = 2;
const ETH: u32 = 0;
const TUSD: u32 = 1;
/// 0.01 TUSD, both markets' tick.
const TICK: u128 = 10_000;
/// 0.001 ETH, both markets' lot.
const LOT: u128 = 1_000_000_000_000_000;
/// 3000.00 TUSD per ETH.
const MID: u128 = 3_000 * 1_000_000;

fn account(i: usize) -> Address {
    Address::from_slice(&keccak256((i as u64).to_be_bytes())[12..])
}

fn publishers() -> [Address; 3] {
    [Address::repeat_byte(0xa1), Address::repeat_byte(0xa2), Address::repeat_byte(0xa3)]
}

/// Namespace names by the key's first byte (`l1::store::Ns`).
const NAMES: [&str; 14] = [
    "",
    "Globals",
    "Balance",
    "Order",
    "Level",
    "Book",
    "Cloid",
    "AccountOrders",
    "PerpAccount",
    "Position",
    "OpenAccounts",
    "Oracle",
    "PerpMarket",
    "AssetTotals",
];

/// xorshift: deterministic and dependency-free.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }

    /// A uniform value in `lo..=hi`.
    fn range(&mut self, lo: u128, hi: u128) -> u128 {
        lo + u128::from(self.below((hi - lo + 1) as u64))
    }
}

/// One action of the workload.
#[derive(Clone, Copy)]
enum Op {
    Place { user: Address, req: OrderRequest },
    Cancel { user: Address, market: u32, id: u64 },
}

/// What the generated workload does (measured while generating it).
#[derive(Default)]
struct Mix {
    places: u64,
    cancels: u64,
    traded: u64,
    rested: u64,
    fills: u64,
    refused: u64,
    resting_at_end: usize,
    /// `Store::load` calls per action (every call, cached or not).
    loads: u64,
    /// Loads of a slot already loaded or written earlier in the same action.
    repeat_loads: u64,
    /// Repeated loads per action by namespace.
    repeats_by_ns: String,
    stores: u64,
    /// Stores that set a zero slot (priced as new state by the core precompile).
    creates: u64,
    /// Stores to a slot the action had not accessed yet (the cold surcharge).
    cold_stores: u64,
    logs: u64,
}

/// A `MemStore` that counts loads and stores, and repeated loads within one action.
struct Counting {
    mem: MemStore,
    seen: std::collections::HashSet<B256>,
    loads: u64,
    repeat_loads: u64,
    /// Repeated loads by namespace (the key's first byte).
    repeats_by_ns: [u64; 16],
    stores: u64,
    creates: u64,
    cold_stores: u64,
    logs: u64,
}

impl Store for Counting {
    fn load(&mut self, key: B256) -> Result<U256, StoreError> {
        self.loads += 1;
        if !self.seen.insert(key) {
            self.repeat_loads += 1;
            self.repeats_by_ns[usize::from(key[0] & 0x0f)] += 1;
        }
        self.mem.load(key)
    }

    fn store(&mut self, key: B256, value: U256) -> Result<(), StoreError> {
        self.stores += 1;
        if !value.is_zero() && !self.mem.slots.contains_key(&key) {
            self.creates += 1;
        }
        if self.seen.insert(key) {
            self.cold_stores += 1;
        }
        self.mem.store(key, value)
    }

    fn emit(&mut self, log: LogData) {
        self.logs += 1;
        self.mem.emit(log);
    }
}

fn spec() -> (ChainSpec, L1Config) {
    let mut l1 =
        devnet_config(&publishers(), Address::repeat_byte(0xfe), Address::repeat_byte(0xbb));
    // The workload's orders of 1 to 3 lots are below the devnet's 10 TUSD minimum notional: a
    // minimum of one unit keeps the workload the one the figures in BENCHMARKS.md were taken with.
    for market in l1["markets"].as_array_mut().unwrap() {
        market["minNotional"] = serde_json::json!("1");
    }
    let mut config = tandem_shared::chainspec::fixture_network("Cancun", 1337).unwrap();
    config.extra_fields.insert("tandem".into(), serde_json::json!({ "l1": l1.clone() }));
    let genesis = Genesis {
        config,
        gas_limit: 60_000_000,
        base_fee_per_gas: Some(1_000_000_000),
        ..Default::default()
    };
    (ChainSpec::from_genesis(genesis).unwrap(), L1Config::from_value(&l1).unwrap())
}

/// The deposits every run starts from.
fn set_up<S: Store>(ctx: &mut Ctx<'_, S>, accounts: usize) {
    for i in 0..accounts {
        let user = account(i);
        engine::deposit(ctx, user, ETH, 1_000 * 1_000 * LOT).unwrap();
        engine::deposit(ctx, user, TUSD, 10_000_000 * 1_000_000).unwrap();
        engine::perp_transfer(ctx, user, 5_000_000 * 1_000_000).unwrap();
    }
}

fn post_oracle<S: Store>(ctx: &mut Ctx<'_, S>) {
    for publisher in publishers() {
        engine::post_oracle_price(ctx, publisher, PERP, MID).unwrap();
    }
}

/// Applies `op`; `Err` when the engine refuses it.
fn apply<S: Store>(ctx: &mut Ctx<'_, S>, op: &Op) -> Result<(u64, u128, u128), ()> {
    match *op {
        Op::Place { user, req } => engine::place_order(ctx, user, &req)
            .map(|o| (o.order_id, o.filled, o.resting))
            .map_err(|_| ()),
        Op::Cancel { user, market, id } => {
            engine::cancel_order(ctx, user, market, id).map(|r| (id, 0, r)).map_err(|_| ())
        }
    }
}

/// Generates `n` accepted actions on a scratch copy of the set-up state.
fn generate(
    config: &L1Config,
    base: &MemStore,
    accounts: usize,
    n: usize,
    cancel_pct: u64,
    book_target: Option<usize>,
) -> (Vec<Op>, Mix) {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let mut store = Counting {
        mem: base.clone(),
        seen: Default::default(),
        loads: 0,
        repeat_loads: 0,
        repeats_by_ns: [0; 16],
        stores: 0,
        creates: 0,
        cold_stores: 0,
        logs: 0,
    };
    let mut ops = Vec::with_capacity(n);
    let mut mix = Mix::default();
    let mut resting: Vec<(Address, u32, u64)> = Vec::new();
    let mut cloid = 0u128;
    let mut block = 2;
    while ops.len() < n {
        if ops.len() % 1_000 == 0 {
            block += 1;
            post_oracle(&mut Ctx::new(&mut store, config, block));
        }
        if book_target.is_some() && ops.len() % 200 == 0 {
            // Forget the orders that were filled, so the count below is the book's size.
            let mut ctx = Ctx::new(&mut store, config, block);
            resting.retain(|(_, _, id)| book::get(&mut ctx, *id).unwrap().is_some());
        }
        let cancel = match book_target {
            Some(target) => resting.len() > target,
            None => rng.below(100) < cancel_pct,
        };
        let op = if cancel && !resting.is_empty() {
            // A cancel of an order that still rests.
            let mut pick = None;
            while !resting.is_empty() {
                let (user, market, id) =
                    resting.swap_remove(rng.below(resting.len() as u64) as usize);
                let mut ctx = Ctx::new(&mut store, config, block);
                if book::get(&mut ctx, id).unwrap().is_some() {
                    pick = Some(Op::Cancel { user, market, id });
                    break;
                }
            }
            match pick {
                Some(op) => op,
                None => continue,
            }
        } else {
            let user = account(rng.below(accounts as u64) as usize);
            let market = if rng.below(2) == 0 { SPOT } else { PERP };
            let side = if rng.below(2) == 0 { Side::Bid } else { Side::Ask };
            // Ticks away from the mid, towards the own side (passive) or through it (aggressive).
            let toward = |ticks: u128| match side {
                Side::Bid => MID - ticks * TICK,
                Side::Ask => MID + ticks * TICK,
            };
            let through = |ticks: u128| match side {
                Side::Bid => MID + ticks * TICK,
                Side::Ask => MID - ticks * TICK,
            };
            let kind = rng.below(100);
            let (price, size, tif) = if kind < 45 {
                (toward(rng.range(1, 40)), rng.range(1, 20), TimeInForce::Gtc)
            } else if kind < 80 {
                (through(rng.range(1, 10)), rng.range(1, 10), TimeInForce::Gtc)
            } else if kind < 93 {
                (through(rng.range(1, 15)), rng.range(1, 10), TimeInForce::Ioc)
            } else {
                (0, rng.range(1, 5), TimeInForce::Market)
            };
            // Passive orders carry a client id, as market makers' do.
            let id = if kind < 45 {
                cloid += 1;
                cloid
            } else {
                0
            };
            Op::Place {
                user,
                req: OrderRequest { market, side, price, size: size * LOT, tif, cloid: id },
            }
        };
        store.seen.clear();
        let (loads, repeats, stores) = (store.loads, store.repeat_loads, store.stores);
        let (creates, logs, cold_stores) = (store.creates, store.logs, store.cold_stores);
        let outcome = apply(&mut Ctx::new(&mut store, config, block), &op);
        let Ok((id, filled, rest)) = outcome else {
            mix.refused += 1;
            // A refused action changes nothing (the engine validates first): not in the workload.
            continue;
        };
        mix.loads += store.loads - loads;
        mix.repeat_loads += store.repeat_loads - repeats;
        mix.stores += store.stores - stores;
        mix.creates += store.creates - creates;
        mix.cold_stores += store.cold_stores - cold_stores;
        mix.logs += store.logs - logs;
        match op {
            Op::Place { user, req } => {
                mix.places += 1;
                if filled > 0 {
                    mix.traded += 1;
                }
                if rest > 0 {
                    mix.rested += 1;
                    resting.push((user, req.market, id));
                }
            }
            Op::Cancel { .. } => mix.cancels += 1,
        }
        ops.push(op);
    }
    let fill_topic =
        keccak256("Fill(uint32,address,address,uint64,uint64,bool,uint128,uint128,uint128)");
    mix.fills =
        store.mem.logs.iter().filter(|l| l.topics().first() == Some(&fill_topic)).count() as u64;

    mix.repeats_by_ns = NAMES
        .iter()
        .zip(store.repeats_by_ns)
        .filter(|(_, n)| *n > 0)
        .map(|(name, n)| format!("{name} {:.2}", n as f64 / ops.len() as f64))
        .collect::<Vec<_>>()
        .join(", ");
    mix.resting_at_end = resting
        .iter()
        .filter(|(_, _, id)| {
            book::get(&mut Ctx::new(&mut store.mem, config, block), *id).unwrap().is_some()
        })
        .count();
    (ops, mix)
}

/// The reference: the same actions on an in-memory store. Returns the time and a digest.
fn run_memory(
    config: &L1Config,
    base: &MemStore,
    ops: &[Op],
    block_size: usize,
    end_of_block: bool,
) -> (Duration, u128) {
    let mut mem = base.clone();
    let mut digest = 0u128;
    let started = Instant::now();
    for (b, chunk) in ops.chunks(block_size).enumerate() {
        let mut ctx = Ctx::new(&mut mem, config, 3 + b as u64);
        post_oracle(&mut ctx);
        for op in chunk {
            let (id, filled, rest) = apply(&mut ctx, op).unwrap();
            digest = digest.wrapping_add(u128::from(id) ^ filled ^ rest);
        }
        if end_of_block {
            engine::end_of_block(&mut ctx).unwrap();
        }
        ctx.store.logs.clear();
    }
    (started.elapsed(), digest)
}

/// Slots read from the state after the last block (the not yet persisted blocks' values, then
/// the persisted plain state) through a per-block write cache, as revm's state does within a
/// block (and with revm's hasher): `(original, present)` per slot touched.
struct TrieStore<'a> {
    state: StateProvider<'a>,
    pending: &'a B256Map<U256>,
    slots: B256Map<(U256, U256)>,
    logs: Vec<LogData>,
    db_reads: u64,
}

impl TrieStore<'_> {
    fn read(&mut self, key: B256) -> Result<U256, StoreError> {
        if let Some(value) = self.pending.get(&key) {
            return Ok(*value);
        }
        self.db_reads += 1;
        self.state.storage(L1_WRITE_ADDRESS, key).map_err(|e| StoreError::Backend(e.to_string()))
    }
}

impl Store for TrieStore<'_> {
    fn load(&mut self, key: B256) -> Result<U256, StoreError> {
        if let Some((_, present)) = self.slots.get(&key) {
            return Ok(*present);
        }
        let value = self.read(key)?;
        self.slots.insert(key, (value, value));
        Ok(value)
    }

    fn store(&mut self, key: B256, value: U256) -> Result<(), StoreError> {
        match self.slots.entry(key) {
            Entry::Occupied(mut e) => e.get_mut().1 = value,
            Entry::Vacant(_) => {
                let original = self.read(key)?;
                self.slots.insert(key, (original, value));
            }
        }
        Ok(())
    }

    fn emit(&mut self, log: LogData) {
        self.logs.push(log);
    }
}

#[derive(Default)]
struct TriePhases {
    engine: Duration,
    root: Duration,
    commit: Duration,
    blocks: u64,
    db_reads: u64,
    changed_slots: u64,
    /// Changed slots by namespace: created, deleted, updated.
    by_ns: [[u64; 3]; 16],
    /// Each block's whole time (a persisting block's includes the batch's commit).
    per_block: Vec<Duration>,
}

impl TriePhases {
    fn total(&self) -> Duration {
        self.engine + self.root + self.commit
    }

    /// Mean and slowest block time in ms, without the last block (it persists the blocks still
    /// in memory at once). At a block interval of T, a load of R orders/s makes blocks of
    /// K = R·T actions, and the node keeps up while a block takes at most T.
    fn block_ms(&self) -> (f64, f64) {
        let blocks = &self.per_block[..self.per_block.len().saturating_sub(1)];
        let ms = |d: &Duration| d.as_secs_f64() * 1e3;
        let mean = blocks.iter().map(ms).sum::<f64>() / blocks.len().max(1) as f64;
        (mean, blocks.iter().map(ms).fold(0.0, f64::max))
    }

    /// Orders/s over the last quarter of the blocks (the book and the history tables at their
    /// largest), without the last block (it persists the blocks still in memory at once).
    fn late_rate(&self, block_size: usize) -> f64 {
        let blocks = self.per_block.len().saturating_sub(1);
        let late = (blocks / 4).max(1);
        let time: Duration = self.per_block[blocks.saturating_sub(late)..blocks].iter().sum();
        per_sec(late * block_size, time)
    }
}

/// A block executed but not persisted yet: the block, its state changes, its trie changes on
/// its parent's state, and its changed slots of 0x3333…3333.
struct Pending {
    block: SealedBlock,
    bundle: BundleState,
    trie: TrieUpdates,
    slots: Vec<(B256, U256)>,
}

/// The chain as the node's block tree keeps it (`fork_choice`): the persisted tip in MDBX and
/// the executed blocks above it in memory. Each block's root is computed from the trie changes
/// of the blocks above the tip (`Database::trie_delta`), and a block is persisted with its own
/// trie changes once it is `threshold` blocks behind the head (`--engine.persistence-threshold`,
/// default 2; a finalized block is persisted at once, and a BFT chain finalizes about two blocks
/// behind its head).
struct Chain {
    db: Database,
    threshold: usize,
    /// Tip (number, hash) including the pending blocks.
    tip: (u64, B256),
    pending: Vec<Pending>,
    /// The pending blocks' trie changes from the persisted tip, folded.
    pending_trie: Option<TrieUpdates>,
    /// The pending blocks' present slot values, newest winning.
    pending_slots: B256Map<U256>,
}

impl Chain {
    /// Executes one block of `ops` (or the set-up) over the state after the tip, computes its
    /// root, and persists what is due (everything when `flush`).
    fn block(
        &mut self,
        config: &L1Config,
        phases: &mut TriePhases,
        flush: bool,
        body: impl FnOnce(&mut Ctx<'_, TrieStore<'_>>) -> u128,
    ) -> u128 {
        let started = Instant::now();
        let (number, parent_hash) = self.tip;
        let state = self.db.latest().unwrap();
        let info: AccountInfo = state.basic_ref(L1_WRITE_ADDRESS).unwrap().unwrap();
        let mut store = TrieStore {
            state,
            pending: &self.pending_slots,
            slots: B256Map::default(),
            logs: Vec::new(),
            db_reads: 0,
        };
        let digest = body(&mut Ctx::new(&mut store, config, number + 1));
        let mut storage = StorageWithOriginalValues::default();
        let mut slots = Vec::new();
        for (key, (original, present)) in store.slots.drain() {
            if original != present {
                let kind = if original.is_zero() {
                    0
                } else if present.is_zero() {
                    1
                } else {
                    2
                };
                phases.by_ns[usize::from(key[0] & 0x0f)][kind] += 1;
                storage.insert(
                    U256::from_be_bytes(key.0),
                    StorageSlot::new_changed(original, present),
                );
                slots.push((key, present));
            }
        }
        phases.db_reads += store.db_reads;
        let changed = storage.len();
        phases.changed_slots += changed as u64;
        drop(store);
        let mut bundle = BundleState::default();
        bundle.state.insert(
            L1_WRITE_ADDRESS,
            BundleAccount::new(Some(info.clone()), Some(info), storage, AccountStatus::Changed),
        );
        let executed = Instant::now();
        if self.pending_trie.is_none() {
            // As the tree after a persist: fold the blocks still above the tip.
            let tip = self.db.canonical_tip().unwrap().1;
            self.pending_trie = TrieUpdates::fold(tip, self.pending.iter().map(|p| &p.trie));
        }
        let trie = self.db.trie_delta(self.pending_trie.as_ref(), &bundle).unwrap();
        let rooted = Instant::now();
        let header = Header {
            number: number + 1,
            parent_hash,
            state_root: trie.state_root(),
            timestamp: number + 1,
            extra_data: Bytes::new(),
            ..Default::default()
        };
        let block = seal_block(Block {
            header,
            body: BlockBody { transactions: vec![], ommers: vec![], withdrawals: None },
        });
        self.tip = (number + 1, block.hash());
        match &mut self.pending_trie {
            Some(pending) => pending.merge(trie.clone()),
            None => self.pending_trie = Some(trie.clone()),
        }
        self.pending_slots.extend(slots.iter().copied());
        self.pending.push(Pending { block, bundle, trie, slots });
        let due = if flush {
            self.pending.len()
        } else {
            self.pending.len().saturating_sub(self.threshold)
        };
        if due > 0 {
            let tip = self.db.canonical_tip().unwrap().1;
            let persisting: Vec<Pending> = self.pending.drain(..due).collect();
            let updates = if self.pending.is_empty() {
                self.pending_trie.take().unwrap()
            } else {
                TrieUpdates::fold(tip, persisting.iter().map(|p| &p.trie)).unwrap()
            };
            let parts: Vec<BlockParts<'_>> =
                persisting.iter().map(|p| (&p.block, &[][..], &[][..], &p.bundle)).collect();
            self.db.commit_block_parts(&parts, updates).unwrap();
            self.pending_trie = None;
            self.pending_slots =
                self.pending.iter().flat_map(|p| p.slots.iter().copied()).collect();
        }
        phases.engine += executed - started;
        phases.root += rooted - executed;
        phases.commit += rooted.elapsed();
        phases.blocks += 1;
        phases.per_block.push(started.elapsed());
        if std::env::var("TRACE").is_ok() {
            eprintln!(
                "block {}: {changed} changed slots; engine {:.1} ms, root {:.1} ms, commit {:.1} ms",
                number + 1,
                (executed - started).as_secs_f64() * 1e3,
                (rooted - executed).as_secs_f64() * 1e3,
                rooted.elapsed().as_secs_f64() * 1e3
            );
        }
        digest
    }
}

/// A fresh database with the set-up committed as block 1.
fn trie_chain(
    dir: &std::path::Path,
    spec: &ChainSpec,
    config: &L1Config,
    accounts: usize,
    threshold: usize,
) -> Chain {
    let durable = std::env::var("DURABLE").map_or(true, |v| v != "0");
    let db =
        Database::init_with(dir, spec, DatabaseConfig { durable, ..DatabaseConfig::default() })
            .unwrap();
    let tip = db.canonical_tip().unwrap();
    let mut chain = Chain {
        db,
        threshold,
        tip,
        pending: Vec::new(),
        pending_trie: None,
        pending_slots: B256Map::default(),
    };
    chain.block(config, &mut TriePhases::default(), true, |ctx| {
        set_up(ctx, accounts);
        0
    });
    chain.db.warm_up().unwrap();
    chain
}

fn run_trie(
    chain: &mut Chain,
    config: &L1Config,
    ops: &[Op],
    block_size: usize,
    end_of_block: bool,
) -> (TriePhases, u128) {
    let mut phases = TriePhases::default();
    let mut digest = 0u128;
    let blocks = ops.len().div_ceil(block_size);
    for (i, chunk) in ops.chunks(block_size).enumerate() {
        let d = chain.block(config, &mut phases, i + 1 == blocks, |ctx| {
            post_oracle(ctx);
            let mut d = 0u128;
            for op in chunk {
                let (id, filled, rest) = apply(ctx, op).unwrap();
                d = d.wrapping_add(u128::from(id) ^ filled ^ rest);
            }
            if end_of_block {
                engine::end_of_block(ctx).unwrap();
            }
            d
        });
        digest = digest.wrapping_add(d);
    }
    (phases, digest)
}

/// CPU seconds (user + system, all threads) this process has used; Linux `USER_HZ` is 100.
fn cpu_secs() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let fields: Vec<&str> =
        stat.rsplit_once(')').map_or(Vec::new(), |(_, rest)| rest.split_whitespace().collect());
    let ticks = |i: usize| fields.get(i).and_then(|f| f.parse::<f64>().ok()).unwrap_or(0.0);
    // After the command name: state is field 0, utime 11, stime 12.
    (ticks(11) + ticks(12)) / 100.0
}

fn per_sec(n: usize, d: Duration) -> f64 {
    n as f64 / d.as_secs_f64()
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() {
    let env = |name: &str, default: usize| {
        std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
    };
    let (orders, accounts, runs) = (env("ORDERS", 200_000), env("ACCOUNTS", 1_000), env("RUNS", 5));
    let block_sizes: Vec<usize> = std::env::var("BLOCKS")
        .unwrap_or_else(|_| "1000,5000,10000,20000".into())
        .split(',')
        .map(|s| s.trim().parse().unwrap())
        .collect();
    let threshold = env("THRESHOLD", 2);
    let end_of_block = std::env::var("END_OF_BLOCK").is_ok_and(|v| v == "1");
    let (spec, config) = spec();

    let mut base = MemStore::default();
    set_up(&mut Ctx::new(&mut base, &config, 1), accounts);
    base.logs.clear();
    let started = Instant::now();
    let book_target = std::env::var("BOOK").ok().and_then(|v| v.parse().ok());
    let (ops, mix) =
        generate(&config, &base, accounts, orders, env("CANCEL_PCT", 20) as u64, book_target);
    let n = ops.len() as f64;
    eprintln!(
        "workload: {} actions ({} placements, {} cancels) among {accounts} accounts, generated in {:.1} s; \
         {:.0} % of placements traded, {:.0} % rested, {} fills, {} refused while generating (dropped); \
         {} orders resting at the end; per action {:.1} slot loads ({:.1} of them repeats within the action), {:.1} stores",
        ops.len(),
        mix.places,
        mix.cancels,
        started.elapsed().as_secs_f64(),
        100.0 * mix.traded as f64 / mix.places as f64,
        100.0 * mix.rested as f64 / mix.places as f64,
        mix.fills,
        mix.refused,
        mix.resting_at_end,
        mix.loads as f64 / n,
        mix.repeat_loads as f64 / n,
        mix.stores as f64 / n,
    );
    eprintln!("repeated loads per action by namespace: {}", mix.repeats_by_ns);
    // What the core precompile would charge on average (`l1::precompile`'s metering), an
    // action being its transaction: a slot's first access in the action is cold (EIP-2929).
    let gas = |count: u64, price: u64| (count * price) as f64 / n;
    let (updates, core) = (mix.stores - mix.creates, CORE_BASE_GAS as f64);
    let cold = mix.loads - mix.repeat_loads + mix.cold_stores;
    eprintln!(
        "core precompile gas per action {:.0}: base {core:.0}, cold slots {:.0} ({:.1} per action), warm reads {:.0}, creates {:.0} ({:.1} per action), other writes {:.0}, logs {:.0}",
        core + gas(cold, COLD_SLOT_GAS)
            + gas(mix.repeat_loads, WARM_READ_GAS)
            + gas(mix.creates, CORE_CREATE_GAS)
            + gas(updates, CORE_UPDATE_GAS)
            + gas(mix.logs, CORE_LOG_GAS),
        gas(cold, COLD_SLOT_GAS),
        cold as f64 / n,
        gas(mix.repeat_loads, WARM_READ_GAS),
        gas(mix.creates, CORE_CREATE_GAS),
        mix.creates as f64 / n,
        gas(updates, CORE_UPDATE_GAS),
        gas(mix.logs, CORE_LOG_GAS),
    );

    let mut memory = Vec::new();
    let mut trie: Vec<Vec<(f64, TriePhases)>> = block_sizes.iter().map(|_| Vec::new()).collect();
    for run in 1..=runs {
        let (time, reference) = run_memory(&config, &base, &ops, 1_000, end_of_block);
        let mem_rate = per_sec(ops.len(), time);
        eprintln!(
            "run {run}: memory {mem_rate:.0} orders/s ({:.2} µs/order)",
            time.as_secs_f64() * 1e6 / n
        );
        memory.push(mem_rate);
        for (i, &k) in block_sizes.iter().enumerate() {
            let dir = tempfile::tempdir().unwrap();
            let mut chain = trie_chain(dir.path(), &spec, &config, accounts, threshold);
            let cpu = cpu_secs();
            let (phases, digest) = run_trie(&mut chain, &config, &ops, k, end_of_block);
            let cpu = cpu_secs() - cpu;
            assert_eq!(digest, reference, "the trie run diverged from the memory run");
            let rate = per_sec(ops.len(), phases.total());
            let b = phases.blocks as f64;
            eprintln!(
                "run {run}: trie K={k}: {rate:.0} orders/s ({:.3}× memory), last quarter of the blocks {:.0} orders/s; per block engine+reads {:.1} ms, state root {:.1} ms, commit {:.1} ms; {:.0} slots read from MDBX, {:.0} changed per block; CPU {:.2} s over {:.2} s wall",
                rate / mem_rate,
                phases.late_rate(k),
                phases.engine.as_secs_f64() * 1e3 / b,
                phases.root.as_secs_f64() * 1e3 / b,
                phases.commit.as_secs_f64() * 1e3 / b,
                phases.db_reads as f64 / b,
                phases.changed_slots as f64 / b,
                cpu,
                phases.total().as_secs_f64(),
            );
            let ns: Vec<String> = NAMES
                .iter()
                .zip(phases.by_ns)
                .filter(|(_, c)| c.iter().sum::<u64>() > 0)
                .map(|(name, [c, d, u])| {
                    format!("{name} +{:.2} -{:.2} ~{:.2}", c as f64 / n, d as f64 / n, u as f64 / n)
                })
                .collect();
            eprintln!(
                "run {run}: trie K={k}: changed slots per action (created, deleted, updated): {}",
                ns.join(", ")
            );
            trie[i].push((rate, phases));
        }
    }

    let mem = median(memory.clone());
    println!(
        "| path | block size K | orders/s | vs memory | last quarter orders/s | ms per block, mean / slowest | engine + slot reads ms/block | state root ms/block | commit ms/block | MDBX slot reads/block | changed slots/block | runs (orders/s) |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|");
    let list = |v: &[f64]| v.iter().map(|r| format!("{r:.0}")).collect::<Vec<_>>().join(", ");
    println!(
        "| memory (`MemStore`) | 1000 | {mem:.0} | 1.00× | - | - | - | - | - | - | - | {} |",
        list(&memory)
    );
    for (i, &k) in block_sizes.iter().enumerate() {
        let rates: Vec<f64> = trie[i].iter().map(|(r, _)| *r).collect();
        let med = median(rates.clone());
        // The phases of the median run.
        let (_, p) = trie[i].iter().find(|(r, _)| *r == med).unwrap();
        let b = p.blocks as f64;
        println!(
            "| state trie + MDBX commit | {k} | {med:.0} | {:.3}× | {:.0} | {:.0} / {:.0} | {:.1} | {:.1} | {:.1} | {:.0} | {:.0} | {} |",
            med / mem,
            p.late_rate(k),
            p.block_ms().0,
            p.block_ms().1,
            p.engine.as_secs_f64() * 1e3 / b,
            p.root.as_secs_f64() * 1e3 / b,
            p.commit.as_secs_f64() * 1e3 / b,
            p.db_reads as f64 / b,
            p.changed_slots as f64 / b,
            list(&rates),
        );
    }
}
