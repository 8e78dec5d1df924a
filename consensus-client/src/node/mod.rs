//! The node loop's contract for performing the core's actions.
//!
//! [`perform`] executes one batch of actions in order. Every `Persist` is written to storage
//! (and is durable when `Storage::apply` returns) before any later action of the batch runs;
//! if a write fails, nothing after it is performed and the error is returned: the caller must
//! stop the validator, because a vote or timeout whose safety record is not on disk could be
//! contradicted after a crash. The I/O side (network, timers, the EL) sits behind [`Effects`],
//! which the networking and Engine API layers implement.
//!
//! [`service`] is the running validator built on this contract, `follower` the node without a
//! validator key that follows the chain through range sync, `startup` what both start with,
//! [`executor`] the task that owns the EL connection, [`status`] the `/status` and `/health`
//! endpoint, [`metrics`] its Prometheus metrics.

pub mod executor;
mod follower;
pub mod metrics;
pub mod service;
mod startup;
pub mod status;

use crate::core::{Action, Evidence, PersistOp, Timer};
use crate::storage::{Storage, StorageError};
use crate::types::{Block, BlockId, Message, Payload, PayloadAttributes, Round, ValidatorIndex};
use alloy_primitives::B256;

/// The non-storage effects of the core's actions. Implementations must not block the loop:
/// a send that cannot be delivered is dropped (the protocol retransmits what matters), and the
/// executor calls are answered later as events.
pub trait Effects {
    /// Sends `message` to validator `to`.
    fn send(&mut self, to: ValidatorIndex, message: Message);
    /// Sends `message` to every other validator.
    fn broadcast(&mut self, message: Message);
    /// Arranges for `Event::Timer(timer)` at `at_ms`.
    fn set_timer(&mut self, timer: Timer, at_ms: u64);
    /// Starts building a payload; the answer comes back as `Event::PayloadBuilt`.
    fn build_payload(&mut self, round: Round, attributes: PayloadAttributes);
    /// Starts validating a payload; the answer comes back as `Event::PayloadValidated`.
    fn validate_payload(&mut self, block_id: BlockId, payload: Payload);
    /// Delivers a committed block (in order, exactly once per height).
    fn commit(&mut self, block_id: BlockId, block: Block);
    /// Updates the EL's fork choice.
    fn fork_choice(&mut self, head: B256, finalized: B256);
    /// Reports equivocation evidence (already persisted).
    fn evidence(&mut self, evidence: Evidence);
}

/// Performs `actions` in order: persistence first-come, durable before anything after it.
/// Consecutive `Persist` actions are written in one durable transaction.
pub fn perform(
    actions: Vec<Action>,
    storage: &mut dyn Storage,
    effects: &mut dyn Effects,
) -> Result<(), StorageError> {
    let mut pending: Vec<PersistOp> = Vec::new();
    for action in actions {
        if let Action::Persist(op) = action {
            pending.push(op);
            continue;
        }
        if !pending.is_empty() {
            storage.apply_all(&pending)?;
            pending.clear();
        }
        match action {
            Action::Persist(_) => {}
            Action::Send { to, message } => effects.send(to, message),
            Action::Broadcast { message } => effects.broadcast(message),
            Action::SetTimer { timer, at_ms } => effects.set_timer(timer, at_ms),
            Action::BuildPayload { round, attributes } => effects.build_payload(round, attributes),
            Action::ValidatePayload { block_id, payload } => {
                effects.validate_payload(block_id, payload)
            }
            Action::Commit { block_id, block } => effects.commit(block_id, block),
            Action::ForkChoice { head, finalized } => effects.fork_choice(head, finalized),
            Action::Evidence(e) => effects.evidence(e),
        }
    }
    if !pending.is_empty() {
        storage.apply_all(&pending)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests;

#[cfg(test)]
mod contract_tests {
    use super::*;
    use crate::safety_rules::SafetyData;
    use crate::sim::sim_genesis;
    use crate::types::{QuorumCert, Signature, Vote};
    use std::path::PathBuf;

    #[derive(Default)]
    struct Log(Vec<&'static str>);

    impl Effects for Log {
        fn send(&mut self, _: ValidatorIndex, _: Message) {
            self.0.push("send");
        }
        fn broadcast(&mut self, _: Message) {
            self.0.push("broadcast");
        }
        fn set_timer(&mut self, _: Timer, _: u64) {
            self.0.push("timer");
        }
        fn build_payload(&mut self, _: Round, _: PayloadAttributes) {
            self.0.push("build");
        }
        fn validate_payload(&mut self, _: BlockId, _: Payload) {
            self.0.push("validate");
        }
        fn commit(&mut self, _: BlockId, _: Block) {
            self.0.push("commit");
        }
        fn fork_choice(&mut self, _: B256, _: B256) {
            self.0.push("fork_choice");
        }
        fn evidence(&mut self, _: Evidence) {
            self.0.push("evidence");
        }
    }

    struct FailingStorage;

    impl Storage for FailingStorage {
        fn apply(&mut self, _: &PersistOp) -> Result<(), StorageError> {
            Err(StorageError::Corrupt {
                path: PathBuf::from("/dev/full"),
                reason: "disk full".into(),
            })
        }
        fn safety(&self) -> Result<Option<SafetyData>, StorageError> {
            Ok(None)
        }
        fn block(&self, _: &BlockId) -> Result<Option<Block>, StorageError> {
            Ok(None)
        }
        fn qc(&self, _: &BlockId) -> Result<Option<QuorumCert>, StorageError> {
            Ok(None)
        }
        fn last_committed(&self) -> Result<Option<crate::storage::CommittedEntry>, StorageError> {
            Ok(None)
        }
    }

    fn vote_batch() -> Vec<Action> {
        let g = sim_genesis().id();
        let vote = Vote { block_id: g, round: 1, voter: 0, signature: Signature([0; 64]) };
        vec![
            Action::Persist(PersistOp::Safety(SafetyData::new(QuorumCert::genesis(g)))),
            Action::Send { to: 2, message: Message::Vote(vote) },
            Action::SetTimer { timer: Timer::Round(1), at_ms: 5 },
        ]
    }

    #[test]
    fn a_failed_write_releases_nothing_after_it() {
        let mut log = Log::default();
        let err = perform(vote_batch(), &mut FailingStorage, &mut log).unwrap_err();
        assert!(err.to_string().contains("disk full"));
        assert!(log.0.is_empty(), "{:?}", log.0);
    }

    #[test]
    fn actions_run_in_order_after_the_write() {
        let mut log = Log::default();
        let mut storage = crate::storage::MemStorage::new();
        perform(vote_batch(), &mut storage, &mut log).unwrap();
        assert_eq!(log.0, vec!["send", "timer"]);
        assert!(storage.safety().unwrap().is_some());
    }
}
