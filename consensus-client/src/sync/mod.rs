//! Range sync: how a node that is far behind (fresh, restarted, partitioned) catches up from
//! peers' persistent storage instead of their in-memory block stores.
//!
//! - [`protocol`]: the request-response messages (`Status`, `Blocks { from_height, to_height }`)
//!   and their limits.
//! - [`server`]: answers peers from the committed height index of the local storage.
//! - [`verify`]: checks a received range against the local committed tip and the genesis
//!   validator set (QC quorum and signatures, parent links, contiguous heights) and finds the
//!   prefix that the two-chain rule proves committed.
//! - [`peers`]: which peer to ask next and up to which height (claims backed by a verified QC
//!   or by validators first; strikes and back-off for claims that did not pan out).
//! - [`driver`]: the task that notices the node is behind, asks peers, verifies, hands the
//!   proven blocks to the node loop (`Event::Synced` of the core, which persists them as
//!   committed and delivers them to the EL in order) and logs progress.
//!
//! Nothing received is trusted before [`verify::verify_range`] accepted it, and a range it
//! refuses changes nothing: no block of it is persisted or sent to the EL.

pub mod driver;
pub mod peers;
pub mod protocol;
pub mod server;
pub mod verify;

pub use driver::{SyncConfig, SyncHandle, SyncParams, spawn};
pub use protocol::{SyncRequest, SyncResponse};
pub use server::SyncServer;
pub use verify::{Anchor, SyncError, VerifiedRange, VerifyContext, verify_range};

#[cfg(test)]
mod tests;
