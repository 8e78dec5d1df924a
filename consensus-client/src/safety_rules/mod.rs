//! Safety rules: the one persisted struct that keeps this validator from ever signing
//! conflicting messages, and the checks made before each signature.
//!
//! Rules (two-chain HotStuff / Jolteon, as in DiemBFT v4 and Aptos' `safety_rules_2chain`):
//! - **vote** for block B of round r only if `r > last_voted_round`, B's QC round is at least
//!   `preferred_round`, and either `B.qc.round + 1 == r`, or B comes with a TC of round `r - 1`
//!   and `B.qc.round ≥` the largest QC round signed in that TC. Voting sets
//!   `last_voted_round = r`.
//! - **timeout** for round r only if `r ≥ last_voted_round`, the QC it carries is at least
//!   `one_chain_round`, and `r` directly follows that QC or the carried TC. Signing a timeout
//!   raises `last_voted_round` to r, so no vote for r can follow it (the TC safety argument).
//! - **proposal** for round r only if no proposal for a round ≥ r was signed before.
//! - On every QC observed, including the QC of a block it votes for: `one_chain_round = max(QC round)`, `preferred_round = max(round of
//!   the certified block's parent)` (the two-chain round; the "lock").
//!
//! Persistence: the core emits `Action::Persist(PersistOp::Safety(..))` with the new data
//! *before* the `Send`/`Broadcast` that releases a signature, and the node loop must complete
//! (sync to disk) that write before it performs the send. The last vote, timeout and proposal
//! are kept in the struct: after a restart they are re-sent as stored, never re-signed, so a
//! restarted node cannot sign two different messages for one round. If the write fails the node
//! must stop: sending an unpersisted signature could lead to equivocation after a crash.

use crate::crypto::Signer;
use crate::types::codec::{Codec, DecodeError, Reader, Writer};
use crate::types::{
    Block, BlockId, Proposal, QuorumCert, Round, Timeout, TimeoutCert, ValidatorIndex, Vote,
};
use thiserror::Error;

/// Encoding version of [`SafetyData`].
const SAFETY_DATA_VERSION: u8 = 1;

/// Why safety rules refused to sign.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum SafetyError {
    /// Already voted or timed out in this or a later round.
    #[error("refusing to vote in round {round}: last voted round is {last_voted_round}")]
    AlreadyVoted {
        /// The round.
        round: Round,
        /// The last voted round.
        last_voted_round: Round,
    },
    /// The block's QC is older than the preferred (locked) round.
    #[error(
        "block {block_id} of round {round} extends QC round {qc_round} below preferred round {preferred_round}"
    )]
    BelowPreferredRound {
        /// The block.
        block_id: BlockId,
        /// Its round.
        round: Round,
        /// Its QC round.
        qc_round: Round,
        /// The preferred round.
        preferred_round: Round,
    },
    /// Neither a QC nor a TC of the previous round justifies the round.
    #[error("round {round} is not justified by QC round {qc_round} or TC round {tc_round:?}")]
    NotJustified {
        /// The round.
        round: Round,
        /// The QC round.
        qc_round: Round,
        /// The TC round, if any.
        tc_round: Option<Round>,
    },
    /// The block's QC is below the highest QC of the TC that justifies it.
    #[error(
        "block of round {round} extends QC round {qc_round} below the TC's highest QC round {tc_qc_round}"
    )]
    BelowTcHighQc {
        /// The round.
        round: Round,
        /// The block's QC round.
        qc_round: Round,
        /// Highest QC round in the TC.
        tc_qc_round: Round,
    },
    /// A timeout would be signed for a round before the last voted round.
    #[error("refusing to time out round {round}: last voted round is {last_voted_round}")]
    TimeoutTooOld {
        /// The round.
        round: Round,
        /// The last voted round.
        last_voted_round: Round,
    },
    /// A timeout would carry a QC older than one already observed.
    #[error("refusing to time out round {round} with QC round {qc_round} below {one_chain_round}")]
    StaleTimeoutQc {
        /// The round.
        round: Round,
        /// The carried QC round.
        qc_round: Round,
        /// The highest observed QC round.
        one_chain_round: Round,
    },
    /// A proposal for this round (or a later one) was already signed.
    #[error("already proposed in round {last_proposed_round}, refusing round {round}")]
    AlreadyProposed {
        /// The round.
        round: Round,
        /// The last proposed round.
        last_proposed_round: Round,
    },
}

/// Everything safety depends on, persisted as one record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SafetyData {
    /// Highest round in which this validator voted or timed out.
    pub last_voted_round: Round,
    /// Highest two-chain round (round of the parent of the highest certified block).
    pub preferred_round: Round,
    /// Highest QC round observed.
    pub one_chain_round: Round,
    /// Highest QC known.
    pub high_qc: QuorumCert,
    /// Highest TC known.
    pub high_tc: Option<TimeoutCert>,
    /// Last vote signed (re-sent after restart, never re-signed).
    pub last_vote: Option<Vote>,
    /// Last timeout signed (re-sent after restart, never re-signed).
    pub last_timeout: Option<Timeout>,
    /// Last proposal signed (re-sent after restart, never re-signed).
    pub last_proposal: Option<Proposal>,
}

impl SafetyData {
    /// The state of a validator that has signed nothing.
    pub fn new(genesis_qc: QuorumCert) -> Self {
        Self {
            last_voted_round: 0,
            preferred_round: 0,
            one_chain_round: 0,
            high_qc: genesis_qc,
            high_tc: None,
            last_vote: None,
            last_timeout: None,
            last_proposal: None,
        }
    }
}

impl Codec for SafetyData {
    const NAME: &'static str = "safety data";
    fn write(&self, w: &mut Writer) {
        w.u8(SAFETY_DATA_VERSION);
        w.u64(self.last_voted_round);
        w.u64(self.preferred_round);
        w.u64(self.one_chain_round);
        self.high_qc.write(w);
        w.option(self.high_tc.as_ref(), |w, v| v.write(w));
        w.option(self.last_vote.as_ref(), |w, v| v.write(w));
        w.option(self.last_timeout.as_ref(), |w, v| v.write(w));
        w.option(self.last_proposal.as_ref(), |w, v| v.write(w));
    }
    fn read(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let version = r.u8(Self::NAME)?;
        if version != SAFETY_DATA_VERSION {
            return Err(DecodeError::UnsupportedVersion { what: Self::NAME, version });
        }
        Ok(Self {
            last_voted_round: r.u64(Self::NAME)?,
            preferred_round: r.u64(Self::NAME)?,
            one_chain_round: r.u64(Self::NAME)?,
            high_qc: QuorumCert::read(r)?,
            high_tc: r.option(Self::NAME, TimeoutCert::read)?,
            last_vote: r.option(Self::NAME, Vote::read)?,
            last_timeout: r.option(Self::NAME, Timeout::read)?,
            last_proposal: r.option(Self::NAME, Proposal::read)?,
        })
    }
}

/// The checks and updates around each signature. Holds the data; the caller persists
/// [`SafetyRules::data`] after every successful call before releasing what was signed.
#[derive(Debug, Clone)]
pub struct SafetyRules {
    data: SafetyData,
    chain_id: u64,
}

impl SafetyRules {
    /// Safety rules starting from `data` (fresh or recovered from disk).
    pub fn new(data: SafetyData, chain_id: u64) -> Self {
        Self { data, chain_id }
    }

    /// The current data.
    pub fn data(&self) -> &SafetyData {
        &self.data
    }

    /// Records a verified QC; `parent_round` is the round of the certified block's parent when
    /// the certified block is known. Returns whether the data changed.
    pub fn observe_qc(&mut self, qc: &QuorumCert, parent_round: Option<Round>) -> bool {
        let mut changed = false;
        if qc.round > self.data.one_chain_round {
            self.data.one_chain_round = qc.round;
            changed = true;
        }
        if qc.round > self.data.high_qc.round {
            self.data.high_qc = qc.clone();
            changed = true;
        }
        if let Some(p) = parent_round
            && p > self.data.preferred_round
        {
            self.data.preferred_round = p;
            changed = true;
        }
        changed
    }

    /// Records a verified TC if it is the highest. Returns whether the data changed.
    pub fn observe_tc(&mut self, tc: &TimeoutCert) -> bool {
        if self.data.high_tc.as_ref().is_none_or(|h| tc.round > h.round) {
            self.data.high_tc = Some(tc.clone());
            true
        } else {
            false
        }
    }

    /// Applies the voting rule to `block` (justified by `tc` if its QC is not of the previous
    /// round) and signs a vote.
    pub fn vote(
        &mut self,
        block: &Block,
        block_id: BlockId,
        tc: Option<&TimeoutCert>,
        me: ValidatorIndex,
        signer: &dyn Signer,
    ) -> Result<Vote, SafetyError> {
        // The QC a vote extends is a QC this validator has seen, whether or not the caller
        // processed it first (as Aptos' `construct_and_sign_vote_two_chain` does): a later
        // timeout must then carry at least this QC.
        self.observe_qc(&block.qc, None);
        let round = block.round;
        if round <= self.data.last_voted_round {
            return Err(SafetyError::AlreadyVoted {
                round,
                last_voted_round: self.data.last_voted_round,
            });
        }
        let qc_round = block.qc.round;
        if qc_round < self.data.preferred_round {
            return Err(SafetyError::BelowPreferredRound {
                block_id,
                round,
                qc_round,
                preferred_round: self.data.preferred_round,
            });
        }
        if qc_round + 1 != round {
            match tc {
                Some(tc) if tc.round + 1 == round => {
                    let tc_qc_round = tc.max_signed_qc_round();
                    if qc_round < tc_qc_round {
                        return Err(SafetyError::BelowTcHighQc { round, qc_round, tc_qc_round });
                    }
                }
                _ => {
                    return Err(SafetyError::NotJustified {
                        round,
                        qc_round,
                        tc_round: tc.map(|t| t.round),
                    });
                }
            }
        }
        let signature = signer.sign(&Vote::signing_bytes(self.chain_id, &block_id, round));
        let vote = Vote { block_id, round, voter: me, signature };
        self.data.last_voted_round = round;
        self.data.last_vote = Some(vote.clone());
        Ok(vote)
    }

    /// Signs a timeout for `round` carrying `high_qc` and `high_tc`, or returns the stored one
    /// if this round already timed out (never re-signs).
    pub fn timeout(
        &mut self,
        round: Round,
        high_qc: &QuorumCert,
        high_tc: Option<&TimeoutCert>,
        me: ValidatorIndex,
        signer: &dyn Signer,
    ) -> Result<Timeout, SafetyError> {
        if let Some(t) = &self.data.last_timeout
            && t.round == round
        {
            return Ok(t.clone());
        }
        if round < self.data.last_voted_round {
            return Err(SafetyError::TimeoutTooOld {
                round,
                last_voted_round: self.data.last_voted_round,
            });
        }
        if high_qc.round < self.data.one_chain_round {
            return Err(SafetyError::StaleTimeoutQc {
                round,
                qc_round: high_qc.round,
                one_chain_round: self.data.one_chain_round,
            });
        }
        let tc_round = high_tc.map(|t| t.round);
        if high_qc.round + 1 != round && tc_round.is_none_or(|t| t + 1 != round) {
            return Err(SafetyError::NotJustified { round, qc_round: high_qc.round, tc_round });
        }
        let signature = signer.sign(&Timeout::signing_bytes(self.chain_id, round, high_qc.round));
        let timeout = Timeout {
            round,
            high_qc: high_qc.clone(),
            high_tc: high_tc.cloned(),
            signer: me,
            signature,
        };
        self.data.last_voted_round = round;
        self.data.last_timeout = Some(timeout.clone());
        Ok(timeout)
    }

    /// Signs a proposal for `block` unless one was signed for this or a later round.
    pub fn propose(
        &mut self,
        block: Block,
        block_id: BlockId,
        tc: Option<TimeoutCert>,
        signer: &dyn Signer,
    ) -> Result<Proposal, SafetyError> {
        if let Some(p) = &self.data.last_proposal
            && p.block.round >= block.round
        {
            return Err(SafetyError::AlreadyProposed {
                round: block.round,
                last_proposed_round: p.block.round,
            });
        }
        let signature = signer.sign(&Proposal::signing_bytes(self.chain_id, &block_id));
        let proposal = Proposal { block, tc, signature };
        self.data.last_proposal = Some(proposal.clone());
        Ok(proposal)
    }
}

#[cfg(test)]
mod tests;
