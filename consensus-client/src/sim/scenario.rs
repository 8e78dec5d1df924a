//! What one seed decides.

use crate::types::{Round, ValidatorIndex};
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};

/// A byzantine behaviour.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Byzantine {
    /// Sends two different valid proposals when leading.
    Equivocator,
    /// Runs the same key in two instances, each hearing half the network (double votes).
    Twin,
    /// Sends mutated, truncated, replayed, random and forged messages besides honest ones.
    Garbage,
    /// When leading, proposes a block whose payload claims its parent's `block_hash` over its
    /// own body (correct consensus fields, correctly signed): only an executor that checks the
    /// body refuses it.
    HashReuse,
    /// Never sends its votes (withholds them from the next leader).
    Withholder,
    /// Sends its proposals and timeouts to only some of its peers.
    Selective,
    /// Answers block and range-sync requests with blocks whose bodies it altered, and claims a
    /// committed height far above its own.
    BadFetchServer,
    /// When it proposes after a timeout certificate, proposes a block extending an older QC
    /// than the certificate's highest (a fork below the lock), correctly built and signed.
    ForkBelowLock,
}

/// A crash of an honest node.
#[derive(Debug, Clone)]
pub struct Crash {
    /// Which node.
    pub node: ValidatorIndex,
    /// When (ms after start).
    pub at_ms: u64,
    /// Downtime (restart no later than GST).
    pub down_ms: u64,
    /// Whether it dies part-way through performing the actions of one event.
    pub torn: bool,
    /// Whether it comes back from a stale copy of its storage (a backup restored, a wiped data
    /// dir when the copy is empty), taken `stale_ms` before the crash.
    pub stale_ms: Option<u64>,
}

/// Everything a seed decides.
#[derive(Debug, Clone)]
pub struct Scenario {
    /// The seed.
    pub seed: u64,
    /// Validators.
    pub n: usize,
    /// Real ed25519 instead of the test scheme.
    pub ed25519: bool,
    /// MDBX storage instead of memory.
    pub mdbx: bool,
    /// Sub-second blocks.
    pub sub_second: bool,
    /// Base round timeout.
    pub base_timeout_ms: u64,
    /// Global stabilisation time (ms after start).
    pub gst_ms: u64,
    /// Max delay before GST.
    pub pre_gst_max_delay_ms: u64,
    /// Max delay after GST (Δ).
    pub post_gst_max_delay_ms: u64,
    /// Loss probability before GST.
    pub loss: f64,
    /// Duplication probability.
    pub duplication: f64,
    /// A partition before GST: one side and its start/end time.
    pub partition: Option<(Vec<ValidatorIndex>, u64, u64)>,
    /// Crashes of honest nodes (restarted no later than GST, except those after GST).
    pub crashes: Vec<Crash>,
    /// Byzantine validators (at most f).
    pub byzantine: Vec<(ValidatorIndex, Byzantine)>,
    /// Voting power of each validator (unit in most seeds, 1..=5 in some).
    pub powers: Vec<u64>,
    /// Offset of each validator's local clock from simulation time (ms; zero in half the seeds).
    pub clock_skew_ms: Vec<i64>,
    /// Rounds of committed history cores keep in memory (short in seeds with a long absence).
    pub retained_rounds: Round,
}

impl Scenario {
    /// The scenario of `seed`.
    pub fn from_seed(seed: u64) -> Self {
        let mut rng = StdRng::seed_from_u64(seed);
        let n = [4usize, 7, 10][rng.gen_range(0..3)];
        let f = (n - 1) / 3;
        let sub_second = rng.gen_bool(0.5);
        let mut gst_ms = rng.gen_range(2_000..20_000);
        let mut order: Vec<ValidatorIndex> = (0..n as ValidatorIndex).collect();
        order.shuffle(&mut rng);
        let n_byz = rng.gen_range(0..=f);
        let weighted = rng.gen_bool(0.3);
        let powers: Vec<u64> =
            (0..n).map(|_| if weighted { rng.gen_range(1..=5) } else { 1 }).collect();
        let total: u64 = powers.iter().sum();
        // Byzantine validators hold strictly less than a third of the power.
        let mut chosen = Vec::new();
        let mut byz_power = 0;
        for &i in &order {
            let w = powers[usize::from(i)];
            if chosen.len() < n_byz && (byz_power + w) * 3 < total {
                chosen.push(i);
                byz_power += w;
            }
        }
        let mut byzantine = Vec::new();
        let mut twin = false;
        for &i in &chosen {
            let b = match rng.gen_range(0..8) {
                0 => Byzantine::Equivocator,
                1 if !twin => {
                    twin = true;
                    Byzantine::Twin
                }
                2 => Byzantine::HashReuse,
                3 => Byzantine::Withholder,
                4 => Byzantine::Selective,
                5 => Byzantine::BadFetchServer,
                6 => Byzantine::ForkBelowLock,
                _ => Byzantine::Garbage,
            };
            byzantine.push((i, b));
        }
        let honest: Vec<ValidatorIndex> =
            order.iter().copied().filter(|i| !chosen.contains(i)).collect();
        let mut crashes = Vec::new();
        if rng.gen_bool(0.4) {
            for _ in 0..rng.gen_range(1..=2) {
                crashes.push(Crash {
                    node: honest[rng.gen_range(0..honest.len())],
                    at_ms: rng.gen_range(0..gst_ms),
                    down_ms: rng.gen_range(100..3_000),
                    torn: rng.gen_bool(0.5),
                    stale_ms: None,
                });
            }
        }
        let partition = rng.gen_bool(0.4).then(|| {
            let k = rng.gen_range(1..n);
            let mut side = order.clone();
            side.shuffle(&mut rng);
            side.truncate(k);
            let start = rng.gen_range(0..gst_ms);
            let end = rng.gen_range(start..=gst_ms);
            (side, start, end)
        });
        let skewed = rng.gen_bool(0.5);
        let clock_skew_ms =
            (0..n).map(|_| if skewed { rng.gen_range(-1_500..=1_500) } else { 0 }).collect();
        // Drawn from a separate stream so adding it left every other choice of a seed as it was.
        let mut stale_rng = StdRng::seed_from_u64(seed ^ 0x57a1_e000);
        // Only a node without which the other honest validators still hold a quorum: a stale
        // node abstains until the others pass the rounds it may have signed, which they cannot
        // do without it otherwise (byzantine validators need not help; the chain then halts,
        // by design, rather than risk a double signature). Counted over all stale nodes: two
        // that each leave a quorum may not together.
        let mut stale_nodes: Vec<ValidatorIndex> = Vec::new();
        for c in &mut crashes {
            let stale_power: u64 = stale_nodes
                .iter()
                .chain(std::iter::once(&c.node).filter(|n| !stale_nodes.contains(n)))
                .map(|i| powers[usize::from(*i)])
                .sum();
            let others = total - stale_power - byz_power;
            if others * 3 > total * 2 && stale_rng.gen_bool(0.3) {
                c.stale_ms = Some(stale_rng.gen_range(0..5_000));
                if !stale_nodes.contains(&c.node) {
                    stale_nodes.push(c.node);
                }
            }
        }
        // A crash after GST (with its data intact); liveness is then measured from its restart.
        if stale_rng.gen_bool(0.15) {
            crashes.push(Crash {
                node: honest[stale_rng.gen_range(0..honest.len())],
                at_ms: gst_ms + stale_rng.gen_range(0..5_000),
                down_ms: stale_rng.gen_range(100..3_000),
                torn: stale_rng.gen_bool(0.5),
                stale_ms: None,
            });
        }
        // A long absence: one node down for 20–40 s before GST while the others keep a short
        // window of history in memory, so it must range-sync back (GST waits for it). Its own
        // stream, so the other choices of a seed stay as they were.
        let mut long_rng = StdRng::seed_from_u64(seed ^ 0x10a6_0000);
        let mut retained_rounds = crate::block_store::RETAINED_COMMITTED_ROUNDS;
        let mut long_absence = long_rng.gen_bool(0.05);
        let node = honest[long_rng.gen_range(0..honest.len())];
        // Like a stale restore, a node that crashed before it saved any safety data abstains
        // when it comes back: the other honest validators, without the stale ones, must hold a
        // quorum without it.
        let mut away: Vec<ValidatorIndex> =
            crashes.iter().filter(|c| c.stale_ms.is_some()).map(|c| c.node).collect();
        away.push(node);
        away.sort_unstable();
        away.dedup();
        let away_power: u64 = away.iter().map(|i| powers[usize::from(*i)]).sum();
        long_absence &= (total - byz_power - away_power) * 3 > total * 2;
        if long_absence {
            let at_ms = long_rng.gen_range(0..gst_ms);
            let down_ms = long_rng.gen_range(20_000..40_000);
            crashes.push(Crash { node, at_ms, down_ms, torn: false, stale_ms: None });
            gst_ms = gst_ms.max(at_ms + down_ms);
            retained_rounds = long_rng.gen_range(4..16);
        }
        let mut sc = Self {
            retained_rounds,
            powers,
            clock_skew_ms,
            seed,
            n,
            ed25519: seed % 10 == 3,
            mdbx: seed % 25 == 7,
            sub_second,
            base_timeout_ms: if sub_second { 1_000 } else { 2_500 },
            gst_ms,
            pre_gst_max_delay_ms: rng.gen_range(20..800),
            post_gst_max_delay_ms: rng.gen_range(5..100),
            loss: rng.gen_range(0.0..0.3),
            duplication: rng.gen_range(0.0..0.1),
            partition,
            crashes,
            byzantine,
        };
        if long_absence {
            // A network calm enough that the others get well ahead while it is away.
            sc.loss = sc.loss.min(0.05);
            sc.pre_gst_max_delay_ms = sc.pre_gst_max_delay_ms.min(200);
        }
        sc
    }
}
