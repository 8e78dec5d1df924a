//! The L1 exchange's genesis configuration: `config.tandem.l1` in the genesis file.
//!
//! ```json
//! "l1": {
//!   "assets": [ { "symbol": "ETH", "decimals": 18 },
//!               { "symbol": "USD", "decimals": 6, "token": "0x…" } ],
//!   "markets": [
//!     { "kind": "spot", "symbol": "ETH/USD", "base": 0, "quote": 1,
//!       "tickSize": "10000", "lotSize": "1000000000000000", "takerFeeBps": 5 },
//!     { "kind": "perp", "symbol": "BTC-PERP", "baseDecimals": 8, "tickSize": "1000000",
//!       "lotSize": "10000", "takerFeeBps": 5, "maxLeverage": 20, "maintenanceMarginBps": 250 } ],
//!   "collateral": 1,
//!   "oraclePublishers": [ "0x…" ],
//!   "oracleStalenessBlocks": 30, "fundingIntervalBlocks": 60, "markBandBps": 100,
//!   "endOfBlockAccounts": 1024,
//!   "feeRecipient": "0x…", "backstop": "0x…"
//! }
//! ```
//!
//! A market may set `minNotional` (quote units, default 10 whole units of the quote asset): the
//! smallest notional of an order, and of a perp position an order leaves. `endOfBlockAccounts`
//! (default 1,024, from 4 to 100,000) bounds the open perp accounts the end-of-block step
//! examines per block. Both fields are optional, so genesis files written before them load.
//!
//! An asset without `token` is native ETH (at most one). Amounts are integers in the asset's
//! smallest unit, as JSON numbers or decimal strings. A price is in quote units per whole base
//! unit (`10^base decimals` size units); `tickSize × lotSize` must be a multiple of that scale so
//! every notional is an exact integer.

use alloy_primitives::Address;
use serde::{Deserialize, Deserializer, Serialize};

use super::error::{L1Error, L1Result};

/// The largest price in ticks an order may carry: a resting order keeps its price as 56 bits of
/// ticks beside its owner and market, so that the order fits three storage slots.
pub const MAX_PRICE_TICKS: u128 = (1 << 56) - 1;

/// A problem with `config.tandem.l1`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("config.tandem.l1{path}: {msg}")]
pub struct ConfigError {
    /// Where (e.g. `.markets[1].tickSize`).
    pub path: String,
    /// What is wrong.
    pub msg: String,
}

/// A token the exchange holds balances of.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Asset {
    /// Display symbol.
    pub symbol: String,
    /// Decimals of the smallest unit.
    pub decimals: u8,
    /// The ERC-20 contract on the EVM side; `None` for native ETH.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token: Option<Address>,
}

/// Spot or perpetual, with what only that kind has.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum MarketKind {
    /// Base against quote asset.
    Spot,
    /// Perpetual future settled in the collateral asset.
    Perp,
}

/// One order book.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Market {
    /// Spot or perp.
    pub kind: MarketKind,
    /// Display symbol.
    pub symbol: String,
    /// Spot: base asset index.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub base: Option<u32>,
    /// Spot: quote asset index.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quote: Option<u32>,
    /// Perp: decimals of the size unit (spot uses the base asset's decimals).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub base_decimals: Option<u8>,
    /// Price increment.
    #[serde(deserialize_with = "amount")]
    pub tick_size: u128,
    /// Size increment.
    #[serde(deserialize_with = "amount")]
    pub lot_size: u128,
    /// Taker fee in basis points of the notional, paid in the quote (collateral) asset.
    #[serde(default)]
    pub taker_fee_bps: u32,
    /// Perp: maximum leverage (initial margin = notional / maxLeverage).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_leverage: Option<u32>,
    /// Perp: maintenance margin in basis points of the notional.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub maintenance_margin_bps: Option<u32>,
    /// Smallest notional, in quote units, of an order and of a perp position it leaves (default:
    /// [`DEFAULT_MIN_NOTIONAL_UNITS`] whole units of the quote asset).
    #[serde(
        default,
        deserialize_with = "optional_amount",
        skip_serializing_if = "Option::is_none"
    )]
    pub min_notional: Option<u128>,
}

/// `config.tandem.l1`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct L1Config {
    /// Registered assets; the index is the asset id.
    pub assets: Vec<Asset>,
    /// Markets; the index is the market id.
    pub markets: Vec<Market>,
    /// Asset index perp accounts are margined in (required when there are perp markets).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub collateral: Option<u32>,
    /// Addresses allowed to post oracle prices.
    #[serde(default)]
    pub oracle_publishers: Vec<Address>,
    /// A publisher's price older than this many blocks is ignored.
    #[serde(default = "default_staleness")]
    pub oracle_staleness_blocks: u64,
    /// Funding is paid every this many blocks.
    #[serde(default = "default_funding_interval")]
    pub funding_interval_blocks: u64,
    /// Cap on one interval's funding rate, in parts per million of the oracle price.
    #[serde(default = "default_max_funding")]
    pub max_funding_rate_ppm: u32,
    /// How far past the best opposite price a market order may fill, in basis points.
    #[serde(default = "default_slippage")]
    pub market_slippage_bps: u32,
    /// How far the mark price may sit from the oracle price, in basis points: the book moves the
    /// mark only within this band, so a few thin orders cannot set it.
    #[serde(default = "default_mark_band")]
    pub mark_band_bps: u32,
    /// Receives trading fees and funding rounding.
    pub fee_recipient: Address,
    /// Takes over liquidated positions and absorbs bad debt.
    pub backstop: Address,
    /// Open perp accounts the end-of-block step examines per block, at most: the watched
    /// (under-margined) ones first, then the sweep's next ones (see [`super::clearinghouse`]).
    #[serde(default = "default_end_of_block_accounts")]
    pub end_of_block_accounts: u32,
}

/// Whole units of the quote asset a market's minimum notional defaults to (10 TUSD on the devnet).
pub const DEFAULT_MIN_NOTIONAL_UNITS: u128 = 10;

/// The smallest per-block account budget: a quarter of it watches, the rest sweeps.
pub const MIN_END_OF_BLOCK_ACCOUNTS: u32 = 4;
/// The largest per-block account budget (a block's end-of-block work must stay small).
pub const MAX_END_OF_BLOCK_ACCOUNTS: u32 = 100_000;

const fn default_staleness() -> u64 {
    30
}
const fn default_funding_interval() -> u64 {
    60
}
const fn default_max_funding() -> u32 {
    5_000
}
const fn default_slippage() -> u32 {
    500
}
const fn default_mark_band() -> u32 {
    100
}
const fn default_end_of_block_accounts() -> u32 {
    1_024
}

/// An optional [`amount`].
fn optional_amount<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u128>, D::Error> {
    amount(d).map(Some)
}

/// An integer given as a JSON number or a decimal string.
fn amount<'de, D: Deserializer<'de>>(d: D) -> Result<u128, D::Error> {
    struct Amount;
    impl serde::de::Visitor<'_> for Amount {
        type Value = u128;
        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("a non-negative integer or a decimal string")
        }
        fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<u128, E> {
            Ok(u128::from(v))
        }
        fn visit_u128<E: serde::de::Error>(self, v: u128) -> Result<u128, E> {
            Ok(v)
        }
        fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<u128, E> {
            v.parse().map_err(E::custom)
        }
    }
    d.deserialize_any(Amount)
}

impl L1Config {
    /// Parses and validates `config.tandem.l1`.
    pub fn from_value(value: &serde_json::Value) -> Result<Self, ConfigError> {
        let config: Self = serde_path_to_error::deserialize(value.clone()).map_err(|e| {
            let path = e.path().to_string();
            ConfigError {
                path: if path == "." { String::new() } else { format!(".{path}") },
                msg: e.inner().to_string(),
            }
        })?;
        config.validate()?;
        Ok(config)
    }

    fn validate(&self) -> Result<(), ConfigError> {
        let err = |path: String, msg: &str| ConfigError { path, msg: msg.into() };
        if self.assets.is_empty() || self.assets.len() > u16::MAX as usize {
            return Err(err(".assets".into(), "needs 1 to 65535 assets"));
        }
        if self.markets.len() > 256 {
            return Err(err(".markets".into(), "at most 256 markets"));
        }
        let mut natives = 0;
        for (i, asset) in self.assets.iter().enumerate() {
            if asset.decimals > 30 {
                return Err(err(format!(".assets[{i}].decimals"), "at most 30"));
            }
            match asset.token {
                None => natives += 1,
                Some(token) if self.assets[..i].iter().any(|a| a.token == Some(token)) => {
                    return Err(err(format!(".assets[{i}].token"), "token listed twice"));
                }
                Some(_) => {}
            }
        }
        if natives > 1 {
            return Err(err(".assets".into(), "at most one native (token-less) asset"));
        }
        let has_perps = self.markets.iter().any(|m| m.kind == MarketKind::Perp);
        if has_perps {
            match self.collateral {
                Some(c) if (c as usize) < self.assets.len() => {}
                _ => return Err(err(".collateral".into(), "perp markets need a collateral asset")),
            }
            if self.oracle_publishers.is_empty() {
                return Err(err(".oraclePublishers".into(), "perp markets need publishers"));
            }
        }
        if self.oracle_staleness_blocks == 0 || self.funding_interval_blocks == 0 {
            return Err(err(String::new(), "block intervals must be at least 1"));
        }
        if self.market_slippage_bps >= 10_000
            || self.mark_band_bps >= 10_000
            || self.max_funding_rate_ppm > 1_000_000
        {
            return Err(err(
                String::new(),
                "slippage and mark band below 10000 bps, funding cap at most 1e6 ppm",
            ));
        }
        if !(MIN_END_OF_BLOCK_ACCOUNTS..=MAX_END_OF_BLOCK_ACCOUNTS)
            .contains(&self.end_of_block_accounts)
        {
            return Err(err(".endOfBlockAccounts".into(), "between 4 and 100000"));
        }
        for (i, p) in self.oracle_publishers.iter().enumerate() {
            // A publisher listed twice would count twice in the median.
            if self.oracle_publishers[..i].contains(p) {
                return Err(err(format!(".oraclePublishers[{i}]"), "publisher listed twice"));
            }
        }
        for (i, m) in self.markets.iter().enumerate() {
            let at = |field: &str| format!(".markets[{i}].{field}");
            if m.tick_size == 0 || m.lot_size == 0 {
                return Err(err(at("tickSize"), "tick and lot sizes must be positive"));
            }
            if m.taker_fee_bps > 1_000 {
                return Err(err(at("takerFeeBps"), "at most 1000 (10%)"));
            }
            match m.kind {
                MarketKind::Spot => {
                    let (Some(base), Some(quote)) = (m.base, m.quote) else {
                        return Err(err(at("base"), "spot markets need base and quote"));
                    };
                    if base == quote
                        || base as usize >= self.assets.len()
                        || quote as usize >= self.assets.len()
                    {
                        return Err(err(at("base"), "base and quote: two distinct assets"));
                    }
                    if m.base_decimals.is_some()
                        || m.max_leverage.is_some()
                        || m.maintenance_margin_bps.is_some()
                    {
                        return Err(err(at("kind"), "perp fields on a spot market"));
                    }
                }
                MarketKind::Perp => {
                    if m.base.is_some() || m.quote.is_some() {
                        return Err(err(at("base"), "perp markets settle in the collateral"));
                    }
                    let (Some(dec), Some(lev), Some(mm)) =
                        (m.base_decimals, m.max_leverage, m.maintenance_margin_bps)
                    else {
                        return Err(err(
                            at("kind"),
                            "perp markets need baseDecimals, maxLeverage and maintenanceMarginBps",
                        ));
                    };
                    if dec > 30 {
                        return Err(err(at("baseDecimals"), "at most 30"));
                    }
                    if lev == 0 || lev > 200 {
                        return Err(err(at("maxLeverage"), "between 1 and 200"));
                    }
                    // Maintenance must sit below the initial margin or every open is liquidatable.
                    if mm == 0 || u64::from(mm) * u64::from(lev) >= 10_000 {
                        return Err(err(
                            at("maintenanceMarginBps"),
                            "positive and below the initial margin (10000 / maxLeverage)",
                        ));
                    }
                }
            }
            if m.min_notional == Some(0) {
                return Err(err(at("minNotional"), "must be positive"));
            }
            let scale = self.scale_of(m);
            if m.tick_size.checked_mul(m.lot_size).is_none_or(|p| !p.is_multiple_of(scale)) {
                return Err(err(
                    at("tickSize"),
                    "tickSize × lotSize must be a multiple of 10^base decimals",
                ));
            }
        }
        Ok(())
    }

    fn scale_of(&self, market: &Market) -> u128 {
        let decimals = match market.kind {
            MarketKind::Spot => {
                market.base.and_then(|b| self.assets.get(b as usize)).map_or(0, |a| a.decimals)
            }
            MarketKind::Perp => market.base_decimals.unwrap_or(0),
        };
        10u128.pow(u32::from(decimals))
    }

    /// The asset with index `index`.
    pub fn asset(&self, index: u32) -> L1Result<&Asset> {
        self.assets.get(index as usize).ok_or(L1Error::UnknownAsset(index))
    }

    /// The asset index of ERC-20 `token`, or of native ETH for `Address::ZERO`.
    pub fn asset_of_token(&self, token: Address) -> L1Result<u32> {
        let want = (!token.is_zero()).then_some(token);
        self.assets
            .iter()
            .position(|a| a.token == want)
            .map(|i| i as u32)
            .ok_or(L1Error::UnknownToken(token))
    }

    /// The market with index `index`.
    pub fn market(&self, index: u32) -> L1Result<&Market> {
        self.markets.get(index as usize).ok_or(L1Error::UnknownMarket(index))
    }

    /// The market with index `index`, if it is a spot market.
    pub fn spot_market(&self, index: u32) -> L1Result<&Market> {
        let m = self.market(index)?;
        if m.kind == MarketKind::Spot { Ok(m) } else { Err(L1Error::NotSpotMarket(index)) }
    }

    /// The market with index `index`, if it is a perp market.
    pub fn perp_market(&self, index: u32) -> L1Result<&Market> {
        let m = self.market(index)?;
        if m.kind == MarketKind::Perp { Ok(m) } else { Err(L1Error::NotPerpMarket(index)) }
    }

    /// Indices of the perp markets.
    pub fn perp_markets(&self) -> impl Iterator<Item = u32> + '_ {
        self.markets
            .iter()
            .enumerate()
            .filter(|(_, m)| m.kind == MarketKind::Perp)
            .map(|(i, _)| i as u32)
    }

    /// Size units per whole base unit: prices are quoted per this many size units.
    pub fn price_scale(&self, market: u32) -> L1Result<u128> {
        Ok(self.scale_of(self.market(market)?))
    }

    /// The asset fees and notionals of `market` are paid in: spot quote or perp collateral.
    pub fn quote_asset(&self, market: u32) -> L1Result<u32> {
        let m = self.market(market)?;
        match m.kind {
            MarketKind::Spot => m.quote.ok_or(L1Error::NotSpotMarket(market)),
            MarketKind::Perp => self.collateral.ok_or(L1Error::NotPerpMarket(market)),
        }
    }

    /// `price × size / scale` in quote units; exact for tick- and lot-aligned inputs.
    pub fn notional(&self, market: u32, price: u128, size: u128) -> L1Result<u128> {
        let scale = self.price_scale(market)?;
        let product = price.checked_mul(size).ok_or(L1Error::Overflow)?;
        Ok(product / scale)
    }

    /// The smallest notional of an order in `market`, and of a perp position it leaves, in quote
    /// units: the market's `minNotional`, or [`DEFAULT_MIN_NOTIONAL_UNITS`] whole quote units.
    pub fn min_notional(&self, market: u32) -> L1Result<u128> {
        let m = self.market(market)?;
        if let Some(min) = m.min_notional {
            return Ok(min);
        }
        let decimals = self.asset(self.quote_asset(market)?)?.decimals;
        Ok(DEFAULT_MIN_NOTIONAL_UNITS.saturating_mul(10u128.pow(u32::from(decimals))))
    }

    /// The taker fee on `notional` in `market` (rounded down).
    pub fn taker_fee(&self, market: u32, notional: u128) -> L1Result<u128> {
        let bps = u128::from(self.market(market)?.taker_fee_bps);
        Ok(notional.checked_mul(bps).ok_or(L1Error::Overflow)? / 10_000)
    }

    /// Whether `address` may post oracle prices, and its publisher index.
    pub fn publisher_index(&self, address: Address) -> Option<u16> {
        self.oracle_publishers.iter().position(|p| *p == address).map(|i| i as u16)
    }

    /// Checks that `price` and `size` fit the market's tick and lot sizes, and the price the
    /// book's range ([`MAX_PRICE_TICKS`]).
    pub fn check_price_size(&self, market: u32, price: u128, size: u128) -> L1Result<()> {
        let m = self.market(market)?;
        if price == 0 || !price.is_multiple_of(m.tick_size) {
            return Err(L1Error::InvalidPrice { price, tick: m.tick_size });
        }
        if price / m.tick_size > MAX_PRICE_TICKS {
            let max = MAX_PRICE_TICKS.saturating_mul(m.tick_size);
            return Err(L1Error::PriceTooHigh { price, max });
        }
        if size == 0 || !size.is_multiple_of(m.lot_size) {
            return Err(L1Error::InvalidSize { size, lot: m.lot_size });
        }
        Ok(())
    }
}

/// A small configuration for unit tests: ETH (native, 18), USD (ERC-20, 6), an ETH/USD spot
/// market (market 0) and a BTC perp margined in USD (market 1), three publishers; a minimum
/// notional of one quote unit, so tests of other rules may trade single lots.
#[cfg(test)]
pub fn test_config() -> L1Config {
    let value = serde_json::json!({
        "assets": [
            { "symbol": "ETH", "decimals": 18 },
            { "symbol": "USD", "decimals": 6, "token": "0x00000000000000000000000000000000000000aa" }
        ],
        "markets": [
            { "kind": "spot", "symbol": "ETH/USD", "base": 0, "quote": 1,
              "tickSize": "10000", "lotSize": "1000000000000000", "takerFeeBps": 5,
              "minNotional": "1" },
            { "kind": "perp", "symbol": "BTC-PERP", "baseDecimals": 8, "tickSize": "1000000",
              "lotSize": "100000", "takerFeeBps": 5, "maxLeverage": 20, "maintenanceMarginBps": 250,
              "minNotional": "1" }
        ],
        "collateral": 1,
        "oraclePublishers": [
            "0x00000000000000000000000000000000000000b1",
            "0x00000000000000000000000000000000000000b2",
            "0x00000000000000000000000000000000000000b3"
        ],
        "oracleStalenessBlocks": 10,
        "fundingIntervalBlocks": 5,
        "feeRecipient": "0x00000000000000000000000000000000000000fe",
        "backstop": "0x00000000000000000000000000000000000000bb"
    });
    match L1Config::from_value(&value) {
        Ok(config) => config,
        Err(e) => panic!("test config: {e}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_config_parses_and_answers() {
        let c = test_config();
        assert_eq!(c.asset_of_token(Address::ZERO).unwrap(), 0);
        assert_eq!(c.asset_of_token(Address::with_last_byte(0xaa)).unwrap(), 1);
        assert!(matches!(
            c.asset_of_token(Address::with_last_byte(1)),
            Err(L1Error::UnknownToken(_))
        ));
        assert_eq!(c.price_scale(0).unwrap(), 10u128.pow(18));
        assert_eq!(c.price_scale(1).unwrap(), 10u128.pow(8));
        // 0.001 ETH at 3000.00 USD = 3.000000 USD.
        assert_eq!(c.notional(0, 3_000_000_000, 10u128.pow(15)).unwrap(), 3_000_000);
        assert_eq!(c.quote_asset(1).unwrap(), 1);
        assert_eq!(c.perp_markets().collect::<Vec<_>>(), vec![1]);
        assert!(c.check_price_size(0, 10_001, 10u128.pow(15)).is_err());
        assert!(c.check_price_size(0, 10_000, 10u128.pow(15) + 1).is_err());
        assert!(c.check_price_size(0, 10_000, 10u128.pow(15)).is_ok());
    }

    #[test]
    fn bounds_default_when_absent_so_older_genesis_files_load() {
        let mut v = serde_json::to_value(test_config()).unwrap();
        v.as_object_mut().unwrap().remove("endOfBlockAccounts");
        for m in v["markets"].as_array_mut().unwrap() {
            m.as_object_mut().unwrap().remove("minNotional");
        }
        let c = L1Config::from_value(&v).unwrap();
        assert_eq!(c.end_of_block_accounts, 1_024);
        // 10 whole units of the quote asset (USD, 6 decimals) for both markets.
        assert_eq!(
            (c.min_notional(0).unwrap(), c.min_notional(1).unwrap()),
            (10_000_000, 10_000_000)
        );
        assert_eq!(test_config().min_notional(1).unwrap(), 1);

        for (field, value) in [("endOfBlockAccounts", 3), ("endOfBlockAccounts", 100_001)] {
            let mut v = serde_json::to_value(test_config()).unwrap();
            v[field] = serde_json::json!(value);
            assert_eq!(L1Config::from_value(&v).unwrap_err().path, ".endOfBlockAccounts");
        }
        let mut v = serde_json::to_value(test_config()).unwrap();
        v["markets"][1]["minNotional"] = serde_json::json!("0");
        assert_eq!(L1Config::from_value(&v).unwrap_err().path, ".markets[1].minNotional");
    }

    #[test]
    fn bad_configs_name_the_field() {
        let mut v = serde_json::to_value(test_config()).unwrap();
        v["markets"][0]["tickSize"] = serde_json::json!("1");
        let e = L1Config::from_value(&v).unwrap_err();
        assert_eq!(e.path, ".markets[0].tickSize", "{e}");

        let mut v = serde_json::to_value(test_config()).unwrap();
        v["markets"][1]["maintenanceMarginBps"] = serde_json::json!(600);
        let e = L1Config::from_value(&v).unwrap_err();
        assert_eq!(e.path, ".markets[1].maintenanceMarginBps", "{e}");

        let mut v = serde_json::to_value(test_config()).unwrap();
        v["oraclePublishers"] = serde_json::json!([]);
        assert!(L1Config::from_value(&v).is_err());

        let mut v = serde_json::to_value(test_config()).unwrap();
        v["oraclePublishers"][2] = v["oraclePublishers"][0].clone();
        let e = L1Config::from_value(&v).unwrap_err();
        assert_eq!(e.path, ".oraclePublishers[2]", "{e}");

        let mut v = serde_json::to_value(test_config()).unwrap();
        v["markBandBps"] = serde_json::json!(10_000);
        assert!(L1Config::from_value(&v).is_err());

        let mut v = serde_json::to_value(test_config()).unwrap();
        v["bogus"] = serde_json::json!(1);
        let e = L1Config::from_value(&v).unwrap_err();
        assert!(e.msg.contains("bogus"), "{e}");
    }
}
