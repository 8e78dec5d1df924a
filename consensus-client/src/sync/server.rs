//! The serving side of range sync: answers peers from the persistent committed index
//! ([`CommittedChain`]), not from the in-memory block store, so any committed height is served.
//! Runs on a blocking thread beside the node loop (the network task calls [`SyncServer::serve`]).

use super::protocol::{MAX_SYNC_BLOCKS, SYNC_RESPONSE_SOFT_BYTES, SyncRequest, SyncResponse};
use crate::storage::CommittedChain;
use std::sync::Arc;
use tracing::{debug, warn};

/// Answers range-sync requests from storage.
#[derive(Clone)]
pub struct SyncServer {
    chain: Arc<dyn CommittedChain>,
    max_bytes: usize,
}

impl std::fmt::Debug for SyncServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SyncServer").field("max_bytes", &self.max_bytes).finish_non_exhaustive()
    }
}

impl SyncServer {
    /// A server reading `chain`, with the default response size target.
    pub fn new(chain: Arc<dyn CommittedChain>) -> Self {
        Self { chain, max_bytes: SYNC_RESPONSE_SOFT_BYTES }
    }

    /// Answers one request. Storage errors are logged and answered with `Busy`.
    pub fn serve(&self, request: &SyncRequest) -> SyncResponse {
        match *request {
            SyncRequest::Status => match self.chain.committed_tip() {
                Ok(committed_height) => SyncResponse::Status { committed_height },
                Err(e) => {
                    warn!("sync status: cannot read the committed index: {e}");
                    SyncResponse::Busy
                }
            },
            SyncRequest::Blocks { from_height, to_height } => {
                if from_height == 0 || to_height < from_height {
                    debug!(from_height, to_height, "empty sync range requested");
                    return SyncResponse::Blocks(Vec::new());
                }
                let count = (to_height - from_height).saturating_add(1).min(MAX_SYNC_BLOCKS);
                // `count` ≤ MAX_SYNC_BLOCKS, which fits in usize.
                let count = usize::try_from(count).unwrap_or(MAX_SYNC_BLOCKS as usize);
                match self.chain.committed_range(from_height, count, self.max_bytes) {
                    Ok(blocks) => SyncResponse::Blocks(blocks),
                    Err(e) => {
                        warn!(from_height, to_height, "sync range: cannot read storage: {e}");
                        SyncResponse::Busy
                    }
                }
            }
        }
    }
}
