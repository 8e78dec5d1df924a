//! `tandem-cl testnet`: everything a local N-validator network needs, in one directory.
//!
//! Layout of `DIR`:
//! - `el-genesis.json`: the EL genesis (Prague at genesis, the Prague system contracts, the dev
//!   accounts of [`DEV_MNEMONIC`] funded, `config.tandem.subSecondBlocks` unless disabled, in
//!   which case it is a standard file any Ethereum EL accepts);
//! - `consensus-genesis.json`: [`ConsensusGenesis`] (validators with keys and peer ids, chain
//!   id, EL genesis hash, fork times, `subSecondBlocks`);
//! - `nodeI/`: `validator.key`, `p2p.key`, `jwt.hex`, `el/` and `cl/` data dirs; followers
//!   (non-validators, numbered after the validators) have no `validator.key` and their CL
//!   creates its libp2p key on first start;
//! - `testnet.json`: [`Manifest`], the ports and complete command lines of every node, so
//!   `scripts/devnet` (or anything else) can start them, or start another EL with the same
//!   genesis, JWT secret and ports.
//!
//! Ports of node i (plus `port_offset`): EL http 8545+10i, ws 8546+10i, authrpc 8551+10i, EL
//! p2p 30303+i, CL p2p 9000+i, CL http 5052+i, EL metrics 9100+i, CL metrics 9200+i.

use crate::engine_client::ForkSchedule;
use crate::genesis::{ConsensusGenesis, GenesisValidator};
use crate::keys::{self, KeyError};
use alloy_primitives::{Address, U256};
use alloy_signer_local::MnemonicBuilder;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use tandem_shared::ChainSpec;
use thiserror::Error;

/// The dev mnemonic (Hardhat/Anvil/Foundry's).
pub const DEV_MNEMONIC: &str = "test test test test test test test test test test test junk";
/// Accounts of the mnemonic always funded.
pub const MIN_DEV_ACCOUNTS: u32 = 10;
/// Balance of each dev account: 1,000,000 ETH in wei.
pub fn dev_balance() -> U256 {
    U256::from(1_000_000u64) * U256::from(10u64).pow(U256::from(18u64))
}

/// What to generate.
#[derive(Debug, Clone)]
pub struct TestnetParams {
    /// Number of validators.
    pub validators: usize,
    /// Number of follower nodes (a CL without a validator key, and an EL).
    pub followers: usize,
    /// Output directory (created; must not already hold a testnet).
    pub out: PathBuf,
    /// Chain id.
    pub chain_id: u64,
    /// Derived accounts to fund (at least [`MIN_DEV_ACCOUNTS`]).
    pub dev_accounts: u32,
    /// Whether blocks may share their parent's timestamp.
    pub sub_second_blocks: bool,
    /// Whether the EL genesis enables the native L1 exchange (`config.tandem.l1`).
    pub l1: bool,
    /// Directory of the `tandem-el` and `tandem-cl` binaries.
    pub bin_dir: PathBuf,
    /// Added to every port (to run several testnets on one host).
    pub port_offset: u16,
    /// EL genesis timestamp (seconds).
    pub genesis_timestamp: u64,
    /// Each node's address (its p2p, JSON-RPC, status and metrics listen there and peers dial
    /// it; the Engine API stays on the node's own loopback); empty: every node on 127.0.0.1.
    pub hosts: Vec<std::net::IpAddr>,
}

/// An address as the host part of `host:port`.
fn socket_host(ip: std::net::IpAddr) -> String {
    match ip {
        std::net::IpAddr::V4(a) => a.to_string(),
        std::net::IpAddr::V6(a) => format!("[{a}]"),
    }
}

/// Ports of one node.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ports {
    /// EL JSON-RPC over HTTP.
    pub http: u16,
    /// EL JSON-RPC over WebSocket.
    pub ws: u16,
    /// EL Engine API (JWT).
    pub authrpc: u16,
    /// EL peer-to-peer.
    pub el_p2p: u16,
    /// CL peer-to-peer.
    pub cl_p2p: u16,
    /// CL status endpoint.
    pub cl_http: u16,
    /// EL Prometheus metrics.
    pub el_metrics: u16,
    /// CL Prometheus metrics.
    pub cl_metrics: u16,
}

impl Ports {
    /// The ports of node `i`, `None` when one would exceed 65535.
    pub fn of(i: u16, offset: u16) -> Option<Self> {
        let port = |base: u32, step: u32| {
            u16::try_from(base + step * u32::from(i) + u32::from(offset)).ok()
        };
        Some(Self {
            http: port(8545, 10)?,
            ws: port(8546, 10)?,
            authrpc: port(8551, 10)?,
            el_p2p: port(30303, 1)?,
            cl_p2p: port(9000, 1)?,
            cl_http: port(5052, 1)?,
            el_metrics: port(9100, 1)?,
            cl_metrics: port(9200, 1)?,
        })
    }
}

/// One node of `testnet.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ManifestNode {
    /// `node0`, `node1`, …
    pub name: String,
    /// Whether the node is a validator (`false`: a follower).
    #[serde(default = "validator_default")]
    pub validator: bool,
    /// Absolute path of the EL genesis.
    pub el_genesis: PathBuf,
    /// Absolute path of the node's JWT secret.
    pub jwt_secret: PathBuf,
    /// Its ports.
    pub ports: Ports,
    /// Its address (`127.0.0.1` unless `--hosts` gave one).
    #[serde(default = "localhost")]
    pub host: std::net::IpAddr,
    /// Shell line starting its EL.
    pub el_command: String,
    /// Shell line starting its CL.
    pub cl_command: String,
}

fn validator_default() -> bool {
    true
}

fn localhost() -> std::net::IpAddr {
    std::net::IpAddr::from([127, 0, 0, 1])
}

/// `testnet.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    /// Chain id.
    pub chain_id: u64,
    /// The nodes.
    pub nodes: Vec<ManifestNode>,
}

/// Why generation failed.
#[derive(Debug, Error)]
pub enum TestnetError {
    /// A file could not be written.
    #[error("{path}: {source}")]
    Io {
        /// The path.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// A key could not be written.
    #[error(transparent)]
    Key(#[from] KeyError),
    /// Bad parameters.
    #[error("{0}")]
    Params(String),
    /// Account derivation failed.
    #[error("deriving dev account {index}: {reason}")]
    Mnemonic {
        /// Account index.
        index: u32,
        /// The error.
        reason: String,
    },
    /// The generated EL genesis did not load (a generator bug).
    #[error("generated EL genesis is invalid: {0}")]
    Genesis(String),
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> TestnetError + '_ {
    move |source| TestnetError::Io { path: path.to_path_buf(), source }
}

/// Addresses m/44'/60'/0'/0/i of [`DEV_MNEMONIC`] for i < max(10, count).
pub fn dev_accounts(count: u32) -> Result<Vec<Address>, TestnetError> {
    let parent = MnemonicBuilder::from_phrase(DEV_MNEMONIC)
        .build_parent_key()
        .map_err(|e| TestnetError::Mnemonic { index: 0, reason: e.to_string() })?;
    (0..count.max(MIN_DEV_ACCOUNTS))
        .map(|index| {
            parent
                .child(index)
                .map(|k| k.signer().address())
                .map_err(|e| TestnetError::Mnemonic { index, reason: e.to_string() })
        })
        .collect()
}

/// Test USD each dev account holds on an L1 devnet: 10,000,000 TUSD (6 decimals).
pub fn dev_usd_balance() -> U256 {
    U256::from(10_000_000_000_000u64)
}

/// The EL genesis JSON. With `l1`, the L1 exchange is enabled with the devnet configuration:
/// the last three dev accounts publish oracle prices, account 5 collects fees, account 6 is the
/// backstop, and every dev account holds [`dev_usd_balance`] of the test USD token.
pub fn el_genesis(
    chain_id: u64,
    timestamp: u64,
    sub_second_blocks: bool,
    l1: bool,
    accounts: &[Address],
) -> Value {
    let mut alloc = serde_json::Map::new();
    for (address, account) in tandem_shared::system_contracts::prague_system_contracts() {
        alloc.insert(format!("{address:#x}"), serde_json::to_value(account).unwrap_or_default());
    }
    for a in accounts {
        alloc.insert(format!("{a:#x}"), json!({ "balance": format!("{:#x}", dev_balance()) }));
    }
    let mut config = json!({
        "chainId": chain_id,
        "homesteadBlock": 0, "eip150Block": 0, "eip155Block": 0, "eip158Block": 0,
        "byzantiumBlock": 0, "constantinopleBlock": 0, "petersburgBlock": 0,
        "istanbulBlock": 0, "berlinBlock": 0, "londonBlock": 0, "mergeNetsplitBlock": 0,
        "terminalTotalDifficulty": 0, "terminalTotalDifficultyPassed": true,
        "shanghaiTime": 0, "cancunTime": 0, "pragueTime": 0,
        "depositContractAddress": tandem_shared::system_contracts::DEPOSIT_CONTRACT,
        "blobSchedule": {
            "cancun": { "target": 3, "max": 6, "baseFeeUpdateFraction": 3338477 },
            "prague": { "target": 6, "max": 9, "baseFeeUpdateFraction": 5007716 }
        }
    });
    let mut tandem = serde_json::Map::new();
    if sub_second_blocks {
        tandem.insert("subSecondBlocks".into(), json!(true));
    }
    if l1 && accounts.len() >= 10 {
        use tandem_shared::l1_genesis::{TEST_USD_ADDRESS, devnet_config, test_usd_account};
        let holders: Vec<(Address, U256)> =
            accounts.iter().map(|a| (*a, dev_usd_balance())).collect();
        alloc.insert(
            format!("{TEST_USD_ADDRESS:#x}"),
            serde_json::to_value(test_usd_account(&holders)).unwrap_or_default(),
        );
        tandem.insert("l1".into(), devnet_config(&accounts[7..10], accounts[5], accounts[6]));
    }
    if !tandem.is_empty()
        && let Some(c) = config.as_object_mut()
    {
        c.insert("tandem".into(), Value::Object(tandem));
    }
    json!({
        "config": config,
        "nonce": "0x0",
        "timestamp": format!("{timestamp:#x}"),
        "extraData": "0x",
        "gasLimit": "0x3938700",
        "difficulty": "0x0",
        "mixHash": "0x0000000000000000000000000000000000000000000000000000000000000000",
        "coinbase": "0x0000000000000000000000000000000000000000",
        "baseFeePerGas": "0x3b9aca00",
        "alloc": alloc
    })
}

fn shell_quote(s: &str) -> String {
    if !s.is_empty() && s.chars().all(|c| c.is_ascii_alphanumeric() || "/._-:=,@".contains(c)) {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', r"'\''"))
    }
}

fn command(bin: &Path, args: &[String]) -> String {
    let mut out = shell_quote(&bin.display().to_string());
    for a in args {
        out.push(' ');
        out.push_str(&shell_quote(a));
    }
    out
}

/// File in an EL data dir holding its libp2p identity (what `tandem-el node` reads).
const EL_P2P_KEY_FILE: &str = "p2p.key";

/// Writes a new libp2p identity for an EL (protobuf encoding, mode 0600) and returns its peer id.
fn write_el_p2p_key(path: &Path) -> Result<libp2p::PeerId, TestnetError> {
    let keypair = libp2p::identity::Keypair::generate_ed25519();
    let bytes = keypair
        .to_protobuf_encoding()
        .map_err(|e| TestnetError::Params(format!("encode EL p2p key: {e}")))?;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options.open(path).map_err(io(path))?;
    std::io::Write::write_all(&mut file, &bytes).map_err(io(path))?;
    Ok(keypair.public().to_peer_id())
}

/// Writes the testnet and returns its manifest.
pub fn generate(params: &TestnetParams) -> Result<Manifest, TestnetError> {
    if params.validators == 0 || params.validators > 1000 {
        return Err(TestnetError::Params(format!(
            "--validators must be between 1 and 1000, got {}",
            params.validators
        )));
    }
    let total = params.validators + params.followers;
    let last = u16::try_from(total.saturating_sub(1)).unwrap_or(u16::MAX);
    if Ports::of(last, params.port_offset).is_none() {
        return Err(TestnetError::Params(format!(
            "--port-offset {} with {total} nodes puts ports above 65535",
            params.port_offset
        )));
    }
    if params.chain_id == 0 {
        return Err(TestnetError::Params("--chain-id must be positive".into()));
    }
    std::fs::create_dir_all(&params.out).map_err(io(&params.out))?;
    let out = std::fs::canonicalize(&params.out).map_err(io(&params.out))?;
    let manifest_path = out.join("testnet.json");
    if manifest_path.exists() {
        return Err(TestnetError::Params(format!(
            "{} already holds a testnet (testnet.json exists); choose an empty directory",
            out.display()
        )));
    }

    let accounts = dev_accounts(params.dev_accounts)?;
    let el = el_genesis(
        params.chain_id,
        params.genesis_timestamp,
        params.sub_second_blocks,
        params.l1,
        &accounts,
    );
    let el_text = serde_json::to_string_pretty(&el).unwrap_or_default();
    let spec = ChainSpec::from_json_str(&el_text, "el-genesis.json")
        .map_err(|e| TestnetError::Genesis(e.to_string()))?;
    let el_path = out.join("el-genesis.json");
    std::fs::write(&el_path, &el_text).map_err(io(&el_path))?;

    let mut validators = Vec::new();
    let mut node_dirs = Vec::new();
    let mut el_peer_ids = Vec::new();
    for i in 0..params.validators {
        let name = format!("node{i}");
        let dir = out.join(&name);
        for sub in ["el", "cl"] {
            let d = dir.join(sub);
            std::fs::create_dir_all(&d).map_err(io(&d))?;
        }
        let generated = keys::generate(&dir)?;
        let el_peer_id = write_el_p2p_key(&dir.join("el").join(EL_P2P_KEY_FILE))?;
        el_peer_ids.push(el_peer_id);
        let jwt = dir.join("jwt.hex");
        tandem_shared::jwt::read_or_create_secret(&jwt)
            .map_err(|e| TestnetError::Params(e.to_string()))?;
        validators.push(GenesisValidator {
            name: name.clone(),
            public_key: hex::encode(generated.public_key.0),
            voting_power: 1,
            peer_id: generated.peer_id.to_string(),
        });
        node_dirs.push((name, dir, jwt, true));
    }
    for i in params.validators..total {
        let name = format!("node{i}");
        let dir = out.join(&name);
        for sub in ["el", "cl"] {
            let d = dir.join(sub);
            std::fs::create_dir_all(&d).map_err(io(&d))?;
        }
        write_el_p2p_key(&dir.join("el").join(EL_P2P_KEY_FILE))?;
        let jwt = dir.join("jwt.hex");
        tandem_shared::jwt::read_or_create_secret(&jwt)
            .map_err(|e| TestnetError::Params(e.to_string()))?;
        node_dirs.push((name, dir, jwt, false));
    }
    let header = spec.genesis_header();
    let genesis = ConsensusGenesis {
        chain_id: params.chain_id,
        el_genesis_hash: spec.genesis_hash(),
        el_genesis_timestamp: header.timestamp,
        el_genesis_mix_hash: header.mix_hash,
        forks: ForkSchedule {
            shanghai_time: el["config"]["shanghaiTime"].as_u64(),
            cancun_time: el["config"]["cancunTime"].as_u64(),
            prague_time: el["config"]["pragueTime"].as_u64(),
        },
        sub_second_blocks: params.sub_second_blocks,
        validators: validators.clone(),
    };
    let cl_genesis_path = out.join("consensus-genesis.json");
    std::fs::write(&cl_genesis_path, serde_json::to_string_pretty(&genesis).unwrap_or_default())
        .map_err(io(&cl_genesis_path))?;

    let el_bin = params.bin_dir.join("tandem-el");
    let cl_bin = params.bin_dir.join("tandem-cl");
    let offset = params.port_offset;
    if !params.hosts.is_empty() && params.hosts.len() != node_dirs.len() {
        return Err(TestnetError::Params(format!(
            "{} hosts for {} nodes: give one address per node",
            params.hosts.len(),
            node_dirs.len()
        )));
    }
    let host = |i: usize| params.hosts.get(i).copied().unwrap_or_else(localhost);
    let ip4 = |i: usize| match host(i) {
        std::net::IpAddr::V4(a) => format!("/ip4/{a}"),
        std::net::IpAddr::V6(a) => format!("/ip6/{a}"),
    };
    let bootnode = format!(
        "{}/tcp/{}/p2p/{}",
        ip4(0),
        Ports::of(0, offset).map_or(0, |p| p.cl_p2p),
        validators.first().map(|v| v.peer_id.as_str()).unwrap_or_default()
    );
    // Node 0's EL is the other ELs' bootnode for transaction gossip.
    let el_bootnode = format!(
        "{}/tcp/{}/p2p/{}",
        ip4(0),
        Ports::of(0, offset).map_or(0, |p| p.el_p2p),
        el_peer_ids.first().map(ToString::to_string).unwrap_or_default()
    );
    let mut nodes = Vec::new();
    for (i, (name, dir, jwt, validator)) in node_dirs.into_iter().enumerate() {
        let Some(ports) = Ports::of(u16::try_from(i).unwrap_or(u16::MAX), offset) else {
            return Err(TestnetError::Params(format!("no ports for node {i}")));
        };
        let p = |path: &Path| path.display().to_string();
        let addr = host(i).to_string();
        let el_args = vec![
            "node".into(),
            "--chain".into(),
            p(&el_path),
            "--datadir".into(),
            p(&dir.join("el")),
            "--http".into(),
            "--http.addr".into(),
            addr.clone(),
            "--http.port".into(),
            ports.http.to_string(),
            "--ws".into(),
            "--ws.addr".into(),
            addr.clone(),
            "--ws.port".into(),
            ports.ws.to_string(),
            "--authrpc.addr".into(),
            "127.0.0.1".into(),
            "--authrpc.port".into(),
            ports.authrpc.to_string(),
            "--authrpc.jwtsecret".into(),
            p(&jwt),
            "--p2p.addr".into(),
            addr.clone(),
            "--p2p.port".into(),
            ports.el_p2p.to_string(),
            "--metrics".into(),
            format!("{}:{}", socket_host(host(i)), ports.el_metrics),
        ];
        let mut el_args = el_args;
        if i != 0 {
            el_args.push("--bootnodes".into());
            el_args.push(el_bootnode.clone());
        }
        let mut cl_args =
            vec!["node".into(), "--datadir".into(), p(&dir.join("cl")), "--genesis".into()];
        cl_args.push(p(&cl_genesis_path));
        if validator {
            cl_args.push("--validator-key".into());
            cl_args.push(p(&dir.join(keys::VALIDATOR_KEY_FILE)));
            cl_args.push("--p2p.key".into());
            cl_args.push(p(&dir.join(keys::P2P_KEY_FILE)));
        }
        cl_args.extend([
            "--engine".into(),
            format!("http://127.0.0.1:{}", ports.authrpc),
            "--jwt-secret".into(),
            p(&jwt),
            "--p2p.addr".into(),
            addr.clone(),
            "--p2p.port".into(),
            ports.cl_p2p.to_string(),
            "--http.addr".into(),
            addr.clone(),
            "--http.port".into(),
            ports.cl_http.to_string(),
            "--metrics".into(),
            format!("{}:{}", socket_host(host(i)), ports.cl_metrics),
        ]);
        if i != 0 {
            cl_args.push("--bootnodes".into());
            cl_args.push(bootnode.clone());
        }
        nodes.push(ManifestNode {
            name,
            validator,
            el_genesis: el_path.clone(),
            jwt_secret: jwt,
            ports,
            host: host(i),
            el_command: command(&el_bin, &el_args),
            cl_command: command(&cl_bin, &cl_args),
        });
    }
    let manifest = Manifest { chain_id: params.chain_id, nodes };
    std::fs::write(&manifest_path, serde_json::to_string_pretty(&manifest).unwrap_or_default())
        .map_err(io(&manifest_path))?;
    Ok(manifest)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(dir: &Path, n: usize, sub_second: bool) -> TestnetParams {
        TestnetParams {
            validators: n,
            followers: 0,
            out: dir.to_path_buf(),
            chain_id: 1337,
            dev_accounts: 12,
            sub_second_blocks: sub_second,
            l1: false,
            bin_dir: PathBuf::from("/opt/tandem/bin"),
            port_offset: 0,
            genesis_timestamp: 1_700_000_000,
            hosts: Vec::new(),
        }
    }

    #[test]
    fn dev_accounts_are_the_well_known_ones() {
        let a = dev_accounts(3).unwrap();
        assert_eq!(a.len(), 10);
        let first: Address = "0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266".parse().unwrap();
        let second: Address = "0x70997970C51812dc3A010C7d01b50e0d17dc79C8".parse().unwrap();
        let tenth: Address = "0xa0Ee7A142d267C1f36714E4a8F75612F20a79720".parse().unwrap();
        assert_eq!((a[0], a[1], a[9]), (first, second, tenth));
        assert_eq!(dev_accounts(12).unwrap().len(), 12);
    }

    #[test]
    fn a_testnet_is_complete_and_consistent() {
        let dir = tempfile::tempdir().unwrap();
        let manifest = generate(&params(dir.path(), 4, true)).unwrap();
        let out = std::fs::canonicalize(dir.path()).unwrap();

        let on_disk: Value =
            serde_json::from_slice(&std::fs::read(out.join("testnet.json")).unwrap()).unwrap();
        assert_eq!(on_disk["chain_id"], 1337);
        let node = &on_disk["nodes"][1];
        let keys: Vec<&str> = node.as_object().unwrap().keys().map(String::as_str).collect();
        assert_eq!(keys.len(), 8, "{keys:?}");
        for k in [
            "name",
            "validator",
            "el_genesis",
            "jwt_secret",
            "ports",
            "host",
            "el_command",
            "cl_command",
        ] {
            assert!(node.get(k).is_some(), "{k}");
        }
        assert_eq!(node["ports"].as_object().unwrap().len(), 8);
        assert!(node["ports"]["authrpc"].is_u64());
        assert_eq!(manifest.nodes[1].ports.authrpc, 8561);
        assert!(manifest.nodes[1].cl_command.starts_with("/opt/tandem/bin/tandem-cl node "));
        assert!(manifest.nodes[1].cl_command.contains("--bootnodes /ip4/127.0.0.1/tcp/9000/p2p/"));
        assert!(manifest.nodes[1].el_command.contains("--authrpc.port 8561"));
        assert!(manifest.nodes[1].el_command.contains("--bootnodes /ip4/127.0.0.1/tcp/30303/p2p/"));
        assert!(!manifest.nodes[0].el_command.contains("--bootnodes"));
        assert!(manifest.nodes[1].jwt_secret.is_absolute());

        let spec = ChainSpec::from_file(&out.join("el-genesis.json")).unwrap();
        assert!(spec.sub_second_blocks());
        assert_eq!(spec.chain_id(), 1337);
        assert!(spec.is_active(tandem_shared::Fork::Prague, 1_700_000_000));
        let alloc = &spec.genesis().alloc;
        assert_eq!(alloc.len(), 5 + 12);
        let first: Address = "0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266".parse().unwrap();
        assert_eq!(alloc[&first].balance, dev_balance());

        let genesis = ConsensusGenesis::from_file(&out.join("consensus-genesis.json")).unwrap();
        assert_eq!(genesis.el_genesis_hash, spec.genesis_hash());
        assert_eq!(genesis.validator_set().unwrap().len(), 4);
        assert!(genesis.sub_second_blocks);
        for (i, v) in genesis.validators.iter().enumerate() {
            let dir = out.join(format!("node{i}"));
            let key = keys::read_validator_key(&dir.join(keys::VALIDATOR_KEY_FILE)).unwrap();
            use crate::crypto::Signer;
            assert_eq!(genesis.index_of(&key.public_key()), Some(i as u16));
            let p2p = keys::read_p2p_key(&dir.join(keys::P2P_KEY_FILE)).unwrap();
            assert_eq!(p2p.public().to_peer_id().to_string(), v.peer_id);
            assert!(tandem_shared::jwt::read_secret(&dir.join("jwt.hex")).is_ok());
            assert!(dir.join("el").is_dir() && dir.join("cl").is_dir());
        }
        // A second run into the same directory refuses instead of overwriting keys.
        assert!(matches!(generate(&params(dir.path(), 4, true)), Err(TestnetError::Params(_))));
    }

    #[test]
    fn followers_have_no_validator_key_and_their_own_ports() {
        let dir = tempfile::tempdir().unwrap();
        let mut p = params(dir.path(), 2, true);
        p.followers = 1;
        let manifest = generate(&p).unwrap();
        assert_eq!(manifest.nodes.len(), 3);
        let follower = &manifest.nodes[2];
        assert_eq!((follower.name.as_str(), follower.validator), ("node2", false));
        assert!(!follower.cl_command.contains("--validator-key"));
        assert!(follower.cl_command.contains("--bootnodes /ip4/127.0.0.1/tcp/9000/p2p/"));
        assert_eq!(follower.ports, Ports::of(2, 0).unwrap());
        assert!(
            manifest.nodes[1].validator && manifest.nodes[1].cl_command.contains("--validator-key")
        );
        let genesis =
            ConsensusGenesis::from_file(&dir.path().join("consensus-genesis.json")).unwrap();
        assert_eq!(genesis.validators.len(), 2, "followers are not in the validator set");
        assert!(dir.path().join("node2/el/p2p.key").is_file());
    }

    /// With `--hosts`, each node listens on and is dialled at its own address; the Engine
    /// API stays on its own loopback.
    #[test]
    fn nodes_on_their_own_hosts_listen_and_are_dialled_there() {
        let dir = tempfile::tempdir().unwrap();
        let mut p = params(dir.path(), 2, true);
        p.hosts = vec!["10.231.9.1".parse().unwrap(), "10.231.9.2".parse().unwrap()];
        let m = generate(&p).unwrap();
        assert_eq!(m.nodes[1].host, p.hosts[1]);
        let (el, cl) = (&m.nodes[1].el_command, &m.nodes[1].cl_command);
        assert!(
            el.contains("--http.addr 10.231.9.2") && el.contains("--p2p.addr 10.231.9.2"),
            "{el}"
        );
        assert!(el.contains("--bootnodes /ip4/10.231.9.1/tcp/"), "{el}");
        assert!(el.contains("--authrpc.addr 127.0.0.1"), "{el}");
        assert!(cl.contains("--bootnodes /ip4/10.231.9.1/tcp/9000/p2p/"), "{cl}");
        assert!(cl.contains("--http.addr 10.231.9.2") && cl.contains("--engine http://127.0.0.1:"));
        let dir = tempfile::tempdir().unwrap();
        let mut p = params(dir.path(), 3, true);
        p.hosts = vec!["10.231.9.1".parse().unwrap()];
        assert!(generate(&p).unwrap_err().to_string().contains("1 hosts for 3 nodes"));
    }

    #[test]
    fn ports_beyond_65535_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let mut p = params(dir.path(), 4, true);
        p.port_offset = 40_000;
        let err = generate(&p).unwrap_err().to_string();
        assert!(err.contains("above 65535"), "{err}");
        assert!(Ports::of(3, 35_229).is_some() && Ports::of(3, 35_230).is_none());
    }

    #[test]
    fn an_l1_testnet_enables_the_exchange_with_funded_test_usd() {
        let dir = tempfile::tempdir().unwrap();
        let mut p = params(dir.path(), 2, true);
        p.l1 = true;
        generate(&p).unwrap();
        let text = std::fs::read_to_string(dir.path().join("el-genesis.json")).unwrap();
        let spec = ChainSpec::from_json_str(&text, "el-genesis.json").unwrap();
        assert!(spec.sub_second_blocks());
        let l1 = spec.tandem().l1.as_ref().expect("config.tandem.l1");
        let accounts = dev_accounts(p.dev_accounts).unwrap();
        assert_eq!(l1["oraclePublishers"].as_array().map(Vec::len), Some(3));
        let alloc = &spec.genesis().alloc;
        let usd = &alloc[&tandem_shared::l1_genesis::TEST_USD_ADDRESS];
        assert_eq!(usd.storage.as_ref().map(|s| s.len()), Some(accounts.len() + 1));
        assert!(alloc.contains_key(&tandem_shared::l1_genesis::L1_WRITE_ADDRESS));
    }

    #[test]
    fn without_sub_second_blocks_the_genesis_is_standard() {
        let dir = tempfile::tempdir().unwrap();
        generate(&params(dir.path(), 1, false)).unwrap();
        let text = std::fs::read_to_string(dir.path().join("el-genesis.json")).unwrap();
        assert!(!text.contains("tandem"), "no Tandem-specific keys in a standard genesis");
        let spec = ChainSpec::from_json_str(&text, "g").unwrap();
        assert!(!spec.sub_second_blocks());
    }

    #[test]
    fn shell_lines_quote_what_needs_it() {
        assert_eq!(shell_quote("/a/b-c_d.e"), "/a/b-c_d.e");
        assert_eq!(shell_quote("/a b/it's"), r"'/a b/it'\''s'");
    }
}
