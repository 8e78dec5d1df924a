//! The system contracts a Prague chain needs at genesis (EIP-4788 beacon roots, EIP-2935 block
//! hashes, EIP-7002 withdrawal and EIP-7251 consolidation requests, and the deposit contract whose
//! logs become EIP-6110 deposit requests), with their mainnet code, for generated genesis files.

use std::collections::BTreeMap;

use alloy_genesis::GenesisAccount;
use alloy_primitives::Address;

/// The deposit contract address used by generated genesis files (mainnet's).
pub const DEPOSIT_CONTRACT: &str = "0x00000000219ab540356cbb839cbe05303d7705fa";

const PRAGUE_SYSTEM_CONTRACTS: &str = include_str!("../assets/prague_system_contracts.json");

/// Accounts of the Prague system contracts, keyed by address.
pub fn prague_system_contracts() -> BTreeMap<Address, GenesisAccount> {
    // The asset is checked by the test below; an error here would be a build defect.
    serde_json::from_str(PRAGUE_SYSTEM_CONTRACTS).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn asset_parses_with_code() {
        let parsed: BTreeMap<Address, GenesisAccount> =
            serde_json::from_str(PRAGUE_SYSTEM_CONTRACTS).unwrap();
        assert_eq!(parsed.len(), 5);
        assert!(parsed.values().all(|a| a.code.as_ref().is_some_and(|c| !c.is_empty())));
        assert_eq!(prague_system_contracts(), parsed);
    }
}
