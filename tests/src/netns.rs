//! A lab of Linux network namespaces for real network faults: each node of a [`Testnet`] runs
//! in its own namespace with its own address, all joined by veth links to a bridge that lives
//! in a namespace of its own (nothing is routed beyond the lab). The test process reaches the
//! nodes through one more veth from its own namespace (the lab's `.254`).
//!
//! Faults are nftables rules inside each node's namespace (the kernel has no `netem`):
//! partitions drop traffic to and from the nodes on the other sides; loss drops a random share
//! of the packets a node receives from the other nodes (`numgen random`). Latency is a
//! `tandem-delayer` process in each node's namespace ([`crate::delay`]; the kernel has no
//! `nft_queue` either): a NAT rule redirects the node's TCP connections to the other nodes to
//! it, and it relays them with every chunk late by the delay, so each link between two nodes
//! is delayed once each way, whichever side dialled. The test process's own connections (from
//! the lab's `.254`) are never delayed. Needs root, `ip` (iproute2) and `nft` (nftables);
//! everything is removed on drop.
//!
//! [`Testnet`]: crate::testnet::Testnet

use std::{
    process::{Command, Stdio},
    sync::Mutex,
    time::{Duration, Instant},
};

use crate::{BinaryMissing, ChildGuard, binary};

/// The port the delayer listens on inside each node's namespace (below every node port).
const DELAYER_PORT: u16 = 4999;
/// The `SO_MARK` of the delayer's own connections, which the redirect rule lets through.
const DELAYER_MARK: u32 = 0x7a4d;

/// Why the lab could not be built or changed.
#[derive(Debug, thiserror::Error)]
pub enum LabError {
    /// A command could not run.
    #[error("{cmd}: {source}")]
    Spawn {
        /// The command line.
        cmd: String,
        /// The error.
        source: std::io::Error,
    },
    /// A command failed.
    #[error("{cmd} failed: {stderr}")]
    Failed {
        /// The command line.
        cmd: String,
        /// What it printed.
        stderr: String,
    },
    /// Not root: namespaces cannot be made.
    #[error("network namespaces need root (run the tests as root, as CI does)")]
    NotRoot,
    /// The delayer binary is not built.
    #[error(transparent)]
    Binary(#[from] BinaryMissing),
    /// A delayer did not start listening.
    #[error("the delayer in {namespace} is not listening on port {port} after 10 s")]
    DelayerNotListening {
        /// The node's namespace.
        namespace: String,
        /// Its port.
        port: u16,
    },
}

/// Runs a command, failing with what it printed.
fn run(args: &[&str], stdin: Option<&str>) -> Result<(), LabError> {
    use std::io::Write as _;
    let cmd = args.join(" ");
    let mut child = Command::new(args[0])
        .args(&args[1..])
        .stdin(if stdin.is_some() { Stdio::piped() } else { Stdio::null() })
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|source| LabError::Spawn { cmd: cmd.clone(), source })?;
    if let (Some(text), Some(mut pipe)) = (stdin, child.stdin.take()) {
        pipe.write_all(text.as_bytes())
            .map_err(|source| LabError::Spawn { cmd: cmd.clone(), source })?;
    }
    let out =
        child.wait_with_output().map_err(|source| LabError::Spawn { cmd: cmd.clone(), source })?;
    if !out.status.success() {
        let stderr = String::from_utf8_lossy(&out.stderr).trim().to_string();
        return Err(LabError::Failed { cmd, stderr });
    }
    Ok(())
}

/// Runs a command and returns what it printed on stdout.
fn output(args: &[&str]) -> Result<String, LabError> {
    let cmd = args.join(" ");
    let out = Command::new(args[0])
        .args(&args[1..])
        .stdin(Stdio::null())
        .output()
        .map_err(|source| LabError::Spawn { cmd: cmd.clone(), source })?;
    if !out.status.success() {
        let stderr = String::from_utf8_lossy(&out.stderr).trim().to_string();
        return Err(LabError::Failed { cmd, stderr });
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// A set of namespaces, one per node, on one bridge.
#[derive(Debug)]
pub struct Lab {
    prefix: String,
    subnet: u8,
    nodes: usize,
    /// The delayers of [`Lab::latency`], killed on heal and drop.
    delayers: Mutex<Vec<ChildGuard>>,
}

impl Lab {
    /// Builds a lab of `nodes` namespaces; `slot` keeps concurrent labs apart.
    pub fn new(nodes: usize, slot: u16) -> Result<Self, LabError> {
        let uid = Command::new("id")
            .arg("-u")
            .output()
            .map_err(|source| LabError::Spawn { cmd: "id -u".into(), source })?;
        if String::from_utf8_lossy(&uid.stdout).trim() != "0" {
            return Err(LabError::NotRoot);
        }
        let tag = (std::process::id() as u16).wrapping_add(slot.wrapping_mul(7)) % 200;
        let lab = Self {
            prefix: format!("tn{tag}"),
            subnet: 20 + tag as u8,
            nodes,
            delayers: Mutex::new(Vec::new()),
        };
        lab.remove();
        lab.build()?;
        Ok(lab)
    }

    fn hub(&self) -> String {
        format!("{}-hub", self.prefix)
    }

    /// The namespace of node `i`.
    pub fn namespace(&self, i: usize) -> String {
        format!("{}-n{i}", self.prefix)
    }

    /// The address of node `i`.
    pub fn ip(&self, i: usize) -> String {
        format!("10.231.{}.{}", self.subnet, i + 1)
    }

    /// Every node's address, comma-separated (for `tandem-cl testnet --hosts`).
    pub fn hosts(&self) -> String {
        (0..self.nodes).map(|i| self.ip(i)).collect::<Vec<_>>().join(",")
    }

    /// The prefix that starts a command inside node `i`'s namespace.
    pub fn exec_prefix(&self, i: usize) -> String {
        format!("ip netns exec {}", self.namespace(i))
    }

    fn build(&self) -> Result<(), LabError> {
        let hub = self.hub();
        run(&["ip", "netns", "add", &hub], None)?;
        run(&["ip", "-n", &hub, "link", "set", "lo", "up"], None)?;
        run(&["ip", "-n", &hub, "link", "add", "br0", "type", "bridge"], None)?;
        run(&["ip", "-n", &hub, "link", "set", "br0", "up"], None)?;
        for i in 0..self.nodes {
            let ns = self.namespace(i);
            let veth = format!("{}v{i}", self.prefix);
            run(&["ip", "netns", "add", &ns], None)?;
            run(
                &["ip", "link", "add", &veth, "type", "veth", "peer", "name", "eth0", "netns", &ns],
                None,
            )?;
            run(&["ip", "link", "set", &veth, "netns", &hub], None)?;
            run(&["ip", "-n", &hub, "link", "set", &veth, "master", "br0", "up"], None)?;
            let addr = format!("{}/24", self.ip(i));
            run(&["ip", "-n", &ns, "addr", "add", &addr, "dev", "eth0"], None)?;
            run(&["ip", "-n", &ns, "link", "set", "eth0", "up"], None)?;
            run(&["ip", "-n", &ns, "link", "set", "lo", "up"], None)?;
            self.reset_rules(i)?;
        }
        // The test process's own way in.
        let host = format!("{}h", self.prefix);
        let hub_side = format!("{}hh", self.prefix);
        run(
            &["ip", "link", "add", &host, "type", "veth", "peer", "name", &hub_side, "netns", &hub],
            None,
        )?;
        run(&["ip", "-n", &hub, "link", "set", &hub_side, "master", "br0", "up"], None)?;
        let addr = format!("10.231.{}.254/24", self.subnet);
        run(&["ip", "addr", "add", &addr, "dev", &host], None)?;
        run(&["ip", "link", "set", &host, "up"], None)?;
        Ok(())
    }

    /// Replaces node `i`'s rules with an empty filter table.
    fn reset_rules(&self, i: usize) -> Result<(), LabError> {
        let ns = self.namespace(i);
        let _ =
            run(&["ip", "netns", "exec", &ns, "nft", "delete", "table", "inet", "tandemlab"], None);
        let table = "table inet tandemlab {\n\
            chain input { type filter hook input priority 0; policy accept; }\n\
            chain output { type filter hook output priority 0; policy accept; }\n}\n";
        run(&["ip", "netns", "exec", &ns, "nft", "-f", "-"], Some(table))
    }

    fn add_rules(&self, i: usize, rules: &str) -> Result<(), LabError> {
        let ns = self.namespace(i);
        run(&["ip", "netns", "exec", &ns, "nft", "-f", "-"], Some(rules))
    }

    /// Cuts the network into `sides`: nodes on different sides exchange nothing. Nodes in no
    /// side keep talking to everyone.
    pub fn partition(&self, sides: &[&[usize]]) -> Result<(), LabError> {
        self.heal()?;
        for (k, side) in sides.iter().enumerate() {
            let others: Vec<String> = sides
                .iter()
                .enumerate()
                .filter(|(j, _)| *j != k)
                .flat_map(|(_, s)| s.iter().map(|n| self.ip(*n)))
                .collect();
            if others.is_empty() {
                continue;
            }
            let set = others.join(", ");
            for &i in *side {
                self.add_rules(
                    i,
                    &format!(
                        "add rule inet tandemlab input ip saddr {{ {set} }} drop\n\
                         add rule inet tandemlab output ip daddr {{ {set} }} drop\n"
                    ),
                )?;
            }
        }
        Ok(())
    }

    /// Drops `percent` of the packets every node receives from the other nodes (not from the
    /// test process).
    pub fn loss(&self, percent: u32) -> Result<(), LabError> {
        self.heal()?;
        for i in 0..self.nodes {
            let rule = format!(
                "add rule inet tandemlab input ip saddr 10.231.{s}.0/24 ip saddr != 10.231.{s}.254 \
                 numgen random mod 100 < {percent} drop\n",
                s = self.subnet
            );
            self.add_rules(i, &rule)?;
        }
        Ok(())
    }

    /// Delays every TCP connection between nodes by `delay` each way (so by twice that per
    /// round trip), on top of the faults already set (a partition or loss set later heals it
    /// first). Connections open at the time are reset, so they are dialled again through the
    /// delayers.
    pub fn latency(&self, delay: Duration) -> Result<(), LabError> {
        self.stop_delayers();
        let exe = binary("tandem-delayer")?;
        let exe = exe.to_string_lossy();
        let delay_arg = format!("{}us", delay.as_micros());
        for i in 0..self.nodes {
            let ns = self.namespace(i);
            let guard = ChildGuard::spawn(
                Command::new("ip")
                    .args(["netns", "exec", &ns, &exe, "--listen"])
                    .arg(DELAYER_PORT.to_string())
                    .args(["--delay", &delay_arg, "--mark"])
                    .arg(DELAYER_MARK.to_string())
                    .stdin(Stdio::null())
                    .stdout(Stdio::null()),
            )
            .map_err(|source| LabError::Spawn { cmd: format!("{exe} in {ns}"), source })?;
            self.delayers.lock().unwrap_or_else(|p| p.into_inner()).push(guard);
        }
        for i in 0..self.nodes {
            self.wait_listening(i, DELAYER_PORT)?;
            let others = (0..self.nodes)
                .filter(|j| *j != i)
                .map(|j| self.ip(j))
                .collect::<Vec<_>>()
                .join(", ");
            if others.is_empty() {
                continue;
            }
            // The redirect sees only a connection's first packet, so connections already open
            // would go on undelayed: resetting what the node sends on them (outside the
            // delayer: unmarked, not redirected, not answers to a peer's connection) makes
            // it dial again, through the delayer.
            self.add_rules(
                i,
                &format!(
                    "add chain inet tandemlab delay {{ type nat hook output priority -100; }}\n\
                     add rule inet tandemlab delay meta mark {DELAYER_MARK} return\n\
                     add rule inet tandemlab delay ip daddr {{ {others} }} meta l4proto tcp \
                     redirect to :{DELAYER_PORT}\n\
                     add rule inet tandemlab output ip daddr {{ {others} }} meta l4proto tcp \
                     meta mark != {DELAYER_MARK} ct direction original reject with tcp reset\n"
                ),
            )?;
        }
        Ok(())
    }

    /// Waits until something in node `i`'s namespace listens on TCP `port`.
    fn wait_listening(&self, i: usize, port: u16) -> Result<(), LabError> {
        let ns = self.namespace(i);
        let filter = format!("sport = :{port}");
        let deadline = Instant::now() + Duration::from_secs(10);
        while output(&["ip", "netns", "exec", &ns, "ss", "-tlnH", &filter])?.trim().is_empty() {
            if Instant::now() > deadline {
                return Err(LabError::DelayerNotListening { namespace: ns, port });
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(())
    }

    /// How many connections node `i`'s delayer is relaying now (0 without latency).
    pub fn delayed_connections(&self, i: usize) -> Result<usize, LabError> {
        let ns = self.namespace(i);
        let filter = format!("sport = :{DELAYER_PORT}");
        let out =
            output(&["ip", "netns", "exec", &ns, "ss", "-tnH", "state", "established", &filter])?;
        Ok(out.lines().filter(|l| !l.trim().is_empty()).count())
    }

    /// The time an HTTP/1.0 `GET path` to `host:port` takes from inside node `i`'s namespace:
    /// connect, request, the whole answer (and a shell's start-up, so never less than the
    /// network's share).
    pub fn http_get_time(
        &self,
        i: usize,
        host: &str,
        port: u16,
        path: &str,
    ) -> Result<Duration, LabError> {
        let ns = self.namespace(i);
        let script = format!(
            "exec 3<>/dev/tcp/{host}/{port} && \
             printf 'GET {path} HTTP/1.0\\r\\nHost: {host}\\r\\n\\r\\n' >&3 && \
             cat <&3 >/dev/null"
        );
        let started = Instant::now();
        run(&["ip", "netns", "exec", &ns, "bash", "-c", &script], None)?;
        Ok(started.elapsed())
    }

    fn stop_delayers(&self) {
        // Dropping the guards kills the processes; their connections close with them.
        self.delayers.lock().unwrap_or_else(|p| p.into_inner()).clear();
    }

    /// Removes every fault.
    pub fn heal(&self) -> Result<(), LabError> {
        (0..self.nodes).try_for_each(|i| self.reset_rules(i))?;
        self.stop_delayers();
        Ok(())
    }

    fn remove(&self) {
        self.stop_delayers();
        for i in 0..self.nodes {
            let _ = run(&["ip", "netns", "del", &self.namespace(i)], None);
        }
        let _ = run(&["ip", "netns", "del", &self.hub()], None);
        let _ = run(&["ip", "link", "del", &format!("{}h", self.prefix)], None);
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        self.remove();
    }
}
