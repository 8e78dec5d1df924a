//! Signing and verification behind small traits, so ed25519 can be swapped for BLS12-381
//! aggregate signatures without touching the core.
//!
//! Contract: [`Verifier::verify`] returns `Ok(())` only for a signature by validator `signer`
//! over exactly `msg`. [`Verifier::verify_batch`] returns `Ok(())` only if every item verifies;
//! on `Err` the caller rejects the whole certificate and does not learn which item failed. An
//! unknown signer index is an error, never a panic.

mod ed25519;
#[cfg(test)]
pub mod test_scheme;

pub use ed25519::{Ed25519Signer, Ed25519Verifier};

use crate::types::{PublicKey, Signature, ValidatorIndex};
use thiserror::Error;

/// Why a signature or key was rejected.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum CryptoError {
    /// The signer index is not in the validator set.
    #[error("unknown signer {signer}")]
    UnknownSigner {
        /// The index.
        signer: ValidatorIndex,
    },
    /// A signature did not verify.
    #[error("invalid signature by validator {signer}")]
    InvalidSignature {
        /// The claimed signer.
        signer: ValidatorIndex,
    },
    /// A batch did not verify (some signature in it is invalid).
    #[error("batch of {count} signatures did not verify")]
    InvalidBatch {
        /// How many signatures the batch held.
        count: usize,
    },
    /// A public key is not a valid point.
    #[error("invalid public key of validator {index}")]
    InvalidPublicKey {
        /// The validator index.
        index: usize,
    },
}

/// One item of a batch: signer, message, signature.
pub type BatchItem<'a> = (ValidatorIndex, &'a [u8], &'a Signature);

/// Signs with this node's validator key.
pub trait Signer: Send {
    /// The public key matching the signing key.
    fn public_key(&self) -> PublicKey;
    /// Signs `msg`. Signing cannot fail.
    fn sign(&self, msg: &[u8]) -> Signature;
}

/// Verifies signatures of the validator set it was built for.
pub trait Verifier: Send + Sync {
    /// Verifies one signature by validator `signer`.
    fn verify(
        &self,
        signer: ValidatorIndex,
        msg: &[u8],
        sig: &Signature,
    ) -> Result<(), CryptoError>;
    /// Verifies all items at once (faster than one by one where the scheme allows).
    fn verify_batch(&self, items: &[BatchItem<'_>]) -> Result<(), CryptoError>;
}
