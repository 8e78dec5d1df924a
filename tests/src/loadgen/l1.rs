//! The `l1-orders` workload: GTC orders on the native L1 exchange's ETH/TUSD spot market
//! (market 0 of a devnet made with `tandem-cl testnet --l1`), sent to the write contract.
//!
//! Set-up: every sender gets TUSD (the devnet's test USD, 6 decimals) from the funder by the
//! same fan-out as ether, then approves the write contract, deposits the TUSD and deposits
//! ether; those three transactions must all succeed. Workload: each sender alternates buys and
//! sells of 1–3 lots (0.001 ETH each) within three ticks (0.01 TUSD each) of a 3,000 TUSD mid,
//! so about half of the orders cross one resting on the other side. After the run, the receipts
//! of the committed orders tell how many reverted (still included), the gas they used and the
//! fills they made.

use std::collections::HashSet;

use alloy_primitives::{Address, B256, Bytes, U256, address, keccak256};
use alloy_sol_types::{SolCall, sol};
use serde_json::{Value, json};

use super::{
    Chain, LoadgenError,
    accounts::{nonces, submit_and_wait},
    rpc::{RpcClient, quantity},
    signing::{TxRequest, sign_all},
    tracking::tag_number,
};

sol! {
    function approve(address spender, uint256 amount) external returns (bool);
    function deposit(address token, uint256 amount) external;
    function depositEth() external payable;
    function placeOrder(uint32 market, bool isBuy, uint128 price, uint128 size, uint8 tif, uint128 cloid) external returns (uint64 orderId, uint128 filled, uint128 resting);
}

/// The L1 write contract (predeployed on L1 chains).
pub const L1_WRITE: Address = address!("0x3333333333333333333333333333333333333333");
/// The devnets' test USD token (every dev account holds 10,000,000 TUSD).
pub const TEST_USD: Address = address!("0x7e57000000000000000000000000000000005d00");
/// ETH/TUSD spot.
pub const MARKET: u32 = 0;
/// 0.01 TUSD.
pub const TICK: u128 = 10_000;
/// 0.001 ETH.
pub const LOT: u128 = 1_000_000_000_000_000;
/// 3,000 TUSD per ETH.
pub const MID: u128 = 3_000_000_000;
/// How far from the mid an order's price goes, in ticks (both ways).
pub const SPREAD_TICKS: u64 = 3;
/// Smallest order, in lots: 4 lots at 3 ticks under the mid are 11.99 TUSD, above the devnet
/// markets' minimum notional (10 TUSD).
pub const MIN_LOTS: u64 = 4;
/// Largest order, in lots.
pub const MAX_LOTS: u64 = 6;
/// Gas limit of one order (they use about 100,000–250,000, more when they match several makers).
pub const ORDER_GAS: u64 = 400_000;
/// Gas limit of the set-up's `approve`.
pub const APPROVE_GAS: u64 = 100_000;
/// Gas limit of the set-up's TUSD `deposit` (a `transferFrom` and the engine's credit).
pub const DEPOSIT_GAS: u64 = 300_000;
/// Gas limit of the set-up's `depositEth`.
pub const DEPOSIT_ETH_GAS: u64 = 200_000;

/// `keccak256("Fill(uint32,address,address,uint64,uint64,bool,uint128,uint128,uint128)")`.
pub fn fill_topic() -> B256 {
    keccak256("Fill(uint32,address,address,uint64,uint64,bool,uint128,uint128,uint128)")
}

/// splitmix64 of the order's position: spreads prices and sizes deterministically.
fn mix(sender: usize, offset: u64) -> u64 {
    let mut z = (sender as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ offset.wrapping_add(1);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// Side, price and size of `sender`'s order number `offset`: buys and sells alternate (starting
/// side by sender parity), the price is the mid moved by -3..=3 ticks, the size 4..=6 lots.
pub fn order_params(sender: usize, offset: u64) -> (bool, u128, u128) {
    let is_buy = (sender as u64 + offset).is_multiple_of(2);
    let h = mix(sender, offset);
    let ticks = u128::from(h % (2 * SPREAD_TICKS + 1));
    let price = MID - u128::from(SPREAD_TICKS) * TICK + ticks * TICK;
    let size = u128::from(MIN_LOTS + (h >> 16) % (MAX_LOTS - MIN_LOTS + 1)) * LOT;
    (is_buy, price, size)
}

/// Calldata of `sender`'s order number `offset`: `placeOrder` GTC without a client id.
pub fn order_calldata(sender: usize, offset: u64) -> Bytes {
    let (is_buy, price, size) = order_params(sender, offset);
    placeOrderCall { market: MARKET, isBuy: is_buy, price, size, tif: 0, cloid: 0 }
        .abi_encode()
        .into()
}

/// TUSD units a sender of `orders` orders deposits: every order a buy of the largest size at
/// the highest price, with the taker fee, and 100 TUSD to spare.
pub fn tusd_needed(orders: usize) -> u128 {
    let worst = (MID + u128::from(SPREAD_TICKS) * TICK) * u128::from(MAX_LOTS) / 1_000;
    (orders as u128) * (worst + worst / 1_000) + 100_000_000
}

/// Wei a sender of `orders` orders deposits into the L1: every order a sell of the largest
/// size, and 0.01 ETH to spare.
pub fn eth_deposit(orders: usize) -> u128 {
    (orders as u128) * u128::from(MAX_LOTS) * LOT + 10 * LOT
}

/// Ether a sender needs for its set-up beyond the workload's gas: the three set-up
/// transactions' gas and the ether deposit.
pub fn setup_wei(chain: &Chain, orders: usize) -> u128 {
    let gas = chain.fees.max_cost(APPROVE_GAS)
        + chain.fees.max_cost(DEPOSIT_GAS)
        + chain.fees.max_cost(DEPOSIT_ETH_GAS);
    gas + eth_deposit(orders)
}

/// Each sender approves the write contract, deposits its TUSD and deposits ether (three
/// transactions, committed before returning); fails if any of them reverted. Returns the
/// highest block used.
pub async fn deposit_all(
    chain: &Chain,
    senders: &[alloy_signer_local::PrivateKeySigner],
    counts: &[usize],
) -> Result<u64, LoadgenError> {
    let rpc = chain.first()?;
    let addresses: Vec<Address> = senders.iter().map(|k| k.address()).collect();
    let start = nonces(rpc, &addresses).await?;
    let mut requests = Vec::with_capacity(3 * senders.len());
    for (s, &orders) in counts.iter().enumerate() {
        let tusd = U256::from(tusd_needed(orders));
        let calls = [
            (
                TEST_USD,
                approveCall { spender: L1_WRITE, amount: tusd }.abi_encode(),
                0,
                APPROVE_GAS,
            ),
            (L1_WRITE, depositCall { token: TEST_USD, amount: tusd }.abi_encode(), 0, DEPOSIT_GAS),
            (L1_WRITE, depositEthCall {}.abi_encode(), eth_deposit(orders), DEPOSIT_ETH_GAS),
        ];
        for (i, (to, input, value, gas_limit)) in calls.into_iter().enumerate() {
            requests.push(TxRequest {
                signer: s,
                nonce: start[s] + i as u64,
                to: alloy_primitives::TxKind::Call(to),
                value: U256::from(value),
                input: input.into(),
                gas_limit,
            });
        }
    }
    let signed = sign_all(senders, chain.chain_id, chain.fees, &requests)?;
    let before = tag_number(rpc, chain.tag).await?;
    let block = submit_and_wait(chain, &signed).await?;
    let hashes: Vec<B256> = signed.iter().map(|t| t.hash).collect();
    let stats = receipt_stats(rpc, before + 1, block, &hashes).await?;
    if stats.reverted > 0 || stats.missing > 0 {
        return Err(LoadgenError::Setup(format!(
            "{} of {} L1 deposit transactions reverted ({} receipts missing); does the funder \
             hold TUSD and is the chain an L1 devnet (tandem-cl testnet --l1)?",
            stats.reverted,
            hashes.len(),
            stats.missing
        )));
    }
    Ok(block)
}

/// What the receipts of a set of transactions show.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ReceiptStats {
    /// Receipts with status 0 (included, reverted).
    pub reverted: usize,
    /// Transactions without a receipt.
    pub missing: usize,
    /// Gas used, summed over the receipts found.
    pub gas_used: u128,
    /// Receipts found.
    pub found: usize,
    /// L1 `Fill` logs of the write contract.
    pub fills: usize,
}

impl ReceiptStats {
    /// Adds one `eth_getTransactionReceipt` result.
    pub fn add(&mut self, receipt: &Value) {
        if receipt.is_null() {
            self.missing += 1;
            return;
        }
        self.found += 1;
        if quantity(&receipt["status"]) == Some(0) {
            self.reverted += 1;
        }
        self.gas_used += quantity(&receipt["gasUsed"]).unwrap_or(0);
        let topic = fill_topic().to_string();
        let write = L1_WRITE.to_string().to_lowercase();
        self.fills += receipt["logs"]
            .as_array()
            .map(|logs| {
                logs.iter()
                    .filter(|l| {
                        l["address"].as_str().is_some_and(|a| a.to_lowercase() == write)
                            && l["topics"][0].as_str().is_some_and(|t| t.to_lowercase() == topic)
                    })
                    .count()
            })
            .unwrap_or(0);
    }
}

/// Sums up the receipts of `hashes`, which are in blocks `from..=to`: whole blocks' receipts
/// (`eth_getBlockReceipts`, a few blocks per request) are cheaper for the node than one
/// `eth_getTransactionReceipt` per transaction, which builds its whole block's receipts each time.
pub async fn receipt_stats(
    rpc: &RpcClient,
    from: u64,
    to: u64,
    hashes: &[B256],
) -> Result<ReceiptStats, LoadgenError> {
    let mut wanted: HashSet<String> = hashes.iter().map(|h| h.to_string()).collect();
    let numbers: Vec<u64> = (from..=to).collect();
    let mut stats = ReceiptStats::default();
    for chunk in numbers.chunks(5) {
        let calls: Vec<(&str, Value)> =
            chunk.iter().map(|n| ("eth_getBlockReceipts", json!([format!("{n:#x}")]))).collect();
        for (n, reply) in chunk.iter().zip(rpc.batch(&calls).await?) {
            let receipts = reply.map_err(|message| LoadgenError::Rpc {
                url: rpc.url().to_string(),
                method: "eth_getBlockReceipts".into(),
                message: format!("block {n}: {message}"),
            })?;
            for receipt in receipts.as_array().into_iter().flatten() {
                let hash = receipt["transactionHash"].as_str().unwrap_or_default().to_lowercase();
                if wanted.remove(&hash) {
                    stats.add(receipt);
                }
            }
        }
    }
    stats.missing += wanted.len();
    Ok(stats)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn selectors_match_the_write_contract() {
        assert_eq!(approveCall::SELECTOR, keccak256("approve(address,uint256)")[..4]);
        assert_eq!(depositCall::SELECTOR, keccak256("deposit(address,uint256)")[..4]);
        assert_eq!(depositEthCall::SELECTOR, keccak256("depositEth()")[..4]);
        assert_eq!(
            placeOrderCall::SELECTOR,
            keccak256("placeOrder(uint32,bool,uint128,uint128,uint8,uint128)")[..4]
        );
    }

    #[test]
    fn order_calldata_decodes_to_gtc_spot_orders_on_tick_and_lot() {
        let mut buys = 0;
        let mut crossing = 0;
        for sender in 0..20 {
            for offset in 0..50 {
                let data = order_calldata(sender, offset);
                assert_eq!(data.len(), 4 + 6 * 32);
                let call = placeOrderCall::abi_decode(&data).unwrap();
                assert_eq!((call.market, call.tif, call.cloid), (MARKET, 0, 0));
                assert_eq!(call.price % TICK, 0);
                assert!(call.price.abs_diff(MID) <= u128::from(SPREAD_TICKS) * TICK);
                assert_eq!(call.size % LOT, 0);
                assert!((u128::from(MIN_LOTS)..=u128::from(MAX_LOTS)).contains(&(call.size / LOT)));
                assert_eq!((call.isBuy, call.price, call.size), order_params(sender, offset));
                // Each sender alternates sides.
                assert_eq!(call.isBuy, (sender as u64 + offset).is_multiple_of(2));
                buys += usize::from(call.isBuy);
                // A buy at or above the mid meets sells at or below it.
                crossing += usize::from(call.isBuy == (call.price >= MID));
            }
        }
        assert_eq!(buys, 500);
        assert!(crossing > 300 && crossing < 800, "{crossing} of 1000 on the crossing side");
        assert_eq!(order_calldata(3, 7), order_calldata(3, 7), "deterministic");
    }

    #[test]
    fn deposits_cover_every_order() {
        // 10 orders: all buys at the top price and size cost at most 10 × 9.00009 TUSD + fees.
        let worst = (MID + 3 * TICK) * 3 * LOT / 10u128.pow(18);
        assert!(tusd_needed(10) >= 10 * (worst + worst * 5 / 10_000));
        assert!(eth_deposit(10) >= 10 * 3 * LOT);
    }

    #[test]
    fn receipt_stats_count_reverts_gas_and_fills() {
        let fill = json!({ "address": L1_WRITE.to_string(), "topics": [fill_topic().to_string()] });
        let other =
            json!({ "address": TEST_USD.to_string(), "topics": [fill_topic().to_string()] });
        let mut stats = ReceiptStats::default();
        stats.add(&json!({ "status": "0x1", "gasUsed": "0x100", "logs": [fill, fill, other] }));
        stats.add(&json!({ "status": "0x0", "gasUsed": "0x10", "logs": [] }));
        stats.add(&Value::Null);
        assert_eq!(
            stats,
            ReceiptStats { reverted: 1, missing: 1, gas_used: 0x110, found: 2, fills: 2 }
        );
    }
}
