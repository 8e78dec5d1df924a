//! The whole Ethereum fixture set (`../shared/fixtures/ethereum`) through `tandem-el fixtures`'
//! runner: blockchain tests via the MDBX import path, state tests in memory. Each format must
//! pass at least 99% of its entries, skips counted as not passed. A missing fixture folder fails.

use std::path::Path;

use tandem_el::fixtures::{self, Format};

#[test]
fn all_fixtures_pass_at_least_99_percent_per_format() {
    let root = tandem_shared::fixtures::fixtures_dir(Path::new(env!("CARGO_MANIFEST_DIR")))
        .unwrap_or_else(|e| panic!("{e}"));
    let jobs = std::thread::available_parallelism().map_or(2, |n| n.get());
    let report = fixtures::run(&root, jobs, &fixtures::default_backend()).unwrap();
    for failure in &report.failures {
        println!("FAIL {} :: {}: {}", failure.file.display(), failure.test, failure.reason);
    }
    for (reason, count) in &report.skips {
        println!("SKIP {count}: {reason}");
    }
    for (format, minimum) in [(Format::Blockchain, 2000), (Format::State, 6000)] {
        let counts = report.by_format.get(&format).copied().unwrap_or_default();
        let total = counts.passed + counts.failed + counts.skipped;
        println!(
            "{format}: {} passed, {} failed, {} skipped ({:.2}%)",
            counts.passed,
            counts.failed,
            counts.skipped,
            counts.pass_rate() * 100.0
        );
        assert!(total >= minimum, "{format}: only {total} entries found under {}", root.display());
        assert!(
            counts.pass_rate() >= 0.99,
            "{format}: pass rate {:.2}% below 99%",
            counts.pass_rate() * 100.0
        );
    }
}

#[test]
fn a_wrong_expectation_is_reported_as_a_failure() {
    // A state test whose expected post root is wrong must fail, naming the root.
    let root = tandem_shared::fixtures::fixtures_dir(Path::new(env!("CARGO_MANIFEST_DIR")))
        .unwrap_or_else(|e| panic!("{e}"));
    let file = tandem_shared::fixtures::json_files(&root.join("state_tests"))
        .unwrap()
        .into_iter()
        .next()
        .unwrap();
    let text = std::fs::read_to_string(&file).unwrap();
    let mut entries: serde_json::Map<String, serde_json::Value> =
        serde_json::from_str(&text).unwrap();
    let (_, entry) = entries.iter_mut().next().unwrap();
    let post = entry["post"].as_object_mut().unwrap();
    let (_, cases) = post.iter_mut().next().unwrap();
    cases[0]["hash"] = serde_json::json!(format!("0x{}", "11".repeat(32)));
    let dir = tempfile::tempdir().unwrap();
    let broken = dir.path().join("broken.json");
    std::fs::write(&broken, serde_json::to_string(&entries).unwrap()).unwrap();
    let report = fixtures::run(&broken, 1, &fixtures::default_backend()).unwrap();
    let counts = report.total();
    assert_eq!(counts.failed, 1, "{:?}", report.failures);
    assert!(report.failures[0].reason.contains("post state root"), "{:?}", report.failures);
}
