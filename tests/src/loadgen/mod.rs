//! `tandem-loadgen`: committed-throughput load generator for any Ethereum JSON-RPC node (a
//! Tandem devnet, `tandem-el --dev`, anvil).
//!
//! A run has two phases. **Set-up** (not timed): sender accounts derived from a seed are funded
//! from the dev mnemonic's account by a fan-out of transfers (for `erc20`, the bench token is
//! deployed and handed out the same way), every workload transaction is signed (EIP-1559, chain
//! id, nonces and fees read from the node) and cut into JSON-RPC batches. **Timed**: the batches
//! are posted with `eth_sendRawTransaction` over several concurrent lanes per node (senders
//! spread round-robin over the nodes, each sender's nonces in order in one lane), while one node's commit tag (`finalized` or `latest`) is polled
//! and every newly committed block's transaction hashes are matched against the workload.

pub mod accounts;
pub mod erc20;
pub mod l1;
pub mod progress;
pub mod report;
pub mod rpc;
pub mod schedule;
pub mod sending;
pub mod signing;
pub mod tracking;

use std::{collections::HashMap, sync::Arc, time::Duration};

use alloy_primitives::{Address, Bytes, TxKind, U256};
use serde_json::json;

use self::{
    accounts::{Asset, FANOUT, balances, deploy_token, distribute, nonces, token_balances},
    progress::Progress,
    report::{ReceiptSummary, Records, Report, RunInfo},
    rpc::{RpcClient, quantity, quantity_u64},
    schedule::{Slot, node_of_lane, per_lane_queues, per_sender_counts, round_robin_order},
    sending::{Batch, Lane, SendOptions, send_all},
    signing::{Fees, TxRequest, mnemonic_key, sender_keys, sign_all},
    tracking::{CommitWatcher, track},
};

/// The dev mnemonic funded on Tandem devnets, `tandem-el --dev` and anvil.
pub const DEV_MNEMONIC: &str = "test test test test test test test test test test test junk";

/// Failures of a load-generator run.
#[derive(Debug, thiserror::Error)]
pub enum LoadgenError {
    /// The HTTP request failed.
    #[error("{url}: {message}")]
    Http {
        /// Endpoint.
        url: String,
        /// What failed.
        message: String,
    },
    /// The node answered with an error or something unreadable.
    #[error("{url}: {method}: {message}")]
    Rpc {
        /// Endpoint.
        url: String,
        /// JSON-RPC method.
        method: String,
        /// The node's message.
        message: String,
    },
    /// A key or a signature could not be made.
    #[error("signing: {0}")]
    Signing(String),
    /// The set-up could not be completed.
    #[error("set-up: {0}")]
    Setup(String),
    /// Something did not happen in time.
    #[error("time-out: {0}")]
    Timeout(String),
    /// The configuration is unusable.
    #[error("configuration: {0}")]
    Config(String),
}

/// What the workload transactions do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Workload {
    /// 1 wei from each sender to the next sender.
    Transfer,
    /// One bench-token unit from each sender to the next sender.
    Erc20,
    /// Orders on the native L1 exchange's ETH/TUSD spot market (an L1 devnet), see [`l1`].
    L1Orders,
}

impl Workload {
    /// The CLI spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Transfer => "transfer",
            Self::Erc20 => "erc20",
            Self::L1Orders => "l1-orders",
        }
    }

    /// Gas limit of one workload transaction.
    pub fn gas_limit(self) -> u64 {
        match self {
            Self::Transfer => 21_000,
            Self::Erc20 => erc20::TRANSFER_GAS,
            Self::L1Orders => l1::ORDER_GAS,
        }
    }
}

/// Which block tag counts as committed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum CommitTag {
    /// `finalized` (a Tandem devnet: committed by HotStuff).
    Finalized,
    /// `latest` (anvil automine, where there is no finality).
    Latest,
}

impl CommitTag {
    /// The JSON-RPC block tag.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Finalized => "finalized",
            Self::Latest => "latest",
        }
    }
}

/// A run's settings.
#[derive(Debug, Clone)]
pub struct Config {
    /// JSON-RPC URLs; senders are spread round-robin over them. The first one is used for the
    /// set-up and for tracking commits.
    pub rpc: Vec<String>,
    /// Sender accounts.
    pub accounts: usize,
    /// Workload transactions in total.
    pub txs: usize,
    /// Target rate (tx/s over all nodes); `None`: unthrottled within the window.
    pub rate: Option<f64>,
    /// What the transactions do.
    pub workload: Workload,
    /// Which block tag counts as committed.
    pub commit_tag: CommitTag,
    /// How long to wait for set-up steps, and for commits after the last send.
    pub timeout: Duration,
    /// Transactions per JSON-RPC batch.
    pub batch: usize,
    /// Lanes (concurrent sequential request streams) per node; each sender uses one lane.
    pub connections: usize,
    /// Most accepted-but-uncommitted transactions; `None`: `min(40 × accounts, 8000)`.
    pub window: Option<usize>,
    /// Interval between polls of the commit tag.
    pub poll: Duration,
    /// Seed of the sender keys.
    pub seed: String,
    /// Mnemonic of the funding account.
    pub funder_mnemonic: String,
    /// Index of the funding account in the mnemonic.
    pub funder_index: u32,
    /// Fee cap of every transaction as a multiple of the base fee at the start (plus the tip).
    pub fee_cap_multiplier: u128,
}

impl Config {
    /// The in-flight window this run uses.
    pub fn window(&self) -> usize {
        self.window.unwrap_or_else(|| (self.accounts * 40).clamp(self.batch.max(1), 8_000))
    }
}

/// The nodes and the chain parameters the set-up needs.
#[derive(Debug, Clone)]
pub struct Chain {
    /// One client per node.
    pub clients: Vec<RpcClient>,
    /// Chain id.
    pub chain_id: u64,
    /// Fees of every transaction.
    pub fees: Fees,
    /// Commit tag.
    pub tag: CommitTag,
    /// Poll interval.
    pub poll: Duration,
    /// Time-out of each set-up step.
    pub timeout: Duration,
}

impl Chain {
    /// The first node (set-up and tracking).
    pub fn first(&self) -> Result<&RpcClient, LoadgenError> {
        self.clients.first().ok_or_else(|| LoadgenError::Config("no --rpc given".into()))
    }
}

/// Connects to the nodes and reads chain id and fees; every node must report the same chain.
pub async fn connect(config: &Config) -> Result<Chain, LoadgenError> {
    let clients =
        config.rpc.iter().map(|u| RpcClient::new(u)).collect::<Result<Vec<_>, LoadgenError>>()?;
    let first = clients.first().ok_or_else(|| LoadgenError::Config("no --rpc given".into()))?;
    let mut chain_id = None;
    for c in &clients {
        let id = quantity_u64(&c.call("eth_chainId", json!([])).await?).ok_or_else(|| {
            LoadgenError::Rpc {
                url: c.url().into(),
                method: "eth_chainId".into(),
                message: "not a quantity".into(),
            }
        })?;
        if *chain_id.get_or_insert(id) != id {
            return Err(LoadgenError::Config(format!(
                "{} is on chain {id}, not the first's",
                c.url()
            )));
        }
    }
    let gas_price = quantity(&first.call("eth_gasPrice", json!([])).await?).unwrap_or(0);
    let latest = first.call("eth_getBlockByNumber", json!(["latest", false])).await?;
    let base_fee = quantity(&latest["baseFeePerGas"]);
    Ok(Chain {
        clients,
        chain_id: chain_id.unwrap_or_default(),
        fees: Fees::with_multiplier(base_fee, gas_price, config.fee_cap_multiplier),
        tag: config.commit_tag,
        poll: config.poll,
        timeout: config.timeout,
    })
}

/// The calldata of each workload transaction.
type CalldataOf = Box<dyn Fn(&Slot) -> Bytes>;

/// Runs the set-up and the timed phase; `log` receives progress lines.
pub async fn run(config: &Config, log: &(dyn Fn(&str) + Sync)) -> Result<Report, LoadgenError> {
    if config.accounts == 0 {
        return Err(LoadgenError::Config("--accounts must be at least 1".into()));
    }
    let chain = connect(config).await?;
    let rpc = chain.first()?.clone();
    log(&format!(
        "chain {} at {} node(s); max fee {} wei, tip {} wei",
        chain.chain_id,
        chain.clients.len(),
        chain.fees.max_fee_per_gas,
        chain.fees.max_priority_fee_per_gas
    ));
    let funder = mnemonic_key(&config.funder_mnemonic, config.funder_index)?;
    let senders = sender_keys(&config.seed, config.accounts)?;
    let addresses: Vec<Address> = senders.iter().map(|k| k.address()).collect();
    let counts = per_sender_counts(config.txs, config.accounts);
    let gas = config.workload.gas_limit();

    // Ether: each sender's workload gas and value, plus (erc20) the gas to pass tokens on.
    let relay = match config.workload {
        Workload::Transfer => 0,
        Workload::Erc20 | Workload::L1Orders => {
            chain.fees.max_cost(erc20::TRANSFER_GAS) * FANOUT as u128
        }
    };
    let need: Vec<u128> = counts
        .iter()
        .map(|&n| {
            let workload = (chain.fees.max_cost(gas) + 1).saturating_mul(n as u128);
            let setup = match config.workload {
                Workload::L1Orders => l1::setup_wei(&chain, n),
                _ => 0,
            };
            (workload + relay + setup).saturating_mul(11) / 10
        })
        .collect();
    let have = balances(&rpc, &addresses).await?;
    let targets: Vec<usize> = (0..senders.len()).filter(|&s| have[s] < need[s]).collect();
    let mut setup_block = 0;
    if !targets.is_empty() {
        log(&format!(
            "funding {} of {} senders from {}",
            targets.len(),
            senders.len(),
            funder.address()
        ));
        let own: Vec<u128> = targets.iter().map(|&s| need[s]).collect();
        setup_block = distribute(&chain, &funder, &senders, &targets, &own, Asset::Ether).await?;
    }

    let (to_of, input_of): (Vec<Address>, CalldataOf) = match config.workload {
        Workload::Transfer => {
            let next = (0..senders.len()).map(|s| addresses[(s + 1) % addresses.len()]).collect();
            (next, Box::new(|_| Bytes::new()))
        }
        Workload::Erc20 => {
            let own: Vec<u128> = counts.iter().map(|&n| n as u128 + 1).collect();
            let supply = U256::from(own.iter().sum::<u128>() + 1_000);
            let (token, block) = deploy_token(&chain, &funder, supply).await?;
            log(&format!("bench token at {token}; handing out balances"));
            let everyone: Vec<usize> = (0..senders.len()).collect();
            let b =
                distribute(&chain, &funder, &senders, &everyone, &own, Asset::Token(token)).await?;
            setup_block = setup_block.max(block).max(b);
            let held = token_balances(&rpc, token, &addresses).await?;
            if let Some(s) = (0..senders.len()).find(|&s| held[s] < U256::from(own[s])) {
                return Err(LoadgenError::Setup(format!(
                    "sender {} holds {} tokens, needs {}",
                    addresses[s], held[s], own[s]
                )));
            }
            let next: Vec<Address> =
                (0..senders.len()).map(|s| addresses[(s + 1) % addresses.len()]).collect();
            let calldata: Vec<Bytes> =
                next.iter().map(|to| erc20::transfer_calldata(*to, U256::from(1))).collect();
            (vec![token; senders.len()], Box::new(move |slot| calldata[slot.sender].clone()))
        }
        Workload::L1Orders => {
            let own: Vec<u128> = counts.iter().map(|&n| l1::tusd_needed(n)).collect();
            log(&format!(
                "handing out TUSD ({}) and depositing it and ether into the L1",
                l1::TEST_USD
            ));
            let everyone: Vec<usize> = (0..senders.len()).collect();
            let b =
                distribute(&chain, &funder, &senders, &everyone, &own, Asset::Token(l1::TEST_USD))
                    .await?;
            let d = l1::deposit_all(&chain, &senders, &counts).await?;
            setup_block = setup_block.max(b).max(d);
            (
                vec![l1::L1_WRITE; senders.len()],
                Box::new(|slot| l1::order_calldata(slot.sender, slot.offset)),
            )
        }
    };
    accounts::wait_nodes_at(&chain, setup_block).await?;

    // Pre-sign everything in send order.
    let start_nonces = nonces(&rpc, &addresses).await?;
    let order = round_robin_order(&counts);
    let value = match config.workload {
        Workload::Transfer => U256::from(1),
        Workload::Erc20 | Workload::L1Orders => U256::ZERO,
    };
    let requests: Vec<TxRequest> = order
        .iter()
        .map(|slot| TxRequest {
            signer: slot.sender,
            nonce: start_nonces[slot.sender] + slot.offset,
            to: TxKind::Call(to_of[slot.sender]),
            value,
            input: input_of(slot),
            gas_limit: gas,
        })
        .collect();
    let signing = std::time::Instant::now();
    let signed = sign_all(&senders, chain.chain_id, chain.fees, &requests)?;
    log(&format!(
        "signed {} transactions in {:.2} s",
        signed.len(),
        signing.elapsed().as_secs_f64()
    ));
    let raw: Vec<String> = signed.iter().map(|t| t.raw_hex()).collect();
    let nodes = chain.clients.len();
    let queues = per_lane_queues(&order, nodes * config.connections.max(1));
    let mut lane_of = vec![0; order.len()];
    for (lane, queue) in queues.iter().enumerate() {
        for &i in queue {
            lane_of[i] = lane;
        }
    }
    let lanes: Vec<Lane> = queues
        .iter()
        .enumerate()
        .map(|(lane, queue)| Lane {
            client: chain.clients[node_of_lane(lane, nodes)].clone(),
            batches: schedule::batches(queue, config.batch)
                .into_iter()
                .map(|b| Batch::new(b, &raw))
                .collect(),
        })
        .collect();
    let index: HashMap<_, _> = signed.iter().enumerate().map(|(i, t)| (t.hash, i)).collect();
    let hashes: Vec<_> = signed.iter().map(|t| t.hash).collect();
    drop(raw);

    // Timed phase.
    let window = config.window();
    let progress = Arc::new(Progress::new(lanes.len()));
    let watcher = CommitWatcher::start(rpc.clone(), chain.tag).await?;
    let tracker =
        tokio::spawn(track(watcher, index, lane_of, progress.clone(), config.poll, config.timeout));
    log(&format!(
        "sending {} {} transactions, window {window}{}",
        signed.len(),
        config.workload.as_str(),
        config.rate.map_or(String::new(), |r| format!(", {r:.0} tx/s"))
    ));
    let options = SendOptions { window, rate: config.rate, stall_timeout: config.timeout };
    let sent = match send_all(lanes, signed.len(), options, progress.clone()).await {
        Ok(sent) => sent,
        Err(e) => {
            tracker.abort();
            return Err(e);
        }
    };
    let tracked =
        tracker.await.map_err(|e| LoadgenError::Setup(format!("the tracker failed: {e}")))?;
    if let Some(e) = &tracked.last_error {
        log(&format!("{} commit polls failed; last: {e}", tracked.poll_errors));
    }
    let run = RunInfo {
        workload: config.workload.as_str().into(),
        commit_tag: chain.tag.as_str().into(),
        rpc: config.rpc.clone(),
        accounts: config.accounts,
        txs: signed.len(),
        target_rate: config.rate,
        window,
        chain_id: chain.chain_id,
    };
    let mut report = Report::compute(
        run,
        Records {
            send_times: &sent.send_times,
            accepted: &sent.accepted,
            commit_times: &tracked.commit_times,
            blocks: &tracked.blocks,
            rejections: &sent.rejections,
            last_reply: sent.last_reply,
        },
    );
    if config.workload == Workload::L1Orders {
        // After the timed phase: the committed orders' receipts (reverted ones are included too).
        let committed: Vec<_> = hashes
            .iter()
            .zip(&tracked.commit_times)
            .filter(|(_, t)| t.is_some())
            .map(|(h, _)| *h)
            .collect();
        let ours = tracked.blocks.iter().filter(|b| b.ours > 0).map(|b| b.number);
        if let (Some(from), Some(to)) = (ours.clone().min(), ours.max()) {
            let stats = l1::receipt_stats(&rpc, from, to, &committed).await?;
            report.receipts = Some(ReceiptSummary::of(&stats));
        }
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(accounts: usize, window: Option<usize>) -> Config {
        Config {
            rpc: vec![],
            accounts,
            txs: 0,
            rate: None,
            workload: Workload::Transfer,
            commit_tag: CommitTag::Finalized,
            timeout: Duration::from_secs(1),
            batch: 100,
            connections: 1,
            window,
            poll: Duration::from_millis(20),
            seed: String::new(),
            funder_mnemonic: DEV_MNEMONIC.into(),
            funder_index: 0,
            fee_cap_multiplier: 3,
        }
    }

    #[test]
    fn default_window_follows_the_accounts_within_bounds() {
        assert_eq!(config(200, None).window(), 8_000);
        assert_eq!(config(20, None).window(), 800);
        assert_eq!(config(1, None).window(), 100, "at least one batch");
        assert_eq!(config(200, Some(5)).window(), 5);
    }
}
