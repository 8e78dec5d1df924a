//! Why a block is refused: an invalid block (the chain must not take it) or an internal failure
//! (the block may be fine, our database failed).

use alloy_primitives::{B256, Bloom};

/// A block that failed validation or execution, with its number and hash.
#[derive(Debug, thiserror::Error)]
#[error("block {number} ({hash}): {kind}")]
pub struct BlockError {
    /// Block number.
    pub number: u64,
    /// Block hash.
    pub hash: B256,
    /// What went wrong (boxed: errors stay small on the happy path).
    pub kind: Box<BlockErrorKind>,
}

impl BlockError {
    /// A block error of block `number` with hash `hash`.
    pub fn new(number: u64, hash: B256, kind: impl Into<BlockErrorKind>) -> Self {
        Self { number, hash, kind: Box::new(kind.into()) }
    }

    /// Whether the block itself is invalid (as opposed to an internal failure).
    pub fn is_invalid(&self) -> bool {
        matches!(*self.kind, BlockErrorKind::Invalid(_))
    }
}

/// The two families of block errors.
#[derive(Debug, thiserror::Error)]
pub enum BlockErrorKind {
    /// The block breaks a consensus rule.
    #[error("invalid block: {0}")]
    Invalid(#[from] InvalidBlock),
    /// Reading state or writing the block failed; says nothing about the block's validity.
    #[error("internal error: {0}")]
    Internal(String),
}

/// A consensus rule the block breaks.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InvalidBlock {
    /// The block's RLP does not decode.
    #[error("undecodable block RLP: {0}")]
    Decode(String),
    /// `parentHash` is not the parent's hash.
    #[error("parent hash {got} is not the parent's hash {expected}")]
    ParentHash {
        /// The parent's hash.
        expected: B256,
        /// The header's `parentHash`.
        got: B256,
    },
    /// The parent is not known.
    #[error("unknown parent {0}")]
    UnknownParent(B256),
    /// `number` is not the parent's number plus one.
    #[error("number {got} does not follow the parent's {parent}")]
    Number {
        /// The parent's number.
        parent: u64,
        /// The header's number.
        got: u64,
    },
    /// The timestamp does not move forward as the chain requires.
    #[error("timestamp {got} not after the parent's {parent}{}", if *.equal_allowed { " (equal allowed: subSecondBlocks)" } else { "" })]
    Timestamp {
        /// The parent's timestamp.
        parent: u64,
        /// The header's timestamp.
        got: u64,
        /// Whether the chain allows a timestamp equal to the parent's.
        equal_allowed: bool,
    },
    /// The gas limit moved too far from the parent's or is below the minimum.
    #[error("gas limit {got} not within bounds of the parent's {parent}")]
    GasLimit {
        /// The parent's gas limit.
        parent: u64,
        /// The header's gas limit.
        got: u64,
    },
    /// `gasUsed` exceeds `gasLimit`.
    #[error("gas used {used} above gas limit {limit}")]
    GasUsedAboveLimit {
        /// Header gas used.
        used: u64,
        /// Header gas limit.
        limit: u64,
    },
    /// `baseFeePerGas` is not the EIP-1559 value.
    #[error("base fee {got:?}, expected {expected}")]
    BaseFee {
        /// The computed base fee.
        expected: u64,
        /// The header's base fee.
        got: Option<u64>,
    },
    /// `extraData` is longer than 32 bytes.
    #[error("extra data of {0} bytes, at most 32 allowed")]
    ExtraData(usize),
    /// Proof-of-work fields are set after the merge.
    #[error("post-merge header with {0}")]
    PostMerge(&'static str),
    /// A fork-dependent header field is present before its fork or missing after it.
    #[error("header field {field} {}", if *.expected { "missing" } else { "not allowed at this fork" })]
    ForkField {
        /// The field name.
        field: &'static str,
        /// Whether the fork requires it.
        expected: bool,
    },
    /// `excessBlobGas` is not the EIP-4844 value.
    #[error("excess blob gas {got}, expected {expected}")]
    ExcessBlobGas {
        /// Computed from the parent.
        expected: u64,
        /// The header's value.
        got: u64,
    },
    /// `blobGasUsed` disagrees with the transactions or exceeds the maximum.
    #[error("blob gas used {got}, transactions use {expected} (block maximum {max})")]
    BlobGasUsed {
        /// Blob gas of the block's transactions.
        expected: u64,
        /// The header's value.
        got: u64,
        /// The fork's maximum per block.
        max: u64,
    },
    /// A root or hash in the header does not match the body or execution.
    #[error("{what} mismatch: header {header}, computed {computed}")]
    RootMismatch {
        /// Which root.
        what: &'static str,
        /// The header's value.
        header: B256,
        /// The computed value.
        computed: B256,
    },
    /// The logs bloom does not match the receipts.
    #[error("logs bloom mismatch: header {header}, computed {computed}")]
    Bloom {
        /// The header's bloom.
        header: Box<Bloom>,
        /// The receipts' bloom.
        computed: Box<Bloom>,
    },
    /// `gasUsed` does not match execution.
    #[error("gas used {header} in header, execution used {computed}")]
    GasUsed {
        /// The header's value.
        header: u64,
        /// The executed value.
        computed: u64,
    },
    /// Withdrawals present before Shanghai or missing after it, or ommers after the merge.
    #[error("body: {0}")]
    Body(&'static str),
    /// A transaction's signature does not recover.
    #[error("transaction {index} ({hash}): invalid signature")]
    Signature {
        /// Index in the block.
        index: usize,
        /// Transaction hash.
        hash: B256,
    },
    /// A transaction is not allowed at this fork.
    #[error("transaction {index} ({hash}): type {tx_type} not allowed at this fork")]
    TxType {
        /// Index in the block.
        index: usize,
        /// Transaction hash.
        hash: B256,
        /// EIP-2718 type.
        tx_type: u8,
    },
    /// Execution refused a transaction or a system call failed.
    #[error("execution: {0}")]
    Execution(String),
}
