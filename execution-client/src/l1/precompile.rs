//! The engine inside the EVM: read precompiles (`0x…0800`–`0x…0809`), the privileged core
//! precompile the write contract forwards to (`0x…08ff`), and the journal-backed [`Store`].
//!
//! State is priced as the EVM prices storage (EIP-2929): the first access of an L1 slot in a
//! transaction is cold ([`COLD_SLOT_GAS`], 2,100), a later read warm ([`WARM_READ_GAS`], 100),
//! with the EVM journal's warm set, so a slot a transaction's earlier call (or its access list)
//! touched is warm. Reads cost `2000 + 65 × (input + output bytes)` plus the slots they read;
//! bad input reverts with a reason and consumes all gas of the frame. Core actions cost
//! [`CORE_BASE_GAS`] plus their slot reads, their writes ([`CORE_CREATE_GAS`] for a slot set from
//! zero, [`CORE_UPDATE_GAS`] for another, plus the cold surcharge for a slot not accessed before,
//! as `SSTORE`) and logs, counted while the work runs, so state growth is paid like `SSTORE`;
//! reads and actions halt out of gas as soon as the count passes their gas limit, so a sweep of
//! a deep book stops where its gas ends rather than running to the end unpaid.
//! A failed action reverts with the engine's reason and the journal undoes its writes. A state
//! read that fails (database) is fatal to the block, never a revert, so no node can disagree
//! because of its own disk.

use std::sync::Arc;

use alloy_evm::{
    EvmInternals,
    precompiles::{DynPrecompile, PrecompileInput, PrecompilesMap},
};
use alloy_primitives::{Address, B256, Bytes, I256, Log, LogData, U256};
use alloy_sol_types::{Revert, SolCall, SolError, SolEvent, SolInterface, SolValue};
use revm::precompile::{
    PrecompileError, PrecompileHalt, PrecompileId, PrecompileOutput, PrecompileResult,
};

use super::{
    Ctx, L1_CORE_ADDRESS, L1_WRITE_ADDRESS, READ_ACCOUNT_VALUE, READ_ASSET_INFO, READ_BEST_BID_ASK,
    READ_L1_BLOCK_NUMBER, READ_MARK_PRICE, READ_MARKET_INFO, READ_ORACLE_PRICE, READ_ORDER,
    READ_PERP_POSITION, READ_SPOT_BALANCE, SYSTEM_CALLER,
    abi::IL1Core::{self, IL1CoreCalls},
    book, clearinghouse,
    config::{L1Config, MarketKind},
    engine,
    error::L1Error,
    oracle,
    order::{OrderRequest, Side, TimeInForce},
    spot,
    store::{GasSchedule, Metered, Store, StoreError},
};

/// Fixed gas of a read precompile call.
pub const READ_BASE_GAS: u64 = 2_000;
/// Gas per input or output byte of a read precompile call.
pub const READ_GAS_PER_BYTE: u64 = 65;
/// Fixed gas of a core action.
pub const CORE_BASE_GAS: u64 = 5_000;
/// Gas of the first access of an L1 slot in a transaction, read or write (a cold `SLOAD`).
pub const COLD_SLOT_GAS: u64 = 2_100;
/// Gas per read of an L1 slot accessed before in the transaction (a warm `SLOAD`).
pub const WARM_READ_GAS: u64 = 100;
/// Gas per L1 slot set from zero by a core action (new state, as `SSTORE` set).
pub const CORE_CREATE_GAS: u64 = 20_000;
/// Gas per other L1 slot write by a core action.
pub const CORE_UPDATE_GAS: u64 = 2_900;
/// Gas per log a core action emits.
pub const CORE_LOG_GAS: u64 = 1_000;

/// The prices a core action's work is metered at.
const CORE_GAS: GasSchedule = GasSchedule {
    base: CORE_BASE_GAS,
    cold: COLD_SLOT_GAS,
    warm_read: WARM_READ_GAS,
    create: CORE_CREATE_GAS,
    update: CORE_UPDATE_GAS,
    log: CORE_LOG_GAS,
};

/// The prices a read of `input_len` bytes is metered at (plus its output bytes once known).
fn read_schedule(input_len: usize) -> GasSchedule {
    let bytes = READ_GAS_PER_BYTE.saturating_mul(input_len as u64);
    GasSchedule {
        base: READ_BASE_GAS.saturating_add(bytes),
        cold: COLD_SLOT_GAS,
        warm_read: WARM_READ_GAS,
        // The read path writes nothing (`ReadOnly` refuses it).
        create: 0,
        update: 0,
        log: 0,
    }
}

/// The read precompiles: address, precompile id and what each answers.
const READS: [(Address, &str, ReadKind); 10] = [
    (READ_SPOT_BALANCE, "l1_spot_balance", ReadKind::SpotBalance),
    (READ_PERP_POSITION, "l1_perp_position", ReadKind::PerpPosition),
    (READ_ACCOUNT_VALUE, "l1_account_value", ReadKind::AccountValue),
    (READ_ORACLE_PRICE, "l1_oracle_price", ReadKind::OraclePrice),
    (READ_MARK_PRICE, "l1_mark_price", ReadKind::MarkPrice),
    (READ_BEST_BID_ASK, "l1_best_bid_ask", ReadKind::BestBidAsk),
    (READ_ASSET_INFO, "l1_asset_info", ReadKind::AssetInfo),
    (READ_MARKET_INFO, "l1_market_info", ReadKind::MarketInfo),
    (READ_L1_BLOCK_NUMBER, "l1_block_number", ReadKind::BlockNumber),
    (READ_ORDER, "l1_order", ReadKind::Order),
];

/// The standard precompiles of the block's fork plus, when the chain enables it, the L1's.
pub fn install(map: &mut PrecompilesMap, config: &Arc<L1Config>) {
    let mut entries: Vec<(Address, DynPrecompile)> = READS
        .into_iter()
        .map(|(address, id, kind)| {
            let config = Arc::clone(config);
            let precompile = DynPrecompile::new_stateful(PrecompileId::custom(id), move |input| {
                read_precompile(&config, kind, input)
            });
            (address, precompile)
        })
        .collect();
    entries.push((L1_CORE_ADDRESS, core(config, CoreMode::Actions)));
    map.extend_precompiles(entries);
}

/// What one instance of the core precompile runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum CoreMode {
    /// Users' actions forwarded by the write contract, metered. Every EVM the node builds
    /// (blocks, payloads, `eth_call` and the other simulations) has this instance.
    Actions,
    /// The protocol's end-of-block step, unmetered: installed only by [`run_end_of_block`] for
    /// the length of its system call, so no simulation can reach it whatever its caller or
    /// state overrides say.
    SystemStep,
}

fn core(config: &Arc<L1Config>, mode: CoreMode) -> DynPrecompile {
    let config = Arc::clone(config);
    DynPrecompile::new_stateful(PrecompileId::custom("l1_core"), move |input| {
        core_precompile(&config, mode, input)
    })
}

/// The error of a simulation that asks for the end-of-block step (caller: the system address).
pub const PROTOCOL_ONLY: &str = "L1 core: the end-of-block step is protocol-only; it runs inside block execution and cannot be simulated";

/// The L1 state seen through the EVM journal: reads and writes of [`L1_WRITE_ADDRESS`]'s storage.
struct JournalStore<'a, 'b> {
    internals: &'a mut EvmInternals<'b>,
}

impl<'a, 'b> JournalStore<'a, 'b> {
    fn new(internals: &'a mut EvmInternals<'b>) -> Result<Self, StoreError> {
        // The journal reads storage only of loaded accounts.
        internals.load_account(L1_WRITE_ADDRESS).map_err(|e| StoreError::Backend(e.to_string()))?;
        Ok(Self { internals })
    }
}

impl Store for JournalStore<'_, '_> {
    fn load(&mut self, key: B256) -> Result<U256, StoreError> {
        self.internals
            .sload(L1_WRITE_ADDRESS, key.into())
            .map(|loaded| loaded.data)
            .map_err(|e| StoreError::Backend(e.to_string()))
    }

    fn load_access(&mut self, key: B256) -> Result<(U256, Option<bool>), StoreError> {
        // The journal keeps the transaction's warm set (EIP-2929), across this call's frames.
        self.internals
            .sload(L1_WRITE_ADDRESS, key.into())
            .map(|loaded| (loaded.data, Some(loaded.is_cold)))
            .map_err(|e| StoreError::Backend(e.to_string()))
    }

    fn store(&mut self, key: B256, value: U256) -> Result<(), StoreError> {
        self.internals
            .sstore(L1_WRITE_ADDRESS, key.into(), value)
            .map(|_| ())
            .map_err(|e| StoreError::Backend(e.to_string()))
    }

    fn emit(&mut self, log: LogData) {
        self.internals.log(Log { address: L1_WRITE_ADDRESS, data: log });
    }
}

/// Read-only access for the read precompiles: a write would be an engine bug, reported as one.
struct ReadOnly<S>(S);

impl<S: Store> Store for ReadOnly<S> {
    fn load(&mut self, key: B256) -> Result<U256, StoreError> {
        self.0.load(key)
    }

    fn load_access(&mut self, key: B256) -> Result<(U256, Option<bool>), StoreError> {
        self.0.load_access(key)
    }

    fn store(&mut self, key: B256, _value: U256) -> Result<(), StoreError> {
        Err(StoreError::Backend(format!("read path wrote slot {key}")))
    }

    fn emit(&mut self, _log: LogData) {}
}

/// The block number the precompile runs in.
fn block_number(internals: &EvmInternals<'_>) -> u64 {
    internals.block_number().saturating_to()
}

/// Revert with `reason`, consuming `gas` (all of the frame's gas for bad input).
fn revert(reason: impl Into<String>, gas: u64, reservoir: u64) -> PrecompileResult {
    let data = Revert::from(reason.into()).abi_encode();
    Ok(PrecompileOutput::revert(gas, data.into(), reservoir))
}

/// An engine error as a precompile result: a reason revert, or fatal when the state is unreadable.
fn engine_error(err: L1Error, gas: u64, reservoir: u64) -> PrecompileResult {
    match err {
        L1Error::Store(StoreError::OutOfGas) => {
            Ok(PrecompileOutput::halt(PrecompileHalt::OutOfGas, reservoir))
        }
        L1Error::Store(e) => Err(PrecompileError::Fatal(e.to_string())),
        other => revert(other.to_string(), gas, reservoir),
    }
}

#[derive(Debug, Clone, Copy)]
enum ReadKind {
    SpotBalance,
    PerpPosition,
    AccountValue,
    OraclePrice,
    MarkPrice,
    BestBidAsk,
    AssetInfo,
    MarketInfo,
    BlockNumber,
    Order,
}

/// Input words of a read: exactly `n` 32-byte words.
fn words(data: &[u8], n: usize) -> Option<Vec<U256>> {
    (data.len() == 32 * n).then(|| data.chunks_exact(32).map(U256::from_be_slice).collect())
}

fn word_address(word: U256) -> Option<Address> {
    (word < (U256::from(1) << 160)).then(|| Address::from_word(B256::from(word)))
}

fn word_u32(word: U256) -> Option<u32> {
    u32::try_from(word).ok()
}

fn word_u64(word: U256) -> Option<u64> {
    u64::try_from(word).ok()
}

fn i256(v: i128) -> I256 {
    I256::try_from(v).unwrap_or(I256::ZERO)
}

fn read_precompile(
    config: &L1Config,
    kind: ReadKind,
    mut input: PrecompileInput<'_>,
) -> PrecompileResult {
    let gas_limit = input.gas;
    let reservoir = input.reservoir;
    let data = input.data.to_vec();
    let mut store = match JournalStore::new(&mut input.internals) {
        Ok(store) => ReadOnly(store),
        Err(e) => return Err(PrecompileError::Fatal(e.to_string())),
    };
    let block = block_number(store.0.internals);
    let (result, gas) = run_read(&mut store, config, block, kind, &data, gas_limit);
    match result {
        Ok(_) if gas > gas_limit => Ok(PrecompileOutput::halt(PrecompileHalt::OutOfGas, reservoir)),
        Ok(output) => Ok(PrecompileOutput::new(gas, output.into(), reservoir)),
        Err(ReadError::Input(reason)) => revert(reason, gas_limit, reservoir),
        Err(ReadError::Engine(e)) => engine_error(e, gas_limit, reservoir),
    }
}

/// Answers a read on `store`, metered by its bytes and the slots it reads, stopping once it
/// costs more than `gas_limit`: its result and the gas it used.
fn run_read<S: Store>(
    store: &mut S,
    config: &L1Config,
    block: u64,
    kind: ReadKind,
    data: &[u8],
    gas_limit: u64,
) -> (Result<Vec<u8>, ReadError>, u64) {
    let schedule = read_schedule(data.len());
    let mut metered = Metered::with_limit(store, schedule, gas_limit);
    let result = read(&mut Ctx::new(&mut metered, config, block), kind, data);
    let mut gas = metered.gas(&schedule);
    if let Ok(output) = &result {
        gas = gas.saturating_add(READ_GAS_PER_BYTE.saturating_mul(output.len() as u64));
    }
    (result, gas)
}

enum ReadError {
    Input(String),
    Engine(L1Error),
}

impl From<L1Error> for ReadError {
    fn from(e: L1Error) -> Self {
        Self::Engine(e)
    }
}

/// Answers one read precompile call on the L1 state (the `l1_*` RPC methods call the same engine
/// functions through [`super::view`]).
fn read<S: Store>(ctx: &mut Ctx<'_, S>, kind: ReadKind, data: &[u8]) -> Result<Vec<u8>, ReadError> {
    let bad = |what: &str| ReadError::Input(format!("invalid input: expected {what}"));
    Ok(match kind {
        ReadKind::SpotBalance => {
            let w = words(data, 2).ok_or_else(|| bad("(address user, uint32 asset)"))?;
            let (Some(user), Some(asset)) = (word_address(w[0]), word_u32(w[1])) else {
                return Err(bad("(address user, uint32 asset)"));
            };
            ctx.config.asset(asset)?;
            let (total, hold) = spot::balance(ctx, user, asset)?;
            (U256::from(total), U256::from(hold)).abi_encode_params()
        }
        ReadKind::PerpPosition => {
            let w = words(data, 2).ok_or_else(|| bad("(address user, uint32 market)"))?;
            let (Some(user), Some(market)) = (word_address(w[0]), word_u32(w[1])) else {
                return Err(bad("(address user, uint32 market)"));
            };
            ctx.config.perp_market(market)?;
            let p = clearinghouse::position(ctx, user, market)?;
            (i256(p.size), U256::from(p.entry_price), U256::from(p.margin), i256(p.unrealized_pnl))
                .abi_encode_params()
        }
        ReadKind::AccountValue => {
            let w = words(data, 1).ok_or_else(|| bad("(address user)"))?;
            let user = word_address(w[0]).ok_or_else(|| bad("(address user)"))?;
            let a = clearinghouse::account(ctx, user)?;
            (
                i256(a.account_value),
                i256(a.cash),
                U256::from(a.initial_margin),
                U256::from(a.maintenance_margin),
            )
                .abi_encode_params()
        }
        ReadKind::OraclePrice | ReadKind::MarkPrice => {
            let w = words(data, 1).ok_or_else(|| bad("(uint32 market)"))?;
            let market = word_u32(w[0]).ok_or_else(|| bad("(uint32 market)"))?;
            ctx.config.perp_market(market)?;
            let price = if matches!(kind, ReadKind::OraclePrice) {
                oracle::oracle_price(ctx, market)?
            } else {
                oracle::mark_price(ctx, market)?
            };
            let price = price.ok_or(L1Error::NoOraclePrice(market))?;
            U256::from(price).abi_encode()
        }
        ReadKind::BestBidAsk => {
            let w = words(data, 1).ok_or_else(|| bad("(uint32 market)"))?;
            let market = word_u32(w[0]).ok_or_else(|| bad("(uint32 market)"))?;
            let (bid, ask) = engine::best_bid_ask(ctx, market)?;
            (U256::from(bid.unwrap_or(0)), U256::from(ask.unwrap_or(0))).abi_encode_params()
        }
        ReadKind::AssetInfo => {
            let w = words(data, 1).ok_or_else(|| bad("(uint32 asset)"))?;
            let index = word_u32(w[0]).ok_or_else(|| bad("(uint32 asset)"))?;
            let asset = ctx.config.asset(index)?;
            // uint8 is encoded as a full word, as U256 is.
            (asset.token.unwrap_or(Address::ZERO), U256::from(asset.decimals), asset.symbol.clone())
                .abi_encode_params()
        }
        ReadKind::MarketInfo => {
            let w = words(data, 1).ok_or_else(|| bad("(uint32 market)"))?;
            let index = word_u32(w[0]).ok_or_else(|| bad("(uint32 market)"))?;
            let m = ctx.config.market(index)?;
            let is_perp = m.kind == MarketKind::Perp;
            let base = if is_perp { u32::MAX } else { m.base.unwrap_or(0) };
            let quote = ctx.config.quote_asset(index)?;
            let base_decimals = match m.kind {
                MarketKind::Perp => m.base_decimals.unwrap_or(0),
                MarketKind::Spot => ctx.config.asset(base)?.decimals,
            };
            (
                is_perp,
                base,
                quote,
                U256::from(m.tick_size),
                U256::from(m.lot_size),
                m.taker_fee_bps,
                m.max_leverage.unwrap_or(0),
                m.maintenance_margin_bps.unwrap_or(0),
                U256::from(base_decimals),
            )
                .abi_encode_params()
        }
        ReadKind::BlockNumber => {
            if !data.is_empty() {
                return Err(bad("no input"));
            }
            clearinghouse::l1_block_number(ctx)?.abi_encode()
        }
        ReadKind::Order => {
            let w = words(data, 1).ok_or_else(|| bad("(uint64 orderId)"))?;
            let id = word_u64(w[0]).ok_or_else(|| bad("(uint64 orderId)"))?;
            let order = book::get(ctx, id)?.ok_or(L1Error::UnknownOrder(id))?;
            (
                order.owner,
                order.market,
                order.side.is_buy(),
                order.price,
                order.remaining,
                order.cloid,
            )
                .abi_encode_params()
        }
    })
}

fn core_precompile(
    config: &L1Config,
    mode: CoreMode,
    mut input: PrecompileInput<'_>,
) -> PrecompileResult {
    let gas_limit = input.gas;
    let reservoir = input.reservoir;
    let caller = input.caller;
    let direct = input.is_direct_call();
    let is_static = input.is_static;
    let call = match IL1CoreCalls::abi_decode_validate(input.data) {
        Ok(call) => call,
        Err(_) => return revert("invalid input: unknown L1 core call", gas_limit, reservoir),
    };
    let system_step = matches!(call, IL1CoreCalls::endOfBlock(_));
    if system_step && caller == SYSTEM_CALLER && mode == CoreMode::Actions {
        // Only a call made as the system address gets here, which no signed transaction can
        // be: this is a simulation (`eth_call`, a trace, ...) asking for the protocol's
        // unmetered step. Fatal, so every simulation path answers with an error, not a result.
        return Err(PrecompileError::Fatal(PROTOCOL_ONLY.into()));
    }
    let allowed = direct
        && !is_static
        && match mode {
            CoreMode::Actions => !system_step && caller == L1_WRITE_ADDRESS,
            CoreMode::SystemStep => system_step && caller == SYSTEM_CALLER,
        };
    if !allowed {
        return revert("L1 core: only the L1 write contract may call", gas_limit, reservoir);
    }
    let mut journal = match JournalStore::new(&mut input.internals) {
        Ok(store) => store,
        Err(e) => return Err(PrecompileError::Fatal(e.to_string())),
    };
    let block = block_number(journal.internals);
    let (result, gas) = run_core(&mut journal, config, block, call, system_step, gas_limit);
    match result {
        Ok(_) if gas > gas_limit => Ok(PrecompileOutput::halt(PrecompileHalt::OutOfGas, reservoir)),
        Ok(output) => Ok(PrecompileOutput::new(gas, output.into(), reservoir)),
        Err(e) => engine_error(e, gas.min(gas_limit), reservoir),
    }
}

/// Runs an admitted core call on `store`: its result and the gas it used.
fn run_core<S: Store>(
    store: &mut S,
    config: &L1Config,
    block: u64,
    call: IL1CoreCalls,
    system_step: bool,
    gas_limit: u64,
) -> (Result<Vec<u8>, L1Error>, u64) {
    // The system step is the protocol's own work, not a transaction's: it is not metered. An
    // action stops at its gas limit, before the work it has not paid for (a long sweep of the
    // book), and the frame's journal undoes what it did.
    let mut metered = if system_step {
        Metered::new(store)
    } else {
        Metered::with_limit(store, CORE_GAS, gas_limit)
    };
    let mut ctx = Ctx::new(&mut metered, config, block);
    let result = dispatch(&mut ctx, call);
    let gas = if system_step { 0 } else { metered.gas(&CORE_GAS) };
    (result, gas)
}

/// What [`call_on_store`] answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreCall {
    /// The precompile's output (ABI-encoded return values).
    Output(Vec<u8>),
    /// A revert with this reason (bad input, or the engine refused the action).
    Revert(String),
    /// The action ran out of its gas.
    OutOfGas,
    /// The store failed (fatal to a block).
    Fatal(String),
}

/// Answers `data` sent to the L1 precompile at `address` on `store` without an EVM, as the
/// EVM's call from the write contract would be answered (core actions metered to `gas_limit`;
/// the end-of-block step refused as it is to every caller but the system step): the
/// precompiles' input decoding and dispatch, for fuzzing. `None` for any other address.
pub fn call_on_store<S: Store>(
    store: &mut S,
    config: &L1Config,
    block: u64,
    address: Address,
    data: &[u8],
    gas_limit: u64,
) -> Option<StoreCall> {
    let fail = |e: L1Error| match e {
        L1Error::Store(StoreError::OutOfGas) => StoreCall::OutOfGas,
        L1Error::Store(e) => StoreCall::Fatal(e.to_string()),
        other => StoreCall::Revert(other.to_string()),
    };
    if address == L1_CORE_ADDRESS {
        let Ok(call) = IL1CoreCalls::abi_decode_validate(data) else {
            return Some(StoreCall::Revert("invalid input: unknown L1 core call".into()));
        };
        if matches!(call, IL1CoreCalls::endOfBlock(_)) {
            return Some(StoreCall::Revert("L1 core: only the L1 write contract may call".into()));
        }
        return Some(match run_core(store, config, block, call, false, gas_limit) {
            (Ok(_), gas) if gas > gas_limit => StoreCall::OutOfGas,
            (Ok(output), _) => StoreCall::Output(output),
            (Err(e), _) => fail(e),
        });
    }
    let (_, _, kind) = READS.into_iter().find(|(a, _, _)| *a == address)?;
    let mut read_only = ReadOnly(store);
    Some(match run_read(&mut read_only, config, block, kind, data, gas_limit) {
        (Ok(_), gas) if gas > gas_limit => StoreCall::OutOfGas,
        (Ok(output), _) => StoreCall::Output(output),
        (Err(ReadError::Input(reason)), _) => StoreCall::Revert(reason),
        (Err(ReadError::Engine(e)), _) => fail(e),
    })
}

fn amount(value: U256) -> Result<u128, L1Error> {
    u128::try_from(value).map_err(|_| L1Error::Overflow)
}

/// Runs one core call for its user; returns the ABI-encoded return values.
fn dispatch<S: Store>(ctx: &mut Ctx<'_, S>, call: IL1CoreCalls) -> Result<Vec<u8>, L1Error> {
    Ok(match call {
        IL1CoreCalls::deposit(c) => {
            let asset = ctx.config.asset_of_token(c.token)?;
            engine::deposit(ctx, c.user, asset, amount(c.amount)?)?;
            Vec::new()
        }
        IL1CoreCalls::withdraw(c) => {
            let token = ctx.config.asset(c.asset)?.token.unwrap_or(Address::ZERO);
            engine::withdraw(ctx, c.user, c.asset, amount(c.amount)?)?;
            IL1Core::withdrawCall::abi_encode_returns(&token)
        }
        IL1CoreCalls::placeOrder(c) => {
            let tif = TimeInForce::from_u8(c.tif).ok_or(L1Error::InvalidTif(c.tif))?;
            let request = OrderRequest {
                market: c.market,
                side: Side::from_is_buy(c.isBuy),
                price: c.price,
                size: c.size,
                tif,
                cloid: c.cloid,
            };
            let outcome = engine::place_order(ctx, c.user, &request)?;
            IL1Core::placeOrderCall::abi_encode_returns(&IL1Core::placeOrderReturn {
                orderId: outcome.order_id,
                filled: outcome.filled,
                resting: outcome.resting,
            })
        }
        IL1CoreCalls::cancelOrder(c) => {
            let remaining = engine::cancel_order(ctx, c.user, c.market, c.orderId)?;
            IL1Core::cancelOrderCall::abi_encode_returns(&remaining)
        }
        IL1CoreCalls::cancelByCloid(c) => {
            let remaining = engine::cancel_by_cloid(ctx, c.user, c.market, c.cloid)?;
            IL1Core::cancelByCloidCall::abi_encode_returns(&remaining)
        }
        IL1CoreCalls::perpTransfer(c) => {
            let value = i128::try_from(c.amount).map_err(|_| L1Error::Overflow)?;
            engine::perp_transfer(ctx, c.user, value)?;
            Vec::new()
        }
        IL1CoreCalls::postOraclePrice(c) => {
            engine::post_oracle_price(ctx, c.user, c.market, c.price)?;
            Vec::new()
        }
        IL1CoreCalls::endOfBlock(_) => {
            engine::end_of_block(ctx)?;
            Vec::new()
        }
    })
}

/// Calldata of the end-of-block step's system call.
pub fn end_of_block_calldata() -> Bytes {
    IL1Core::endOfBlockCall {}.abi_encode().into()
}

/// Why the end-of-block step did not complete.
#[derive(Debug, thiserror::Error)]
pub enum EndOfBlockError {
    /// The state could not be read (not the block's fault).
    #[error("L1 end-of-block step: {0}")]
    Internal(String),
    /// The step itself failed: the same on every node, so the block is invalid.
    #[error("L1 end-of-block step failed: {0}")]
    Failed(String),
}

/// Runs the L1 end-of-block step (funding, liquidations, marks) as a system call after the
/// block's transactions, as EIP-7002's post-block call runs, and commits its state changes;
/// returns the step's logs (`Funding`, `Liquidation`, `BadDebt`), which no receipt carries.
pub fn run_end_of_block<E>(evm: &mut E, config: &Arc<L1Config>) -> Result<Vec<Log>, EndOfBlockError>
where
    E: alloy_evm::Evm<Precompiles = PrecompilesMap>,
    E::DB: revm::DatabaseCommit,
{
    // The step's instance of the core precompile exists only during this system call; the
    // users' instance is put back whatever the call's outcome.
    let mut actions = None;
    evm.precompiles_mut().apply_precompile(&L1_CORE_ADDRESS, |current| {
        actions = current;
        Some(core(config, CoreMode::SystemStep))
    });
    let outcome = evm.transact_system_call(SYSTEM_CALLER, L1_CORE_ADDRESS, end_of_block_calldata());
    evm.precompiles_mut().apply_precompile(&L1_CORE_ADDRESS, |_| actions);
    let outcome = outcome.map_err(|e| EndOfBlockError::Internal(e.to_string()))?;
    if !outcome.result.is_success() {
        let reason = outcome
            .result
            .output()
            .and_then(|data| crate::rpc::decode_revert_reason(data))
            .unwrap_or_else(|| format!("{:?}", outcome.result));
        return Err(EndOfBlockError::Failed(reason));
    }
    // A system call has no receipt: its liquidations and bad debt also go to the node's log,
    // and `l1_blockEvents` serves its logs by executing the block again.
    let logs = outcome.result.logs().to_vec();
    for log in &logs {
        if let Ok(event) = super::events::Liquidation::decode_log_data(&log.data) {
            tracing::info!(
                user = %event.user, market = event.market, size = event.size,
                mark = event.markPrice, "L1 liquidation: position taken over by the backstop"
            );
        } else if let Ok(event) = super::events::BadDebt::decode_log_data(&log.data) {
            tracing::warn!(
                user = %event.user, amount = %event.amount,
                "L1 bad debt absorbed by the backstop"
            );
        }
    }
    revm::DatabaseCommit::commit(evm.db_mut(), outcome.state);
    Ok(logs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_require_exact_length_and_ranges() {
        assert!(words(&[0u8; 63], 2).is_none());
        assert!(words(&[0u8; 65], 2).is_none());
        assert_eq!(words(&[0u8; 64], 2).map(|w| w.len()), Some(2));
        assert!(word_address(U256::from(1) << 160).is_none());
        assert!(word_u32(U256::from(u64::from(u32::MAX) + 1)).is_none());
    }

    #[test]
    fn reads_are_metered_by_the_slots_they_read_cold_then_warm() {
        use crate::l1::store::testing::Journal;
        let config = super::super::config::test_config();
        let mut tx = Journal::default();
        let user = Address::repeat_byte(7);
        spot::deposit(&mut Ctx::new(&mut tx.mem, &config, 1), user, 1, 5).unwrap();
        let bytes = |input: usize, output: usize| 2_000 + 65 * (input + output) as u64;
        let balance = (user, 1u32).abi_encode_params();
        let gas = |tx: &mut Journal, kind, data: &[u8]| {
            let (result, gas) = run_read(tx, &config, 1, kind, data, 1_000_000);
            assert!(result.is_ok());
            gas
        };
        // One slot, cold in the transaction's first read, warm in the next.
        assert_eq!(gas(&mut tx, ReadKind::SpotBalance, &balance), bytes(64, 64) + 2_100);
        assert_eq!(gas(&mut tx, ReadKind::SpotBalance, &balance), bytes(64, 64) + 100);
        // Config only: no slot.
        assert_eq!(gas(&mut tx, ReadKind::AssetInfo, &1u32.abi_encode()), bytes(32, 160));
        // An account's value: its cash, position and order bitmaps, three cold slots; the
        // position bitmap is read again for the position list, warm.
        let account = user.abi_encode();
        let want = bytes(32, 128) + 3 * 2_100 + 100;
        assert_eq!(gas(&mut tx, ReadKind::AccountValue, &account), want);
        // A new transaction: cold again.
        tx.accessed.clear();
        assert_eq!(gas(&mut tx, ReadKind::SpotBalance, &balance), bytes(64, 64) + 2_100);
        // Short of gas for the slot: out of gas, through the same path as the EVM's.
        let exact = bytes(64, 64) + 2_100;
        let call = |tx: &mut Journal, limit| {
            call_on_store(tx, &config, 1, READ_SPOT_BALANCE, &balance, limit)
        };
        tx.accessed.clear();
        assert_eq!(call(&mut tx, exact - 1), Some(StoreCall::OutOfGas));
        tx.accessed.clear();
        assert!(matches!(call(&mut tx, exact), Some(StoreCall::Output(_))));
    }

    #[test]
    fn reads_answer_on_a_memory_store() {
        let config = super::super::config::test_config();
        let mut mem = super::super::store::MemStore::default();
        let user = Address::repeat_byte(7);
        {
            let mut ctx = Ctx::new(&mut mem, &config, 1);
            spot::deposit(&mut ctx, user, 1, 5_000_000).unwrap_or_else(|e| panic!("{e}"));
        }
        let mut ro = ReadOnly(mem);
        let mut ctx = Ctx::new(&mut ro, &config, 1);
        let input = (user, 1u32).abi_encode_params();
        let Ok(out) = read(&mut ctx, ReadKind::SpotBalance, &input) else { panic!("read failed") };
        let (total, hold) = <(U256, U256)>::abi_decode_params(&out).unwrap_or_default();
        assert_eq!((total, hold), (U256::from(5_000_000u64), U256::ZERO));
        assert!(matches!(
            read(&mut ctx, ReadKind::SpotBalance, &input[..63]),
            Err(ReadError::Input(_))
        ));
        let bad_asset = (user, 9u32).abi_encode_params();
        assert!(matches!(
            read(&mut ctx, ReadKind::SpotBalance, &bad_asset),
            Err(ReadError::Engine(L1Error::UnknownAsset(9)))
        ));
    }
}
