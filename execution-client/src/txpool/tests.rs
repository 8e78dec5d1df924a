//! One test per pool rule.

use std::{collections::HashMap, time::Duration};

use alloy_consensus::{SignableTransaction, TxEip1559, TxEip4844, TxEip7702, TxEnvelope, TxLegacy};
use alloy_eips::eip7702::{Authorization, SignedAuthorization};
use alloy_primitives::{Address, Bytes, Signature, TxKind, U256};
use alloy_signer::SignerSync;
use alloy_signer_local::PrivateKeySigner;

use super::*;

const CHAIN: u64 = 1337;
const GWEI: u128 = 1_000_000_000;

struct State(HashMap<Address, (u64, U256)>);

impl AccountReader for State {
    fn nonce_and_balance(&self, address: Address) -> Result<(u64, U256), PoolError> {
        Ok(self.0.get(&address).copied().unwrap_or((0, U256::ZERO)))
    }
}

struct Fixture {
    pool: TxPool,
    state: State,
    keys: Vec<PrivateKeySigner>,
}

fn ctx(base_fee: u64) -> PoolContext {
    PoolContext {
        chain_id: CHAIN,
        fork: Fork::Prague,
        block_gas_limit: 30_000_000,
        base_fee,
        head: alloy_primitives::B256::ZERO,
    }
}

impl Fixture {
    fn new(config: PoolConfig) -> Self {
        let keys: Vec<PrivateKeySigner> =
            (1..=4u8).map(|i| PrivateKeySigner::from_bytes(&[i; 32].into()).unwrap()).collect();
        let rich = U256::from(10u128.pow(24));
        let state = State(keys.iter().map(|k| (k.address(), (0, rich))).collect());
        Self { pool: TxPool::new(config, ctx(GWEI as u64)), state, keys }
    }

    fn add(&mut self, tx: TxEnvelope) -> Result<AddOutcome, PoolError> {
        let sender = senders::recover_sender(&tx)?;
        self.pool.add(tx, sender, Origin::External, &self.state)
    }

    /// Adds as if sent to this node's RPC.
    fn add_local(&mut self, tx: TxEnvelope) -> Result<AddOutcome, PoolError> {
        let sender = senders::recover_sender(&tx)?;
        self.pool.add(tx, sender, Origin::Local, &self.state)
    }

    /// Funds `n` more keys (just enough for a few 1-wei transfers each); returns their indexes.
    fn more_keys(&mut self, n: usize, balance: U256) -> std::ops::Range<usize> {
        let first = self.keys.len();
        for i in 0..n {
            let mut secret = [0x40u8; 32];
            secret[..8].copy_from_slice(&(i as u64 + 1).to_be_bytes());
            let key = PrivateKeySigner::from_bytes(&secret.into()).unwrap();
            self.state.0.insert(key.address(), (0, balance));
            self.keys.push(key);
        }
        first..self.keys.len()
    }

    fn addr(&self, key: usize) -> Address {
        self.keys[key].address()
    }
}

fn eip1559(nonce: u64, fee_cap: u128, tip: u128) -> TxEip1559 {
    TxEip1559 {
        chain_id: CHAIN,
        nonce,
        gas_limit: 21_000,
        max_fee_per_gas: fee_cap,
        max_priority_fee_per_gas: tip,
        to: TxKind::Call(Address::repeat_byte(0xee)),
        value: U256::from(1),
        ..Default::default()
    }
}

fn sign<T: SignableTransaction<Signature>>(key: &PrivateKeySigner, tx: T) -> TxEnvelope
where
    TxEnvelope: From<alloy_consensus::Signed<T>>,
{
    let signature = key.sign_hash_sync(&tx.signature_hash()).unwrap();
    tx.into_signed(signature).into()
}

fn transfer(f: &Fixture, key: usize, nonce: u64, fee_cap: u128, tip: u128) -> TxEnvelope {
    sign(&f.keys[key], eip1559(nonce, fee_cap, tip))
}

#[test]
fn accepts_valid_transactions_of_each_type() {
    let mut f = Fixture::new(PoolConfig::default());
    let legacy = TxLegacy {
        chain_id: Some(CHAIN),
        nonce: 0,
        gas_price: 2 * GWEI,
        gas_limit: 21_000,
        to: TxKind::Call(Address::ZERO),
        value: U256::from(1),
        input: Bytes::new(),
    };
    assert!(f.add(sign(&f.keys[0], legacy)).unwrap().executable);
    assert!(f.add(transfer(&f, 0, 1, 2 * GWEI, GWEI)).unwrap().executable);
    let auth = Authorization { chain_id: U256::from(CHAIN), address: Address::ZERO, nonce: 0 };
    let auth_sig = f.keys[1].sign_hash_sync(&auth.signature_hash()).unwrap();
    let set_code = TxEip7702 {
        chain_id: CHAIN,
        nonce: 0,
        gas_limit: 100_000,
        max_fee_per_gas: 2 * GWEI,
        max_priority_fee_per_gas: GWEI,
        to: Address::ZERO,
        authorization_list: vec![SignedAuthorization::new_unchecked(
            auth,
            auth_sig.v() as u8,
            auth_sig.r(),
            auth_sig.s(),
        )],
        ..Default::default()
    };
    assert!(f.add(sign(&f.keys[1], set_code)).unwrap().executable);
    assert_eq!(f.pool.status(), PoolStatus { pending: 3, queued: 0 });
    assert_eq!(f.pool.pending_nonce(f.addr(0)), Some(2));
}

#[test]
fn geth_error_messages() {
    let mut f = Fixture::new(PoolConfig::default());
    let mut wrong_chain = eip1559(0, 2 * GWEI, GWEI);
    wrong_chain.chain_id = 1;
    let err = f.add(sign(&f.keys[0], wrong_chain)).unwrap_err();
    assert_eq!(err.to_string(), "invalid sender: invalid chain id for signer: have 1 want 1337");

    let mut low_gas = eip1559(0, 2 * GWEI, GWEI);
    low_gas.gas_limit = 20_000;
    let err = f.add(sign(&f.keys[0], low_gas)).unwrap_err();
    assert_eq!(err.to_string(), "intrinsic gas too low: gas 20000, minimum needed 21000");

    let mut huge_gas = eip1559(0, 2 * GWEI, GWEI);
    huge_gas.gas_limit = 30_000_001;
    assert_eq!(
        f.add(sign(&f.keys[0], huge_gas)).unwrap_err().to_string(),
        "exceeds block gas limit"
    );

    let err = f.add(transfer(&f, 0, 0, GWEI, 2 * GWEI)).unwrap_err();
    assert!(
        err.to_string().starts_with("max priority fee per gas higher than max fee per gas"),
        "{err}"
    );

    let err = f.add(transfer(&f, 0, 0, 2 * GWEI, 0)).unwrap_err();
    assert_eq!(err.to_string(), "transaction underpriced: gas tip cap 0, minimum needed 1");

    let mut rich = eip1559(0, 2 * GWEI, GWEI);
    rich.value = U256::from(10u128.pow(25));
    let err = f.add(sign(&f.keys[0], rich)).unwrap_err();
    assert!(err.to_string().starts_with("insufficient funds for gas * price + value: balance "));

    let tx = transfer(&f, 0, 0, 2 * GWEI, GWEI);
    f.add(tx.clone()).unwrap();
    assert_eq!(f.add(tx).unwrap_err().to_string(), "already known");

    f.state.0.insert(f.addr(1), (5, U256::from(10u128.pow(24))));
    let err = f.add(transfer(&f, 1, 4, 2 * GWEI, GWEI)).unwrap_err();
    assert_eq!(err.to_string(), format!("nonce too low: address {}, tx: 4 state: 5", f.addr(1)));

    let mut big = eip1559(0, 2 * GWEI, GWEI);
    big.input = vec![1u8; 130 * 1024].into();
    big.gas_limit = 29_000_000;
    let err = f.add(sign(&f.keys[2], big)).unwrap_err();
    assert!(err.to_string().starts_with("oversized data: transaction size"), "{err}");
}

#[test]
fn blob_and_unsupported_transactions_are_refused() {
    let mut f = Fixture::new(PoolConfig::default());
    let blob = TxEip4844 {
        chain_id: CHAIN,
        nonce: 0,
        gas_limit: 21_000,
        max_fee_per_gas: 2 * GWEI,
        max_priority_fee_per_gas: GWEI,
        to: Address::ZERO,
        blob_versioned_hashes: vec![Default::default()],
        max_fee_per_blob_gas: 1,
        ..Default::default()
    };
    let err = f.add(sign(&f.keys[0], blob)).unwrap_err();
    assert!(err.to_string().contains("blob (type 3) transactions are not accepted"), "{err}");

    let empty_auth = TxEip7702 {
        chain_id: CHAIN,
        gas_limit: 100_000,
        max_fee_per_gas: 2 * GWEI,
        max_priority_fee_per_gas: GWEI,
        ..Default::default()
    };
    let err = f.add(sign(&f.keys[0], empty_auth.clone())).unwrap_err();
    assert_eq!(err, PoolError::EmptyAuthorizationList);
    f.pool.ctx.fork = Fork::Cancun;
    let err = f.add(sign(&f.keys[0], empty_auth)).unwrap_err();
    assert_eq!(err, PoolError::TxTypeNotSupported);
}

#[test]
fn bad_signature_is_invalid_sender() {
    let tx = eip1559(0, 2 * GWEI, GWEI);
    let bogus = Signature::new(U256::ZERO, U256::ZERO, false);
    let envelope: TxEnvelope = tx.into_signed(bogus).into();
    assert_eq!(senders::recover_sender(&envelope), Err(PoolError::InvalidSender));
}

#[test]
fn replacement_needs_ten_percent_on_fee_cap_and_tip() {
    let mut f = Fixture::new(PoolConfig::default());
    let first = f.add(transfer(&f, 0, 0, 100 * GWEI, 10 * GWEI)).unwrap();
    let err = f.add(transfer(&f, 0, 0, 109 * GWEI, 11 * GWEI)).unwrap_err();
    assert_eq!(err.to_string(), "replacement transaction underpriced");
    let err = f.add(transfer(&f, 0, 0, 110 * GWEI, 10 * GWEI)).unwrap_err();
    assert_eq!(err, PoolError::ReplacementUnderpriced);
    let replaced = f.add(transfer(&f, 0, 0, 110 * GWEI, 11 * GWEI)).unwrap();
    assert_eq!(replaced.replaced, Some(first.hash));
    assert!(!f.pool.contains(&first.hash));
    assert_eq!(f.pool.len(), 1);
}

#[test]
fn gaps_queue_and_filling_promotes() {
    let mut f = Fixture::new(PoolConfig::default());
    let two = f.add(transfer(&f, 0, 2, 2 * GWEI, GWEI)).unwrap();
    let one = f.add(transfer(&f, 0, 1, 2 * GWEI, GWEI)).unwrap();
    assert!(!two.executable && !one.executable);
    assert_eq!(f.pool.status(), PoolStatus { pending: 0, queued: 2 });
    assert_eq!(f.pool.best_transactions().count(), 0);
    let zero = f.add(transfer(&f, 0, 0, 2 * GWEI, GWEI)).unwrap();
    assert!(zero.executable);
    assert_eq!(zero.promoted, vec![one.hash, two.hash]);
    assert_eq!(f.pool.status(), PoolStatus { pending: 3, queued: 0 });
    let content = f.pool.content();
    assert_eq!(content.pending[&f.addr(0)].len(), 3);
    assert!(content.queued.is_empty());
}

#[test]
fn unaffordable_chain_stays_queued() {
    let mut f = Fixture::new(PoolConfig::default());
    // Balance covers one transfer's upfront cost but not two.
    let cost = upfront_cost(&transfer(&f, 0, 0, 2 * GWEI, GWEI));
    f.state.0.insert(f.addr(0), (0, cost + U256::from(1)));
    assert!(f.add(transfer(&f, 0, 0, 2 * GWEI, GWEI)).unwrap().executable);
    assert!(!f.add(transfer(&f, 0, 1, 2 * GWEI, GWEI)).unwrap().executable);
    assert_eq!(f.pool.status(), PoolStatus { pending: 1, queued: 1 });
}

#[test]
fn fee_cap_below_base_fee_is_parked_until_it_falls() {
    let mut f = Fixture::new(PoolConfig::default());
    f.pool.on_new_head(ctx(10 * GWEI as u64), []);
    let low = f.add(transfer(&f, 0, 0, 5 * GWEI, GWEI)).unwrap();
    let after = f.add(transfer(&f, 0, 1, 50 * GWEI, GWEI)).unwrap();
    assert!(low.executable);
    assert_eq!(
        f.pool.best_transactions().count(),
        0,
        "parked tx and its successor are not offered"
    );
    f.pool.on_new_head(ctx(GWEI as u64), []);
    let best: Vec<_> = f.pool.best_transactions().map(|t| t.hash).collect();
    assert_eq!(best, vec![low.hash, after.hash]);
}

#[test]
fn best_orders_by_tip_with_nonce_order_per_sender() {
    let mut f = Fixture::new(PoolConfig::default());
    let a0 = f.add(transfer(&f, 0, 0, 100 * GWEI, GWEI)).unwrap().hash;
    let a1 = f.add(transfer(&f, 0, 1, 100 * GWEI, 50 * GWEI)).unwrap().hash;
    let b0 = f.add(transfer(&f, 1, 0, 100 * GWEI, 10 * GWEI)).unwrap().hash;
    let c0 = f.add(transfer(&f, 2, 0, 100 * GWEI, 5 * GWEI)).unwrap().hash;
    let order: Vec<_> = f.pool.best_transactions().map(|t| t.hash).collect();
    // a1 pays most but waits for a0, which pays least.
    assert_eq!(order, vec![b0, c0, a0, a1]);

    let mut best = f.pool.best_transactions();
    let first = best.next().unwrap();
    assert_eq!(first.hash, b0);
    best.mark_invalid(f.addr(2));
    let rest: Vec<_> = best.map(|t| t.hash).collect();
    assert_eq!(rest, vec![a0, a1]);
}

#[test]
fn new_head_drops_included_and_reorg_reinjects() {
    let mut f = Fixture::new(PoolConfig::default());
    let t0 = transfer(&f, 0, 0, 2 * GWEI, GWEI);
    f.add(t0.clone()).unwrap();
    let t1 = f.add(transfer(&f, 0, 1, 2 * GWEI, GWEI)).unwrap().hash;
    let rich = U256::from(10u128.pow(24));
    let dropped = f.pool.on_new_head(ctx(GWEI as u64), [(f.addr(0), 1, rich)]);
    assert_eq!(dropped, vec![*t0.tx_hash()]);
    assert_eq!(f.pool.len(), 1);
    assert_eq!(f.pool.pending_nonce(f.addr(0)), Some(2));
    assert!(f.pool.best_transactions().any(|t| t.hash == t1));

    // The block holding t0 is re-orged away: the state nonce is back to 0 and t0 returns.
    f.state.0.insert(f.addr(0), (0, rich));
    f.pool.on_new_head(ctx(GWEI as u64), [(f.addr(0), 0, rich)]);
    let back = f.add(t0).unwrap();
    assert!(back.executable);
    assert_eq!(back.promoted, vec![t1]);
    assert_eq!(f.pool.status(), PoolStatus { pending: 2, queued: 0 });
}

#[test]
fn remove_with_descendants() {
    let mut f = Fixture::new(PoolConfig::default());
    let t0 = f.add(transfer(&f, 0, 0, 2 * GWEI, GWEI)).unwrap().hash;
    let t1 = f.add(transfer(&f, 0, 1, 2 * GWEI, GWEI)).unwrap().hash;
    let t2 = f.add(transfer(&f, 0, 2, 2 * GWEI, GWEI)).unwrap().hash;
    assert_eq!(f.pool.remove_with_descendants(&t1), vec![t1, t2]);
    assert!(f.pool.contains(&t0));
    assert_eq!(f.pool.len(), 1);
}

#[test]
fn eviction_removes_the_cheapest_and_refuses_when_full_of_better() {
    let config = PoolConfig { max_count: 3, ..PoolConfig::default() };
    let mut f = Fixture::new(config);
    let cheap = f.add(transfer(&f, 0, 0, 2 * GWEI, GWEI)).unwrap().hash;
    f.add(transfer(&f, 1, 0, 20 * GWEI, GWEI)).unwrap();
    f.add(transfer(&f, 2, 0, 30 * GWEI, GWEI)).unwrap();
    let rich = f.add(transfer(&f, 3, 0, 40 * GWEI, GWEI)).unwrap();
    assert_eq!(rich.evicted, vec![cheap]);
    assert_eq!(f.pool.len(), 3);
    // Cheaper than everything held: refused, nothing else lost.
    let err = f.add(transfer(&f, 0, 0, 1 + GWEI, GWEI)).unwrap_err();
    assert_eq!(err.to_string(), "txpool is full");
    assert_eq!(f.pool.len(), 3);
}

#[test]
fn eviction_prefers_queued_and_never_opens_gaps() {
    let config = PoolConfig { max_count: 3, ..PoolConfig::default() };
    let mut f = Fixture::new(config);
    let gapped = f.add(transfer(&f, 0, 5, 90 * GWEI, GWEI)).unwrap().hash;
    let b0 = f.add(transfer(&f, 1, 0, 2 * GWEI, GWEI)).unwrap().hash;
    let b1 = f.add(transfer(&f, 1, 1, 3 * GWEI, GWEI)).unwrap().hash;
    let c0 = f.add(transfer(&f, 2, 0, 4 * GWEI, GWEI)).unwrap();
    assert_eq!(c0.evicted, vec![gapped], "queued goes first even when it pays more");
    let d0 = f.add(transfer(&f, 3, 0, 5 * GWEI, GWEI)).unwrap();
    // b1 (the last of b's chain) goes before b0 even though b0 pays less.
    assert_eq!(d0.evicted, vec![b1]);
    assert!(f.pool.contains(&b0));
}

#[test]
fn one_sender_cannot_fill_the_pool() {
    let config = PoolConfig { max_per_sender: 4, ..PoolConfig::default() };
    let mut f = Fixture::new(config);
    for nonce in 0..4 {
        f.add(transfer(&f, 0, nonce, 2 * GWEI, GWEI)).unwrap();
    }
    let err = f.add(transfer(&f, 0, 4, 2 * GWEI, GWEI)).unwrap_err();
    assert!(err.to_string().starts_with("account limit exceeded"), "{err}");
    // A replacement within the slots is still fine, and other senders are unaffected.
    f.add(transfer(&f, 0, 3, 3 * GWEI, 2 * GWEI)).unwrap();
    f.add(transfer(&f, 1, 0, 2 * GWEI, GWEI)).unwrap();
    assert_eq!(f.pool.len(), 5);
}

#[test]
fn byte_bound_evicts() {
    let one = {
        let f = Fixture::new(PoolConfig::default());
        transfer(&f, 0, 0, 2 * GWEI, GWEI).encode_2718_len()
    };
    let config = PoolConfig { max_bytes: one * 2, ..PoolConfig::default() };
    let mut f = Fixture::new(config);
    f.add(transfer(&f, 0, 0, 2 * GWEI, GWEI)).unwrap();
    f.add(transfer(&f, 1, 0, 3 * GWEI, GWEI)).unwrap();
    let third = f.add(transfer(&f, 2, 0, 4 * GWEI, GWEI)).unwrap();
    assert_eq!(third.evicted.len(), 1);
    assert!(f.pool.bytes() <= one * 2);
}

#[test]
fn sender_cache_recovers_once() {
    let f = Fixture::new(PoolConfig::default());
    let cache = senders::SenderCache::new(2);
    let tx = transfer(&f, 0, 0, 2 * GWEI, GWEI);
    assert_eq!(cache.recover(&tx).unwrap(), f.addr(0));
    assert_eq!(cache.get(tx.tx_hash()), Some(f.addr(0)));
    cache.insert(Default::default(), Address::ZERO);
    cache.insert(alloy_primitives::B256::repeat_byte(1), Address::ZERO);
    assert_eq!(cache.len(), 2);
    assert_eq!(cache.get(tx.tx_hash()), None, "oldest entry dropped at capacity");
}

#[test]
fn local_transactions_get_no_eviction_privilege() {
    let config = PoolConfig { max_count: 3, ..PoolConfig::default() };
    let mut f = Fixture::new(config);
    // Base fee 1 gwei: the peers' transfers earn 2 gwei a gas, the local ones 0.5 gwei.
    let local_gapped = f.add_local(transfer(&f, 0, 5, 90 * GWEI, 50 * GWEI)).unwrap().hash;
    let local_cheap = f.add_local(transfer(&f, 1, 0, 2 * GWEI, GWEI / 2)).unwrap().hash;
    f.add(transfer(&f, 2, 0, 10 * GWEI, 2 * GWEI)).unwrap();
    // Full: a peer's executable transaction evicts the local nonce-gapped one, however much
    // that one offers.
    let peer = f.add(transfer(&f, 3, 0, 10 * GWEI, 2 * GWEI)).unwrap();
    assert_eq!(peer.evicted, vec![local_gapped]);
    // A cheap local transaction does not push out better-paying peers ...
    let err = f.add_local(transfer(&f, 0, 0, 2 * GWEI, GWEI / 2)).unwrap_err();
    assert_eq!(err.to_string(), "txpool is full");
    // ... and is itself evicted by a better-paying peer.
    let peer = f.add(transfer(&f, 0, 0, 10 * GWEI, 2 * GWEI)).unwrap();
    assert_eq!(peer.evicted, vec![local_cheap]);
    assert_eq!(f.pool.status(), PoolStatus { pending: 3, queued: 0 });
}

#[test]
fn a_local_transaction_does_not_win_ties() {
    let config = PoolConfig { max_count: 2, ..PoolConfig::default() };
    let mut f = Fixture::new(config);
    let first = f.add(transfer(&f, 0, 0, 10 * GWEI, 2 * GWEI)).unwrap().hash;
    let second = f.add(transfer(&f, 1, 0, 10 * GWEI, 2 * GWEI)).unwrap().hash;
    // Same offer as the cheapest held: refused (as geth), not swapped for a peer's.
    let err = f.add_local(transfer(&f, 2, 0, 10 * GWEI, 2 * GWEI)).unwrap_err();
    assert_eq!(err, PoolError::PoolFull);
    assert!(f.pool.contains(&first) && f.pool.contains(&second));
}

#[test]
fn parked_below_base_fee_is_evicted_before_includable() {
    let config = PoolConfig { max_count: 2, ..PoolConfig::default() };
    let mut f = Fixture::new(config);
    f.pool.on_new_head(ctx(10 * GWEI as u64), []);
    // Nonce 0, fee cap under the base fee: executable by nonce, but no block takes it now.
    let parked = f.add_local(transfer(&f, 0, 0, 9 * GWEI, 9 * GWEI)).unwrap().hash;
    f.add(transfer(&f, 1, 0, 12 * GWEI, GWEI)).unwrap();
    let peer = f.add(transfer(&f, 2, 0, 12 * GWEI, GWEI)).unwrap();
    assert_eq!(peer.evicted, vec![parked]);
}

#[test]
fn queued_transactions_per_sender_are_capped() {
    let config = PoolConfig { account_queue: 4, max_per_sender: 16, ..PoolConfig::default() };
    let mut f = Fixture::new(config);
    for nonce in 1..=4 {
        assert!(!f.add(transfer(&f, 0, nonce, 2 * GWEI, GWEI)).unwrap().executable);
    }
    let err = f.add_local(transfer(&f, 0, 5, 2 * GWEI, GWEI)).unwrap_err();
    assert_eq!(err.to_string(), format!("account limit exceeded: address {}, limit 4", f.addr(0)));
    assert_eq!(f.pool.len(), 4);
    // Replacing a queued one is not a new slot.
    f.add(transfer(&f, 0, 4, 3 * GWEI, 2 * GWEI)).unwrap();
    // Filling the gap makes them executable, which frees the queue for later nonces.
    assert_eq!(f.add(transfer(&f, 0, 0, 2 * GWEI, GWEI)).unwrap().promoted.len(), 4);
    for nonce in 6..=9 {
        f.add(transfer(&f, 0, nonce, 2 * GWEI, GWEI)).unwrap();
    }
    let err = f.add(transfer(&f, 0, 10, 2 * GWEI, GWEI)).unwrap_err();
    assert!(matches!(err, PoolError::AccountLimitExceeded { limit: 4, .. }), "{err}");
    assert_eq!(f.pool.status(), PoolStatus { pending: 5, queued: 4 });
}

#[test]
fn queued_transactions_expire_after_their_lifetime() {
    let clock = Arc::new(ManualClock::new());
    let mut f = Fixture::new(PoolConfig::default());
    f.pool = TxPool::with_clock(PoolConfig::default(), ctx(GWEI as u64), clock.clone());
    let hour = Duration::from_secs(3600);
    let pending = f.add(transfer(&f, 0, 0, 2 * GWEI, GWEI)).unwrap().hash;
    let gapped = f.add_local(transfer(&f, 0, 2, 2 * GWEI, GWEI)).unwrap().hash;
    let lone = f.add(transfer(&f, 1, 3, 2 * GWEI, GWEI)).unwrap().hash;
    let progressing = f.add(transfer(&f, 2, 1, 2 * GWEI, GWEI)).unwrap().hash;

    clock.advance(2 * hour);
    // Key 2 makes progress (fills its gap and adds a new gapped one): its clock restarts.
    f.add(transfer(&f, 2, 0, 2 * GWEI, GWEI)).unwrap();
    let later = f.add(transfer(&f, 2, 3, 2 * GWEI, GWEI)).unwrap().hash;
    // Key 1 only adds more gapped transactions: that is no progress.
    let lone2 = f.add(transfer(&f, 1, 5, 2 * GWEI, GWEI)).unwrap().hash;

    clock.advance(hour - Duration::from_secs(1));
    assert!(f.pool.on_new_head(ctx(GWEI as u64), []).is_empty(), "not yet 3 hours");
    clock.advance(Duration::from_secs(2));
    let mut dropped = f.pool.on_new_head(ctx(GWEI as u64), []);
    dropped.sort();
    let mut expected = vec![gapped, lone, lone2];
    expected.sort();
    assert_eq!(dropped, expected);
    assert!(f.pool.contains(&pending) && f.pool.contains(&progressing) && f.pool.contains(&later));
    assert!(!f.pool.is_tracked(&f.addr(1)));
    assert_eq!(f.pool.status(), PoolStatus { pending: 3, queued: 1 });
}

#[test]
fn gapped_one_wei_junk_cannot_lock_peers_out() {
    let config = PoolConfig { max_count: 100, account_queue: 8, ..PoolConfig::default() };
    let mut f = Fixture::new(config);
    // The cheapest junk that passes validation: 1 wei fee cap and tip, from 20 local senders,
    // half with nonce gaps (up to their queue cap), half parked below the base fee.
    let junk_keys = f.more_keys(20, U256::from(10u64.pow(9)));
    for (i, key) in junk_keys.enumerate() {
        let nonces = if i % 2 == 0 { 1..9 } else { 0..2 };
        for nonce in nonces {
            f.add_local(transfer(&f, key, nonce, 1, 1)).unwrap();
        }
    }
    assert_eq!(f.pool.len(), 100);
    let err = f.add_local(transfer(&f, 0, 1, 1, 1)).unwrap_err();
    assert_eq!(err, PoolError::PoolFull, "more junk only replaces junk");

    let mut normal = Vec::new();
    for key in 0..4 {
        for nonce in 0..3 {
            let added = f.add(transfer(&f, key, nonce, 2 * GWEI, GWEI)).unwrap();
            assert!(added.executable);
            assert_eq!(added.evicted.len(), 1);
            normal.push(added.hash);
        }
    }
    let best: Vec<TxHash> = f.pool.best_transactions().map(|t| t.hash).collect();
    assert_eq!(best.len(), normal.len());
    assert!(normal.iter().all(|h| best.contains(h)));
}

/// A transaction refused for room changes nothing: the pool does not evict others to make room
/// for it and then evict it too (losing them for nothing), and a replacement refused for room
/// leaves the transaction it would have replaced.
#[test]
fn a_transaction_refused_for_room_evicts_nothing() {
    let one = {
        let f = Fixture::new(PoolConfig::default());
        transfer(&f, 0, 0, 2 * GWEI, GWEI).encode_2718_len()
    };
    let config = PoolConfig { max_bytes: 3 * one + 10, ..PoolConfig::default() };
    let mut f = Fixture::new(config);
    let junk = f.add(transfer(&f, 0, 1, 2 * GWEI, 1)).unwrap().hash;
    let good = f.add(transfer(&f, 1, 0, 10 * GWEI, 5 * GWEI)).unwrap().hash;
    let better = f.add(transfer(&f, 2, 0, 10 * GWEI, 6 * GWEI)).unwrap().hash;
    let before = (f.pool.len(), f.pool.bytes(), f.pool.status());

    // Twice a transfer's size and paying less than the good ones: room for it would take the
    // queued junk and a good transaction, and it is the next to go after the junk.
    let big = |f: &Fixture, nonce: u64, tip: u128| {
        let tx = TxEip1559 {
            gas_limit: 100_000,
            input: vec![1u8; one].into(),
            ..eip1559(nonce, 10 * GWEI, tip)
        };
        sign(&f.keys[3], tx)
    };
    assert_eq!(f.add(big(&f, 0, 2 * GWEI)).unwrap_err(), PoolError::PoolFull);
    assert!(f.pool.contains(&junk), "the junk was evicted for a transaction then refused");
    assert!(f.pool.contains(&good) && f.pool.contains(&better));
    assert_eq!((f.pool.len(), f.pool.bytes(), f.pool.status()), before);
    assert!(!f.pool.is_tracked(&f.addr(3)));

    // A replacement refused for room keeps the transaction it would have replaced.
    let small = f.add(transfer(&f, 0, 0, 10 * GWEI, GWEI)).unwrap();
    assert_eq!(small.evicted, vec![junk], "a transfer fits in the junk's room");
    let held = (f.pool.len(), f.pool.bytes());
    let bigger = TxEip1559 {
        gas_limit: 100_000,
        input: vec![1u8; one].into(),
        ..eip1559(0, 20 * GWEI, 2 * GWEI)
    };
    assert_eq!(f.add(sign(&f.keys[0], bigger)).unwrap_err(), PoolError::PoolFull);
    assert!(f.pool.contains(&small.hash), "the replaced transaction is lost");
    assert_eq!((f.pool.len(), f.pool.bytes()), held);
}
