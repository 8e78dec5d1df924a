//! Every blockchain test's genesis, rebuilt from `genesisBlockHeader` and `pre` through our chain
//! spec, must hash to the fixture's stated genesis hash.

use std::{collections::BTreeMap, path::Path};

use alloy_genesis::{Genesis, GenesisAccount};
use alloy_primitives::{Address, B64, B256, Bytes, U64, U256};
use serde::Deserialize;
use tandem_shared::{ChainSpec, chainspec::fixture_network, fixtures};

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct FixtureHeader {
    coinbase: Address,
    difficulty: U256,
    extra_data: Bytes,
    gas_limit: U64,
    timestamp: U64,
    mix_hash: B256,
    nonce: B64,
    number: U64,
    parent_hash: B256,
    base_fee_per_gas: Option<U256>,
    blob_gas_used: Option<U64>,
    excess_blob_gas: Option<U64>,
    hash: B256,
}

#[derive(Deserialize)]
struct FixtureConfig {
    chainid: U64,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct BlockchainTest {
    network: String,
    config: Option<FixtureConfig>,
    genesis_block_header: FixtureHeader,
    pre: BTreeMap<Address, GenesisAccount>,
}

#[test]
fn genesis_hash_of_every_blockchain_fixture() {
    let root = fixtures::fixtures_dir(Path::new(env!("CARGO_MANIFEST_DIR"))).unwrap();
    let files = fixtures::json_files(&root.join("blockchain_tests")).unwrap();
    assert!(!files.is_empty(), "no blockchain fixture files under {}", root.display());
    let (mut checked, mut failures) = (0usize, Vec::new());
    for file in &files {
        let text = std::fs::read_to_string(file).unwrap();
        let tests: BTreeMap<String, BlockchainTest> =
            serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
        for (name, test) in tests {
            let h = &test.genesis_block_header;
            let chain_id = test.config.map_or(1, |c| c.chainid.to::<u64>());
            let Some(config) = fixture_network(&test.network, chain_id) else {
                failures.push(format!("{name}: unknown network {}", test.network));
                continue;
            };
            let genesis = Genesis {
                config,
                nonce: u64::from_be_bytes(h.nonce.0),
                timestamp: h.timestamp.to(),
                extra_data: h.extra_data.clone(),
                gas_limit: h.gas_limit.to(),
                difficulty: h.difficulty,
                mix_hash: h.mix_hash,
                coinbase: h.coinbase,
                alloc: test.pre,
                base_fee_per_gas: h.base_fee_per_gas.map(|f| f.to()),
                excess_blob_gas: h.excess_blob_gas.map(|v| v.to()),
                blob_gas_used: h.blob_gas_used.map(|v| v.to()),
                number: Some(h.number.to()),
                parent_hash: Some(h.parent_hash),
                ..Default::default()
            };
            match ChainSpec::from_genesis(genesis) {
                Ok(spec) if spec.genesis_hash() == h.hash => checked += 1,
                Ok(spec) => failures.push(format!(
                    "{name}: genesis hash {} != fixture {}",
                    spec.genesis_hash(),
                    h.hash
                )),
                Err(e) => failures.push(format!("{name}: {e}")),
            }
        }
    }
    println!(
        "genesis hashes: {checked} matched, {} failed, from {} files",
        failures.len(),
        files.len()
    );
    assert!(failures.is_empty(), "{} mismatches:\n{}", failures.len(), failures.join("\n"));
    assert!(checked > 2000, "expected the full fixture set, checked only {checked}");
}
