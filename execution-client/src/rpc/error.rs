//! JSON-RPC errors with the codes and messages geth returns (tools match on both).

use alloy_primitives::Bytes;
use jsonrpsee::types::ErrorObjectOwned;

use crate::{storage::StorageError, txpool::PoolError};

/// Generic server-side failure (`-32000`, geth's default for state and pool errors).
pub const SERVER_ERROR: i32 = -32000;
/// Invalid method parameters.
pub const INVALID_PARAMS: i32 = -32602;
/// Internal error.
pub const INTERNAL_ERROR: i32 = -32603;
/// A limit was exceeded (`-32005`, as geth's "limit exceeded").
pub const LIMIT_EXCEEDED: i32 = -32005;
/// Execution reverted (`3`, with the revert data in `data`).
pub const EXECUTION_REVERTED: i32 = 3;

/// Why a request failed.
#[derive(Debug, thiserror::Error)]
pub enum RpcError {
    /// Bad parameters.
    #[error("{0}")]
    InvalidParams(String),
    /// The named block is not known (geth: "header not found").
    #[error("header not found")]
    HeaderNotFound,
    /// No safe block has been named by the consensus client yet.
    #[error("safe block not found")]
    SafeNotFound,
    /// No finalized block has been named by the consensus client yet.
    #[error("finalized block not found")]
    FinalizedNotFound,
    /// The transaction pool refused a transaction.
    #[error(transparent)]
    Pool(#[from] PoolError),
    /// The contract reverted.
    #[error("execution reverted{}", reason.as_ref().map(|r| format!(": {r}")).unwrap_or_default())]
    Reverted {
        /// Decoded `Error(string)` reason, if any.
        reason: Option<String>,
        /// Raw revert data.
        data: Bytes,
    },
    /// The EVM refused or halted the call (out of gas, insufficient funds, ...).
    #[error("{0}")]
    Execution(String),
    /// A configured limit was exceeded.
    #[error("{0}")]
    LimitExceeded(String),
    /// The request's work passed its deadline (`--rpc.evmtimeout`) and was stopped (geth's
    /// words); distinct from [`RpcError::Execution`] so no caller mistakes it for a failed call.
    #[error("execution aborted (timeout = {}s)", .0.as_secs_f64())]
    TimedOut(std::time::Duration),
    /// The filter id is not installed.
    #[error("filter not found")]
    FilterNotFound,
    /// Reading the database failed.
    #[error("storage: {0}")]
    Storage(#[from] StorageError),
    /// Something else failed inside the node.
    #[error("internal: {0}")]
    Internal(String),
}

impl RpcError {
    /// The JSON-RPC error code.
    pub fn code(&self) -> i32 {
        match self {
            Self::InvalidParams(_) => INVALID_PARAMS,
            Self::Reverted { .. } => EXECUTION_REVERTED,
            Self::LimitExceeded(_) => LIMIT_EXCEEDED,
            Self::Internal(_) => INTERNAL_ERROR,
            _ => SERVER_ERROR,
        }
    }
}

impl From<RpcError> for ErrorObjectOwned {
    fn from(error: RpcError) -> Self {
        let code = error.code();
        let message = error.to_string();
        match error {
            RpcError::Reverted { data, .. } => ErrorObjectOwned::owned(code, message, Some(data)),
            _ => ErrorObjectOwned::owned(code, message, None::<()>),
        }
    }
}

/// A method's result.
pub type RpcResult<T> = Result<T, RpcError>;

/// Decodes the reason of an `Error(string)` or `Panic(uint256)` revert.
pub fn decode_revert_reason(data: &[u8]) -> Option<String> {
    use alloy_sol_types::{Panic, Revert, SolError};
    if let Ok(revert) = Revert::abi_decode(data) {
        return Some(revert.reason);
    }
    Panic::abi_decode(data).ok().map(|panic| {
        panic
            .kind()
            .map(|kind| kind.to_string())
            .unwrap_or_else(|| format!("panic code {:#x}", panic.code))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloy_sol_types::{Revert, SolError};

    #[test]
    fn revert_maps_to_code_3_with_data_and_reason() {
        let data = Bytes::from(Revert::from("too poor").abi_encode());
        let err = RpcError::Reverted { reason: decode_revert_reason(&data), data: data.clone() };
        let obj: ErrorObjectOwned = err.into();
        assert_eq!(obj.code(), 3);
        assert_eq!(obj.message(), "execution reverted: too poor");
        let raw = obj.data().map(|d| d.get().to_string()).unwrap_or_default();
        assert_eq!(raw, format!("\"{data}\""));
    }

    #[test]
    fn pool_error_keeps_geth_text_and_code() {
        let obj: ErrorObjectOwned = RpcError::Pool(PoolError::AlreadyKnown).into();
        assert_eq!(obj.code(), -32000);
        assert_eq!(obj.message(), "already known");
    }
}
