//! Errors of the storage layer.

use alloy_primitives::B256;
use std::path::PathBuf;

/// Everything the storage layer can fail with. Each variant names the block, table or path a
/// log line needs.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    /// `open` found no database files at the path; nothing was created.
    #[error("no database at {path}: run `tandem-el init` first")]
    NotInitialized {
        /// The directory that was opened.
        path: PathBuf,
    },
    /// The path holds something that is not a `tandem-el` database; it was left untouched.
    #[error("{path} is not a tandem-el database: {reason}")]
    Foreign {
        /// The directory that was opened.
        path: PathBuf,
        /// What gave it away.
        reason: String,
    },
    /// The database was written by another schema version of `tandem-el`.
    #[error("database at {path} has schema version {found}, this build reads version {expected}")]
    SchemaVersion {
        /// The directory that was opened.
        path: PathBuf,
        /// Version found in the meta table.
        found: u32,
        /// Version this build writes.
        expected: u32,
    },
    /// The database belongs to another chain; it was left untouched.
    #[error(
        "database at {path} holds chain {found_chain_id} (genesis {found_genesis}), \
         the chain spec is chain {expected_chain_id} (genesis {expected_genesis})"
    )]
    ChainMismatch {
        /// The directory that was opened.
        path: PathBuf,
        /// Chain id stored in the database.
        found_chain_id: u64,
        /// Genesis hash stored in the database.
        found_genesis: B256,
        /// Chain id of the chain spec.
        expected_chain_id: u64,
        /// Genesis hash of the chain spec.
        expected_genesis: B256,
    },
    /// An MDBX call failed.
    #[error("mdbx {operation} failed: {source}")]
    Mdbx {
        /// What was being done.
        operation: &'static str,
        /// The libmdbx error.
        #[source]
        source: libmdbx::Error,
    },
    /// A stored value could not be decoded: the database is damaged or from another program.
    #[error("corrupt entry in table {table} (key 0x{key}): {reason}")]
    Corrupt {
        /// Table name.
        table: &'static str,
        /// Hex of the key.
        key: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The computed genesis state root differs from the chain spec's genesis header.
    #[error("genesis state root mismatch: computed {computed}, genesis header has {expected}")]
    GenesisStateRoot {
        /// Root computed from the alloc.
        computed: B256,
        /// Root in the genesis header.
        expected: B256,
    },
    /// `commit_block` was given a block that is not the child of the canonical tip.
    #[error(
        "block {number} ({hash}) with parent {parent_hash} does not extend the tip {tip_number} ({tip_hash})"
    )]
    NotChildOfTip {
        /// Number of the block.
        number: u64,
        /// Hash of the block.
        hash: B256,
        /// Parent hash in its header.
        parent_hash: B256,
        /// Current tip number.
        tip_number: u64,
        /// Current tip hash.
        tip_hash: B256,
    },
    /// `commit_block` was given trie updates computed on another tip.
    #[error(
        "trie updates for block {number} ({hash}) were computed on {computed_on}, the tip is {tip_hash}"
    )]
    StaleTrieUpdates {
        /// Number of the block.
        number: u64,
        /// Hash of the block.
        hash: B256,
        /// Tip the updates were computed on.
        computed_on: B256,
        /// Current tip hash.
        tip_hash: B256,
    },
    /// Pending trie updates were computed on another tip (blocks were persisted or unwound since).
    #[error("pending trie updates were computed on {computed_on}, the tip is {tip_hash}")]
    PendingNotOnTip {
        /// Tip the pending updates were computed on.
        computed_on: B256,
        /// Current tip hash.
        tip_hash: B256,
    },
    /// The trie updates' root differs from the block header's state root.
    #[error("block {number} ({hash}): header state root {expected}, trie updates give {computed}")]
    StateRootMismatch {
        /// Number of the block.
        number: u64,
        /// Hash of the block.
        hash: B256,
        /// Root in the header.
        expected: B256,
        /// Root of the trie updates.
        computed: B256,
    },
    /// Senders or receipts do not match the block's transaction count.
    #[error("block {number} ({hash}) has {transactions} transactions but {what} has {got} entries")]
    BodyLengthMismatch {
        /// Number of the block.
        number: u64,
        /// Hash of the block.
        hash: B256,
        /// Transactions in the body.
        transactions: usize,
        /// `senders` or `receipts`.
        what: &'static str,
        /// Length given.
        got: usize,
    },
    /// A block the operation needs is not in the canonical chain.
    #[error("block {number} is not in the canonical chain (tip is {tip})")]
    UnknownBlock {
        /// Requested number.
        number: u64,
        /// Current tip number.
        tip: u64,
    },
    /// The state of a block cannot be proven (EIP-1186) from what is stored.
    #[error("{0}")]
    ProofUnavailable(String),
    /// Unwinding was asked for a target at or above the tip.
    #[error("cannot unwind to block {target}: the tip is {tip}")]
    UnwindTarget {
        /// Requested target.
        target: u64,
        /// Current tip number.
        tip: u64,
    },
    /// After reverting the change sets the state root differs from the target header's.
    #[error(
        "unwind to block {number} ({hash}): reverted state has root {computed}, header has {expected}"
    )]
    UnwindStateRoot {
        /// Target block number.
        number: u64,
        /// Target block hash.
        hash: B256,
        /// Root in the target header.
        expected: B256,
        /// Root after reverting.
        computed: B256,
    },
    /// Bytecode referenced by an account is missing.
    #[error("bytecode {code_hash} is missing")]
    MissingBytecode {
        /// The code hash asked for.
        code_hash: B256,
    },
    /// A database directory could not be inspected or created.
    #[error("{path}: {source}")]
    Io {
        /// The path.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
}

impl revm::database::DBErrorMarker for StorageError {}

/// Attaches the name of an MDBX operation to a libmdbx result.
pub(crate) trait MdbxResultExt<T> {
    /// Maps the error to [`StorageError::Mdbx`] with `operation`.
    fn op(self, operation: &'static str) -> Result<T, StorageError>;
}

impl<T> MdbxResultExt<T> for Result<T, libmdbx::Error> {
    fn op(self, operation: &'static str) -> Result<T, StorageError> {
        self.map_err(|source| StorageError::Mdbx { operation, source })
    }
}

/// Builds a [`StorageError::Corrupt`].
pub(crate) fn corrupt(table: &'static str, key: &[u8], reason: impl Into<String>) -> StorageError {
    StorageError::Corrupt { table, key: hex::encode(key), reason: reason.into() }
}
