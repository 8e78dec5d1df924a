//! The binaries start, describe themselves and inspect a genesis file as real processes.

use std::process::Command;

use tandem_e2e::binary;

#[test]
fn binaries_print_help() {
    for name in ["tandem-el", "tandem-cl"] {
        let out = Command::new(binary(name).unwrap()).arg("--help").output().unwrap();
        assert!(out.status.success(), "{name} --help failed");
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(text.contains("--log.format"), "{name}: {text}");
    }
}

#[test]
fn el_chain_reports_genesis_hash() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("genesis.json");
    std::fs::write(
        &path,
        r#"{"config":{"chainId":1337,"shanghaiTime":0,"cancunTime":0,"pragueTime":0},
            "gasLimit":"0x1c9c380","difficulty":"0x0","timestamp":"0x0",
            "alloc":{"0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266":{"balance":"0xd3c21bcecceda1000000"}}}"#,
    )
    .unwrap();
    let out = Command::new(binary("tandem-el").unwrap())
        .args(["chain", "--chain"])
        .arg(&path)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let summary: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(summary["chainId"], 1337);
    assert_eq!(summary["forkAtGenesis"], "prague");
    let expected = tandem_shared::ChainSpec::from_file(&path).unwrap().genesis_hash();
    assert_eq!(summary["genesisHash"], serde_json::json!(expected));
}

#[test]
fn el_chain_rejects_bad_genesis_with_named_field() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("genesis.json");
    std::fs::write(&path, r#"{"config":{"chainId":1,"osakaTime":5},"gasLimit":"0x1","alloc":{}}"#)
        .unwrap();
    let out = Command::new(binary("tandem-el").unwrap())
        .args(["chain", "--chain"])
        .arg(&path)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("config.osakaTime") && err.contains("genesis.json"), "{err}");
}
