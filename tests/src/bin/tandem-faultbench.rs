//! `tandem-faultbench`: committed throughput and send→finalized latency of a 4-validator
//! network whose pairs run in their own network namespaces, with a given packet loss and/or
//! latency on every link (see `tandem_e2e::netns`). Needs root, `ip` and `nft`. Prints the load
//! generator's report as JSON, with the faults and the finalized blocks per second over the run
//! added.

use std::time::{Duration, Instant};

use clap::Parser;
use tandem_e2e::loadgen::{self, CommitTag, Config, DEV_MNEMONIC, Workload};
use tandem_e2e::netns::Lab;
use tandem_e2e::testnet::{Testnet, height, wait_all};

/// Runs the load generator against a namespaced 4-validator network with packet loss and
/// latency.
#[derive(Debug, Parser)]
#[command(name = "tandem-faultbench", version)]
struct Args {
    /// Percent of packets dropped on every link between nodes (0: none).
    #[arg(long, default_value_t = 2)]
    loss: u32,
    /// Delay added each way on every TCP connection between nodes (0ms: none), e.g. `50ms`.
    #[arg(long, value_parser = humantime::parse_duration, default_value = "0ms")]
    delay: Duration,
    /// Offered rate in transfers per second over all nodes.
    #[arg(long, default_value_t = 2500.0)]
    rate: f64,
    /// Transfers in the run.
    #[arg(long, default_value_t = 10_000)]
    txs: usize,
    /// Sender accounts.
    #[arg(long, default_value_t = 200)]
    accounts: usize,
    /// Keeps concurrent labs apart (namespace names and addresses).
    #[arg(long, default_value_t = 21)]
    slot: u16,
}

#[tokio::main]
async fn main() -> eyre::Result<()> {
    let args = Args::parse();
    let lab = Lab::new(4, args.slot)?;
    let hosts = lab.hosts();
    let mut net = Testnet::generate_opts(4, 0, args.slot, &[], &["--hosts", &hosts])?;
    for i in 0..4 {
        net.run_through(i, &lab.exec_prefix(i));
        net.start(i)?;
    }
    let urls = net.urls();
    wait_all(&urls, "finalized", 3, 180).await?;
    if args.loss > 0 {
        lab.loss(args.loss)?;
    }
    if !args.delay.is_zero() {
        // After the loss: setting loss heals whatever was set before.
        lab.latency(args.delay)?;
    }
    if args.loss > 0 || !args.delay.is_zero() {
        // The delay resets the open connections; measure once finality has resumed.
        let at = height(&urls[0], "finalized").await.unwrap_or(0);
        wait_all(&urls, "finalized", at + 2, 120).await?;
    }
    let config = Config {
        rpc: urls.clone(),
        accounts: args.accounts,
        txs: args.txs,
        rate: Some(args.rate),
        workload: Workload::Transfer,
        commit_tag: CommitTag::Finalized,
        timeout: Duration::from_secs(60),
        batch: 100,
        connections: 4,
        window: None,
        poll: Duration::from_millis(20),
        seed: "tandem-faultbench".into(),
        funder_mnemonic: DEV_MNEMONIC.into(),
        funder_index: 0,
        fee_cap_multiplier: 3,
    };
    let first = height(&urls[0], "finalized").await.unwrap_or(0);
    let started = Instant::now();
    let report = loadgen::run(&config, &|line| eprintln!("tandem-faultbench: {line}")).await?;
    let blocks = height(&urls[0], "finalized").await.unwrap_or(0).saturating_sub(first);
    let mut json = serde_json::to_value(&report)?;
    json["loss_percent"] = args.loss.into();
    json["delay_ms"] = (args.delay.as_secs_f64() * 1000.0).into();
    json["finalized_blocks_per_sec"] = (blocks as f64 / started.elapsed().as_secs_f64()).into();
    println!("{}", serde_json::to_string_pretty(&json)?);
    drop(net);
    drop(lab);
    Ok(())
}
