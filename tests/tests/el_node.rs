//! `tandem-el node` as a process: dev mode produces blocks, SIGTERM/SIGINT shut it down cleanly
//! (exit 0, canonical chain persisted), and a restart resumes at the same head.

#![allow(clippy::unwrap_used)]

use std::{
    io::{Read, Write},
    net::{SocketAddr, TcpListener, TcpStream},
    path::Path,
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use serde_json::{Value, json};
use tandem_e2e::{ChildGuard, binary};
use tandem_shared::jwt;

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|a| a.port()).unwrap()
}

fn block_number(addr: SocketAddr, datadir: &Path) -> Option<u64> {
    let secret = jwt::read_secret(&datadir.join("jwt.hex")).ok()?;
    let token = jwt::issue_token(&secret, jwt::unix_now()).ok()?;
    let body =
        json!({ "jsonrpc": "2.0", "id": 1, "method": "eth_blockNumber", "params": [] }).to_string();
    let mut stream = TcpStream::connect(addr).ok()?;
    let request = format!(
        "POST / HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\nAuthorization: Bearer {token}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(request.as_bytes()).ok()?;
    let mut response = String::new();
    stream.read_to_string(&mut response).ok()?;
    let json_start = response.find('{')?;
    let value: Value =
        serde_json::from_str(response[json_start..].trim_end_matches(|c| c != '}')).ok()?;
    u64::from_str_radix(value["result"].as_str()?.trim_start_matches("0x"), 16).ok()
}

fn start_dev(datadir: &Path, port: u16) -> ChildGuard {
    ChildGuard::spawn(
        Command::new(binary("tandem-el").unwrap())
            .args(["node", "--dev", "--dev.block-time", "100ms", "--datadir"])
            .arg(datadir)
            .args(["--authrpc.port", &port.to_string(), "--p2p.port", "0"])
            .stdout(Stdio::null())
            .stderr(Stdio::null()),
    )
    .unwrap()
}

fn wait_for_height(addr: SocketAddr, datadir: &Path, height: u64) -> u64 {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(n) = block_number(addr, datadir)
            && n >= height
        {
            return n;
        }
        assert!(Instant::now() < deadline, "no block {height} within 30 s");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn stop_with(signal: &str, mut child: ChildGuard) {
    let status = Command::new("kill").args([signal, &child.id().to_string()]).status().unwrap();
    assert!(status.success());
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Some(exit) = child.0.try_wait().unwrap() {
            assert!(exit.success(), "{signal} exit status {exit}");
            return;
        }
        assert!(Instant::now() < deadline, "no exit within 20 s of {signal}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn dev_node_stops_cleanly_and_resumes() {
    let dir = tempfile::tempdir().unwrap();
    let datadir = dir.path().join("dev");
    let port = free_port();
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let node = start_dev(&datadir, port);
    wait_for_height(addr, &datadir, 3);
    stop_with("-TERM", node);
    // Every block the node had was persisted on shutdown: the restart starts at or above it.
    let before = {
        let node = start_dev(&datadir, port);
        let n = wait_for_height(addr, &datadir, 1);
        stop_with("-INT", node);
        n
    };
    assert!(before >= 3, "restart resumed at {before}, below the height reached before SIGTERM");
    let node = start_dev(&datadir, port);
    let after = wait_for_height(addr, &datadir, before);
    assert!(after >= before);
    drop(node);
}

#[test]
fn foreign_data_dir_is_refused_untouched() {
    let dir = tempfile::tempdir().unwrap();
    let datadir = dir.path().join("el");
    std::fs::create_dir_all(datadir.join("db")).unwrap();
    std::fs::write(datadir.join("db").join("mdbx.dat"), b"definitely not an MDBX file").unwrap();
    let out = Command::new(binary("tandem-el").unwrap())
        .args(["node", "--dev", "--datadir"])
        .arg(&datadir)
        .args(["--authrpc.port", &free_port().to_string(), "--p2p.port", "0"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.to_lowercase().contains("database"), "{err}");
    assert_eq!(
        std::fs::read(datadir.join("db").join("mdbx.dat")).unwrap(),
        b"definitely not an MDBX file"
    );
}
