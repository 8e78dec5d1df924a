//! A committed block with the QC that certifies it: what storage indexes by height and what
//! range sync sends. The QC is a certificate of the block itself (`qc.block_id == block.id()`);
//! that the block is committed, not only certified, is proven by the two-chain rule over a
//! range of them (see [`crate::sync`]).

use super::codec::{Codec, DecodeError, Reader, Writer};
use super::{Block, QuorumCert};

/// A block and a QC certifying it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CommittedBlock {
    /// The block.
    pub block: Block,
    /// A quorum certificate of `block`.
    pub qc: QuorumCert,
}

impl Codec for CommittedBlock {
    const NAME: &'static str = "committed block";
    fn write(&self, w: &mut Writer) {
        self.block.write(w);
        self.qc.write(w);
    }
    fn read(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Ok(Self { block: Block::read(r)?, qc: QuorumCert::read(r)? })
    }
}
