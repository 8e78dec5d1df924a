//! A local network of real processes for end-to-end tests: `tandem-cl testnet` generates it,
//! and each node is a `tandem-el` and a `tandem-cl` process started from the manifest's command
//! lines, with logs in the testnet directory. Every process dies with the [`Testnet`].

use crate::{BinaryMissing, ChildGuard, binary};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Why a testnet could not be set up or driven.
#[derive(Debug, thiserror::Error)]
pub enum TestnetError {
    /// A binary is missing.
    #[error(transparent)]
    Binary(#[from] BinaryMissing),
    /// A process or file operation failed.
    #[error("{what}: {source}")]
    Io {
        /// What was being done.
        what: String,
        /// The error.
        source: std::io::Error,
    },
    /// `tandem-cl testnet` failed or wrote something unexpected.
    #[error("testnet generation: {0}")]
    Generate(String),
    /// A condition was not reached in time.
    #[error("timed out after {secs} s waiting for {what}")]
    Timeout {
        /// What was awaited.
        what: String,
        /// The time limit.
        secs: u64,
    },
}

fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> TestnetError {
    let what = what.into();
    move |source| TestnetError::Io { what, source }
}

/// The running processes of one node.
#[derive(Debug)]
struct Running {
    el: ChildGuard,
    cl: ChildGuard,
}

/// A generated network and whichever of its nodes are running.
#[derive(Debug)]
pub struct Testnet {
    /// The testnet directory (inside a temporary directory removed on drop).
    pub dir: PathBuf,
    /// Each node's manifest entry (`name`, `ports`, `el_command`, `cl_command`, ...).
    pub nodes: Vec<Value>,
    running: Vec<Option<Running>>,
    tmp: Option<tempfile::TempDir>,
    /// A command each node's processes are started through (`ip netns exec NS`), if any.
    wrap: Vec<Option<String>>,
}

impl Drop for Testnet {
    fn drop(&mut self) {
        // Processes first (their guards kill them), then the directory — kept when a test
        // fails, so its logs can be read.
        self.running.clear();
        if std::thread::panicking()
            && let Some(tmp) = self.tmp.take()
        {
            eprintln!("testnet logs kept in {}", tmp.keep().display());
        }
    }
}

impl Testnet {
    /// Generates an `n`-validator network whose ports are shifted by an offset derived from
    /// `slot` and the process id, so concurrent test binaries do not collide.
    pub fn generate(n: usize, slot: u16) -> Result<Self, TestnetError> {
        Self::generate_with(n, 0, slot, &[])
    }

    /// [`Testnet::generate`] with `followers` non-validator nodes after the validators and
    /// `cl_args` appended to every CL command line.
    pub fn generate_with(
        validators: usize,
        followers: usize,
        slot: u16,
        cl_args: &[&str],
    ) -> Result<Self, TestnetError> {
        Self::generate_opts(validators, followers, slot, cl_args, &[])
    }

    /// [`Testnet::generate_with`] with `testnet_args` passed to `tandem-cl testnet` (e.g. `--l1`).
    pub fn generate_opts(
        validators: usize,
        followers: usize,
        slot: u16,
        cl_args: &[&str],
        testnet_args: &[&str],
    ) -> Result<Self, TestnetError> {
        let n = validators + followers;
        let tmp = tempfile::tempdir().map_err(io("temp dir"))?;
        let dir = tmp.path().join("net");
        let offset = port_offset(slot);
        let status = Command::new(binary("tandem-cl")?)
            .args(["testnet", "--validators", &validators.to_string()])
            .args(["--followers", &followers.to_string(), "--out"])
            .arg(&dir)
            .args(["--port-offset", &offset.to_string()])
            .args(testnet_args)
            .stdout(Stdio::null())
            .status()
            .map_err(io("tandem-cl testnet"))?;
        if !status.success() {
            return Err(TestnetError::Generate(format!("tandem-cl testnet exited with {status}")));
        }
        let manifest_path = dir.join("testnet.json");
        let text = std::fs::read(&manifest_path).map_err(io("read testnet.json"))?;
        let manifest: Value = serde_json::from_slice(&text)
            .map_err(|e| TestnetError::Generate(format!("testnet.json: {e}")))?;
        let mut nodes = manifest["nodes"].as_array().cloned().unwrap_or_default();
        for node in &mut nodes {
            if let Some(line) = node["cl_command"].as_str() {
                let extended = cl_args.iter().fold(line.to_string(), |l, a| format!("{l} {a}"));
                node["cl_command"] = Value::String(extended);
            }
        }
        if nodes.len() != n {
            return Err(TestnetError::Generate(format!("{} nodes, expected {n}", nodes.len())));
        }
        let running = nodes.iter().map(|_| None).collect();
        let wrap = nodes.iter().map(|_| None).collect();
        Ok(Self { dir, nodes, running, tmp: Some(tmp), wrap })
    }

    /// Number of nodes.
    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    /// Whether the network has no nodes.
    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }

    /// The address node `i` listens on (`127.0.0.1` unless generated with `--hosts`).
    pub fn host(&self, i: usize) -> String {
        self.nodes[i]["host"].as_str().unwrap_or("127.0.0.1").to_string()
    }

    /// The EL JSON-RPC URL of node `i`.
    pub fn http(&self, i: usize) -> String {
        let port = self.nodes[i]["ports"]["http"].as_u64().unwrap_or(0);
        format!("http://{}:{port}", self.host(i))
    }

    /// The CL status URL (`/status`) of node `i`.
    pub fn status_url(&self, i: usize) -> String {
        let port = self.nodes[i]["ports"]["cl_http"].as_u64().unwrap_or(0);
        format!("http://{}:{port}/status", self.host(i))
    }

    /// Starts node `i`'s processes through `prefix` (e.g. `ip netns exec NS`) from now on.
    pub fn run_through(&mut self, i: usize, prefix: &str) {
        self.wrap[i] = Some(prefix.to_string());
    }

    /// The EL JSON-RPC URLs of all nodes.
    pub fn urls(&self) -> Vec<String> {
        (0..self.len()).map(|i| self.http(i)).collect()
    }

    fn spawn(&self, line: &str, log: &Path) -> Result<ChildGuard, TestnetError> {
        let out = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .map_err(io(format!("open {}", log.display())))?;
        let err = out.try_clone().map_err(io("clone log handle"))?;
        ChildGuard::spawn(
            Command::new("sh")
                .arg("-c")
                .arg(format!("exec {line}"))
                .stdout(Stdio::from(out))
                .stderr(Stdio::from(err)),
        )
        .map_err(io(format!("spawn {line}")))
    }

    /// Starts node `i` (EL then CL) unless it is running.
    pub fn start(&mut self, i: usize) -> Result<(), TestnetError> {
        if self.running[i].is_some() {
            return Ok(());
        }
        let node = &self.nodes[i];
        let name = node["name"].as_str().unwrap_or("node");
        let line = |key: &str| {
            let cmd = node[key].as_str().unwrap_or_default();
            match &self.wrap[i] {
                Some(prefix) => format!("{prefix} {cmd}"),
                None => cmd.to_string(),
            }
        };
        let el = self.spawn(&line("el_command"), &self.dir.join(format!("{name}-el.log")))?;
        let cl = self.spawn(&line("cl_command"), &self.dir.join(format!("{name}-cl.log")))?;
        self.running[i] = Some(Running { el, cl });
        Ok(())
    }

    /// Kills node `i`'s CL and EL with SIGKILL (a crash: no shutdown path runs).
    pub fn kill(&mut self, i: usize) {
        // Dropping the guards sends SIGKILL and reaps the processes.
        self.running[i] = None;
    }

    /// Stops node `i` with SIGTERM (CL first, then EL) and waits for both to exit.
    pub fn stop(&mut self, i: usize) -> Result<(), TestnetError> {
        let Some(mut running) = self.running[i].take() else { return Ok(()) };
        for child in [&mut running.cl, &mut running.el] {
            Command::new("kill")
                .args(["-TERM", &child.id().to_string()])
                .status()
                .map_err(io("kill -TERM"))?;
            let deadline = Instant::now() + Duration::from_secs(20);
            while child.0.try_wait().map_err(io("wait"))?.is_none() {
                if Instant::now() > deadline {
                    return Err(TestnetError::Timeout { what: "a node to stop".into(), secs: 20 });
                }
                std::thread::sleep(Duration::from_millis(50));
            }
        }
        Ok(())
    }

    /// Freezes (`SIGSTOP`) or resumes (`SIGCONT`) node `i`'s CL and EL.
    pub fn signal(&self, i: usize, signal: &str) -> Result<(), TestnetError> {
        let Some(running) = &self.running[i] else { return Ok(()) };
        for child in [&running.cl, &running.el] {
            Command::new("kill")
                .args([&format!("-{signal}"), &child.id().to_string()])
                .status()
                .map_err(io(format!("kill -{signal}")))?;
        }
        Ok(())
    }

    /// Whether node `i`'s CL and EL processes are both still running (neither has exited).
    pub fn is_alive(&mut self, i: usize) -> bool {
        let Some(running) = self.running[i].as_mut() else { return false };
        [&mut running.cl, &mut running.el].into_iter().all(|c| matches!(c.0.try_wait(), Ok(None)))
    }

    /// Whether node `i` is running (as far as this handle knows).
    pub fn is_running(&self, i: usize) -> bool {
        self.running[i].is_some()
    }

    /// The last `lines` lines of each log of node `i`, for failure messages.
    pub fn log_tail(&self, i: usize, lines: usize) -> String {
        let name = self.nodes[i]["name"].as_str().unwrap_or("node");
        let mut out = String::new();
        for part in ["el", "cl"] {
            let path = self.dir.join(format!("{name}-{part}.log"));
            let text = std::fs::read_to_string(&path).unwrap_or_default();
            let all: Vec<&str> = text.lines().collect();
            out.push_str(&format!("--- {name}-{part}\n"));
            for l in &all[all.len().saturating_sub(lines)..] {
                out.push_str(l);
                out.push('\n');
            }
        }
        out
    }
}

/// A `tandem-cl testnet --port-offset` for a test network: varied by process and `slot` so
/// concurrent test runs rarely meet, a multiple of 300 so two networks' 9000/9100/9200 port
/// families never interleave, and small enough that every port (the largest family starts at
/// 30303) stays below Linux's ephemeral range (32768 and up), where outgoing connections
/// would take them.
pub fn port_offset(slot: u16) -> u16 {
    let pid = std::process::id() as u16;
    600 + (pid.wrapping_add(slot) % 6) * 300
}

/// Minimal JSON-RPC over HTTP with a short time-out (a stopped node answers `None`).
pub async fn rpc(url: &str, method: &str, params: Value) -> Option<Value> {
    let body = serde_json::json!({"jsonrpc": "2.0", "id": 1, "method": method, "params": params});
    let client = reqwest::Client::builder().timeout(Duration::from_secs(3)).build().ok()?;
    let reply: Value = client.post(url).json(&body).send().await.ok()?.json().await.ok()?;
    reply.get("result").cloned()
}

/// A block header field as a number.
fn quantity(v: &Value) -> Option<u64> {
    u64::from_str_radix(v.as_str()?.trim_start_matches("0x"), 16).ok()
}

/// The number of the block a node reports under `tag` (`latest`, `finalized`, ...).
pub async fn height(url: &str, tag: &str) -> Option<u64> {
    let block = rpc(url, "eth_getBlockByNumber", serde_json::json!([tag, false])).await?;
    quantity(&block["number"])
}

/// `(hash, stateRoot)` of block `n` on a node.
pub async fn hash_and_root(url: &str, n: u64) -> Option<(String, String)> {
    let block =
        rpc(url, "eth_getBlockByNumber", serde_json::json!([format!("{n:#x}"), false])).await?;
    Some((block["hash"].as_str()?.to_string(), block["stateRoot"].as_str()?.to_string()))
}

/// Waits until every URL reports a block at or above `target` under `tag`.
pub async fn wait_all(
    urls: &[String],
    tag: &str,
    target: u64,
    secs: u64,
) -> Result<(), TestnetError> {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        let mut lowest = u64::MAX;
        for u in urls {
            lowest = lowest.min(height(u, tag).await.unwrap_or(0));
        }
        if lowest >= target {
            return Ok(());
        }
        if Instant::now() > deadline {
            return Err(TestnetError::Timeout {
                what: format!("{tag} >= {target} on {urls:?} (lowest {lowest})"),
                secs,
            });
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// The block number of a transaction's receipt on `url`, if it has one.
pub async fn receipt_block(url: &str, hash: alloy_primitives::B256) -> Option<u64> {
    let r = rpc(url, "eth_getTransactionReceipt", serde_json::json!([hash])).await?;
    u64::from_str_radix(r["blockNumber"].as_str()?.trim_start_matches("0x"), 16).ok()
}

/// Waits until every hash has a receipt in a finalized block on every URL.
pub async fn wait_finalized_receipts(
    urls: &[String],
    hashes: &[alloy_primitives::B256],
    secs: u64,
) -> Result<(), TestnetError> {
    let deadline = Instant::now() + Duration::from_secs(secs);
    for u in urls {
        for h in hashes {
            loop {
                if let Some(n) = receipt_block(u, *h).await
                    && height(u, "finalized").await.unwrap_or(0) >= n
                {
                    break;
                }
                if Instant::now() > deadline {
                    return Err(TestnetError::Timeout {
                        what: format!("a finalized receipt of {h} on {u}"),
                        secs,
                    });
                }
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    }
    Ok(())
}
