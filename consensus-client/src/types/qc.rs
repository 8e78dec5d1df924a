//! Quorum certificates: votes of more than two thirds of the voting power for one block in one
//! round.

use super::codec::{Codec, DecodeError, MAX_LIST_LEN, Reader, Writer};
use super::{BlockId, Round, Signature, ValidatorIndex};

/// A quorum certificate. `signatures` is sorted by strictly increasing validator index, so a
/// certificate has one encoding and no signer counts twice.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct QuorumCert {
    /// The certified block.
    pub block_id: BlockId,
    /// The round of the certified block.
    pub round: Round,
    /// The voters and their vote signatures.
    pub signatures: Vec<(ValidatorIndex, Signature)>,
}

impl QuorumCert {
    /// The certificate of the genesis block: round 0, no signatures.
    pub fn genesis(genesis_id: BlockId) -> Self {
        Self { block_id: genesis_id, round: 0, signatures: Vec::new() }
    }
}

impl Codec for QuorumCert {
    const NAME: &'static str = "quorum certificate";
    fn write(&self, w: &mut Writer) {
        w.b256(&self.block_id);
        w.u64(self.round);
        w.len(self.signatures.len());
        for (index, sig) in &self.signatures {
            w.u16(*index);
            sig.write(w);
        }
    }
    fn read(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let block_id = r.b256(Self::NAME)?;
        let round = r.u64(Self::NAME)?;
        let len = r.len(MAX_LIST_LEN, Self::NAME)?;
        let mut signatures = Vec::with_capacity(len.min(128));
        for _ in 0..len {
            signatures.push((r.u16(Self::NAME)?, Signature::read(r)?));
        }
        Ok(Self { block_id, round, signatures })
    }
}
