//! EIP-7610: a CREATE onto an address whose storage is not empty collides.
//!
//! revm rejects a CREATE only when the target has a nonce or code. EIP-7610 adds non-empty
//! storage. Such an account (storage, but no nonce and no code) cannot arise from execution:
//! storage is written only by code running at the address, which leaves a nonce or code behind.
//! So the candidates are fixed by the genesis alloc (or a state test's `pre`), collected once
//! into a [`CollisionCandidates`] set. When the set is empty (every real chain) the EVM runs
//! without inspection; otherwise [`CollisionCheck`] intercepts each CREATE whose target is a
//! candidate that still has no nonce and no code, and fails it exactly as revm fails a nonce or
//! code collision: the caller's nonce is bumped, the target warmed, and the frame's gas is lost.

use std::{collections::HashSet, sync::Arc};

use alloy_genesis::GenesisAccount;
use alloy_primitives::{Address, Bytes, KECCAK256_EMPTY};
use revm::{
    Inspector,
    context_interface::{ContextTr, JournalTr, journaled_state::account::JournaledAccountTr},
    interpreter::{
        CreateInputs, CreateOutcome, Gas, InstructionResult, InterpreterResult,
        interpreter::EthInterpreter,
    },
};

/// Maximum call depth (EIP-150 call stack limit).
const CALL_STACK_LIMIT: usize = 1024;

/// Addresses that have storage but neither nonce nor code in the base state.
#[derive(Debug, Clone, Default)]
pub struct CollisionCandidates(Arc<HashSet<Address>>);

impl CollisionCandidates {
    /// Collects the candidates of a genesis alloc (or a state test's `pre`).
    pub fn from_alloc<'a>(
        alloc: impl IntoIterator<Item = (&'a Address, &'a GenesisAccount)>,
    ) -> Self {
        let set = alloc
            .into_iter()
            .filter(|(_, account)| {
                account.nonce.unwrap_or(0) == 0
                    && account.code.as_ref().is_none_or(|code| code.is_empty())
                    && account.storage.as_ref().is_some_and(|s| s.values().any(|v| !v.is_zero()))
            })
            .map(|(address, _)| *address)
            .collect();
        Self(Arc::new(set))
    }

    /// Whether no address can collide through storage alone (then no inspection is needed).
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Whether `address` is a candidate.
    pub fn contains(&self, address: &Address) -> bool {
        self.0.contains(address)
    }
}

/// Inspector failing CREATEs onto candidates of a [`CollisionCandidates`] set.
#[derive(Debug, Clone, Default)]
pub struct CollisionCheck {
    candidates: CollisionCandidates,
}

impl CollisionCheck {
    /// An inspector over `candidates`.
    pub fn new(candidates: CollisionCandidates) -> Self {
        Self { candidates }
    }
}

impl<CTX: ContextTr> Inspector<CTX, EthInterpreter> for CollisionCheck {
    fn create(&mut self, context: &mut CTX, inputs: &mut CreateInputs) -> Option<CreateOutcome> {
        if self.candidates.is_empty() {
            return None;
        }
        let journal = context.journal_mut();
        // Conditions revm checks before the collision keep their own outcome.
        if journal.depth() > CALL_STACK_LIMIT {
            return None;
        }
        let (nonce, balance) = {
            let caller = journal.load_account_mut(inputs.caller()).ok()?;
            (caller.nonce(), *caller.balance())
        };
        if balance < inputs.value() || nonce == u64::MAX {
            return None;
        }
        let target = inputs.created_address(nonce);
        if !self.candidates.contains(&target) {
            return None;
        }
        {
            let account = journal.load_account(target).ok()?;
            if account.info.nonce != 0 || account.info.code_hash != KECCAK256_EMPTY {
                // revm reports this collision itself.
                return None;
            }
        }
        // The collision: the caller's nonce is spent, the frame's gas is lost.
        journal.load_account_mut(inputs.caller()).ok()?.bump_nonce();
        Some(CreateOutcome {
            result: InterpreterResult {
                result: InstructionResult::CreateCollision,
                gas: Gas::new_with_regular_gas_and_reservoir(
                    inputs.gas_limit(),
                    inputs.reservoir(),
                ),
                output: Bytes::new(),
            },
            address: None,
            charged_create_state_gas: inputs.charged_create_state_gas(),
        })
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use alloy_evm::{Evm, EvmEnv, eth::EthEvmBuilder};
    use alloy_primitives::{B256, U256};
    use revm::{
        context::{BlockEnv, CfgEnv, TxEnv},
        context_interface::result::{ExecutionResult, HaltReason},
        database::State,
        primitives::hardfork::SpecId,
    };

    use super::*;
    use crate::fixtures::memory::{MemoryState, UnknownBlockHash};

    /// Runs a CREATE from `sender` (nonce 0) onto its first contract address, which has
    /// storage but no nonce and no code; `check` turns the EIP-7610 inspector on.
    fn create_onto_storage(check: bool) -> (ExecutionResult<HaltReason>, u64) {
        let sender = Address::repeat_byte(0xaa);
        let target = sender.create(0);
        let mut alloc = BTreeMap::new();
        alloc.insert(sender, GenesisAccount::default().with_balance(U256::from(10u64.pow(18))));
        alloc.insert(
            target,
            GenesisAccount::default()
                .with_storage(Some([(B256::with_last_byte(1), B256::with_last_byte(1))].into())),
        );
        let candidates = CollisionCandidates::from_alloc(&alloc);
        assert!(candidates.contains(&target) && !candidates.contains(&sender));
        let pre = MemoryState::from_alloc(&alloc, UnknownBlockHash::Zero);
        let db = State::builder().with_database_ref(&pre).build();
        let env = EvmEnv::new(
            CfgEnv::new_with_spec(SpecId::PRAGUE),
            BlockEnv { gas_limit: 30_000_000, ..Default::default() },
        );
        let mut evm = EthEvmBuilder::new(db, env)
            .inspector(CollisionCheck::new(candidates))
            .set_inspect(check)
            .build();
        let tx = TxEnv::builder()
            .caller(sender)
            .create()
            .data(Bytes::from_static(&[0x60, 0x00, 0x60, 0x00, 0xf3])) // RETURN(0, 0)
            .gas_limit(100_000)
            .build_fill();
        let outcome = evm.transact_raw(tx).unwrap();
        let nonce = outcome.state.get(&sender).map_or(0, |a| a.info.nonce);
        (outcome.result, nonce)
    }

    #[test]
    fn create_onto_an_address_with_storage_collides() {
        let (result, nonce) = create_onto_storage(true);
        assert!(
            matches!(result, ExecutionResult::Halt { reason: HaltReason::CreateCollision, .. }),
            "{result:?}"
        );
        assert_eq!(result.gas().tx_gas_used(), 100_000, "all gas is lost");
        assert_eq!(nonce, 1, "the sender's nonce is spent");
    }

    #[test]
    fn revm_alone_does_not_see_the_collision() {
        let (result, _) = create_onto_storage(false);
        assert!(result.is_success(), "{result:?}");
    }
}
