//! Payload jobs: started by `forkchoiceUpdated` with attributes, improved from the pool until
//! `getPayload` resolves them.
//!
//! A job builds at once, then rebuilds whenever the pool has changed, every `interval`, until it
//! is resolved, its `deadline` passes, or the head moves past its parent. `getPayload` never waits longer than the first build;
//! afterwards it returns the best payload so far and the job stops improving it (a second
//! `getPayload` returns the same payload).

use std::{
    collections::{HashMap, VecDeque},
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::{Duration, Instant},
};

use alloy_primitives::{B256, Bytes};
use alloy_rpc_types_engine::{PayloadAttributes, PayloadId};
use parking_lot::Mutex;
use tokio::sync::watch;
use tracing::{debug, warn};

use super::{BuildError, BuildTarget, BuiltPayload, build_payload};
use crate::{executor::Executor, storage::Database, txpool::SharedPool};

/// How jobs behave.
#[derive(Debug, Clone)]
pub struct JobConfig {
    /// Time between rebuilds while the pool changes.
    pub interval: Duration,
    /// A job stops improving after this long.
    pub deadline: Duration,
    /// Most jobs kept (the oldest are dropped).
    pub max_jobs: usize,
    /// Extra data of built blocks.
    pub extra_data: Bytes,
}

impl Default for JobConfig {
    fn default() -> Self {
        Self {
            interval: Duration::from_millis(50),
            deadline: Duration::from_secs(12),
            max_jobs: 32,
            extra_data: Bytes::from_static(super::DEFAULT_EXTRA_DATA),
        }
    }
}

/// The outcome a job publishes.
pub type JobResult = Option<Result<Arc<BuiltPayload>, String>>;

/// One payload job.
#[derive(Debug)]
pub struct PayloadJob {
    /// Its id.
    pub id: PayloadId,
    /// The attributes it builds with.
    pub attributes: PayloadAttributes,
    /// The parent hash.
    pub parent_hash: B256,
    resolved: AtomicBool,
    best: watch::Receiver<JobResult>,
}

impl PayloadJob {
    /// Waits for the first build, stops improving, and returns the best payload.
    pub async fn resolve(&self) -> Result<Arc<BuiltPayload>, String> {
        let mut rx = self.best.clone();
        let result = match rx.wait_for(|best| best.is_some()).await {
            Ok(best) => best.clone(),
            Err(_) => Some(Err("payload job ended without a payload".to_string())),
        };
        self.resolved.store(true, Ordering::SeqCst);
        result.unwrap_or_else(|| Err("payload job ended without a payload".into()))
    }
}

/// Jobs by id, with their start order for eviction.
type JobTable = (HashMap<PayloadId, Arc<PayloadJob>>, VecDeque<PayloadId>);

/// The running and recent jobs.
#[derive(Debug)]
pub struct PayloadJobs {
    executor: Executor,
    db: Arc<Database>,
    pool: SharedPool,
    config: JobConfig,
    jobs: Mutex<JobTable>,
}

impl PayloadJobs {
    /// A job registry building with `executor` on `db` from `pool`.
    pub fn new(executor: Executor, db: Arc<Database>, pool: SharedPool, config: JobConfig) -> Self {
        Self { executor, db, pool, config, jobs: Mutex::new((HashMap::new(), VecDeque::new())) }
    }

    /// Stops every running job (at shutdown: their builders return instead of running on until
    /// their deadline, which would hold the process open).
    pub fn stop_all(&self) {
        let guard = self.jobs.lock();
        for job in guard.0.values() {
            job.resolved.store(true, Ordering::SeqCst);
        }
    }

    /// The job with this id, if it is still kept.
    pub fn get(&self, id: &PayloadId) -> Option<Arc<PayloadJob>> {
        self.jobs.lock().0.get(id).cloned()
    }

    /// Starts (or returns the existing) job for `id`. Must be called inside a tokio runtime.
    pub fn start(
        &self,
        id: PayloadId,
        target: BuildTarget,
        attributes: PayloadAttributes,
    ) -> Arc<PayloadJob> {
        if let Some(job) = self.get(&id) {
            return job;
        }
        let (tx, rx) = watch::channel(None);
        let job = Arc::new(PayloadJob {
            id,
            attributes: attributes.clone(),
            parent_hash: target.parent_hash,
            resolved: AtomicBool::new(false),
            best: rx,
        });
        {
            let mut guard = self.jobs.lock();
            let (map, order) = &mut *guard;
            map.insert(id, job.clone());
            order.push_back(id);
            while order.len() > self.config.max_jobs {
                if let Some(old) = order.pop_front()
                    && let Some(old_job) = map.remove(&old)
                {
                    old_job.resolved.store(true, Ordering::SeqCst);
                }
            }
        }
        let runner = JobRunner {
            executor: self.executor.clone(),
            db: self.db.clone(),
            pool: self.pool.clone(),
            config: self.config.clone(),
            job: job.clone(),
            target,
            tx,
        };
        tokio::task::spawn_blocking(move || runner.run());
        job
    }
}

struct JobRunner {
    executor: Executor,
    db: Arc<Database>,
    pool: SharedPool,
    config: JobConfig,
    job: Arc<PayloadJob>,
    target: BuildTarget,
    tx: watch::Sender<JobResult>,
}

impl JobRunner {
    fn run(self) {
        let started = Instant::now();
        let mut last_generation = None;
        loop {
            let generation = self.pool.read().generation();
            if last_generation != Some(generation) {
                last_generation = Some(generation);
                match self.build_once() {
                    Ok(built) => {
                        let better = match &*self.tx.borrow() {
                            Some(Ok(best)) => built.fees >= best.fees,
                            _ => true,
                        };
                        if better && !self.job.resolved.load(Ordering::SeqCst) {
                            debug!(id = %self.job.id, txs = built.block.senders.len(), fees = %built.fees, "payload built");
                            self.tx.send_replace(Some(Ok(Arc::new(built))));
                        }
                    }
                    Err(e) => {
                        warn!(id = %self.job.id, error = %e, "payload build failed");
                        if self.tx.borrow().is_none() {
                            self.tx.send_replace(Some(Err(e.to_string())));
                            return;
                        }
                    }
                }
            }
            if self.job.resolved.load(Ordering::SeqCst) || started.elapsed() > self.config.deadline
            {
                return;
            }
            // The head moved past this job's parent: the payload is stale, and rebuilding it
            // on every pool change would only take CPU from the blocks that matter.
            if self.tx.borrow().is_some()
                && self.pool.read().context().head != self.target.parent_hash
            {
                debug!(id = %self.job.id, "head moved on: job stops improving");
                return;
            }
            std::thread::sleep(self.config.interval);
        }
    }

    fn build_once(&self) -> Result<BuiltPayload, BuildError> {
        let best = self.pool.read().best_transactions();
        let built = build_payload(
            &self.executor,
            &self.db,
            &self.target,
            &self.job.attributes,
            best,
            self.config.extra_data.clone(),
        )?;
        if !built.invalid.is_empty() {
            let mut pool = self.pool.write();
            // Failures prove a transaction invalid only on the state the pool checks against:
            // on an older parent (a job still improving after the head moved on, or a proposer
            // re-org) every pending transaction looks "nonce too high".
            if pool.context().head == self.target.parent_hash {
                for hash in &built.invalid {
                    pool.remove_with_descendants(hash);
                }
            }
        }
        Ok(built)
    }
}
