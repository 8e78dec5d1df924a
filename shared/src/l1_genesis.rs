//! Genesis pieces of the native L1 exchange: the write contract every L1 chain predeploys, and
//! for devnets a test USD token and a ready configuration (`config.tandem.l1`).
//!
//! The bytecode comes from `contracts/l1/out/`, compiled from the Solidity sources beside it by
//! `contracts/l1/compile.js`.

use std::collections::BTreeMap;

use alloy_genesis::GenesisAccount;
use alloy_primitives::{Address, B256, Bytes, U256, address, keccak256};
use serde_json::{Value, json};

/// The write system contract; its storage holds the L1 state.
pub const L1_WRITE_ADDRESS: Address = address!("0x3333333333333333333333333333333333333333");

/// Where devnets put the test USD token (the perp collateral of [`devnet_config`]).
pub const TEST_USD_ADDRESS: Address = address!("0x7e57000000000000000000000000000000005d00");

const L1_WRITE_RUNTIME: &str = include_str!("../../contracts/l1/out/L1Write.runtime.bin");
const TEST_USD_RUNTIME: &str = include_str!("../../contracts/l1/out/TestUSD.runtime.bin");

fn code(hex_text: &str) -> Bytes {
    // The assets are checked by the tests below; a decoding failure would be a build defect.
    hex::decode(hex_text.trim()).map(Bytes::from).unwrap_or_default()
}

/// The runtime code of the write contract.
pub fn l1_write_code() -> Bytes {
    code(L1_WRITE_RUNTIME)
}

/// The write contract's genesis account: its code and nonce 1 (so it is never empty).
pub fn l1_write_account() -> GenesisAccount {
    GenesisAccount::default().with_code(Some(l1_write_code())).with_nonce(Some(1))
}

/// The test USD token's genesis account with `holders`' balances (6 decimals) in its storage:
/// `balanceOf` is the mapping at slot 0 and `totalSupply` slot 2 (see `TestUSD.sol`).
pub fn test_usd_account(holders: &[(Address, U256)]) -> GenesisAccount {
    let mut storage = BTreeMap::new();
    let mut total = U256::ZERO;
    for (holder, amount) in holders {
        let mut preimage = [0u8; 64];
        preimage[12..32].copy_from_slice(holder.as_slice());
        storage.insert(keccak256(preimage), B256::from(*amount));
        total = total.saturating_add(*amount);
    }
    storage.insert(B256::from(U256::from(2)), B256::from(total));
    GenesisAccount::default()
        .with_code(Some(code(TEST_USD_RUNTIME)))
        .with_nonce(Some(1))
        .with_storage(Some(storage))
}

/// A devnet's L1 configuration: ETH and test USD, an ETH/USD spot market, BTC and ETH perps
/// margined in USD, `publishers` as oracle publishers.
pub fn devnet_config(publishers: &[Address], fee_recipient: Address, backstop: Address) -> Value {
    json!({
        "assets": [
            { "symbol": "ETH", "decimals": 18 },
            { "symbol": "TUSD", "decimals": 6, "token": format!("{TEST_USD_ADDRESS:#x}") }
        ],
        "markets": [
            { "kind": "spot", "symbol": "ETH/TUSD", "base": 0, "quote": 1,
              "tickSize": "10000", "lotSize": "1000000000000000", "takerFeeBps": 5 },
            { "kind": "perp", "symbol": "BTC-PERP", "baseDecimals": 8, "tickSize": "1000000",
              "lotSize": "100000", "takerFeeBps": 5, "maxLeverage": 20,
              "maintenanceMarginBps": 250 },
            { "kind": "perp", "symbol": "ETH-PERP", "baseDecimals": 18, "tickSize": "10000",
              "lotSize": "1000000000000000", "takerFeeBps": 5, "maxLeverage": 20,
              "maintenanceMarginBps": 250 }
        ],
        "collateral": 1,
        "oraclePublishers": publishers.iter().map(|p| format!("{p:#x}")).collect::<Vec<_>>(),
        "oracleStalenessBlocks": 30,
        "fundingIntervalBlocks": 60,
        "feeRecipient": format!("{fee_recipient:#x}"),
        "backstop": format!("{backstop:#x}")
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bytecode_assets_decode() {
        assert!(hex::decode(L1_WRITE_RUNTIME.trim()).is_ok_and(|c| c.len() > 100));
        assert!(hex::decode(TEST_USD_RUNTIME.trim()).is_ok_and(|c| c.len() > 100));
    }

    #[test]
    fn test_usd_balances_sit_at_the_mapping_slots() {
        let holder = Address::repeat_byte(0x11);
        let account = test_usd_account(&[(holder, U256::from(5u64))]);
        let storage = account.storage.unwrap_or_default();
        // keccak256(pad32(holder) ‖ pad32(0)), as Solidity lays out `mapping` slot 0.
        let slot =
            keccak256([B256::left_padding_from(holder.as_slice()).as_slice(), &[0u8; 32]].concat());
        assert_eq!(storage.get(&slot), Some(&B256::from(U256::from(5u64))));
        assert_eq!(storage.get(&B256::from(U256::from(2))), Some(&B256::from(U256::from(5u64))));
    }
}
