//! `eth_getLogs`, polling filters (`eth_newFilter` and friends) and WS subscriptions
//! (`eth_subscribe` to `newHeads`, `logs`, `newPendingTransactions`).
//!
//! Subscriptions are bounded per WebSocket connection (`--rpc.max-subscriptions-per-connection`,
//! the server refuses more); notifications are sent as they are made, each with a send time-out:
//! a client that does not read loses its subscriptions instead of holding them and their chain
//! events (and its connection, which no longer answers pings, is closed by the server). Polling
//! filters have no connection (HTTP), so, as in geth and reth, they are bounded globally and by
//! their time-out.
//!
//! Polling filters remember the last block they reported and are removed when not polled for
//! [`super::RpcConfig::filter_timeout`]. Pending-transaction filters hold a receiver of the pool's
//! announcements; one that falls behind by more than the channel holds loses the oldest hashes.
//! Subscriptions follow the engine's [`CanonicalChange`]s: on a re-org, the logs of blocks that
//! left the canonical chain are sent again with `removed: true` (newest block first, as geth
//! does), then those of the blocks that joined it.

use std::{
    collections::HashMap,
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::Instant,
};

use alloy_eips::BlockNumberOrTag;
use alloy_primitives::{B256, TxHash, U128};
use alloy_rpc_types_eth::{Filter, FilterBlockOption, FilterChanges, Log};
use jsonrpsee::{
    PendingSubscriptionSink, RpcModule, SubscriptionMessage,
    types::{ErrorObjectOwned, Params},
};
use parking_lot::Mutex;
use tokio::sync::broadcast::{self, error::RecvError};

use crate::fork_choice::CanonicalChange;

use super::{
    RpcContext, RpcError, RpcResult,
    chain::BlockData,
    convert::{block_logs, rpc_header},
    heavy::{Deadline, run_heavy},
};

/// What a polling filter reports.
#[derive(Debug)]
enum FilterKind {
    /// Hashes of new canonical blocks.
    Blocks,
    /// Logs of new canonical blocks matching the filter.
    Logs(Box<Filter>),
    /// Hashes of transactions accepted into the pool.
    PendingTransactions(broadcast::Receiver<TxHash>),
}

#[derive(Debug)]
struct InstalledFilter {
    kind: FilterKind,
    /// The last block reported (blocks and logs filters).
    last_block: u64,
    last_poll: Instant,
}

/// The installed polling filters.
#[derive(Debug, Default)]
pub struct FilterStore {
    filters: Mutex<HashMap<u128, InstalledFilter>>,
    next_id: AtomicU64,
}

impl FilterStore {
    /// Number of installed filters.
    pub fn len(&self) -> usize {
        self.filters.lock().len()
    }

    /// Whether no filter is installed.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl RpcContext {
    /// `eth_getLogs`; the block walk stops at `deadline`.
    pub(crate) fn logs(&self, filter: &Filter, deadline: &Deadline) -> RpcResult<Vec<Log>> {
        let view = self.snapshot();
        let (from, to) = match filter.block_option {
            FilterBlockOption::AtBlockHash(hash) => {
                let number = self.number_of_hash(&view, hash)?.ok_or(RpcError::HeaderNotFound)?;
                (number, number)
            }
            FilterBlockOption::Range { from_block, to_block } => {
                let resolve = |tag: Option<BlockNumberOrTag>| -> RpcResult<u64> {
                    match tag.unwrap_or_default() {
                        BlockNumberOrTag::Number(n) => Ok(n),
                        other => Ok(self.resolve_number(&view, other)?.unwrap_or(view.head.number)),
                    }
                };
                let (from, to) = (resolve(from_block)?, resolve(to_block)?);
                if from > to {
                    return Err(RpcError::InvalidParams("invalid block range params".into()));
                }
                (from, to.min(view.head.number))
            }
        };
        if from > to {
            return Ok(Vec::new());
        }
        let max = self.config.max_logs_range;
        if to - from >= max {
            return Err(RpcError::LimitExceeded(format!("query exceeds max block range {max}")));
        }
        let mut out = Vec::new();
        for number in from..=to {
            deadline.check()?;
            let Some((header, _)) = self.header_by_number(&view, number)? else { break };
            if !filter.matches_bloom(header.logs_bloom) {
                continue;
            }
            let Some(block) = self.block_by_number(&view, number)? else { break };
            self.append_matching_logs(&view, &block, filter, &mut out)?;
            if out.len() > self.config.max_logs {
                return Err(RpcError::LimitExceeded(format!(
                    "query exceeds max results {}",
                    self.config.max_logs
                )));
            }
        }
        Ok(out)
    }

    fn append_matching_logs(
        &self,
        view: &crate::fork_choice::ChainView,
        block: &BlockData,
        filter: &Filter,
        out: &mut Vec<Log>,
    ) -> RpcResult<()> {
        let receipts = self.receipts_by_number(view, block.number())?.unwrap_or_default();
        out.extend(
            block_logs(block, &receipts).into_iter().filter(|log| filter.matches(&log.inner)),
        );
        Ok(())
    }

    fn install_filter(&self, kind: FilterKind) -> RpcResult<U128> {
        let mut filters = self.filters.filters.lock();
        let timeout = self.config.filter_timeout;
        filters.retain(|_, f| f.last_poll.elapsed() < timeout);
        if filters.len() >= self.config.max_filters {
            return Err(RpcError::LimitExceeded(format!(
                "too many filters installed (limit {})",
                self.config.max_filters
            )));
        }
        let counter = self.filters.next_id.fetch_add(1, Ordering::Relaxed);
        // Ids are not guessable from one another: mix the counter with the time of install.
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        let id = (u128::from(counter) << 64) ^ (nanos & u128::from(u64::MAX)) ^ 0x5eed;
        let last_block = self.snapshot().head.number;
        filters.insert(id, InstalledFilter { kind, last_block, last_poll: Instant::now() });
        Ok(U128::from(id))
    }

    fn filter_changes(&self, id: U128, deadline: &Deadline) -> RpcResult<FilterChanges> {
        let view = self.snapshot();
        let id = id.to::<u128>();
        // Take what is needed out of the map, then read the chain without holding the lock.
        let (from, filter) = {
            let mut filters = self.filters.filters.lock();
            let installed = filters.get_mut(&id).ok_or(RpcError::FilterNotFound)?;
            installed.last_poll = Instant::now();
            let from = installed.last_block + 1;
            match &mut installed.kind {
                FilterKind::PendingTransactions(rx) => {
                    let mut hashes = Vec::new();
                    loop {
                        match rx.try_recv() {
                            Ok(hash) => hashes.push(hash),
                            Err(broadcast::error::TryRecvError::Lagged(_)) => continue,
                            Err(_) => break,
                        }
                    }
                    return Ok(FilterChanges::Hashes(hashes));
                }
                FilterKind::Blocks => {
                    installed.last_block = view.head.number.max(installed.last_block);
                    (from, None)
                }
                FilterKind::Logs(filter) => {
                    installed.last_block = view.head.number.max(installed.last_block);
                    (from, Some(filter.clone()))
                }
            }
        };
        let to = view.head.number;
        match filter {
            None => {
                let mut hashes = Vec::new();
                for number in from..=to {
                    deadline.check()?;
                    if let Some((_, hash)) = self.header_by_number(&view, number)? {
                        hashes.push(hash);
                    }
                }
                Ok(FilterChanges::Hashes(hashes))
            }
            Some(filter) => {
                let mut ranged = (*filter).clone();
                let (lo, hi) = match filter.block_option {
                    FilterBlockOption::Range { from_block, to_block } => (
                        from_block.and_then(|b| b.as_number()).map_or(from, |n| n.max(from)),
                        to_block.and_then(|b| b.as_number()).map_or(to, |n| n.min(to)),
                    ),
                    FilterBlockOption::AtBlockHash(_) => {
                        return Ok(FilterChanges::Logs(Vec::new()));
                    }
                };
                if lo > hi {
                    return Ok(FilterChanges::Logs(Vec::new()));
                }
                ranged.block_option = FilterBlockOption::Range {
                    from_block: Some(BlockNumberOrTag::Number(lo)),
                    to_block: Some(BlockNumberOrTag::Number(hi)),
                };
                Ok(FilterChanges::Logs(self.logs(&ranged, deadline)?))
            }
        }
    }

    fn filter_logs(&self, id: U128, deadline: &Deadline) -> RpcResult<Vec<Log>> {
        let filter = {
            let mut filters = self.filters.filters.lock();
            let installed = filters.get_mut(&id.to::<u128>()).ok_or(RpcError::FilterNotFound)?;
            installed.last_poll = Instant::now();
            match &installed.kind {
                FilterKind::Logs(filter) => filter.clone(),
                _ => return Err(RpcError::FilterNotFound),
            }
        };
        self.logs(&filter, deadline)
    }
}

/// Registers the filter methods and `eth_subscribe`.
pub(crate) fn register(
    module: &mut RpcModule<()>,
    ctx: Arc<RpcContext>,
) -> Result<(), jsonrpsee::core::RegisterMethodError> {
    type R<T> = Result<T, ErrorObjectOwned>;
    let c = ctx.clone();
    module.register_method("eth_newFilter", move |p: Params<'_>, _, _| -> R<U128> {
        let (filter,): (Filter,) = p.parse()?;
        Ok(c.install_filter(FilterKind::Logs(Box::new(filter)))?)
    })?;
    let c = ctx.clone();
    module.register_method("eth_newBlockFilter", move |_p: Params<'_>, _, _| -> R<U128> {
        Ok(c.install_filter(FilterKind::Blocks)?)
    })?;
    let c = ctx.clone();
    module.register_method(
        "eth_newPendingTransactionFilter",
        move |_p: Params<'_>, _, _| -> R<U128> {
            Ok(c.install_filter(FilterKind::PendingTransactions(c.pending_txs.subscribe()))?)
        },
    )?;
    let c = ctx.clone();
    module.register_method("eth_uninstallFilter", move |p: Params<'_>, _, _| -> R<bool> {
        let (id,): (U128,) = p.parse()?;
        Ok(c.filters.filters.lock().remove(&id.to::<u128>()).is_some())
    })?;
    // Both walk blocks like eth_getLogs: heavy requests.
    let c = ctx.clone();
    module.register_async_method("eth_getFilterChanges", move |p: Params<'static>, _, _| {
        let c = c.clone();
        async move {
            let (id,): (U128,) = p.parse()?;
            run_heavy(c, "eth_getFilterChanges", None, move |c, deadline| {
                Ok(c.filter_changes(id, &deadline)?)
            })
            .await
        }
    })?;
    let c = ctx.clone();
    module.register_async_method("eth_getFilterLogs", move |p: Params<'static>, _, _| {
        let c = c.clone();
        async move {
            let (id,): (U128,) = p.parse()?;
            run_heavy(c, "eth_getFilterLogs", None, move |c, deadline| {
                Ok(c.filter_logs(id, &deadline)?)
            })
            .await
        }
    })?;
    let c = ctx;
    module.register_subscription(
        "eth_subscribe",
        "eth_subscription",
        "eth_unsubscribe",
        move |p: Params<'static>, pending: PendingSubscriptionSink, _, _| {
            let c = c.clone();
            async move {
                let timeout = c.config.subscription_send_timeout;
                let mut seq = p.sequence();
                let kind: String = match seq.next() {
                    Ok(kind) => kind,
                    Err(e) => {
                        pending.reject(e).await;
                        return;
                    }
                };
                match kind.as_str() {
                    "newHeads" => {
                        let events = c.events.subscribe();
                        if let Ok(sink) = pending.accept().await {
                            let _live = LiveSubscription::new(&c);
                            follow_chain(sink, events, None, timeout).await;
                        }
                    }
                    "logs" => {
                        let filter: Option<Filter> = match seq.optional_next() {
                            Ok(filter) => filter,
                            Err(e) => {
                                pending.reject(e).await;
                                return;
                            }
                        };
                        let events = c.events.subscribe();
                        if let Ok(sink) = pending.accept().await {
                            let _live = LiveSubscription::new(&c);
                            let filter = Some(filter.unwrap_or_default());
                            follow_chain(sink, events, filter, timeout).await;
                        }
                    }
                    "newPendingTransactions" => {
                        // `true` as second parameter asks for whole transactions (geth, reth).
                        let full: Option<bool> = seq.optional_next().unwrap_or(None);
                        let rx = c.pending_txs.subscribe();
                        if let Ok(sink) = pending.accept().await {
                            let _live = LiveSubscription::new(&c);
                            let pool = full.unwrap_or(false).then(|| c.pool.clone());
                            follow_pending(sink, rx, pool, timeout).await;
                        }
                    }
                    other => {
                        pending
                            .reject(ErrorObjectOwned::owned(
                                super::error::INVALID_PARAMS,
                                format!("unsupported subscription kind: {other}"),
                                None::<()>,
                            ))
                            .await;
                    }
                }
            }
        },
    )?;
    Ok(())
}

/// Counts a subscription in [`RpcContext::live_subscriptions`] while it is served.
struct LiveSubscription(Arc<std::sync::atomic::AtomicUsize>);

impl LiveSubscription {
    fn new(ctx: &RpcContext) -> Self {
        ctx.live_subscriptions.fetch_add(1, Ordering::Relaxed);
        Self(ctx.live_subscriptions.clone())
    }
}

impl Drop for LiveSubscription {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Sends one notification; `false` ends the subscription: the connection is gone, or its
/// client has not made room for a message within `timeout` (it is not reading, and the
/// subscription must not wait on it holding the chain events it has not sent).
async fn notify(
    sink: &jsonrpsee::SubscriptionSink,
    value: &impl serde::Serialize,
    timeout: std::time::Duration,
) -> bool {
    let Ok(raw) = serde_json::value::to_raw_value(value) else { return true };
    match sink.send_timeout(SubscriptionMessage::from(raw), timeout).await {
        Ok(()) => true,
        Err(jsonrpsee::core::server::SendTimeoutError::Timeout(_)) => {
            tracing::debug!(
                subscription = ?sink.subscription_id(),
                "subscriber does not read its notifications: subscription dropped"
            );
            false
        }
        Err(jsonrpsee::core::server::SendTimeoutError::Closed(_)) => false,
    }
}

/// Sends each applied block's header (`filter` is `None`) or matching logs, each notification as
/// soon as it is made.
async fn follow_chain(
    sink: jsonrpsee::SubscriptionSink,
    mut events: broadcast::Receiver<Arc<CanonicalChange>>,
    filter: Option<Filter>,
    timeout: std::time::Duration,
) {
    loop {
        let event = tokio::select! {
            _ = sink.closed() => return,
            event = events.recv() => event,
        };
        let change = match event {
            Ok(change) => change,
            Err(RecvError::Lagged(missed)) => {
                tracing::debug!(missed, "subscription lagged behind chain events");
                continue;
            }
            Err(RecvError::Closed) => return,
        };
        match &filter {
            None => {
                for block in &change.applied {
                    if !notify(&sink, &rpc_header(block.header(), block.hash()), timeout).await {
                        return;
                    }
                }
            }
            Some(filter) => {
                let data = |block: &crate::storage::SealedBlock, senders: &Vec<_>| BlockData {
                    block: block.clone(),
                    senders: senders.clone(),
                };
                let reverted = change
                    .reverted
                    .iter()
                    .rev()
                    .map(|b| (data(&b.block, &b.senders), &b.receipts, true));
                let applied =
                    change.applied.iter().map(|b| (data(&b.block, &b.senders), &b.receipts, false));
                for (block, receipts, removed) in reverted.chain(applied) {
                    for log in matching_logs(filter, &block, receipts, removed) {
                        if !notify(&sink, &log, timeout).await {
                            return;
                        }
                    }
                }
            }
        }
    }
}

/// A block's logs that match `filter`, as JSON, marked `removed` when the block left the chain.
fn matching_logs(
    filter: &Filter,
    block: &BlockData,
    receipts: &[alloy_consensus::ReceiptEnvelope],
    removed: bool,
) -> Vec<Log> {
    let header = block.header();
    if !filter.matches_bloom(header.logs_bloom)
        || !filter.matches_block(&alloy_eips::BlockNumHash::new(block.number(), block.hash()))
    {
        return Vec::new();
    }
    block_logs(block, receipts)
        .into_iter()
        .filter(|log| filter.matches(&log.inner))
        .map(|mut log| {
            log.removed = removed;
            log
        })
        .collect()
}

/// Sends the hash (or, given the pool, the whole transaction) of each transaction accepted into
/// the pool.
async fn follow_pending(
    sink: jsonrpsee::SubscriptionSink,
    mut rx: broadcast::Receiver<TxHash>,
    pool: Option<crate::txpool::SharedPool>,
    timeout: std::time::Duration,
) {
    loop {
        let hash: B256 = tokio::select! {
            _ = sink.closed() => return,
            hash = rx.recv() => match hash {
                Ok(hash) => hash,
                Err(RecvError::Lagged(_)) => continue,
                Err(RecvError::Closed) => return,
            },
        };
        let sent = match &pool {
            None => notify(&sink, &hash, timeout).await,
            Some(pool) => {
                // Gone already (mined or replaced): nothing to show.
                let Some(tx) = pool.read().get(&hash) else { continue };
                let tx = super::convert::rpc_pending_transaction(&tx.tx, tx.sender);
                notify(&sink, &tx, timeout).await
            }
        };
        if !sent {
            return;
        }
    }
}
