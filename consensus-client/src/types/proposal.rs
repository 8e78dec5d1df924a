//! Proposals: a block signed by its proposer, with the TC that justifies it when the previous
//! round ended without a QC.

use super::codec::{Codec, DecodeError, Reader, Writer};
use super::{Block, BlockId, Signature, TimeoutCert, domain};

/// A signed proposal.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Proposal {
    /// The proposed block.
    pub block: Block,
    /// TC of round `block.round - 1` when `block.qc.round + 1 != block.round`.
    pub tc: Option<TimeoutCert>,
    /// Proposer's signature over [`Proposal::signing_bytes`].
    pub signature: Signature,
}

impl Proposal {
    /// Bytes a proposal signs: the block id (which commits to the whole block).
    pub fn signing_bytes(chain_id: u64, block_id: &BlockId) -> Vec<u8> {
        let mut w = Writer::new();
        w.raw(domain::PROPOSAL);
        w.u64(chain_id);
        w.b256(block_id);
        w.finish()
    }
}

impl Codec for Proposal {
    const NAME: &'static str = "proposal";
    fn write(&self, w: &mut Writer) {
        self.block.write(w);
        w.option(self.tc.as_ref(), |w, tc| tc.write(w));
        self.signature.write(w);
    }
    fn read(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Ok(Self {
            block: Block::read(r)?,
            tc: r.option(Self::NAME, TimeoutCert::read)?,
            signature: Signature::read(r)?,
        })
    }
}
