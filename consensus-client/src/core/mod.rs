//! The consensus core: a deterministic, sans-IO state machine for two-chain HotStuff
//! (Jolteon / DiemBFT v4). [`Core::handle`] takes the time and one [`Event`] and returns the
//! [`Action`]s to perform; it never touches a clock, socket, disk, thread or RNG.
//!
//! # Protocol
//! - Round r is led by `LeaderElection::leader(r)`. The leader enters r holding a QC of round
//!   r−1 or a TC of round r−1; it asks the executor for a payload on top of its highest
//!   certified block (`Action::BuildPayload`), then broadcasts a signed proposal: the block
//!   (round, parent id, QC of the parent, payload, proposer) plus the TC when the QC is not of
//!   round r−1.
//! - A replica accepts a proposal only if the proposer is the round's leader, the signature, the
//!   QC and the TC verify, the round is its current round after processing those certificates,
//!   the parent is known (else it is fetched), the payload is bound to the parent
//!   ([`voting::check_payload_binding`]) and the executor finds it valid
//!   (`Action::ValidatePayload` → `Event::PayloadValidated`). It then votes, if the safety rules
//!   allow, to the leader of r+1.
//! - A quorum (> 2/3 of voting power) of votes for one block in one round is a QC; a node that
//!   sees a QC of round ≥ its round moves to the next round. Commit rule: [`commit`].
//! - Pacemaker ([`pacemaker`]): each round has a timer; on expiry the node signs a timeout
//!   carrying its highest QC (and, unsigned, its highest TC) and broadcasts it; it re-broadcasts
//!   the same timeout on each further expiry. A quorum of timeouts for a round is a TC, which
//!   moves every node that sees it to the next round. A node that sees timeouts of more than
//!   1/3 of the power for its round times out too (so one slow timer does not delay a TC).
//! - Every message is verified before it changes state. Certificates are verified once (an
//!   identical copy of a known certificate is not re-verified). Votes and timeouts are held only
//!   for rounds near the current one; messages more than one round ahead are subject to a
//!   per-sender token bucket; a peer sending stale timeouts gets one `SyncInfo` per round.
//! - Missing blocks (a QC's block, a proposal's parent, ancestors to commit) are fetched with
//!   `BlockRequest` from the sender or the QC's signers and accepted only if their id is one that
//!   a verified certificate or a stored block references.
//!
//! # Deviations from the papers
//! - The preferred-round check of Aptos' two-chain safety rules is kept for votes.
//! - Timeouts carry the highest TC unsigned (self-certifying) so lagging nodes catch up; Aptos
//!   sends separate sync info.
//! - Fetched ancestors of certified blocks are stored without re-running executor validation:
//!   a quorum already validated them; the engine layer feeds them to the EL on commit.
//!
//! # Persistence and failure
//! `Action::Persist` carries the safety data, blocks, QCs, commits and evidence. Actions are
//! ordered: a `Persist` that precedes a `Send`/`Broadcast` in the returned list must be durable
//! before that send is performed. If a write fails the node must stop (see
//! [`crate::safety_rules`]). On restart the node rebuilds the core from its storage
//! ([`Recovery`]) and feeds `Event::Start`, which re-sends the stored vote/timeout/proposal of the
//! current round instead of signing anything new.

pub mod commit;
pub mod doppelganger;
pub mod pacemaker;
pub mod round_state;
pub mod voting;

use crate::block_store::{BlockStore, ChainWalk};
use crate::crypto::{Signer, Verifier};
use crate::leader::LeaderElection;
use crate::safety_rules::{SafetyData, SafetyError, SafetyRules};
use crate::types::message::{MAX_BLOCK_RESPONSE_BYTES, MAX_BLOCKS_PER_REQUEST};
use crate::types::payload::derive_prev_randao;
use crate::types::{
    Block, BlockId, CommittedBlock, Height, Message, Payload, PayloadAttributes, Proposal,
    QuorumCert, Round, Signature, Timeout, TimeoutCert, ValidatorIndex, ValidatorSet, Vote,
};
use alloy_primitives::B256;
use doppelganger::{Doppelganger, StartData};
use pacemaker::Pacemaker;
use round_state::{TimeoutAggregator, TimeoutOutcome, VoteAggregator, VoteOutcome};
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::Arc;
use thiserror::Error;
use tracing::{debug, warn};

/// Votes and timeouts are held for rounds up to this far ahead of the current round.
pub const AGGREGATION_WINDOW: Round = 8;
/// Most outstanding block fetches.
const MAX_WANTS: usize = 256;
/// Most proposals waiting for their parent.
const MAX_WAITING_PROPOSALS: usize = 16;
/// Minimum time between two requests for the same block.
const REFETCH_INTERVAL_MS: u64 = 400;

/// Tunables of the core (defaults in one place: [`CoreConfig::default`]).
#[derive(Debug, Clone)]
pub struct CoreConfig {
    /// Chain id mixed into every signature.
    pub chain_id: u64,
    /// Whether a payload timestamp may equal its parent's.
    pub sub_second_blocks: bool,
    /// Round timer after progress, in milliseconds.
    pub round_timeout_base_ms: u64,
    /// Cap of the round timer, in milliseconds.
    pub round_timeout_max_ms: u64,
    /// How far a payload timestamp may be ahead of the local clock, in seconds.
    pub max_future_secs: u64,
    /// Token-bucket capacity for far-future messages per sender.
    pub future_budget: u32,
    /// Tokens refilled per second per sender.
    pub future_refill_per_sec: u32,
    /// Rounds of committed history kept in memory for peers' block fetches.
    pub retained_committed_rounds: Round,
    /// Abstain from signing while the safety data may be stale ([`doppelganger`]).
    pub doppelganger_protection: bool,
    /// Whether blocks beyond genesis are known outside the consensus data at start (the
    /// execution client's chain): with no safety data, the consensus data dir was wiped on a
    /// running chain, not started on a new one.
    pub chain_has_run: bool,
}

impl Default for CoreConfig {
    fn default() -> Self {
        Self {
            chain_id: 1,
            sub_second_blocks: false,
            round_timeout_base_ms: 3_000,
            round_timeout_max_ms: 10_000,
            max_future_secs: 4,
            future_budget: 64,
            future_refill_per_sec: 32,
            retained_committed_rounds: crate::block_store::RETAINED_COMMITTED_ROUNDS,
            doppelganger_protection: true,
            chain_has_run: false,
        }
    }
}

/// A timer the core asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Timer {
    /// The round timer of a round.
    Round(Round),
    /// The earliest time the leader may build the payload of a round (timestamps must grow).
    Propose(Round),
}

/// An input to the core.
#[derive(Debug, Clone)]
#[allow(
    clippy::large_enum_variant,
    reason = "moved once per message or action; boxing would add an allocation on the hot path for no memory win"
)]
pub enum Event {
    /// The node (re)started: arm timers and re-send what was signed in the current round.
    Start,
    /// A message from an authenticated peer.
    Message {
        /// The peer.
        from: ValidatorIndex,
        /// What it sent.
        message: Message,
    },
    /// A timer set by `Action::SetTimer` fired.
    Timer(Timer),
    /// The executor's answer to `Action::BuildPayload` (`None`: it could not build).
    PayloadBuilt {
        /// The round it was built for.
        round: Round,
        /// The payload.
        payload: Option<Payload>,
    },
    /// The executor's answer to `Action::ValidatePayload`.
    PayloadValidated {
        /// The block whose payload was checked.
        block_id: BlockId,
        /// Whether it is valid (`newPayload` → `VALID`).
        valid: bool,
    },
    /// A validator's peer (re)connected: it may have missed our timeout and certificates.
    PeerConnected(ValidatorIndex),
    /// Committed blocks fetched by range sync, already verified by [`crate::sync::verify`]
    /// (quorum QCs, hash links, contiguous heights, two-chain commit proof), oldest first, each
    /// with its id. Blocks at or below the committed height are skipped; the rest must extend
    /// the committed tip, or the whole range is refused.
    Synced {
        /// The blocks with their ids.
        blocks: Vec<(BlockId, CommittedBlock)>,
    },
}

/// Kind of a signed message in equivocation evidence.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EvidenceKind {
    /// Two proposals for one round.
    Proposal,
    /// Two votes for one round.
    Vote,
    /// Two timeouts for one round.
    Timeout,
}

/// Proof that `signer` signed two different messages of one kind for one round. Each side is
/// the signed digest (block id; for timeouts the signed QC round, big-endian in the last 8
/// bytes) and the signature, enough to re-check with the signing-bytes functions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Evidence {
    /// What was signed twice.
    pub kind: EvidenceKind,
    /// The round.
    pub round: Round,
    /// The equivocating validator.
    pub signer: ValidatorIndex,
    /// The first message seen.
    pub first: (B256, Signature),
    /// The conflicting one.
    pub second: (B256, Signature),
}

/// A write the node loop must make durable.
#[derive(Debug, Clone)]
#[allow(
    clippy::large_enum_variant,
    reason = "moved once per message or action; boxing would add an allocation on the hot path for no memory win"
)]
pub enum PersistOp {
    /// The safety data (must be synced before the following sends).
    Safety(SafetyData),
    /// A block that entered the block store.
    Block(Block),
    /// A QC seen for the first time.
    Qc(QuorumCert),
    /// A block committed at a height, with a QC certifying it (for the height index that
    /// range sync serves).
    Committed {
        /// Height.
        height: Height,
        /// The block.
        block_id: BlockId,
        /// A QC of the block.
        qc: QuorumCert,
    },
    /// Equivocation evidence.
    Evidence(Evidence),
}

/// An effect the node loop performs, in order.
#[derive(Debug, Clone)]
#[allow(
    clippy::large_enum_variant,
    reason = "moved once per message or action; boxing would add an allocation on the hot path for no memory win"
)]
pub enum Action {
    /// Make a write durable (before any later action).
    Persist(PersistOp),
    /// Send to one peer.
    Send {
        /// The peer.
        to: ValidatorIndex,
        /// The message.
        message: Message,
    },
    /// Send to every other validator.
    Broadcast {
        /// The message.
        message: Message,
    },
    /// Fire `Event::Timer(timer)` at `at_ms` (absolute, same clock as `handle`'s `now_ms`).
    SetTimer {
        /// Which timer.
        timer: Timer,
        /// When.
        at_ms: u64,
    },
    /// Ask the executor to build a payload (answer: `Event::PayloadBuilt`).
    BuildPayload {
        /// The round.
        round: Round,
        /// What to build on.
        attributes: PayloadAttributes,
    },
    /// Ask the executor whether a payload is valid (answer: `Event::PayloadValidated`).
    ValidatePayload {
        /// The block carrying it.
        block_id: BlockId,
        /// The payload.
        payload: Payload,
    },
    /// A block is committed: deliver it to the execution side (in order, exactly once).
    Commit {
        /// Its id.
        block_id: BlockId,
        /// The block.
        block: Block,
    },
    /// Tell the EL the new head (newest certified block) and finalized (last committed) hashes.
    ForkChoice {
        /// Payload hash of the newest certified block.
        head: B256,
        /// Payload hash of the last committed block.
        finalized: B256,
    },
    /// Equivocation by another validator was detected (also persisted).
    Evidence(Evidence),
}

/// Why an input was rejected (logged at debug level and counted).
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum Reject {
    /// The sender is not a validator.
    #[error("message from unknown validator {from}")]
    UnknownSender {
        /// The sender.
        from: ValidatorIndex,
    },
    /// The proposer is not the round's leader.
    #[error("proposal of round {round} by {proposer}, leader is {leader}")]
    WrongProposer {
        /// Round.
        round: Round,
        /// Claimed proposer.
        proposer: ValidatorIndex,
        /// Actual leader.
        leader: ValidatorIndex,
    },
    /// The block is malformed (parent id vs QC, round order).
    #[error("malformed block {block_id} of round {round}: {reason}")]
    MalformedBlock {
        /// Round.
        round: Round,
        /// Block.
        block_id: BlockId,
        /// What is wrong.
        reason: &'static str,
    },
    /// A signature did not verify.
    #[error("invalid {kind} signature by {signer} in round {round}")]
    InvalidSignature {
        /// Message kind.
        kind: &'static str,
        /// Round.
        round: Round,
        /// Claimed signer.
        signer: ValidatorIndex,
    },
    /// A QC is invalid.
    #[error("invalid QC for block {block_id} round {round}: {reason}")]
    InvalidQc {
        /// Round.
        round: Round,
        /// Block.
        block_id: BlockId,
        /// What is wrong.
        reason: &'static str,
    },
    /// A TC is invalid.
    #[error("invalid TC of round {round}: {reason}")]
    InvalidTc {
        /// Round.
        round: Round,
        /// What is wrong.
        reason: &'static str,
    },
    /// A payload is not bound to its parent.
    #[error("payload of block {block_id} round {round} not bound to its parent: {reason}")]
    PayloadBinding {
        /// Round.
        round: Round,
        /// Block.
        block_id: BlockId,
        /// Which binding failed.
        reason: &'static str,
    },
    /// The executor found the payload invalid.
    #[error("executor rejected the payload of block {block_id} round {round}")]
    InvalidPayload {
        /// Round.
        round: Round,
        /// Block.
        block_id: BlockId,
    },
    /// The message is for a round that is over.
    #[error("stale {kind} for round {round}, current round {current}")]
    Stale {
        /// Message kind.
        kind: &'static str,
        /// Its round.
        round: Round,
        /// Current round.
        current: Round,
    },
    /// The message is for a round not (yet) justified.
    #[error("{kind} for round {round} not justified in current round {current}")]
    NotCurrentRound {
        /// Message kind.
        kind: &'static str,
        /// Its round.
        round: Round,
        /// Current round.
        current: Round,
    },
    /// The sender exceeded its budget for far-future messages.
    #[error("rate limited far-future {kind} from {from} for round {round}")]
    RateLimited {
        /// Message kind.
        kind: &'static str,
        /// Sender.
        from: ValidatorIndex,
        /// Round.
        round: Round,
    },
    /// A vote was sent to a node that does not lead the next round.
    #[error("vote for round {round} sent to a node that does not lead round {round} + 1")]
    NotNextLeader {
        /// Round.
        round: Round,
    },
    /// Already seen.
    #[error("duplicate {kind} for round {round}")]
    Duplicate {
        /// Message kind.
        kind: &'static str,
        /// Round.
        round: Round,
    },
    /// The signer equivocated (evidence emitted).
    #[error("equivocating {kind} by {signer} in round {round}")]
    Equivocation {
        /// Message kind.
        kind: &'static str,
        /// Round.
        round: Round,
        /// Signer.
        signer: ValidatorIndex,
    },
    /// A timeout's content is inconsistent.
    #[error("malformed timeout by {signer} for round {round}: {reason}")]
    MalformedTimeout {
        /// Round.
        round: Round,
        /// Signer.
        signer: ValidatorIndex,
        /// What is wrong.
        reason: &'static str,
    },
    /// The executor answered something not asked for.
    #[error("unexpected executor reply for round {round}")]
    UnexpectedExecutorReply {
        /// Round.
        round: Round,
    },
    /// Safety rules refused to sign.
    #[error(transparent)]
    Safety(#[from] SafetyError),
    /// A synced range does not extend the committed tip.
    #[error("synced range refused: {reason}")]
    SyncedRange {
        /// What is wrong.
        reason: &'static str,
    },
    /// A block request asked for nothing we have, or a response held nothing we wanted.
    #[error("useless block {kind} from {from}")]
    UselessBlocks {
        /// `request` or `response`.
        kind: &'static str,
        /// The peer.
        from: ValidatorIndex,
    },
}

impl Reject {
    /// Whether the message itself proves misbehaviour, whatever the receiver's state: a
    /// signature that does not verify, a certificate without a valid quorum, a proposal by a
    /// validator that does not lead its round, a malformed block or timeout. Honest nodes never
    /// produce or relay such a message (they check exactly this before relaying), so the peer
    /// that delivered it is scored down. Stale, duplicate, rate-limited or not-yet-justified
    /// messages, equivocations (evidence is kept) and checks against the local clock or the
    /// executor are not.
    pub fn is_culpable(&self) -> bool {
        matches!(
            self,
            Self::WrongProposer { .. }
                | Self::MalformedBlock { .. }
                | Self::InvalidSignature { .. }
                | Self::InvalidQc { .. }
                | Self::InvalidTc { .. }
                | Self::MalformedTimeout { .. }
        )
    }

    /// A stable label for metrics.
    pub fn label(&self) -> &'static str {
        match self {
            Self::UnknownSender { .. } => "unknown_sender",
            Self::WrongProposer { .. } => "wrong_proposer",
            Self::MalformedBlock { .. } => "malformed_block",
            Self::InvalidSignature { .. } => "invalid_signature",
            Self::InvalidQc { .. } => "invalid_qc",
            Self::InvalidTc { .. } => "invalid_tc",
            Self::PayloadBinding { .. } => "payload_binding",
            Self::InvalidPayload { .. } => "invalid_payload",
            Self::Stale { .. } => "stale",
            Self::NotCurrentRound { .. } => "not_current_round",
            Self::RateLimited { .. } => "rate_limited",
            Self::NotNextLeader { .. } => "not_next_leader",
            Self::Duplicate { .. } => "duplicate",
            Self::Equivocation { .. } => "equivocation",
            Self::MalformedTimeout { .. } => "malformed_timeout",
            Self::UnexpectedExecutorReply { .. } => "unexpected_executor_reply",
            Self::Safety(_) => "safety",
            Self::UselessBlocks { .. } => "useless_blocks",
            Self::SyncedRange { .. } => "synced_range",
        }
    }
}

/// Why a core could not be built.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum CoreError {
    /// This node's index is not in the validator set.
    #[error("validator index {me} is not in the validator set of {n}")]
    NotAValidator {
        /// The index.
        me: ValidatorIndex,
        /// Set size.
        n: usize,
    },
    /// The signer's key is not the validator set's key for this index.
    #[error("the signing key does not match validator {me}'s public key")]
    KeyMismatch {
        /// The index.
        me: ValidatorIndex,
    },
    /// Recovered storage names a committed block it does not hold.
    #[error("recovered committed block {block_id} is missing from storage")]
    MissingCommittedBlock {
        /// The block.
        block_id: BlockId,
    },
}

/// What the node loop reads from storage to restart a core.
#[derive(Debug, Clone)]
pub struct Recovery {
    /// Safety data.
    pub safety: SafetyData,
    /// Stored blocks (any order).
    pub blocks: Vec<Block>,
    /// Stored QCs.
    pub qcs: Vec<QuorumCert>,
    /// Committed tip, if anything beyond genesis was committed.
    pub committed: Option<BlockId>,
}

/// Everything a core is built from.
pub struct CoreParams {
    /// Tunables.
    pub config: CoreConfig,
    /// This validator's index.
    pub me: ValidatorIndex,
    /// The validator set.
    pub validators: Arc<ValidatorSet>,
    /// This validator's key.
    pub signer: Box<dyn Signer>,
    /// Verifier for the set's keys.
    pub verifier: Arc<dyn Verifier>,
    /// Leader election.
    pub election: Box<dyn LeaderElection>,
    /// The genesis block.
    pub genesis: Block,
}

/// Counters of what the core did and refused.
#[derive(Debug, Default, Clone)]
pub struct CoreStats {
    /// Rejections by [`Reject::label`].
    pub rejected: BTreeMap<&'static str, u64>,
    /// Votes signed.
    pub votes: u64,
    /// Timeouts signed.
    pub timeouts: u64,
    /// Proposals signed.
    pub proposals: u64,
    /// Blocks committed.
    pub commits: u64,
    /// Of those, blocks committed from range sync.
    pub synced: u64,
    /// QCs formed from own aggregation.
    pub qcs_formed: u64,
    /// TCs formed from own aggregation.
    pub tcs_formed: u64,
    /// Votes, timeouts and proposals not signed because the safety data may be stale.
    pub abstained: u64,
}

#[derive(Debug)]
struct Want {
    last_request_ms: Option<u64>,
    attempts: u32,
    hint: Option<ValidatorIndex>,
}

#[derive(Debug)]
struct Bucket {
    tokens: u32,
    last_ms: u64,
}

#[derive(Debug)]
struct Building {
    round: Round,
    attributes: PayloadAttributes,
    qc: QuorumCert,
    tc: Option<TimeoutCert>,
}

/// The consensus state machine of one validator.
pub struct Core {
    cfg: CoreConfig,
    me: ValidatorIndex,
    validators: Arc<ValidatorSet>,
    signer: Box<dyn Signer>,
    verifier: Arc<dyn Verifier>,
    election: Box<dyn LeaderElection>,
    genesis_id: BlockId,
    pacemaker: Pacemaker,
    safety: SafetyRules,
    doppelganger: Doppelganger,
    store: BlockStore,
    round: Round,
    now_ms: u64,
    votes: VoteAggregator,
    timeouts: TimeoutAggregator,
    building: Option<Building>,
    pending_validation: HashMap<BlockId, (Block, Option<TimeoutCert>)>,
    waiting_parent: BTreeMap<Round, (ValidatorIndex, Proposal, BlockId)>,
    seen_proposals: BTreeMap<Round, (BlockId, Signature)>,
    wants: HashMap<BlockId, Want>,
    deferred_commit_checks: BTreeSet<BlockId>,
    /// Block to commit, its round, and the QC certifying it (from its certified child).
    commit_target: Option<(BlockId, Round, QuorumCert)>,
    sync_replies: HashMap<ValidatorIndex, Round>,
    buckets: HashMap<ValidatorIndex, Bucket>,
    evidence_seen: BTreeMap<Round, HashSet<(u8, ValidatorIndex)>>,
    stats: CoreStats,
    last_reject: Option<Reject>,
}

impl std::fmt::Debug for Core {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Core")
            .field("me", &self.me)
            .field("round", &self.round)
            .field("committed_height", &self.store.committed_height())
            .finish_non_exhaustive()
    }
}

impl Core {
    /// Builds a core, fresh (`recovery = None`) or from storage.
    pub fn new(params: CoreParams, recovery: Option<Recovery>) -> Result<Self, CoreError> {
        let CoreParams { config, me, validators, signer, verifier, election, genesis } = params;
        let Some(v) = validators.get(me) else {
            return Err(CoreError::NotAValidator { me, n: validators.len() });
        };
        if v.public_key != signer.public_key() {
            return Err(CoreError::KeyMismatch { me });
        }
        let genesis_id = genesis.id();
        let mut store = BlockStore::with_retention(genesis, config.retained_committed_rounds);
        let start = match (&recovery, config.chain_has_run) {
            (Some(_), _) => StartData::Stored,
            (None, false) => StartData::Missing,
            (None, true) => StartData::MissingOnRunningChain,
        };
        let safety_data = match recovery {
            None => SafetyData::new(QuorumCert::genesis(genesis_id)),
            Some(rec) => {
                for b in rec.blocks {
                    let id = b.id();
                    store.insert_qc(&b.qc);
                    store.insert(id, b);
                }
                for qc in &rec.qcs {
                    store.insert_qc(qc);
                }
                if let Some(c) = rec.committed {
                    if !store.contains(&c) {
                        return Err(CoreError::MissingCommittedBlock { block_id: c });
                    }
                    store.set_committed(c);
                }
                rec.safety
            }
        };
        let round =
            safety_data.high_qc.round.max(safety_data.high_tc.as_ref().map_or(0, |t| t.round)) + 1;
        let pacemaker = Pacemaker {
            base_ms: config.round_timeout_base_ms,
            max_ms: config.round_timeout_max_ms,
        };
        let chain_id = config.chain_id;
        let doppelganger = Doppelganger::new(config.doppelganger_protection, start);
        Ok(Self {
            cfg: config,
            me,
            validators,
            signer,
            verifier,
            election,
            genesis_id,
            pacemaker,
            safety: SafetyRules::new(safety_data, chain_id),
            doppelganger,
            store,
            round,
            now_ms: 0,
            votes: VoteAggregator::default(),
            timeouts: TimeoutAggregator::default(),
            building: None,
            pending_validation: HashMap::new(),
            waiting_parent: BTreeMap::new(),
            seen_proposals: BTreeMap::new(),
            wants: HashMap::new(),
            deferred_commit_checks: BTreeSet::new(),
            commit_target: None,
            sync_replies: HashMap::new(),
            buckets: HashMap::new(),
            evidence_seen: BTreeMap::new(),
            stats: CoreStats::default(),
            last_reject: None,
        })
    }

    /// The current round.
    pub fn round(&self) -> Round {
        self.round
    }
    /// This validator's index.
    pub fn me(&self) -> ValidatorIndex {
        self.me
    }
    /// The genesis block id.
    pub fn genesis_id(&self) -> BlockId {
        self.genesis_id
    }
    /// The last round of a doppelganger abstention in force, if any.
    pub fn abstaining_through(&self) -> Option<Round> {
        self.doppelganger.abstaining_through()
    }
    /// Whether doppelganger protection withholds votes and timeouts in the current round.
    pub fn abstaining(&self) -> bool {
        self.doppelganger.withholds(self.round)
    }
    /// The safety data (as last handed to `Persist`).
    pub fn safety_data(&self) -> &SafetyData {
        self.safety.data()
    }
    /// Height of the committed tip.
    pub fn committed_height(&self) -> Height {
        self.store.committed_height()
    }
    /// Height of the highest block known to be certified by a QC this core verified: the high
    /// QC's block if it is stored, else the committed tip. Range sync trusts peers' claims up
    /// to it.
    pub fn certified_height(&self) -> Height {
        let hqc = &self.safety.data().high_qc;
        self.store.get(&hqc.block_id).map_or(0, |b| b.height()).max(self.store.committed_height())
    }
    /// The committed tip.
    pub fn committed_id(&self) -> BlockId {
        self.store.committed_id()
    }
    /// The block store.
    pub fn block_store(&self) -> &BlockStore {
        &self.store
    }
    /// Counters.
    pub fn stats(&self) -> &CoreStats {
        &self.stats
    }

    /// Handles one event at local time `now_ms` and returns the actions to perform, in order.
    pub fn handle(&mut self, now_ms: u64, event: Event) -> Vec<Action> {
        self.now_ms = self.now_ms.max(now_ms);
        let mut out = Vec::new();
        let result = match event {
            Event::Start => {
                self.on_start(&mut out);
                Ok(())
            }
            Event::Message { from, message } => self.on_message(from, message, &mut out),
            Event::Timer(Timer::Round(r)) => {
                self.on_round_timer(r, &mut out);
                Ok(())
            }
            Event::Timer(Timer::Propose(r)) => {
                if r == self.round {
                    self.try_propose(&mut out);
                }
                Ok(())
            }
            Event::PayloadBuilt { round, payload } => {
                self.on_payload_built(round, payload, &mut out)
            }
            Event::PayloadValidated { block_id, valid } => {
                self.on_payload_validated(block_id, valid, &mut out)
            }
            Event::Synced { blocks } => self.on_synced(blocks, &mut out),
            Event::PeerConnected(validator) => {
                self.on_peer_connected(validator, &mut out);
                Ok(())
            }
        };
        self.last_reject = match result {
            Ok(()) => None,
            Err(e) => {
                debug!(me = self.me, round = self.round, error = %e, "rejected input");
                *self.stats.rejected.entry(e.label()).or_default() += 1;
                Some(e)
            }
        };
        out
    }

    /// Why the event last handled was refused (`None` if it was taken). The node loop turns
    /// this into a verdict on the peer that sent a message ([`Reject::is_culpable`]).
    pub fn last_rejection(&self) -> Option<&Reject> {
        self.last_reject.as_ref()
    }

    fn leader(&self, round: Round) -> ValidatorIndex {
        self.election.leader(round)
    }

    fn persist_safety(&self, out: &mut Vec<Action>) {
        out.push(Action::Persist(PersistOp::Safety(self.safety.data().clone())));
    }

    fn on_start(&mut self, out: &mut Vec<Action>) {
        let r = self.round;
        self.arm_round_timer(out);
        let data = self.safety.data().clone();
        if let Some(v) = data.last_vote.filter(|v| v.round == r) {
            self.send_vote(v, out);
        }
        if let Some(t) = data.last_timeout.filter(|t| t.round == r) {
            out.push(Action::Broadcast { message: Message::Timeout(t.clone()) });
            let _ = self.timeouts.add(t, &self.validators);
        }
        if let Some(p) = data.last_proposal.filter(|p| p.block.round == r) {
            out.push(Action::Broadcast { message: Message::Proposal(p.clone()) });
            let id = p.block.id();
            self.seen_proposals.insert(r, (id, p.signature));
            self.consider_proposal(self.me, p, id, out);
        } else if self.leader(r) == self.me {
            self.try_propose(out);
        }
        let hqc = self.safety.data().high_qc.clone();
        self.check_commit(&hqc, None, out);
    }

    fn arm_round_timer(&self, out: &mut Vec<Action>) {
        let high_qc = &self.safety.data().high_qc;
        let d = self.pacemaker.round_duration_ms(self.round, high_qc.round);
        // The round's block cannot be built before its timestamp may follow the parent's
        // (up to `max_future_secs` ahead of our clock): the round lasts that much longer, so a
        // leader whose clock runs ahead cannot make the next honest leader's round time out.
        let wait = self.store.get(&high_qc.block_id).map_or(0, |parent| {
            let min_ts = parent.payload.timestamp + u64::from(!self.cfg.sub_second_blocks);
            min_ts.saturating_mul(1000).saturating_sub(self.now_ms)
        });
        out.push(Action::SetTimer {
            timer: Timer::Round(self.round),
            at_ms: self.now_ms.saturating_add(wait).saturating_add(d),
        });
    }

    fn take_token(&mut self, from: ValidatorIndex) -> bool {
        let (cap, rate, now) =
            (self.cfg.future_budget, self.cfg.future_refill_per_sec, self.now_ms);
        let b = self.buckets.entry(from).or_insert(Bucket { tokens: cap, last_ms: now });
        let refill = now.saturating_sub(b.last_ms) * u64::from(rate) / 1000;
        if refill > 0 {
            b.tokens = (u64::from(b.tokens) + refill).min(u64::from(cap)) as u32;
            b.last_ms = now;
        }
        if b.tokens == 0 {
            return false;
        }
        b.tokens -= 1;
        true
    }

    fn on_message(
        &mut self,
        from: ValidatorIndex,
        message: Message,
        out: &mut Vec<Action>,
    ) -> Result<(), Reject> {
        if self.validators.get(from).is_none() || from == self.me {
            return Err(Reject::UnknownSender { from });
        }
        let msg_round = match &message {
            Message::Proposal(p) => Some(p.block.round),
            Message::Vote(v) => Some(v.round),
            Message::Timeout(t) => Some(t.round),
            Message::SyncInfo { high_qc, high_tc } => {
                Some(high_qc.round.max(high_tc.as_ref().map_or(0, |t| t.round)))
            }
            _ => None,
        };
        if let Some(r) = msg_round
            && r > self.round + 1
            && !self.take_token(from)
        {
            return Err(Reject::RateLimited { kind: message.kind(), from, round: r });
        }
        match message {
            Message::Proposal(p) => self.on_proposal(from, p, out),
            Message::Vote(v) => self.on_vote(from, v, out),
            Message::Timeout(t) => self.on_timeout(from, t, out),
            Message::SyncInfo { high_qc, high_tc } => {
                if let Some(tc) = high_tc {
                    self.verify_and_process_tc(&tc, Some(from), out)?;
                }
                self.verify_and_process_qc(&high_qc, Some(from), out)
            }
            Message::BlockRequest { id, count } => {
                let count = usize::from(count.clamp(1, MAX_BLOCKS_PER_REQUEST));
                let blocks = self.store.chain_from(id, count, MAX_BLOCK_RESPONSE_BYTES);
                if blocks.is_empty() {
                    return Err(Reject::UselessBlocks { kind: "request", from });
                }
                out.push(Action::Send { to: from, message: Message::BlockResponse { blocks } });
                Ok(())
            }
            Message::BlockResponse { blocks } => self.on_blocks(from, blocks, out),
        }
    }

    // ---------------------------------------------------------------- certificates

    fn qc_known(&self, qc: &QuorumCert) -> bool {
        qc.round == 0 && qc.block_id == self.genesis_id && qc.signatures.is_empty()
            || self.safety.data().high_qc == *qc
            || self.store.qc(&qc.block_id) == Some(qc)
    }

    fn verify_and_process_qc(
        &mut self,
        qc: &QuorumCert,
        from: Option<ValidatorIndex>,
        out: &mut Vec<Action>,
    ) -> Result<(), Reject> {
        if !self.qc_known(qc) {
            voting::verify_qc(
                qc,
                &self.validators,
                &*self.verifier,
                self.cfg.chain_id,
                &self.genesis_id,
            )?;
        }
        self.process_qc(qc, from, out);
        Ok(())
    }

    fn verify_and_process_tc(
        &mut self,
        tc: &TimeoutCert,
        from: Option<ValidatorIndex>,
        out: &mut Vec<Action>,
    ) -> Result<(), Reject> {
        let known = self.safety.data().high_tc.as_ref() == Some(tc);
        if known || tc.round < self.round.saturating_sub(1) {
            // Old TCs cannot move us; verifying them would only cost CPU.
            return Ok(());
        }
        voting::verify_tc(
            tc,
            &self.validators,
            &*self.verifier,
            self.cfg.chain_id,
            &self.genesis_id,
        )?;
        self.process_tc(tc, from, out);
        Ok(())
    }

    /// Takes a verified QC into account: store it, update safety data, commit, advance.
    fn process_qc(&mut self, qc: &QuorumCert, from: Option<ValidatorIndex>, out: &mut Vec<Action>) {
        self.process_qc_seen(qc, from, true, out);
    }

    /// [`Self::process_qc`] of a QC that is `live` (it shows where the network is now) or
    /// history (a synced range's, a late proposal's), which doppelganger protection must not
    /// take for the network's round.
    fn process_qc_seen(
        &mut self,
        qc: &QuorumCert,
        from: Option<ValidatorIndex>,
        live: bool,
        out: &mut Vec<Action>,
    ) {
        if qc.round == 0 {
            return;
        }
        // Before the round moves on, so a proposal of the next round is decided with it.
        let ours = qc.signatures.iter().any(|(i, _)| *i == self.me);
        self.observe_certificate(qc.round, ours, live);
        if self.store.insert_qc(qc) {
            out.push(Action::Persist(PersistOp::Qc(qc.clone())));
        }
        let parent_round = self.store.get(&qc.block_id).map(|b| b.qc.round);
        let was_high = self.safety.data().high_qc.round;
        if self.safety.observe_qc(qc, parent_round) {
            self.persist_safety(out);
        }
        self.check_commit(qc, from, out);
        if qc.round > was_high {
            self.emit_fork_choice(out);
        }
        if qc.round >= self.round {
            self.enter_round(qc.round + 1, out);
        }
    }

    /// Feeds a verified certificate to the doppelganger protection (before the round moves on
    /// to the one after it).
    fn observe_certificate(&mut self, round: Round, ours: bool, live: bool) {
        let last = self.safety.data().last_voted_round;
        let entering = self.round.max(round.saturating_add(1));
        if let Some(reason) = self.doppelganger.observe(round, ours, last, entering, live) {
            warn!(me = self.me, round = self.round, %reason,
                "safety data may be stale: signing nothing until the network passes this round");
        }
    }

    /// Whether a new vote or timeout for the current round is allowed (doppelganger
    /// protection).
    fn may_sign(&mut self) -> bool {
        self.allowed_to_sign(false)
    }

    /// Whether a new proposal for the current round is allowed (doppelganger protection).
    fn may_propose(&mut self) -> bool {
        self.allowed_to_sign(true)
    }

    fn allowed_to_sign(&mut self, proposal: bool) -> bool {
        let mut resumed = None;
        let ok = if proposal {
            self.doppelganger.may_propose(self.round, &mut resumed)
        } else {
            self.doppelganger.may_sign(self.round, &mut resumed)
        };
        if let Some(through) = resumed {
            warn!(
                me = self.me,
                round = self.round,
                through,
                "the network passed the rounds our \
                safety data may have missed: signing again"
            );
        }
        if !ok {
            self.stats.abstained += 1;
        }
        ok
    }

    fn process_tc(
        &mut self,
        tc: &TimeoutCert,
        from: Option<ValidatorIndex>,
        out: &mut Vec<Action>,
    ) {
        let ours = tc.signatures.iter().any(|(i, _, _)| *i == self.me);
        self.observe_certificate(tc.round, ours, true);
        if self.safety.observe_tc(tc) {
            self.persist_safety(out);
        }
        self.process_qc(&tc.high_qc, from, out);
        if tc.round >= self.round {
            self.enter_round(tc.round + 1, out);
        }
    }

    fn enter_round(&mut self, round: Round, out: &mut Vec<Action>) {
        if round <= self.round {
            return;
        }
        debug!(me = self.me, round, "entering round");
        self.round = round;
        let keep = round.saturating_sub(1);
        self.votes.prune_below(keep);
        self.timeouts.prune_below(keep);
        self.seen_proposals = self.seen_proposals.split_off(&keep);
        self.waiting_parent = self.waiting_parent.split_off(&round);
        self.pending_validation.retain(|_, (b, _)| b.round >= keep);
        self.evidence_seen = self.evidence_seen.split_off(&keep);
        self.arm_round_timer(out);
        if self.leader(round) == self.me {
            self.try_propose(out);
        }
    }

    // ---------------------------------------------------------------- commit

    fn check_commit(
        &mut self,
        qc: &QuorumCert,
        from: Option<ValidatorIndex>,
        out: &mut Vec<Action>,
    ) {
        if qc.round == 0 {
            return;
        }
        let Some(certified) = self.store.get(&qc.block_id) else {
            if self.deferred_commit_checks.len() < 64 {
                self.deferred_commit_checks.insert(qc.block_id);
            }
            self.want(qc.block_id, from.or_else(|| qc.signatures.first().map(|s| s.0)), out);
            return;
        };
        if let Some((target, round)) = commit::committed_by(certified)
            && round > self.store.committed_round()
            && self.commit_target.as_ref().is_none_or(|(_, r, _)| round > *r)
        {
            self.commit_target = Some((target, round, certified.qc.clone()));
        }
        self.try_commit(from, out);
    }

    fn try_commit(&mut self, from: Option<ValidatorIndex>, out: &mut Vec<Action>) {
        let Some((target, round, target_qc)) = self.commit_target.clone() else { return };
        if round <= self.store.committed_round() {
            self.commit_target = None;
            return;
        }
        match self.store.walk_to_committed(target) {
            ChainWalk::Missing(id) => self.want(id, from, out),
            ChainWalk::Conflicts { block_id, round } => {
                // Only possible if more than f validators are byzantine.
                warn!(me = self.me, %block_id, round, committed = %self.store.committed_id(),
                    "certified chain conflicts with the committed chain; not committing");
                self.commit_target = None;
            }
            ChainWalk::Complete(chain) => {
                let blocks: Vec<Block> =
                    chain.iter().filter_map(|id| self.store.get(id).cloned()).collect();
                if blocks.len() != chain.len() {
                    return;
                }
                for (i, (id, block)) in chain.into_iter().zip(blocks.iter()).enumerate() {
                    // A block's certificate is its child's QC; the target's is the QC inside
                    // the certified block that commits it.
                    let qc = blocks.get(i + 1).map_or_else(|| target_qc.clone(), |c| c.qc.clone());
                    out.push(Action::Persist(PersistOp::Committed {
                        height: block.height(),
                        block_id: id,
                        qc,
                    }));
                    out.push(Action::Commit { block_id: id, block: block.clone() });
                    self.store.set_committed(id);
                    self.stats.commits += 1;
                }
                self.commit_target = None;
                self.emit_fork_choice(out);
            }
        }
    }

    /// Head = the newest certified block if known and not below the committed tip (after a
    /// range sync the high QC's block may still be missing), else the committed tip.
    /// Takes committed blocks from range sync: stores and commits those above the committed
    /// tip (persisted, delivered to the executor in order), then adopts the last QC.
    fn on_synced(
        &mut self,
        blocks: Vec<(BlockId, CommittedBlock)>,
        out: &mut Vec<Action>,
    ) -> Result<(), Reject> {
        let committed = self.store.committed_height();
        let fresh: Vec<(BlockId, CommittedBlock)> =
            blocks.into_iter().filter(|(_, c)| c.block.height() > committed).collect();
        let mut parent = self.store.committed_id();
        for (id, c) in &fresh {
            if c.block.parent_id != parent {
                return Err(Reject::SyncedRange { reason: "does not extend the committed tip" });
            }
            if c.qc.block_id != *id {
                return Err(Reject::SyncedRange { reason: "QC certifies another block" });
            }
            parent = *id;
        }
        let Some(last_qc) = fresh.last().map(|(_, c)| c.qc.clone()) else { return Ok(()) };
        for (id, c) in fresh {
            let CommittedBlock { block, qc } = c;
            self.store.insert_qc(&block.qc);
            self.store.insert_qc(&qc);
            if self.store.insert(id, block.clone()) {
                out.push(Action::Persist(PersistOp::Block(block.clone())));
            }
            out.push(Action::Persist(PersistOp::Committed {
                height: block.height(),
                block_id: id,
                qc,
            }));
            out.push(Action::Commit { block_id: id, block });
            self.store.set_committed(id);
            self.stats.commits += 1;
            self.stats.synced += 1;
        }
        // Outstanding fetches were for a chain far above the old tip; what is still missing is
        // asked for again by the next proposal or QC.
        self.wants.clear();
        if self.commit_target.as_ref().is_some_and(|(_, r, _)| *r <= self.store.committed_round()) {
            self.commit_target = None;
        }
        self.process_qc_seen(&last_qc, None, false, out);
        self.emit_fork_choice(out);
        self.after_blocks_stored(None, out);
        Ok(())
    }

    fn emit_fork_choice(&self, out: &mut Vec<Action>) {
        let hqc = &self.safety.data().high_qc;
        let Some(fin) = self.store.get(&self.store.committed_id()) else { return };
        let head =
            self.store.get(&hqc.block_id).filter(|h| h.height() >= fin.height()).unwrap_or(fin);
        out.push(Action::ForkChoice {
            head: head.payload.block_hash,
            finalized: fin.payload.block_hash,
        });
    }

    // ---------------------------------------------------------------- block fetching

    fn want(&mut self, id: BlockId, hint: Option<ValidatorIndex>, out: &mut Vec<Action>) {
        if self.store.contains(&id) {
            return;
        }
        if !self.wants.contains_key(&id) && self.wants.len() >= MAX_WANTS {
            return;
        }
        let w = self.wants.entry(id).or_insert(Want { last_request_ms: None, attempts: 0, hint });
        if hint.is_some() && w.hint.is_none() {
            w.hint = hint;
        }
        self.request(id, out);
    }

    fn request(&mut self, id: BlockId, out: &mut Vec<Action>) {
        let n = self.validators.len() as u64;
        let (me, now) = (self.me, self.now_ms);
        let Some(w) = self.wants.get_mut(&id) else { return };
        if w.last_request_ms.is_some_and(|t| now < t + REFETCH_INTERVAL_MS) {
            return;
        }
        let mut to = match (w.attempts, w.hint) {
            (0, Some(h)) => h,
            _ => ((u64::from(w.hint.unwrap_or(me)) + u64::from(w.attempts)) % n) as ValidatorIndex,
        };
        if to == me {
            to = ((u64::from(to) + 1) % n) as ValidatorIndex;
        }
        w.attempts += 1;
        w.last_request_ms = Some(now);
        if to != me {
            out.push(Action::Send {
                to,
                message: Message::BlockRequest { id, count: MAX_BLOCKS_PER_REQUEST },
            });
        }
    }

    fn on_blocks(
        &mut self,
        from: ValidatorIndex,
        blocks: Vec<Block>,
        out: &mut Vec<Action>,
    ) -> Result<(), Reject> {
        let mut expected: Option<BlockId> = None;
        let mut stored = 0usize;
        for b in blocks {
            let id = b.id();
            if !(self.wants.contains_key(&id) || expected == Some(id)) {
                break;
            }
            self.wants.remove(&id);
            expected = Some(b.parent_id);
            if self.store.contains(&id) {
                continue;
            }
            self.store.insert_qc(&b.qc);
            out.push(Action::Persist(PersistOp::Block(b.clone())));
            self.store.insert(id, b);
            stored += 1;
        }
        if stored == 0 {
            return Err(Reject::UselessBlocks { kind: "response", from });
        }
        // Ancestors still missing below the last stored block are found by the commit walk.
        self.after_blocks_stored(Some(from), out);
        Ok(())
    }

    fn after_blocks_stored(&mut self, from: Option<ValidatorIndex>, out: &mut Vec<Action>) {
        let ready: Vec<Round> = self
            .waiting_parent
            .iter()
            .filter(|(_, (_, p, _))| self.store.contains(&p.block.parent_id))
            .map(|(r, _)| *r)
            .collect();
        for r in ready {
            if let Some((f, p, id)) = self.waiting_parent.remove(&r) {
                self.consider_proposal(f, p, id, out);
            }
        }
        let deferred: Vec<BlockId> = self
            .deferred_commit_checks
            .iter()
            .filter(|id| self.store.contains(id))
            .copied()
            .collect();
        for id in deferred {
            self.deferred_commit_checks.remove(&id);
            if let Some(qc) = self.store.qc(&id).cloned() {
                let parent_round = self.store.get(&id).map(|b| b.qc.round);
                if self.safety.observe_qc(&qc, parent_round) {
                    self.persist_safety(out);
                }
                self.check_commit(&qc, from, out);
            }
        }
        self.try_commit(from, out);
        if self.leader(self.round) == self.me {
            self.try_propose(out);
        }
    }

    // ---------------------------------------------------------------- proposals

    fn on_proposal(
        &mut self,
        from: ValidatorIndex,
        p: Proposal,
        out: &mut Vec<Action>,
    ) -> Result<(), Reject> {
        let b = &p.block;
        let round = b.round;
        let id = b.id();
        if round < self.round {
            return Err(Reject::Stale { kind: "proposal", round, current: self.round });
        }
        let leader = self.leader(round);
        if b.proposer != leader {
            return Err(Reject::WrongProposer { round, proposer: b.proposer, leader });
        }
        if b.parent_id != b.qc.block_id || b.qc.round >= round {
            return Err(Reject::MalformedBlock {
                round,
                block_id: id,
                reason: "parent/QC mismatch",
            });
        }
        if p.tc.as_ref().is_some_and(|tc| tc.round + 1 != round) {
            return Err(Reject::MalformedBlock {
                round,
                block_id: id,
                reason: "TC not of the previous round",
            });
        }
        let seen = self.seen_proposals.get(&round).copied();
        if seen.is_some_and(|(sid, _)| sid == id) {
            return Err(Reject::Duplicate { kind: "proposal", round });
        }
        let msg = Proposal::signing_bytes(self.cfg.chain_id, &id);
        self.verifier.verify(b.proposer, &msg, &p.signature).map_err(|_| {
            Reject::InvalidSignature { kind: "proposal", round, signer: b.proposer }
        })?;
        if let Some((first_id, first_sig)) = seen {
            self.report(
                EvidenceKind::Proposal,
                round,
                b.proposer,
                (first_id, first_sig),
                (id, p.signature),
                out,
            );
            return Err(Reject::Equivocation { kind: "proposal", round, signer: b.proposer });
        }
        if !self.qc_known(&b.qc) {
            voting::verify_qc(
                &b.qc,
                &self.validators,
                &*self.verifier,
                self.cfg.chain_id,
                &self.genesis_id,
            )?;
        }
        if let Some(tc) = &p.tc {
            self.verify_and_process_tc(tc, Some(from), out)?;
        }
        self.seen_proposals.insert(round, (id, p.signature));
        let qc = b.qc.clone();
        // A late proposal's QC is history; a current or future one's shows the network's round.
        let live = round >= self.round;
        self.process_qc_seen(&qc, Some(from), live, out);
        if round != self.round {
            return Err(Reject::NotCurrentRound { kind: "proposal", round, current: self.round });
        }
        self.consider_proposal(from, p, id, out);
        Ok(())
    }

    /// Continues with a verified proposal of the current round: parent, binding, executor.
    fn consider_proposal(
        &mut self,
        from: ValidatorIndex,
        p: Proposal,
        id: BlockId,
        out: &mut Vec<Action>,
    ) {
        let round = p.block.round;
        if round != self.round
            || self.pending_validation.contains_key(&id)
            || self.store.contains(&id)
        {
            return;
        }
        let parent_id = p.block.parent_id;
        let Some(parent) = self.store.get(&parent_id) else {
            if self.waiting_parent.len() < MAX_WAITING_PROPOSALS {
                self.waiting_parent.insert(round, (from, p, id));
            }
            self.want(parent_id, Some(from), out);
            return;
        };
        if let Err(e) = voting::check_payload_binding(
            parent,
            &parent_id,
            &p.block,
            &id,
            self.now_ms,
            self.cfg.sub_second_blocks,
            self.cfg.max_future_secs,
        ) {
            debug!(me = self.me, round, error = %e, "rejected proposal");
            *self.stats.rejected.entry(e.label()).or_default() += 1;
            return;
        }
        out.push(Action::ValidatePayload { block_id: id, payload: p.block.payload.clone() });
        self.pending_validation.insert(id, (p.block, p.tc));
    }

    fn on_payload_validated(
        &mut self,
        id: BlockId,
        valid: bool,
        out: &mut Vec<Action>,
    ) -> Result<(), Reject> {
        let Some((block, tc)) = self.pending_validation.remove(&id) else {
            return Err(Reject::UnexpectedExecutorReply { round: self.round });
        };
        let round = block.round;
        if !valid {
            return Err(Reject::InvalidPayload { round, block_id: id });
        }
        self.store.insert_qc(&block.qc);
        if self.store.insert(id, block.clone()) {
            out.push(Action::Persist(PersistOp::Block(block.clone())));
        }
        self.wants.remove(&id);
        let mut refused = None;
        if round == self.round && self.may_sign() {
            match self.safety.vote(&block, id, tc.as_ref(), self.me, &*self.signer) {
                Ok(vote) => {
                    self.stats.votes += 1;
                    self.persist_safety(out);
                    self.send_vote(vote, out);
                }
                // The block is stored all the same: what waited for it (proposals, commit
                // checks, our own proposal) must go on even though we do not vote for it.
                Err(e) => refused = Some(e),
            }
        }
        self.after_blocks_stored(None, out);
        refused.map_or(Ok(()), |e| Err(e.into()))
    }

    fn send_vote(&mut self, vote: Vote, out: &mut Vec<Action>) {
        let next = self.leader(vote.round + 1);
        if next == self.me {
            self.add_vote(vote, out);
        } else {
            out.push(Action::Send { to: next, message: Message::Vote(vote) });
        }
    }

    fn try_propose(&mut self, out: &mut Vec<Action>) {
        let round = self.round;
        if self.leader(round) != self.me
            || self.building.as_ref().is_some_and(|b| b.round >= round)
            || self.safety.data().last_proposal.as_ref().is_some_and(|p| p.block.round >= round)
            || !self.may_propose()
        {
            return;
        }
        let qc = self.safety.data().high_qc.clone();
        let tc = if qc.round + 1 == round {
            None
        } else {
            match self.safety.data().high_tc.clone() {
                Some(tc) if tc.round + 1 == round => Some(tc),
                _ => return,
            }
        };
        let Some(parent) = self.store.get(&qc.block_id) else {
            let hint = qc.signatures.iter().map(|s| s.0).find(|i| *i != self.me);
            self.want(qc.block_id, hint, out);
            return;
        };
        let min_ts = parent.payload.timestamp + u64::from(!self.cfg.sub_second_blocks);
        let now_s = self.now_ms / 1000;
        if min_ts > now_s {
            out.push(Action::SetTimer { timer: Timer::Propose(round), at_ms: min_ts * 1000 });
            return;
        }
        let attributes = PayloadAttributes {
            parent_hash: parent.payload.block_hash,
            number: parent.payload.number + 1,
            timestamp: now_s.max(min_ts),
            prev_randao: derive_prev_randao(&qc.block_id, round),
            parent_beacon_block_root: qc.block_id,
        };
        self.building = Some(Building { round, attributes: attributes.clone(), qc, tc });
        out.push(Action::BuildPayload { round, attributes });
    }

    fn on_payload_built(
        &mut self,
        round: Round,
        payload: Option<Payload>,
        out: &mut Vec<Action>,
    ) -> Result<(), Reject> {
        let Some(b) = self.building.take_if(|b| b.round == round) else {
            return Err(Reject::UnexpectedExecutorReply { round });
        };
        let Some(payload) = payload.filter(|p| b.attributes.matches(p)) else {
            return Err(Reject::UnexpectedExecutorReply { round });
        };
        if round != self.round {
            return Ok(());
        }
        let block = Block { round, parent_id: b.qc.block_id, qc: b.qc, payload, proposer: self.me };
        let id = block.id();
        // The protection may have started abstaining while the payload was built.
        if !self.may_propose() {
            return Ok(());
        }
        let proposal = self.safety.propose(block, id, b.tc, &*self.signer)?;
        self.stats.proposals += 1;
        self.persist_safety(out);
        out.push(Action::Broadcast { message: Message::Proposal(proposal.clone()) });
        self.seen_proposals.insert(round, (id, proposal.signature));
        self.consider_proposal(self.me, proposal, id, out);
        Ok(())
    }

    // ---------------------------------------------------------------- votes

    fn on_vote(
        &mut self,
        _from: ValidatorIndex,
        v: Vote,
        out: &mut Vec<Action>,
    ) -> Result<(), Reject> {
        let round = v.round;
        if round + 1 < self.round {
            return Err(Reject::Stale { kind: "vote", round, current: self.round });
        }
        if round > self.round + AGGREGATION_WINDOW {
            return Err(Reject::NotCurrentRound { kind: "vote", round, current: self.round });
        }
        if self.leader(round + 1) != self.me {
            return Err(Reject::NotNextLeader { round });
        }
        if self.votes.is_duplicate(&v) {
            return Err(Reject::Duplicate { kind: "vote", round });
        }
        let msg = Vote::signing_bytes(self.cfg.chain_id, &v.block_id, round);
        self.verifier
            .verify(v.voter, &msg, &v.signature)
            .map_err(|_| Reject::InvalidSignature { kind: "vote", round, signer: v.voter })?;
        self.add_vote(v, out);
        Ok(())
    }

    fn add_vote(&mut self, v: Vote, out: &mut Vec<Action>) {
        let (round, voter, id, sig) = (v.round, v.voter, v.block_id, v.signature);
        match self.votes.add(v, &self.validators) {
            VoteOutcome::Added | VoteOutcome::Duplicate => {}
            VoteOutcome::Equivocation(first) => {
                self.report(
                    EvidenceKind::Vote,
                    round,
                    voter,
                    (first.block_id, first.signature),
                    (id, sig),
                    out,
                );
            }
            VoteOutcome::Certified(qc) => {
                self.stats.qcs_formed += 1;
                self.process_qc(&qc, None, out);
            }
        }
    }

    // ---------------------------------------------------------------- timeouts

    fn on_round_timer(&mut self, round: Round, out: &mut Vec<Action>) {
        if round != self.round {
            return;
        }
        self.local_timeout(out);
        self.arm_round_timer(out);
        let ids: Vec<BlockId> = self.wants.keys().copied().collect();
        for id in ids {
            self.request(id, out);
        }
    }

    /// Tells a validator that just (re)connected where we are: our timeout of the current
    /// round (if any) and our highest QC/TC, so it catches up to the round without waiting for
    /// a timer (after a partition its round timer may be at its 10 s cap).
    fn on_peer_connected(&mut self, validator: ValidatorIndex, out: &mut Vec<Action>) {
        if validator == self.me || self.validators.get(validator).is_none() {
            return;
        }
        let data = self.safety.data();
        if let Some(t) = data.last_timeout.as_ref().filter(|t| t.round == self.round) {
            out.push(Action::Send { to: validator, message: Message::Timeout(t.clone()) });
        }
        let message =
            Message::SyncInfo { high_qc: data.high_qc.clone(), high_tc: data.high_tc.clone() };
        out.push(Action::Send { to: validator, message });
    }

    fn local_timeout(&mut self, out: &mut Vec<Action>) {
        let resend =
            self.safety.data().last_timeout.as_ref().is_some_and(|t| t.round == self.round);
        if !resend && !self.may_sign() {
            return;
        }
        let data = self.safety.data();
        let (hqc, htc) = (data.high_qc.clone(), data.high_tc.clone());
        match self.safety.timeout(self.round, &hqc, htc.as_ref(), self.me, &*self.signer) {
            Ok(t) => {
                if !resend {
                    self.stats.timeouts += 1;
                    self.persist_safety(out);
                }
                out.push(Action::Broadcast { message: Message::Timeout(t.clone()) });
                self.add_timeout(t, out);
            }
            Err(e) => {
                warn!(me = self.me, round = self.round, error = %e, "safety rules refused a timeout");
            }
        }
    }

    fn on_timeout(
        &mut self,
        from: ValidatorIndex,
        t: Timeout,
        out: &mut Vec<Action>,
    ) -> Result<(), Reject> {
        let round = t.round;
        if self.validators.get(t.signer).is_none() {
            return Err(Reject::UnknownSender { from: t.signer });
        }
        if t.high_qc.round >= round {
            return Err(Reject::MalformedTimeout {
                round,
                signer: t.signer,
                reason: "QC not below round",
            });
        }
        if let Some(tc) = &t.high_tc {
            if tc.round >= round {
                return Err(Reject::MalformedTimeout {
                    round,
                    signer: t.signer,
                    reason: "TC not below round",
                });
            }
            self.verify_and_process_tc(tc, Some(from), out)?;
        }
        if round < self.round {
            // The sender is behind: tell it once per round what we know.
            if self.sync_replies.get(&from).is_none_or(|r| *r < self.round) {
                self.sync_replies.insert(from, self.round);
                let d = self.safety.data();
                out.push(Action::Send {
                    to: from,
                    message: Message::SyncInfo {
                        high_qc: d.high_qc.clone(),
                        high_tc: d.high_tc.clone(),
                    },
                });
            }
            return Err(Reject::Stale { kind: "timeout", round, current: self.round });
        }
        if round > self.round + AGGREGATION_WINDOW {
            // Too far ahead to hold; only its certificates matter.
            self.verify_and_process_qc(&t.high_qc, Some(from), out)?;
            return Err(Reject::NotCurrentRound { kind: "timeout", round, current: self.round });
        }
        if self.timeouts.is_duplicate(&t) {
            return Err(Reject::Duplicate { kind: "timeout", round });
        }
        let msg = Timeout::signing_bytes(self.cfg.chain_id, round, t.high_qc.round);
        self.verifier
            .verify(t.signer, &msg, &t.signature)
            .map_err(|_| Reject::InvalidSignature { kind: "timeout", round, signer: t.signer })?;
        self.verify_and_process_qc(&t.high_qc, Some(from), out)?;
        if round < self.round {
            return Ok(());
        }
        self.add_timeout(t, out);
        Ok(())
    }

    fn add_timeout(&mut self, t: Timeout, out: &mut Vec<Action>) {
        let (round, signer, qr, sig) = (t.round, t.signer, t.high_qc.round, t.signature);
        match self.timeouts.add(t, &self.validators) {
            TimeoutOutcome::Duplicate => {}
            TimeoutOutcome::Added { power } => {
                let timed_out =
                    self.safety.data().last_timeout.as_ref().is_some_and(|t| t.round == round);
                if round == self.round && power >= self.validators.validity_power() && !timed_out {
                    self.local_timeout(out);
                }
            }
            TimeoutOutcome::Equivocation(first) => {
                let a = B256::left_padding_from(&first.high_qc.round.to_be_bytes());
                let b = B256::left_padding_from(&qr.to_be_bytes());
                self.report(
                    EvidenceKind::Timeout,
                    round,
                    signer,
                    (a, first.signature),
                    (b, sig),
                    out,
                );
            }
            TimeoutOutcome::Certified(tc) => {
                self.stats.tcs_formed += 1;
                self.process_tc(&tc, None, out);
            }
        }
    }

    fn report(
        &mut self,
        kind: EvidenceKind,
        round: Round,
        signer: ValidatorIndex,
        first: (B256, Signature),
        second: (B256, Signature),
        out: &mut Vec<Action>,
    ) {
        if !self.evidence_seen.entry(round).or_default().insert((kind as u8, signer)) {
            return;
        }
        warn!(me = self.me, ?kind, round, signer, first = %first.0, second = %second.0, "equivocation detected");
        let e = Evidence { kind, round, signer, first, second };
        out.push(Action::Persist(PersistOp::Evidence(e.clone())));
        out.push(Action::Evidence(e));
    }
}

#[cfg(test)]
mod tests;
