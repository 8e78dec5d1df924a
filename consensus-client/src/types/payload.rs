//! The execution payload a block carries, reduced to what consensus binds, plus an opaque body.
//!
//! In production the payload is an Engine API `ExecutionPayload` (V3/V4): the engine-client
//! layer fills the binding fields below from it and keeps its full encoding in `body`. The core
//! never interprets `body`; it checks the binding fields against the parent block
//! ([`crate::core::voting::check_payload_binding`]) and asks the executor (the EL's
//! `engine_newPayload`) whether the whole payload is valid.

use super::codec::{Codec, DecodeError, Reader, Writer, read_list, write_list};
use alloy_primitives::B256;

/// An EIP-4895 withdrawal. Tandem blocks must carry none; the type exists so a payload that
/// does is representable and refused.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Withdrawal {
    /// Monotonic withdrawal index.
    pub index: u64,
    /// Beacon validator index.
    pub validator_index: u64,
    /// Recipient address.
    pub address: [u8; 20],
    /// Amount in gwei.
    pub amount: u64,
}

impl Codec for Withdrawal {
    const NAME: &'static str = "withdrawal";
    fn write(&self, w: &mut Writer) {
        w.u64(self.index);
        w.u64(self.validator_index);
        w.raw(&self.address);
        w.u64(self.amount);
    }
    fn read(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Ok(Self {
            index: r.u64(Self::NAME)?,
            validator_index: r.u64(Self::NAME)?,
            address: r.array::<20>(Self::NAME)?,
            amount: r.u64(Self::NAME)?,
        })
    }
}

/// An execution payload as consensus sees it.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Payload {
    /// The execution block hash (computed by the EL; checked by the executor).
    pub block_hash: B256,
    /// Must equal the parent consensus block's `payload.block_hash`.
    pub parent_hash: B256,
    /// Must equal the parent's number + 1.
    pub number: u64,
    /// Seconds; ≥ the parent's (strictly greater unless sub-second blocks are enabled).
    pub timestamp: u64,
    /// Must equal [`derive_prev_randao`] of the parent block id and the round.
    pub prev_randao: B256,
    /// Must equal the parent consensus block id.
    pub parent_beacon_block_root: B256,
    /// Must be empty.
    pub withdrawals: Vec<Withdrawal>,
    /// The full payload in the executor's own encoding, opaque to consensus.
    pub body: Vec<u8>,
}

impl Codec for Payload {
    const NAME: &'static str = "payload";
    fn write(&self, w: &mut Writer) {
        w.b256(&self.block_hash);
        w.b256(&self.parent_hash);
        w.u64(self.number);
        w.u64(self.timestamp);
        w.b256(&self.prev_randao);
        w.b256(&self.parent_beacon_block_root);
        write_list(w, &self.withdrawals);
        w.bytes(&self.body);
    }
    fn read(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Ok(Self {
            block_hash: r.b256(Self::NAME)?,
            parent_hash: r.b256(Self::NAME)?,
            number: r.u64(Self::NAME)?,
            timestamp: r.u64(Self::NAME)?,
            prev_randao: r.b256(Self::NAME)?,
            parent_beacon_block_root: r.b256(Self::NAME)?,
            withdrawals: read_list(r)?,
            body: r.bytes(Self::NAME)?,
        })
    }
}

impl Payload {
    /// SHA-256 of the whole payload (binding fields and body): what an executor's "already
    /// validated" memory must be keyed on, since `block_hash` is only a claim until the EL has
    /// checked it against the body.
    pub fn digest(&self) -> B256 {
        use sha2::{Digest, Sha256};
        let mut h = Sha256::new();
        h.update(super::domain::PAYLOAD);
        h.update(self.encode());
        B256::from_slice(&h.finalize())
    }
}

/// What the leader asks the executor to build on (Engine API payload attributes plus the
/// parent's execution hash).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PayloadAttributes {
    /// Execution hash of the parent payload (the `headBlockHash` of `forkchoiceUpdated`).
    pub parent_hash: B256,
    /// Number of the payload to build.
    pub number: u64,
    /// Timestamp in seconds.
    pub timestamp: u64,
    /// Derived `prevRandao`.
    pub prev_randao: B256,
    /// Parent consensus block id.
    pub parent_beacon_block_root: B256,
}

impl PayloadAttributes {
    /// Whether `payload` was built for these attributes (same binding fields, no withdrawals).
    pub fn matches(&self, payload: &Payload) -> bool {
        payload.parent_hash == self.parent_hash
            && payload.number == self.number
            && payload.timestamp == self.timestamp
            && payload.prev_randao == self.prev_randao
            && payload.parent_beacon_block_root == self.parent_beacon_block_root
            && payload.withdrawals.is_empty()
    }
}

/// `prevRandao` of the payload proposed in `round` on top of consensus block `parent`:
/// SHA-256 of a domain tag, the parent id and the round. Deterministic and known to every
/// replica; it is not unbiasable randomness (documented deviation from Ethereum's RANDAO).
pub fn derive_prev_randao(parent: &B256, round: u64) -> B256 {
    use sha2::{Digest, Sha256};
    let mut h = Sha256::new();
    h.update(super::domain::RANDAO);
    h.update(parent.as_slice());
    h.update(round.to_be_bytes());
    B256::from_slice(&h.finalize())
}
