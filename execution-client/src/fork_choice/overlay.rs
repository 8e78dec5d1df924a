//! State after an in-memory block: its ancestors' changes layered over the persisted state.

use std::sync::Arc;

use alloy_primitives::{Address, B256, U256};
use revm::{DatabaseRef, bytecode::Bytecode, state::AccountInfo};

use super::ExecutedBlock;
use crate::storage::{StateProvider, StorageError};

/// A revm state reader: the newest in-memory block's changes first, then older ones, then the
/// database at the persisted tip.
///
/// Each [`revm::database::BundleState`] holds *present* values, so reading the newest layer that
/// knows a key gives the value after the overlay's top block. A block that is also persisted
/// (persistence raced with this view) reads the same values from both places.
#[derive(Debug)]
pub struct OverlayState<'db> {
    base: StateProvider<'db>,
    /// Newest first.
    layers: Vec<Arc<ExecutedBlock>>,
}

impl<'db> OverlayState<'db> {
    /// `layers` are the in-memory blocks above the base, newest first.
    pub fn new(base: StateProvider<'db>, layers: Vec<Arc<ExecutedBlock>>) -> Self {
        Self { base, layers }
    }

    /// The persisted state under the overlay.
    pub fn base(&self) -> &StateProvider<'db> {
        &self.base
    }

    /// Number of the block whose post-state this reads.
    pub fn block_number(&self) -> u64 {
        self.layers.first().map_or(self.base.block_number(), |b| b.number())
    }
}

impl DatabaseRef for OverlayState<'_> {
    type Error = StorageError;

    fn basic_ref(&self, address: Address) -> Result<Option<AccountInfo>, StorageError> {
        for layer in &self.layers {
            if let Some(account) = layer.bundle.account(&address) {
                return Ok(account.account_info());
            }
        }
        self.base.basic_ref(address)
    }

    fn code_by_hash_ref(&self, code_hash: B256) -> Result<Bytecode, StorageError> {
        for layer in &self.layers {
            if let Some(code) = layer.bundle.bytecode(&code_hash) {
                return Ok(code);
            }
        }
        self.base.code_by_hash_ref(code_hash)
    }

    fn storage_ref(&self, address: Address, index: U256) -> Result<U256, StorageError> {
        for layer in &self.layers {
            if let Some(account) = layer.bundle.account(&address) {
                // Known slot, or storage known to be empty (created or destroyed here).
                if let Some(value) = account.storage_slot(index) {
                    return Ok(value);
                }
            }
        }
        self.base.storage_ref(address, index)
    }

    fn block_hash_ref(&self, number: u64) -> Result<B256, StorageError> {
        for layer in &self.layers {
            if layer.number() == number {
                return Ok(layer.hash());
            }
        }
        self.base.block_hash_ref(number)
    }
}
