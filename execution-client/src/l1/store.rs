//! The slot store the engine reads and writes: 32-byte keys to 32-byte values in the storage
//! of [`super::L1_WRITE_ADDRESS`], plus the logs the engine emits.
//!
//! Keys are structured rather than hashed ([`key`]): a namespace byte per kind of record, then
//! an address and two small indices. Distinct records cannot collide by construction and the
//! layout is readable in `eth_getStorageAt`. Values pack two 128-bit halves ([`pack`]).

use std::collections::HashMap;

use alloy_primitives::{Address, B256, LogData, U256};

/// A state read or write that could not be done.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StoreError {
    /// Failed below the engine (database, journal): not the caller's fault.
    #[error("L1 state access failed: {0}")]
    Backend(String),
    /// The action's gas limit is spent: it stops before doing more work.
    #[error("out of gas")]
    OutOfGas,
}

/// Storage slots and a log sink: what the engine needs from its host.
pub trait Store {
    /// The value of `key` (zero when never written).
    fn load(&mut self, key: B256) -> Result<U256, StoreError>;
    /// Sets `key` to `value` (zero deletes it).
    fn store(&mut self, key: B256, value: U256) -> Result<(), StoreError>;
    /// Emits an EVM log from [`super::L1_WRITE_ADDRESS`].
    fn emit(&mut self, log: LogData);
}

/// The kind of record a key belongs to; the first byte of every key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Ns {
    /// Global counters (next order id, L1 block number).
    Globals = 0x01,
    /// Spot balance of (account, asset): total and hold.
    Balance = 0x02,
    /// A resting order, by id.
    Order = 0x03,
    /// A price level of a market's book side.
    Level = 0x04,
    /// A market's book head: best prices and level links.
    Book = 0x05,
    /// Client order id of (account, market) to order id.
    Cloid = 0x06,
    /// Per-account list of resting orders.
    AccountOrders = 0x07,
    /// Perp account of an address: cash, order margin, market bitmap.
    PerpAccount = 0x08,
    /// Perp position of (account, market).
    Position = 0x09,
    /// The set of accounts with open perp positions, the end-of-block sweep's cursor and watch
    /// list.
    OpenAccounts = 0x0a,
    /// Oracle price posted by (publisher, market).
    Oracle = 0x0b,
    /// Per-market perp state: last mark, cumulative funding index.
    PerpMarket = 0x0c,
    /// Per-asset totals (deposited, withdrawn) for exact accounting checks.
    AssetTotals = 0x0d,
}

/// The key of field `field` of record (`ns`, `addr`, `a`, `b`):
/// `ns (1) ‖ addr (20) ‖ a (8, BE) ‖ b (2, BE) ‖ field (1)`.
pub fn key(ns: Ns, addr: Address, a: u64, b: u16, field: u8) -> B256 {
    let mut out = [0u8; 32];
    out[0] = ns as u8;
    out[1..21].copy_from_slice(addr.as_slice());
    out[21..29].copy_from_slice(&a.to_be_bytes());
    out[29..31].copy_from_slice(&b.to_be_bytes());
    out[31] = field;
    B256::from(out)
}

/// Two 128-bit halves in one slot: `hi` in the upper bits, `lo` in the lower.
pub fn pack(hi: u128, lo: u128) -> U256 {
    (U256::from(hi) << 128) | U256::from(lo)
}

/// The two 128-bit halves of a slot packed by [`pack`].
pub fn unpack(value: U256) -> (u128, u128) {
    let limbs = value.as_limbs();
    let lo = (limbs[0] as u128) | ((limbs[1] as u128) << 64);
    let hi = (limbs[2] as u128) | ((limbs[3] as u128) << 64);
    (hi, lo)
}

/// A signed 128-bit value as the bits stored in a slot half.
pub const fn from_signed(value: i128) -> u128 {
    value as u128
}

/// The signed 128-bit value whose bits [`from_signed`] stored.
pub const fn to_signed(bits: u128) -> i128 {
    bits as i128
}

/// An address stored in the low 160 bits of a slot.
pub fn address_value(address: Address) -> U256 {
    U256::from_be_slice(address.as_slice())
}

/// The address in the low 160 bits of a slot.
pub fn value_address(value: U256) -> Address {
    Address::from_word(B256::from(value))
}

/// An in-memory store: the engine's unit tests, the `l1_*` RPC's snapshots and benchmarks.
#[derive(Debug, Clone, Default)]
pub struct MemStore {
    /// Non-zero slots.
    pub slots: HashMap<B256, U256>,
    /// Logs emitted, in order.
    pub logs: Vec<LogData>,
}

impl Store for MemStore {
    fn load(&mut self, key: B256) -> Result<U256, StoreError> {
        Ok(self.slots.get(&key).copied().unwrap_or_default())
    }

    fn store(&mut self, key: B256, value: U256) -> Result<(), StoreError> {
        if value.is_zero() {
            self.slots.remove(&key);
        } else {
            self.slots.insert(key, value);
        }
        Ok(())
    }

    fn emit(&mut self, log: LogData) {
        self.logs.push(log);
    }
}

/// Gas prices of what a core action does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GasSchedule {
    /// Fixed cost of an action.
    pub base: u64,
    /// Per slot read.
    pub read: u64,
    /// Per slot set from zero (new state).
    pub create: u64,
    /// Per other slot write.
    pub update: u64,
    /// Per log.
    pub log: u64,
}

/// Counts what an operation read and wrote, for the write contract's gas.
#[derive(Debug)]
pub struct Metered<'a, S> {
    inner: &'a mut S,
    /// Slots read.
    pub reads: u64,
    /// Slots written from zero to non-zero (new state).
    pub creates: u64,
    /// Other slot writes.
    pub updates: u64,
    /// Logs emitted.
    pub logs: u64,
    /// Prices and gas limit: access fails once the gas counted so far is above the limit.
    limit: Option<(GasSchedule, u64)>,
}

impl<'a, S: Store> Metered<'a, S> {
    /// Meters access to `inner`, without a limit.
    pub fn new(inner: &'a mut S) -> Self {
        Self { inner, reads: 0, creates: 0, updates: 0, logs: 0, limit: None }
    }

    /// Meters access to `inner`; fails with [`StoreError::OutOfGas`] as soon as the work done
    /// costs more than `limit` at `schedule`, so an action cannot do unpaid work.
    pub fn with_limit(inner: &'a mut S, schedule: GasSchedule, limit: u64) -> Self {
        Self { limit: Some((schedule, limit)), ..Self::new(inner) }
    }

    /// Gas of everything counted so far at `schedule`.
    pub fn gas(&self, schedule: &GasSchedule) -> u64 {
        schedule
            .base
            .saturating_add(self.reads.saturating_mul(schedule.read))
            .saturating_add(self.creates.saturating_mul(schedule.create))
            .saturating_add(self.updates.saturating_mul(schedule.update))
            .saturating_add(self.logs.saturating_mul(schedule.log))
    }

    fn charge(&self) -> Result<(), StoreError> {
        match &self.limit {
            Some((schedule, limit)) if self.gas(schedule) > *limit => Err(StoreError::OutOfGas),
            _ => Ok(()),
        }
    }
}

impl<S: Store> Store for Metered<'_, S> {
    fn load(&mut self, key: B256) -> Result<U256, StoreError> {
        self.reads += 1;
        self.charge()?;
        self.inner.load(key)
    }

    fn store(&mut self, key: B256, value: U256) -> Result<(), StoreError> {
        let before = self.inner.load(key)?;
        if before.is_zero() && !value.is_zero() {
            self.creates += 1;
        } else {
            self.updates += 1;
        }
        self.charge()?;
        self.inner.store(key, value)
    }

    fn emit(&mut self, log: LogData) {
        self.logs += 1;
        self.inner.emit(log);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn packing_round_trips() {
        for (hi, lo) in [(0, 0), (1, 2), (u128::MAX, 0), (0, u128::MAX), (u128::MAX, u128::MAX)] {
            assert_eq!(unpack(pack(hi, lo)), (hi, lo));
        }
        for v in [0i128, 1, -1, i128::MIN, i128::MAX] {
            assert_eq!(to_signed(from_signed(v)), v);
        }
        let a = Address::repeat_byte(0xab);
        assert_eq!(value_address(address_value(a)), a);
    }

    #[test]
    fn keys_of_distinct_records_differ() {
        let a = Address::repeat_byte(1);
        let k = key(Ns::Balance, a, 7, 3, 1);
        assert_ne!(k, key(Ns::Balance, a, 7, 3, 0));
        assert_ne!(k, key(Ns::Balance, a, 7, 2, 1));
        assert_ne!(k, key(Ns::Balance, a, 6, 3, 1));
        assert_ne!(k, key(Ns::Order, a, 7, 3, 1));
        assert_ne!(k, key(Ns::Balance, Address::repeat_byte(2), 7, 3, 1));
        assert_eq!(k[0], Ns::Balance as u8);
    }

    #[test]
    fn memstore_deletes_zero_and_metering_counts() {
        let mut mem = MemStore::default();
        let k = key(Ns::Globals, Address::ZERO, 0, 0, 0);
        {
            let mut m = Metered::new(&mut mem);
            m.store(k, U256::from(5)).unwrap();
            m.store(k, U256::from(6)).unwrap();
            assert_eq!(m.load(k).unwrap(), U256::from(6));
            assert_eq!((m.creates, m.updates, m.reads), (1, 1, 1));
        }
        mem.store(k, U256::ZERO).unwrap();
        assert!(mem.slots.is_empty());
    }

    #[test]
    fn a_metering_limit_stops_the_work_once_spent() {
        let schedule = GasSchedule { base: 100, read: 10, create: 1_000, update: 50, log: 7 };
        let mut mem = MemStore::default();
        let k = |i| key(Ns::Globals, Address::ZERO, i, 0, 0);
        // 100 + 1000 = 1100: the first create fits a limit of 1100 exactly, the next read not.
        let mut m = Metered::with_limit(&mut mem, schedule, 1_100);
        m.store(k(1), U256::from(1)).unwrap();
        assert_eq!(m.gas(&schedule), 1_100);
        assert_eq!(m.load(k(1)), Err(StoreError::OutOfGas));
        // A write that does not fit is not made.
        let mut m = Metered::with_limit(&mut mem, schedule, 1_099);
        assert_eq!(m.store(k(2), U256::from(2)), Err(StoreError::OutOfGas));
        assert_eq!(mem.load(k(2)).unwrap(), U256::ZERO);
        // Without a limit everything is counted and nothing refused.
        let mut m = Metered::new(&mut mem);
        for i in 0..1_000 {
            m.load(k(i)).unwrap();
        }
        assert_eq!(m.gas(&schedule), 100 + 10 * 1_000);
    }
}
