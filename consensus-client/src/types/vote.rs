//! Votes: a validator's signature on one block in one round, sent to the next round's leader.

use super::codec::{Codec, DecodeError, Reader, Writer};
use super::{BlockId, Round, Signature, ValidatorIndex, domain};

/// A signed vote.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Vote {
    /// The block voted for.
    pub block_id: BlockId,
    /// Its round.
    pub round: Round,
    /// The voter.
    pub voter: ValidatorIndex,
    /// Signature over [`Vote::signing_bytes`].
    pub signature: Signature,
}

impl Vote {
    /// Bytes a vote (and each signature in a QC) signs.
    pub fn signing_bytes(chain_id: u64, block_id: &BlockId, round: Round) -> Vec<u8> {
        let mut w = Writer::new();
        w.raw(domain::VOTE);
        w.u64(chain_id);
        w.b256(block_id);
        w.u64(round);
        w.finish()
    }
}

impl Codec for Vote {
    const NAME: &'static str = "vote";
    fn write(&self, w: &mut Writer) {
        w.b256(&self.block_id);
        w.u64(self.round);
        w.u16(self.voter);
        self.signature.write(w);
    }
    fn read(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Ok(Self {
            block_id: r.b256(Self::NAME)?,
            round: r.u64(Self::NAME)?,
            voter: r.u16(Self::NAME)?,
            signature: Signature::read(r)?,
        })
    }
}
