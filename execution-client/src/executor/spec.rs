//! The chain spec seen through alloy-evm's hardfork traits, and the revm spec id per fork.

use alloy_evm::eth::spec::EthExecutorSpec;
use alloy_hardforks::{EthereumHardfork, EthereumHardforks, ForkCondition};
use alloy_primitives::Address;
use revm::primitives::hardfork::SpecId;
use tandem_shared::{ChainSpec, Fork};

/// A borrowed [`ChainSpec`] answering alloy-evm's fork questions (merged at genesis).
#[derive(Debug, Clone, Copy)]
pub struct ForkSchedule<'a>(pub &'a ChainSpec);

impl EthereumHardforks for ForkSchedule<'_> {
    fn ethereum_fork_activation(&self, fork: EthereumHardfork) -> ForkCondition {
        let by_time = |fork: Fork| match self.0.activation_time(fork) {
            Some(time) => ForkCondition::Timestamp(time),
            None => ForkCondition::Never,
        };
        match fork {
            EthereumHardfork::Shanghai => by_time(Fork::Shanghai),
            EthereumHardfork::Cancun => by_time(Fork::Cancun),
            EthereumHardfork::Prague => by_time(Fork::Prague),
            // The DAO fork is a mainnet irregular state change, never part of a Tandem chain.
            EthereumHardfork::Dao => ForkCondition::Never,
            EthereumHardfork::Frontier
            | EthereumHardfork::Homestead
            | EthereumHardfork::Tangerine
            | EthereumHardfork::SpuriousDragon
            | EthereumHardfork::Byzantium
            | EthereumHardfork::Constantinople
            | EthereumHardfork::Petersburg
            | EthereumHardfork::Istanbul
            | EthereumHardfork::MuirGlacier
            | EthereumHardfork::Berlin
            | EthereumHardfork::London
            | EthereumHardfork::ArrowGlacier
            | EthereumHardfork::GrayGlacier
            | EthereumHardfork::Paris => ForkCondition::Block(0),
            _ => ForkCondition::Never,
        }
    }
}

impl EthExecutorSpec for ForkSchedule<'_> {
    fn deposit_contract_address(&self) -> Option<Address> {
        self.0.deposit_contract_address()
    }
}

/// The revm spec id that executes blocks of `fork`.
pub const fn spec_id(fork: Fork) -> SpecId {
    match fork {
        Fork::Paris => SpecId::MERGE,
        Fork::Shanghai => SpecId::SHANGHAI,
        Fork::Cancun => SpecId::CANCUN,
        Fork::Prague => SpecId::PRAGUE,
    }
}
