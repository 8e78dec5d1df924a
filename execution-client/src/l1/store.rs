//! The slot store the engine reads and writes: 32-byte keys to 32-byte values in the storage
//! of [`super::L1_WRITE_ADDRESS`], plus the logs the engine emits.
//!
//! Keys are structured rather than hashed ([`key`]): a namespace byte per kind of record, then
//! an address and two small indices. Distinct records cannot collide by construction and the
//! layout is readable in `eth_getStorageAt`. Values pack two 128-bit halves ([`pack`]).

use std::collections::{HashMap, HashSet};

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
    /// The value of `key` and, for a store that keeps the transaction's accessed slots (the EVM
    /// journal, EIP-2929), whether this is the transaction's first access of it (cold). `None`:
    /// the store does not know; [`Metered`] then counts the first access in its own lifetime as
    /// cold.
    fn load_access(&mut self, key: B256) -> Result<(U256, Option<bool>), StoreError> {
        Ok((self.load(key)?, None))
    }
}

impl<S: Store + ?Sized> Store for &mut S {
    fn load(&mut self, key: B256) -> Result<U256, StoreError> {
        (**self).load(key)
    }

    fn store(&mut self, key: B256, value: U256) -> Result<(), StoreError> {
        (**self).store(key, value)
    }

    fn emit(&mut self, log: LogData) {
        (**self).emit(log);
    }

    fn load_access(&mut self, key: B256) -> Result<(U256, Option<bool>), StoreError> {
        (**self).load_access(key)
    }
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

/// Gas prices of what an L1 precompile does, priced like the EVM's storage access (EIP-2929:
/// the first access of a slot in a transaction is cold).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GasSchedule {
    /// Fixed cost of a call.
    pub base: u64,
    /// Per cold slot access (a read, or the surcharge of a write), as `SLOAD`'s 2,100.
    pub cold: u64,
    /// Per read of a warm slot, as `SLOAD`'s 100.
    pub warm_read: u64,
    /// Per slot set from zero (new state).
    pub create: u64,
    /// Per other slot write.
    pub update: u64,
    /// Per log.
    pub log: u64,
}

/// Counts what an operation read and wrote, cold and warm, for the precompiles' gas.
#[derive(Debug)]
pub struct Metered<'a, S> {
    inner: &'a mut S,
    /// Reads of a slot not accessed before in the transaction.
    pub cold_reads: u64,
    /// Reads of a slot accessed before in the transaction.
    pub warm_reads: u64,
    /// Writes to a slot not accessed before in the transaction (charged the cold surcharge).
    pub cold_writes: u64,
    /// Slots written from zero to non-zero (new state).
    pub creates: u64,
    /// Other slot writes.
    pub updates: u64,
    /// Logs emitted.
    pub logs: u64,
    /// Slots accessed through this meter, for a store that does not know the transaction's
    /// (bounded by the gas of the accesses that filled it).
    accessed: HashSet<B256>,
    /// Prices and gas limit: access fails once the gas counted so far is above the limit.
    limit: Option<(GasSchedule, u64)>,
}

impl<'a, S: Store> Metered<'a, S> {
    /// Meters access to `inner`, without a limit.
    pub fn new(inner: &'a mut S) -> Self {
        Self {
            inner,
            cold_reads: 0,
            warm_reads: 0,
            cold_writes: 0,
            creates: 0,
            updates: 0,
            logs: 0,
            accessed: HashSet::new(),
            limit: None,
        }
    }

    /// Slots read, cold or warm.
    pub fn reads(&self) -> u64 {
        self.cold_reads + self.warm_reads
    }

    /// `key`'s value and whether this access is the transaction's first (the inner store's
    /// answer, or else this meter's own).
    fn access(&mut self, key: B256) -> Result<(U256, bool), StoreError> {
        let (value, cold) = self.inner.load_access(key)?;
        let cold = match cold {
            Some(cold) => cold,
            None => self.accessed.insert(key),
        };
        Ok((value, cold))
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
            .saturating_add(
                self.cold_reads.saturating_add(self.cold_writes).saturating_mul(schedule.cold),
            )
            .saturating_add(self.warm_reads.saturating_mul(schedule.warm_read))
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
        // Loaded, then charged, as the EVM's `SLOAD` does: one slot at most beyond the gas.
        let (value, cold) = self.access(key)?;
        if cold {
            self.cold_reads += 1;
        } else {
            self.warm_reads += 1;
        }
        self.charge()?;
        Ok(value)
    }

    fn load_access(&mut self, key: B256) -> Result<(U256, Option<bool>), StoreError> {
        self.inner.load_access(key)
    }

    fn store(&mut self, key: B256, value: U256) -> Result<(), StoreError> {
        let (before, cold) = self.access(key)?;
        if cold {
            self.cold_writes += 1;
        }
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

/// Stores and prices for tests of metered work, here and in the modules above.
#[cfg(test)]
pub(crate) mod testing {
    use super::*;

    /// The core precompile's prices: a test's figures read like the EVM's.
    pub(crate) const SCHEDULE: GasSchedule = GasSchedule {
        base: 5_000,
        cold: 2_100,
        warm_read: 100,
        create: 20_000,
        update: 2_900,
        log: 1_000,
    };

    /// A store that knows the transaction's accessed slots, as the EVM journal does.
    #[derive(Default)]
    pub(crate) struct Journal {
        /// The slots and logs.
        pub mem: MemStore,
        /// Slots accessed in the current transaction; clear it to start another.
        pub accessed: HashSet<B256>,
    }

    impl Store for Journal {
        fn load(&mut self, key: B256) -> Result<U256, StoreError> {
            self.load_access(key).map(|(v, _)| v)
        }

        fn store(&mut self, key: B256, value: U256) -> Result<(), StoreError> {
            self.accessed.insert(key);
            self.mem.store(key, value)
        }

        fn emit(&mut self, log: LogData) {
            self.mem.emit(log);
        }

        fn load_access(&mut self, key: B256) -> Result<(U256, Option<bool>), StoreError> {
            Ok((self.mem.load(key)?, Some(self.accessed.insert(key))))
        }
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
            assert_eq!((m.creates, m.updates, m.reads()), (1, 1, 1));
            // The first write was the first access: cold; the read after it warm.
            assert_eq!((m.cold_writes, m.cold_reads, m.warm_reads), (1, 0, 1));
        }
        mem.store(k, U256::ZERO).unwrap();
        assert!(mem.slots.is_empty());
    }

    #[test]
    fn a_metering_limit_stops_the_work_once_spent() {
        let schedule =
            GasSchedule { base: 100, cold: 200, warm_read: 10, create: 1_000, update: 50, log: 7 };
        let mut mem = MemStore::default();
        let k = |i| key(Ns::Globals, Address::ZERO, i, 0, 0);
        // 100 + 200 + 1000 = 1300: the first create (of a cold slot) fits a limit of 1300
        // exactly, the next read (warm) not.
        let mut m = Metered::with_limit(&mut mem, schedule, 1_300);
        m.store(k(1), U256::from(1)).unwrap();
        assert_eq!(m.gas(&schedule), 1_300);
        assert_eq!(m.load(k(1)), Err(StoreError::OutOfGas));
        // A write that does not fit is not made.
        let mut m = Metered::with_limit(&mut mem, schedule, 1_299);
        assert_eq!(m.store(k(2), U256::from(2)), Err(StoreError::OutOfGas));
        assert_eq!(mem.load(k(2)).unwrap(), U256::ZERO);
        // Without a limit everything is counted and nothing refused: 1,000 cold reads, then
        // the same slots warm.
        let mut m = Metered::new(&mut mem);
        for i in 0..1_000 {
            m.load(k(i)).unwrap();
        }
        assert_eq!(m.gas(&schedule), 100 + 200 * 1_000);
        for i in 0..1_000 {
            m.load(k(i)).unwrap();
        }
        assert_eq!(m.gas(&schedule), 100 + 200 * 1_000 + 10 * 1_000);
    }

    #[test]
    fn reads_cost_cold_then_warm_within_a_transaction() {
        let schedule = testing::SCHEDULE;
        let k = |i| key(Ns::Balance, Address::ZERO, i, 0, 0);
        let mut journal = testing::Journal::default();
        // First action of the transaction: one cold read, then warm.
        let mut m = Metered::new(&mut journal);
        m.load(k(1)).unwrap();
        assert_eq!(m.gas(&schedule), 5_000 + 2_100);
        m.load(k(1)).unwrap();
        m.load(k(1)).unwrap();
        assert_eq!(m.gas(&schedule), 5_000 + 2_100 + 2 * 100);
        // A write to a slot read before costs no surcharge; a blind write to a new slot does.
        m.store(k(1), U256::from(1)).unwrap();
        assert_eq!(m.gas(&schedule), 5_000 + 2_100 + 2 * 100 + 20_000);
        m.store(k(2), U256::from(1)).unwrap();
        assert_eq!(m.cold_writes, 1);
        // The next action of the same transaction: the journal remembers both slots as warm,
        // although this meter never saw them.
        let mut m = Metered::new(&mut journal);
        m.load(k(1)).unwrap();
        m.load(k(2)).unwrap();
        m.load(k(3)).unwrap();
        assert_eq!((m.cold_reads, m.warm_reads), (1, 2));
        assert_eq!(m.gas(&schedule), 5_000 + 2_100 + 2 * 100);
        // A new transaction (a fresh journal): cold again.
        journal.accessed.clear();
        let mut m = Metered::new(&mut journal);
        m.load(k(1)).unwrap();
        assert_eq!((m.cold_reads, m.warm_reads), (1, 0));
    }
}
