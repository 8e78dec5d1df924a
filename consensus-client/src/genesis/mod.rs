//! The consensus genesis: the chain id, the validator set (consensus keys, voting power, libp2p
//! peer ids), the EL genesis block it starts from (hash, timestamp, `mixHash`), the fork times
//! and `subSecondBlocks`. It is fixed for the life of the chain (no epochs or staking yet).
//!
//! The consensus genesis block is `Block::genesis` of a payload naming the EL genesis block, so
//! two nodes with different EL genesis files have different consensus genesis ids and never
//! talk past each other; at start the node also checks its EL's block 0 hash against
//! `elGenesisHash`.

use crate::core::CoreConfig;
use crate::engine_client::ForkSchedule;
use crate::types::{Block, Payload, PublicKey, Validator, ValidatorIndex, ValidatorSet};
use alloy_primitives::B256;
use serde::{Deserialize, Serialize};
use std::path::Path;
use thiserror::Error;

/// One validator in the consensus genesis.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct GenesisValidator {
    /// Human-readable name (`node0`, …).
    pub name: String,
    /// Ed25519 consensus public key, hex.
    pub public_key: String,
    /// Voting power.
    pub voting_power: u64,
    /// libp2p peer id of the validator's node.
    pub peer_id: String,
}

/// The consensus genesis file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ConsensusGenesis {
    /// Chain id (also the EL's).
    pub chain_id: u64,
    /// Hash of the EL genesis block.
    pub el_genesis_hash: B256,
    /// Timestamp of the EL genesis block.
    pub el_genesis_timestamp: u64,
    /// `mixHash` of the EL genesis block.
    pub el_genesis_mix_hash: B256,
    /// Fork activation times (copied from the EL genesis).
    pub forks: ForkSchedule,
    /// Whether a block may carry its parent's timestamp.
    pub sub_second_blocks: bool,
    /// The validators, in index order.
    pub validators: Vec<GenesisValidator>,
}

/// Why a consensus genesis is unusable.
#[derive(Debug, Error)]
pub enum GenesisError {
    /// The file could not be read.
    #[error("consensus genesis {path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The file is not a consensus genesis.
    #[error("consensus genesis {path}: {reason}")]
    Parse {
        /// The file.
        path: String,
        /// What was wrong.
        reason: String,
    },
    /// A validator entry is invalid.
    #[error("consensus genesis validator {index} ({name}): {reason}")]
    Validator {
        /// Its index.
        index: usize,
        /// Its name.
        name: String,
        /// What was wrong.
        reason: String,
    },
}

impl ConsensusGenesis {
    /// Reads and checks a genesis file.
    pub fn from_file(path: &Path) -> Result<Self, GenesisError> {
        let p = path.display().to_string();
        let text = std::fs::read_to_string(path)
            .map_err(|source| GenesisError::Io { path: p.clone(), source })?;
        Self::from_json_str(&text, &p)
    }

    /// Parses and checks genesis JSON; `path` names the source in errors.
    pub fn from_json_str(text: &str, path: &str) -> Result<Self, GenesisError> {
        let genesis: Self = serde_json::from_str(text)
            .map_err(|e| GenesisError::Parse { path: path.to_string(), reason: e.to_string() })?;
        genesis.validator_set()?;
        Ok(genesis)
    }

    /// Public key of validator `index`.
    pub fn public_key(&self, index: usize) -> Result<PublicKey, GenesisError> {
        let v = self.validators.get(index).ok_or_else(|| GenesisError::Validator {
            index,
            name: String::new(),
            reason: "no such validator".into(),
        })?;
        let err = |reason: String| GenesisError::Validator { index, name: v.name.clone(), reason };
        let hex_key = v.public_key.trim_start_matches("0x");
        let bytes = hex::decode(hex_key).map_err(|e| err(format!("public key: {e}")))?;
        let key = <[u8; 32]>::try_from(bytes.as_slice())
            .map_err(|_| err(format!("public key has {} bytes, expected 32", bytes.len())))?;
        Ok(PublicKey(key))
    }

    /// The validator set.
    pub fn validator_set(&self) -> Result<ValidatorSet, GenesisError> {
        let mut out = Vec::with_capacity(self.validators.len());
        for (index, v) in self.validators.iter().enumerate() {
            out.push(Validator {
                public_key: self.public_key(index)?,
                voting_power: v.voting_power,
            });
        }
        ValidatorSet::new(out).map_err(|e| GenesisError::Validator {
            index: 0,
            name: String::new(),
            reason: e.to_string(),
        })
    }

    /// Index of the validator with `key`, if any.
    pub fn index_of(&self, key: &PublicKey) -> Option<ValidatorIndex> {
        (0..self.validators.len())
            .find(|&i| self.public_key(i).is_ok_and(|k| &k == key))
            .and_then(|i| ValidatorIndex::try_from(i).ok())
    }

    /// The consensus genesis block (round 0, carrying the EL genesis block as payload).
    pub fn block(&self) -> Block {
        Block::genesis(Payload {
            block_hash: self.el_genesis_hash,
            parent_hash: B256::ZERO,
            number: 0,
            timestamp: self.el_genesis_timestamp,
            prev_randao: self.el_genesis_mix_hash,
            parent_beacon_block_root: B256::ZERO,
            withdrawals: Vec::new(),
            body: Vec::new(),
        })
    }

    /// Core tunables for this chain (defaults otherwise).
    pub fn core_config(&self) -> CoreConfig {
        CoreConfig {
            chain_id: self.chain_id,
            sub_second_blocks: self.sub_second_blocks,
            ..CoreConfig::default()
        }
    }
}
