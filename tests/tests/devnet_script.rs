//! `scripts/devnet`, the README's first command, on a one-validator network of the binaries
//! this test run built: `up` starts and finalizes, `status --json` has the documented shape,
//! `stop`/`start` one node, `up` again is harmless, a taken port is named, `down` stops exactly
//! the processes it started, `reset` removes the directory.

#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use serde_json::Value;
use tandem_e2e::binary;

fn script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/devnet")
}

fn devnet(dir: &Path, args: &[&str]) -> Output {
    let bin_dir = binary("tandem-el").unwrap().parent().unwrap().to_path_buf();
    Command::new("bash")
        .arg(script())
        .args(args)
        .arg("--dir")
        .arg(dir)
        .env("TANDEM_BIN_DIR", bin_dir)
        .env("TANDEM_DEVNET_WAIT_SECS", "120")
        .output()
        .unwrap()
}

fn text(o: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr))
}

fn status(dir: &Path) -> Value {
    let o = devnet(dir, &["status", "--json"]);
    assert!(o.status.success(), "{}", text(&o));
    serde_json::from_slice(&o.stdout).unwrap()
}

fn alive(pid: u64) -> bool {
    // A zombie is not alive; nothing reaps the script's orphans but init, so read the state.
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map(|s| s.split_whitespace().nth(2).is_none_or(|st| st != "Z"))
        .unwrap_or(false)
}

/// Stops whatever the script started if an assertion fails half-way.
struct Down<'a>(&'a Path);
impl Drop for Down<'_> {
    fn drop(&mut self) {
        let _ = devnet(self.0, &["down"]);
    }
}

#[test]
fn devnet_script_up_status_stop_start_down_reset() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("devnet");
    let offset = tandem_e2e::testnet::port_offset(3).to_string();
    let _down = Down(&dir);

    let up = devnet(
        &dir,
        &["up", "--validators", "1", "--followers", "1", "--no-build", "--port-offset", &offset],
    );
    let out = text(&up);
    assert!(up.status.success(), "{out}");
    assert!(out.contains("chain id 1337"), "{out}");
    assert!(out.contains("(follower)"), "{out}");
    assert!(out.contains("0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80"));
    assert!(out.contains("cast send --rpc-url http://127.0.0.1:"), "{out}");

    let s = status(&dir);
    let node = &s["nodes"][0];
    let keys: Vec<&str> = node.as_object().unwrap().keys().map(String::as_str).collect();
    for k in [
        "name",
        "http",
        "ws",
        "engine",
        "el_pid",
        "cl_pid",
        "head",
        "finalized",
        "el_peers",
        "cl_peers",
    ] {
        assert!(keys.contains(&k), "{k} missing from {node}");
    }
    assert_eq!(node["name"], "node0");
    assert!(node["http"].as_str().unwrap().starts_with("http://127.0.0.1:"));
    assert!(node["finalized"].as_u64().unwrap() >= 1, "{node}");
    // `up` waited for every node, the follower included, to see a finalized block.
    assert!(s["nodes"][1]["finalized"].as_u64().unwrap() >= 1, "{s}");
    let (el, cl) = (node["el_pid"].as_u64().unwrap(), node["cl_pid"].as_u64().unwrap());
    assert!(alive(el) && alive(cl));

    // Stop and start one node by name.
    let o = devnet(&dir, &["stop", "node0"]);
    assert!(o.status.success(), "{}", text(&o));
    // Both exit on SIGTERM, without the script's fallback to SIGKILL after 10 s.
    assert!(!text(&o).contains("did not stop"), "{}", text(&o));
    assert!(!alive(el) && !alive(cl));
    let s = status(&dir);
    assert!(s["nodes"][0]["el_pid"].is_null() && s["nodes"][0]["head"].is_null(), "{s}");
    let o = devnet(&dir, &["stop", "node7"]);
    assert!(!o.status.success() && text(&o).contains("unknown node 'node7'"), "{}", text(&o));
    let o = devnet(&dir, &["start", "node0"]);
    assert!(o.status.success(), "{}", text(&o));
    let deadline = Instant::now() + Duration::from_secs(60);
    let before = node["head"].as_u64().unwrap();
    loop {
        let head = status(&dir)["nodes"][0]["head"].as_u64();
        if head.is_some_and(|h| h > before) {
            break;
        }
        assert!(Instant::now() < deadline, "restarted node did not produce blocks");
        std::thread::sleep(Duration::from_millis(300));
    }

    // `up` again reuses what runs; another size is refused until a reset.
    let again = devnet(&dir, &["up", "--validators", "1", "--followers", "1", "--no-build"]);
    assert!(again.status.success() && text(&again).contains("already running"), "{}", text(&again));
    let other = devnet(&dir, &["up", "--validators", "2", "--no-build"]);
    assert!(!other.status.success() && text(&other).contains("reset"), "{}", text(&other));

    // `down` stops exactly the processes it started.
    let s = status(&dir);
    let (el, cl) =
        (s["nodes"][0]["el_pid"].as_u64().unwrap(), s["nodes"][0]["cl_pid"].as_u64().unwrap());
    let o = devnet(&dir, &["down"]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(!alive(el) && !alive(cl));

    // A taken port is named instead of a node dying later.
    let http_port: u16 =
        s["nodes"][0]["http"].as_str().unwrap().rsplit(':').next().unwrap().parse().unwrap();
    let blocker = std::net::TcpListener::bind(("127.0.0.1", http_port)).unwrap();
    let o = devnet(&dir, &["start", "node0"]);
    assert!(!o.status.success(), "{}", text(&o));
    assert!(
        text(&o).contains(&format!("port {http_port} (node0 http) is already in use")),
        "{}",
        text(&o)
    );
    drop(blocker);

    let o = devnet(&dir, &["reset"]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(!dir.exists());
}
