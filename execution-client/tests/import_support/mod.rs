//! Test and benchmark support: genesis files with funded keys, signed transfers, and a block
//! builder that fills in a block's header (gas used, roots, state root) by executing it.

#![allow(dead_code, clippy::unwrap_used)]

use std::sync::Arc;

use alloy_consensus::{
    Block, BlockBody, EMPTY_OMMER_ROOT_HASH, Header, SignableTransaction, TxEip1559, TxEnvelope,
    TxReceipt,
    proofs::{calculate_receipt_root, calculate_transaction_root, calculate_withdrawals_root},
};
use alloy_eips::eip1559::{BaseFeeParams, calc_next_block_base_fee};
use alloy_genesis::{Genesis, GenesisAccount};
use alloy_primitives::{Address, B256, Bloom, Bytes, TxKind, U256, keccak256};
use tandem_el::{
    executor::{Executor, recover_senders},
    storage::{Database, SealedBlock, seal_block},
};
use tandem_shared::{ChainSpec, Fork};

/// A signing key and its address.
#[derive(Debug, Clone, Copy)]
pub struct Key {
    /// The secret.
    pub secret: B256,
    /// Its address.
    pub address: Address,
}

impl Key {
    /// The `index`-th deterministic test key (secret = keccak("tandem-key" ‖ index)).
    pub fn nth(index: u64) -> Self {
        let mut seed = b"tandem-key".to_vec();
        seed.extend_from_slice(&index.to_be_bytes());
        let secret = keccak256(seed);
        let probe = B256::repeat_byte(1);
        let signature = alloy_consensus::crypto::secp256k1::sign_message(secret, probe).unwrap();
        let address = signature.recover_address_from_prehash(&probe).unwrap();
        Self { secret, address }
    }

    /// A signed EIP-1559 transaction.
    pub fn sign(
        &self,
        chain_id: u64,
        nonce: u64,
        to: Address,
        value: U256,
        input: Bytes,
        gas_limit: u64,
    ) -> TxEnvelope {
        let tx = TxEip1559 {
            chain_id,
            nonce,
            gas_limit,
            // Far above the base fee after many full blocks (+12.5 % each), so long runs stay valid.
            max_fee_per_gas: 1_000_000_000_000_000,
            max_priority_fee_per_gas: 1_000_000_000,
            to: TxKind::Call(to),
            value,
            access_list: Default::default(),
            input,
        };
        let signature =
            alloy_consensus::crypto::secp256k1::sign_message(self.secret, tx.signature_hash())
                .unwrap();
        TxEnvelope::Eip1559(tx.into_signed(signature))
    }
}

/// A Cancun genesis (Shanghai and Cancun at 0) funding `accounts`, with `extra` accounts.
pub fn genesis(
    chain_id: u64,
    funded: impl IntoIterator<Item = Address>,
    extra: impl IntoIterator<Item = (Address, GenesisAccount)>,
    sub_second_blocks: bool,
) -> ChainSpec {
    let mut alloc: std::collections::BTreeMap<Address, GenesisAccount> = funded
        .into_iter()
        .map(|a| (a, GenesisAccount::default().with_balance(U256::from(10u128.pow(24)))))
        .collect();
    alloc.extend(extra);
    let mut config = tandem_shared::chainspec::fixture_network("Cancun", chain_id).unwrap();
    if sub_second_blocks {
        config.extra_fields.insert("tandem".into(), serde_json::json!({ "subSecondBlocks": true }));
    }
    let genesis = Genesis {
        config,
        gas_limit: 30_000_000,
        base_fee_per_gas: Some(1_000_000_000),
        alloc,
        ..Default::default()
    };
    ChainSpec::from_genesis(genesis).unwrap()
}

/// Builds the next block on `parent` (the canonical tip of `db`) with `txs`, executing them to
/// fill in gas used, receipts root, bloom and state root. `timestamp_delta` may be 0.
pub fn build_block(
    db: &Database,
    executor: &Executor,
    parent: &Header,
    parent_hash: B256,
    txs: Vec<TxEnvelope>,
    timestamp_delta: u64,
) -> SealedBlock {
    let chain = executor.chain();
    let timestamp = parent.timestamp + timestamp_delta;
    let cancun = chain.is_active(Fork::Cancun, timestamp);
    let mut header = Header {
        parent_hash,
        ommers_hash: EMPTY_OMMER_ROOT_HASH,
        beneficiary: Address::repeat_byte(0xfe),
        number: parent.number + 1,
        gas_limit: parent.gas_limit,
        timestamp,
        mix_hash: B256::repeat_byte(7),
        base_fee_per_gas: Some(calc_next_block_base_fee(
            parent.gas_used,
            parent.gas_limit,
            parent.base_fee_per_gas.unwrap_or_default(),
            BaseFeeParams::ethereum(),
        )),
        withdrawals_root: chain
            .is_active(Fork::Shanghai, timestamp)
            .then(|| calculate_withdrawals_root(&[])),
        blob_gas_used: cancun.then_some(0),
        excess_blob_gas: cancun.then_some(0),
        parent_beacon_block_root: cancun.then_some(B256::repeat_byte(9)),
        transactions_root: calculate_transaction_root(&txs),
        ..Default::default()
    };
    let withdrawals = header.withdrawals_root.map(|_| Default::default());
    let block =
        Block::new(header.clone(), BlockBody { transactions: txs, ommers: vec![], withdrawals });
    let senders = recover_senders(&block.body.transactions).unwrap();
    let output = executor.execute(&block, &senders, db.latest().unwrap()).unwrap();
    header.gas_used = output.gas_used;
    header.receipts_root = calculate_receipt_root(&output.receipts);
    header.logs_bloom = output.receipts.iter().fold(Bloom::ZERO, |mut b, r| {
        b.accrue_bloom(&r.bloom());
        b
    });
    header.state_root = db.state_root_with(&output.bundle).unwrap().0;
    seal_block(Block::new(header, block.body))
}

/// A fresh database in `dir` initialised with `spec`, and its executor.
pub fn open_chain(dir: &std::path::Path, spec: ChainSpec) -> (Database, Executor) {
    let db = Database::init(dir, &spec).unwrap();
    (db, Executor::new(Arc::new(spec)).unwrap())
}
