//! The chain spec: a geth-style `genesis.json` turned into what both clients need.
//!
//! Tandem chains are merged at genesis: every pre-merge fork listed by block must be at block 0
//! and a terminal total difficulty, if given, must be 0. Forks after the merge are activated by
//! timestamp (`shanghaiTime`, `cancunTime`, `pragueTime`). Osaka is not supported yet, so a file
//! that sets `osakaTime` is refused rather than silently run under Prague rules.
//!
//! Tandem-specific settings live under `config.tandem` (`subSecondBlocks`, `l1`); a file without
//! them is a plain Ethereum genesis and behaves exactly as geth or reth would.

use std::{collections::BTreeMap, fmt, path::Path};

use alloy_consensus::{EMPTY_OMMER_ROOT_HASH, Header};
use alloy_eips::{eip1559::INITIAL_BASE_FEE, eip7685::EMPTY_REQUESTS_HASH, eip7840::BlobParams};
use alloy_genesis::{ChainConfig, Genesis};
use alloy_primitives::{Address, B256, Bloom, U256};
use alloy_trie::{EMPTY_ROOT_HASH, TrieAccount, root::state_root_unhashed};
use serde::Deserialize;

/// Post-merge forks Tandem executes, in activation order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Fork {
    /// The merge (proof of stake, no withdrawals).
    Paris,
    /// Withdrawals, PUSH0, init code limits.
    Shanghai,
    /// Blobs, beacon block root, transient storage, MCOPY.
    Cancun,
    /// EIP-7702, execution requests, BLS precompiles, block hash history.
    Prague,
}

impl Fork {
    /// The name as used in `blobSchedule` keys and fixture networks.
    pub const fn name(self) -> &'static str {
        match self {
            Self::Paris => "paris",
            Self::Shanghai => "shanghai",
            Self::Cancun => "cancun",
            Self::Prague => "prague",
        }
    }
}

impl fmt::Display for Fork {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Settings under `config.tandem` in the genesis file.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TandemConfig {
    /// Allow a block to carry the same timestamp as its parent (rounds faster than a second).
    #[serde(default)]
    pub sub_second_blocks: bool,
    /// Native L1 exchange configuration; kept raw here and interpreted by the execution client.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub l1: Option<serde_json::Value>,
}

/// A problem with a genesis file, naming the file and the field at fault.
#[derive(Debug, thiserror::Error)]
pub enum ChainSpecError {
    /// The file could not be read.
    #[error("cannot read genesis file {file}: {source}")]
    Read {
        /// The file.
        file: String,
        /// The underlying I/O error.
        source: std::io::Error,
    },
    /// The file is not JSON.
    #[error("{file}: not valid JSON (line {line}, column {column}): {msg}")]
    Syntax {
        /// The file.
        file: String,
        /// Line of the error.
        line: usize,
        /// Column of the error.
        column: usize,
        /// What the parser said.
        msg: String,
    },
    /// A required field is absent.
    #[error("{file}: missing required field `{field}`")]
    Missing {
        /// The file.
        file: String,
        /// Dotted path of the field.
        field: String,
    },
    /// A field is present but wrong.
    #[error("{file}: field `{field}`: {msg}")]
    Field {
        /// The file.
        file: String,
        /// Dotted path of the field.
        field: String,
        /// What is wrong with it.
        msg: String,
    },
}

/// Fields every genesis file must carry (dotted paths).
const REQUIRED_FIELDS: &[&str] = &["config", "config.chainId", "gasLimit", "alloc"];

/// Reads one block-activated fork from the config.
type BlockForkGetter = fn(&ChainConfig) -> Option<u64>;

/// Pre-merge forks activated by block number; all must be at block 0 on a Tandem chain.
const BLOCK_FORKS: &[(&str, BlockForkGetter)] = &[
    ("homesteadBlock", |c| c.homestead_block),
    ("eip150Block", |c| c.eip150_block),
    ("eip155Block", |c| c.eip155_block),
    ("eip158Block", |c| c.eip158_block),
    ("byzantiumBlock", |c| c.byzantium_block),
    ("constantinopleBlock", |c| c.constantinople_block),
    ("petersburgBlock", |c| c.petersburg_block),
    ("istanbulBlock", |c| c.istanbul_block),
    ("muirGlacierBlock", |c| c.muir_glacier_block),
    ("berlinBlock", |c| c.berlin_block),
    ("londonBlock", |c| c.london_block),
    ("arrowGlacierBlock", |c| c.arrow_glacier_block),
    ("grayGlacierBlock", |c| c.gray_glacier_block),
    ("mergeNetsplitBlock", |c| c.merge_netsplit_block),
];

/// A validated chain spec with its genesis header.
#[derive(Debug, Clone)]
pub struct ChainSpec {
    genesis: Genesis,
    shanghai_time: Option<u64>,
    cancun_time: Option<u64>,
    prague_time: Option<u64>,
    blob_cancun: BlobParams,
    blob_prague: BlobParams,
    tandem: TandemConfig,
    genesis_header: Header,
    genesis_hash: B256,
}

impl ChainSpec {
    /// Loads and validates a geth-style `genesis.json`.
    pub fn from_file(path: &Path) -> Result<Self, ChainSpecError> {
        let file = path.display().to_string();
        let text = std::fs::read_to_string(path)
            .map_err(|source| ChainSpecError::Read { file: file.clone(), source })?;
        Self::from_json_str(&text, &file)
    }

    /// Parses and validates genesis JSON; `file` names the source in errors.
    pub fn from_json_str(text: &str, file: &str) -> Result<Self, ChainSpecError> {
        let value: serde_json::Value =
            serde_json::from_str(text).map_err(|e| ChainSpecError::Syntax {
                file: file.to_string(),
                line: e.line(),
                column: e.column(),
                msg: strip_position(&e.to_string()),
            })?;
        for field in REQUIRED_FIELDS {
            if lookup(&value, field).is_none_or(serde_json::Value::is_null) {
                return Err(ChainSpecError::Missing {
                    file: file.to_string(),
                    field: (*field).to_string(),
                });
            }
        }
        let genesis: Genesis =
            serde_path_to_error::deserialize(&value).map_err(|e| ChainSpecError::Field {
                file: file.to_string(),
                field: e.path().to_string(),
                msg: strip_position(&e.inner().to_string()),
            })?;
        Self::from_genesis(genesis).map_err(|e| e.in_file(file))
    }

    /// Validates an already parsed genesis.
    pub fn from_genesis(genesis: Genesis) -> Result<Self, ChainSpecError> {
        let field = |field: &str, msg: String| ChainSpecError::Field {
            file: "<genesis>".to_string(),
            field: field.to_string(),
            msg,
        };
        let config = &genesis.config;
        if config.chain_id == 0 {
            return Err(field("config.chainId", "must be a positive integer".into()));
        }
        if genesis.gas_limit == 0 {
            return Err(field("gasLimit", "must be greater than zero".into()));
        }
        for (name, get) in BLOCK_FORKS {
            if let Some(block) = get(config)
                && block != 0
            {
                return Err(field(
                    &format!("config.{name}"),
                    format!(
                        "is {block}, but Tandem chains are merged at genesis: pre-merge forks must activate at block 0"
                    ),
                ));
            }
        }
        if let Some(ttd) = config.terminal_total_difficulty
            && !ttd.is_zero()
        {
            return Err(field(
                "config.terminalTotalDifficulty",
                format!("is {ttd}, but Tandem chains are merged at genesis: it must be 0"),
            ));
        }
        if config.osaka_time.is_some() {
            return Err(field(
                "config.osakaTime",
                "Osaka is not supported yet; remove osakaTime (the highest supported fork is Prague)".into(),
            ));
        }
        for (name, set) in [
            ("amsterdamTime", config.amsterdam_time),
            ("bpo1Time", config.bpo1_time),
            ("bpo2Time", config.bpo2_time),
            ("bpo3Time", config.bpo3_time),
            ("bpo4Time", config.bpo4_time),
            ("bpo5Time", config.bpo5_time),
        ] {
            if set.is_some() {
                return Err(field(
                    &format!("config.{name}"),
                    "this fork is not supported (the highest supported fork is Prague)".into(),
                ));
            }
        }
        let order = [
            ("shanghaiTime", config.shanghai_time),
            ("cancunTime", config.cancun_time),
            ("pragueTime", config.prague_time),
        ];
        for pair in order.windows(2) {
            let ((earlier_name, earlier), (later_name, later)) = (pair[0], pair[1]);
            if let Some(later) = later {
                match earlier {
                    None => {
                        return Err(field(
                            &format!("config.{later_name}"),
                            format!("is set but config.{earlier_name} is not"),
                        ));
                    }
                    Some(earlier) if earlier > later => {
                        return Err(field(
                            &format!("config.{later_name}"),
                            format!("{later} is before config.{earlier_name} ({earlier})"),
                        ));
                    }
                    Some(_) => {}
                }
            }
        }
        let mut blob_cancun = BlobParams::cancun();
        let mut blob_prague = BlobParams::prague();
        for (key, params) in &config.blob_schedule {
            match key.as_str() {
                "cancun" => blob_cancun = *params,
                "prague" => blob_prague = *params,
                other => {
                    return Err(field(
                        &format!("config.blobSchedule.{other}"),
                        "unknown or unsupported fork in the blob schedule".into(),
                    ));
                }
            }
        }
        for (name, params) in [("cancun", &blob_cancun), ("prague", &blob_prague)] {
            if params.target_blob_count > params.max_blob_count || params.update_fraction == 0 {
                return Err(field(
                    &format!("config.blobSchedule.{name}"),
                    "needs target <= max and a non-zero baseFeeUpdateFraction".into(),
                ));
            }
        }
        let tandem = match config.extra_fields.get("tandem") {
            None => TandemConfig::default(),
            Some(raw) => serde_path_to_error::deserialize(raw.clone()).map_err(|e| {
                let path = e.path().to_string();
                let field_name = if path == "." {
                    "config.tandem".into()
                } else {
                    format!("config.tandem.{path}")
                };
                field(&field_name, e.inner().to_string())
            })?,
        };

        let mut spec = Self {
            shanghai_time: config.shanghai_time,
            cancun_time: config.cancun_time,
            prague_time: config.prague_time,
            blob_cancun,
            blob_prague,
            tandem,
            genesis,
            genesis_header: Header::default(),
            genesis_hash: B256::ZERO,
        };
        if spec.tandem.l1.is_some() {
            // Every L1 chain has the write contract; its storage is the L1 state.
            use crate::l1_genesis::{L1_WRITE_ADDRESS, l1_write_account, l1_write_code};
            match spec.genesis.alloc.get(&L1_WRITE_ADDRESS) {
                None => {
                    spec.genesis.alloc.insert(L1_WRITE_ADDRESS, l1_write_account());
                }
                Some(account) if account.code.as_ref() == Some(&l1_write_code()) => {}
                Some(_) => {
                    return Err(field(
                        &format!("alloc.{L1_WRITE_ADDRESS:#x}"),
                        "must be absent or hold the L1Write contract when config.tandem.l1 is set"
                            .into(),
                    ));
                }
            }
        }
        spec.genesis_header = spec.build_genesis_header();
        spec.genesis_hash = spec.genesis_header.hash_slow();
        Ok(spec)
    }

    fn build_genesis_header(&self) -> Header {
        let g = &self.genesis;
        let ts = g.timestamp;
        let cancun = self.is_active(Fork::Cancun, ts);
        Header {
            parent_hash: g.parent_hash.unwrap_or_default(),
            ommers_hash: EMPTY_OMMER_ROOT_HASH,
            beneficiary: g.coinbase,
            state_root: genesis_state_root(&g.alloc),
            transactions_root: EMPTY_ROOT_HASH,
            receipts_root: EMPTY_ROOT_HASH,
            logs_bloom: Bloom::ZERO,
            difficulty: g.difficulty,
            number: g.number.unwrap_or(0),
            gas_limit: g.gas_limit,
            gas_used: 0,
            timestamp: ts,
            extra_data: g.extra_data.clone(),
            mix_hash: g.mix_hash,
            nonce: g.nonce.into(),
            base_fee_per_gas: Some(
                g.base_fee_per_gas.map_or(INITIAL_BASE_FEE, |fee| fee.min(u64::MAX as u128) as u64),
            ),
            withdrawals_root: self.is_active(Fork::Shanghai, ts).then_some(EMPTY_ROOT_HASH),
            blob_gas_used: cancun.then(|| g.blob_gas_used.unwrap_or(0)),
            excess_blob_gas: cancun.then(|| g.excess_blob_gas.unwrap_or(0)),
            parent_beacon_block_root: cancun.then_some(B256::ZERO),
            requests_hash: self.is_active(Fork::Prague, ts).then_some(EMPTY_REQUESTS_HASH),
            ..Default::default()
        }
    }

    /// The chain id.
    pub fn chain_id(&self) -> u64 {
        self.genesis.config.chain_id
    }

    /// The parsed genesis file.
    pub fn genesis(&self) -> &Genesis {
        &self.genesis
    }

    /// The genesis block header.
    pub fn genesis_header(&self) -> &Header {
        &self.genesis_header
    }

    /// The genesis block hash (what geth and reth compute for the same file).
    pub fn genesis_hash(&self) -> B256 {
        self.genesis_hash
    }

    /// Activation timestamp of a fork, `Some(0)` for forks active from genesis.
    pub fn activation_time(&self, fork: Fork) -> Option<u64> {
        match fork {
            Fork::Paris => Some(0),
            Fork::Shanghai => self.shanghai_time,
            Fork::Cancun => self.cancun_time,
            Fork::Prague => self.prague_time,
        }
    }

    /// Whether `fork` is active for a block with this timestamp.
    pub fn is_active(&self, fork: Fork, timestamp: u64) -> bool {
        self.activation_time(fork).is_some_and(|t| timestamp >= t)
    }

    /// The newest fork active at `timestamp`.
    pub fn fork_at(&self, timestamp: u64) -> Fork {
        [Fork::Prague, Fork::Cancun, Fork::Shanghai]
            .into_iter()
            .find(|fork| self.is_active(*fork, timestamp))
            .unwrap_or(Fork::Paris)
    }

    /// Blob parameters in force at `timestamp`, `None` before Cancun.
    pub fn blob_params_at(&self, timestamp: u64) -> Option<BlobParams> {
        match self.fork_at(timestamp) {
            Fork::Paris | Fork::Shanghai => None,
            Fork::Cancun => Some(self.blob_cancun),
            Fork::Prague => Some(self.blob_prague),
        }
    }

    /// The deposit contract whose logs become EIP-6110 deposit requests.
    pub fn deposit_contract_address(&self) -> Option<Address> {
        self.genesis.config.deposit_contract_address
    }

    /// Tandem-specific settings (`config.tandem`).
    pub fn tandem(&self) -> &TandemConfig {
        &self.tandem
    }

    /// Whether a block may carry its parent's timestamp.
    pub fn sub_second_blocks(&self) -> bool {
        self.tandem.sub_second_blocks
    }
}

impl ChainSpecError {
    /// Puts the real file name into an error raised while validating an in-memory genesis.
    fn in_file(self, file: &str) -> Self {
        match self {
            Self::Field { field, msg, .. } => Self::Field { file: file.to_string(), field, msg },
            Self::Missing { field, .. } => Self::Missing { file: file.to_string(), field },
            other => other,
        }
    }
}

/// Merkle-Patricia root of a genesis alloc.
pub fn genesis_state_root(alloc: &BTreeMap<Address, alloy_genesis::GenesisAccount>) -> B256 {
    state_root_unhashed(alloc.iter().map(|(address, account)| {
        let trie_account: TrieAccount = account.clone().into();
        (*address, trie_account)
    }))
}

/// Chain configs of the networks named by the Ethereum test fixtures, merged at genesis.
pub fn fixture_network(name: &str, chain_id: u64) -> Option<ChainConfig> {
    let (shanghai, cancun, prague) = match name {
        "Paris" | "Merge" => (None, None, None),
        "Shanghai" => (Some(0), None, None),
        "ParisToShanghaiAtTime15k" => (Some(15_000), None, None),
        "Cancun" => (Some(0), Some(0), None),
        "ShanghaiToCancunAtTime15k" => (Some(0), Some(15_000), None),
        "Prague" => (Some(0), Some(0), Some(0)),
        "CancunToPragueAtTime15k" => (Some(0), Some(0), Some(15_000)),
        _ => return None,
    };
    Some(ChainConfig {
        chain_id,
        homestead_block: Some(0),
        eip150_block: Some(0),
        eip155_block: Some(0),
        eip158_block: Some(0),
        byzantium_block: Some(0),
        constantinople_block: Some(0),
        petersburg_block: Some(0),
        istanbul_block: Some(0),
        berlin_block: Some(0),
        london_block: Some(0),
        merge_netsplit_block: Some(0),
        terminal_total_difficulty: Some(U256::ZERO),
        terminal_total_difficulty_passed: true,
        shanghai_time: shanghai,
        cancun_time: cancun,
        prague_time: prague,
        ..Default::default()
    })
}

/// Dotted-path lookup in a JSON value.
fn lookup<'a>(value: &'a serde_json::Value, path: &str) -> Option<&'a serde_json::Value> {
    path.split('.').try_fold(value, |v, key| v.get(key))
}

/// serde_json appends " at line L column C" to messages; we report the position separately.
fn strip_position(msg: &str) -> String {
    match msg.rfind(" at line ") {
        Some(i) => msg[..i].to_string(),
        None => msg.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn minimal(config_extra: &str) -> String {
        format!(
            r#"{{
  "config": {{ "chainId": 1337, "londonBlock": 0, "shanghaiTime": 0, "cancunTime": 100, "pragueTime": 200{config_extra} }},
  "gasLimit": "0x1c9c380",
  "timestamp": "0x0",
  "difficulty": "0x0",
  "alloc": {{ "0x0000000000000000000000000000000000000001": {{ "balance": "0x1" }} }}
}}"#
        )
    }

    #[test]
    fn forks_by_timestamp() -> Result<(), ChainSpecError> {
        let spec = ChainSpec::from_json_str(&minimal(""), "g.json")?;
        assert_eq!(spec.chain_id(), 1337);
        assert_eq!(spec.fork_at(0), Fork::Shanghai);
        assert_eq!(spec.fork_at(99), Fork::Shanghai);
        assert_eq!(spec.fork_at(100), Fork::Cancun);
        assert_eq!(spec.fork_at(200), Fork::Prague);
        assert_eq!(spec.fork_at(u64::MAX), Fork::Prague);
        assert!(spec.blob_params_at(50).is_none());
        assert_eq!(spec.blob_params_at(150), Some(BlobParams::cancun()));
        assert_eq!(spec.blob_params_at(250), Some(BlobParams::prague()));
        assert!(!spec.sub_second_blocks());
        // Genesis is at Shanghai: withdrawals root, no blob fields.
        let header = spec.genesis_header();
        assert_eq!(header.withdrawals_root, Some(EMPTY_ROOT_HASH));
        assert_eq!(header.blob_gas_used, None);
        assert_eq!(header.base_fee_per_gas, Some(INITIAL_BASE_FEE));
        assert_eq!(header.gas_limit, 30_000_000);
        Ok(())
    }

    #[test]
    fn alloc_root_is_a_real_trie_root() -> Result<(), ChainSpecError> {
        let spec = ChainSpec::from_json_str(&minimal(""), "g.json")?;
        let mut other = spec.genesis().clone();
        other.alloc.clear();
        let empty = ChainSpec::from_genesis(other)?;
        assert_eq!(empty.genesis_header().state_root, EMPTY_ROOT_HASH);
        assert_ne!(spec.genesis_header().state_root, EMPTY_ROOT_HASH);
        assert_ne!(spec.genesis_hash(), empty.genesis_hash());
        Ok(())
    }

    #[test]
    fn blob_schedule_from_file_overrides_mainnet() -> Result<(), ChainSpecError> {
        let extra = r#", "blobSchedule": { "cancun": { "target": 1, "max": 2, "baseFeeUpdateFraction": 1000 } }"#;
        let spec = ChainSpec::from_json_str(&minimal(extra), "g.json")?;
        let cancun = spec.blob_params_at(150).map(|p| (p.target_blob_count, p.max_blob_count));
        assert_eq!(cancun, Some((1, 2)));
        assert_eq!(spec.blob_params_at(250), Some(BlobParams::prague()));
        Ok(())
    }

    #[test]
    fn an_l1_chain_gets_the_write_contract_and_refuses_another() {
        let l1 = r#", "tandem": { "l1": { "assets": [] } }"#;
        let spec = ChainSpec::from_json_str(&minimal(l1), "g.json").unwrap();
        let write = crate::l1_genesis::L1_WRITE_ADDRESS;
        let account = &spec.genesis().alloc[&write];
        assert_eq!(account.code.as_ref(), Some(&crate::l1_genesis::l1_write_code()));
        assert_eq!(account.nonce, Some(1));
        let plain = ChainSpec::from_json_str(&minimal(""), "g.json").unwrap();
        assert!(!plain.genesis().alloc.contains_key(&write));
        assert_ne!(spec.genesis_hash(), plain.genesis_hash());

        let mut value: serde_json::Value = serde_json::from_str(&minimal(l1)).unwrap();
        value["alloc"][format!("{write:#x}")] =
            serde_json::json!({ "balance": "0x0", "code": "0x00" });
        let err = ChainSpec::from_json_str(&value.to_string(), "g.json").unwrap_err().to_string();
        assert!(err.contains("L1Write"), "{err}");
    }

    #[test]
    fn tandem_settings() -> Result<(), ChainSpecError> {
        let spec = ChainSpec::from_json_str(
            &minimal(
                r#", "tandem": { "subSecondBlocks": true }, "depositContractAddress": "0x00000000219ab540356cbb839cbe05303d7705fa""#,
            ),
            "g.json",
        )?;
        assert!(spec.sub_second_blocks());
        assert!(spec.deposit_contract_address().is_some());
        let err =
            ChainSpec::from_json_str(&minimal(r#", "tandem": { "subSecond": true }"#), "g.json")
                .err()
                .map(|e| e.to_string())
                .unwrap_or_default();
        assert!(err.contains("g.json") && err.contains("config.tandem"), "{err}");
        Ok(())
    }

    fn error_of(text: &str) -> String {
        match ChainSpec::from_json_str(text, "bad.json") {
            Ok(_) => panic!("accepted a bad genesis"),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn osaka_is_refused() {
        let err = error_of(&minimal(r#", "osakaTime": 300"#));
        assert!(
            err.contains("bad.json") && err.contains("config.osakaTime") && err.contains("Osaka"),
            "{err}"
        );
    }

    #[test]
    fn bad_json_names_file_and_position() {
        let err = error_of("{ \"config\": ");
        assert!(err.contains("bad.json") && err.contains("line 1"), "{err}");
    }

    #[test]
    fn missing_fields_are_named() {
        let err = error_of(r#"{ "config": { "chainId": 1 }, "alloc": {} }"#);
        assert_eq!(err, "bad.json: missing required field `gasLimit`");
        let err = error_of(r#"{ "config": { }, "gasLimit": "0x1", "alloc": {} }"#);
        assert_eq!(err, "bad.json: missing required field `config.chainId`");
        let err = error_of(r#"{ "gasLimit": "0x1", "alloc": {} }"#);
        assert_eq!(err, "bad.json: missing required field `config`");
    }

    #[test]
    fn wrong_types_name_the_field_path() {
        let err = error_of(
            r#"{ "config": { "chainId": 1 }, "gasLimit": "0x1", "alloc": { "0x0000000000000000000000000000000000000001": { "balance": "lots" } } }"#,
        );
        assert!(err.starts_with("bad.json: field `alloc."), "{err}");
        let err = error_of(
            r#"{ "config": { "chainId": 1, "cancunTime": "soon" }, "gasLimit": "0x1", "alloc": {} }"#,
        );
        assert!(err.contains("config.cancunTime"), "{err}");
    }

    #[test]
    fn fork_order_and_merge_rules() {
        let err = error_of(
            r#"{ "config": { "chainId": 1, "cancunTime": 5 }, "gasLimit": "0x1", "alloc": {} }"#,
        );
        assert!(err.contains("config.cancunTime") && err.contains("shanghaiTime"), "{err}");
        let err = error_of(
            r#"{ "config": { "chainId": 1, "shanghaiTime": 10, "cancunTime": 5 }, "gasLimit": "0x1", "alloc": {} }"#,
        );
        assert!(err.contains("config.cancunTime"), "{err}");
        let err = error_of(
            r#"{ "config": { "chainId": 1, "londonBlock": 12 }, "gasLimit": "0x1", "alloc": {} }"#,
        );
        assert!(err.contains("config.londonBlock") && err.contains("merged at genesis"), "{err}");
        let err = error_of(
            r#"{ "config": { "chainId": 1, "terminalTotalDifficulty": 100 }, "gasLimit": "0x1", "alloc": {} }"#,
        );
        assert!(err.contains("terminalTotalDifficulty"), "{err}");
    }

    #[test]
    fn fixture_networks() {
        let config = fixture_network("CancunToPragueAtTime15k", 1);
        assert_eq!(config.as_ref().and_then(|c| c.prague_time), Some(15_000));
        assert!(fixture_network("Frontier", 1).is_none());
    }
}
