//! Block import throughput: execution + incremental state root + MDBX commit, in Mgas/s, for
//! blocks of ETH transfers, ERC-20 transfers and a storage-heavy contract, on states of 100k and
//! 1M funded accounts; beside the same transactions executed by bare revm on an in-memory
//! database in the same run.
//!
//! `cargo bench -p tandem-el --bench import` (`TANDEM_BENCH_ACCOUNTS=100000,1000000`,
//! `TANDEM_BENCH_BLOCKS=3` to change the sizes). Prints a markdown table.

#![allow(clippy::unwrap_used, missing_docs)]

#[path = "../tests/import_support/mod.rs"]
mod import_support;

use std::{
    collections::BTreeMap,
    time::{Duration, Instant},
};

use alloy_consensus::{Header, TxEnvelope};
use alloy_evm::{Evm, FromRecoveredTx, eth::EthEvmBuilder};
use alloy_genesis::GenesisAccount;
use alloy_primitives::{Address, B256, Bytes, U256, keccak256};
use import_support::{Key, build_block, genesis, open_chain};
use revm::{
    DatabaseCommit,
    context::TxEnv,
    database::{CacheDB, EmptyDB},
    state::{AccountInfo, Bytecode},
};
use tandem_el::{
    executor::{Executor, header, recover_senders, validate_post_execution},
    import::BatchImporter,
    storage::{Database, SealedBlock},
};

const CHAIN_ID: u64 = 1;
const SIGNERS: u64 = 1500;
const TOKEN: Address = Address::new([0xe2; 20]);
const STORE: Address = Address::new([0x5e; 20]);
/// Fresh slots the storage-heavy contract writes per call.
const SLOTS_PER_CALL: u64 = 100;

/// ERC-20-like transfer(to, amount): balances at slot = address, a Transfer log.
fn token_code() -> Bytes {
    let transfer_topic = keccak256("Transfer(address,address,uint256)");
    let mut code = vec![
        0x33, 0x54, // CALLER SLOAD -> bal
        0x60, 0x20, 0x35, // amount
        0x80, 0x82, 0x10, // bal < amount
        0x60, 0x00, 0x57, // PUSH1 revert JUMPI (patched below)
        0x80, 0x91, 0x03, 0x33, 0x55, // from -= amount
        0x60, 0x00, 0x35, 0x80, 0x54, 0x82, 0x01, 0x90, 0x55, // to += amount
        0x60, 0x00, 0x52, // mem[0] = amount
        0x60, 0x00, 0x35, 0x33, // to, from
        0x7f, // PUSH32 topic
    ];
    code.extend_from_slice(transfer_topic.as_slice());
    code.extend_from_slice(&[0x60, 0x20, 0x60, 0x00, 0xa3, 0x00]); // LOG3 STOP
    let revert = code.len() as u8;
    code.extend_from_slice(&[0x5b, 0x60, 0x00, 0x80, 0xfd]); // JUMPDEST REVERT(0, 0)
    code[9] = revert;
    code.into()
}

/// store(base): writes slots base..base+100 with 1..=100.
fn store_code() -> Bytes {
    vec![
        0x60,
        0x00,
        0x35,
        0x60,
        0x00,
        0x5b,
        0x80,
        0x60,
        SLOTS_PER_CALL as u8,
        0x14,
        0x60,
        0x1b,
        0x57,
        0x80,
        0x60,
        0x01,
        0x01,
        0x81,
        0x83,
        0x01,
        0x55,
        0x60,
        0x01,
        0x01,
        0x60,
        0x05,
        0x56,
        0x5b,
        0x00,
    ]
    .into()
}

fn filler(i: u64) -> Address {
    Address::from_slice(&keccak256(i.to_be_bytes())[12..])
}

/// Deterministic xorshift for recipients.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Workload {
    Eth,
    Erc20,
    Storage,
}

impl Workload {
    fn name(self) -> &'static str {
        match self {
            Self::Eth => "ETH transfers",
            Self::Erc20 => "ERC-20 transfers",
            Self::Storage => "storage-heavy contract",
        }
    }
}

struct Bench {
    accounts: u64,
    keys: Vec<Key>,
    nonces: Vec<u64>,
    rng: Rng,
    store_base: u64,
}

impl Bench {
    fn txs(&mut self, workload: Workload, gas_limit: u64) -> Vec<TxEnvelope> {
        let (per_tx, count) = match workload {
            Workload::Eth => (21_000, gas_limit / 21_000),
            Workload::Erc20 => (60_000, gas_limit / 53_000),
            Workload::Storage => (2_400_000, gas_limit / 2_300_000),
        };
        let count = count.min(self.keys.len() as u64) as usize;
        let mut txs = Vec::with_capacity(count);
        for i in 0..count {
            let key = self.keys[i];
            let nonce = self.nonces[i];
            self.nonces[i] += 1;
            let to = filler(self.rng.next() % self.accounts);
            let tx = match workload {
                Workload::Eth => key.sign(CHAIN_ID, nonce, to, U256::from(1), Bytes::new(), per_tx),
                Workload::Erc20 => {
                    let mut input = B256::left_padding_from(to.as_slice()).to_vec();
                    input.extend_from_slice(&U256::from(1).to_be_bytes::<32>());
                    key.sign(CHAIN_ID, nonce, TOKEN, U256::ZERO, input.into(), per_tx)
                }
                Workload::Storage => {
                    self.store_base += SLOTS_PER_CALL;
                    let input = U256::from(self.store_base).to_be_bytes::<32>().to_vec();
                    key.sign(CHAIN_ID, nonce, STORE, U256::ZERO, input.into(), per_tx)
                }
            };
            txs.push(tx);
        }
        txs
    }
}

#[derive(Default)]
struct Phases {
    gas: u64,
    validate: Duration,
    recover: Duration,
    execute: Duration,
    root: Duration,
    commit: Duration,
    bare: Duration,
    blocks: u32,
    /// The same blocks through `BatchImporter` (one commit per workload) into a second database.
    batched: Duration,
}

impl Phases {
    fn import(&self) -> Duration {
        self.validate + self.recover + self.execute + self.root + self.commit
    }
}

fn mgas_per_s(gas: u64, time: Duration) -> f64 {
    gas as f64 / 1e6 / time.as_secs_f64()
}

/// Imports `block` phase by phase, exactly as `import::import_block` does.
fn import_timed(
    db: &Database,
    executor: &Executor,
    parent: &Header,
    parent_hash: B256,
    block: &SealedBlock,
    phases: &mut Phases,
) {
    let started = Instant::now();
    let chain = executor.chain();
    let body = &block.body;
    header::validate_header(chain, &block.header, parent, parent_hash).unwrap();
    header::validate_body(
        chain,
        &block.header,
        &body.transactions,
        &body.ommers,
        body.withdrawals.as_deref().map(|w| w.as_slice()),
    )
    .unwrap();
    let validated = Instant::now();
    let senders = recover_senders(&body.transactions).unwrap();
    let recovered = Instant::now();
    let output = executor.execute(block.inner(), &senders, db.latest().unwrap()).unwrap();
    validate_post_execution(&block.header, &output).unwrap();
    let executed = Instant::now();
    let (root, updates) = db.state_root_with(&output.bundle).unwrap();
    assert_eq!(root, block.header.state_root);
    let rooted = Instant::now();
    db.commit_block(block, &senders, &output.receipts, output.bundle, updates).unwrap();
    let committed = Instant::now();
    phases.validate += validated - started;
    phases.recover += recovered - validated;
    phases.execute += executed - recovered;
    phases.root += rooted - executed;
    phases.commit += committed - rooted;
    phases.gas += block.header.gas_used;
    phases.blocks += 1;
}

/// The same transactions through bare revm on an in-memory database.
fn bare_revm(
    cache: &mut CacheDB<EmptyDB>,
    executor: &Executor,
    block: &SealedBlock,
    phases: &mut Phases,
) {
    let senders = recover_senders(&block.body.transactions).unwrap();
    let env = executor.evm_env(&block.header);
    let started = Instant::now();
    let mut evm = EthEvmBuilder::new(&mut *cache, env).build();
    for (tx, sender) in block.body.transactions.iter().zip(&senders) {
        let result = evm.transact_raw(TxEnv::from_recovered_tx(tx, *sender)).unwrap();
        evm.db_mut().commit(result.state);
    }
    drop(evm);
    phases.bare += started.elapsed();
}

fn main() {
    let sizes: Vec<u64> = std::env::var("TANDEM_BENCH_ACCOUNTS")
        .unwrap_or_else(|_| "100000,1000000".into())
        .split(',')
        .map(|s| s.trim().parse().unwrap())
        .collect();
    let blocks: u32 = std::env::var("TANDEM_BENCH_BLOCKS").map_or(3, |s| s.parse().unwrap());
    let keys: Vec<Key> = (0..SIGNERS).map(Key::nth).collect();
    let mut rows = Vec::new();
    for &accounts in &sizes {
        let setup = Instant::now();
        let mut token_storage = BTreeMap::new();
        for key in &keys {
            token_storage.insert(
                B256::left_padding_from(key.address.as_slice()),
                B256::from(U256::from(10u128.pow(24))),
            );
        }
        let extra = [
            (
                TOKEN,
                GenesisAccount::default()
                    .with_code(Some(token_code()))
                    .with_storage(Some(token_storage)),
            ),
            (STORE, GenesisAccount::default().with_code(Some(store_code()))),
        ];
        let funded = (0..accounts).map(filler).chain(keys.iter().map(|k| k.address));
        let spec = genesis(CHAIN_ID, funded, extra, false);
        let mut cache = CacheDB::new(EmptyDB::default());
        for (address, account) in &spec.genesis().alloc {
            let code = account.code.clone().filter(|c| !c.is_empty()).map(Bytecode::new_raw);
            let info = match code {
                Some(code) => AccountInfo::from_bytecode(code).with_balance(account.balance),
                None => AccountInfo::from_balance(account.balance),
            };
            cache.insert_account_info(*address, info);
            for (slot, value) in account.storage.iter().flatten() {
                cache.insert_account_storage(*address, (*slot).into(), (*value).into()).unwrap();
            }
        }
        let dir = tempfile::tempdir().unwrap();
        let (db, executor) = open_chain(&dir.path().join("db"), spec.clone());
        eprintln!("{accounts} accounts: genesis and database ready in {:.1?}", setup.elapsed());
        let mut bench = Bench {
            accounts,
            keys: keys.clone(),
            nonces: vec![0; keys.len()],
            rng: Rng(0x9e37_79b9_7f4a_7c15),
            store_base: 0,
        };
        let mut parent = spec.genesis_header().clone();
        let mut parent_hash = spec.genesis_hash();
        let mut chain = Vec::new();
        for workload in [Workload::Eth, Workload::Erc20, Workload::Storage] {
            let mut phases = Phases::default();
            for _ in 0..blocks {
                let txs = bench.txs(workload, parent.gas_limit);
                let block = build_block(&db, &executor, &parent, parent_hash, txs, 12);
                import_timed(&db, &executor, &parent, parent_hash, &block, &mut phases);
                bare_revm(&mut cache, &executor, &block, &mut phases);
                parent = block.header.clone();
                parent_hash = block.hash();
                chain.push(block);
            }
            eprintln!(
                "{accounts} accounts, {}: {} blocks, {:.1} Mgas/block, import {:.1} Mgas/s, bare revm {:.1} Mgas/s",
                workload.name(),
                phases.blocks,
                phases.gas as f64 / 1e6 / phases.blocks as f64,
                mgas_per_s(phases.gas, phases.import()),
                mgas_per_s(phases.gas, phases.bare)
            );
            rows.push((accounts, workload, phases));
        }
        // The same chain again into a fresh database, committed one batch per workload.
        let dir = tempfile::tempdir().unwrap();
        let (db, executor) = open_chain(&dir.path().join("db"), spec.clone());
        let mut importer = BatchImporter::new(&db, &executor, blocks as usize);
        let mut blocks_in_order = chain.iter();
        for (_, _, phases) in rows.iter_mut().filter(|(a, _, _)| *a == accounts) {
            let started = Instant::now();
            for block in blocks_in_order.by_ref().take(phases.blocks as usize) {
                importer.import(block).unwrap();
            }
            importer.flush().unwrap();
            phases.batched = started.elapsed();
        }
    }
    println!(
        "| state | workload | Mgas/block | import Mgas/s | batched import Mgas/s | bare revm Mgas/s | bare ÷ import | validate ms | senders ms | execute ms | state root ms | commit ms |"
    );
    println!("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    for (accounts, workload, p) in &rows {
        let n = p.blocks as f64;
        let import = mgas_per_s(p.gas, p.import());
        let bare = mgas_per_s(p.gas, p.bare);
        println!(
            "| {} accounts | {} | {:.1} | {:.1} | {:.1} | {:.1} | {:.0}× | {:.1} | {:.1} | {:.1} | {:.1} | {:.1} |",
            accounts,
            workload.name(),
            p.gas as f64 / 1e6 / n,
            import,
            mgas_per_s(p.gas, p.batched),
            bare,
            bare / import,
            p.validate.as_secs_f64() * 1e3 / n,
            p.recover.as_secs_f64() * 1e3 / n,
            p.execute.as_secs_f64() * 1e3 / n,
            p.root.as_secs_f64() * 1e3 / n,
            p.commit.as_secs_f64() * 1e3 / n,
        );
    }
}
