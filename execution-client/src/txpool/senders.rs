//! Recovered senders, remembered so each transaction's signature is recovered once per node: on
//! entry to the pool, and reused when the same transaction arrives in a payload.

use std::collections::{HashMap, VecDeque};

use alloy_consensus::{TxEnvelope, transaction::SignerRecoverable};
use alloy_primitives::{Address, TxHash};
use parking_lot::Mutex;

use super::PoolError;

/// Recovers the signer of a transaction; a bad signature is geth's `invalid sender`.
pub fn recover_sender(tx: &TxEnvelope) -> Result<Address, PoolError> {
    tx.recover_signer().map_err(|_| PoolError::InvalidSender)
}

/// A bounded map from transaction hash to sender, oldest entries dropped first.
#[derive(Debug)]
pub struct SenderCache {
    capacity: usize,
    inner: Mutex<(HashMap<TxHash, Address>, VecDeque<TxHash>)>,
}

impl SenderCache {
    /// A cache holding at most `capacity` senders.
    pub fn new(capacity: usize) -> Self {
        Self { capacity: capacity.max(1), inner: Mutex::new((HashMap::new(), VecDeque::new())) }
    }

    /// Remembers the sender of `hash`.
    pub fn insert(&self, hash: TxHash, sender: Address) {
        let mut guard = self.inner.lock();
        let (map, order) = &mut *guard;
        if map.insert(hash, sender).is_none() {
            order.push_back(hash);
            while order.len() > self.capacity {
                if let Some(old) = order.pop_front() {
                    map.remove(&old);
                }
            }
        }
    }

    /// The remembered sender of `hash`.
    pub fn get(&self, hash: &TxHash) -> Option<Address> {
        self.inner.lock().0.get(hash).copied()
    }

    /// The sender of `tx`: from the cache, else recovered (and remembered).
    pub fn recover(&self, tx: &TxEnvelope) -> Result<Address, PoolError> {
        let hash = *tx.tx_hash();
        if let Some(sender) = self.get(&hash) {
            return Ok(sender);
        }
        let sender = recover_sender(tx)?;
        self.insert(hash, sender);
        Ok(sender)
    }

    /// Number of remembered senders.
    pub fn len(&self) -> usize {
        self.inner.lock().0.len()
    }

    /// Whether nothing is remembered.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}
