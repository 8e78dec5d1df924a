//! `tandem-el fixtures` as a user runs it: one line per failure, the totals last, and the exit
//! code says whether anything failed.

use std::{path::Path, process::Command};

fn fixtures_root() -> std::path::PathBuf {
    tandem_shared::fixtures::fixtures_dir(Path::new(env!("CARGO_MANIFEST_DIR")))
        .unwrap_or_else(|e| panic!("{e}"))
}

fn run(path: &Path) -> (bool, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_tandem-el"))
        .args(["fixtures".as_ref(), path.as_os_str(), "--jobs".as_ref(), "2".as_ref()])
        .output()
        .expect("run tandem-el fixtures");
    (out.status.success(), String::from_utf8_lossy(&out.stdout).into_owned())
}

#[test]
fn a_passing_file_exits_zero_and_ends_with_the_totals() {
    let file = fixtures_root()
        .join("blockchain_tests/prague/eip7702_set_code_tx/test_set_code_to_non_empty_storage_non_zero_nonce.json");
    let (ok, stdout) = run(&file);
    assert!(ok, "{stdout}");
    let last = stdout.lines().last().unwrap();
    assert!(last.ends_with("passed, 0 failed, 0 skipped"), "{stdout}");
    assert!(!stdout.contains("FAIL"), "{stdout}");
}

#[test]
fn a_tampered_block_fails_with_its_reason_and_a_non_zero_exit() {
    let file = fixtures_root()
        .join("blockchain_tests/prague/eip7702_set_code_tx/test_set_code_to_non_empty_storage_non_zero_nonce.json");
    let mut entries: serde_json::Map<String, serde_json::Value> =
        serde_json::from_str(&std::fs::read_to_string(file).unwrap()).unwrap();
    let (_, entry) = entries.iter_mut().next().unwrap();
    // Claim a different final head: the chain imports fine but `lastblockhash` disagrees.
    entry["lastblockhash"] = serde_json::json!(format!("0x{}", "22".repeat(32)));
    let dir = tempfile::tempdir().unwrap();
    let broken = dir.path().join("broken.json");
    std::fs::write(&broken, serde_json::to_string(&entries).unwrap()).unwrap();
    let (ok, stdout) = run(&broken);
    assert!(!ok, "{stdout}");
    assert!(
        stdout.lines().any(|l| l.starts_with("FAIL") && l.contains("lastblockhash")),
        "{stdout}"
    );
    assert!(stdout.lines().last().unwrap().contains("1 failed"), "{stdout}");
}
