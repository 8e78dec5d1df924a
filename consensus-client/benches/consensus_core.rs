//! Benchmarks of the consensus core alone (no EL, no network, no storage), with real ed25519.
//!
//! - `core_round/n`: one node's CPU time per committed round. All n cores run in one thread
//!   over an instant, lossless in-memory network with an executor that answers at once; only
//!   the time spent inside `Core::handle` is counted, summed over all nodes and divided by n
//!   and by the number of blocks committed (every node commits every block).
//! - `qc_verify/batch/n`: verifying a QC of a quorum of n validators (batch ed25519).
//! - `qc_verify/individual/n`: the reference measured in the same run: verifying the same
//!   signatures one by one.
//!
//! Run: `cargo bench -p tandem-cl --bench consensus_core`.

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use sha2::{Digest, Sha256};
use std::collections::VecDeque;
use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tandem_cl::core::voting::verify_qc;
use tandem_cl::core::{Action, Core, CoreConfig, CoreParams, Event};
use tandem_cl::crypto::{Ed25519Signer, Ed25519Verifier, Signer, Verifier};
use tandem_cl::leader::RoundRobin;
use tandem_cl::types::{
    Block, Payload, PayloadAttributes, QuorumCert, Validator, ValidatorIndex, ValidatorSet, Vote,
};

const CHAIN: u64 = 1;
const T0_MS: u64 = 1_700_000_000_000;

fn seed(i: usize) -> [u8; 32] {
    Sha256::new().chain_update(b"bench-key").chain_update(i.to_be_bytes()).finalize().into()
}

fn validator_set(n: usize) -> (Arc<ValidatorSet>, Arc<dyn Verifier>) {
    let pks: Vec<_> = (0..n).map(|i| Ed25519Signer::from_seed(&seed(i)).public_key()).collect();
    let set = ValidatorSet::new(
        pks.iter().map(|pk| Validator { public_key: *pk, voting_power: 1 }).collect(),
    )
    .expect("valid set");
    (Arc::new(set), Arc::new(Ed25519Verifier::new(&pks).expect("valid keys")))
}

fn genesis() -> Block {
    Block::genesis(Payload {
        block_hash: [0x11; 32].into(),
        parent_hash: Default::default(),
        number: 0,
        timestamp: T0_MS / 1000 - 1,
        prev_randao: Default::default(),
        parent_beacon_block_root: Default::default(),
        withdrawals: vec![],
        body: vec![],
    })
}

fn payload(a: &PayloadAttributes) -> Payload {
    let body = vec![0u8; 256];
    let block_hash = Sha256::new()
        .chain_update(a.parent_hash)
        .chain_update(a.number.to_be_bytes())
        .chain_update(&body)
        .finalize();
    Payload {
        block_hash: <[u8; 32]>::from(block_hash).into(),
        parent_hash: a.parent_hash,
        number: a.number,
        timestamp: a.timestamp,
        prev_randao: a.prev_randao,
        parent_beacon_block_root: a.parent_beacon_block_root,
        withdrawals: vec![],
        body,
    }
}

/// n cores on an instant network.
struct Cluster {
    cores: Vec<Core>,
    queue: VecDeque<(usize, Event)>,
    in_core: Duration,
}

impl Cluster {
    fn new(n: usize) -> Self {
        let (set, verifier) = validator_set(n);
        let cores = (0..n)
            .map(|i| {
                Core::new(
                    CoreParams {
                        config: CoreConfig {
                            chain_id: CHAIN,
                            sub_second_blocks: true,
                            ..CoreConfig::default()
                        },
                        me: i as ValidatorIndex,
                        validators: set.clone(),
                        signer: Box::new(Ed25519Signer::from_seed(&seed(i))),
                        verifier: verifier.clone(),
                        election: Box::new(RoundRobin::new(n)),
                        genesis: genesis(),
                    },
                    None,
                )
                .expect("core")
            })
            .collect();
        let mut c = Self { cores, queue: VecDeque::new(), in_core: Duration::ZERO };
        for i in 0..n {
            c.queue.push_back((i, Event::Start));
        }
        c
    }

    /// Runs until node 0 has committed `blocks` more blocks.
    fn commit(&mut self, blocks: u64) {
        let target = self.cores[0].committed_height() + blocks;
        let n = self.cores.len();
        while self.cores[0].committed_height() < target {
            let Some((i, ev)) = self.queue.pop_front() else { panic!("cluster stalled") };
            let start = Instant::now();
            let actions = self.cores[i].handle(T0_MS, ev);
            self.in_core += start.elapsed();
            for a in actions {
                match a {
                    Action::Send { to, message } => self.queue.push_back((
                        usize::from(to),
                        Event::Message { from: i as ValidatorIndex, message },
                    )),
                    Action::Broadcast { message } => {
                        for j in (0..n).filter(|j| *j != i) {
                            self.queue.push_back((
                                j,
                                Event::Message {
                                    from: i as ValidatorIndex,
                                    message: message.clone(),
                                },
                            ));
                        }
                    }
                    Action::BuildPayload { round, attributes } => self.queue.push_back((
                        i,
                        Event::PayloadBuilt { round, payload: Some(payload(&attributes)) },
                    )),
                    Action::ValidatePayload { block_id, .. } => {
                        self.queue.push_back((i, Event::PayloadValidated { block_id, valid: true }))
                    }
                    _ => {}
                }
            }
        }
    }
}

fn core_round(c: &mut Criterion) {
    let mut g = c.benchmark_group("core_round");
    g.sample_size(10);
    for n in [4usize, 10, 31, 100] {
        g.bench_with_input(BenchmarkId::from_parameter(n), &n, |b, &n| {
            let mut cluster = Cluster::new(n);
            cluster.commit(3); // warm up
            b.iter_custom(|iters| {
                cluster.in_core = Duration::ZERO;
                cluster.commit(iters);
                cluster.in_core / n as u32
            });
        });
    }
    g.finish();
}

fn qc_of(n: usize) -> (QuorumCert, Arc<ValidatorSet>, Arc<dyn Verifier>) {
    let (set, verifier) = validator_set(n);
    let block_id = [0x42; 32].into();
    let msg = Vote::signing_bytes(CHAIN, &block_id, 7);
    let q = usize::try_from(set.quorum_power()).expect("small");
    let signatures = (0..q)
        .map(|i| (i as ValidatorIndex, Ed25519Signer::from_seed(&seed(i)).sign(&msg)))
        .collect();
    (QuorumCert { block_id, round: 7, signatures }, set, verifier)
}

fn qc_verify(c: &mut Criterion) {
    let mut g = c.benchmark_group("qc_verify");
    let genesis_id = genesis().id();
    for n in [4usize, 10, 31, 100] {
        let (qc, set, verifier) = qc_of(n);
        g.bench_with_input(BenchmarkId::new("batch", n), &n, |b, _| {
            b.iter(|| {
                verify_qc(black_box(&qc), &set, &*verifier, CHAIN, &genesis_id).expect("valid")
            })
        });
        let msg = Vote::signing_bytes(CHAIN, &qc.block_id, qc.round);
        g.bench_with_input(BenchmarkId::new("individual", n), &n, |b, _| {
            b.iter(|| {
                for (i, s) in &qc.signatures {
                    verifier.verify(*i, black_box(&msg), s).expect("valid");
                }
            })
        });
    }
    g.finish();
}

criterion_group!(benches, core_round, qc_verify);
criterion_main!(benches);
