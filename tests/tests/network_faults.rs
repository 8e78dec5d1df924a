//! Real network faults against four real validator pairs, each in its own Linux network
//! namespace with its own address ([`tandem_e2e::netns::Lab`]): partitions and loss are
//! nftables rules, freezes are SIGSTOP. Every phase asserts no fork, no lost transaction, and
//! finality resuming once the fault ends:
//!
//! 1. a 2|2 partition for 30 s, then heal: every node finalizes a new block within 10 s;
//! 2. the validator that leads the coming rounds cut off alone (1|3): the other three keep
//!    finalizing, and it catches up once healed;
//! 3. two validator pairs frozen (SIGSTOP) for 30 s: at most one block finalized while frozen,
//!    every node finalizing again within 10 s of the resume;
//! 4. 2 % loss on every link: the chain keeps finalizing;
//! 5. 50 ms latency each way on every link between nodes (a 100 ms round trip, through the
//!    lab's delayers): the chain keeps finalizing and every transfer is finalized. The test
//!    checks that the delay is real: the nodes' connections run through the delayers, and an
//!    HTTP request from one node's namespace to another node takes at least the round trip.
//!
//! Needs root, `ip` and `nft` (as CI has; `scripts/install-deps` installs nftables).

#![allow(clippy::unwrap_used)]

use std::time::{Duration, Instant};

use alloy_primitives::{Address, B256, U256};
use alloy_provider::{
    Provider, ProviderBuilder,
    network::{Ethereum, EthereumWallet, Network, TransactionBuilder},
};
use serde_json::Value;
use tandem_e2e::netns::Lab;
use tandem_e2e::testnet::{Testnet, hash_and_root, height, wait_all, wait_finalized_receipts};

type TxRequest = <Ethereum as Network>::TransactionRequest;

/// Lowest and highest finalized height over the nodes.
async fn finalized_range(urls: &[String]) -> (u64, u64) {
    let mut lo = u64::MAX;
    let mut hi = 0;
    for u in urls {
        let h = height(u, "finalized").await.unwrap_or(0);
        lo = lo.min(h);
        hi = hi.max(h);
    }
    (lo, hi)
}

/// Every node has the same block hash and state root at every height up to the lowest
/// finalized one (no fork).
async fn assert_no_fork(urls: &[String]) {
    let (lo, _) = finalized_range(urls).await;
    for n in 1..=lo {
        let first = hash_and_root(&urls[0], n).await.unwrap();
        for u in &urls[1..] {
            assert_eq!(hash_and_root(u, n).await.as_ref(), Some(&first), "fork at {n} on {u}");
        }
    }
}

/// Seconds until every node's finalized height passes `above`.
async fn secs_until_all_finalize_above(urls: &[String], above: u64, limit: u64) -> f64 {
    let start = Instant::now();
    loop {
        if finalized_range(urls).await.0 > above {
            return start.elapsed().as_secs_f64();
        }
        assert!(
            start.elapsed() < Duration::from_secs(limit),
            "finality did not resume above {above} within {limit} s: {:?}",
            finalized_range(urls).await
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Sends one transfer from dev account `index` through `url`, with an explicit nonce.
async fn transfer(url: &str, index: u32, nonce: u64) -> B256 {
    let key = tandem_e2e::loadgen::signing::dev_key(index).unwrap();
    let provider =
        ProviderBuilder::new().wallet(EthereumWallet::from(key)).connect_http(url.parse().unwrap());
    let tx = TxRequest::default()
        .with_to(Address::repeat_byte(0x77))
        .with_value(U256::from(1u64))
        .with_nonce(nonce)
        .with_gas_limit(21_000)
        .with_max_fee_per_gas(10_000_000_000)
        .with_max_priority_fee_per_gas(1_000_000_000);
    *provider.send_transaction(tx).await.unwrap().tx_hash()
}

/// Waits for a finalized receipt of every hash on every node.
async fn assert_all_finalized(urls: &[String], hashes: &[B256], secs: u64) {
    if let Err(e) = wait_finalized_receipts(urls, hashes, secs).await {
        panic!("{e}");
    }
}

/// The CL round of node `i`.
async fn round_of(net: &Testnet, i: usize) -> Option<u64> {
    let body = reqwest::get(net.status_url(i)).await.ok()?.json::<Value>().await.ok()?;
    body["round"].as_u64()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn partitions_freezes_loss_and_latency_neither_fork_nor_lose_and_finality_resumes() {
    let lab = Lab::new(4, 11).unwrap_or_else(|e| panic!("cannot build the namespace lab: {e}"));
    let hosts = lab.hosts();
    let mut net = Testnet::generate_opts(4, 0, 11, &[], &["--hosts", &hosts]).unwrap();
    for i in 0..4 {
        net.run_through(i, &lab.exec_prefix(i));
        net.start(i).unwrap();
    }
    let urls = net.urls();
    if let Err(e) = wait_all(&urls, "finalized", 3, 180).await {
        panic!("{e}\n{}", net.log_tail(0, 30));
    }
    let mut nonces = [0u64; 4];
    let mut send = |node: usize, urls: &[String]| {
        let (url, index) = (urls[node].clone(), node as u32 + 1);
        let nonce = nonces[node];
        nonces[node] += 1;
        async move { transfer(&url, index, nonce).await }
    };

    // 1. 2|2 for 30 s: nothing can be finalized; each side takes transactions.
    lab.partition(&[&[0, 1], &[2, 3]]).unwrap();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let mut sent = vec![send(0, &urls).await, send(3, &urls).await];
    tokio::time::sleep(Duration::from_secs(28)).await;
    let (_, before) = finalized_range(&urls).await;
    lab.heal().unwrap();
    let took = secs_until_all_finalize_above(&urls, before, 10).await;
    eprintln!("2|2 partition healed: every node finalized a new block after {took:.1} s");
    sent.push(send(1, &urls).await);
    assert_all_finalized(&urls, &sent, 60).await;
    assert_no_fork(&urls).await;

    // 2. The validator that leads the coming rounds alone on its side.
    let round = round_of(&net, 0).await.unwrap_or(0);
    let lonely = ((round + 2) % 4) as usize;
    let others: Vec<usize> = (0..4).filter(|i| *i != lonely).collect();
    lab.partition(&[&[lonely], &others]).unwrap();
    let (_, at_cut) =
        finalized_range(&others.iter().map(|i| urls[*i].clone()).collect::<Vec<_>>()).await;
    let majority: Vec<String> = others.iter().map(|i| urls[*i].clone()).collect();
    sent.push(send(others[0], &urls).await);
    let took = secs_until_all_finalize_above(&majority, at_cut + 3, 60).await;
    eprintln!("1|3 partition (node {lonely} alone): the three finalized 3 blocks in {took:.1} s");
    let (_, head) = finalized_range(&majority).await;
    lab.heal().unwrap();
    if let Err(e) = wait_all(&urls, "finalized", head, 60).await {
        panic!("{e}\n{}", net.log_tail(lonely, 30));
    }
    assert_all_finalized(&urls, &sent, 60).await;
    assert_no_fork(&urls).await;

    // 3. Two pairs frozen for 30 s.
    let (_, before) = finalized_range(&urls).await;
    net.signal(2, "STOP").unwrap();
    net.signal(3, "STOP").unwrap();
    let running = urls[..2].to_vec();
    sent.push(send(0, &urls).await);
    tokio::time::sleep(Duration::from_secs(30)).await;
    let (_, frozen_head) = finalized_range(&running).await;
    assert!(frozen_head <= before + 1, "finalized {before} → {frozen_head} with half frozen");
    net.signal(2, "CONT").unwrap();
    net.signal(3, "CONT").unwrap();
    let took = secs_until_all_finalize_above(&urls, frozen_head, 10).await;
    eprintln!("two pairs frozen 30 s: every node finalized a new block {took:.1} s after resume");
    assert_all_finalized(&urls, &sent, 60).await;
    assert_no_fork(&urls).await;

    // 4. 2 % loss on every link.
    lab.loss(2).unwrap();
    let (_, before) = finalized_range(&urls).await;
    let mut lossy = Vec::new();
    for k in 0..8 {
        lossy.push(send(k % 4, &urls).await);
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
    let (_, after) = finalized_range(&urls).await;
    assert!(after >= before + 5, "only {} blocks finalized in 16 s at 2 % loss", after - before);
    assert_all_finalized(&urls, &lossy, 60).await;
    lab.heal().unwrap();
    assert_no_fork(&urls).await;
    eprintln!("2 % loss: {} blocks finalized in 16 s", after - before);

    // 5. 50 ms each way on every link between nodes.
    let delay = Duration::from_millis(50);
    let status_port = net.nodes[1]["ports"]["cl_http"].as_u64().unwrap() as u16;
    let direct = lab.http_get_time(0, &lab.ip(1), status_port, "/status").unwrap();
    lab.latency(delay).unwrap();
    let (_, before) = finalized_range(&urls).await;
    let took = secs_until_all_finalize_above(&urls, before, 60).await;
    let through = lab.http_get_time(0, &lab.ip(1), status_port, "/status").unwrap();
    eprintln!(
        "{delay:?} latency: finality resumed after {took:.1} s; node 0 → node 1 /status took \
         {through:?} (without latency {direct:?})"
    );
    // A lower bound, not a benchmark: the request and its answer each wait the delay once.
    assert!(through >= 2 * delay, "node 0 → node 1 took {through:?}: the delay is not applied");
    let (_, before) = finalized_range(&urls).await;
    let mut slow = Vec::new();
    for k in 0..8 {
        slow.push(send(k % 4, &urls).await);
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
    let (_, after) = finalized_range(&urls).await;
    // Every validator's links to the others (CL and EL) were dialled again through a delayer:
    // each connection is relayed by its dialler's delayer, so over the four there are at least
    // the six CL links.
    let relayed: Vec<usize> = (0..4).map(|i| lab.delayed_connections(i).unwrap()).collect();
    eprintln!("connections relayed by each node's delayer: {relayed:?}");
    assert!(relayed.iter().sum::<usize>() >= 6, "too few delayed connections: {relayed:?}");
    assert!(after > before, "nothing finalized in 16 s with {delay:?} latency");
    assert_all_finalized(&urls, &slow, 60).await;
    eprintln!("{delay:?} latency: {} blocks finalized in 16 s", after - before);
    lab.heal().unwrap();
    let took = secs_until_all_finalize_above(&urls, after, 60).await;
    eprintln!("latency removed: every node finalized a new block after {took:.1} s");
    assert_no_fork(&urls).await;
}
