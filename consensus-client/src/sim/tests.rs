//! The seeded simulation suite.
//!
//! `cargo test -p tandem-cl --lib sim::tests::seeds -- --nocapture` runs the default seeds;
//! `TANDEM_SIM_SEEDS=START..END` (END exclusive) runs that range instead.

use super::*;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

/// Seeds of the default suite.
const DEFAULT_SEEDS: (u64, u64) = (0, 1000);

fn repro(seed: u64) -> String {
    format!(
        "TANDEM_SIM_SEEDS={seed}..{} cargo test -p tandem-cl --lib sim::tests::seeds -- --nocapture",
        seed + 1
    )
}

/// What the passing seeds exercised, summed (printed with the summary line).
#[derive(Debug, Default)]
struct Totals {
    events: u64,
    virtual_secs: u64,
    committed_blocks: u64,
    /// Evidence by kind: proposal, vote, timeout.
    evidence: [u64; 3],
    undecodable: u64,
    with_byzantine: u64,
    with_crashes: u64,
    /// Broadcasts refused as duplicates (then sent directly), summed.
    publish_duplicates: u64,
    /// Gossip copies dropped by receivers as already seen, summed.
    gossip_deduped: u64,
    /// Blocks committed through range sync, summed.
    synced_blocks: u64,
    /// Seeds in which the chain halted by design (too many validators without safety data).
    halted_by_design: u64,
}

impl Totals {
    fn add(&mut self, r: &SimReport) {
        self.events += r.events;
        self.virtual_secs += r.virtual_ms / 1000;
        self.committed_blocks += r.min_height;
        for k in 0..3 {
            self.evidence[k] += r.evidence[k];
        }
        self.undecodable += r.undecodable;
        self.with_byzantine += u64::from(!r.scenario.byzantine.is_empty());
        self.with_crashes += u64::from(!r.scenario.crashes.is_empty());
        self.publish_duplicates += r.net.publish_duplicates;
        self.gossip_deduped += r.net.gossip_deduped;
        self.synced_blocks += r.synced_blocks;
        self.halted_by_design += u64::from(r.halted_by_design);
    }
}

#[test]
fn seeds() {
    let (start, end) = match std::env::var("TANDEM_SIM_SEEDS") {
        Ok(s) => parse_seed_range(&s).unwrap_or_else(|| {
            panic!("TANDEM_SIM_SEEDS must be START..END with START < END, got {s:?}")
        }),
        Err(_) => DEFAULT_SEEDS,
    };
    let next = AtomicU64::new(start);
    let failures: Mutex<Vec<(u64, String)>> = Mutex::new(Vec::new());
    let passed = AtomicU64::new(0);
    let totals = Mutex::new(Totals::default());
    let started = std::time::Instant::now();
    let workers = std::thread::available_parallelism().map_or(2, |n| n.get()).min(8);
    std::thread::scope(|s| {
        for _ in 0..workers {
            s.spawn(|| {
                loop {
                    let seed = next.fetch_add(1, Ordering::Relaxed);
                    if seed >= end {
                        break;
                    }
                    match std::panic::catch_unwind(|| run_seed(seed)) {
                        Ok(Ok(report)) => {
                            passed.fetch_add(1, Ordering::Relaxed);
                            totals.lock().unwrap().add(&report);
                        }
                        Ok(Err(e)) => failures.lock().unwrap().push((seed, e)),
                        Err(_) => failures.lock().unwrap().push((seed, "panicked".into())),
                    }
                }
            });
        }
    });
    let mut failures = failures.into_inner().unwrap();
    failures.sort_by_key(|(s, _)| *s);
    for (seed, e) in &failures {
        eprintln!(
            "seed {seed} FAILED: {e}\n  scenario: {:?}\n  reproduce: {}",
            Scenario::from_seed(*seed),
            repro(*seed)
        );
    }
    let line = summary(start, end, passed.load(Ordering::Relaxed), failures.len() as u64);
    eprintln!("{line} ({:.1}s); {:?}", started.elapsed().as_secs_f64(), totals.lock().unwrap());
    println!("{line}");
    assert!(failures.is_empty(), "{line}");
    // A halt by design (doppelganger protection with too many validators behind) is a pass,
    // but a rare one: many would mean the protection abstains where it should not.
    let halted = totals.lock().unwrap().halted_by_design;
    assert!(halted * 100 <= end - start, "{halted} seeds halted by design");
}

/// Mutation check: a node that forgets its safety data across a crash must be caught by the
/// after-every-step checks in some seeds (so the suite can fail for the bug it guards against).
#[test]
fn losing_safety_data_is_caught() {
    let mut caught = 0;
    for seed in 0..200 {
        let sc = Scenario::from_seed(seed);
        if sc.crashes.is_empty() {
            continue;
        }
        let mut sim = Sim::new(sc);
        sim.drop_safety_writes = true;
        // Doppelganger protection would hide the forgetting in most seeds: the checker is what
        // is tested here.
        sim.doppelganger_protection = false;
        if let Err(e) = sim.run() {
            caught += u64::from(e.contains("SAFETY"));
        }
    }
    assert!(caught > 0, "no seed noticed a validator forgetting its votes");
}

/// Mutation check: executors that remember validated payloads by their claimed block hash
/// (the bug of the first executor) let a hash-reusing leader halt the chain; the real cache
/// keyed on the whole payload does not.
#[test]
fn a_hash_reusing_leader_halts_only_an_executor_that_trusts_block_hashes() {
    let mut halted = 0;
    let mut runs = 0;
    for seed in 0..400 {
        let sc = Scenario::from_seed(seed);
        if !sc.byzantine.iter().any(|(_, b)| *b == Byzantine::HashReuse) {
            continue;
        }
        runs += 1;
        if let Err(e) = Sim::new(sc.clone()).run() {
            panic!(
                "seed {seed} with a hash-reusing leader failed: {e}\n  reproduce: {}",
                repro(seed)
            );
        }
        if runs <= 12 {
            let mut sim = Sim::new(sc);
            sim.trust_block_hashes = true;
            halted += u64::from(sim.run().is_err_and(|e| e.contains("liveness")));
        }
    }
    assert!(runs >= 12, "only {runs} seeds with a hash-reusing leader");
    assert!(halted > 0, "no seed halted with an executor that trusts block hashes");
}

/// Nodes restarted from a stale copy of their storage (a restored backup, a wiped data dir)
/// would sign twice without doppelganger protection; with it every such seed is safe.
#[test]
fn stale_restores_double_sign_only_without_doppelganger_protection() {
    let mut caught = 0;
    let mut stale = 0;
    for seed in 0..1000 {
        let sc = Scenario::from_seed(seed);
        if !sc.crashes.iter().any(|c| c.stale_ms.is_some()) {
            continue;
        }
        stale += 1;
        if let Err(e) = Sim::new(sc.clone()).run() {
            panic!("seed {seed} with a stale restore failed: {e}\n  reproduce: {}", repro(seed));
        }
        let mut sim = Sim::new(sc);
        sim.doppelganger_protection = false;
        caught += u64::from(sim.run().is_err_and(|e| e.contains("SAFETY")));
    }
    assert!(stale >= 50, "only {stale} seeds restore a stale copy");
    assert!(caught > 0, "no stale restore signed twice without protection");
}

/// The byzantine behaviours really happen: equivocating leaders and twins are caught
/// (evidence) and garbage senders' bytes are refused, while every seed still passes; nodes that
/// fall behind (crashes, partitions) catch up through range sync in some seeds.
#[test]
fn byzantine_behaviours_are_exercised() {
    let mut seen = [0u64; 3];
    let mut undecodable = 0;
    let mut synced = 0;
    for seed in 0..150 {
        let r = run_seed(seed).unwrap();
        synced += r.synced_blocks;
        let has = |b| r.scenario.byzantine.iter().any(|(_, x)| *x == b);
        if has(Byzantine::Equivocator) || has(Byzantine::Twin) {
            seen[0] += r.evidence[0];
        }
        if has(Byzantine::Twin) {
            seen[1] += r.evidence[1];
        }
        seen[2] += r.evidence[2];
        if has(Byzantine::Garbage) {
            undecodable += r.undecodable;
        }
    }
    assert!(seen[0] > 0, "no proposal equivocation detected");
    assert!(seen[1] > 0, "no double vote detected");
    assert!(undecodable > 0, "no garbage refused");
    assert!(synced > 0, "no node was ever far enough behind to range-sync");
}

#[test]
fn seed_range_parsing() {
    assert_eq!(parse_seed_range("5..9"), Some((5, 9)));
    assert_eq!(parse_seed_range(" 0..1 "), Some((0, 1)));
    assert_eq!(parse_seed_range("9..5"), None);
    assert_eq!(parse_seed_range("5"), None);
    assert_eq!(parse_seed_range("a..b"), None);
    assert_eq!(summary(0, 10, 9, 1), "seeds 0..10: 9 passed, 1 failed");
}

#[test]
fn a_seed_replays_identically() {
    let a = run_seed(42).unwrap();
    let b = run_seed(42).unwrap();
    assert_eq!((a.events, a.virtual_ms, a.min_height), (b.events, b.virtual_ms, b.min_height));
}

#[test]
fn seeds_cover_every_setting() {
    let scs: Vec<_> = (DEFAULT_SEEDS.0..DEFAULT_SEEDS.1).map(Scenario::from_seed).collect();
    for n in [4, 7, 10] {
        assert!(scs.iter().any(|s| s.n == n), "n = {n}");
    }
    assert!(scs.iter().filter(|s| s.ed25519).count() >= 50);
    assert!(scs.iter().filter(|s| s.mdbx).count() >= 20);
    assert!(scs.iter().any(|s| s.partition.is_some()));
    assert!(scs.iter().any(|s| s.crashes.iter().any(|c| c.torn)));
    assert!(scs.iter().any(|s| s.crashes.iter().any(|c| c.stale_ms.is_some())));
    assert!(scs.iter().filter(|s| s.crashes.iter().any(|c| c.at_ms >= s.gst_ms)).count() >= 50);
    for b in [
        Byzantine::Equivocator,
        Byzantine::Twin,
        Byzantine::Garbage,
        Byzantine::HashReuse,
        Byzantine::Withholder,
        Byzantine::Selective,
        Byzantine::BadFetchServer,
        Byzantine::ForkBelowLock,
    ] {
        assert!(
            scs.iter().filter(|s| s.byzantine.iter().any(|(_, x)| *x == b)).count() >= 25,
            "{b:?}"
        );
    }
    assert!(scs.iter().any(|s| s.byzantine.len() == (s.n - 1) / 3 && s.n == 10));
    assert!(scs.iter().filter(|s| s.powers.iter().any(|p| *p > 1)).count() >= 100);
    assert!(scs.iter().any(|s| s.clock_skew_ms.iter().any(|k| *k != 0)));
    let short_window = scs
        .iter()
        .filter(|s| s.retained_rounds < crate::block_store::RETAINED_COMMITTED_ROUNDS)
        .count();
    assert!(short_window >= 25, "only {short_window} seeds with a long absence");
    for s in &scs {
        let total: u64 = s.powers.iter().sum();
        let byz: u64 = s.byzantine.iter().map(|(i, _)| s.powers[usize::from(*i)]).sum();
        assert!(byz * 3 < total, "seed {}: byzantine power {byz} of {total}", s.seed);
    }
}

/// A network that never heals must not break safety (liveness is not expected), and a
/// checker that sees two different commits at one height must fail: the checks can fail.
#[test]
fn checker_detects_conflicting_commits() {
    let mut sim = Sim::new(Scenario::from_seed(1));
    for inst in 0..sim.instances.len() {
        sim.boot(inst).unwrap();
    }
    let g = sim.genesis.clone();
    let attrs = PayloadAttributes {
        parent_hash: g.payload.block_hash,
        number: 1,
        timestamp: g.payload.timestamp + 1,
        prev_randao: B256::ZERO,
        parent_beacon_block_root: g.id(),
    };
    let mk = |body: u8| {
        let mut b = g.clone();
        b.round = 1;
        b.parent_id = g.id();
        b.payload = mock_payload(&attrs, vec![body]);
        b
    };
    let (a, b) = (mk(1), mk(2));
    let honest: Vec<usize> =
        (0..sim.instances.len()).filter(|i| sim.is_honest(sim.instances[*i].index)).collect();
    sim.deliver_commit(honest[0], a.id(), a).unwrap();
    let err = sim.deliver_commit(honest[1], b.id(), b).unwrap_err();
    assert!(err.contains("SAFETY"), "{err}");
}

#[test]
fn checker_detects_double_votes() {
    let mut sim = Sim::new(Scenario::from_seed(2));
    let honest = (0..sim.sc.n as ValidatorIndex).find(|i| sim.is_honest(*i)).unwrap();
    let vote = |id: u8| {
        Message::Vote(crate::types::Vote {
            block_id: B256::repeat_byte(id),
            round: 3,
            voter: honest,
            signature: crate::types::Signature([0; 64]),
        })
    };
    sim.check_signed(honest, &vote(1)).unwrap();
    sim.check_signed(honest, &vote(1)).unwrap();
    assert!(sim.check_signed(honest, &vote(2)).unwrap_err().contains("voted twice"));
}

/// A 2|2 partition of four validators for 30 s, then heal (GST). Every node re-sends its
/// timeout each round timer, byte-identical: gossipsub refuses the re-sends as duplicates for
/// 60 s after the first. The real node then sends them directly to every validator, and a TC
/// forms within a few rounds of the heal; without that fallback (the old node, which only
/// logged the failed publish) nothing gets through until the dedup window ends.
fn partition_heal(direct_fallback: bool) -> SimReport {
    let mut sc = Scenario::from_seed(0);
    sc.n = 4;
    sc.powers = vec![1; 4];
    sc.byzantine.clear();
    sc.crashes.clear();
    sc.clock_skew_ms = vec![0; 4];
    sc.sub_second = true;
    sc.base_timeout_ms = 1_000;
    sc.loss = 0.0;
    sc.duplication = 0.0;
    sc.pre_gst_max_delay_ms = 50;
    sc.post_gst_max_delay_ms = 50;
    sc.partition = Some((vec![0, 1], 2_000, 32_000));
    sc.gst_ms = 32_000;
    let mut sim = Sim::new(sc);
    sim.direct_fallback = direct_fallback;
    sim.run().expect("the partition heals within the liveness bound")
}

#[test]
fn timeouts_get_through_after_a_partition_heals_only_with_the_direct_fallback() {
    let with = partition_heal(true);
    let without = partition_heal(false);
    let (a, b) = (with.recovery_ms.unwrap(), without.recovery_ms.unwrap());
    eprintln!(
        "recovery after the heal: {a} ms with the fallback, {b} ms without; {:?} / {:?}",
        with.net, without.net
    );
    assert!(with.net.direct_fallbacks > 0, "no re-send was refused as a duplicate: {:?}", with.net);
    assert!(a <= 10_000, "{a} ms to commit after the heal with the direct fallback");
    // Without it the re-sent timeouts stay duplicates until 60 s after their first publish
    // (about 30 s after the heal).
    assert!(b >= 20_000, "only {b} ms to commit after the heal without the direct fallback");
}

/// A proposal larger than the network's message limit is never delivered (its publish fails,
/// and the real node does not send it directly either): when every execution client builds
/// such blocks (a pool full of maximum-size calldata, with no byte cap on blocks) nothing is
/// ever certified, which the liveness check reports; blocks that fit go through.
#[test]
fn a_proposal_over_the_size_limit_is_not_delivered() {
    let sc = || {
        let mut sc = Scenario::from_seed(0);
        sc.byzantine.clear();
        sc.crashes.clear();
        sc.partition = None;
        sc
    };
    let mut big = Sim::new(sc());
    big.max_message_bytes = 64 * 1024;
    big.body_bytes = 80 * 1024;
    let err = big.run_to_end().expect_err("blocks above the message limit cannot be certified");
    assert!(err.contains("liveness"), "{err}");
    assert!(big.net.publish_too_large > 0, "{:?}", big.net);
    assert!(big.committed.is_empty(), "a block above the limit was committed");

    let mut capped = Sim::new(sc());
    capped.max_message_bytes = 64 * 1024;
    capped.body_bytes = 48 * 1024;
    let r = capped.run().expect("blocks below the message limit go through");
    assert_eq!(r.net.publish_too_large, 0);
}

/// One of four validators is down for 40 s while the others go on; they keep only 20 rounds
/// of committed history in memory, so the blocks it needs are gone from every core's block
/// store and its block fetches come back empty. It catches up through range sync (committed
/// blocks with their QCs, from the peers' committed index) and then rejoins consensus: it
/// votes and commits blocks of its own again. Without range sync it never commits again.
fn away_past_the_window(range_sync: bool, retained_rounds: Round) -> (Sim, Result<(), String>) {
    let mut sc = Scenario::from_seed(0);
    sc.n = 4;
    sc.powers = vec![1; 4];
    sc.byzantine.clear();
    sc.clock_skew_ms = vec![0; 4];
    sc.sub_second = true;
    sc.base_timeout_ms = 1_000;
    sc.loss = 0.0;
    sc.partition = None;
    sc.pre_gst_max_delay_ms = 50;
    sc.post_gst_max_delay_ms = 50;
    sc.gst_ms = 42_000;
    sc.crashes = vec![scenario::Crash {
        node: 3,
        at_ms: 2_000,
        down_ms: 40_000,
        torn: false,
        stale_ms: None,
    }];
    let mut sim = Sim::new(sc);
    sim.retained_rounds = retained_rounds;
    sim.range_sync = range_sync;
    let result = sim.run_to_end();
    (sim, result)
}

#[test]
fn a_node_outside_the_retained_window_range_syncs_and_rejoins() {
    let (sim, result) = away_past_the_window(true, 20);
    result.expect("the node that was away catches up");
    let away = sim.routes[3][0];
    let core = sim.instances[away].core.as_ref().unwrap();
    let stats = core.stats();
    assert!(
        sim.gst_height > 3 * sim.retained_rounds,
        "only {} blocks while it was away",
        sim.gst_height
    );
    assert!(stats.synced > 0, "nothing came through range sync: {stats:?}");
    assert!(stats.commits > stats.synced, "no commit through consensus after the sync: {stats:?}");
    assert!(stats.votes > 0, "it never voted again: {stats:?}");

    let (sim, result) = away_past_the_window(false, 20);
    let err = result.expect_err("without range sync the node cannot catch up");
    assert!(err.contains("liveness"), "{err}");
    assert_eq!(sim.synced_blocks, 0);

    // Within the window the core's block fetch alone catches it up: the window is the point.
    let (_, result) = away_past_the_window(false, 2_000);
    result.expect("within the retained window block fetch suffices");
}
