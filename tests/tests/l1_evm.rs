//! The native L1 exchange at the EVM level, against a real `tandem-el --dev` process on the
//! devnet L1 genesis of `tandem-cl testnet --l1`: every read precompile through the `L1Probe`
//! test contract with exact values after real actions; every write action of `L1Write` sent by
//! wallets and by a contract (the probe, the `L1Vault` example); fills and other engine events as
//! logs (`eth_getLogs`, receipts); the engine's refusals as revert reasons in RPC errors; exact
//! EVM-side accounting (the write contract holds exactly the sum of the L1 balances); the guard
//! of the core precompile; the read precompiles' gas; same-block visibility; and the `l1_*`
//! JSON-RPC methods agreeing with the precompiles.
//!
//! Each test runs its own node (1 s dev blocks) and waits for receipts, never for time.

#![allow(clippy::unwrap_used)]

use std::{
    collections::HashMap,
    net::TcpListener,
    path::PathBuf,
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use alloy_eips::BlockId;
use alloy_primitives::{Address, B256, Bytes, I256, U256, address};
use alloy_provider::{
    DynProvider, Provider, ProviderBuilder,
    network::{Ethereum, EthereumWallet, Network, TransactionBuilder},
};
use alloy_rpc_types_eth::{Filter, TransactionReceipt};
use alloy_sol_types::{Revert, SolCall, SolError, SolEvent, SolValue};
use serde_json::Value;
use tandem_e2e::{ChildGuard, binary, loadgen::signing::dev_key, testnet::port_offset};

/// The Solidity interfaces (generated event constructors take one argument per field).
#[allow(clippy::too_many_arguments)]
mod abi {
    alloy_sol_types::sol! {
        interface IL1Write {
            event Deposit(address indexed user, uint32 indexed asset, uint256 amount);
            event Withdraw(address indexed user, uint32 indexed asset, uint256 amount);
            event PerpTransfer(address indexed user, int256 amount);
            event OrderPlaced(address indexed user, uint32 indexed market, uint64 orderId, uint128 cloid, bool isBuy, uint128 price, uint128 size, uint128 resting);
            event OrderCanceled(address indexed user, uint32 indexed market, uint64 orderId, uint128 remaining);
            event Fill(uint32 indexed market, address indexed taker, address indexed maker, uint64 takerOrderId, uint64 makerOrderId, bool takerIsBuy, uint128 price, uint128 size, uint128 fee);
            event OraclePrice(uint32 indexed market, address indexed publisher, uint128 price);
            event Funding(uint32 indexed market, int64 ratePpm, uint128 oraclePrice, uint128 markPrice);
            event Liquidation(address indexed user, uint32 indexed market, int128 size, uint128 markPrice);
            event BadDebt(address indexed user, uint256 amount);

            function depositEth() external payable;
            function deposit(address token, uint256 amount) external;
            function withdraw(uint32 asset, uint256 amount) external;
            function placeOrder(uint32 market, bool isBuy, uint128 price, uint128 size, uint8 tif, uint128 cloid) external returns (uint64 orderId, uint128 filled, uint128 resting);
            function cancelOrder(uint32 market, uint64 orderId) external returns (uint128 remaining);
            function cancelByCloid(uint32 market, uint128 cloid) external returns (uint128 remaining);
            function perpTransfer(int256 amount) external;
            function postOraclePrice(uint32 market, uint128 price) external;
        }

        interface IL1Core {
            function deposit(address user, address token, uint256 amount) external;
            function placeOrder(address user, uint32 market, bool isBuy, uint128 price, uint128 size, uint8 tif, uint128 cloid) external returns (uint64 orderId, uint128 filled, uint128 resting);
            function endOfBlock() external;
        }

        interface IL1Probe {
            function spotBalance(address user, uint32 asset) external view returns (uint256 total, uint256 hold);
            function perpPosition(address user, uint32 market) external view returns (int256 size, uint256 entryPrice, uint256 margin, int256 unrealizedPnl);
            function accountValue(address user) external view returns (int256 value, int256 cash, uint256 initialMargin, uint256 maintenanceMargin);
            function oraclePrice(uint32 market) external view returns (uint256 price);
            function markPrice(uint32 market) external view returns (uint256 price);
            function bestBidAsk(uint32 market) external view returns (uint256 bid, uint256 ask);
            function assetInfo(uint32 asset) external view returns (address token, uint8 decimals, string memory symbol);
            function marketInfo(uint32 market) external view returns (bool isPerp, uint32 base, uint32 quote, uint256 tickSize, uint256 lotSize, uint32 takerFeeBps, uint32 maxLeverage, uint32 maintenanceMarginBps, uint8 baseDecimals);
            function l1BlockNumber() external view returns (uint64);
            function orderInfo(uint64 orderId) external view returns (address owner, uint32 market, bool isBuy, uint128 price, uint128 remaining, uint128 cloid);

            function depositEth() external payable;
            function deposit(address token, uint256 amount) external;
            function withdraw(uint32 asset, uint256 amount) external;
            function placeOrder(uint32 market, bool isBuy, uint128 price, uint128 size, uint8 tif, uint128 cloid) external returns (uint64 orderId, uint128 filled, uint128 resting);
            function cancelOrder(uint32 market, uint64 orderId) external returns (uint128 remaining);
            function cancelByCloid(uint32 market, uint128 cloid) external returns (uint128 remaining);
            function perpTransfer(int256 amount) external;
            function postOraclePrice(uint32 market, uint128 price) external;

            function rawCall(address target, bytes calldata data, uint256 gas) external payable returns (bool ok, bytes memory ret, uint256 gasUsed);
            function rawStaticCall(address target, bytes calldata data, uint256 gas) external view returns (bool ok, bytes memory ret, uint256 gasUsed);
        }

        interface IL1Vault {
            event Deposited(address indexed user, uint256 amount, uint256 shares);
            event Withdrawn(address indexed user, uint256 shares, uint256 amount);

            function owner() external view returns (address);
            function asset() external view returns (uint32);
            function token() external view returns (address);
            function totalShares() external view returns (uint256);
            function sharesOf(address user) external view returns (uint256);
            function totalAssets() external view returns (uint256);
            function convertToAssets(uint256 shares) external view returns (uint256);
            function deposit(uint256 amount) external returns (uint256 shares);
            function withdraw(uint256 shares) external returns (uint256 amount);
            function placeOrder(uint32 market, bool isBuy, uint128 price, uint128 size, uint8 tif, uint128 cloid) external returns (uint64 orderId, uint128 filled, uint128 resting);
            function cancelOrder(uint32 market, uint64 orderId) external returns (uint128 remaining);
            function cancelByCloid(uint32 market, uint128 cloid) external returns (uint128 remaining);
            function perpTransfer(int256 amount) external;
        }

        interface IERC20 {
            function balanceOf(address owner) external view returns (uint256);
            function allowance(address owner, address spender) external view returns (uint256);
            function approve(address spender, uint256 amount) external returns (bool);
            function transfer(address to, uint256 amount) external returns (bool);
        }
    }
}
use abi::{IERC20, IL1Core, IL1Probe, IL1Vault, IL1Write};

const L1_WRITE: Address = address!("0x3333333333333333333333333333333333333333");
const L1_CORE: Address = address!("0x00000000000000000000000000000000000008ff");
const TUSD: Address = address!("0x7e57000000000000000000000000000000005d00");
const IDENTITY: Address = address!("0x0000000000000000000000000000000000000004");

const fn read_precompile(index: u8) -> Address {
    let mut bytes = [0u8; 20];
    bytes[18] = 0x08;
    bytes[19] = index;
    Address::new(bytes)
}
const SPOT_BALANCE: Address = read_precompile(0x00);
const PERP_POSITION: Address = read_precompile(0x01);
const ACCOUNT_VALUE: Address = read_precompile(0x02);
const ORACLE_PRICE: Address = read_precompile(0x03);
const MARK_PRICE: Address = read_precompile(0x04);
const BEST_BID_ASK: Address = read_precompile(0x05);
const ASSET_INFO: Address = read_precompile(0x06);
const MARKET_INFO: Address = read_precompile(0x07);
const L1_BLOCK_NUMBER: Address = read_precompile(0x08);
const ORDER_INFO: Address = read_precompile(0x09);

const PROBE_CODE: &str = include_str!("../../contracts/l1/out/L1Probe.bin");
const VAULT_CODE: &str = include_str!("../../contracts/l1/out/L1Vault.bin");

/// One TUSD (6 decimals): spot prices are TUSD units per ETH, perp prices per BTC / ETH.
const USD: u128 = 1_000_000;
const ETH: u128 = 1_000_000_000_000_000_000;
/// The spot market's lot, 0.001 ETH.
const MILLI_ETH: u128 = ETH / 1_000;
/// 0.01 BTC in BTC-PERP size units (8 decimals).
const CENTI_BTC: u128 = 1_000_000;
/// Every dev account's genesis TUSD balance.
const GENESIS_TUSD: u128 = 10_000_000 * USD;

const SPOT: u32 = 0;
const BTC_PERP: u32 = 1;
const ETH_PERP: u32 = 2;
const ASSET_ETH: u32 = 0;
const ASSET_TUSD: u32 = 1;

const GTC: u8 = 0;
const IOC: u8 = 1;
const POST_ONLY: u8 = 2;
const MARKET: u8 = 3;

const FEE_RECIPIENT: u32 = 5;
const BACKSTOP: u32 = 6;
const PUBLISHERS: [u32; 3] = [7, 8, 9];

const CORE_REFUSAL: &str = "L1 core: only the L1 write contract may call";

type TxRequest = <Ethereum as Network>::TransactionRequest;

fn dev(i: u32) -> Address {
    dev_key(i).unwrap().address()
}

fn u(x: u128) -> U256 {
    U256::from(x)
}

fn i(x: i128) -> I256 {
    I256::try_from(x).unwrap()
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|a| a.port()).unwrap()
}

fn creation_code(hex_text: &str, args: &[u8]) -> Vec<u8> {
    let mut code = alloy_primitives::hex::decode(hex_text.trim()).unwrap();
    code.extend_from_slice(args);
    code
}

fn order(
    market: u32,
    is_buy: bool,
    price: u128,
    size: u128,
    tif: u8,
    cloid: u128,
) -> IL1Write::placeOrderCall {
    IL1Write::placeOrderCall { market, isBuy: is_buy, price, size, tif, cloid }
}

/// A transaction to send: sender, target (`None`: create), calldata, value.
struct Tx {
    from: Address,
    to: Option<Address>,
    data: Vec<u8>,
    value: U256,
}

fn tx(from: Address, to: Address, call: &impl SolCall) -> Tx {
    Tx { from, to: Some(to), data: call.abi_encode(), value: U256::ZERO }
}

fn tx_value(from: Address, to: Address, call: &impl SolCall, value: u128) -> Tx {
    Tx { from, to: Some(to), data: call.abi_encode(), value: u(value) }
}

/// The engine's events of type `E` in a receipt (emitted with the write contract's address).
fn events<E: SolEvent>(receipt: &TransactionReceipt) -> Vec<E> {
    receipt
        .inner
        .logs()
        .iter()
        .filter(|l| l.inner.address == L1_WRITE && l.topic0() == Some(&E::SIGNATURE_HASH))
        .map(|l| E::decode_log_data(&l.inner.data).unwrap())
        .collect()
}

/// What a probe view answers for an order.
#[derive(Debug, PartialEq, Eq)]
struct OrderInfo {
    owner: Address,
    market: u32,
    is_buy: bool,
    price: u128,
    remaining: u128,
    cloid: u128,
}

/// A `tandem-el node --dev` process on the L1 devnet genesis, a wallet holding the ten dev
/// keys, explicit nonces, and the deployed probe.
struct Node {
    provider: DynProvider<Ethereum>,
    nonces: HashMap<Address, u64>,
    probe: Address,
    log: PathBuf,
    _el: ChildGuard,
    _dir: tempfile::TempDir,
}

impl Drop for Node {
    fn drop(&mut self) {
        if std::thread::panicking() {
            let text = std::fs::read_to_string(&self.log).unwrap_or_default();
            let lines: Vec<&str> = text.lines().collect();
            let tail = lines[lines.len().saturating_sub(40)..].join("\n");
            eprintln!("--- last lines of the tandem-el log ---\n{tail}");
        }
    }
}

impl Node {
    /// Generates the L1 devnet genesis and starts the node with 1 s blocks.
    async fn start(slot: u16) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let net = dir.path().join("net");
        let status = Command::new(binary("tandem-cl").unwrap())
            .args(["testnet", "--validators", "1", "--l1", "--out"])
            .arg(&net)
            .args(["--port-offset", &port_offset(slot).to_string()])
            .stdout(Stdio::null())
            .status()
            .unwrap();
        assert!(status.success(), "tandem-cl testnet --l1 failed: {status}");
        let genesis = net.join("el-genesis.json");
        assert!(genesis.is_file(), "no el-genesis.json in {}", net.display());

        let (auth, http) = (free_port(), free_port());
        let log = dir.path().join("el.log");
        let log_file = std::fs::File::create(&log).unwrap();
        let el = ChildGuard::spawn(
            Command::new(binary("tandem-el").unwrap())
                .args(["node", "--dev", "--dev.block-time", "1s", "--chain"])
                .arg(&genesis)
                .arg("--datadir")
                .arg(dir.path().join("dev"))
                .args(["--http", "--http.port", &http.to_string()])
                // `debug` too: the hostile-simulation test goes through `debug_traceCall`.
                .args(["--http.api", "eth,net,web3,txpool,l1,debug"])
                .args(["--authrpc.port", &auth.to_string(), "--p2p.port", "0"])
                .stdout(log_file.try_clone().unwrap())
                .stderr(log_file),
        )
        .unwrap();

        let mut wallet = EthereumWallet::from(dev_key(0).unwrap());
        for k in 1..10 {
            wallet.register_signer(dev_key(k).unwrap());
        }
        let provider = ProviderBuilder::new()
            .wallet(wallet)
            .connect_http(format!("http://127.0.0.1:{http}").parse().unwrap())
            .erased();
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if provider.get_block_number().await.is_ok_and(|n| n >= 1) {
                break;
            }
            assert!(Instant::now() < deadline, "the dev node made no block within 30 s");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let mut node = Self {
            provider,
            nonces: HashMap::new(),
            probe: Address::ZERO,
            log,
            _el: el,
            _dir: dir,
        };
        assert_eq!(node.provider.get_chain_id().await.unwrap(), 1337);
        // The probe every test reads through, deployed by dev account 3 at its nonce 0.
        let deployer = dev(3);
        let receipts = node.ok(vec![node.deploy_tx(deployer, PROBE_CODE, &[])]).await;
        node.probe = receipts[0].contract_address.unwrap();
        assert_eq!(node.probe, deployer.create(0));
        node
    }

    fn deploy_tx(&self, from: Address, code: &str, args: &[u8]) -> Tx {
        Tx { from, to: None, data: creation_code(code, args), value: U256::ZERO }
    }

    /// Signs and sends `t` with the sender's next nonce and a fixed gas limit (so a transaction
    /// that reverts is still sent and mined).
    async fn send(&mut self, t: Tx) -> B256 {
        let nonce = match self.nonces.get(&t.from) {
            Some(n) => *n,
            None => self.provider.get_transaction_count(t.from).await.unwrap(),
        };
        let mut req = TxRequest::default()
            .with_from(t.from)
            .with_input(t.data)
            .with_value(t.value)
            .with_nonce(nonce)
            .with_chain_id(1337)
            .with_gas_limit(if t.to.is_some() { 2_000_000 } else { 6_000_000 })
            .with_max_fee_per_gas(100_000_000_000)
            .with_max_priority_fee_per_gas(1_000_000_000);
        match t.to {
            Some(to) => req.set_to(to),
            None => req.set_create(),
        }
        let pending = self
            .provider
            .send_transaction(req)
            .await
            .unwrap_or_else(|e| panic!("sending from {} at nonce {nonce}: {e}", t.from));
        self.nonces.insert(t.from, nonce + 1);
        *pending.tx_hash()
    }

    async fn receipt(&self, hash: B256) -> TransactionReceipt {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(r) = self.provider.get_transaction_receipt(hash).await.unwrap() {
                return r;
            }
            assert!(Instant::now() < deadline, "no receipt for {hash} within 30 s");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Sends every transaction (back to back), then waits for all receipts.
    async fn run(&mut self, txs: Vec<Tx>) -> Vec<TransactionReceipt> {
        let mut hashes = Vec::new();
        for t in txs {
            hashes.push(self.send(t).await);
        }
        let mut receipts = Vec::new();
        for h in hashes {
            receipts.push(self.receipt(h).await);
        }
        receipts
    }

    /// [`Node::run`], and every transaction must succeed.
    async fn ok(&mut self, txs: Vec<Tx>) -> Vec<TransactionReceipt> {
        let receipts = self.run(txs).await;
        for (k, r) in receipts.iter().enumerate() {
            assert!(r.status(), "transaction {k} of the batch ({}) reverted", r.transaction_hash);
        }
        receipts
    }

    /// `eth_call` at `block` (latest by default): the output or (code, message, revert data).
    async fn eth_call(
        &self,
        from: Address,
        to: Address,
        data: Vec<u8>,
        value: u128,
        block: Option<u64>,
    ) -> Result<Bytes, (i64, String, Option<Bytes>)> {
        let req =
            TxRequest::default().with_from(from).with_to(to).with_input(data).with_value(u(value));
        let block = block.map_or(BlockId::latest(), BlockId::number);
        match self.provider.call(req).block(block).await {
            Ok(out) => Ok(out),
            Err(e) => {
                let resp = e.as_error_resp().unwrap_or_else(|| panic!("eth_call to {to}: {e}"));
                let data = resp.try_data_as::<Bytes>().and_then(Result::ok);
                Err((resp.code, resp.message.to_string(), data))
            }
        }
    }

    /// The decoded answer of a successful call.
    async fn view<C: SolCall>(&self, to: Address, call: &C) -> C::Return {
        self.view_as(Address::ZERO, to, call).await
    }

    async fn view_as<C: SolCall>(&self, from: Address, to: Address, call: &C) -> C::Return {
        let out = self
            .eth_call(from, to, call.abi_encode(), 0, None)
            .await
            .unwrap_or_else(|e| panic!("eth_call {} to {to}: {e:?}", C::SIGNATURE));
        C::abi_decode_returns(&out).unwrap()
    }

    /// The revert reason of a call that must revert: code 3, message
    /// `execution reverted: <reason>`, and the data an `Error(<reason>)`.
    async fn reverts(&self, from: Address, to: Address, data: Vec<u8>, value: u128) -> String {
        match self.eth_call(from, to, data, value, None).await {
            Ok(out) => panic!("the call to {to} succeeded ({out}) but should revert"),
            Err((code, message, data)) => {
                assert_eq!(code, 3, "not an execution revert: {message}");
                let reason = message
                    .strip_prefix("execution reverted: ")
                    .unwrap_or_else(|| panic!("no reason in {message:?}"))
                    .to_string();
                let data = data.unwrap_or_else(|| panic!("no revert data with {message:?}"));
                assert_eq!(Revert::abi_decode(&data).unwrap().reason, reason);
                reason
            }
        }
    }

    async fn reverts_with(&self, from: Address, to: Address, call: &impl SolCall, want: &str) {
        let reason = self.reverts(from, to, call.abi_encode(), 0).await;
        assert_eq!(reason, want, "revert reason of {} from {from}", call_name(call));
    }

    // ---- reads through the probe ----

    async fn spot(&self, user: Address, asset: u32) -> (u128, u128) {
        let r = self.view(self.probe, &IL1Probe::spotBalanceCall { user, asset }).await;
        (r.total.to(), r.hold.to())
    }

    async fn account(&self, user: Address) -> (i128, i128, u128, u128) {
        let r = self.view(self.probe, &IL1Probe::accountValueCall { user }).await;
        (
            r.value.try_into().unwrap(),
            r.cash.try_into().unwrap(),
            r.initialMargin.to(),
            r.maintenanceMargin.to(),
        )
    }

    async fn position(&self, user: Address, market: u32) -> (i128, u128, u128, i128) {
        let r = self.view(self.probe, &IL1Probe::perpPositionCall { user, market }).await;
        (
            r.size.try_into().unwrap(),
            r.entryPrice.to(),
            r.margin.to(),
            r.unrealizedPnl.try_into().unwrap(),
        )
    }

    async fn best(&self, market: u32) -> (u128, u128) {
        let r = self.view(self.probe, &IL1Probe::bestBidAskCall { market }).await;
        (r.bid.to(), r.ask.to())
    }

    async fn order_info(&self, id: u64) -> OrderInfo {
        let r = self.view(self.probe, &IL1Probe::orderInfoCall { orderId: id }).await;
        OrderInfo {
            owner: r.owner,
            market: r.market,
            is_buy: r.isBuy,
            price: r.price,
            remaining: r.remaining,
            cloid: r.cloid,
        }
    }

    /// A price read (oracle or mark) through the probe: the price or the revert reason.
    async fn price(&self, mark: bool, market: u32) -> Result<u128, String> {
        let data = if mark {
            IL1Probe::markPriceCall { market }.abi_encode()
        } else {
            IL1Probe::oraclePriceCall { market }.abi_encode()
        };
        match self.eth_call(Address::ZERO, self.probe, data, 0, None).await {
            Ok(out) => Ok(U256::abi_decode(&out).unwrap().to()),
            Err((_, message, _)) => Err(message),
        }
    }

    async fn tusd(&self, owner: Address) -> u128 {
        self.view(TUSD, &IERC20::balanceOfCall { owner }).await.to()
    }

    async fn eth_balance(&self, who: Address, block: u64) -> U256 {
        self.provider.get_balance(who).block_id(BlockId::number(block)).await.unwrap()
    }

    async fn rpc(&self, method: &'static str, params: Value) -> Value {
        self.provider.raw_request(method.into(), params).await.unwrap()
    }

    /// The write contract holds on the EVM side exactly what `accounts` (every account that
    /// touched the L1 on this chain) hold on the L1: ETH = Σ spot ETH, TUSD = Σ spot TUSD +
    /// Σ settled perp cash (the perp collateral) + the funding pool (funding settled by payers
    /// and not yet by receivers, and the rounding; `Globals` field 3, signed low half).
    async fn assert_accounting(&self, accounts: &[Address]) {
        let mut all = accounts.to_vec();
        all.extend([dev(FEE_RECIPIENT), dev(BACKSTOP)]);
        all.sort();
        all.dedup();
        let pool_slot = (U256::from(1u8) << 248) | U256::from(3u8);
        let pool = self.provider.get_storage_at(L1_WRITE, pool_slot).await.unwrap();
        let (mut eth, mut tusd) =
            (0u128, pool.as_limbs()[0] as i128 | (pool.as_limbs()[1] as i128) << 64);
        for a in &all {
            eth += self.spot(*a, ASSET_ETH).await.0;
            tusd += self.spot(*a, ASSET_TUSD).await.0 as i128;
            tusd += self.account(*a).await.1;
        }
        let latest = self.provider.get_block_number().await.unwrap();
        assert_eq!(self.eth_balance(L1_WRITE, latest).await, u(eth), "ETH held by L1Write");
        assert_eq!(self.tusd(L1_WRITE).await as i128, tusd, "TUSD held by L1Write");
    }

    /// `l1_account` agrees with the precompile reads of `user`; returns its answer.
    async fn assert_rpc_account(&self, user: Address) -> Value {
        let v = self.rpc("l1_account", serde_json::json!([user])).await;
        for asset in [ASSET_ETH, ASSET_TUSD] {
            let (total, hold) = self.spot(user, asset).await;
            let entry = v["spot"].as_array().unwrap().iter().find(|b| b["asset"] == asset);
            match entry {
                None => assert_eq!(total, 0, "l1_account({user}) lacks asset {asset}: {v}"),
                Some(b) => {
                    assert_eq!(b["total"], total.to_string(), "{v}");
                    assert_eq!(b["hold"], hold.to_string(), "{v}");
                }
            }
        }
        let (value, cash, im, mm) = self.account(user).await;
        assert_eq!(v["accountValue"], value.to_string(), "{v}");
        assert_eq!(v["cash"], cash.to_string(), "{v}");
        assert_eq!(v["initialMargin"], im.to_string(), "{v}");
        assert_eq!(v["maintenanceMargin"], mm.to_string(), "{v}");
        for market in [BTC_PERP, ETH_PERP] {
            let (size, entry, margin, pnl) = self.position(user, market).await;
            let p = v["positions"].as_array().unwrap().iter().find(|p| p["market"] == market);
            match p {
                None => assert_eq!(size, 0, "l1_account({user}) lacks market {market}: {v}"),
                Some(p) => {
                    assert_eq!(p["size"], size.to_string(), "{v}");
                    assert_eq!(p["entryPrice"], entry.to_string(), "{v}");
                    assert_eq!(p["margin"], margin.to_string(), "{v}");
                    assert_eq!(p["unrealizedPnl"], pnl.to_string(), "{v}");
                }
            }
        }
        for o in v["orders"].as_array().unwrap() {
            let info = self.order_info(o["id"].as_u64().unwrap()).await;
            let want = OrderInfo {
                owner: user,
                market: o["market"].as_u64().unwrap() as u32,
                is_buy: o["side"] == "buy",
                price: o["price"].as_str().unwrap().parse().unwrap(),
                remaining: o["remaining"].as_str().unwrap().parse().unwrap(),
                cloid: o["cloid"].as_str().unwrap().parse().unwrap(),
            };
            assert_eq!(info, want, "orderInfo vs l1_account {v}");
        }
        v
    }

    /// `l1_book` agrees with bestBidAsk / oraclePrice / markPrice; returns its answer.
    async fn assert_rpc_book(&self, market: u32) -> Value {
        let v = self.rpc("l1_book", serde_json::json!([market])).await;
        let (bid, ask) = self.best(market).await;
        let top = |side: &str| -> u128 {
            v[side]
                .as_array()
                .unwrap()
                .first()
                .map_or(0, |l| l["price"].as_str().unwrap().parse().unwrap())
        };
        assert_eq!((top("bids"), top("asks")), (bid, ask), "l1_book vs bestBidAsk: {v}");
        if market != SPOT {
            let as_opt = |r: Result<u128, String>| r.ok().map(|p| p.to_string());
            assert_eq!(
                v["oraclePrice"].as_str().map(str::to_string),
                as_opt(self.price(false, market).await),
                "{v}"
            );
            assert_eq!(
                v["markPrice"].as_str().map(str::to_string),
                as_opt(self.price(true, market).await),
                "{v}"
            );
        }
        v
    }
}

fn call_name(call: &impl SolCall) -> &'static str {
    fn name<C: SolCall>(_: &C) -> &'static str {
        C::SIGNATURE
    }
    name(call)
}

/// Spot: deposits (ERC-20 with approve, ETH), orders of every time in force, fills as logs,
/// cancels by id and client id, withdrawals with EVM balances checked, refusals with the
/// engine's reason, exact accounting, the static reads and `l1_account` / `l1_book`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spot_actions_reads_logs_and_accounting() {
    let mut node = Node::start(0).await;
    let (a, b, c) = (dev(0), dev(1), dev(2));
    let fee = dev(FEE_RECIPIENT);

    // ---- configuration reads ----
    let info = node.view(node.probe, &IL1Probe::assetInfoCall { asset: ASSET_ETH }).await;
    assert_eq!((info.token, info.decimals, info.symbol.as_str()), (Address::ZERO, 18, "ETH"));
    let info = node.view(node.probe, &IL1Probe::assetInfoCall { asset: ASSET_TUSD }).await;
    assert_eq!((info.token, info.decimals, info.symbol.as_str()), (TUSD, 6, "TUSD"));
    let want_markets = [
        (false, 0, 1, 10_000u128, MILLI_ETH, 5, 0, 0, 18),
        (true, u32::MAX, 1, 1_000_000, 100_000, 5, 20, 250, 8),
        (true, u32::MAX, 1, 10_000, MILLI_ETH, 5, 20, 250, 18),
    ];
    for (market, want) in want_markets.iter().enumerate() {
        let m = node.view(node.probe, &IL1Probe::marketInfoCall { market: market as u32 }).await;
        let got = (
            m.isPerp,
            m.base,
            m.quote,
            m.tickSize.to::<u128>(),
            m.lotSize.to::<u128>(),
            m.takerFeeBps,
            m.maxLeverage,
            m.maintenanceMarginBps,
            m.baseDecimals,
        );
        assert_eq!(got, *want, "marketInfo({market})");
    }
    let reason =
        node.reverts(a, node.probe, IL1Probe::assetInfoCall { asset: 2 }.abi_encode(), 0).await;
    assert_eq!(reason, "unknown asset 2");
    let reason =
        node.reverts(a, node.probe, IL1Probe::marketInfoCall { market: 3 }.abi_encode(), 0).await;
    assert_eq!(reason, "unknown market 3");
    assert_eq!(node.best(SPOT).await, (0, 0));

    // ---- deposits: approve + deposit(TUSD), depositEth ----
    let max = U256::MAX;
    let receipts = node
        .ok(vec![
            tx(a, TUSD, &IERC20::approveCall { spender: L1_WRITE, amount: max }),
            tx(a, L1_WRITE, &IL1Write::depositCall { token: TUSD, amount: u(100_000 * USD) }),
            tx_value(a, L1_WRITE, &IL1Write::depositEthCall {}, 10 * ETH),
            tx(b, TUSD, &IERC20::approveCall { spender: L1_WRITE, amount: u(50_000 * USD) }),
            tx(b, L1_WRITE, &IL1Write::depositCall { token: TUSD, amount: u(50_000 * USD) }),
            tx_value(b, L1_WRITE, &IL1Write::depositEthCall {}, 5 * ETH),
            tx(c, TUSD, &IERC20::approveCall { spender: L1_WRITE, amount: max }),
            tx(c, L1_WRITE, &IL1Write::depositCall { token: TUSD, amount: u(20_000 * USD) }),
        ])
        .await;
    let d = events::<IL1Write::Deposit>(&receipts[1]);
    assert_eq!(d.len(), 1);
    assert_eq!((d[0].user, d[0].asset, d[0].amount), (a, ASSET_TUSD, u(100_000 * USD)));
    let d = events::<IL1Write::Deposit>(&receipts[2]);
    assert_eq!((d[0].user, d[0].asset, d[0].amount), (a, ASSET_ETH, u(10 * ETH)));
    assert_eq!(node.spot(a, ASSET_TUSD).await, (100_000 * USD, 0));
    assert_eq!(node.spot(a, ASSET_ETH).await, (10 * ETH, 0));
    assert_eq!(node.spot(b, ASSET_TUSD).await, (50_000 * USD, 0));
    assert_eq!(node.spot(b, ASSET_ETH).await, (5 * ETH, 0));
    assert_eq!(node.spot(c, ASSET_TUSD).await, (20_000 * USD, 0));
    assert_eq!(node.spot(c, ASSET_ETH).await, (0, 0));
    assert_eq!(node.tusd(a).await, GENESIS_TUSD - 100_000 * USD);
    assert_eq!(node.tusd(L1_WRITE).await, 170_000 * USD);
    let allowance = node.view(TUSD, &IERC20::allowanceCall { owner: b, spender: L1_WRITE }).await;
    assert_eq!(allowance, U256::ZERO, "the exact approval is used up");
    node.assert_accounting(&[a, b, c]).await;

    // The L1 block number is the block whose end-of-block step ran last.
    let n = receipts[0].block_number.unwrap();
    let out = node
        .eth_call(a, node.probe, IL1Probe::l1BlockNumberCall {}.abi_encode(), 0, Some(n))
        .await
        .unwrap();
    assert_eq!(u64::abi_decode(&out).unwrap(), n);
    let latest = node.provider.get_block_number().await.unwrap();
    let out = node
        .eth_call(a, node.probe, IL1Probe::l1BlockNumberCall {}.abi_encode(), 0, Some(latest))
        .await
        .unwrap();
    assert_eq!(u64::abi_decode(&out).unwrap(), latest);
    let out = node.eth_call(a, L1_BLOCK_NUMBER, Vec::new(), 0, Some(n - 1)).await.unwrap();
    assert_eq!(u64::abi_decode(&out).unwrap(), n - 1, "the precompile itself, at an earlier block");

    // ---- refusals, with the engine's reason in the RPC error ----
    node.reverts_with(
        c,
        L1_WRITE,
        &order(SPOT, false, 3_000 * USD, ETH, GTC, 0),
        "insufficient balance of asset 0: need 1000000000000000000, available 0",
    )
    .await;
    node.reverts_with(
        a,
        L1_WRITE,
        &order(SPOT, false, 3_000 * USD + 1, ETH, GTC, 0),
        "price 3000000001 is not a positive multiple of the tick size 10000",
    )
    .await;
    node.reverts_with(
        a,
        L1_WRITE,
        &order(SPOT, false, 3_000 * USD, MILLI_ETH + 1, GTC, 0),
        "size 1000000000000001 is not a positive multiple of the lot size 1000000000000000",
    )
    .await;
    node.reverts_with(
        a,
        L1_WRITE,
        &order(SPOT, true, 0, ETH, MARKET, 0),
        "no liquidity for a market order",
    )
    .await;
    node.reverts_with(
        a,
        L1_WRITE,
        &order(SPOT, true, 3_000 * USD, ETH, 4, 0),
        "invalid time in force 4",
    )
    .await;
    node.reverts_with(a, L1_WRITE, &order(7, true, 3_000 * USD, ETH, GTC, 0), "unknown market 7")
        .await;
    node.reverts_with(
        a,
        L1_WRITE,
        &IL1Write::cancelOrderCall { market: SPOT, orderId: 99 },
        "unknown order 99",
    )
    .await;
    node.reverts_with(
        a,
        L1_WRITE,
        &IL1Write::cancelByCloidCall { market: SPOT, cloid: 5 },
        "unknown client order id 5",
    )
    .await;
    node.reverts_with(
        a,
        L1_WRITE,
        &IL1Write::withdrawCall { asset: ASSET_TUSD, amount: u(100_000 * USD + 1) },
        "insufficient balance of asset 1: need 100000000001, available 100000000000",
    )
    .await;
    node.reverts_with(
        a,
        L1_WRITE,
        &IL1Write::withdrawCall { asset: 7, amount: u(1) },
        "unknown asset 7",
    )
    .await;
    node.reverts_with(a, L1_WRITE, &IL1Write::depositEthCall {}, "amount must be positive").await;
    // eth_estimateGas reports the same reason.
    let req = TxRequest::default()
        .with_from(c)
        .with_to(L1_WRITE)
        .with_input(order(SPOT, false, 3_000 * USD, ETH, GTC, 0).abi_encode());
    let err = node.provider.estimate_gas(req).await.unwrap_err();
    let resp = err.as_error_resp().unwrap();
    assert_eq!(resp.code, 3);
    assert_eq!(
        resp.message,
        "execution reverted: insufficient balance of asset 0: need 1000000000000000000, available 0"
    );

    // ---- resting asks of A (GTC, with client ids); C's order without ETH is mined as a revert ----
    let predicted =
        node.view_as(a, L1_WRITE, &order(SPOT, false, 3_000 * USD, 2 * ETH, GTC, 11)).await;
    assert_eq!((predicted.orderId, predicted.filled, predicted.resting), (1, 0, 2 * ETH));
    let receipts = node
        .run(vec![
            tx(a, L1_WRITE, &order(SPOT, false, 3_000 * USD, 2 * ETH, GTC, 11)),
            tx(a, L1_WRITE, &order(SPOT, false, 3_010 * USD, ETH, GTC, 12)),
            tx(c, L1_WRITE, &order(SPOT, false, 3_000 * USD, ETH, GTC, 0)),
        ])
        .await;
    assert!(receipts[0].status() && receipts[1].status());
    assert!(!receipts[2].status(), "an order without funds is mined as a revert");
    assert!(receipts[2].inner.logs().is_empty());
    let placed = events::<IL1Write::OrderPlaced>(&receipts[0]);
    let p = &placed[0];
    assert_eq!(
        (p.user, p.market, p.orderId, p.cloid, p.isBuy, p.price, p.size, p.resting),
        (a, SPOT, 1, 11, false, 3_000 * USD, 2 * ETH, 2 * ETH)
    );
    let p = &events::<IL1Write::OrderPlaced>(&receipts[1])[0];
    assert_eq!((p.orderId, p.cloid, p.price, p.resting), (2, 12, 3_010 * USD, ETH));
    assert_eq!(node.spot(a, ASSET_ETH).await, (10 * ETH, 3 * ETH));
    assert_eq!(
        node.order_info(1).await,
        OrderInfo {
            owner: a,
            market: SPOT,
            is_buy: false,
            price: 3_000 * USD,
            remaining: 2 * ETH,
            cloid: 11
        }
    );
    assert_eq!(node.best(SPOT).await, (0, 3_000 * USD));
    node.reverts_with(
        a,
        L1_WRITE,
        &order(SPOT, false, 3_050 * USD, ETH, GTC, 11),
        "client order id 11 is already in use",
    )
    .await;

    // ---- B's resting bid ----
    node.ok(vec![tx(b, L1_WRITE, &order(SPOT, true, 2_990 * USD, ETH, GTC, 0))]).await;
    assert_eq!(node.best(SPOT).await, (2_990 * USD, 3_000 * USD));
    assert_eq!(node.spot(b, ASSET_TUSD).await, (50_000 * USD, 2_990 * USD));
    assert_eq!(
        node.order_info(3).await,
        OrderInfo {
            owner: b,
            market: SPOT,
            is_buy: true,
            price: 2_990 * USD,
            remaining: ETH,
            cloid: 0
        }
    );
    node.reverts_with(
        b,
        L1_WRITE,
        &order(SPOT, true, 3_000 * USD, ETH / 2, POST_ONLY, 0),
        "post-only order would cross the book",
    )
    .await;

    // ---- C takes 1.5 ETH with an IOC buy; B's crossing post-only order is mined as a revert ----
    let predicted =
        node.view_as(c, L1_WRITE, &order(SPOT, true, 3_000 * USD, 1_500 * MILLI_ETH, IOC, 0)).await;
    assert_eq!((predicted.orderId, predicted.filled, predicted.resting), (4, 1_500 * MILLI_ETH, 0));
    let receipts = node
        .run(vec![
            tx(c, L1_WRITE, &order(SPOT, true, 3_000 * USD, 1_500 * MILLI_ETH, IOC, 0)),
            tx(b, L1_WRITE, &order(SPOT, true, 3_000 * USD, ETH / 2, POST_ONLY, 0)),
        ])
        .await;
    assert!(receipts[0].status());
    assert!(!receipts[1].status(), "a crossing post-only order is mined as a revert");
    let fills = events::<IL1Write::Fill>(&receipts[0]);
    assert_eq!(fills.len(), 1);
    let f = &fills[0];
    // 1.5 ETH at 3,000 TUSD = 4,500 TUSD; fee 5 bps = 2.25 TUSD.
    assert_eq!(
        (
            f.market,
            f.taker,
            f.maker,
            f.takerOrderId,
            f.makerOrderId,
            f.takerIsBuy,
            f.price,
            f.size,
            f.fee
        ),
        (SPOT, c, a, 4, 1, true, 3_000 * USD, 1_500 * MILLI_ETH, 2_250_000)
    );
    let p = &events::<IL1Write::OrderPlaced>(&receipts[0])[0];
    assert_eq!((p.orderId, p.size, p.resting), (4, 1_500 * MILLI_ETH, 0));
    assert_eq!(node.spot(a, ASSET_ETH).await, (8_500 * MILLI_ETH, 1_500 * MILLI_ETH));
    assert_eq!(node.spot(a, ASSET_TUSD).await, (104_500 * USD, 0));
    assert_eq!(node.spot(c, ASSET_ETH).await, (1_500 * MILLI_ETH, 0));
    assert_eq!(node.spot(c, ASSET_TUSD).await, (20_000 * USD - 4_500 * USD - 2_250_000, 0));
    assert_eq!(node.spot(fee, ASSET_TUSD).await, (2_250_000, 0));
    assert_eq!(node.order_info(1).await.remaining, 500 * MILLI_ETH);

    // ---- B's post-only bid rests; C's IOC bid below the ask fills nothing and does not rest ----
    let r = node
        .ok(vec![tx(b, L1_WRITE, &order(SPOT, true, 2_995 * USD, ETH / 2, POST_ONLY, 21))])
        .await;
    assert_eq!(events::<IL1Write::OrderPlaced>(&r[0])[0].orderId, 5);
    let r = node.ok(vec![tx(c, L1_WRITE, &order(SPOT, true, 2_995 * USD, ETH, IOC, 0))]).await;
    let p = &events::<IL1Write::OrderPlaced>(&r[0])[0];
    assert_eq!((p.orderId, p.resting), (6, 0));
    assert!(events::<IL1Write::Fill>(&r[0]).is_empty());
    assert_eq!(node.best(SPOT).await, (2_995 * USD, 3_000 * USD));
    assert_eq!(node.spot(c, ASSET_TUSD).await.1, 0, "nothing held for a dropped IOC");

    // ---- C's market sell (hits B's post-only bid) and market buy (lifts A's ask) ----
    let r = node
        .ok(vec![
            tx(c, L1_WRITE, &order(SPOT, false, 0, ETH / 2, MARKET, 0)),
            tx(c, L1_WRITE, &order(SPOT, true, 0, 200 * MILLI_ETH, MARKET, 0)),
        ])
        .await;
    let f = &events::<IL1Write::Fill>(&r[0])[0];
    // 0.5 ETH at 2,995 = 1,497.5 TUSD; fee 0.74875 TUSD.
    assert_eq!(
        (f.taker, f.maker, f.takerOrderId, f.makerOrderId, f.takerIsBuy, f.price, f.size, f.fee),
        (c, b, 7, 5, false, 2_995 * USD, ETH / 2, 748_750)
    );
    // A market order's price is its slippage bound: 2,995 × 0.95 (sell), 3,000 × 1.05 (buy).
    let p = &events::<IL1Write::OrderPlaced>(&r[0])[0];
    assert_eq!((p.orderId, p.isBuy, p.price, p.resting), (7, false, 2_845_250_000, 0));
    let f = &events::<IL1Write::Fill>(&r[1])[0];
    assert_eq!(
        (f.taker, f.maker, f.takerOrderId, f.makerOrderId, f.takerIsBuy, f.price, f.size, f.fee),
        (c, a, 8, 1, true, 3_000 * USD, 200 * MILLI_ETH, 300_000)
    );
    let p = &events::<IL1Write::OrderPlaced>(&r[1])[0];
    assert_eq!((p.orderId, p.isBuy, p.price, p.resting), (8, true, 3_150 * USD, 0));
    let c_tusd = 20_000 * USD - 4_502_250_000 + 1_497_500_000 - 748_750 - 600_300_000;
    assert_eq!(node.spot(c, ASSET_TUSD).await, (c_tusd, 0));
    assert_eq!(node.spot(c, ASSET_ETH).await, (1_200 * MILLI_ETH, 0));
    assert_eq!(node.spot(b, ASSET_ETH).await, (5_500 * MILLI_ETH, 0));
    assert_eq!(node.spot(b, ASSET_TUSD).await, (50_000 * USD - 1_497_500_000, 2_990 * USD));
    assert_eq!(node.spot(a, ASSET_ETH).await, (8_300 * MILLI_ETH, 1_300 * MILLI_ETH));
    assert_eq!(node.spot(a, ASSET_TUSD).await, (105_100 * USD, 0));
    assert_eq!(node.spot(fee, ASSET_TUSD).await, (3_298_750, 0));
    assert_eq!(node.best(SPOT).await, (2_990 * USD, 3_000 * USD));

    // ---- cancels: by id and by client id ----
    let predicted =
        node.view_as(a, L1_WRITE, &IL1Write::cancelOrderCall { market: SPOT, orderId: 2 }).await;
    assert_eq!(predicted, ETH);
    let predicted =
        node.view_as(a, L1_WRITE, &IL1Write::cancelByCloidCall { market: SPOT, cloid: 11 }).await;
    assert_eq!(predicted, 300 * MILLI_ETH);
    node.reverts_with(
        a,
        L1_WRITE,
        &IL1Write::cancelOrderCall { market: SPOT, orderId: 3 },
        "order 3 belongs to another account",
    )
    .await;
    node.reverts_with(
        a,
        L1_WRITE,
        &IL1Write::cancelOrderCall { market: BTC_PERP, orderId: 2 },
        "unknown order 2",
    )
    .await;
    let r = node
        .ok(vec![
            tx(a, L1_WRITE, &IL1Write::cancelOrderCall { market: SPOT, orderId: 2 }),
            tx(a, L1_WRITE, &IL1Write::cancelByCloidCall { market: SPOT, cloid: 11 }),
        ])
        .await;
    let x = &events::<IL1Write::OrderCanceled>(&r[0])[0];
    assert_eq!((x.user, x.market, x.orderId, x.remaining), (a, SPOT, 2, ETH));
    let x = &events::<IL1Write::OrderCanceled>(&r[1])[0];
    assert_eq!((x.user, x.market, x.orderId, x.remaining), (a, SPOT, 1, 300 * MILLI_ETH));
    assert_eq!(node.spot(a, ASSET_ETH).await, (8_300 * MILLI_ETH, 0));
    assert_eq!(node.best(SPOT).await, (2_990 * USD, 0));
    node.reverts_with(
        a,
        L1_WRITE,
        &IL1Write::cancelOrderCall { market: SPOT, orderId: 2 },
        "unknown order 2",
    )
    .await;
    let reason =
        node.reverts(a, node.probe, IL1Probe::orderInfoCall { orderId: 2 }.abi_encode(), 0).await;
    assert_eq!(reason, "unknown order 2");

    // ---- withdrawals, checked on the EVM side ----
    let a_tusd_before = node.tusd(a).await;
    let r = node
        .ok(vec![
            tx(a, L1_WRITE, &IL1Write::withdrawCall { asset: ASSET_TUSD, amount: u(5_100 * USD) }),
            tx(a, L1_WRITE, &IL1Write::withdrawCall { asset: ASSET_ETH, amount: u(3 * ETH) }),
            tx(
                c,
                L1_WRITE,
                &IL1Write::withdrawCall { asset: ASSET_ETH, amount: u(1_200 * MILLI_ETH) },
            ),
        ])
        .await;
    let w = &events::<IL1Write::Withdraw>(&r[1])[0];
    assert_eq!((w.user, w.asset, w.amount), (a, ASSET_ETH, u(3 * ETH)));
    assert_eq!(node.tusd(a).await, a_tusd_before + 5_100 * USD);
    let first = r[0].block_number.unwrap();
    let last = r[1].block_number.unwrap();
    let gas: u128 = r[..2].iter().map(|x| u128::from(x.gas_used) * x.effective_gas_price).sum();
    let before = node.eth_balance(a, first - 1).await;
    let after = node.eth_balance(a, last).await;
    assert_eq!(after + u(gas), before + u(3 * ETH), "A's ETH after the withdrawal, net of gas");
    let n = r[2].block_number.unwrap();
    let gas = u(u128::from(r[2].gas_used) * r[2].effective_gas_price);
    assert_eq!(
        node.eth_balance(c, n).await + gas,
        node.eth_balance(c, n - 1).await + u(1_200 * MILLI_ETH)
    );
    assert_eq!(node.spot(a, ASSET_TUSD).await, (100_000 * USD, 0));
    assert_eq!(node.spot(a, ASSET_ETH).await, (5_300 * MILLI_ETH, 0));
    assert_eq!(node.spot(c, ASSET_ETH).await, (0, 0));
    node.reverts_with(
        c,
        L1_WRITE,
        &IL1Write::withdrawCall { asset: ASSET_TUSD, amount: u(c_tusd + 1) },
        &format!("insufficient balance of asset 1: need {}, available {c_tusd}", c_tusd + 1),
    )
    .await;
    // B's bid holds 2,990 TUSD: only the rest is free.
    let b_free = 50_000 * USD - 1_497_500_000 - 2_990 * USD;
    node.reverts_with(
        b,
        L1_WRITE,
        &IL1Write::withdrawCall { asset: ASSET_TUSD, amount: u(b_free + 1) },
        &format!("insufficient balance of asset 1: need {}, available {b_free}", b_free + 1),
    )
    .await;

    // ---- exact accounting: 170,000 - 5,100 TUSD and 15 - 3 - 1.2 ETH remain in L1Write ----
    assert_eq!(node.tusd(L1_WRITE).await, 164_900 * USD);
    let latest = node.provider.get_block_number().await.unwrap();
    assert_eq!(node.eth_balance(L1_WRITE, latest).await, u(10_800 * MILLI_ETH));
    node.assert_accounting(&[a, b, c]).await;

    // ---- the fills as logs: eth_getLogs by address and Fill topic, and by indexed maker ----
    let filter = Filter::new()
        .address(L1_WRITE)
        .event_signature(IL1Write::Fill::SIGNATURE_HASH)
        .from_block(0u64)
        .to_block(latest);
    let logs = node.provider.get_logs(&filter).await.unwrap();
    let fills: Vec<_> = logs
        .iter()
        .map(|l| {
            let f = IL1Write::Fill::decode_log_data(&l.inner.data).unwrap();
            (f.taker, f.maker, f.takerOrderId, f.makerOrderId, f.takerIsBuy, f.price, f.size, f.fee)
        })
        .collect();
    assert_eq!(
        fills,
        vec![
            (c, a, 4, 1, true, 3_000 * USD, 1_500 * MILLI_ETH, 2_250_000),
            (c, b, 7, 5, false, 2_995 * USD, ETH / 2, 748_750),
            (c, a, 8, 1, true, 3_000 * USD, 200 * MILLI_ETH, 300_000),
        ]
    );
    let by_maker = node.provider.get_logs(&filter.clone().topic3(a.into_word())).await.unwrap();
    assert_eq!(by_maker.len(), 2);
    assert!(by_maker.iter().all(|l| l.inner.address == L1_WRITE && l.topics()[3] == a.into_word()));

    // ---- the l1_ RPC methods agree with the precompiles ----
    let v = node.assert_rpc_account(b).await;
    assert_eq!(v["orders"].as_array().unwrap().len(), 1);
    assert_eq!(v["orders"][0]["id"], 3);
    let v = node.assert_rpc_account(a).await;
    assert!(v["orders"].as_array().unwrap().is_empty());
    node.assert_rpc_account(c).await;
    node.assert_rpc_account(fee).await;
    let v = node.assert_rpc_book(SPOT).await;
    assert_eq!(v["bids"][0]["size"], ETH.to_string());
    assert_eq!(v["bids"][0]["orders"], 1);
}

/// Perps: oracle posts by the three publishers (median of two and of three, floored to the
/// tick), a non-publisher refused, perp transfers both ways with the margin check, a perp trade
/// and the position, account value and mark reads; the probe as a perp account; accounting
/// including perp cash; `l1_account` / `l1_book` for perps.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn perps_oracle_transfers_and_margin() {
    let mut node = Node::start(1).await;
    let (a, b, keeper) = (dev(0), dev(1), dev(3));
    let [p7, p8, p9] = PUBLISHERS.map(dev);
    let fee = dev(FEE_RECIPIENT);
    let probe = node.probe;

    // No price yet: the reads revert with the engine's reason.
    assert_eq!(
        node.price(false, BTC_PERP).await.unwrap_err(),
        "execution reverted: market 1 has no fresh oracle price"
    );
    assert_eq!(
        node.price(true, ETH_PERP).await.unwrap_err(),
        "execution reverted: market 2 has no fresh oracle price"
    );
    assert_eq!(
        node.price(false, SPOT).await.unwrap_err(),
        "execution reverted: market 0 is not a perp market"
    );
    let reason = node
        .reverts(a, probe, IL1Probe::perpPositionCall { user: a, market: SPOT }.abi_encode(), 0)
        .await;
    assert_eq!(reason, "market 0 is not a perp market");
    node.reverts_with(
        a,
        L1_WRITE,
        &order(BTC_PERP, true, 60_000 * USD, CENTI_BTC, GTC, 0),
        "market 1 has no fresh oracle price",
    )
    .await;
    assert_eq!(node.position(a, BTC_PERP).await, (0, 0, 0, 0));
    assert_eq!(node.account(a).await, (0, 0, 0, 0));

    // ---- collateral into perps; two publishers post ----
    let post = |market, price| IL1Write::postOraclePriceCall { market, price };
    let mut setup = Vec::new();
    for who in [a, b] {
        setup.push(tx(who, TUSD, &IERC20::approveCall { spender: L1_WRITE, amount: U256::MAX }));
        setup.push(tx(
            who,
            L1_WRITE,
            &IL1Write::depositCall { token: TUSD, amount: u(100_000 * USD) },
        ));
        setup.push(tx(
            who,
            L1_WRITE,
            &IL1Write::perpTransferCall { amount: i(50_000 * USD as i128) },
        ));
    }
    setup.push(tx(p7, L1_WRITE, &post(BTC_PERP, 60_000 * USD)));
    setup.push(tx(p8, L1_WRITE, &post(BTC_PERP, 60_101 * USD)));
    let r = node.ok(setup).await;
    let t = &events::<IL1Write::PerpTransfer>(&r[2])[0];
    assert_eq!((t.user, t.amount), (a, i(50_000 * USD as i128)));
    let posted = r[6].block_number.unwrap();
    let o = &events::<IL1Write::OraclePrice>(&r[6])[0];
    assert_eq!((o.market, o.publisher, o.price), (BTC_PERP, p7, 60_000 * USD));
    // Two fresh prices: floor of the mean (60,050.5), floored to the 1 TUSD tick.
    assert_eq!(node.price(false, BTC_PERP).await, Ok(60_050 * USD));
    assert_eq!(node.price(true, BTC_PERP).await, Ok(60_050 * USD));
    assert_eq!(node.spot(a, ASSET_TUSD).await, (50_000 * USD, 0));
    assert_eq!(node.account(a).await, (50_000 * USD as i128, 50_000 * USD as i128, 0, 0));

    // Refused posts: a non-publisher (the reason names it), zero, a spot market.
    node.reverts_with(
        a,
        L1_WRITE,
        &post(BTC_PERP, USD),
        &format!("{a} is not an oracle publisher"),
    )
    .await;
    node.reverts_with(p9, L1_WRITE, &post(BTC_PERP, 0), "amount must be positive").await;
    node.reverts_with(p9, L1_WRITE, &post(SPOT, USD), "market 0 is not a perp market").await;
    let r = node.run(vec![tx(a, L1_WRITE, &post(BTC_PERP, USD))]).await;
    assert!(!r[0].status(), "a non-publisher's post is mined as a revert");
    assert_eq!(node.price(false, BTC_PERP).await, Ok(60_050 * USD));

    // ---- the third publisher; A's resting ask ----
    let r = node
        .ok(vec![
            tx(p9, L1_WRITE, &post(BTC_PERP, 59_900 * USD)),
            tx(a, L1_WRITE, &order(BTC_PERP, false, 60_500 * USD, 10 * CENTI_BTC, GTC, 31)),
        ])
        .await;
    assert_eq!(events::<IL1Write::OrderPlaced>(&r[1])[0].orderId, 1);
    // Median of 60,000 / 60,101 / 59,900.
    assert_eq!(node.price(false, BTC_PERP).await, Ok(60_000 * USD));
    // Mark: median(oracle 60,000, bid = oracle, ask 60,500).
    assert_eq!(node.price(true, BTC_PERP).await, Ok(60_000 * USD));
    assert_eq!(node.best(BTC_PERP).await, (0, 60_500 * USD));
    // The resting order's margin: 0.1 BTC × 60,500 / 20.
    assert_eq!(node.account(a).await, (50_000 * USD as i128, 50_000 * USD as i128, 302_500_000, 0));
    assert_eq!(
        node.order_info(1).await,
        OrderInfo {
            owner: a,
            market: BTC_PERP,
            is_buy: false,
            price: 60_500 * USD,
            remaining: 10 * CENTI_BTC,
            cloid: 31
        }
    );

    // ---- B lifts it (IOC) ----
    let predicted = node
        .view_as(b, L1_WRITE, &order(BTC_PERP, true, 60_500 * USD, 10 * CENTI_BTC, IOC, 0))
        .await;
    assert_eq!((predicted.orderId, predicted.filled, predicted.resting), (2, 10 * CENTI_BTC, 0));
    let r = node
        .ok(vec![tx(b, L1_WRITE, &order(BTC_PERP, true, 60_500 * USD, 10 * CENTI_BTC, IOC, 0))])
        .await;
    let f = &events::<IL1Write::Fill>(&r[0])[0];
    // 0.1 BTC at 60,500 = 6,050 TUSD; fee 3.025 TUSD.
    assert_eq!(
        (
            f.market,
            f.taker,
            f.maker,
            f.takerOrderId,
            f.makerOrderId,
            f.takerIsBuy,
            f.price,
            f.size,
            f.fee
        ),
        (BTC_PERP, b, a, 2, 1, true, 60_500 * USD, 10 * CENTI_BTC, 3_025_000)
    );
    assert_eq!(node.best(BTC_PERP).await, (0, 0));
    assert_eq!(node.price(true, BTC_PERP).await, Ok(60_000 * USD));
    // At mark 60,000 the 0.1 BTC is worth 6,000: margin 300, maintenance 150, PnL ∓50.
    assert_eq!(
        node.position(b, BTC_PERP).await,
        (10 * CENTI_BTC as i128, 60_500 * USD, 300 * USD, -50 * USD as i128)
    );
    assert_eq!(
        node.position(a, BTC_PERP).await,
        (-(10 * CENTI_BTC as i128), 60_500 * USD, 300 * USD, 50 * USD as i128)
    );
    let b_cash = 50_000 * USD as i128 - 6_050 * USD as i128 - 3_025_000;
    assert_eq!(node.account(b).await, (b_cash + 6_000 * USD as i128, b_cash, 300 * USD, 150 * USD));
    let a_cash = 56_050 * USD as i128;
    assert_eq!(node.account(a).await, (a_cash - 6_000 * USD as i128, a_cash, 300 * USD, 150 * USD));
    assert_eq!(node.spot(fee, ASSET_TUSD).await, (3_025_000, 0));
    assert_eq!(node.position(a, ETH_PERP).await, (0, 0, 0, 0));

    // B cannot open 20 BTC: 60,000 margin + 300 for the position against a value of
    // 49,946.975 minus the 600 TUSD fee.
    node.reverts_with(
        b,
        L1_WRITE,
        &order(BTC_PERP, true, 60_000 * USD, 2_000 * CENTI_BTC, GTC, 0),
        "insufficient margin: need 60300000000, account value 49346975000",
    )
    .await;
    node.reverts_with(
        a,
        L1_WRITE,
        &order(ETH_PERP, true, 3_000 * USD, MILLI_ETH, GTC, 0),
        "market 2 has no fresh oracle price",
    )
    .await;

    // ---- perp transfers out: only what exceeds the initial margin ----
    let a_value = a_cash - 6_000 * USD as i128;
    let free = a_value - 300 * USD as i128;
    node.reverts_with(
        a,
        L1_WRITE,
        &IL1Write::perpTransferCall { amount: i(-(free + 1)) },
        &format!("insufficient margin: need {}, account value {a_value}", a_value + 1),
    )
    .await;
    node.reverts_with(
        a,
        L1_WRITE,
        &IL1Write::perpTransferCall { amount: I256::ZERO },
        "amount must be positive",
    )
    .await;
    node.reverts_with(
        b,
        L1_WRITE,
        &IL1Write::perpTransferCall { amount: i(50_000 * USD as i128 + 1) },
        "insufficient balance of asset 1: need 50000000001, available 50000000000",
    )
    .await;
    let r = node
        .ok(vec![
            tx(a, L1_WRITE, &IL1Write::perpTransferCall { amount: i(-(1_000 * USD as i128)) }),
            tx(a, TUSD, &IERC20::transferCall { to: probe, amount: u(5_000 * USD) }),
        ])
        .await;
    let t = &events::<IL1Write::PerpTransfer>(&r[0])[0];
    assert_eq!((t.user, t.amount), (a, i(-(1_000 * USD as i128))));
    assert_eq!(node.spot(a, ASSET_TUSD).await, (51_000 * USD, 0));
    assert_eq!(node.account(a).await.1, a_cash - 1_000 * USD as i128);

    // ---- the probe as a perp account: deposit, transfers both ways, an order, a refused post ----
    let r = node
        .run(vec![
            tx(keeper, probe, &IL1Probe::depositCall { token: TUSD, amount: u(5_000 * USD) }),
            tx(keeper, probe, &IL1Probe::perpTransferCall { amount: i(3_000 * USD as i128) }),
            tx(keeper, probe, &IL1Probe::perpTransferCall { amount: i(-(1_000 * USD as i128)) }),
            tx(
                keeper,
                probe,
                &IL1Probe::placeOrderCall {
                    market: BTC_PERP,
                    isBuy: true,
                    price: 59_000 * USD,
                    size: CENTI_BTC,
                    tif: GTC,
                    cloid: 41,
                },
            ),
            tx(keeper, probe, &IL1Probe::postOraclePriceCall { market: BTC_PERP, price: USD }),
        ])
        .await;
    assert!(r[..4].iter().all(|x| x.status()));
    assert!(!r[4].status(), "the probe is not a publisher");
    let d = &events::<IL1Write::Deposit>(&r[0])[0];
    assert_eq!((d.user, d.asset, d.amount), (probe, ASSET_TUSD, u(5_000 * USD)));
    let t = &events::<IL1Write::PerpTransfer>(&r[2])[0];
    assert_eq!((t.user, t.amount), (probe, i(-(1_000 * USD as i128))));
    let p = &events::<IL1Write::OrderPlaced>(&r[3])[0];
    assert_eq!(
        (p.user, p.market, p.orderId, p.cloid, p.resting),
        (probe, BTC_PERP, 3, 41, CENTI_BTC)
    );
    node.reverts_with(
        keeper,
        probe,
        &IL1Probe::postOraclePriceCall { market: BTC_PERP, price: USD },
        &format!("{probe} is not an oracle publisher"),
    )
    .await;
    assert_eq!(node.spot(probe, ASSET_TUSD).await, (3_000 * USD, 0));
    assert_eq!(node.tusd(probe).await, 0);
    // 0.01 BTC at 59,000 = 590 TUSD of open orders: 29.5 TUSD margin.
    assert_eq!(
        node.account(probe).await,
        (2_000 * USD as i128, 2_000 * USD as i128, 29_500_000, 0)
    );
    assert_eq!(node.best(BTC_PERP).await, (59_000 * USD, 0));
    // Mark: median(60,000, bid 59,000, ask = oracle) = 60,000.
    assert_eq!(node.price(true, BTC_PERP).await, Ok(60_000 * USD));
    node.assert_rpc_book(BTC_PERP).await;
    let v = node.assert_rpc_account(probe).await;
    assert_eq!(v["orders"][0]["id"], 3);

    let r = node
        .ok(vec![tx(keeper, probe, &IL1Probe::cancelByCloidCall { market: BTC_PERP, cloid: 41 })])
        .await;
    let x = &events::<IL1Write::OrderCanceled>(&r[0])[0];
    assert_eq!((x.user, x.market, x.orderId, x.remaining), (probe, BTC_PERP, 3, CENTI_BTC));
    assert_eq!(node.account(probe).await, (2_000 * USD as i128, 2_000 * USD as i128, 0, 0));

    // ---- accounting with perp cash; the RPC views ----
    // Deposited 100,000 + 100,000 + 5,000 TUSD, nothing withdrawn to the EVM side.
    assert_eq!(node.tusd(L1_WRITE).await, 205_000 * USD);
    node.assert_accounting(&[a, b, probe, p7, p8, p9]).await;
    let v = node.assert_rpc_account(b).await;
    assert_eq!(v["positions"][0]["size"], (10 * CENTI_BTC).to_string());
    node.assert_rpc_account(a).await;
    node.assert_rpc_account(fee).await;
    let v = node.assert_rpc_book(BTC_PERP).await;
    // The posts stay fresh for 30 blocks (the test normally ends within about 15).
    let latest = node.provider.get_block_number().await.unwrap();
    if latest <= posted + 30 {
        assert_eq!(v["oraclePrice"], (60_000 * USD).to_string());
    }
    assert_eq!(v["markPrice"], (60_000 * USD).to_string());
    node.assert_rpc_book(ETH_PERP).await;

    check_liquidation_events(&mut node).await;
}

/// A liquidation with bad debt through the chain: C buys 1 BTC with 3,200 TUSD of collateral,
/// the publishers post 56,000, and the end-of-block step hands the position to the backstop,
/// which absorbs the 830 TUSD C's account is short. `l1_blockEvents` serves the step's events,
/// which no receipt carries.
async fn check_liquidation_events(node: &mut Node) {
    let (c, d) = (dev(2), dev(4));
    let [p7, p8, p9] = PUBLISHERS.map(dev);
    let backstop = dev(BACKSTOP);
    let btc = 100 * CENTI_BTC;
    let post = |price| IL1Write::postOraclePriceCall { market: BTC_PERP, price };
    // Fresh prices at 60,000 whatever the test's length so far (they go stale after 30 blocks).
    node.ok(vec![
        tx(p7, L1_WRITE, &post(60_000 * USD)),
        tx(p8, L1_WRITE, &post(60_000 * USD)),
        tx(p9, L1_WRITE, &post(60_000 * USD)),
    ])
    .await;
    let mut setup = Vec::new();
    for (who, amount, perps) in [(c, 10_000 * USD, 3_200 * USD), (d, 100_000 * USD, 50_000 * USD)] {
        setup.push(tx(who, TUSD, &IERC20::approveCall { spender: L1_WRITE, amount: U256::MAX }));
        setup.push(tx(who, L1_WRITE, &IL1Write::depositCall { token: TUSD, amount: u(amount) }));
        setup.push(tx(who, L1_WRITE, &IL1Write::perpTransferCall { amount: i(perps as i128) }));
    }
    setup.push(tx(d, L1_WRITE, &order(BTC_PERP, false, 60_000 * USD, btc, GTC, 0)));
    setup.push(tx(c, L1_WRITE, &order(BTC_PERP, true, 60_000 * USD, btc, IOC, 0)));
    node.ok(setup).await;
    // Cash 3,200 - 60,000 - 30 (fee); worth 3,170 at 60,000, maintenance 1,500.
    assert_eq!(
        node.account(c).await,
        (3_170 * USD as i128, -(56_830 * USD as i128), 3_000 * USD, 1_500 * USD)
    );
    // No liquidation or bad debt yet (a block on the funding interval would carry `Funding`).
    let before = node.provider.get_block_number().await.unwrap();
    let quiet = node.rpc("l1_blockEvents", serde_json::json!([format!("{before:#x}")])).await;
    assert!(quiet.as_array().unwrap().iter().all(|e| e["event"] == "Funding"), "{quiet}");

    let r = node
        .ok(vec![
            tx(p7, L1_WRITE, &post(56_000 * USD)),
            tx(p8, L1_WRITE, &post(56_000 * USD)),
            tx(p9, L1_WRITE, &post(56_000 * USD)),
        ])
        .await;
    assert!(r.iter().all(|x| {
        x.inner.logs().iter().all(|l| l.topic0() != Some(&IL1Write::Liquidation::SIGNATURE_HASH))
    }));
    // The step of the block where the second post landed liquidated C.
    let first = r[0].block_number.unwrap();
    let last = node.provider.get_block_number().await.unwrap();
    let mut seen = Vec::new();
    for n in first..=last {
        let events = node.rpc("l1_blockEvents", serde_json::json!([format!("{n:#x}")])).await;
        // Funding events of an interval block may come too; C's are the point here.
        for e in events.as_array().unwrap() {
            if e["user"] == format!("{c:#x}") {
                seen.push((n, e.clone()));
            }
        }
    }
    assert_eq!(seen.len(), 2, "one liquidation and one bad debt: {seen:?}");
    let (at, liq) = &seen[0];
    let mut posted: Vec<u64> = r.iter().map(|x| x.block_number.unwrap()).collect();
    posted.sort_unstable();
    assert_eq!(*at, posted[1], "liquidated in the block where a second publisher's post landed");
    assert_eq!(liq["event"], "Liquidation");
    assert_eq!(liq["user"], format!("{c:#x}"));
    assert_eq!(liq["market"], BTC_PERP);
    assert_eq!(liq["size"], btc.to_string());
    assert_eq!(liq["markPrice"], (56_000 * USD).to_string());
    let decoded = IL1Write::Liquidation::decode_raw_log(
        serde_json::from_value::<Vec<B256>>(liq["topics"].clone()).unwrap(),
        &serde_json::from_value::<Bytes>(liq["data"].clone()).unwrap(),
    )
    .unwrap();
    assert_eq!((decoded.user, decoded.size), (c, btc as i128));
    let (at_debt, debt) = &seen[1];
    assert_eq!(at_debt, at);
    assert_eq!(debt["event"], "BadDebt");
    assert_eq!(debt["user"], format!("{c:#x}"));
    assert_eq!(debt["amount"], (830 * USD).to_string());

    assert_eq!(node.account(c).await, (0, 0, 0, 0));
    assert_eq!(node.position(c, BTC_PERP).await, (0, 0, 0, 0));
    assert_eq!(node.position(backstop, BTC_PERP).await.0, btc as i128);
    node.assert_accounting(&[dev(0), dev(1), c, d, node.probe, p7, p8, p9]).await;

    // A block the node does not have; a malformed block parameter.
    let future = format!("{:#x}", last + 1_000);
    let err = node
        .provider
        .raw_request::<_, Value>("l1_blockEvents".into(), serde_json::json!([future]))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("not found"), "{err}");
    let err = node
        .provider
        .raw_request::<_, Value>("l1_blockEvents".into(), serde_json::json!(["yesterday"]))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("nvalid"), "{err}");
}

/// `probe.rawStaticCall` / `probe.rawCall` of `target` (as `eth_call`): (ok, ret, gasUsed).
async fn raw(
    node: &Node,
    is_static: bool,
    target: Address,
    data: Vec<u8>,
    gas: u64,
) -> (bool, Bytes, u64) {
    let (ok, ret, used) = if is_static {
        let r = node
            .view(
                node.probe,
                &IL1Probe::rawStaticCallCall { target, data: data.into(), gas: U256::from(gas) },
            )
            .await;
        (r.ok, r.ret, r.gasUsed)
    } else {
        let r = node
            .view(
                node.probe,
                &IL1Probe::rawCallCall { target, data: data.into(), gas: U256::from(gas) },
            )
            .await;
        (r.ok, r.ret, r.gasUsed)
    };
    (ok, ret, used.to())
}

/// Read precompile gas: exactly 2000 + 65 × (input + output bytes) plus 2,100 per L1 slot read
/// cold and 100 per slot read again (EIP-2929; each call here is its own transaction), measured
/// through the probe against the identity precompile (15 + 3 per word); bad input reverts with a
/// reason and consumes all the gas given; too little gas halts.
async fn check_read_gas(node: &Node, user: Address) {
    // The probe's fixed overhead around STATICCALL: what identity (15 + 3 × words) leaves over.
    let (ok, ret, used) = raw(node, true, IDENTITY, vec![0xab; 64], 100_000).await;
    assert!(ok && ret.len() == 64);
    let overhead = used - (15 + 3 * 2);
    let (ok, _, used) = raw(node, true, IDENTITY, Vec::new(), 100_000).await;
    assert!(ok);
    assert_eq!(used - overhead, 15, "the overhead does not depend on the input");

    // Slot gas where the slots are known (`None`: depends on the book and the oracle, at
    // least one cold slot).
    let one_cold = Some(2_100);
    let reads: [(Address, Vec<u8>, usize, Option<u64>); 10] = [
        (SPOT_BALANCE, (user, ASSET_TUSD).abi_encode_params(), 64, one_cold),
        (PERP_POSITION, (user, BTC_PERP).abi_encode_params(), 128, None),
        (ACCOUNT_VALUE, user.abi_encode(), 128, None),
        (ORACLE_PRICE, BTC_PERP.abi_encode(), 32, None),
        (MARK_PRICE, BTC_PERP.abi_encode(), 32, None),
        (BEST_BID_ASK, SPOT.abi_encode(), 64, None),
        (ASSET_INFO, ASSET_TUSD.abi_encode(), 160, Some(0)),
        (MARKET_INFO, BTC_PERP.abi_encode(), 288, Some(0)),
        (L1_BLOCK_NUMBER, Vec::new(), 32, one_cold),
        (ORDER_INFO, 1u64.abi_encode(), 192, None),
    ];
    let mut measured = Vec::new();
    for (target, input, out_len, slots) in reads {
        let direct = node.eth_call(user, target, input.clone(), 0, None).await.unwrap();
        assert_eq!(direct.len(), out_len, "output length of {target}");
        let (ok, ret, used) = raw(node, true, target, input.clone(), 100_000).await;
        assert!(ok, "read {target} failed through the probe");
        assert_eq!(ret, direct, "{target} answers the probe as it answers eth_call");
        let bytes = 2_000 + 65 * (input.len() + out_len) as u64;
        let slot_gas = used - overhead - bytes;
        match slots {
            Some(want) => assert_eq!(slot_gas, want, "slot gas of {target}"),
            // Cold slots at 2,100 and warm ones at 100: a whole number of hundreds.
            None => {
                assert!(slot_gas >= 2_100 && slot_gas.is_multiple_of(100), "{target}: {slot_gas}")
            }
        }
        measured.push(used);
    }
    // Independently of the identity baseline: spotBalance (64 + 64 bytes) minus l1BlockNumber
    // (0 + 32 bytes), one cold slot each, is 96 bytes at 65 gas.
    assert_eq!(measured[0] - measured[8], 65 * 96);

    // Bad input: a reason, and all of the frame's gas consumed.
    let too_big = {
        let mut w = user.abi_encode();
        w.extend(U256::from(u64::from(u32::MAX) + 1).abi_encode());
        w
    };
    let bad_address = [U256::from(1u8) << 160, U256::from(1u8)].abi_encode_params();
    let spot_sig = "invalid input: expected (address user, uint32 asset)";
    let bad: [(Address, Vec<u8>, &str); 10] = [
        (SPOT_BALANCE, vec![0; 63], spot_sig),
        (SPOT_BALANCE, vec![0; 65], spot_sig),
        (SPOT_BALANCE, too_big, spot_sig),
        (SPOT_BALANCE, bad_address, spot_sig),
        (SPOT_BALANCE, (user, 9u32).abi_encode_params(), "unknown asset 9"),
        (ASSET_INFO, 9u32.abi_encode(), "unknown asset 9"),
        (MARKET_INFO, 7u32.abi_encode(), "unknown market 7"),
        (
            ORDER_INFO,
            (U256::from(u64::MAX) + U256::from(1u8)).abi_encode(),
            "invalid input: expected (uint64 orderId)",
        ),
        (L1_BLOCK_NUMBER, vec![0; 32], "invalid input: expected no input"),
        (ORACLE_PRICE, SPOT.abi_encode(), "market 0 is not a perp market"),
    ];
    for (target, input, want) in bad {
        for gas in [50_000u64, 77_777] {
            let (ok, ret, used) = raw(node, true, target, input.clone(), gas).await;
            assert!(!ok, "{target} accepted {} bytes", input.len());
            assert_eq!(Revert::abi_decode(&ret).unwrap().reason, want, "{target}");
            assert_eq!(used - overhead, gas, "{target}: a bad read consumes all the gas given");
        }
        // From an EOA the reason surfaces in the RPC error.
        assert_eq!(node.reverts(user, target, input.clone(), 0).await, want);
    }
    // The typed probe views bubble the same reason.
    let reason = node
        .reverts(user, node.probe, IL1Probe::spotBalanceCall { user, asset: 9 }.abi_encode(), 0)
        .await;
    assert_eq!(reason, "unknown asset 9");

    // Too little gas for the answer: out of gas (no data), all gas consumed.
    let input = (user, ASSET_TUSD).abi_encode_params();
    let (ok, ret, used) = raw(node, true, SPOT_BALANCE, input.clone(), 12_419).await;
    assert!(!ok && ret.is_empty());
    assert_eq!(used - overhead, 12_419);
    let (ok, _, used) = raw(node, true, SPOT_BALANCE, input, 12_420).await;
    assert!(ok);
    assert_eq!(used - overhead, 12_420);
}

/// The core precompile acts only for L1Write: an EOA, the probe (CALL and STATICCALL) are
/// refused with the reason and all gas consumed.
async fn check_core_guard(node: &mut Node, user: Address) {
    let deposit = IL1Core::depositCall { user, token: Address::ZERO, amount: u(ETH) }.abi_encode();
    let place = IL1Core::placeOrderCall {
        user,
        market: SPOT,
        isBuy: false,
        price: 3_000 * USD,
        size: MILLI_ETH,
        tif: GTC,
        cloid: 0,
    }
    .abi_encode();
    for data in [&deposit, &place, &IL1Core::endOfBlockCall {}.abi_encode()] {
        assert_eq!(node.reverts(user, L1_CORE, data.clone(), 0).await, CORE_REFUSAL);
    }
    assert_eq!(
        node.reverts(user, L1_CORE, vec![1, 2, 3, 4], 0).await,
        "invalid input: unknown L1 core call"
    );

    let (ok, ret, used) = raw(node, false, IDENTITY, vec![0xab; 64], 100_000).await;
    assert!(ok && ret.len() == 64);
    let call_overhead = used - 21;
    for data in [&deposit, &place] {
        let (ok, ret, used) = raw(node, false, L1_CORE, data.clone(), 200_000).await;
        assert!(!ok);
        assert_eq!(Revert::abi_decode(&ret).unwrap().reason, CORE_REFUSAL);
        assert_eq!(used - call_overhead, 200_000, "a refused core call consumes all its gas");
        let (ok, ret, _) = raw(node, true, L1_CORE, data.clone(), 200_000).await;
        assert!(!ok);
        assert_eq!(Revert::abi_decode(&ret).unwrap().reason, CORE_REFUSAL);
    }

    // Mined: an EOA's transaction to the core reverts using all its gas; the probe's CALL to the
    // core fails inside a successful transaction. Neither credits anything.
    let before = node.spot(user, ASSET_ETH).await;
    let probe = node.probe;
    let probe_deposit = IL1Core::depositCall { user: probe, token: Address::ZERO, amount: u(ETH) };
    let r = node
        .run(vec![
            Tx { from: user, to: Some(L1_CORE), data: deposit.clone(), value: U256::ZERO },
            tx(
                user,
                probe,
                &IL1Probe::rawCallCall {
                    target: L1_CORE,
                    data: probe_deposit.abi_encode().into(),
                    gas: u(200_000),
                },
            ),
        ])
        .await;
    assert!(!r[0].status());
    assert_eq!(r[0].gas_used, 2_000_000, "the refused core call used all the transaction's gas");
    assert!(r[1].status());
    assert!(r[0].inner.logs().is_empty() && r[1].inner.logs().is_empty());
    assert_eq!(node.spot(user, ASSET_ETH).await, before);
    assert_eq!(node.spot(probe, ASSET_ETH).await, (0, 0));
}

/// A core action that runs out of gas is an out-of-gas halt (no revert data, all gas of the
/// frame used), not a node error; with the gas it needs it completes. (That it stops where its
/// gas ends, not after the work, is the matching unit test's.)
async fn check_core_gas_limit(node: &Node) {
    let buy = order(SPOT, true, 3_000 * USD, 100 * MILLI_ETH, IOC, 0).abi_encode();
    // `used` counts the probe's own overhead (about 2,300) beside the call's gas.
    let (ok, _, used) = raw(node, false, L1_WRITE, buy.clone(), 1_000_000).await;
    assert!(ok, "the probe's IOC buy of 0.1 ETH fills with ample gas");
    // Enough for the write contract's forwarding, not for the fill the core does.
    for gas in [used - 4_000, used / 2] {
        let (ok, ret, spent) = raw(node, false, L1_WRITE, buy.clone(), gas).await;
        assert!(!ok && ret.is_empty(), "{gas} gas: out of gas, no revert data");
        assert!(spent >= gas, "{gas} gas: the halt used all the gas given ({spent})");
    }
    // Only calls: the book is as it was.
    assert_eq!(node.best(SPOT).await, (0, 3_000 * USD));
}

/// The probe as an L1 account (every write action), read gas, the core guard, two transactions
/// of one sender in one block, and the L1Vault example.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn probe_gas_core_guard_same_block_and_vault() {
    let mut node = Node::start(2).await;
    let (a, depositor, s, keeper, owner) = (dev(0), dev(1), dev(2), dev(3), dev(4));
    let fee = dev(FEE_RECIPIENT);
    let probe = node.probe;
    let vault = owner.create(0);

    // ---- set-up: A funds the L1 and rests an ask; A funds the probe; an oracle price; the vault ----
    let r = node
        .ok(vec![
            tx(a, TUSD, &IERC20::approveCall { spender: L1_WRITE, amount: U256::MAX }),
            tx(a, L1_WRITE, &IL1Write::depositCall { token: TUSD, amount: u(20_000 * USD) }),
            tx_value(a, L1_WRITE, &IL1Write::depositEthCall {}, 5 * ETH),
            tx(a, L1_WRITE, &order(SPOT, false, 3_000 * USD, ETH, GTC, 1)),
            tx(a, TUSD, &IERC20::transferCall { to: probe, amount: u(10_000 * USD) }),
            tx(
                dev(7),
                L1_WRITE,
                &IL1Write::postOraclePriceCall { market: BTC_PERP, price: 60_000 * USD },
            ),
            node.deploy_tx(owner, VAULT_CODE, &ASSET_TUSD.abi_encode()),
        ])
        .await;
    assert_eq!(events::<IL1Write::OrderPlaced>(&r[3])[0].orderId, 1);
    assert_eq!(r[6].contract_address, Some(vault));

    check_read_gas(&node, a).await;
    check_core_guard(&mut node, a).await;

    // ---- every write action through the probe (the probe is the L1 account) ----
    let p = |market, is_buy, price, size, tif, cloid| IL1Probe::placeOrderCall {
        market,
        isBuy: is_buy,
        price,
        size,
        tif,
        cloid,
    };
    let r = node
        .ok(vec![
            tx(keeper, probe, &IL1Probe::depositCall { token: TUSD, amount: u(5_000 * USD) }),
            tx_value(keeper, probe, &IL1Probe::depositEthCall {}, 2 * ETH),
            tx(keeper, probe, &p(SPOT, false, 3_100 * USD, ETH, GTC, 7)),
            tx(keeper, probe, &p(SPOT, true, 2_000 * USD, ETH, POST_ONLY, 8)),
            tx(keeper, probe, &p(SPOT, true, 2_990 * USD, 100 * MILLI_ETH, IOC, 0)),
            tx(keeper, probe, &p(SPOT, true, 0, 500 * MILLI_ETH, MARKET, 0)),
            tx(keeper, probe, &IL1Probe::cancelByCloidCall { market: SPOT, cloid: 8 }),
            tx(keeper, probe, &IL1Probe::cancelOrderCall { market: SPOT, orderId: 2 }),
            tx(
                keeper,
                probe,
                &IL1Probe::withdrawCall { asset: ASSET_TUSD, amount: u(1_000 * USD) },
            ),
            tx(keeper, probe, &IL1Probe::withdrawCall { asset: ASSET_ETH, amount: u(ETH) }),
            tx(keeper, probe, &IL1Probe::perpTransferCall { amount: i(1_000 * USD as i128) }),
            tx(keeper, probe, &IL1Probe::perpTransferCall { amount: i(-(400 * USD as i128)) }),
        ])
        .await;
    let d = &events::<IL1Write::Deposit>(&r[0])[0];
    assert_eq!((d.user, d.asset, d.amount), (probe, ASSET_TUSD, u(5_000 * USD)));
    let d = &events::<IL1Write::Deposit>(&r[1])[0];
    assert_eq!((d.user, d.asset, d.amount), (probe, ASSET_ETH, u(2 * ETH)));
    let placed: Vec<_> = r[2..6]
        .iter()
        .map(|x| {
            let e = &events::<IL1Write::OrderPlaced>(x)[0];
            (e.user, e.orderId, e.cloid, e.isBuy, e.price, e.size, e.resting)
        })
        .collect();
    assert_eq!(
        placed,
        vec![
            (probe, 2, 7, false, 3_100 * USD, ETH, ETH),
            (probe, 3, 8, true, 2_000 * USD, ETH, ETH),
            (probe, 4, 0, true, 2_990 * USD, 100 * MILLI_ETH, 0),
            (probe, 5, 0, true, 3_150 * USD, 500 * MILLI_ETH, 0),
        ]
    );
    assert!(events::<IL1Write::Fill>(&r[4]).is_empty(), "the IOC bid below the ask fills nothing");
    let f = &events::<IL1Write::Fill>(&r[5])[0];
    assert_eq!(
        (f.taker, f.maker, f.takerOrderId, f.makerOrderId, f.takerIsBuy, f.price, f.size, f.fee),
        (probe, a, 5, 1, true, 3_000 * USD, 500 * MILLI_ETH, 750_000)
    );
    let x = &events::<IL1Write::OrderCanceled>(&r[6])[0];
    assert_eq!((x.user, x.orderId, x.remaining), (probe, 3, ETH));
    let x = &events::<IL1Write::OrderCanceled>(&r[7])[0];
    assert_eq!((x.user, x.orderId, x.remaining), (probe, 2, ETH));
    let w = &events::<IL1Write::Withdraw>(&r[9])[0];
    assert_eq!((w.user, w.asset, w.amount), (probe, ASSET_ETH, u(ETH)));
    // 5,000 - 1,500.75 (0.5 ETH at 3,000 + fee) - 1,000 withdrawn - 1,000 + 400 to/from perps.
    assert_eq!(node.spot(probe, ASSET_TUSD).await, (1_899_250_000, 0));
    assert_eq!(node.spot(probe, ASSET_ETH).await, (1_500 * MILLI_ETH, 0));
    assert_eq!(node.account(probe).await, (600 * USD as i128, 600 * USD as i128, 0, 0));
    assert_eq!(node.tusd(probe).await, 6_000 * USD);
    let latest = node.provider.get_block_number().await.unwrap();
    assert_eq!(
        node.eth_balance(probe, latest).await,
        u(ETH),
        "the withdrawn ETH reached the probe"
    );
    assert_eq!(node.spot(a, ASSET_ETH).await, (4_500 * MILLI_ETH, 500 * MILLI_ETH));
    assert_eq!(node.spot(a, ASSET_TUSD).await, (21_500 * USD, 0));
    assert_eq!(node.spot(fee, ASSET_TUSD).await, (750_000, 0));
    assert_eq!(node.best(SPOT).await, (0, 3_000 * USD));
    check_core_gas_limit(&node).await;
    node.reverts_with(
        keeper,
        probe,
        &IL1Probe::cancelOrderCall { market: SPOT, orderId: 2 },
        "unknown order 2",
    )
    .await;
    node.reverts_with(
        keeper,
        probe,
        &IL1Probe::cancelOrderCall { market: SPOT, orderId: 1 },
        "order 1 belongs to another account",
    )
    .await;
    node.assert_rpc_account(probe).await;

    // ---- same-block visibility: a deposit and the order that needs it, one sender, one block ----
    let sell = |cloid| order(SPOT, false, 3_200 * USD, ETH, GTC, cloid);
    let mut same_block = false;
    let mut deposited = 0;
    for attempt in 0..3u128 {
        node.reverts_with(
            s,
            L1_WRITE,
            &sell(100 + attempt),
            "insufficient balance of asset 0: need 1000000000000000000, available 0",
        )
        .await;
        // Send right after a block boundary, so both land in the next block.
        let start = node.provider.get_block_number().await.unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        while node.provider.get_block_number().await.unwrap() == start {
            assert!(Instant::now() < deadline, "no new block within 10 s");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let r = node
            .run(vec![
                tx_value(s, L1_WRITE, &IL1Write::depositEthCall {}, ETH),
                tx(s, L1_WRITE, &sell(100 + attempt)),
            ])
            .await;
        deposited += ETH;
        assert!(r[0].status() && r[1].status(), "deposit then order (attempt {attempt})");
        assert_eq!(events::<IL1Write::OrderPlaced>(&r[1])[0].resting, ETH);
        assert_eq!(node.spot(s, ASSET_ETH).await, (deposited, deposited));
        if r[0].block_number == r[1].block_number {
            assert!(r[0].transaction_index < r[1].transaction_index);
            same_block = true;
            break;
        }
    }
    assert!(same_block, "the two transactions never landed in one block in 3 attempts");

    // ---- the L1Vault example ----
    assert_eq!(node.view(vault, &IL1Vault::ownerCall {}).await, owner);
    assert_eq!(node.view(vault, &IL1Vault::assetCall {}).await, ASSET_TUSD);
    assert_eq!(node.view(vault, &IL1Vault::tokenCall {}).await, TUSD);
    let r = node
        .ok(vec![
            tx(depositor, TUSD, &IERC20::approveCall { spender: vault, amount: u(10_000 * USD) }),
            tx(depositor, vault, &IL1Vault::depositCall { amount: u(10_000 * USD) }),
        ])
        .await;
    let log = r[1].inner.logs().iter().find(|l| l.inner.address == vault).unwrap();
    let e = IL1Vault::Deposited::decode_log_data(&log.inner.data).unwrap();
    assert_eq!((e.user, e.amount, e.shares), (depositor, u(10_000 * USD), u(10_000 * USD)));
    let d = &events::<IL1Write::Deposit>(&r[1])[0];
    assert_eq!((d.user, d.asset, d.amount), (vault, ASSET_TUSD, u(10_000 * USD)));
    assert_eq!(
        node.view(vault, &IL1Vault::sharesOfCall { user: depositor }).await,
        u(10_000 * USD)
    );
    assert_eq!(node.view(vault, &IL1Vault::totalSharesCall {}).await, u(10_000 * USD));
    assert_eq!(node.view(vault, &IL1Vault::totalAssetsCall {}).await, u(10_000 * USD));
    assert_eq!(node.spot(vault, ASSET_TUSD).await, (10_000 * USD, 0));
    assert_eq!(node.tusd(vault).await, 0);
    assert_eq!(node.tusd(depositor).await, GENESIS_TUSD - 10_000 * USD);

    let vault_bid = IL1Vault::placeOrderCall {
        market: SPOT,
        isBuy: true,
        price: 2_500 * USD,
        size: ETH,
        tif: GTC,
        cloid: 9,
    };
    node.reverts_with(depositor, vault, &vault_bid, "L1Vault: not the owner").await;
    let r = node
        .ok(vec![
            tx(owner, vault, &vault_bid),
            tx(owner, vault, &IL1Vault::perpTransferCall { amount: i(1_000 * USD as i128) }),
        ])
        .await;
    let placed = &events::<IL1Write::OrderPlaced>(&r[0])[0];
    assert_eq!((placed.user, placed.cloid, placed.resting), (vault, 9, ETH));
    let info = node.order_info(placed.orderId).await;
    assert_eq!(
        (info.owner, info.is_buy, info.price, info.remaining),
        (vault, true, 2_500 * USD, ETH)
    );
    // The held bid and the perp cash still count: 9,000 spot (2,500 held) + 1,000 perp.
    assert_eq!(node.spot(vault, ASSET_TUSD).await, (9_000 * USD, 2_500 * USD));
    assert_eq!(node.view(vault, &IL1Vault::totalAssetsCall {}).await, u(10_000 * USD));

    let r = node
        .ok(vec![tx(depositor, vault, &IL1Vault::withdrawCall { shares: u(4_000 * USD) })])
        .await;
    let log = r[0].inner.logs().iter().find(|l| l.inner.address == vault).unwrap();
    let e = IL1Vault::Withdrawn::decode_log_data(&log.inner.data).unwrap();
    assert_eq!((e.user, e.shares, e.amount), (depositor, u(4_000 * USD), u(4_000 * USD)));
    assert_eq!(node.tusd(depositor).await, GENESIS_TUSD - 6_000 * USD);
    assert_eq!(node.tusd(vault).await, 0);
    assert_eq!(node.view(vault, &IL1Vault::sharesOfCall { user: depositor }).await, u(6_000 * USD));
    assert_eq!(node.view(vault, &IL1Vault::totalAssetsCall {}).await, u(6_000 * USD));
    assert_eq!(node.spot(vault, ASSET_TUSD).await, (5_000 * USD, 2_500 * USD));
    // The rest needs free spot balance: 2,500 of the 5,000 are held by the bid.
    node.reverts_with(
        depositor,
        vault,
        &IL1Vault::withdrawCall { shares: u(6_000 * USD) },
        "insufficient balance of asset 1: need 6000000000, available 2500000000",
    )
    .await;
    node.assert_rpc_account(vault).await;
    let r = node
        .ok(vec![tx(owner, vault, &IL1Vault::cancelByCloidCall { market: SPOT, cloid: 9 })])
        .await;
    assert_eq!(events::<IL1Write::OrderCanceled>(&r[0])[0].remaining, ETH);
    assert_eq!(node.spot(vault, ASSET_TUSD).await, (5_000 * USD, 0));

    // ---- accounting: 20,000 + 5,000 + 10,000 in, 1,000 + 4,000 out ----
    assert_eq!(node.tusd(L1_WRITE).await, 30_000 * USD);
    let latest = node.provider.get_block_number().await.unwrap();
    assert_eq!(node.eth_balance(L1_WRITE, latest).await, u(5 * ETH + 2 * ETH - ETH + deposited));
    node.assert_accounting(&[a, depositor, s, keeper, owner, probe, vault]).await;
    node.assert_rpc_account(a).await;
    node.assert_rpc_account(s).await;
    node.assert_rpc_book(SPOT).await;
}

/// A hostile simulation: `eth_call` of the protocol-only end-of-block step as the system
/// address, with a state override setting the open set's count to 2^50, once aborted the node
/// (`memory allocation of 22517998136852480 bytes failed`). Every simulation path now answers
/// with an error, with or without the override, and the node keeps serving and making blocks.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn simulating_the_end_of_block_step_is_refused_and_the_node_survives() {
    let node = Node::start(3).await;
    let system = address!("0xfffffffffffffffffffffffffffffffffffffffe");
    let data = Bytes::from(IL1Core::endOfBlockCall {}.abi_encode());
    let call = serde_json::json!({ "from": system, "to": L1_CORE, "data": data });
    // The open set's count slot: namespace 0x0a, index 0, field 0.
    let mut count_slot = [0u8; 32];
    count_slot[0] = 0x0a;
    let overrides = serde_json::json!({ L1_WRITE.to_string(): {
        "stateDiff": { B256::from(count_slot).to_string(): B256::from(U256::from(1u64) << 50) }
    }});
    let before = node.provider.get_block_number().await.unwrap();
    let attempts = [
        ("eth_call", serde_json::json!([call, "latest", overrides])),
        ("eth_call", serde_json::json!([call, "latest"])),
        ("eth_estimateGas", serde_json::json!([call, "latest", overrides])),
        ("eth_createAccessList", serde_json::json!([call, "latest"])),
        ("debug_traceCall", serde_json::json!([call, "latest", { "stateOverrides": overrides }])),
    ];
    for (method, params) in attempts {
        let err = node
            .provider
            .raw_request::<_, Value>(method.into(), params)
            .await
            .expect_err(&format!("{method} of endOfBlock as the system address succeeded"));
        let resp =
            err.as_error_resp().unwrap_or_else(|| panic!("{method}: no error response: {err}"));
        assert!(resp.message.contains("protocol-only"), "{method}: {}", resp.message);
    }
    // Still serving, still making blocks, and still simulating user actions.
    let deadline = Instant::now() + Duration::from_secs(10);
    while node.provider.get_block_number().await.unwrap() <= before {
        assert!(Instant::now() < deadline, "no block after the attack");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let gas = node
        .provider
        .estimate_gas(
            TxRequest::default()
                .with_from(dev(0))
                .with_to(L1_WRITE)
                .with_input(IL1Write::depositEthCall {}.abi_encode())
                .with_value(u(ETH)),
        )
        .await
        .unwrap();
    assert!(gas > 26_000, "a deposit estimated at {gas} gas");
}
