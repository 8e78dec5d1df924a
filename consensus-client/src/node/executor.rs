//! The one task that owns the EL connection: it performs the core's executor actions in order
//! and answers with core events.
//!
//! - `Build`: waits for `--block-time` since the previous build, `forkchoiceUpdated` with payload
//!   attributes on the parent (safe = finalized = last committed), lets the EL fill the block
//!   for [`BUILD_WAIT`], `getPayload`, then `newPayload` of its own payload (an EL only knows a
//!   built block once it was sent back) → `PayloadBuilt` (`None` on any failure: the round then
//!   times out).
//! - `Validate`: `newPayload` → `PayloadValidated { valid: status == VALID }`. `SYNCING` means
//!   the EL lacks an ancestor: no vote; committed ancestors are fed on commit.
//! - `Commit`: a committed block the EL has not validated here (fetched by the core without
//!   executor validation, or replayed after a restart) is sent with `newPayload` first.
//! - `ForkChoice`: `forkchoiceUpdated(head, safe = finalized = last committed)`.

use crate::core::Event;
use crate::engine_client::{EngineClient, to_consensus};
use crate::types::{Block, BlockId, Payload, PayloadAttributes, Round};
use alloy_primitives::{Address, B256};
use alloy_rpc_types_engine::{ForkchoiceState, PayloadStatusEnum};
use std::collections::{HashSet, VecDeque};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use tokio::sync::mpsc;
use tokio::time::Instant;
use tracing::{info, instrument, warn};

/// How long the EL may fill a payload before the leader takes it.
pub const BUILD_WAIT: Duration = Duration::from_millis(100);
/// How many recently validated payloads are remembered (by [`Payload::digest`]).
const KNOWN: usize = 1024;

/// Payloads the EL found VALID, so each is sent to `newPayload` once.
///
/// Keyed on [`Payload::digest`], never on the claimed `block_hash`: a byzantine leader may put a
/// known hash (its parent's) over another body; trusting the hash would make replicas vote for a
/// block no EL validated, and every later leader would fail to build on it.
#[derive(Debug, Default)]
pub struct ValidatedPayloads {
    order: VecDeque<B256>,
    set: HashSet<B256>,
}

impl ValidatedPayloads {
    /// Whether exactly this payload was found valid before.
    pub fn contains(&self, payload: &Payload) -> bool {
        self.set.contains(&payload.digest())
    }

    /// Remembers a payload the EL found valid (forgetting the oldest beyond [`KNOWN`]).
    pub fn insert(&mut self, payload: &Payload) {
        let digest = payload.digest();
        if !self.set.insert(digest) {
            return;
        }
        self.order.push_back(digest);
        if self.order.len() > KNOWN
            && let Some(old) = self.order.pop_front()
        {
            self.set.remove(&old);
        }
    }
}

/// Work for the EL task.
#[derive(Debug)]
pub enum ElRequest {
    /// Build the payload of `round`.
    Build {
        /// The round.
        round: Round,
        /// What to build on.
        attributes: PayloadAttributes,
    },
    /// Validate the payload of a block.
    Validate {
        /// The block.
        block_id: BlockId,
        /// Its payload.
        payload: Payload,
    },
    /// A block was committed.
    Commit {
        /// The block.
        block: Box<Block>,
    },
    /// Make sure the EL has these payloads (certified ancestors of a head or a build parent
    /// that the core fetched without validating), in order.
    Feed {
        /// Payloads, parents first.
        payloads: Vec<Payload>,
    },
    /// Move the EL's fork choice.
    ForkChoice {
        /// Newest certified payload hash.
        head: B256,
        /// Last committed payload hash.
        finalized: B256,
    },
}

/// The EL task's settings.
#[derive(Debug, Clone)]
pub struct ExecutorConfig {
    /// Fee recipient of built payloads.
    pub fee_recipient: Address,
    /// Minimum interval between two builds.
    pub block_time: Duration,
    /// Payload hash of the last committed block at start.
    pub finalized: B256,
    /// Height of the last committed block handed to the EL (updated by the task; range sync
    /// reads it to keep the queue bounded).
    pub delivered: Arc<AtomicU64>,
}

struct Executor {
    engine: EngineClient,
    config: ExecutorConfig,
    events: mpsc::Sender<Event>,
    last_build: Option<Instant>,
    finalized: B256,
    known: ValidatedPayloads,
}

/// Spawns the EL task; requests go in on the returned sender, answers come out on `events`.
pub fn spawn(
    engine: EngineClient,
    config: ExecutorConfig,
    events: mpsc::Sender<Event>,
) -> mpsc::UnboundedSender<ElRequest> {
    let (tx, mut rx) = mpsc::unbounded_channel();
    let mut ex = Executor {
        engine,
        finalized: config.finalized,
        config,
        events,
        last_build: None,
        known: ValidatedPayloads::default(),
    };
    tokio::spawn(async move {
        while let Some(req) = rx.recv().await {
            ex.handle(req).await;
        }
    });
    tx
}

fn now_secs() -> u64 {
    tandem_shared::jwt::unix_now()
}

impl Executor {
    async fn handle(&mut self, req: ElRequest) {
        match req {
            ElRequest::Build { round, attributes } => {
                let payload = self.build(round, &attributes).await;
                let _ = self.events.send(Event::PayloadBuilt { round, payload }).await;
            }
            ElRequest::Validate { block_id, payload } => {
                let valid = self.validate(&payload).await;
                let _ = self.events.send(Event::PayloadValidated { block_id, valid }).await;
            }
            ElRequest::Commit { block } => {
                self.commit(&block).await;
                self.config.delivered.fetch_max(block.height(), Ordering::Relaxed);
            }
            ElRequest::Feed { payloads } => {
                for p in payloads {
                    if !self.validate(&p).await {
                        break;
                    }
                }
            }
            ElRequest::ForkChoice { head, finalized } => {
                self.finalized = finalized;
                let state = ForkchoiceState {
                    head_block_hash: head,
                    safe_block_hash: finalized,
                    finalized_block_hash: finalized,
                };
                match self.engine.forkchoice_updated(state, now_secs(), None).await {
                    Ok(u) if u.payload_status.status != PayloadStatusEnum::Valid => {
                        // The EL lacks the head: at least make the committed block canonical.
                        let state = ForkchoiceState { head_block_hash: finalized, ..state };
                        if let Err(e) =
                            self.engine.forkchoice_updated(state, now_secs(), None).await
                        {
                            warn!(%finalized, "forkchoiceUpdated to the committed block failed: {e}");
                        }
                    }
                    Ok(_) => {}
                    Err(e) => warn!(%head, %finalized, "forkchoiceUpdated failed: {e}"),
                }
            }
        }
    }

    #[instrument(skip_all, fields(round, height = attributes.number))]
    async fn build(&mut self, round: Round, attributes: &PayloadAttributes) -> Option<Payload> {
        if let Some(last) = self.last_build {
            tokio::time::sleep_until(last + self.config.block_time).await;
        }
        self.last_build = Some(Instant::now());
        let engine_attrs = self.engine.engine_attributes(attributes, self.config.fee_recipient);
        let state = ForkchoiceState {
            head_block_hash: attributes.parent_hash,
            safe_block_hash: self.finalized,
            finalized_block_hash: self.finalized,
        };
        let updated = match self
            .engine
            .forkchoice_updated(state, attributes.timestamp, Some(engine_attrs))
            .await
        {
            Ok(u) => u,
            Err(e) => {
                warn!(round, "cannot start a payload build: {e}");
                return None;
            }
        };
        let Some(id) = updated.payload_id else {
            warn!(round, status = updated.payload_status.status.as_str(),
                parent = %attributes.parent_hash, "execution client started no build");
            return None;
        };
        tokio::time::sleep(BUILD_WAIT).await;
        let body = match self.engine.get_payload(id, attributes.timestamp).await {
            Ok(b) => b,
            Err(e) => {
                warn!(round, "getPayload failed: {e}");
                return None;
            }
        };
        let payload = to_consensus(&body, attributes.parent_beacon_block_root);
        if !attributes.matches(&payload) {
            warn!(round, "execution client built a payload for other attributes");
            return None;
        }
        if !self.validate(&payload).await {
            return None;
        }
        info!(round, number = payload.number, hash = %payload.block_hash,
            txs = body.execution_payload.transactions().len(), "built payload");
        Some(payload)
    }

    async fn validate(&mut self, payload: &Payload) -> bool {
        if self.known.contains(payload) {
            return true;
        }
        match self.engine.new_payload(payload).await {
            Ok(status) if status.status == PayloadStatusEnum::Valid => {
                self.known.insert(payload);
                true
            }
            Ok(_) => false,
            Err(e) => {
                warn!(number = payload.number, hash = %payload.block_hash, "newPayload failed: {e}");
                false
            }
        }
    }

    async fn commit(&mut self, block: &Block) {
        let payload = &block.payload;
        if payload.number == 0 || self.known.contains(payload) {
            return;
        }
        // Retry: the EL must get every committed block, in order.
        for attempt in 0..20u32 {
            match self.engine.new_payload(payload).await {
                Ok(s) if s.status == PayloadStatusEnum::Valid => {
                    self.known.insert(payload);
                    return;
                }
                Ok(s) => {
                    warn!(number = payload.number, hash = %payload.block_hash,
                        status = s.status.as_str(), "EL does not accept a committed block");
                    if let PayloadStatusEnum::Invalid { .. } = s.status {
                        return;
                    }
                }
                Err(e) => warn!(number = payload.number, "newPayload of a committed block: {e}"),
            }
            tokio::time::sleep(Duration::from_millis(100 * u64::from(attempt + 1))).await;
        }
    }
}
