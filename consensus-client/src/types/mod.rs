//! Consensus data types: blocks, votes, quorum and timeout certificates, proposals and the
//! wire messages, with their canonical encodings ([`codec`]).
//!
//! Identifiers: a block's id is the SHA-256 of a domain tag and its encoding, so an id
//! authenticates the whole block (including the QC it carries and its payload). Every signed
//! message is the plain (unhashed) concatenation of a domain tag, the chain id and the signed fields
//! (see `signing_bytes` on each type), so a signature for one purpose or chain is never valid for
//! another.

pub mod block;
pub mod codec;
pub mod committed;
pub mod message;
pub mod payload;
pub mod proposal;
pub mod qc;
pub mod timeout;
pub mod validator;
pub mod vote;

#[cfg(test)]
mod golden_tests;

pub use block::{Block, BlockId};
pub use codec::{Codec, DecodeError};
pub use committed::CommittedBlock;
pub use message::Message;
pub use payload::{Payload, PayloadAttributes, Withdrawal};
pub use proposal::Proposal;
pub use qc::QuorumCert;
pub use timeout::{Timeout, TimeoutCert};
pub use validator::{Validator, ValidatorIndex, ValidatorSet};
pub use vote::Vote;

use codec::{Reader, Writer};

/// A consensus round number.
pub type Round = u64;
/// A block height (the execution payload's block number).
pub type Height = u64;

/// A 64-byte signature (ed25519, or the test scheme of the same size).
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Signature(pub [u8; 64]);

impl std::fmt::Debug for Signature {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Signature({}..)", hex::encode(&self.0[..8]))
    }
}

impl Codec for Signature {
    const NAME: &'static str = "signature";
    fn write(&self, w: &mut Writer) {
        w.raw(&self.0);
    }
    fn read(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Ok(Self(r.array::<64>(Self::NAME)?))
    }
}

/// A 32-byte public key.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct PublicKey(pub [u8; 32]);

impl std::fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "PublicKey({})", hex::encode(self.0))
    }
}

impl Codec for PublicKey {
    const NAME: &'static str = "public key";
    fn write(&self, w: &mut Writer) {
        w.raw(&self.0);
    }
    fn read(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Ok(Self(r.array::<32>(Self::NAME)?))
    }
}

/// Domain tags that separate the signed and hashed messages of different kinds.
pub mod domain {
    /// Hash of a block.
    pub const BLOCK: &[u8] = b"tandem/v1/block";
    /// Signature of a proposal.
    pub const PROPOSAL: &[u8] = b"tandem/v1/proposal";
    /// Signature of a vote.
    pub const VOTE: &[u8] = b"tandem/v1/vote";
    /// Signature of a timeout.
    pub const TIMEOUT: &[u8] = b"tandem/v1/timeout";
    /// Derivation of `prevRandao`.
    pub const RANDAO: &[u8] = b"tandem/v1/randao";
    /// Digest of a whole execution payload (what an executor validated).
    pub const PAYLOAD: &[u8] = b"tandem/v1/payload";
}
