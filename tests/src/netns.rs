//! A lab of Linux network namespaces for real network faults: each node of a [`Testnet`] runs
//! in its own namespace with its own address, all joined by veth links to a bridge that lives
//! in a namespace of its own (nothing is routed beyond the lab). The test process reaches the
//! nodes through one more veth from its own namespace (the lab's `.254`).
//!
//! Faults are nftables rules inside each node's namespace (the kernel has no `netem`):
//! partitions drop traffic to and from the nodes on the other sides; loss drops a random share
//! of the packets a node receives from the other nodes (`numgen random`). Latency is not
//! injected. Needs root, `ip` (iproute2) and `nft` (nftables); everything is removed on drop.
//!
//! [`Testnet`]: crate::testnet::Testnet

use std::process::{Command, Stdio};

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

/// A set of namespaces, one per node, on one bridge.
#[derive(Debug)]
pub struct Lab {
    prefix: String,
    subnet: u8,
    nodes: usize,
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
        let lab = Self { prefix: format!("tn{tag}"), subnet: 20 + tag as u8, nodes };
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

    /// Removes every fault.
    pub fn heal(&self) -> Result<(), LabError> {
        (0..self.nodes).try_for_each(|i| self.reset_rules(i))
    }

    fn remove(&self) {
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
