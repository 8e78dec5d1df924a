//! Wire messages between consensus nodes. The sender's identity comes from the authenticated
//! transport; every signature inside is still verified before it changes state.

use super::codec::{
    Codec, DecodeError, Reader, Writer, read_list, read_wire_format, write_list, write_wire_format,
};
use super::{Block, BlockId, Proposal, QuorumCert, Timeout, TimeoutCert, Vote};

/// Most blocks asked for (and answered) in one block request.
pub const MAX_BLOCKS_PER_REQUEST: u16 = 32;
/// Most bytes of encoded blocks in one block response (the asked-for block always goes, so a
/// single block may exceed it): with the envelope it stays under the 10 MiB message limit of
/// the transport, however large the blocks are.
pub const MAX_BLOCK_RESPONSE_BYTES: usize = 8 * 1024 * 1024;

/// A consensus message.
#[derive(Clone, Debug, PartialEq, Eq)]
#[allow(
    clippy::large_enum_variant,
    reason = "moved once per message or action; boxing would add an allocation on the hot path for no memory win"
)]
pub enum Message {
    /// A leader's proposal (broadcast).
    Proposal(Proposal),
    /// A vote (to the next leader).
    Vote(Vote),
    /// A timeout (broadcast).
    Timeout(Timeout),
    /// The sender's highest certificates, sent to a peer that is behind.
    SyncInfo {
        /// Highest QC.
        high_qc: QuorumCert,
        /// Highest TC, if any.
        high_tc: Option<TimeoutCert>,
    },
    /// Asks for block `id` and up to `count - 1` of its ancestors.
    BlockRequest {
        /// The newest block wanted.
        id: BlockId,
        /// How many blocks, newest first (at most [`MAX_BLOCKS_PER_REQUEST`]).
        count: u16,
    },
    /// Blocks answering a request, newest first, each the parent of the one before.
    BlockResponse {
        /// The blocks.
        blocks: Vec<Block>,
    },
}

impl Message {
    /// Short name for logs and metrics.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Proposal(_) => "proposal",
            Self::Vote(_) => "vote",
            Self::Timeout(_) => "timeout",
            Self::SyncInfo { .. } => "sync_info",
            Self::BlockRequest { .. } => "block_request",
            Self::BlockResponse { .. } => "block_response",
        }
    }
}

impl Codec for Message {
    const NAME: &'static str = "message";
    fn write(&self, w: &mut Writer) {
        write_wire_format(w);
        match self {
            Self::Proposal(p) => {
                w.u8(0);
                p.write(w);
            }
            Self::Vote(v) => {
                w.u8(1);
                v.write(w);
            }
            Self::Timeout(t) => {
                w.u8(2);
                t.write(w);
            }
            Self::SyncInfo { high_qc, high_tc } => {
                w.u8(3);
                high_qc.write(w);
                w.option(high_tc.as_ref(), |w, tc| tc.write(w));
            }
            Self::BlockRequest { id, count } => {
                w.u8(4);
                w.b256(id);
                w.u16(*count);
            }
            Self::BlockResponse { blocks } => {
                w.u8(5);
                write_list(w, blocks);
            }
        }
    }
    fn read(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        read_wire_format(r, Self::NAME)?;
        Ok(match r.u8(Self::NAME)? {
            0 => Self::Proposal(Proposal::read(r)?),
            1 => Self::Vote(Vote::read(r)?),
            2 => Self::Timeout(Timeout::read(r)?),
            3 => Self::SyncInfo {
                high_qc: QuorumCert::read(r)?,
                high_tc: r.option(Self::NAME, TimeoutCert::read)?,
            },
            4 => Self::BlockRequest { id: r.b256(Self::NAME)?, count: r.u16(Self::NAME)? },
            5 => Self::BlockResponse { blocks: read_list(r)? },
            tag => return Err(DecodeError::InvalidTag { what: Self::NAME, tag }),
        })
    }
}
