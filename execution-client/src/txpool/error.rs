//! Why the pool refused a transaction, worded as geth words it (tools parse these strings).

use alloy_primitives::{Address, U256};

/// A transaction the pool refused; `Display` is the geth error text.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PoolError {
    /// The bytes are not a valid EIP-2718 transaction.
    #[error("rlp: {0}")]
    Decode(String),
    /// The transaction type is not accepted by this pool.
    #[error("transaction type not supported")]
    TxTypeNotSupported,
    /// Blob transactions need sidecars that the consensus client does not carry.
    #[error(
        "transaction type not supported: blob (type 3) transactions are not accepted, the consensus client carries no blob sidecars"
    )]
    BlobNotSupported,
    /// The signature does not recover to a sender.
    #[error("invalid sender")]
    InvalidSender,
    /// Signed for another chain.
    #[error("invalid sender: invalid chain id for signer: have {have} want {want}")]
    WrongChainId {
        /// The transaction's chain id.
        have: u64,
        /// This chain's id.
        want: u64,
    },
    /// The encoded transaction is larger than the pool accepts.
    #[error("oversized data: transaction size {size}, limit {limit}")]
    Oversized {
        /// Encoded size.
        size: usize,
        /// The limit.
        limit: usize,
    },
    /// Contract creation code over the EIP-3860 limit.
    #[error("max initcode size exceeded: code size {size}, limit {limit}")]
    InitCodeTooLarge {
        /// Init code length.
        size: usize,
        /// The limit.
        limit: usize,
    },
    /// The nonce has already been used by the sender.
    #[error("nonce too low: address {address}, tx: {tx} state: {state}")]
    NonceTooLow {
        /// The sender.
        address: Address,
        /// The transaction's nonce.
        tx: u64,
        /// The sender's next nonce.
        state: u64,
    },
    /// Nonce at the maximum value.
    #[error("nonce has max value: address {address}, nonce: {nonce}")]
    NonceMax {
        /// The sender.
        address: Address,
        /// The nonce.
        nonce: u64,
    },
    /// The sender cannot pay for the gas and value.
    #[error(
        "insufficient funds for gas * price + value: balance {balance}, tx cost {cost}, overshot {overshot}"
    )]
    InsufficientFunds {
        /// The sender's balance.
        balance: U256,
        /// gas limit × max fee + value.
        cost: U256,
        /// How much is missing.
        overshot: U256,
    },
    /// Gas limit below the intrinsic cost.
    #[error("intrinsic gas too low: gas {gas}, minimum needed {needed}")]
    IntrinsicGasTooLow {
        /// The gas limit.
        gas: u64,
        /// Intrinsic (or EIP-7623 floor) gas.
        needed: u64,
    },
    /// Gas limit above the block gas limit.
    #[error("exceeds block gas limit")]
    ExceedsBlockGasLimit,
    /// Tip above fee cap.
    #[error(
        "max priority fee per gas higher than max fee per gas: address {address}, maxPriorityFeePerGas: {tip}, maxFeePerGas: {fee_cap}"
    )]
    TipAboveFeeCap {
        /// The sender.
        address: Address,
        /// The tip.
        tip: u128,
        /// The fee cap.
        fee_cap: u128,
    },
    /// The tip is below the pool's minimum.
    #[error("transaction underpriced: gas tip cap {tip}, minimum needed {minimum}")]
    Underpriced {
        /// The transaction's tip.
        tip: u128,
        /// The pool's minimum.
        minimum: u128,
    },
    /// The exact transaction is already in the pool.
    #[error("already known")]
    AlreadyKnown,
    /// Same sender and nonce as a pooled transaction without a 10% bump of fee cap and tip.
    #[error("replacement transaction underpriced")]
    ReplacementUnderpriced,
    /// The sender holds as many transactions as one sender may.
    #[error("account limit exceeded: address {address}, limit {limit}")]
    AccountLimitExceeded {
        /// The sender.
        address: Address,
        /// Per-sender slots.
        limit: usize,
    },
    /// The pool is full of transactions that pay at least as much.
    #[error("txpool is full")]
    PoolFull,
    /// EIP-7702 transaction without authorizations.
    #[error("EIP-7702 transaction with empty auth list")]
    EmptyAuthorizationList,
    /// EIP-7702 transactions cannot create contracts.
    #[error("EIP-7702 transaction cannot be used to create contract")]
    SetCodeCreate,
    /// A fee field does not fit in the EVM's 256-bit arithmetic.
    #[error("fee cap higher than 2^256-1")]
    FeeCapVeryHigh,
    /// The account state could not be read.
    #[error("internal error: cannot read account state: {0}")]
    State(String),
}
