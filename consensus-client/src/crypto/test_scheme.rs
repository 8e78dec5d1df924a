//! A cheap, insecure signature scheme for simulation: a "signature" is two SHA-256 hashes of the
//! message keyed with the signer's secret, and the verifier knows every secret. It has the same
//! interface and the same rejection behaviour for forged or altered signatures from nodes that
//! do not hold the key, which is all the simulator needs; never use it outside tests.

use super::{BatchItem, CryptoError, Signer, Verifier};
use crate::types::{PublicKey, Signature, ValidatorIndex};
use sha2::{Digest, Sha256};

fn mac(secret: &[u8; 32], msg: &[u8]) -> Signature {
    let a = Sha256::new().chain_update(secret).chain_update(msg).finalize();
    let b = Sha256::new().chain_update(msg).chain_update(secret).finalize();
    let mut out = [0u8; 64];
    out[..32].copy_from_slice(&a);
    out[32..].copy_from_slice(&b);
    Signature(out)
}

/// Signer of the test scheme.
#[derive(Debug, Clone)]
pub struct HashSigner {
    /// The secret.
    pub secret: [u8; 32],
}

impl Signer for HashSigner {
    fn public_key(&self) -> PublicKey {
        PublicKey(Sha256::new().chain_update(b"pk").chain_update(self.secret).finalize().into())
    }
    fn sign(&self, msg: &[u8]) -> Signature {
        mac(&self.secret, msg)
    }
}

/// Verifier of the test scheme (holds every validator's secret).
#[derive(Debug, Clone)]
pub struct HashVerifier {
    /// Secrets by validator index.
    pub secrets: Vec<[u8; 32]>,
}

impl Verifier for HashVerifier {
    fn verify(
        &self,
        signer: ValidatorIndex,
        msg: &[u8],
        sig: &Signature,
    ) -> Result<(), CryptoError> {
        let secret =
            self.secrets.get(usize::from(signer)).ok_or(CryptoError::UnknownSigner { signer })?;
        if mac(secret, msg) == *sig {
            Ok(())
        } else {
            Err(CryptoError::InvalidSignature { signer })
        }
    }
    fn verify_batch(&self, items: &[BatchItem<'_>]) -> Result<(), CryptoError> {
        for (signer, msg, sig) in items {
            self.verify(*signer, msg, sig)
                .map_err(|_| CryptoError::InvalidBatch { count: items.len() })?;
        }
        Ok(())
    }
}
