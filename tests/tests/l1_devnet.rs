//! The native L1 exchange on a real four-validator devnet (`tandem-cl testnet --l1`): a seeded
//! random sequence of deposits, spot and perp orders, cancels, withdrawals and oracle posts, sent
//! by wallets through different nodes, while one validator is killed with SIGKILL and restarted
//! mid-sequence. Halfway, while that validator is down, the oracle falls 12 % and the end-of-block
//! step liquidates a leveraged account into bad debt, so the restarted node replays a liquidation.
//! Every node must end with the same L1 state: the same storage root of the write contract (the
//! L1 state), the same state root, the same `l1_account` answers and the same `l1_blockEvents`.

#![allow(clippy::unwrap_used)]

use std::time::{Duration, Instant};

use alloy_primitives::{Address, B256, TxKind, U256, address};
use alloy_sol_types::{SolCall, SolEvent, sol};
use serde_json::{Value, json};
use tandem_e2e::{
    loadgen::signing::{Fees, TxRequest, sign},
    testnet::{Testnet, height, rpc, wait_all},
};

sol! {
    function approve(address spender, uint256 amount) external returns (bool);
    function deposit(address token, uint256 amount) external;
    function depositEth() external payable;
    function withdraw(uint32 asset, uint256 amount) external;
    function placeOrder(uint32 market, bool isBuy, uint128 price, uint128 size, uint8 tif, uint128 cloid) external returns (uint64 orderId, uint128 filled, uint128 resting);
    function cancelByCloid(uint32 market, uint128 cloid) external returns (uint128 remaining);
    function perpTransfer(int256 amount) external;
    function postOraclePrice(uint32 market, uint128 price) external;
    event Fill(uint32 indexed market, address indexed taker, address indexed maker, uint64 takerOrderId, uint64 makerOrderId, bool takerIsBuy, uint128 price, uint128 size, uint128 fee);
}

const L1_WRITE: Address = address!("0x3333333333333333333333333333333333333333");
const TUSD: Address = address!("0x7e57000000000000000000000000000000005d00");
const TRADERS: u32 = 5;
const PUBLISHERS: [u32; 3] = [7, 8, 9];
const ROUNDS: usize = 12;
/// The round in which the oracle falls 12 % (validator 3 is down from round 4 to 8).
const CRASH_ROUND: usize = 6;
/// The leveraged trader: 1 BTC long on 3,500 TUSD of collateral (liquidated below a fall of
/// about 3.4 %, in bad debt below about 5.8 %).
const VICTIM: usize = 4;
/// Spot ETH/TUSD mid: 3,000 TUSD (6 decimals) per ETH; tick 0.01, lot 0.001 ETH.
const SPOT_MID: u128 = 3_000_000_000;
/// BTC-PERP mid: 60,000 TUSD per BTC; tick 1 TUSD, lot 0.001 BTC.
const BTC_MID: u128 = 60_000_000_000;

/// Chain id of `tandem-cl testnet` networks.
const CHAIN_ID: u64 = 1337;

/// A small deterministic generator (xorshift64*), so a failure replays exactly.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    fn signed(&mut self, span: i64) -> i64 {
        self.below((2 * span + 1) as u64) as i64 - span
    }
}

/// One dev account sending through one node, with its nonce tracked here (orders may revert,
/// so gas is set explicitly rather than estimated).
struct Sender {
    index: u32,
    nonce: u64,
    node: usize,
}

/// Signs a call and submits it to the sender's node, then to every other live node too.
///
/// This test is about the L1 state, not transaction propagation (`devnet.rs` covers gossip):
/// handing the transaction to every live validator's EL keeps rounds led by a node whose next
/// leader is the killed one from delaying it.
async fn send(
    net: &Testnet,
    alive: &[bool; 4],
    s: &mut Sender,
    to: Address,
    data: Vec<u8>,
    value: U256,
) -> B256 {
    let key = tandem_e2e::loadgen::signing::dev_key(s.index).unwrap();
    let fees = Fees { max_fee_per_gas: 100_000_000_000, max_priority_fee_per_gas: 1_000_000_000 };
    let request = TxRequest {
        signer: 0,
        nonce: s.nonce,
        to: TxKind::Call(to),
        value,
        input: data.into(),
        gas_limit: 3_000_000,
    };
    let signed = sign(&key, CHAIN_ID, fees, &request).unwrap();
    let raw = json!([signed.raw_hex()]);
    let accepted = rpc(&net.http(s.node), "eth_sendRawTransaction", raw.clone()).await;
    assert!(accepted.is_some(), "account {} nonce {} refused by node {}", s.index, s.nonce, s.node);
    for (i, live) in alive.iter().enumerate() {
        if *live && i != s.node {
            // "already known" when gossip was faster: fine either way.
            let _ = rpc(&net.http(i), "eth_sendRawTransaction", raw.clone()).await;
        }
    }
    s.nonce += 1;
    signed.hash
}

/// Waits for every receipt on `url`; returns the highest block number they landed in.
async fn wait_receipts(url: &str, hashes: &[B256]) -> u64 {
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut highest = 0;
    for hash in hashes {
        loop {
            if let Some(r) = rpc(url, "eth_getTransactionReceipt", json!([hash])).await
                && let Some(n) = r["blockNumber"].as_str()
            {
                highest = highest.max(u64::from_str_radix(n.trim_start_matches("0x"), 16).unwrap());
                break;
            }
            assert!(Instant::now() < deadline, "no receipt for {hash} on {url} within 60 s");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    highest
}

/// `eth_getProof(0x3333…)`'s storage hash at `block`: the root of the L1 state.
async fn l1_storage_root(url: &str, block: u64) -> Option<String> {
    let proof = rpc(url, "eth_getProof", json!([L1_WRITE, [], format!("{block:#x}")])).await?;
    Some(proof["storageHash"].as_str()?.to_string())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn four_nodes_agree_on_the_l1_state_after_random_actions_and_a_kill_9() {
    let mut net = Testnet::generate_opts(4, 0, 7, &[], &["--l1"]).unwrap();
    for i in 0..4 {
        net.start(i).unwrap();
    }
    let urls: Vec<String> = (0..4).map(|i| net.http(i)).collect();
    wait_all(&urls, "finalized", 1, 120).await.unwrap();

    let mut traders: Vec<Sender> =
        (0..TRADERS).map(|i| Sender { index: i, nonce: 0, node: i as usize % 4 }).collect();
    let mut publishers: Vec<Sender> = PUBLISHERS
        .iter()
        .enumerate()
        .map(|(k, &i)| Sender { index: i, nonce: 0, node: k % 4 })
        .collect();

    let mut alive = [true; 4];
    // Set-up: TUSD and ETH into the L1, collateral into perps, first oracle prices.
    let mut hashes = Vec::new();
    for t in &mut traders {
        let max = U256::MAX;
        hashes.push(
            send(
                &net,
                &alive,
                t,
                TUSD,
                approveCall { spender: L1_WRITE, amount: max }.abi_encode(),
                U256::ZERO,
            )
            .await,
        );
        let d = depositCall { token: TUSD, amount: U256::from(1_000_000_000_000u64) };
        hashes.push(send(&net, &alive, t, L1_WRITE, d.abi_encode(), U256::ZERO).await);
        let eth = U256::from(10u64) * U256::from(10u64).pow(U256::from(18u64));
        hashes.push(send(&net, &alive, t, L1_WRITE, depositEthCall {}.abi_encode(), eth).await);
        let p = perpTransferCall {
            amount: alloy_primitives::I256::try_from(200_000_000_000i64).unwrap(),
        };
        hashes.push(send(&net, &alive, t, L1_WRITE, p.abi_encode(), U256::ZERO).await);
    }
    for p in &mut publishers {
        for (market, price) in [(1u32, BTC_MID), (2, SPOT_MID)] {
            let call = postOraclePriceCall { market, price };
            hashes.push(send(&net, &alive, p, L1_WRITE, call.abi_encode(), U256::ZERO).await);
        }
    }
    // Every node imports every block, so node 0 answers for transactions sent anywhere.
    let mut last_block = wait_receipts(&urls[0], &hashes).await;
    wait_all(&urls, "latest", last_block, 60).await.unwrap();

    // The victim keeps 3,500 TUSD in perps and buys 1 BTC at the mid from trader 3's ask.
    let btc_lot = 100_000_000u128;
    let keep = alloy_primitives::I256::try_from(-196_500_000_000i64).unwrap();
    let out = perpTransferCall { amount: keep }.abi_encode();
    let ask =
        placeOrderCall { market: 1, isBuy: false, price: BTC_MID, size: btc_lot, tif: 0, cloid: 0 };
    let hashes = vec![
        send(&net, &alive, &mut traders[VICTIM], L1_WRITE, out, U256::ZERO).await,
        send(&net, &alive, &mut traders[3], L1_WRITE, ask.abi_encode(), U256::ZERO).await,
    ];
    wait_receipts(&urls[0], &hashes).await;
    let buy =
        placeOrderCall { market: 1, isBuy: true, price: BTC_MID, size: btc_lot, tif: 1, cloid: 0 };
    let hash =
        send(&net, &alive, &mut traders[VICTIM], L1_WRITE, buy.abi_encode(), U256::ZERO).await;
    last_block = wait_receipts(&urls[0], &[hash]).await;
    let victim = tandem_e2e::loadgen::signing::dev_key(VICTIM as u32).unwrap().address();
    let account = rpc(&urls[0], "l1_account", json!([victim])).await.unwrap();
    assert_eq!(
        account["positions"][0]["size"],
        btc_lot.to_string(),
        "the victim's long: {account}"
    );
    let mut crash_blocks = 0..0;

    let mut rng = Rng(0x5eed_1234_abcd_0001);
    let mut btc = BTC_MID;
    for round in 0..ROUNDS {
        if round == 4 {
            net.kill(3);
            alive[3] = false;
        }
        if round == 8 {
            net.start(3).unwrap();
            alive[3] = true;
        }
        let mut sent: Vec<(usize, B256)> = Vec::new();
        for t in &mut traders {
            if !alive[t.node] {
                t.node = 0;
            }
            let cloid = 1 + u128::from(rng.below(6));
            let data = match rng.below(10) {
                0..=4 => {
                    let price = (SPOT_MID as i128 + i128::from(rng.signed(5)) * 1_000_000) as u128;
                    // 4 to 8 milli-ETH: at least 11.98 TUSD, above the 10 TUSD minimum.
                    let size = u128::from(4 + rng.below(5)) * 1_000_000_000_000_000;
                    let tif = [0u8, 0, 1, 2, 3][rng.below(5) as usize];
                    placeOrderCall { market: 0, isBuy: rng.below(2) == 0, price, size, tif, cloid }
                        .abi_encode()
                }
                5..=7 => {
                    let price = (btc as i128 + i128::from(rng.signed(5)) * 10_000_000) as u128;
                    let size = u128::from(1 + rng.below(3)) * 100_000;
                    let tif = [0u8, 0, 1][rng.below(3) as usize];
                    placeOrderCall { market: 1, isBuy: rng.below(2) == 0, price, size, tif, cloid }
                        .abi_encode()
                }
                8 => cancelByCloidCall { market: rng.below(2) as u32, cloid }.abi_encode(),
                _ => withdrawCall { asset: 1, amount: U256::from(1_000_000u64) }.abi_encode(),
            };
            let hash = send(&net, &alive, t, L1_WRITE, data, U256::ZERO).await;
            sent.push((t.node, hash));
        }
        btc = (btc as i128 + i128::from(rng.signed(3)) * 100_000_000) as u128;
        if round == CRASH_ROUND {
            btc = btc * 88 / 100;
            crash_blocks.start = last_block + 1;
        }
        for p in &mut publishers {
            if !alive[p.node] {
                p.node = 0;
            }
            let jitter = i128::from(rng.signed(2)) * 1_000_000;
            let call = postOraclePriceCall { market: 1, price: (btc as i128 + jitter) as u128 };
            let hash = send(&net, &alive, p, L1_WRITE, call.abi_encode(), U256::ZERO).await;
            sent.push((p.node, hash));
        }
        for (node, hash) in &sent {
            last_block = last_block.max(wait_receipts(&urls[*node], &[*hash]).await);
        }
        if round == CRASH_ROUND {
            crash_blocks.end = last_block + 1;
        }
        let live: Vec<String> = (0..4).filter(|i| alive[*i]).map(|i| urls[i].clone()).collect();
        wait_all(&live, "latest", last_block, 60).await.unwrap();
    }

    // Everyone, including the restarted node, finalizes past the last action.
    let target = last_block + 2;
    wait_all(&urls, "finalized", target, 180).await.unwrap();
    let mut at = u64::MAX;
    for u in &urls {
        at = at.min(height(u, "finalized").await.unwrap());
    }
    assert!(at >= target);

    let root0 = l1_storage_root(&urls[0], at).await.unwrap();
    assert_ne!(
        root0, "0x56e81f171bcc55a6ff8345e692c0f86e5b48e01b996cadc001622fb5e363b421",
        "the L1 state must not be empty after the sequence"
    );
    for u in &urls[1..] {
        assert_eq!(l1_storage_root(u, at).await.as_deref(), Some(root0.as_str()), "{u} at {at}");
        assert_eq!(
            tandem_e2e::testnet::hash_and_root(u, at).await,
            tandem_e2e::testnet::hash_and_root(&urls[0], at).await,
            "{u} block {at}"
        );
    }
    let block = format!("{at:#x}");
    for t in &traders {
        let who = tandem_e2e::loadgen::signing::dev_key(t.index).unwrap().address();
        let expected = rpc(&urls[0], "l1_account", json!([who, block])).await.unwrap();
        for u in &urls[1..] {
            let got = rpc(u, "l1_account", json!([who, block])).await;
            assert_eq!(got.as_ref(), Some(&expected), "l1_account of {who} on {u}");
        }
    }

    // The crash liquidated the victim into bad debt; every node serves the same step events.
    let mut events = Vec::new();
    for n in crash_blocks.clone() {
        let at = format!("{n:#x}");
        let here = rpc(&urls[0], "l1_blockEvents", json!([at])).await.unwrap();
        for u in &urls[1..] {
            assert_eq!(
                rpc(u, "l1_blockEvents", json!([at])).await,
                Some(here.clone()),
                "{u} at {n}"
            );
        }
        events.extend(here.as_array().cloned().unwrap_or_default());
    }
    let victim_hex = format!("{victim:#x}");
    let of_victim = |kind: &str| {
        events.iter().filter(|e| e["event"] == kind && e["user"] == victim_hex.as_str()).count()
    };
    assert_eq!(of_victim("Liquidation"), 1, "blocks {crash_blocks:?}: {events:?}");
    assert_eq!(of_victim("BadDebt"), 1, "blocks {crash_blocks:?}: {events:?}");
    let account = rpc(&urls[0], "l1_account", json!([victim, block])).await.unwrap();
    assert_eq!(account["cash"], "0", "the backstop took the victim's debt: {account}");

    // The sequence must have exercised the engine: fills happened and positions exist.
    let logs = rpc(
        &urls[0],
        "eth_getLogs",
        json!([{ "fromBlock": "0x1", "toBlock": block, "address": L1_WRITE, "topics": [Fill::SIGNATURE_HASH] }]),
    )
    .await
    .unwrap();
    let fills: Vec<Value> = logs.as_array().cloned().unwrap_or_default();
    assert!(fills.len() >= 3, "only {} fills: the sequence did not trade", fills.len());
    let mut open_positions = 0;
    for t in &traders {
        let who = tandem_e2e::loadgen::signing::dev_key(t.index).unwrap().address();
        let account = rpc(&urls[0], "l1_account", json!([who, block])).await.unwrap();
        open_positions += account["positions"].as_array().map_or(0, Vec::len);
    }
    assert!(open_positions > 0, "no perp positions after the sequence");
}
