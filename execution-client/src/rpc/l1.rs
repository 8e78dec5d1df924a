//! The `l1_` namespace: the native exchange's state for front ends (book depth, accounts,
//! orders, configuration), read at any block the node can serve.

use std::sync::Arc;

use alloy_eips::BlockId;
use alloy_primitives::Address;
use jsonrpsee::{
    RpcModule,
    types::{ErrorObjectOwned, Params},
};

use super::{RpcContext, RpcError};
use crate::l1::{
    Ctx, L1Config, L1Error,
    view::{self, SnapshotStore},
};

type MethodResult<T> = Result<T, ErrorObjectOwned>;

/// Most levels per side `l1_book` returns.
pub const MAX_BOOK_LEVELS: usize = 500;

fn l1_error(e: L1Error) -> ErrorObjectOwned {
    match e {
        L1Error::Store(e) => RpcError::Internal(e.to_string()).into(),
        other => RpcError::InvalidParams(other.to_string()).into(),
    }
}

/// Runs `f` on the L1 state at `block` (default `latest`).
fn at_block<T>(
    ctx: &RpcContext,
    block: Option<BlockId>,
    f: impl FnOnce(
        &mut Ctx<'_, SnapshotStore<&crate::fork_choice::OverlayState<'_>>>,
    ) -> Result<T, L1Error>,
) -> MethodResult<T> {
    let config: &L1Config = ctx.executor.l1_config().ok_or_else(|| {
        RpcError::Execution("the L1 exchange is not enabled on this chain".into())
    })?;
    let view = ctx.snapshot();
    let (state, header) = ctx.state_at_id(&view, block.unwrap_or_default())?;
    let mut store = SnapshotStore::new(&state);
    let mut l1 = Ctx::new(&mut store, config, header.number);
    f(&mut l1).map_err(l1_error)
}

/// Registers the `l1_` methods on `module`.
pub(crate) fn register(
    module: &mut RpcModule<()>,
    ctx: Arc<RpcContext>,
) -> Result<(), jsonrpsee::core::RegisterMethodError> {
    let c = ctx.clone();
    module.register_method("l1_config", move |_p: Params<'_>, _, _| -> MethodResult<L1Config> {
        c.executor.l1_config().cloned().ok_or_else(|| {
            RpcError::Execution("the L1 exchange is not enabled on this chain".into()).into()
        })
    })?;
    let c = ctx.clone();
    module.register_method("l1_book", move |p: Params<'_>, _, _| {
        let mut seq = p.sequence();
        let market: u32 = seq.next()?;
        let levels: Option<usize> = seq.optional_next()?;
        let block: Option<BlockId> = seq.optional_next()?;
        let levels = levels.unwrap_or(20).min(MAX_BOOK_LEVELS);
        at_block(&c, block, |l1| view::book(l1, market, levels))
    })?;
    let c = ctx.clone();
    module.register_method("l1_account", move |p: Params<'_>, _, _| {
        let mut seq = p.sequence();
        let user: Address = seq.next()?;
        let block: Option<BlockId> = seq.optional_next()?;
        at_block(&c, block, |l1| view::account(l1, user))
    })?;
    let c = ctx.clone();
    module.register_method("l1_order", move |p: Params<'_>, _, _| {
        let mut seq = p.sequence();
        let id: u64 = seq.next()?;
        let block: Option<BlockId> = seq.optional_next()?;
        at_block(&c, block, |l1| view::order(l1, id))
    })?;
    let c = ctx;
    module.register_async_method("l1_blockEvents", move |p, _, _| {
        let ctx = c.clone();
        async move {
            let block: Option<BlockId> = p.sequence().optional_next()?;
            // A whole block executed again: a bounded number at once, a heavy request.
            let permits = Some(ctx.replay_permits.clone());
            super::heavy::run_heavy(ctx, "l1_blockEvents", permits, move |ctx, deadline| {
                block_events(&ctx, block.unwrap_or_default(), &deadline)
            })
            .await
        }
    })?;
    Ok(())
}

/// `l1_blockEvents`: the funding, liquidations and bad debt of a block's end-of-block step. A
/// system call has no receipt, so the block is executed again on its parent's state.
/// The block's own execution cannot be halted from here (it is the engine's executor), but it is
/// bounded by the block's gas limit; the deadline is checked before it starts.
fn block_events(
    ctx: &RpcContext,
    block: BlockId,
    deadline: &super::heavy::Deadline,
) -> MethodResult<Vec<view::SystemEventView>> {
    if ctx.executor.l1_config().is_none() {
        return Err(
            RpcError::Execution("the L1 exchange is not enabled on this chain".into()).into()
        );
    }
    let view = ctx.snapshot();
    let number = ctx.resolve_id(&view, block)?.ok_or(RpcError::HeaderNotFound)?;
    if number == 0 {
        // Genesis runs no step.
        return Ok(Vec::new());
    }
    let data = ctx.block_by_number(&view, number)?.ok_or(RpcError::HeaderNotFound)?;
    let state = view.state_at(&ctx.db, number - 1).map_err(RpcError::from)?;
    deadline.check()?;
    let output = ctx
        .executor
        .execute(data.block.inner(), &data.senders, &state)
        .map_err(|e| RpcError::Internal(format!("executing block {number} again: {e}")))?;
    Ok(output.system_logs.iter().filter_map(view::system_event).collect())
}
