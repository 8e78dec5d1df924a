//! The range-sync wire protocol (request-response on [`SYNC_PROTOCOL`]): a peer's committed
//! height, and committed blocks with their QCs by height range. Both sides enforce explicit
//! limits: at most [`MAX_SYNC_BLOCKS`] blocks per response, responses of at most
//! [`MAX_SYNC_RESPONSE_BYTES`] (the server stops adding blocks at [`SYNC_RESPONSE_SOFT_BYTES`],
//! always sending at least one), requests of at most [`MAX_SYNC_REQUEST_BYTES`].

use crate::types::codec::{
    Codec, DecodeError, Reader, Writer, read_wire_format, write_wire_format,
};
use crate::types::{CommittedBlock, Height};
use libp2p::StreamProtocol;

/// The range-sync protocol name.
pub const SYNC_PROTOCOL: StreamProtocol = StreamProtocol::new("/tandem/consensus/sync/1");
/// Most blocks in one response.
pub const MAX_SYNC_BLOCKS: u64 = 256;
/// Largest response frame accepted, in bytes.
pub const MAX_SYNC_RESPONSE_BYTES: usize = 16 * 1024 * 1024;
/// Encoded size after which a server stops adding blocks to a response (a single block, at
/// most the 10 MiB of a proposal, always fits under [`MAX_SYNC_RESPONSE_BYTES`]).
pub const SYNC_RESPONSE_SOFT_BYTES: usize = 12 * 1024 * 1024;
/// Largest request frame accepted, in bytes.
pub const MAX_SYNC_REQUEST_BYTES: usize = 64;

/// A range-sync request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SyncRequest {
    /// What is your committed height?
    Status,
    /// Committed blocks at heights `from_height..=to_height` (at most [`MAX_SYNC_BLOCKS`]).
    Blocks {
        /// First height wanted.
        from_height: Height,
        /// Last height wanted.
        to_height: Height,
    },
}

/// A range-sync response.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SyncResponse {
    /// The server's committed height (the highest it can serve).
    Status {
        /// Committed height.
        committed_height: Height,
    },
    /// Committed blocks from the requested first height, contiguous, each with a QC certifying
    /// it; possibly fewer than asked (limits, or the server's tip).
    Blocks(Vec<CommittedBlock>),
    /// The server cannot answer now (overloaded or storage trouble): ask another peer.
    Busy,
}

impl SyncResponse {
    /// Short name for logs.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Status { .. } => "status",
            Self::Blocks(_) => "blocks",
            Self::Busy => "busy",
        }
    }
}

impl Codec for SyncRequest {
    const NAME: &'static str = "sync request";
    fn write(&self, w: &mut Writer) {
        write_wire_format(w);
        match self {
            Self::Status => w.u8(0),
            Self::Blocks { from_height, to_height } => {
                w.u8(1);
                w.u64(*from_height);
                w.u64(*to_height);
            }
        }
    }
    fn read(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        read_wire_format(r, Self::NAME)?;
        Ok(match r.u8(Self::NAME)? {
            0 => Self::Status,
            1 => Self::Blocks { from_height: r.u64(Self::NAME)?, to_height: r.u64(Self::NAME)? },
            tag => return Err(DecodeError::InvalidTag { what: Self::NAME, tag }),
        })
    }
}

impl Codec for SyncResponse {
    const NAME: &'static str = "sync response";
    fn write(&self, w: &mut Writer) {
        write_wire_format(w);
        match self {
            Self::Status { committed_height } => {
                w.u8(0);
                w.u64(*committed_height);
            }
            Self::Blocks(blocks) => {
                w.u8(1);
                w.len(blocks.len());
                for b in blocks {
                    b.write(w);
                }
            }
            Self::Busy => w.u8(2),
        }
    }
    fn read(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        read_wire_format(r, Self::NAME)?;
        Ok(match r.u8(Self::NAME)? {
            0 => Self::Status { committed_height: r.u64(Self::NAME)? },
            1 => {
                let len = r.len(MAX_SYNC_BLOCKS as usize, Self::NAME)?;
                let mut blocks = Vec::with_capacity(len);
                for _ in 0..len {
                    blocks.push(CommittedBlock::read(r)?);
                }
                Self::Blocks(blocks)
            }
            2 => Self::Busy,
            tag => return Err(DecodeError::InvalidTag { what: Self::NAME, tag }),
        })
    }
}
