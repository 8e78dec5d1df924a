//! State root + commit time per block, for the same number of touched accounts on a 100k- and a
//! 1M-account state: the incremental root must cost about the same on both (target ≤ 1.5×).
//!
//! Run: `cargo bench -p tandem-el --bench state_root` (optional arguments: state sizes, e.g.
//! `-- 100000 1000000`; environment `TOUCHED` = accounts changed per block, default 2000, and
//! `RUNS` = measured blocks per size, default 15; `DURABLE=0` commits without fsync; `BATCH=k` persists k blocks per write transaction and
//! reports the commit per block as the batch's time / k). Prints the median and spread of each phase.

use alloy_consensus::{Block, BlockBody, Header};
use alloy_genesis::{Genesis, GenesisAccount};
use alloy_primitives::{Address, Bytes, U256, keccak256};
use revm::database::{AccountStatus, BundleAccount, BundleState};
use revm::primitives::KECCAK_EMPTY;
use revm::state::AccountInfo;
use std::time::{Duration, Instant};
use tandem_el::storage::{Database, DatabaseConfig, ExecutedBlock, seal_block};
use tandem_shared::ChainSpec;

fn address(i: u64) -> Address {
    Address::from_word(keccak256(i.to_be_bytes()))
}

/// xorshift: deterministic and dependency-free.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

fn median(mut samples: Vec<Duration>) -> (Duration, Duration, Duration) {
    samples.sort();
    (samples[0], samples[samples.len() / 2], samples[samples.len() - 1])
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

struct Figures {
    root: Duration,
    commit: Duration,
    total: Duration,
}

fn run(size: u64, touched: u64, runs: usize) -> Figures {
    let dir = tempfile::tempdir().expect("temporary directory");
    let mut genesis = Genesis::default();
    genesis.config.chain_id = 1337;
    genesis.gas_limit = 30_000_000;
    let balance = U256::from(10u64.pow(18));
    genesis.alloc = (0..size)
        .map(|i| (address(i), GenesisAccount { balance, nonce: Some(0), ..Default::default() }))
        .collect();
    let spec = ChainSpec::from_genesis(genesis).expect("chain spec");
    let start = Instant::now();
    let durable = std::env::var("DURABLE").map_or(true, |v| v != "0");
    let config = DatabaseConfig { durable, ..DatabaseConfig::default() };
    let db = Database::init_with(dir.path(), &spec, config).expect("init");
    eprintln!("{size} accounts: init (genesis trie) {:.1} s", start.elapsed().as_secs_f64());
    let start = Instant::now();
    let warmed = db.warm_up().expect("warm up");
    eprintln!(
        "{size} accounts: warm-up read {warmed} entries in {:.1} s",
        start.elapsed().as_secs_f64()
    );

    // In-memory nonce per account index, so each bundle carries correct original values.
    let mut nonces = vec![0u64; size as usize];
    let mut created = 0u64;
    let mut rng = Rng(0x5eed ^ size);
    let (mut roots, mut commits) = (Vec::new(), Vec::new());
    // Blocks persisted per write transaction; the roots of not yet persisted blocks are
    // incremental over their predecessors' trie updates (`state_root_over`).
    let batch = std::env::var("BATCH").ok().and_then(|v| v.parse().ok()).unwrap_or(1usize).max(1);
    let mut pending: Vec<ExecutedBlock> = Vec::new();
    let mut pending_updates = None;
    let warmup = 4 * batch;
    for run in 0..warmup + runs {
        let mut bundle = BundleState::default();
        while (bundle.state.len() as u64) < touched {
            // 90% existing accounts (senders and recipients), 10% new recipients.
            let (address, original) = if rng.below(10) == 0 {
                created += 1;
                (address(u64::MAX - created), None)
            } else {
                let i = rng.below(size);
                if bundle.state.contains_key(&address(i)) {
                    continue;
                }
                let nonce = &mut nonces[i as usize];
                let original = AccountInfo {
                    balance,
                    nonce: *nonce,
                    code_hash: KECCAK_EMPTY,
                    ..Default::default()
                };
                *nonce += 1;
                (address(i), Some(original))
            };
            let status = if original.is_some() {
                AccountStatus::Changed
            } else {
                AccountStatus::InMemoryChange
            };
            let present = AccountInfo {
                balance: balance + U256::from(run + 1),
                nonce: original.as_ref().map_or(0, |o| o.nonce + 1),
                code_hash: KECCAK_EMPTY,
                ..Default::default()
            };
            bundle.state.insert(
                address,
                BundleAccount::new(original, Some(present), Default::default(), status),
            );
        }

        let t0 = Instant::now();
        let (root, updates) = match &pending_updates {
            Some(pending) => db.state_root_over(pending, &bundle).expect("state root"),
            None => db.state_root_with(&bundle).expect("state root"),
        };
        let t1 = Instant::now();
        let (number, parent_hash) = match pending.last() {
            Some(last) => (last.block.header.number, last.block.hash()),
            None => db.canonical_tip().expect("tip"),
        };
        let header = Header {
            number: number + 1,
            parent_hash,
            state_root: root,
            timestamp: number + 1,
            extra_data: Bytes::new(),
            ..Default::default()
        };
        let block = seal_block(Block {
            header,
            body: BlockBody { transactions: vec![], ommers: vec![], withdrawals: None },
        });
        pending.push(ExecutedBlock { block, senders: vec![], receipts: vec![], bundle });
        pending_updates = Some(updates);
        let mut commit = None;
        if pending.len() == batch {
            let updates = pending_updates.take().expect("pending updates");
            db.commit_blocks(&pending, updates).expect("commit");
            pending.clear();
            // The batch's commit, shared by its blocks.
            commit = Some(t1.elapsed() / batch as u32);
        }
        if run >= warmup {
            roots.push(t1 - t0);
            if let Some(commit) = commit {
                commits.push(commit);
            }
        }
    }
    let (root, commit) = (median(roots), median(commits));
    let total = root.1 + commit.1;
    println!(
        "{size:>9} accounts, {touched} touched/block, {runs} blocks, batch {batch}: state root {:.1} ms (min {:.1}, max {:.1}), commit {:.1} ms (min {:.1}, max {:.1}), root+commit (sum of medians) {:.1} ms",
        ms(root.1),
        ms(root.0),
        ms(root.2),
        ms(commit.1),
        ms(commit.0),
        ms(commit.2),
        ms(total),
    );
    Figures { root: root.1, commit: commit.1, total }
}

fn main() {
    let mut sizes: Vec<u64> = std::env::args().skip(1).filter_map(|a| a.parse().ok()).collect();
    if sizes.is_empty() {
        sizes = vec![100_000, 1_000_000];
    }
    let env = |name: &str, default: u64| {
        std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
    };
    let (touched, runs) = (env("TOUCHED", 2000), env("RUNS", 15) as usize);
    let figures: Vec<Figures> = sizes.iter().map(|size| run(*size, touched, runs)).collect();
    if let (Some(small), Some(large)) = (figures.first(), figures.last())
        && figures.len() > 1
    {
        println!(
            "ratio {} / {} accounts: state root {:.2}x, commit {:.2}x, root+commit {:.2}x",
            sizes[sizes.len() - 1],
            sizes[0],
            large.root.as_secs_f64() / small.root.as_secs_f64(),
            large.commit.as_secs_f64() / small.commit.as_secs_f64(),
            large.total.as_secs_f64() / small.total.as_secs_f64(),
        );
    }
}
