//! Blocks: a round, the parent it extends with the QC that certifies that parent, the execution
//! payload and the proposer.

use super::codec::{Codec, DecodeError, Reader, Writer};
use super::{Height, Payload, QuorumCert, Round, ValidatorIndex, domain};
use alloy_primitives::B256;
use sha2::{Digest, Sha256};

/// A block id: SHA-256 of the block's domain tag and encoding.
pub type BlockId = B256;

/// A consensus block.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Block {
    /// Round in which it was proposed (0 only for genesis).
    pub round: Round,
    /// Id of the block it extends; equals `qc.block_id`.
    pub parent_id: BlockId,
    /// Certificate of the parent.
    pub qc: QuorumCert,
    /// The execution payload.
    pub payload: Payload,
    /// Index of the proposer.
    pub proposer: ValidatorIndex,
}

impl Block {
    /// The genesis block: round 0, built on nothing, carrying the EL genesis as payload.
    pub fn genesis(payload: Payload) -> Self {
        Self {
            round: 0,
            parent_id: B256::ZERO,
            qc: QuorumCert { block_id: B256::ZERO, round: 0, signatures: Vec::new() },
            payload,
            proposer: 0,
        }
    }
    /// The block id.
    pub fn id(&self) -> BlockId {
        let mut h = Sha256::new();
        h.update(domain::BLOCK);
        h.update(self.encode());
        B256::from_slice(&h.finalize())
    }
    /// Height, which is the execution payload's number.
    pub fn height(&self) -> Height {
        self.payload.number
    }
}

impl Codec for Block {
    const NAME: &'static str = "block";
    fn write(&self, w: &mut Writer) {
        w.u64(self.round);
        w.b256(&self.parent_id);
        self.qc.write(w);
        self.payload.write(w);
        w.u16(self.proposer);
    }
    fn read(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Ok(Self {
            round: r.u64(Self::NAME)?,
            parent_id: r.b256(Self::NAME)?,
            qc: QuorumCert::read(r)?,
            payload: Payload::read(r)?,
            proposer: r.u16(Self::NAME)?,
        })
    }
}
