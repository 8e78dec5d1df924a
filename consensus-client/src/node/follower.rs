//! A follower: `tandem-cl node` without `--validator-key`. It joins the p2p network, follows the
//! committed chain through range sync ([`crate::sync`]; each gossiped proposal makes it poll its
//! peers at once), persists what it verified exactly as a validator does (so it restarts from
//! its tip and serves range sync to others), and drives its EL: `newPayload` of each committed
//! block in order, then `forkchoiceUpdated(head = safe = finalized = committed tip)`.
//!
//! It holds no key, so it never votes, times out or proposes; validators drop any direct message
//! or gossip from a peer that is not a validator ([`crate::network`]). It trails the validators'
//! committed tip by about one block: a block's commit is proven by its child's certificate,
//! which peers store when the child commits.

use super::executor::ElRequest;
use super::metrics::NodeMetrics;
use super::service::{NodeConfig, NodeError, Status};
use super::startup::{self, Base, Services};
use crate::core::PersistOp;
use crate::engine_client::EngineClient;
use crate::network::{NetEvent, Verdict};
use crate::storage::{MdbxStorage, Storage};
use crate::sync::{Anchor, SyncConfig, VerifiedRange};
use crate::types::Message;
use std::future::Future;
use std::pin::Pin;
use std::sync::Mutex;
use std::time::Duration;
use tokio::sync::mpsc;
use tracing::{error, info, warn};

/// Runs a follower until `shutdown` resolves or a fatal error.
pub(super) async fn run<F: Future<Output = &'static str>>(
    config: &NodeConfig,
    base: Base,
    mut shutdown: Pin<&mut F>,
) -> Result<(), NodeError> {
    let reader = base.storage.reader();
    let tip = startup::committed_tip(&reader, &base.genesis_block)?;
    startup::replay(&base.engine, &reader, &tip).await?;
    let sync_config = SyncConfig { trigger_gap: 1, ..config.sync.clone() };
    let services = startup::start_services(config, &base, &tip, sync_config, None).await?;
    let Services { net, mut net_rx, el, mut el_events, anchor, mut ranges, syncer, status, .. } =
        services;
    let Base { storage, engine, .. } = base;
    let mut follower =
        Follower { tip: Anchor::of(&tip), storage, el, metrics: NodeMetrics::new(), synced: 0 };
    info!(committed = tip.height(), peer_id = %net.peer_id,
        "following the chain (no validator key: this node never votes)");
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    loop {
        tokio::select! {
            signal = shutdown.as_mut() => {
                info!(signal, committed = follower.tip.height, "stopping");
                return Ok(());
            }
            Some(ev) = net_rx.recv() => {
                let NetEvent::Message(ev) = ev else { continue };
                if let Message::Proposal(p) = &ev.message {
                    syncer.hint(p.block.height());
                }
                // A follower runs no core to verify gossip, so it never forwards it (a forged
                // message it relayed would get it scored down by the validators).
                net.verdict(ev.origin, Verdict::Ignore);
            }
            // The executor only answers builds and validations, which a follower never asks.
            Some(_) = el_events.recv() => {}
            Some(range) = ranges.recv() => {
                follower.import(range).inspect_err(|e| {
                    error!("storage failed, stopping the follower: {e}");
                })?;
                anchor.send_replace(follower.tip);
            }
            _ = tick.tick() => {}
        }
        follower.update_status(&status, &net, &engine);
    }
}

struct Follower {
    tip: Anchor,
    storage: MdbxStorage,
    el: mpsc::UnboundedSender<ElRequest>,
    metrics: NodeMetrics,
    synced: u64,
}

impl Follower {
    /// Persists a verified range above the tip (one durable transaction), then hands it to
    /// the EL in order and moves its fork choice.
    fn import(&mut self, range: VerifiedRange) -> Result<(), NodeError> {
        let tip_height = self.tip.height;
        let fresh: Vec<_> =
            range.blocks.into_iter().filter(|(_, c)| c.block.height() > tip_height).collect();
        let mut parent = self.tip.id;
        for (id, c) in &fresh {
            if c.block.parent_id != parent || c.qc.block_id != *id {
                warn!(height = c.block.height(), "synced range does not extend the committed tip");
                return Ok(());
            }
            parent = *id;
        }
        let Some((last_id, last)) = fresh.last().cloned() else { return Ok(()) };
        let ops: Vec<PersistOp> = fresh
            .iter()
            .flat_map(|(id, c)| {
                [
                    PersistOp::Block(c.block.clone()),
                    PersistOp::Committed {
                        height: c.block.height(),
                        block_id: *id,
                        qc: c.qc.clone(),
                    },
                ]
            })
            .collect();
        self.storage.apply_all(&ops)?;
        for (block_id, c) in fresh {
            info!(height = c.block.height(), round = c.block.round, %block_id,
                hash = %c.block.payload.block_hash, "committed");
            self.metrics.commits.increment(1);
            self.synced += 1;
            let _ = self.el.send(ElRequest::Commit { block: Box::new(c.block) });
        }
        let hash = last.block.payload.block_hash;
        let _ = self.el.send(ElRequest::ForkChoice { head: hash, finalized: hash });
        self.tip = Anchor::with_id(last_id, &last.block);
        Ok(())
    }

    fn update_status(
        &self,
        status: &Mutex<Status>,
        net: &crate::network::NetworkHandle,
        engine: &EngineClient,
    ) {
        if let Ok(mut s) = status.lock() {
            s.committed_height = self.tip.height;
            s.committed_id = self.tip.id;
            s.head = self.tip.payload_hash;
            s.peers = net.peer_count();
            s.banned_peers = net.banned_count();
            s.el = engine.el_state().as_str().to_string();
            s.synced = self.synced;
        }
        self.metrics.committed_height.set(self.tip.height as f64);
        self.metrics.peers.set(net.peer_count() as f64);
    }
}
