//! MDBX storage of the execution client: blocks, receipts, state, history and the trie.
//!
//! # Design
//!
//! One MDBX environment (`mdbx.dat` in the data directory) with the tables listed in
//! [`tables`]. The canonical chain is the `CanonicalHashes` table: its last entry is the tip.
//! State is kept three ways, all updated by the same write transaction:
//!
//! - **plain state** (`PlainAccounts`, `PlainStorage`, `Bytecodes`): the latest values by
//!   address and slot, what execution reads;
//! - **history** (`AccountChangeSets`, `StorageChangeSets` with the `AccountHistory` and
//!   `StorageHistory` indexes): the value every changed account/slot had *before* each block.
//!   The value at block `n` is the change-set value of the first block after `n` that changed the
//!   key, or the plain value when no later block did (reth's history tables work the same way).
//!   Nothing is pruned: the node is an archive by default. The same change sets drive
//!   [`Database::unwind_to`]. The indexes take the blocks' keys a batch of
//!   [`HISTORY_INDEX_BATCH`] blocks at a time, in key order (a batch dirties each index page
//!   once, not once per changed key and block), written in shares over the next batch's commits
//!   so that no commit stalls ([`history`]); reads at a block past the last indexed one look at
//!   the few change sets after it;
//! - **hashed state and trie** (`HashedAccounts`, `HashedStorage`, `AccountTrie`,
//!   `StorageTrie`): what the incremental state root reads, see [`crate::state_root`].
//!
//! # Writing
//!
//! [`Database::state_root_with`] computes the root a block's [`BundleState`] would give, without
//! writing; the import path compares it to the header and then calls
//! [`Database::commit_block`], which writes the block, its receipts, plain state, change sets,
//! hashed state and trie changes in **one** MDBX write transaction with durable sync. A crash
//! (even `kill -9`) therefore leaves the database at the last fully committed block; MDBX
//! recovers on the next open without any repair step of ours.
//!
//! Several blocks can be persisted together: [`Database::trie_delta`] computes a block's trie
//! changes and root incrementally over the trie updates of the not yet persisted blocks before it
//! ([`Database::state_root_with_pending`] does the same from their bundles, re-hashing their
//! keys), and
//! [`Database::commit_blocks`] writes the blocks (each with its own change sets) and the merged
//! trie updates in one transaction, so one fsync covers the batch. [`DatabaseConfig`] can turn
//! the per-commit fsync off for throwaway databases (a process crash still loses nothing
//! committed; a power loss may lose the last commits, never corrupt the file).
//!
//! Change sets hold each key's value before the block, not the bundle's reverts, so they are
//! exact whatever retention the executor used: an account's is read from the plain state inside
//! the write transaction, a slot's is the bundle's original value (blocks are written in order,
//! each on its parent, so that is the plain state's value), and a self-destructed account's whole
//! storage is read from the plain state before it is dropped.
//!
//! # Identity
//!
//! The `Meta` table names the client, schema version, chain id and genesis hash. [`Database::open`]
//! first opens the environment read-only and checks them, so a directory of another chain,
//! another program or a damaged file is refused with a clear error and left untouched.

mod codec;
mod error;
mod history;
mod provider;
pub mod tables;
mod trie_store;
mod writer;

#[cfg(test)]
mod tests;

pub use codec::StoredAccount;
pub use error::StorageError;
use provider::History;
pub use provider::StateProvider;

pub(crate) use error::{MdbxResultExt, corrupt};

use crate::state_root::{self, TrieUpdates};
use alloy_consensus::{Block, BlockBody, Header, ReceiptEnvelope, Sealed, TxEnvelope};
use alloy_eips::BlockHashOrNumber;
use alloy_primitives::{Address, B256};
use alloy_rlp::Decodable;
use libmdbx::{
    DatabaseOptions, Mode, NoWriteMap, RO, ReadWriteOptions, SyncMode, TableFlags, Transaction,
};
use revm::database::BundleState;
use revm::state::AccountInfo;
use std::path::{Path, PathBuf};
use tandem_shared::ChainSpec;

/// A block with its hash: the header hash, trusted as given (computed by whoever sealed it).
pub type SealedBlock = Sealed<Block<TxEnvelope>>;

/// Seals a block by hashing its header.
pub fn seal_block(block: Block<TxEnvelope>) -> SealedBlock {
    let hash = block.header.hash_slow();
    Sealed::new_unchecked(block, hash)
}

/// Version of the stored encodings; a database of another version is refused.
pub const SCHEMA_VERSION: u32 = 1;
/// Client name written into and required from the `Meta` table.
pub const CLIENT_NAME: &str = "tandem-el";
/// Name of the MDBX data file inside the database directory.
pub const DATA_FILE: &str = "mdbx.dat";
/// Name of the MDBX lock file inside the database directory.
pub const LOCK_FILE: &str = "mdbx.lck";

/// The database directory inside a node's `--datadir`.
pub fn db_dir(datadir: &Path) -> PathBuf {
    datadir.join("db")
}

type Env = libmdbx::Database<NoWriteMap>;

impl StoredAccount {
    /// The stored part of a revm account.
    pub fn from_info(info: &AccountInfo) -> Self {
        Self { nonce: info.nonce, balance: info.balance, code_hash: info.code_hash }
    }

    /// As a revm account whose code revm fetches by hash when needed.
    pub fn to_info(&self) -> AccountInfo {
        AccountInfo {
            balance: self.balance,
            nonce: self.nonce,
            code_hash: self.code_hash,
            code: None,
            ..Default::default()
        }
    }
}

/// An executed block waiting to be persisted by [`Database::commit_blocks`].
#[derive(Debug, Clone)]
pub struct ExecutedBlock {
    /// The block with its hash.
    pub block: SealedBlock,
    /// One recovered sender per transaction.
    pub senders: Vec<Address>,
    /// One receipt per transaction.
    pub receipts: Vec<ReceiptEnvelope>,
    /// The block's state changes.
    pub bundle: BundleState,
}

/// Where a transaction is in the canonical chain.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TxLocation {
    /// Number of the block holding it.
    pub block_number: u64,
    /// Hash of the block holding it.
    pub block_hash: B256,
    /// Position in the block.
    pub index: u32,
}

/// Size of one table, for `tandem-el db stats`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableStats {
    /// Table name.
    pub name: &'static str,
    /// Number of entries.
    pub entries: usize,
    /// Bytes in its B-tree pages (branch, leaf and overflow).
    pub size_bytes: u64,
}

/// How the MDBX environment is opened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DatabaseConfig {
    /// Sync data and meta page on every commit (MDBX durable mode; the default). When `false`
    /// (MDBX safe-no-sync), a process crash still loses nothing that was committed, but a power
    /// loss may lose the last commits (never corrupting the file): for throwaway databases such
    /// as fixture runs.
    pub durable: bool,
    /// Upper bound of the data file in bytes (virtual address space is reserved for it).
    pub max_size: usize,
}

impl Default for DatabaseConfig {
    fn default() -> Self {
        Self { durable: true, max_size: 256 << 30 }
    }
}

/// The execution client's database: an MDBX environment holding one chain.
///
/// Readers ([`Database::latest`], [`Database::at_block`], block reads) each see a consistent
/// snapshot; writers ([`Database::commit_block`], [`Database::unwind_to`]) are serialized by MDBX.
#[derive(Debug)]
pub struct Database {
    env: Env,
    path: PathBuf,
    chain_id: u64,
    genesis_hash: B256,
    /// History index keys not yet written ([`history`]); `None` until the first commit.
    history_backlog: parking_lot::Mutex<Option<history::Backlog>>,
}

/// Most read transactions open at once; MDBX's default (about a hundred) is fewer than the
/// RPC's heavy-request pool may be configured to hold.
pub const MAX_READERS: u32 = 4096;

impl Database {
    /// Opens an existing database. `Err` when there is none at `path`
    /// ([`StorageError::NotInitialized`]), when it is not ours, of another schema version, or
    /// unreadable; in those cases nothing at `path` is modified.
    pub fn open(path: &Path) -> Result<Self, StorageError> {
        Self::open_with(path, DatabaseConfig::default())
    }

    /// [`Database::open`] with explicit settings.
    pub fn open_with(path: &Path, config: DatabaseConfig) -> Result<Self, StorageError> {
        if !path.join(DATA_FILE).is_file() {
            return Err(StorageError::NotInitialized { path: path.to_path_buf() });
        }
        let (chain_id, genesis_hash) = Self::check_identity(path)?;
        let env = Self::open_env(path, config)?;
        Self::create_tables(&env)?;
        Ok(Self {
            env,
            path: path.to_path_buf(),
            chain_id,
            genesis_hash,
            history_backlog: Default::default(),
        })
    }

    /// Creates the database for `spec` at `path` and writes genesis (header, empty body, alloc,
    /// hashed state and trie) in one transaction. If a database of the same chain is already
    /// there it is opened as is; one of another chain is refused with
    /// [`StorageError::ChainMismatch`]; a non-empty directory without a database is refused with
    /// [`StorageError::Foreign`].
    pub fn init(path: &Path, spec: &ChainSpec) -> Result<Self, StorageError> {
        Self::init_with(path, spec, DatabaseConfig::default())
    }

    /// [`Database::init`] with explicit settings.
    pub fn init_with(
        path: &Path,
        spec: &ChainSpec,
        config: DatabaseConfig,
    ) -> Result<Self, StorageError> {
        if path.join(DATA_FILE).is_file() {
            let db = Self::open_with(path, config)?;
            if db.chain_id != spec.chain_id() || db.genesis_hash != spec.genesis_hash() {
                return Err(StorageError::ChainMismatch {
                    path: path.to_path_buf(),
                    found_chain_id: db.chain_id,
                    found_genesis: db.genesis_hash,
                    expected_chain_id: spec.chain_id(),
                    expected_genesis: spec.genesis_hash(),
                });
            }
            return Ok(db);
        }
        let io = |source| StorageError::Io { path: path.to_path_buf(), source };
        if path.exists() && std::fs::read_dir(path).map_err(io)?.next().is_some() {
            return Err(StorageError::Foreign {
                path: path.to_path_buf(),
                reason: format!("the directory is not empty and has no {DATA_FILE}"),
            });
        }
        std::fs::create_dir_all(path).map_err(io)?;
        let result = Self::open_env(path, config).and_then(|env| {
            Self::create_tables(&env)?;
            writer::write_genesis(&env, spec)?;
            Ok(env)
        });
        match result {
            Ok(env) => Ok(Self {
                env,
                path: path.to_path_buf(),
                chain_id: spec.chain_id(),
                genesis_hash: spec.genesis_hash(),
                history_backlog: Default::default(),
            }),
            Err(error) => {
                // Nothing was committed: remove the files we created so `init` can be retried.
                let _ = std::fs::remove_file(path.join(DATA_FILE));
                let _ = std::fs::remove_file(path.join(LOCK_FILE));
                Err(error)
            }
        }
    }

    /// The database directory.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Chain id recorded at `init`.
    pub fn chain_id(&self) -> u64 {
        self.chain_id
    }

    /// Genesis hash recorded at `init`.
    pub fn genesis_hash(&self) -> B256 {
        self.genesis_hash
    }

    /// State at the canonical tip. The reader holds an MDBX read snapshot until dropped; keep it
    /// short-lived (a long-lived reader stops MDBX from reusing pages freed by later commits).
    pub fn latest(&self) -> Result<StateProvider<'_>, StorageError> {
        let txn = self.ro()?;
        let (tip, _) = read_tip(&txn)?;
        Ok(StateProvider::new(txn, tip, None))
    }

    /// State as it was after canonical block `number` was applied. `Err`
    /// ([`StorageError::UnknownBlock`]) when `number` is above the tip.
    pub fn at_block(&self, number: u64) -> Result<StateProvider<'_>, StorageError> {
        let txn = self.ro()?;
        let (tip, _) = read_tip(&txn)?;
        if number > tip {
            return Err(StorageError::UnknownBlock { number, tip });
        }
        let history = match number < tip {
            true => Some(History { indexed: read_history_indexed(&txn, tip)?, tip }),
            false => None,
        };
        Ok(StateProvider::new(txn, number, history))
    }

    /// Number and hash of the canonical tip (genesis right after `init`).
    pub fn canonical_tip(&self) -> Result<(u64, B256), StorageError> {
        read_tip(&self.ro()?)
    }

    /// Hash of canonical block `number`; `None` above the tip.
    pub fn canonical_hash(&self, number: u64) -> Result<Option<B256>, StorageError> {
        let txn = self.ro()?;
        let table = txn.open_table(Some(tables::CANONICAL_HASHES)).op("open CanonicalHashes")?;
        get_b256(&txn, &table, tables::CANONICAL_HASHES, &tables::number_key(number))
    }

    /// Number of the canonical block with `hash`; `None` if no canonical block has it.
    pub fn block_number(&self, hash: B256) -> Result<Option<u64>, StorageError> {
        block_number_in(&self.ro()?, hash)
    }

    /// Header of a canonical block; `None` if there is no such block.
    pub fn header(&self, id: impl Into<BlockHashOrNumber>) -> Result<Option<Header>, StorageError> {
        let txn = self.ro()?;
        let Some(number) = resolve(&txn, id.into())? else { return Ok(None) };
        read_header(&txn, number)
    }

    /// A canonical block with its hash; `None` if there is no such block.
    pub fn block(
        &self,
        id: impl Into<BlockHashOrNumber>,
    ) -> Result<Option<SealedBlock>, StorageError> {
        let txn = self.ro()?;
        let Some(number) = resolve(&txn, id.into())? else { return Ok(None) };
        let Some(header) = read_header(&txn, number)? else { return Ok(None) };
        let Some(body) = read_body(&txn, number)? else { return Ok(None) };
        let canonical =
            txn.open_table(Some(tables::CANONICAL_HASHES)).op("open CanonicalHashes")?;
        let hash =
            get_b256(&txn, &canonical, tables::CANONICAL_HASHES, &tables::number_key(number))?
                .unwrap_or_else(|| header.hash_slow());
        Ok(Some(Sealed::new_unchecked(body.into_block(header), hash)))
    }

    /// Recovered senders of canonical block `number`, one per transaction; `None` if no such block.
    pub fn senders(&self, number: u64) -> Result<Option<Vec<Address>>, StorageError> {
        let txn = self.ro()?;
        let table = txn.open_table(Some(tables::SENDERS)).op("open Senders")?;
        let key = tables::number_key(number);
        let Some(bytes) = txn.get::<Vec<u8>>(&table, key).op("read Senders")? else {
            return Ok(None);
        };
        if bytes.len() % 20 != 0 {
            return Err(corrupt(tables::SENDERS, &key, format!("{} bytes", bytes.len())));
        }
        Ok(Some(bytes.chunks_exact(20).map(Address::from_slice).collect()))
    }

    /// Receipts of canonical block `number`, in transaction order; `None` if no such block.
    pub fn receipts(&self, number: u64) -> Result<Option<Vec<ReceiptEnvelope>>, StorageError> {
        let txn = self.ro()?;
        let table = txn.open_table(Some(tables::RECEIPTS)).op("open Receipts")?;
        let key = tables::number_key(number);
        let Some(bytes) = txn.get::<Vec<u8>>(&table, key).op("read Receipts")? else {
            return Ok(None);
        };
        codec::decode_receipts(&bytes)
            .map(Some)
            .map_err(|reason| corrupt(tables::RECEIPTS, &key, reason))
    }

    /// A canonical transaction and where it is; `None` if no canonical block contains it.
    pub fn transaction_by_hash(
        &self,
        hash: B256,
    ) -> Result<Option<(TxEnvelope, TxLocation)>, StorageError> {
        let txn = self.ro()?;
        let table = txn.open_table(Some(tables::TX_LOOKUP)).op("open TxLookup")?;
        let Some(location) = txn.get::<Vec<u8>>(&table, hash).op("read TxLookup")? else {
            return Ok(None);
        };
        let (Some(block_number), Some(index)) = (
            tables::read_u64(&location),
            location.get(8..12).and_then(|b| <[u8; 4]>::try_from(b).ok()).map(u32::from_be_bytes),
        ) else {
            return Err(corrupt(
                tables::TX_LOOKUP,
                hash.as_slice(),
                format!("{} bytes", location.len()),
            ));
        };
        let Some(body) = read_body(&txn, block_number)? else { return Ok(None) };
        let Some(tx) = body.transactions.into_iter().nth(index as usize) else {
            return Err(corrupt(
                tables::TX_LOOKUP,
                hash.as_slice(),
                format!("index {index} past the body of block {block_number}"),
            ));
        };
        let canonical =
            txn.open_table(Some(tables::CANONICAL_HASHES)).op("open CanonicalHashes")?;
        let block_hash = get_b256(
            &txn,
            &canonical,
            tables::CANONICAL_HASHES,
            &tables::number_key(block_number),
        )?
        .unwrap_or_default();
        Ok(Some((tx, TxLocation { block_number, block_hash, index })))
    }

    /// The state root the canonical tip's state would have with `bundle` applied, computed
    /// incrementally from the stored trie nodes and the keys `bundle` touches, and the updates
    /// that [`Database::commit_block`] writes. Nothing is written. `Err` only on a read failure
    /// or damaged data.
    pub fn state_root_with(
        &self,
        bundle: &BundleState,
    ) -> Result<(B256, TrieUpdates), StorageError> {
        let txn = self.ro()?;
        let (_, tip_hash) = read_tip(&txn)?;
        let mut updates = state_root::compute_state_root_parallel(
            || trie_store::MdbxTrieStore::new(&txn),
            state_root::HashedPostState::from_bundle(bundle),
        )?;
        updates.parent_hash = tip_hash;
        Ok((updates.state_root, updates))
    }

    /// The state root the canonical tip's state would have after the not yet persisted
    /// `pending` bundles (in block order) and then `bundle` are applied, and the updates that
    /// [`Database::commit_blocks`] writes for all of them at once. The work grows with the keys
    /// the blocks touch together. Nothing is written.
    pub fn state_root_with_pending(
        &self,
        pending: &[&BundleState],
        bundle: &BundleState,
    ) -> Result<(B256, TrieUpdates), StorageError> {
        let txn = self.ro()?;
        let (_, tip_hash) = read_tip(&txn)?;
        let mut post = state_root::HashedPostState::default();
        for earlier in pending {
            post.extend(state_root::HashedPostState::from_bundle(earlier));
        }
        post.extend(state_root::HashedPostState::from_bundle(bundle));
        let mut updates =
            state_root::compute_state_root_parallel(|| trie_store::MdbxTrieStore::new(&txn), post)?;
        updates.parent_hash = tip_hash;
        Ok((updates.state_root, updates))
    }

    /// Like [`Database::state_root_with_pending`], but incremental over the pending blocks too:
    /// `pending` is the result of the previous call (or of [`Database::state_root_with`] for the
    /// first pending block), and the returned updates take the persisted tip straight to the
    /// new block, ready for [`Database::commit_blocks`] over all pending blocks plus this one.
    /// The work grows with the keys `bundle` touches only. `Err`
    /// ([`StorageError::PendingNotOnTip`]) when `pending` was computed on another tip.
    pub fn state_root_over(
        &self,
        pending: &TrieUpdates,
        bundle: &BundleState,
    ) -> Result<(B256, TrieUpdates), StorageError> {
        let next = self.trie_delta(Some(pending), bundle)?;
        let mut merged = pending.clone();
        merged.merge(next);
        Ok((merged.state_root, merged))
    }

    /// The trie changes `bundle` makes on the state after the not yet persisted blocks whose
    /// cumulative updates over the tip are `pending` (`None`: on the tip itself), and the new
    /// root (`state_root`). Only the keys `bundle` touches are hashed. The result is relative to
    /// the state it was computed on, so the updates of consecutive blocks fold with
    /// [`TrieUpdates::merge`] into what [`Database::commit_blocks`] writes for all of them.
    /// `Err` ([`StorageError::PendingNotOnTip`]) when `pending` was computed on another tip.
    pub fn trie_delta(
        &self,
        pending: Option<&TrieUpdates>,
        bundle: &BundleState,
    ) -> Result<TrieUpdates, StorageError> {
        let txn = self.ro()?;
        let (_, tip_hash) = read_tip(&txn)?;
        let post = state_root::HashedPostState::from_bundle(bundle);
        let mut delta = match pending {
            None => state_root::compute_state_root_parallel(
                || trie_store::MdbxTrieStore::new(&txn),
                post,
            )?,
            Some(pending) if pending.parent_hash != tip_hash => {
                return Err(StorageError::PendingNotOnTip {
                    computed_on: pending.parent_hash,
                    tip_hash,
                });
            }
            Some(pending) => state_root::compute_state_root_parallel(
                || {
                    Ok(state_root::OverlayStore::new(
                        trie_store::MdbxTrieStore::new(&txn)?,
                        pending,
                    ))
                },
                post,
            )?,
        };
        delta.parent_hash = tip_hash;
        Ok(delta)
    }

    /// EIP-1186 proofs of `address` and its `slots` in the state after block `number` (hash
    /// `hash`). For a block above the persisted tip, `pending` holds the in-memory canonical
    /// blocks from the tip's child up to at least it, as `(number, hash, parent hash, bundle)`,
    /// oldest first; a block below the tip is proven from its change sets, at most
    /// [`PROOF_HISTORY`] blocks back. Nothing is written.
    pub fn state_proof(
        &self,
        number: u64,
        hash: B256,
        pending: &[(u64, B256, B256, &BundleState)],
        address: Address,
        slots: &[B256],
    ) -> Result<state_root::StateProof, StorageError> {
        let txn = self.ro()?;
        let (tip, tip_hash) = read_tip(&txn)?;
        let moved = || {
            StorageError::ProofUnavailable(format!(
                "block {number} ({hash}) is not on the stored canonical chain (tip {tip}): retry"
            ))
        };
        let post = if number > tip {
            let blocks: Vec<_> =
                pending.iter().filter(|(n, ..)| *n > tip && *n <= number).collect();
            let linked = blocks.len() as u64 == number - tip
                && blocks.first().is_some_and(|(_, _, parent, _)| *parent == tip_hash)
                && blocks.windows(2).all(|w| w[1].2 == w[0].1)
                && blocks.last().is_some_and(|(_, h, ..)| *h == hash);
            if !linked {
                return Err(moved());
            }
            let mut post = state_root::HashedPostState::default();
            for (.., bundle) in blocks {
                post.extend(state_root::HashedPostState::from_bundle(bundle));
            }
            post
        } else {
            if tip - number > PROOF_HISTORY {
                return Err(StorageError::ProofUnavailable(format!(
                    "proofs are served for the last {PROOF_HISTORY} persisted blocks; block \
                     {number} is {} below the tip",
                    tip - number
                )));
            }
            let canonical = txn.open_table(Some(tables::CANONICAL_HASHES)).op("open table")?;
            let stored =
                get_b256(&txn, &canonical, tables::CANONICAL_HASHES, &tables::number_key(number))?;
            if stored != Some(hash) {
                return Err(moved());
            }
            writer::post_state_before(&txn, number + 1)?
        };
        state_root::compute_proof(&mut trie_store::MdbxTrieStore::new(&txn)?, post, address, slots)
    }

    /// Appends `block` to the canonical chain in ONE durable write transaction: header, body,
    /// senders, receipts, canonical and hash indexes, tx-hash index, plain state, bytecode,
    /// the block's account and storage change sets and history index, hashed state and trie
    /// updates. `trie_updates` must come from [`Database::state_root_with`] with the same
    /// `bundle` on the current tip. `Err` leaves the database unchanged: the block must be the
    /// tip's child ([`StorageError::NotChildOfTip`]), the updates computed on the tip
    /// ([`StorageError::StaleTrieUpdates`]) with the header's state root
    /// ([`StorageError::StateRootMismatch`]), one sender and receipt per transaction.
    pub fn commit_block(
        &self,
        block: &SealedBlock,
        senders: &[Address],
        receipts: &[ReceiptEnvelope],
        bundle: BundleState,
        trie_updates: TrieUpdates,
    ) -> Result<(), StorageError> {
        writer::commit_blocks(
            &self.env,
            &self.history_backlog,
            &[(block, senders, receipts, &bundle)],
            &trie_updates,
        )
    }

    /// Appends consecutive blocks in ONE durable write transaction (one fsync for the batch),
    /// each with its own change sets, so history and unwinding stay per block. `trie_updates`
    /// must come from [`Database::state_root_with_pending`] over exactly these blocks' bundles
    /// on the current tip; the last header's state root is checked against it (the
    /// intermediate roots were checked when the blocks were validated). `Err` leaves the
    /// database unchanged; the conditions are those of [`Database::commit_block`], block by block.
    pub fn commit_blocks(
        &self,
        blocks: &[ExecutedBlock],
        trie_updates: TrieUpdates,
    ) -> Result<(), StorageError> {
        let blocks: Vec<_> = blocks
            .iter()
            .map(|b| (&b.block, b.senders.as_slice(), b.receipts.as_slice(), &b.bundle))
            .collect();
        self.commit_block_parts(&blocks, trie_updates)
    }

    /// [`Database::commit_blocks`] for blocks held elsewhere: `(block, senders, receipts,
    /// bundle)` each, oldest first.
    pub fn commit_block_parts(
        &self,
        blocks: &[BlockParts<'_>],
        trie_updates: TrieUpdates,
    ) -> Result<(), StorageError> {
        writer::commit_blocks(&self.env, &self.history_backlog, blocks, &trie_updates)
    }

    /// Removes canonical blocks above `number` and restores plain state, hashed state and trie
    /// to what they were after block `number`, from the change sets, in one write transaction.
    /// The restored state root is checked against block `number`'s header before committing
    /// ([`StorageError::UnwindStateRoot`]). `number` equal to the tip is a no-op; above it is
    /// [`StorageError::UnwindTarget`].
    pub fn unwind_to(&self, number: u64) -> Result<(), StorageError> {
        // The backlog no longer follows the database; the next commit rebuilds it.
        let mut backlog = self.history_backlog.lock();
        *backlog = None;
        writer::unwind_to(&self.env, number)
    }

    /// Reads every entry of the state and trie tables once, so their pages are mapped before the
    /// first block: MDBX serves reads from a memory map, and a page's first touch in a process is
    /// a page fault. A node calls this at start; benchmarks call it to measure the steady state.
    /// Returns the number of entries read.
    pub fn warm_up(&self) -> Result<usize, StorageError> {
        let txn = self.ro()?;
        let mut entries = 0;
        for name in [
            tables::PLAIN_ACCOUNTS,
            tables::PLAIN_STORAGE,
            tables::HASHED_ACCOUNTS,
            tables::HASHED_STORAGE,
            tables::ACCOUNT_TRIE,
            tables::STORAGE_TRIE,
        ] {
            let table = txn.open_table(Some(name)).op("open table")?;
            let mut cursor = txn.cursor(&table).op("open cursor")?;
            for entry in
                cursor.iter_start::<std::borrow::Cow<'_, [u8]>, std::borrow::Cow<'_, [u8]>>()
            {
                entry.op("scan table")?;
                entries += 1;
            }
        }
        Ok(entries)
    }

    /// Entry count and size of every table.
    pub fn stats(&self) -> Result<Vec<TableStats>, StorageError> {
        let txn = self.ro()?;
        tables::ALL
            .iter()
            .map(|name| {
                let table = txn.open_table(Some(name)).op("open table")?;
                let stat = txn.table_stat(&table).op("table stat")?;
                Ok(TableStats { name, entries: stat.entries(), size_bytes: stat.total_size() })
            })
            .collect()
    }

    /// Size of the data file in bytes.
    pub fn file_size(&self) -> Result<u64, StorageError> {
        let info = self.env.info().op("env info")?;
        Ok(info.geometry().current_size())
    }

    fn ro(&self) -> Result<Transaction<'_, RO, NoWriteMap>, StorageError> {
        self.env.begin_ro_txn().op("begin read transaction")
    }

    fn options(mode: Mode) -> DatabaseOptions {
        DatabaseOptions {
            max_tables: Some(32),
            max_readers: Some(MAX_READERS),
            mode,
            ..Default::default()
        }
    }

    fn open_env(path: &Path, config: DatabaseConfig) -> Result<Env, StorageError> {
        let max_size = isize::try_from(config.max_size).unwrap_or(isize::MAX);
        let mode = Mode::ReadWrite(ReadWriteOptions {
            sync_mode: if config.durable { SyncMode::Durable } else { SyncMode::SafeNoSync },
            min_size: None,
            max_size: Some(max_size),
            growth_step: Some(1 << 28),
            shrink_threshold: None,
        });
        Env::open_with_options(path, Self::options(mode)).op("open environment")
    }

    /// Opens read-only and checks the `Meta` records; returns (chain id, genesis hash).
    fn check_identity(path: &Path) -> Result<(u64, B256), StorageError> {
        let foreign = |reason: String| StorageError::Foreign { path: path.to_path_buf(), reason };
        let env = Env::open_with_options(path, Self::options(Mode::ReadOnly))
            .map_err(|e| foreign(format!("MDBX refuses to open it: {e}")))?;
        let txn = env.begin_ro_txn().op("begin read transaction")?;
        let meta = txn
            .open_table(Some(tables::META))
            .map_err(|_| foreign("it has no Meta table".into()))?;
        let get = |key: &str| -> Result<Vec<u8>, StorageError> {
            txn.get::<Vec<u8>>(&meta, key.as_bytes())
                .op("read Meta")?
                .ok_or_else(|| foreign(format!("its Meta table has no `{key}` record")))
        };
        let client = get("client")?;
        if client != CLIENT_NAME.as_bytes() {
            return Err(foreign(format!(
                "it was written by `{}`",
                String::from_utf8_lossy(&client)
            )));
        }
        let schema = get("schema")?;
        let found = <[u8; 4]>::try_from(schema.as_slice())
            .map(u32::from_be_bytes)
            .map_err(|_| foreign(format!("schema record of {} bytes", schema.len())))?;
        if found != SCHEMA_VERSION {
            return Err(StorageError::SchemaVersion {
                path: path.to_path_buf(),
                found,
                expected: SCHEMA_VERSION,
            });
        }
        let chain_id = tables::read_u64(&get("chain_id")?)
            .ok_or_else(|| foreign("bad chain_id record".into()))?;
        let genesis = get("genesis_hash")?;
        if genesis.len() != 32 {
            return Err(foreign("bad genesis_hash record".into()));
        }
        Ok((chain_id, B256::from_slice(&genesis)))
    }

    fn create_tables(env: &Env) -> Result<(), StorageError> {
        let txn = env.begin_rw_txn().op("begin write transaction")?;
        for name in tables::ALL {
            txn.create_table(Some(name), TableFlags::default()).op("create table")?;
        }
        txn.commit().op("commit table creation")?;
        Ok(())
    }
}

/// A block to commit: the block, its senders, receipts and state changes.
pub type BlockParts<'a> = (&'a SealedBlock, &'a [Address], &'a [ReceiptEnvelope], &'a BundleState);

/// How many blocks below the persisted tip `eth_getProof` reaches (geth keeps 128).
pub const PROOF_HISTORY: u64 = 1024;

/// Reads a 32-byte value.
fn get_b256<K: libmdbx::TransactionKind>(
    txn: &Transaction<'_, K, NoWriteMap>,
    table: &libmdbx::Table<'_>,
    name: &'static str,
    key: &[u8],
) -> Result<Option<B256>, StorageError> {
    match txn.get::<Vec<u8>>(table, key).op("read")? {
        Some(bytes) if bytes.len() == 32 => Ok(Some(B256::from_slice(&bytes))),
        Some(bytes) => Err(corrupt(name, key, format!("{} bytes, expected 32", bytes.len()))),
        None => Ok(None),
    }
}

/// Blocks whose keys go into the history indexes together: a complete batch is written over the
/// next batch's commits, so at most `2 × HISTORY_INDEX_BATCH − 1` blocks are past the indexed
/// ones, and reads of those look in their change sets.
pub const HISTORY_INDEX_BATCH: u64 = 32;

/// The last block in the history indexes ([`tables::META_HISTORY_INDEXED`]; `tip` when absent).
fn read_history_indexed<K: libmdbx::TransactionKind>(
    txn: &Transaction<'_, K, NoWriteMap>,
    tip: u64,
) -> Result<u64, StorageError> {
    let meta = txn.open_table(Some(tables::META)).op("open Meta")?;
    match txn.get::<Vec<u8>>(&meta, tables::META_HISTORY_INDEXED).op("read Meta")? {
        None => Ok(tip),
        Some(bytes) => match tables::read_u64(&bytes) {
            Some(number) if bytes.len() == 8 && number <= tip => Ok(number),
            _ => Err(corrupt(tables::META, tables::META_HISTORY_INDEXED, "malformed entry")),
        },
    }
}

/// Number and hash of the canonical tip: the last `CanonicalHashes` entry.
fn read_tip<K: libmdbx::TransactionKind>(
    txn: &Transaction<'_, K, NoWriteMap>,
) -> Result<(u64, B256), StorageError> {
    let table = txn.open_table(Some(tables::CANONICAL_HASHES)).op("open CanonicalHashes")?;
    let mut cursor = txn.cursor(&table).op("cursor CanonicalHashes")?;
    let Some((key, value)) = cursor.last::<Vec<u8>, Vec<u8>>().op("read CanonicalHashes")? else {
        return Err(corrupt(
            tables::CANONICAL_HASHES,
            &[],
            "no canonical blocks, not even genesis",
        ));
    };
    match (tables::read_u64(&key), value.len()) {
        (Some(number), 32) if key.len() == 8 => Ok((number, B256::from_slice(&value))),
        _ => Err(corrupt(tables::CANONICAL_HASHES, &key, "malformed entry")),
    }
}

fn block_number_in<K: libmdbx::TransactionKind>(
    txn: &Transaction<'_, K, NoWriteMap>,
    hash: B256,
) -> Result<Option<u64>, StorageError> {
    let table = txn.open_table(Some(tables::HEADER_NUMBERS)).op("open HeaderNumbers")?;
    match txn.get::<Vec<u8>>(&table, hash).op("read HeaderNumbers")? {
        Some(bytes) => tables::read_u64(&bytes)
            .map(Some)
            .ok_or_else(|| corrupt(tables::HEADER_NUMBERS, hash.as_slice(), "malformed number")),
        None => Ok(None),
    }
}

fn resolve<K: libmdbx::TransactionKind>(
    txn: &Transaction<'_, K, NoWriteMap>,
    id: BlockHashOrNumber,
) -> Result<Option<u64>, StorageError> {
    match id {
        BlockHashOrNumber::Number(number) => Ok(Some(number)),
        BlockHashOrNumber::Hash(hash) => block_number_in(txn, hash),
    }
}

fn read_header<K: libmdbx::TransactionKind>(
    txn: &Transaction<'_, K, NoWriteMap>,
    number: u64,
) -> Result<Option<Header>, StorageError> {
    let table = txn.open_table(Some(tables::HEADERS)).op("open Headers")?;
    let key = tables::number_key(number);
    let Some(bytes) = txn.get::<Vec<u8>>(&table, key).op("read Headers")? else { return Ok(None) };
    Header::decode(&mut bytes.as_slice())
        .map(Some)
        .map_err(|e| corrupt(tables::HEADERS, &key, e.to_string()))
}

fn read_body<K: libmdbx::TransactionKind>(
    txn: &Transaction<'_, K, NoWriteMap>,
    number: u64,
) -> Result<Option<BlockBody<TxEnvelope>>, StorageError> {
    let table = txn.open_table(Some(tables::BODIES)).op("open Bodies")?;
    let key = tables::number_key(number);
    let Some(bytes) = txn.get::<Vec<u8>>(&table, key).op("read Bodies")? else { return Ok(None) };
    BlockBody::decode(&mut bytes.as_slice())
        .map(Some)
        .map_err(|e| corrupt(tables::BODIES, &key, e.to_string()))
}
