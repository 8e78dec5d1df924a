//! Heavy requests: the methods whose work grows with their input (EVM runs, traces, block
//! replays, proofs, log and fee walks, the pool's content) run on the blocking threads, at most
//! [`super::RpcConfig::max_heavy_requests`] at once over all of them, each under one
//! [`Deadline`] that the work itself checks. When the deadline passes the work stops (the EVM is
//! halted by [`DeadlineInspector`], loops over blocks and binary-search rounds return), so the
//! slot it held frees at once and a flood of slow calls can never occupy more than those
//! threads: the engine's threads and the payload builder's blocking tasks stay free.

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use jsonrpsee::types::ErrorObjectOwned;
use revm::{
    inspector::Inspector,
    interpreter::{InstructionResult, Interpreter, InterpreterTypes},
};
use tokio::sync::Semaphore;

use super::{RpcContext, RpcError, RpcResult};

type MethodResult<T> = Result<T, ErrorObjectOwned>;

/// Cores reth leaves to the rest of the node when it sizes its tracing pool.
const RESERVED_CORES: usize = 2;

/// Most heavy requests `--rpc.max-tracing-requests` may allow: each holds an MDBX read
/// transaction, and the rest of the node needs reader slots too.
pub const MAX_HEAVY_REQUESTS: usize = crate::storage::MAX_READERS as usize / 4;

/// Default number of heavy requests run at once: the cores minus the two reth reserves for the
/// node, at least one (a 2-core machine runs one at a time).
pub fn default_max_heavy_requests() -> usize {
    std::thread::available_parallelism()
        .map_or(1, |cores| cores.get().saturating_sub(RESERVED_CORES))
        .max(1)
}

/// The moment a request's work must stop.
#[derive(Debug, Clone, Copy)]
pub struct Deadline {
    at: Instant,
    budget: Duration,
}

impl Deadline {
    /// A deadline `budget` from now.
    pub fn after(budget: Duration) -> Self {
        let now = Instant::now();
        Self { at: now.checked_add(budget).unwrap_or(now + Duration::from_secs(86_400)), budget }
    }

    /// Whether the deadline has passed.
    pub fn passed(&self) -> bool {
        Instant::now() >= self.at
    }

    /// `Ok` before the deadline, the time-out error after it.
    pub fn check(&self) -> RpcResult<()> {
        if self.passed() { Err(self.error()) } else { Ok(()) }
    }

    /// The error a request gets when its deadline passes.
    pub fn error(&self) -> RpcError {
        RpcError::TimedOut(self.budget)
    }

    /// An inspector that halts the EVM at this deadline.
    pub fn inspector(&self) -> DeadlineInspector {
        DeadlineInspector { at: self.at, steps: 0, passed: false }
    }

    fn instant(&self) -> tokio::time::Instant {
        tokio::time::Instant::from_std(self.at)
    }
}

/// Instructions run between two looks at the clock (a look costs about as much as a few dozen
/// cheap instructions; 4,096 of them take well under a millisecond).
const STEPS_PER_CLOCK_CHECK: u32 = 4096;

/// Halts the EVM once its deadline has passed: every frame still running stops at its next
/// instruction, so an endless loop with any gas stops within a few thousand instructions.
#[derive(Debug, Clone)]
pub struct DeadlineInspector {
    at: Instant,
    steps: u32,
    passed: bool,
}

impl DeadlineInspector {
    /// Whether it halted the EVM: the result of the run is then meaningless.
    pub fn passed(&self) -> bool {
        self.passed
    }
}

impl<CTX, INTR: InterpreterTypes> Inspector<CTX, INTR> for DeadlineInspector {
    fn step(&mut self, interp: &mut Interpreter<INTR>, _context: &mut CTX) {
        if !self.passed {
            self.steps = self.steps.wrapping_add(1);
            if !self.steps.is_multiple_of(STEPS_PER_CLOCK_CHECK) || Instant::now() < self.at {
                return;
            }
            self.passed = true;
        }
        // Out of gas is a plain halt of the frame; the caller sees `passed()` and reports the
        // time-out instead of the halt.
        interp.halt(InstructionResult::OutOfGas);
    }
}

impl RpcContext {
    /// The slots of the heavy requests, sized by the configuration when first used.
    pub fn heavy_slots(&self) -> &Arc<Semaphore> {
        self.heavy_slots
            .get_or_init(|| Arc::new(Semaphore::new(self.config.max_heavy_requests.max(1))))
    }
}

/// Runs `f` as a heavy request of `method`: waits for one of `method_permits` (if the method has
/// its own, smaller bound) and then a heavy slot, both until the request's deadline, then runs
/// `f` on a blocking thread with that deadline. The caller gets the time-out error at the
/// deadline; the work sees the same deadline and stops, releasing its slot.
pub(super) async fn run_heavy<T: Send + 'static>(
    ctx: Arc<RpcContext>,
    method: &'static str,
    method_permits: Option<Arc<Semaphore>>,
    f: impl FnOnce(Arc<RpcContext>, Deadline) -> MethodResult<T> + Send + 'static,
) -> MethodResult<T> {
    let deadline = Deadline::after(ctx.config.evm_timeout);
    let busy = || -> ErrorObjectOwned {
        RpcError::LimitExceeded(format!("too many {method} requests at once, try again")).into()
    };
    let acquire = |permits: Arc<Semaphore>| async move {
        tokio::time::timeout_at(deadline.instant(), permits.acquire_owned())
            .await
            .ok()
            .and_then(Result::ok)
    };
    let method_permit = match method_permits {
        Some(permits) => Some(acquire(permits).await.ok_or_else(busy)?),
        None => None,
    };
    let slot = acquire(ctx.heavy_slots().clone()).await.ok_or_else(busy)?;
    let task = tokio::task::spawn_blocking(move || {
        let _held = (slot, method_permit);
        f(ctx, deadline)
    });
    match tokio::time::timeout_at(deadline.instant(), task).await {
        Ok(Ok(result)) => result,
        Ok(Err(join)) => Err(RpcError::Internal(join.to_string()).into()),
        Err(_) => Err(deadline.error().into()),
    }
}
