//! Ed25519 (RFC 8032) via `ed25519-dalek`, with batch verification for certificates.
//!
//! Single signatures use `verify_strict` (rejects small-order keys and non-canonical
//! encodings). Batches use dalek's randomized batch equation, which accepts what the
//! cofactored equation accepts; keys are checked once at construction to not be weak, so the
//! two can only disagree on deliberately malleated signatures, and any disagreement affects
//! only whether a certificate is accepted (liveness), never which block one certifies.

use super::{BatchItem, CryptoError, Signer, Verifier};
use crate::types::{PublicKey, Signature, ValidatorIndex};
use ed25519_dalek::{Signer as _, SigningKey, VerifyingKey};

/// An ed25519 signing key.
pub struct Ed25519Signer {
    key: SigningKey,
}

impl std::fmt::Debug for Ed25519Signer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Ed25519Signer({:?})", self.public_key())
    }
}

impl Ed25519Signer {
    /// A signer from a 32-byte secret seed.
    pub fn from_seed(seed: &[u8; 32]) -> Self {
        Self { key: SigningKey::from_bytes(seed) }
    }
}

impl Signer for Ed25519Signer {
    fn public_key(&self) -> PublicKey {
        PublicKey(self.key.verifying_key().to_bytes())
    }
    fn sign(&self, msg: &[u8]) -> Signature {
        Signature(self.key.sign(msg).to_bytes())
    }
}

/// Verifies ed25519 signatures of a fixed validator set (keys decompressed once).
#[derive(Debug, Clone)]
pub struct Ed25519Verifier {
    keys: Vec<VerifyingKey>,
}

impl Ed25519Verifier {
    /// Builds a verifier; fails if a key is not a valid, non-weak curve point.
    pub fn new<'a>(keys: impl IntoIterator<Item = &'a PublicKey>) -> Result<Self, CryptoError> {
        let mut out = Vec::new();
        for (index, pk) in keys.into_iter().enumerate() {
            let key = VerifyingKey::from_bytes(&pk.0)
                .map_err(|_| CryptoError::InvalidPublicKey { index })?;
            if key.is_weak() {
                return Err(CryptoError::InvalidPublicKey { index });
            }
            out.push(key);
        }
        Ok(Self { keys: out })
    }

    fn key(&self, signer: ValidatorIndex) -> Result<&VerifyingKey, CryptoError> {
        self.keys.get(usize::from(signer)).ok_or(CryptoError::UnknownSigner { signer })
    }
}

impl Verifier for Ed25519Verifier {
    fn verify(
        &self,
        signer: ValidatorIndex,
        msg: &[u8],
        sig: &Signature,
    ) -> Result<(), CryptoError> {
        let sig = ed25519_dalek::Signature::from_bytes(&sig.0);
        self.key(signer)?
            .verify_strict(msg, &sig)
            .map_err(|_| CryptoError::InvalidSignature { signer })
    }

    fn verify_batch(&self, items: &[BatchItem<'_>]) -> Result<(), CryptoError> {
        match items {
            [] => Ok(()),
            [(signer, msg, sig)] => self.verify(*signer, msg, sig),
            _ => {
                let mut msgs = Vec::with_capacity(items.len());
                let mut sigs = Vec::with_capacity(items.len());
                let mut keys = Vec::with_capacity(items.len());
                for (signer, msg, sig) in items {
                    keys.push(*self.key(*signer)?);
                    msgs.push(*msg);
                    sigs.push(ed25519_dalek::Signature::from_bytes(&sig.0));
                }
                ed25519_dalek::verify_batch(&msgs, &sigs, &keys)
                    .map_err(|_| CryptoError::InvalidBatch { count: items.len() })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn setup(n: u8) -> (Vec<Ed25519Signer>, Ed25519Verifier) {
        let signers: Vec<_> = (0..n).map(|i| Ed25519Signer::from_seed(&[i + 1; 32])).collect();
        let pks: Vec<_> = signers.iter().map(|s| s.public_key()).collect();
        (signers, Ed25519Verifier::new(&pks).unwrap())
    }

    #[test]
    fn signs_and_verifies() {
        let (s, v) = setup(3);
        let sig = s[1].sign(b"hello");
        assert_eq!(v.verify(1, b"hello", &sig), Ok(()));
        assert_eq!(v.verify(0, b"hello", &sig), Err(CryptoError::InvalidSignature { signer: 0 }));
        assert_eq!(v.verify(1, b"hellp", &sig), Err(CryptoError::InvalidSignature { signer: 1 }));
        assert_eq!(v.verify(9, b"hello", &sig), Err(CryptoError::UnknownSigner { signer: 9 }));
    }

    #[test]
    fn batch_rejects_one_bad_signature() {
        let (s, v) = setup(4);
        let msgs: Vec<Vec<u8>> = (0..4u8).map(|i| vec![i; 10]).collect();
        let mut sigs: Vec<_> = s.iter().zip(&msgs).map(|(s, m)| s.sign(m)).collect();
        let items: Vec<BatchItem<'_>> =
            (0..4).map(|i| (i as u16, msgs[i].as_slice(), &sigs[i])).collect();
        assert_eq!(v.verify_batch(&items), Ok(()));
        sigs[2].0[5] ^= 1;
        let items: Vec<BatchItem<'_>> =
            (0..4).map(|i| (i as u16, msgs[i].as_slice(), &sigs[i])).collect();
        assert_eq!(v.verify_batch(&items), Err(CryptoError::InvalidBatch { count: 4 }));
        // a valid signature attributed to the wrong signer
        let sig0 = s[0].sign(&msgs[0]);
        let items: Vec<BatchItem<'_>> = vec![(0, &msgs[0], &sig0), (1, &msgs[0], &sig0)];
        assert!(v.verify_batch(&items).is_err());
    }

    #[test]
    fn refuses_invalid_public_key() {
        // the identity point is a weak (small-order) key
        let mut identity = [0u8; 32];
        identity[0] = 1;
        assert_eq!(
            Ed25519Verifier::new(&[PublicKey(identity)]).err(),
            Some(CryptoError::InvalidPublicKey { index: 0 })
        );
    }
}
