//! `tandem-loadgen`: measures committed throughput and send→commit latency of a Tandem devnet,
//! `tandem-el --dev` or anvil (see `tandem_e2e::loadgen`).

use std::time::Duration;

use clap::Parser;
use tandem_e2e::loadgen::{self, CommitTag, Config, DEV_MNEMONIC, Workload};

/// Pre-signs transactions from many funded accounts, sends them with eth_sendRawTransaction
/// and reports committed tx/s, send→commit latency, lost and rejected counts.
#[derive(Debug, Parser)]
#[command(name = "tandem-loadgen", version)]
struct Args {
    /// JSON-RPC URL (repeat, or comma-separate, for several nodes; senders are spread over them).
    #[arg(long = "rpc", required = true, value_delimiter = ',')]
    rpc: Vec<String>,
    /// Sender accounts.
    #[arg(long, default_value_t = 200)]
    accounts: usize,
    /// Workload transactions in total.
    #[arg(long, default_value_t = 10_000)]
    txs: usize,
    /// Target rate in tx/s over all nodes (default: unthrottled within the window).
    #[arg(long)]
    rate: Option<f64>,
    /// What the transactions do.
    #[arg(long, value_enum, default_value_t = Workload::Transfer)]
    workload: Workload,
    /// Block tag that counts as committed (Tandem: finalized; anvil automine: latest).
    #[arg(long = "commit-tag", value_enum, default_value_t = CommitTag::Finalized)]
    commit_tag: CommitTag,
    /// Seconds to wait for each set-up step and for commits after the last send.
    #[arg(long = "timeout-secs", default_value_t = 60)]
    timeout_secs: u64,
    /// Transactions per JSON-RPC batch request.
    #[arg(long, default_value_t = 100)]
    batch: usize,
    /// Concurrent request streams per node; each sender's transactions use one, in nonce order.
    #[arg(long, default_value_t = 4)]
    connections: usize,
    /// Most accepted-but-uncommitted transactions (default: 40 per account, at most 8000).
    #[arg(long)]
    window: Option<usize>,
    /// Milliseconds between polls of the commit tag.
    #[arg(long = "poll-ms", default_value_t = 20)]
    poll_ms: u64,
    /// Seed of the sender keys (same seed, same accounts).
    #[arg(long, default_value = "tandem-loadgen")]
    seed: String,
    /// Mnemonic of the funding account.
    #[arg(long, default_value = DEV_MNEMONIC)]
    mnemonic: String,
    /// Index of the funding account in the mnemonic.
    #[arg(long = "funder-index", default_value_t = 0)]
    funder_index: u32,
    /// Fee cap of every transaction as a multiple of the base fee at the start (plus a 1 gwei
    /// tip); raise it for long runs of full blocks, which raise the base fee 12.5 % per block.
    #[arg(long = "fee-cap-multiplier", default_value_t = 3)]
    fee_cap_multiplier: u128,
    /// Print the report as JSON on stdout (progress stays on stderr).
    #[arg(long)]
    json: bool,
}

#[tokio::main]
async fn main() -> eyre::Result<()> {
    let args = Args::parse();
    let config = Config {
        rpc: args.rpc,
        accounts: args.accounts,
        txs: args.txs,
        rate: args.rate,
        workload: args.workload,
        commit_tag: args.commit_tag,
        timeout: Duration::from_secs(args.timeout_secs),
        batch: args.batch,
        connections: args.connections,
        window: args.window,
        poll: Duration::from_millis(args.poll_ms),
        seed: args.seed,
        funder_mnemonic: args.mnemonic,
        funder_index: args.funder_index,
        fee_cap_multiplier: args.fee_cap_multiplier,
    };
    let report = loadgen::run(&config, &|line| eprintln!("tandem-loadgen: {line}")).await?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print!("{}", report.render_text());
    }
    Ok(())
}
