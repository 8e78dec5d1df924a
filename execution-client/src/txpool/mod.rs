//! The transaction pool.
//!
//! Transactions are validated on entry (signature, chain id, size, type, fees, intrinsic gas,
//! block gas limit, nonce and balance against the latest state) with geth's error messages, because
//! wallets and tools parse them. Per sender the pool keeps a nonce-ordered queue. A transaction is
//! *executable* when every nonce from the sender's state nonce up to it is present and the sum of
//! their upfront costs fits the balance; executable transactions are "pending" in RPC terms
//! (`txpool_content`, `eth_getTransactionCount(pending)`), the rest "queued" (nonce gap or not
//! yet affordable). A fee cap below the current base fee is accepted and parked: such a
//! transaction stays in the pool but the best-transactions iterator does not offer it (nor the
//! sender's later nonces) until the base fee falls.
//!
//! Replacement (same sender and nonce) needs a 10% bump of both fee cap and tip. The pool is
//! bounded by count, bytes and per-sender slots; when over a bound it evicts the cheapest
//! highest-nonce transaction, so eviction never opens a nonce gap, and a single sender cannot
//! fill the pool. What goes first is decided by what the transaction is worth to a block: those
//! that cannot be included now (queued behind a gap or balance, or parked below the base fee)
//! before includable ones, then the lowest effective tip, and on a tie the newest (so an equal
//! offer never churns the pool). Where a transaction came from plays no part: one sent to this
//! node's RPC never outranks or evicts a better-paying executable one from a peer.
//!
//! Queued transactions are bounded per sender (geth's `AccountQueue`) and live at most
//! [`PoolConfig::lifetime`] without their sender making progress (geth's `Lifetime`), so nonce-gapped
//! junk cannot sit in the pool forever.
//!
//! The pool is plain data guarded by the caller (see [`SharedPool`]); it reads the time only
//! through its [`Clock`].

mod best;
mod clock;
mod error;
pub mod journal;
pub mod senders;
mod validate;

use std::{
    collections::{BTreeMap, HashMap},
    sync::Arc,
    time::{Duration, Instant},
};

use alloy_consensus::{Transaction, TxEnvelope};
use alloy_eips::eip2718::Encodable2718;
use alloy_primitives::{Address, TxHash, U256};
use parking_lot::RwLock;
use tandem_shared::Fork;

pub use best::BestTransactions;
pub use clock::{Clock, ManualClock, SystemClock};
pub use error::PoolError;
pub use validate::{MAX_INITCODE_SIZE, intrinsic_gas, upfront_cost, validate_stateless};

/// Limits and price rules of the pool.
#[derive(Debug, Clone)]
pub struct PoolConfig {
    /// Most transactions held in total.
    pub max_count: usize,
    /// Most encoded bytes held in total.
    pub max_bytes: usize,
    /// Most transactions one sender may hold.
    pub max_per_sender: usize,
    /// Most non-executable (nonce-gapped or unaffordable) transactions one sender may hold.
    pub account_queue: usize,
    /// How long a sender's queued transactions stay without the sender making progress.
    pub lifetime: Duration,
    /// Minimum priority fee (tip) per gas, in wei.
    pub min_tip: u128,
    /// Fee bump a replacement needs, in percent.
    pub price_bump_percent: u128,
    /// Largest encoded transaction accepted.
    pub max_tx_bytes: usize,
}

impl Default for PoolConfig {
    fn default() -> Self {
        Self {
            max_count: 20_000,
            max_bytes: 64 * 1024 * 1024,
            max_per_sender: 64,
            account_queue: 64,
            lifetime: Duration::from_secs(3 * 60 * 60),
            min_tip: 1,
            price_bump_percent: 10,
            max_tx_bytes: 128 * 1024,
        }
    }
}

/// What the pool needs to know of the chain: refreshed on every new head.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PoolContext {
    /// This chain's id.
    pub chain_id: u64,
    /// The fork of the next block.
    pub fork: Fork,
    /// The next block's gas limit.
    pub block_gas_limit: u64,
    /// The next block's base fee.
    pub base_fee: u64,
    /// Hash of the head the pool's state checks were made against.
    pub head: alloy_primitives::B256,
}

impl PoolContext {
    /// The context of the block after `head` on `chain`: its fork, gas limit and base fee.
    pub fn after(chain: &tandem_shared::ChainSpec, head: &alloy_consensus::Header) -> Self {
        let next_timestamp = head.timestamp.saturating_add(u64::from(!chain.sub_second_blocks()));
        Self {
            chain_id: chain.chain_id(),
            fork: chain.fork_at(next_timestamp),
            block_gas_limit: head.gas_limit,
            base_fee: alloy_eips::eip1559::calc_next_block_base_fee(
                head.gas_used,
                head.gas_limit,
                head.base_fee_per_gas.unwrap_or_default(),
                alloy_eips::eip1559::BaseFeeParams::ethereum(),
            ),
            head: head.hash_slow(),
        }
    }
}

/// Where a transaction came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    /// Sent to this node over RPC: journaled and re-announced, but evicted by price like any
    /// other.
    Local,
    /// Received by gossip or re-injected after a re-org.
    External,
}

/// A validated transaction with its recovered sender.
#[derive(Debug)]
pub struct PooledTx {
    /// The signed transaction.
    pub tx: TxEnvelope,
    /// Recovered sender.
    pub sender: Address,
    /// Transaction hash.
    pub hash: TxHash,
    /// EIP-2718 encoded length.
    pub encoded_len: usize,
    /// gas limit × fee cap + value.
    pub cost: U256,
    /// Where it came from.
    pub origin: Origin,
    /// Arrival order; earlier wins ties.
    pub id: u64,
}

impl PooledTx {
    /// Nonce of the transaction.
    pub fn nonce(&self) -> u64 {
        self.tx.nonce()
    }

    /// Tip the block producer earns per gas at `base_fee`, `None` when the fee cap is below it.
    pub fn effective_tip(&self, base_fee: u64) -> Option<u128> {
        self.tx.effective_tip_per_gas(base_fee)
    }
}

/// Reads a sender's next nonce and balance from the latest state.
pub trait AccountReader {
    /// `(nonce, balance)` of `address`; an absent account is `(0, 0)`.
    fn nonce_and_balance(&self, address: Address) -> Result<(u64, U256), PoolError>;
}

/// An [`AccountReader`] over any revm state (the head state, an overlay, a test's `pre`).
#[derive(Debug)]
pub struct StateReader<'a, DB>(pub &'a DB);

impl<DB> AccountReader for StateReader<'_, DB>
where
    DB: revm::DatabaseRef,
    DB::Error: std::fmt::Display,
{
    fn nonce_and_balance(&self, address: Address) -> Result<(u64, U256), PoolError> {
        let info = self.0.basic_ref(address).map_err(|e| PoolError::State(e.to_string()))?;
        Ok(info.map_or((0, U256::ZERO), |a| (a.nonce, a.balance)))
    }
}

/// The result of a successful add.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AddOutcome {
    /// Hash of the added transaction.
    pub hash: TxHash,
    /// Whether it is executable now (else queued behind a gap or balance).
    pub executable: bool,
    /// Transaction it replaced (same sender and nonce).
    pub replaced: Option<TxHash>,
    /// Later transactions of the sender that became executable with this one.
    pub promoted: Vec<TxHash>,
    /// Transactions evicted to stay within bounds.
    pub evicted: Vec<TxHash>,
}

/// Counts for `txpool_status`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PoolStatus {
    /// Executable transactions.
    pub pending: usize,
    /// Transactions behind a nonce gap or unaffordable.
    pub queued: usize,
}

#[derive(Debug)]
struct SenderQueue {
    state_nonce: u64,
    balance: U256,
    txs: BTreeMap<u64, Arc<PooledTx>>,
    /// Last time the sender made progress (a transaction became executable, the state nonce
    /// moved) or, with nothing queued, got its first queued transaction: its queued
    /// transactions expire [`PoolConfig::lifetime`] after it.
    heartbeat: Instant,
}

impl SenderQueue {
    fn new(now: Instant) -> Self {
        Self { state_nonce: 0, balance: U256::ZERO, txs: BTreeMap::new(), heartbeat: now }
    }

    /// Number of transactions not in the executable head of the queue.
    fn queued_len(&self) -> usize {
        self.txs.len() - self.executable_len()
    }

    /// Number of transactions at the head of the queue a block at `base_fee` could include: the
    /// executable ones up to the first whose fee cap is below the base fee.
    fn ready_len(&self, base_fee: u64) -> usize {
        self.txs
            .range(self.state_nonce..)
            .take(self.executable_len())
            .take_while(|(_, tx)| tx.effective_tip(base_fee).is_some())
            .count()
    }

    /// Whether `nonce` lies in the first `len` nonces from the state nonce.
    fn within(&self, nonce: u64, len: usize) -> bool {
        nonce >= self.state_nonce && nonce - self.state_nonce < len as u64
    }

    /// Number of executable transactions at the head of the queue.
    fn executable_len(&self) -> usize {
        let mut spent = U256::ZERO;
        let mut n = 0;
        for (expected, (nonce, tx)) in (self.state_nonce..).zip(self.txs.range(self.state_nonce..))
        {
            if *nonce != expected {
                break;
            }
            spent = spent.saturating_add(tx.cost);
            if spent > self.balance {
                break;
            }
            n += 1;
        }
        n
    }
}

/// The pool itself; wrap it in [`SharedPool`] to share between RPC and the payload builder.
#[derive(Debug)]
pub struct TxPool {
    config: PoolConfig,
    ctx: PoolContext,
    by_hash: HashMap<TxHash, Arc<PooledTx>>,
    senders: HashMap<Address, SenderQueue>,
    bytes: usize,
    next_id: u64,
    generation: u64,
    clock: Arc<dyn Clock>,
}

/// A pool shared between threads.
pub type SharedPool = Arc<RwLock<TxPool>>;

impl TxPool {
    /// An empty pool on the system clock.
    pub fn new(config: PoolConfig, ctx: PoolContext) -> Self {
        Self::with_clock(config, ctx, Arc::new(SystemClock))
    }

    /// An empty pool reading the time from `clock`.
    pub fn with_clock(config: PoolConfig, ctx: PoolContext, clock: Arc<dyn Clock>) -> Self {
        Self {
            config,
            ctx,
            by_hash: HashMap::new(),
            senders: HashMap::new(),
            bytes: 0,
            next_id: 0,
            generation: 0,
            clock,
        }
    }

    /// The pool's limits.
    pub fn config(&self) -> &PoolConfig {
        &self.config
    }

    /// The chain context transactions are validated against.
    pub fn context(&self) -> PoolContext {
        self.ctx
    }

    /// Number of transactions held.
    pub fn len(&self) -> usize {
        self.by_hash.len()
    }

    /// Whether the pool is empty.
    pub fn is_empty(&self) -> bool {
        self.by_hash.is_empty()
    }

    /// Encoded bytes held.
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// A counter that changes whenever the pool's contents change (payload jobs rebuild on it).
    pub fn generation(&self) -> u64 {
        self.generation
    }

    /// A pooled transaction by hash.
    pub fn get(&self, hash: &TxHash) -> Option<Arc<PooledTx>> {
        self.by_hash.get(hash).cloned()
    }

    /// Whether the pool holds transactions from `sender`.
    pub fn is_tracked(&self, sender: &Address) -> bool {
        self.senders.contains_key(sender)
    }

    /// Whether the pool holds `hash`.
    pub fn contains(&self, hash: &TxHash) -> bool {
        self.by_hash.contains_key(hash)
    }

    /// Validates and adds a transaction whose sender is already recovered.
    pub fn add(
        &mut self,
        tx: TxEnvelope,
        sender: Address,
        origin: Origin,
        state: &dyn AccountReader,
    ) -> Result<AddOutcome, PoolError> {
        let hash = *tx.tx_hash();
        if self.by_hash.contains_key(&hash) {
            return Err(PoolError::AlreadyKnown);
        }
        let encoded_len = tx.encode_2718_len();
        validate_stateless(&tx, sender, encoded_len, &self.ctx, &self.config)?;
        let nonce = tx.nonce();
        if nonce == u64::MAX {
            return Err(PoolError::NonceMax { address: sender, nonce });
        }
        let (state_nonce, balance) = state.nonce_and_balance(sender)?;
        if nonce < state_nonce {
            return Err(PoolError::NonceTooLow { address: sender, tx: nonce, state: state_nonce });
        }
        let cost = upfront_cost(&tx);
        if cost > balance {
            return Err(PoolError::InsufficientFunds { balance, cost, overshot: cost - balance });
        }

        let now = self.clock.now();
        let queue = self.senders.entry(sender).or_insert_with(|| SenderQueue::new(now));
        queue.state_nonce = state_nonce;
        queue.balance = balance;
        // Drop what the state has already consumed.
        let stale: Vec<u64> = queue.txs.range(..state_nonce).map(|(n, _)| *n).collect();
        let mut removed = Vec::new();
        for n in stale {
            if let Some(old) = queue.txs.remove(&n) {
                removed.push(old);
            }
        }
        let replaced = match queue.txs.get(&nonce) {
            Some(old) => {
                if !is_sufficient_bump(&old.tx, &tx, self.config.price_bump_percent) {
                    self.forget(removed);
                    return Err(PoolError::ReplacementUnderpriced);
                }
                Some(old.hash)
            }
            None => {
                if queue.txs.len() >= self.config.max_per_sender {
                    let limit = self.config.max_per_sender;
                    self.forget(removed);
                    return Err(PoolError::AccountLimitExceeded { address: sender, limit });
                }
                None
            }
        };
        let executable_before = queue.executable_len();
        let queued_before = queue.txs.len() - executable_before;
        let id = self.next_id;
        self.next_id += 1;
        let pooled = Arc::new(PooledTx { tx, sender, hash, encoded_len, cost, origin, id });
        let old = queue.txs.insert(nonce, pooled.clone());
        let executable_after = queue.executable_len();
        let queued_after = queue.txs.len() - executable_after;
        // A new transaction may not push the sender's queued (non-executable) count past
        // geth's AccountQueue: nonce-gapped transactions cost the sender nothing until the gap
        // is filled, so without this cap they would be the cheapest way to fill the pool.
        if old.is_none() && queued_after > queued_before && queued_after > self.config.account_queue
        {
            queue.txs.remove(&nonce);
            if queue.txs.is_empty() {
                self.senders.remove(&sender);
            }
            self.forget(removed);
            let limit = self.config.account_queue;
            return Err(PoolError::AccountLimitExceeded { address: sender, limit });
        }
        if let Some(old) = &old {
            removed.push(old.clone());
        }
        let position = nonce - state_nonce;
        let executable = (position as usize) < executable_after;
        let heartbeat_before = queue.heartbeat;
        if executable || queued_before == 0 {
            // Progress, or the first queued transaction: the lifetime of its queued ones
            // starts now (as geth's heartbeat).
            queue.heartbeat = now;
        }
        let promoted: Vec<TxHash> = if executable_after > executable_before + 1 {
            queue
                .txs
                .range(
                    state_nonce + executable_before as u64..state_nonce + executable_after as u64,
                )
                .filter(|(n, _)| **n != nonce)
                .map(|(_, t)| t.hash)
                .collect()
        } else {
            Vec::new()
        };
        // The replaced transaction comes back if the new one is refused for room below.
        let displaced = old;
        self.forget(removed);
        self.bytes += encoded_len;
        self.by_hash.insert(hash, pooled);

        let (expired, evicted) = self.enforce_limits();
        let expired_itself = expired.contains(&hash);
        if expired_itself || evicted.iter().any(|tx| tx.hash == hash) {
            // Refused for room: the pool is as it was before, bar expired transactions.
            // Evicting others first and then the new one would lose them for nothing.
            self.restore(evicted.into_iter().filter(|tx| tx.hash != hash), sender);
            // A replaced transaction expired with its replacement if that one did.
            if let Some(displaced) = displaced.filter(|_| !expired_itself) {
                self.restore(std::iter::once(displaced), sender);
            }
            if let Some(queue) = self.senders.get_mut(&sender) {
                queue.heartbeat = heartbeat_before;
            }
            self.drop_empty_queues();
            self.generation += u64::from(!expired.is_empty());
            return Err(PoolError::PoolFull);
        }
        self.drop_empty_queues();
        let mut evicted: Vec<TxHash> = evicted.iter().map(|tx| tx.hash).collect();
        evicted.extend(expired);
        self.generation += 1;
        Ok(AddOutcome { hash, executable, replaced, promoted, evicted })
    }

    /// Puts evicted or replaced transactions back where they were (their sender queues are
    /// still there, perhaps empty).
    fn restore(&mut self, txs: impl Iterator<Item = Arc<PooledTx>>, new_sender: Address) {
        let now = self.clock.now();
        for tx in txs {
            let queue = self.senders.entry(tx.sender).or_insert_with(|| {
                debug_assert_eq!(tx.sender, new_sender, "only the new sender's queue may go");
                SenderQueue::new(now)
            });
            self.bytes += tx.encoded_len;
            self.by_hash.insert(tx.hash, tx.clone());
            queue.txs.insert(tx.tx.nonce(), tx);
        }
    }

    /// Removes the queues that eviction emptied.
    fn drop_empty_queues(&mut self) {
        self.senders.retain(|_, queue| !queue.txs.is_empty());
    }

    /// Removes transactions already dropped from their sender queue from the indexes.
    fn forget(&mut self, removed: Vec<Arc<PooledTx>>) {
        for tx in removed {
            if self.by_hash.remove(&tx.hash).is_some() {
                self.bytes -= tx.encoded_len;
            }
        }
    }

    /// Evicts until within bounds; returns the hashes of the expired queued transactions and
    /// the transactions evicted for price. Queues emptied by eviction stay (empty) until
    /// [`Self::drop_empty_queues`], so that an eviction can be undone.
    fn enforce_limits(&mut self) -> (Vec<TxHash>, Vec<Arc<PooledTx>>) {
        let mut expired = Vec::new();
        if self.is_over_bounds() {
            // Expired queued transactions go before anything is evicted for price.
            expired = self.expire_queued();
        }
        let mut evicted = Vec::new();
        while self.is_over_bounds() {
            let Some((sender, nonce)) = self.eviction_candidate() else { break };
            if let Some(queue) = self.senders.get_mut(&sender)
                && let Some(tx) = queue.txs.remove(&nonce)
            {
                if self.by_hash.remove(&tx.hash).is_some() {
                    self.bytes -= tx.encoded_len;
                }
                evicted.push(tx);
            }
        }
        (expired, evicted)
    }

    fn is_over_bounds(&self) -> bool {
        self.by_hash.len() > self.config.max_count || self.bytes > self.config.max_bytes
    }

    /// The last transaction of the sender whose last transaction is worth least to a block:
    /// not includable now (queued, or parked below the base fee) before includable, then the
    /// lowest effective tip and fee cap, then the newest; never by origin.
    fn eviction_candidate(&self) -> Option<(Address, u64)> {
        let base_fee = self.ctx.base_fee;
        self.senders
            .iter()
            .filter_map(|(sender, queue)| {
                let (nonce, tx) = queue.txs.last_key_value()?;
                let key = (
                    queue.within(*nonce, queue.ready_len(base_fee)),
                    tx.effective_tip(base_fee).unwrap_or(0),
                    tx.tx.max_fee_per_gas(),
                    std::cmp::Reverse(tx.id),
                );
                Some((key, (*sender, *nonce)))
            })
            .min_by(|a, b| a.0.cmp(&b.0))
            .map(|(_, at)| at)
    }

    /// Drops the queued (non-executable) transactions of every sender that has made no
    /// progress for [`PoolConfig::lifetime`]; returns their hashes. Executable ones stay.
    pub fn expire_queued(&mut self) -> Vec<TxHash> {
        let now = self.clock.now();
        let lifetime = self.config.lifetime;
        let mut removed = Vec::new();
        let mut emptied = Vec::new();
        for (sender, queue) in &mut self.senders {
            if now.saturating_duration_since(queue.heartbeat) <= lifetime || queue.queued_len() == 0
            {
                continue;
            }
            let executable = queue.executable_len();
            let expired: Vec<u64> =
                queue.txs.keys().copied().filter(|n| !queue.within(*n, executable)).collect();
            for n in expired {
                if let Some(tx) = queue.txs.remove(&n) {
                    removed.push(tx);
                }
            }
            if queue.txs.is_empty() {
                emptied.push(*sender);
            }
        }
        for sender in emptied {
            self.senders.remove(&sender);
        }
        let hashes: Vec<TxHash> = removed.iter().map(|tx| tx.hash).collect();
        if !hashes.is_empty() {
            self.generation += 1;
        }
        self.forget(removed);
        hashes
    }

    /// Applies a new canonical head: new chain context, fresh state for the accounts it touched
    /// (senders of its transactions and any other changed account); drops what it included and
    /// the queued transactions past their lifetime.
    pub fn on_new_head(
        &mut self,
        ctx: PoolContext,
        changed: impl IntoIterator<Item = (Address, u64, U256)>,
    ) -> Vec<TxHash> {
        self.ctx = ctx;
        self.generation += 1;
        let now = self.clock.now();
        let mut dropped = Vec::new();
        for (address, nonce, balance) in changed {
            let Some(queue) = self.senders.get_mut(&address) else { continue };
            if nonce > queue.state_nonce {
                // The sender's transactions are being included: its queue is alive.
                queue.heartbeat = now;
            }
            queue.state_nonce = nonce;
            queue.balance = balance;
            let stale: Vec<u64> = queue.txs.range(..nonce).map(|(n, _)| *n).collect();
            let mut removed = Vec::new();
            for n in stale {
                if let Some(tx) = queue.txs.remove(&n) {
                    dropped.push(tx.hash);
                    removed.push(tx);
                }
            }
            if queue.txs.is_empty() {
                self.senders.remove(&address);
            }
            self.forget(removed);
        }
        dropped.extend(self.expire_queued());
        dropped
    }

    /// Removes one transaction (e.g. found invalid while building) and everything after it from
    /// the same sender, which can no longer execute.
    pub fn remove_with_descendants(&mut self, hash: &TxHash) -> Vec<TxHash> {
        let Some(tx) = self.by_hash.get(hash).cloned() else { return Vec::new() };
        let Some(queue) = self.senders.get_mut(&tx.sender) else { return Vec::new() };
        let later: Vec<u64> = queue.txs.range(tx.nonce()..).map(|(n, _)| *n).collect();
        let mut removed = Vec::new();
        for n in later {
            if let Some(t) = queue.txs.remove(&n) {
                removed.push(t);
            }
        }
        if queue.txs.is_empty() {
            self.senders.remove(&tx.sender);
        }
        let hashes = removed.iter().map(|t| t.hash).collect();
        self.forget(removed);
        self.generation += 1;
        hashes
    }

    /// Executable transactions by effective tip at the next base fee, nonce order per sender.
    pub fn best_transactions(&self) -> BestTransactions {
        let base_fee = self.ctx.base_fee;
        let chains = self.senders.values().filter_map(|queue| {
            let n = queue.executable_len();
            let chain: Vec<Arc<PooledTx>> = queue
                .txs
                .range(queue.state_nonce..)
                .take(n)
                .take_while(|(_, tx)| tx.effective_tip(base_fee).is_some())
                .map(|(_, tx)| tx.clone())
                .collect();
            (!chain.is_empty()).then_some(chain)
        });
        BestTransactions::new(base_fee, chains)
    }

    /// Next nonce counting executable pooled transactions (`eth_getTransactionCount(pending)`).
    pub fn pending_nonce(&self, address: Address) -> Option<u64> {
        let queue = self.senders.get(&address)?;
        Some(queue.state_nonce + queue.executable_len() as u64)
    }

    /// Pending and queued transactions per sender and nonce, for `txpool_content`.
    pub fn content(&self) -> PoolContent {
        let mut content = PoolContent::default();
        for (sender, queue) in &self.senders {
            let n = queue.executable_len() as u64;
            for (nonce, tx) in &queue.txs {
                let executable = *nonce >= queue.state_nonce && nonce - queue.state_nonce < n;
                let side = if executable { &mut content.pending } else { &mut content.queued };
                side.entry(*sender).or_default().insert(*nonce, tx.clone());
            }
        }
        content
    }

    /// Counts of pending and queued transactions.
    pub fn status(&self) -> PoolStatus {
        let pending: usize = self.senders.values().map(SenderQueue::executable_len).sum();
        PoolStatus { pending, queued: self.by_hash.len() - pending }
    }

    /// All transactions from `origin`, in sender/nonce order (e.g. to rewrite the journal).
    pub fn by_origin(&self, origin: Origin) -> Vec<Arc<PooledTx>> {
        let mut out: Vec<_> =
            self.by_hash.values().filter(|tx| tx.origin == origin).cloned().collect();
        out.sort_by_key(|tx| (tx.sender, tx.nonce()));
        out
    }
}

/// Transactions per sender and nonce, split into pending and queued.
#[derive(Debug, Default)]
pub struct PoolContent {
    /// Executable transactions.
    pub pending: BTreeMap<Address, BTreeMap<u64, Arc<PooledTx>>>,
    /// Transactions waiting for a nonce gap or balance.
    pub queued: BTreeMap<Address, BTreeMap<u64, Arc<PooledTx>>>,
}

/// Whether `new` bumps both fee cap and tip of `old` by at least `percent`.
fn is_sufficient_bump(old: &TxEnvelope, new: &TxEnvelope, percent: u128) -> bool {
    let bumped = |v: u128| v.saturating_mul(100 + percent).div_ceil(100);
    let old_tip = old.max_priority_fee_per_gas().unwrap_or(old.max_fee_per_gas());
    let new_tip = new.max_priority_fee_per_gas().unwrap_or(new.max_fee_per_gas());
    new.max_fee_per_gas() >= bumped(old.max_fee_per_gas()) && new_tip >= bumped(old_tip)
}

#[cfg(test)]
mod tests;
