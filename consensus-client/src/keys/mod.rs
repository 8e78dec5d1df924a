//! Key files: the validator's consensus key and the node's libp2p identity.
//!
//! Both are ed25519 secret seeds stored as 64 hex digits (optional `0x`, whitespace tolerated),
//! written with mode 0600 and never overwritten. The validator key signs proposals, votes and
//! timeouts; the libp2p key authenticates the node's connections (its peer id is listed in the
//! consensus genesis next to the validator's public key).

use crate::crypto::Ed25519Signer;
use crate::crypto::Signer;
use crate::types::PublicKey;
use libp2p::PeerId;
use libp2p::identity::Keypair;
use rand::RngCore;
use std::io::Write;
use std::path::{Path, PathBuf};
use thiserror::Error;

/// File name of the validator key inside a node directory.
pub const VALIDATOR_KEY_FILE: &str = "validator.key";
/// File name of the libp2p key inside a node directory.
pub const P2P_KEY_FILE: &str = "p2p.key";

/// Why a key file could not be read or written.
#[derive(Debug, Error)]
pub enum KeyError {
    /// The file could not be read or created.
    #[error("key file {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The file does not hold a 32-byte hex seed.
    #[error("key file {path}: expected 32 bytes as 64 hex digits: {reason}")]
    Invalid {
        /// The file.
        path: PathBuf,
        /// What was wrong.
        reason: String,
    },
    /// Refusing to overwrite an existing key.
    #[error("key file {path} already exists; refusing to overwrite a key")]
    Exists {
        /// The file.
        path: PathBuf,
    },
}

/// Reads a 32-byte seed file.
pub fn read_seed(path: &Path) -> Result<[u8; 32], KeyError> {
    let text = std::fs::read_to_string(path)
        .map_err(|source| KeyError::Io { path: path.to_path_buf(), source })?;
    let hex_text = text.trim();
    let hex_text = hex_text.strip_prefix("0x").unwrap_or(hex_text);
    let bytes = hex::decode(hex_text)
        .map_err(|e| KeyError::Invalid { path: path.to_path_buf(), reason: e.to_string() })?;
    <[u8; 32]>::try_from(bytes.as_slice()).map_err(|_| KeyError::Invalid {
        path: path.to_path_buf(),
        reason: format!("found {} bytes", bytes.len()),
    })
}

/// Writes a fresh random seed to `path` (mode 0600), refusing to overwrite.
pub fn write_new_seed(path: &Path) -> Result<[u8; 32], KeyError> {
    let io = |source| KeyError::Io { path: path.to_path_buf(), source };
    if path.exists() {
        return Err(KeyError::Exists { path: path.to_path_buf() });
    }
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(io)?;
    }
    let mut seed = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut seed);
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options.open(path).map_err(io)?;
    file.write_all(hex::encode(seed).as_bytes()).map_err(io)?;
    file.sync_all().map_err(io)?;
    Ok(seed)
}

/// The validator signer in a key file.
pub fn read_validator_key(path: &Path) -> Result<Ed25519Signer, KeyError> {
    Ok(Ed25519Signer::from_seed(&read_seed(path)?))
}

/// The libp2p identity for a seed.
pub fn p2p_keypair(seed: [u8; 32]) -> Keypair {
    let mut seed = seed;
    // A 32-byte array is always a valid ed25519 secret; the error branch is unreachable.
    Keypair::ed25519_from_bytes(&mut seed).unwrap_or_else(|_| Keypair::generate_ed25519())
}

/// The libp2p identity in a key file.
pub fn read_p2p_key(path: &Path) -> Result<Keypair, KeyError> {
    Ok(p2p_keypair(read_seed(path)?))
}

/// A freshly generated pair of keys.
#[derive(Debug, Clone)]
pub struct GeneratedKeys {
    /// The validator's public key.
    pub public_key: PublicKey,
    /// The node's libp2p peer id.
    pub peer_id: PeerId,
    /// Where the validator key was written.
    pub validator_key: PathBuf,
    /// Where the libp2p key was written.
    pub p2p_key: PathBuf,
}

/// Writes `validator.key` and `p2p.key` into `dir`, refusing to overwrite either.
pub fn generate(dir: &Path) -> Result<GeneratedKeys, KeyError> {
    let validator_key = dir.join(VALIDATOR_KEY_FILE);
    let p2p_key = dir.join(P2P_KEY_FILE);
    for p in [&validator_key, &p2p_key] {
        if p.exists() {
            return Err(KeyError::Exists { path: p.clone() });
        }
    }
    let seed = write_new_seed(&validator_key)?;
    let public_key = Ed25519Signer::from_seed(&seed).public_key();
    let p2p_seed = write_new_seed(&p2p_key)?;
    let peer_id = p2p_keypair(p2p_seed).public().to_peer_id();
    Ok(GeneratedKeys { public_key, peer_id, validator_key, p2p_key })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_keys_read_back_and_are_not_overwritten() {
        let dir = tempfile::tempdir().unwrap();
        let keys = generate(dir.path()).unwrap();
        assert_eq!(read_validator_key(&keys.validator_key).unwrap().public_key(), keys.public_key);
        assert_eq!(read_p2p_key(&keys.p2p_key).unwrap().public().to_peer_id(), keys.peer_id);
        assert!(matches!(generate(dir.path()), Err(KeyError::Exists { .. })));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&keys.validator_key).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        std::fs::write(dir.path().join("bad"), "abcd").unwrap();
        assert!(matches!(read_seed(&dir.path().join("bad")), Err(KeyError::Invalid { .. })));
    }
}
