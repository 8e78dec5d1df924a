//! Unit-test support: a funded chain in a temporary MDBX database, signers and transfers.

use std::sync::Arc;

use alloy_consensus::{SignableTransaction, TxEip1559, TxEnvelope};
use alloy_primitives::{Address, B256, Bytes, TxKind, U256};
use alloy_rpc_types_engine::{ForkchoiceState, PayloadAttributes};
use alloy_signer::SignerSync;
use alloy_signer_local::PrivateKeySigner;
use parking_lot::RwLock;
use tandem_shared::ChainSpec;

use crate::{
    executor::Executor,
    fork_choice::{EngineTree, TreeConfig},
    payload_builder::{BuildTarget, BuiltPayload, build_payload},
    storage::Database,
    txpool::{
        AccountReader, AddOutcome, Origin, PoolConfig, PoolContext, PoolError, SharedPool, TxPool,
        senders::SenderCache,
    },
};

pub const GWEI: u128 = 1_000_000_000;
pub const CHAIN_ID: u64 = 1337;

/// A chain with funded keys, its database, tree and pool.
pub struct Kit {
    /// Keeps the database directory alive.
    _dir: tempfile::TempDir,
    pub executor: Executor,
    pub tree: EngineTree,
    pub pool: SharedPool,
    pub keys: Vec<PrivateKeySigner>,
    pub timestamp: u64,
}

pub fn genesis_json(keys: &[PrivateKeySigner], sub_second: bool) -> String {
    let mut alloc =
        serde_json::to_value(tandem_shared::system_contracts::prague_system_contracts()).unwrap();
    for key in keys {
        alloc[key.address().to_string()] =
            serde_json::json!({ "balance": "0xd3c21bcecceda1000000" });
    }
    serde_json::json!({
        "config": {
            "chainId": CHAIN_ID, "shanghaiTime": 0, "cancunTime": 0, "pragueTime": 0,
            "depositContractAddress": tandem_shared::system_contracts::DEPOSIT_CONTRACT,
            "tandem": { "subSecondBlocks": sub_second }
        },
        "gasLimit": "0x1c9c380", "difficulty": "0x0", "timestamp": "0x0", "baseFeePerGas": "0x3b9aca00",
        "alloc": alloc
    })
    .to_string()
}

impl Kit {
    pub fn new(config: TreeConfig) -> Self {
        Self::with_genesis(config, |keys| genesis_json(keys, false))
    }

    /// A kit whose genesis `genesis` writes for the kit's four funded keys.
    pub fn with_genesis(
        config: TreeConfig,
        genesis: impl FnOnce(&[PrivateKeySigner]) -> String,
    ) -> Self {
        let keys: Vec<PrivateKeySigner> = (1..=4u8)
            .map(|i| PrivateKeySigner::from_bytes(&B256::repeat_byte(i)).unwrap())
            .collect();
        let spec = Arc::new(ChainSpec::from_json_str(&genesis(&keys), "test").unwrap());
        let dir = tempfile::tempdir().unwrap();
        let db = Arc::new(Database::init(&dir.path().join("db"), &spec).unwrap());
        let executor = Executor::new(spec.clone()).unwrap();
        let senders = Arc::new(SenderCache::new(10_000));
        let tree = EngineTree::new(db, executor.clone(), senders, config).unwrap();
        let ctx = PoolContext {
            chain_id: CHAIN_ID,
            fork: tandem_shared::Fork::Prague,
            block_gas_limit: 30_000_000,
            base_fee: 1_000_000_000,
            head: tree.head().hash,
        };
        let pool = Arc::new(RwLock::new(TxPool::new(PoolConfig::default(), ctx)));
        Self { _dir: dir, executor, tree, pool, keys, timestamp: 0 }
    }

    /// The database directory, tree and pool, for tests that hand the tree to its owner.
    pub fn into_parts(self) -> (tempfile::TempDir, EngineTree, SharedPool) {
        (self._dir, self.tree, self.pool)
    }

    pub fn transfer(&self, key: usize, nonce: u64, to: Address, value: u64) -> TxEnvelope {
        let tx = TxEip1559 {
            chain_id: CHAIN_ID,
            nonce,
            gas_limit: 21_000,
            max_fee_per_gas: 100 * GWEI,
            max_priority_fee_per_gas: GWEI,
            to: TxKind::Call(to),
            value: U256::from(value),
            ..Default::default()
        };
        let sig = self.keys[key].sign_hash_sync(&tx.signature_hash()).unwrap();
        tx.into_signed(sig).into()
    }

    /// Adds a transaction to the pool against the head state.
    pub fn submit(&self, tx: TxEnvelope) {
        self.add(tx, Origin::Local).unwrap();
    }

    /// Adds a transaction from `origin` to the pool against the head state; the pool's answer.
    pub fn add(&self, tx: TxEnvelope, origin: Origin) -> Result<AddOutcome, PoolError> {
        let sender = crate::txpool::senders::recover_sender(&tx)?;
        let state = HeadState(self);
        self.pool.write().add(tx, sender, origin, &state)
    }

    pub fn attributes(&mut self, fee_recipient: Address) -> PayloadAttributes {
        self.timestamp += 12;
        PayloadAttributes {
            timestamp: self.timestamp,
            prev_randao: B256::repeat_byte(7),
            suggested_fee_recipient: fee_recipient,
            withdrawals: Some(Vec::new()),
            parent_beacon_block_root: Some(B256::repeat_byte(9)),
            slot_number: None,
            target_gas_limit: None,
        }
    }

    /// Builds on `parent` from the pool.
    pub fn build_on(&mut self, parent: B256, fee_recipient: Address) -> BuiltPayload {
        let attrs = self.attributes(fee_recipient);
        let target = BuildTarget {
            parent: self.tree.header(parent).unwrap().unwrap(),
            parent_hash: parent,
            layers: self.tree.layers_for(parent).unwrap(),
        };
        let best = self.pool.read().best_transactions();
        build_payload(
            &self.executor,
            self.tree.db(),
            &target,
            &attrs,
            best,
            Bytes::from_static(b"test"),
        )
        .unwrap()
    }

    pub fn fcu(&mut self, head: B256, finalized: B256) -> crate::fork_choice::ForkchoiceOutcome {
        self.tree
            .fork_choice_updated(ForkchoiceState {
                head_block_hash: head,
                safe_block_hash: finalized,
                finalized_block_hash: finalized,
            })
            .unwrap()
    }

    pub fn balance_at(&self, block: B256, address: Address) -> U256 {
        use revm::DatabaseRef;
        let state = self.tree.state_at(block).unwrap().unwrap();
        state.basic_ref(address).unwrap().map_or(U256::ZERO, |a| a.balance)
    }
}

struct HeadState<'a>(&'a Kit);

impl AccountReader for HeadState<'_> {
    fn nonce_and_balance(&self, address: Address) -> Result<(u64, U256), PoolError> {
        use revm::DatabaseRef;
        let head = self.0.tree.head().hash;
        let state = self.0.tree.state_at(head).map_err(|e| PoolError::State(e.to_string()))?;
        let state = state.ok_or_else(|| PoolError::State("no head state".into()))?;
        let info = state.basic_ref(address).map_err(|e| PoolError::State(e.to_string()))?;
        Ok(info.map_or((0, U256::ZERO), |a| (a.nonce, a.balance)))
    }
}
