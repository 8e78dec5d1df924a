//! `tandem-el chain`: what a genesis file means, as the node will read it.

use std::path::PathBuf;

use tandem_shared::{ChainSpec, Fork};

/// Arguments of `tandem-el chain`.
#[derive(Debug, clap::Args)]
pub struct ChainArgs {
    /// Path to a geth-style genesis.json.
    #[arg(long = "chain", value_name = "FILE")]
    pub chain: PathBuf,
}

/// Prints the chain spec summary as JSON.
pub fn run(args: &ChainArgs) -> eyre::Result<()> {
    let spec = ChainSpec::from_file(&args.chain)?;
    let header = spec.genesis_header();
    let forks: serde_json::Map<String, serde_json::Value> =
        [Fork::Shanghai, Fork::Cancun, Fork::Prague]
            .into_iter()
            .map(|f| {
                (
                    f.name().to_string(),
                    spec.activation_time(f).map_or(serde_json::Value::Null, Into::into),
                )
            })
            .collect();
    let summary = serde_json::json!({
        "chainId": spec.chain_id(),
        "genesisHash": spec.genesis_hash(),
        "stateRoot": header.state_root,
        "gasLimit": header.gas_limit,
        "baseFeePerGas": header.base_fee_per_gas,
        "forkTimes": forks,
        "forkAtGenesis": spec.fork_at(header.timestamp).name(),
        "accounts": spec.genesis().alloc.len(),
        "subSecondBlocks": spec.sub_second_blocks(),
    });
    println!("{}", serde_json::to_string_pretty(&summary)?);
    Ok(())
}
