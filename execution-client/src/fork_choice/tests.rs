//! The tree: execution of payloads, fork choice, re-orgs, persistence and invalid blocks.

use alloy_consensus::Block;
use alloy_primitives::{Address, B256, U256};
use alloy_rpc_types_engine::{ForkchoiceState, PayloadStatusEnum};

use super::*;
use crate::{
    payload_builder::{BuildTarget, build_payload},
    storage::seal_block,
    testkit::Kit,
};
use alloy_primitives::Bytes;

fn status(s: &PayloadStatus) -> &'static str {
    s.status.as_str()
}

fn valid_head(outcome: ForkchoiceOutcome) -> (BlockRef, CanonicalChange) {
    match outcome {
        ForkchoiceOutcome::Valid { head, change, skipped: false } => (head, change),
        other => panic!("expected a valid, applied fork choice, got {other:?}"),
    }
}

/// Builds on `parent` a block with key 0's transfer of 1 wei (nonce `nonce`) to `to`, imports it
/// and makes it the head; returns its hash.
fn extend_with_transfer(kit: &mut Kit, parent: B256, nonce: u64, to: Address) -> B256 {
    kit.submit(kit.transfer(0, nonce, to, 1));
    let block = kit.build_on(parent, Address::ZERO).block.block.clone();
    assert_eq!(status(&kit.tree.new_payload(block.clone()).unwrap()), "VALID");
    valid_head(kit.fcu(block.hash(), B256::ZERO));
    let ctx = kit.pool.read().context();
    let sender = kit.keys[0].address();
    kit.pool.write().on_new_head(ctx, [(sender, nonce + 1, U256::from(10u128.pow(24)))]);
    block.hash()
}

#[test]
fn build_execute_and_make_canonical() {
    let mut kit = Kit::new(TreeConfig::default());
    let genesis = kit.tree.head().hash;
    let bob = Address::repeat_byte(0xb0);
    kit.submit(kit.transfer(0, 0, bob, 1000));
    kit.submit(kit.transfer(0, 1, bob, 1000));
    kit.submit(kit.transfer(1, 0, bob, 5));
    let built = kit.build_on(genesis, Address::repeat_byte(0xfe));
    assert_eq!(built.block.senders.len(), 3);
    assert!(built.fees > U256::ZERO);
    let block = built.block.block.clone();
    let s = kit.tree.new_payload(block.clone()).unwrap();
    assert_eq!(status(&s), "VALID");
    assert_eq!(s.latest_valid_hash, Some(block.hash()));
    // newPayload alone does not move the head.
    assert_eq!(kit.tree.head().hash, genesis);
    // Known payload: VALID without re-execution.
    assert_eq!(status(&kit.tree.new_payload(block.clone()).unwrap()), "VALID");
    let (head, change) = valid_head(kit.fcu(block.hash(), B256::ZERO));
    assert_eq!(head.hash, block.hash());
    assert_eq!(change.applied.len(), 1);
    assert_eq!(kit.balance_at(block.hash(), bob), U256::from(2005));
    let view = kit.tree.view_handle().read().clone();
    assert_eq!(view.head.hash, block.hash());
    assert_eq!(view.canonical.len(), 1);
}

#[test]
fn a_view_taken_before_a_persist_reads_each_block_at_its_own_height() {
    use revm::DatabaseRef;
    let mut kit = Kit::new(TreeConfig { persistence_threshold: 64, ..TreeConfig::default() });
    let mut parent = kit.tree.head().hash;
    // Block i pays 1 wei to an address of its own, so each block's state differs from the next.
    let payee = |i: u64| Address::repeat_byte(0xc0 + i as u8);
    for i in 0..5u64 {
        parent = extend_with_transfer(&mut kit, parent, i, payee(i));
    }
    let old = kit.tree.view_handle().read().clone();
    assert_eq!((old.persisted.number, old.canonical.len()), (0, 5));
    // The tree persists everything; a reader still holds the view from before.
    kit.tree.persist_all().unwrap();
    assert_eq!(kit.tree.db().canonical_tip().unwrap().0, 5);
    let paid = |view: &ChainView, number: u64, i: u64| {
        let state = view.state_at(kit.tree.db(), number).unwrap();
        state.basic_ref(payee(i)).unwrap().map_or(U256::ZERO, |a| a.balance)
    };
    let new = kit.tree.view_handle().read().clone();
    for number in 0..=5u64 {
        for i in 0..5u64 {
            let want = U256::from(u64::from(i < number));
            assert_eq!(paid(&old, number, i), want, "old view, block {number}, payee {i}");
            assert_eq!(paid(&new, number, i), want, "new view, block {number}, payee {i}");
        }
    }
}

#[test]
fn reorg_between_in_memory_branches() {
    let mut kit = Kit::new(TreeConfig::default());
    let genesis = kit.tree.head().hash;
    let bob = Address::repeat_byte(0xb0);
    kit.submit(kit.transfer(0, 0, bob, 7));
    let a = kit.build_on(genesis, Address::repeat_byte(1)).block.block.clone();
    // A sibling without the transfer (different timestamp and fee recipient).
    kit.pool.write().remove_with_descendants(a.body.transactions[0].tx_hash());
    let b = kit.build_on(genesis, Address::repeat_byte(2)).block.block.clone();
    assert_ne!(a.hash(), b.hash());
    for block in [&a, &b] {
        assert_eq!(status(&kit.tree.new_payload(block.clone()).unwrap()), "VALID");
    }
    valid_head(kit.fcu(a.hash(), B256::ZERO));
    assert_eq!(kit.balance_at(kit.tree.head().hash, bob), U256::from(7));
    let (head, change) = valid_head(kit.fcu(b.hash(), B256::ZERO));
    assert_eq!(head.hash, b.hash());
    assert_eq!(change.reverted.len(), 1, "block a leaves the canonical chain");
    assert_eq!(change.reverted[0].block.hash(), a.hash());
    assert_eq!(kit.balance_at(kit.tree.head().hash, bob), U256::ZERO);
}

#[test]
fn persistence_follows_threshold_and_finality() {
    let mut kit = Kit::new(TreeConfig { persistence_threshold: 2, ..TreeConfig::default() });
    let hashes = transfer_chain(&mut kit, 5);
    let parent = hashes[5];
    // Head 5, threshold 2: blocks up to 3 are persisted.
    assert_eq!(kit.tree.persisted().number, 3);
    assert_eq!(kit.tree.db().canonical_tip().unwrap().0, 3);
    // Finalizing the head persists it before returning.
    valid_head(kit.fcu(parent, parent));
    assert_eq!(kit.tree.persisted().number, 5);
    assert_eq!(kit.tree.db().canonical_tip().unwrap(), (5, parent));
    assert_eq!(kit.tree.finalized().map(|f| f.number), Some(5));
    // State read back from MDBX matches.
    assert_eq!(kit.balance_at(parent, Address::repeat_byte(0xb0)), U256::from(5));
    // Going back to an ancestor is skipped: valid, nothing moves.
    match kit.fcu(hashes[2], B256::ZERO) {
        ForkchoiceOutcome::Valid { skipped: true, .. } => {}
        other => panic!("expected skipped, got {other:?}"),
    }
    assert_eq!(kit.tree.head().hash, parent);
}

#[test]
fn reorg_below_persisted_tip_unwinds() {
    let mut kit = Kit::new(TreeConfig { persistence_threshold: 0, ..TreeConfig::default() });
    let genesis = kit.tree.head().hash;
    let bob = Address::repeat_byte(0xb0);
    kit.submit(kit.transfer(0, 0, bob, 9));
    let a = kit.build_on(genesis, Address::repeat_byte(1)).block.block.clone();
    kit.pool.write().remove_with_descendants(a.body.transactions[0].tx_hash());
    let b = kit.build_on(genesis, Address::repeat_byte(2)).block.block.clone();
    kit.tree.new_payload(a.clone()).unwrap();
    valid_head(kit.fcu(a.hash(), B256::ZERO));
    assert_eq!(kit.tree.persisted().hash, a.hash(), "threshold 0 persists the head");
    // Its parent is persisted but not the tip: accepted, executed on the fork choice.
    assert_eq!(status(&kit.tree.new_payload(b.clone()).unwrap()), "ACCEPTED");
    let (head, change) = valid_head(kit.fcu(b.hash(), B256::ZERO));
    assert_eq!(head.hash, b.hash());
    assert_eq!(change.reverted.len(), 1);
    assert_eq!(change.reverted[0].block.hash(), a.hash());
    assert_eq!(kit.tree.db().canonical_tip().unwrap(), (1, b.hash()));
    assert_eq!(kit.balance_at(b.hash(), bob), U256::ZERO);
    // And back again: the unwound block was kept and is re-executed.
    let (head, _) = valid_head(kit.fcu(a.hash(), B256::ZERO));
    assert_eq!(head.hash, a.hash());
    assert_eq!(kit.balance_at(a.hash(), bob), U256::from(9));
}

#[test]
fn invalid_blocks_and_their_descendants() {
    let mut kit = Kit::new(TreeConfig::default());
    let genesis = kit.tree.head().hash;
    let good = kit.build_on(genesis, Address::ZERO).block.block.clone();
    let mut bad_block: Block<_> = good.clone().into_inner();
    bad_block.header.state_root = B256::repeat_byte(0x66);
    let bad = seal_block(bad_block);
    let s = kit.tree.new_payload(bad.clone()).unwrap();
    assert_eq!(status(&s), "INVALID");
    assert_eq!(s.latest_valid_hash, Some(genesis));
    match &s.status {
        PayloadStatusEnum::Invalid { validation_error } => {
            assert!(validation_error.contains("state root"), "{validation_error}")
        }
        other => panic!("{other:?}"),
    }
    // A child of the invalid block is invalid with the same latest valid hash.
    let mut child: Block<_> = good.clone().into_inner();
    child.header.parent_hash = bad.hash();
    child.header.number = 2;
    let child = seal_block(child);
    let s = kit.tree.new_payload(child.clone()).unwrap();
    assert_eq!((status(&s), s.latest_valid_hash), ("INVALID", Some(genesis)));
    match kit.fcu(child.hash(), B256::ZERO) {
        ForkchoiceOutcome::Invalid { latest_valid, .. } => assert_eq!(latest_valid, Some(genesis)),
        other => panic!("{other:?}"),
    }
    // The valid sibling is still fine.
    assert_eq!(status(&kit.tree.new_payload(good).unwrap()), "VALID");
}

#[test]
fn unknown_parent_is_syncing_then_connects() {
    let mut kit = Kit::new(TreeConfig::default());
    let genesis = kit.tree.head().hash;
    let first = kit.build_on(genesis, Address::ZERO).block.block.clone();
    kit.tree.new_payload(first.clone()).unwrap();
    let second = kit.build_on(first.hash(), Address::ZERO).block.block.clone();
    // A fresh node that sees the child first.
    let mut fresh = Kit::new(TreeConfig::default());
    let s = fresh.tree.new_payload(second.clone()).unwrap();
    assert_eq!((status(&s), s.latest_valid_hash), ("SYNCING", None));
    assert!(matches!(fresh.fcu(second.hash(), B256::ZERO), ForkchoiceOutcome::Syncing));
    assert!(matches!(fresh.fcu(B256::repeat_byte(3), B256::ZERO), ForkchoiceOutcome::Syncing));
    // The parent arrives: both execute.
    assert_eq!(status(&fresh.tree.new_payload(first).unwrap()), "VALID");
    let (head, _) = valid_head(fresh.fcu(second.hash(), B256::ZERO));
    assert_eq!(head.number, 2);
}

#[test]
fn inconsistent_forkchoice_state_is_refused_and_changes_nothing() {
    let mut kit = Kit::new(TreeConfig::default());
    let genesis = kit.tree.head().hash;
    let a = kit.build_on(genesis, Address::repeat_byte(1)).block.block.clone();
    let b = kit.build_on(genesis, Address::repeat_byte(2)).block.block.clone();
    kit.tree.new_payload(a.clone()).unwrap();
    kit.tree.new_payload(b.clone()).unwrap();
    let err = kit
        .tree
        .fork_choice_updated(ForkchoiceState {
            head_block_hash: a.hash(),
            safe_block_hash: b.hash(),
            finalized_block_hash: B256::ZERO,
        })
        .unwrap_err();
    assert!(matches!(err, TreeError::InvalidForkchoiceState(_)), "{err}");
    assert_eq!(kit.tree.head().hash, genesis);
    let err = kit
        .tree
        .fork_choice_updated(ForkchoiceState {
            head_block_hash: a.hash(),
            safe_block_hash: B256::ZERO,
            finalized_block_hash: B256::repeat_byte(0x42),
        })
        .unwrap_err();
    assert!(matches!(err, TreeError::InvalidForkchoiceState(_)));
    let zero = kit.tree.fork_choice_updated(ForkchoiceState::default()).unwrap_err();
    assert!(matches!(zero, TreeError::InvalidForkchoiceState(_)));
}

#[test]
fn too_deep_reorg_is_refused() {
    let mut kit = Kit::new(TreeConfig {
        persistence_threshold: 0,
        max_reorg_depth: 1,
        ..TreeConfig::default()
    });
    let genesis = kit.tree.head().hash;
    let side = kit.build_on(genesis, Address::repeat_byte(9)).block.block.clone();
    let mut parent = genesis;
    for _ in 0..2 {
        let block = kit.build_on(parent, Address::ZERO).block.block.clone();
        kit.tree.new_payload(block.clone()).unwrap();
        valid_head(kit.fcu(block.hash(), B256::ZERO));
        parent = block.hash();
    }
    kit.tree.new_payload(side.clone()).unwrap();
    let err = kit
        .tree
        .fork_choice_updated(ForkchoiceState {
            head_block_hash: side.hash(),
            ..ForkchoiceState::default()
        })
        .unwrap_err();
    assert!(matches!(err, TreeError::TooDeepReorg { depth: 2, max: 1 }), "{err}");
    assert_eq!(kit.tree.head().hash, parent);
}

/// A chain of `n` blocks with one transfer each, validated and made canonical one by one
/// (nothing finalized); returns their hashes, genesis first.
fn transfer_chain(kit: &mut Kit, n: u64) -> Vec<B256> {
    let mut hashes = vec![kit.tree.head().hash];
    for i in 0..n {
        let parent = *hashes.last().unwrap();
        hashes.push(extend_with_transfer(kit, parent, i, Address::repeat_byte(0xb0)));
    }
    hashes
}

#[test]
fn a_build_on_layers_taken_before_a_persist_gets_the_right_root() {
    let mut kit = Kit::new(TreeConfig { persistence_threshold: 3, ..TreeConfig::default() });
    let hashes = transfer_chain(&mut kit, 3);
    let head = *hashes.last().unwrap();
    assert_eq!(kit.tree.persisted().number, 0);
    // The target as a build job takes it: three in-memory layers over genesis.
    let target = BuildTarget {
        parent: kit.tree.header(head).unwrap().unwrap(),
        parent_hash: head,
        layers: kit.tree.layers_for(head).unwrap(),
    };
    assert_eq!(target.layers.len(), 3);
    // Finalizing block 2 persists blocks 1 and 2 (one transaction) while the job would run.
    valid_head(kit.fcu(head, hashes[2]));
    assert_eq!(kit.tree.db().canonical_tip().unwrap(), (2, hashes[2]));
    kit.submit(kit.transfer(1, 0, Address::repeat_byte(0xb1), 5));
    let attrs = kit.attributes(Address::ZERO);
    let best = kit.pool.read().best_transactions();
    let built =
        build_payload(&kit.executor, kit.tree.db(), &target, &attrs, best, Bytes::new()).unwrap();
    // Validated from scratch by a tree that has not seen it: the root must agree.
    let block = built.block.block.clone();
    assert_eq!(status(&kit.tree.new_payload(block.clone()).unwrap()), "VALID");
    valid_head(kit.fcu(block.hash(), block.hash()));
    assert_eq!(kit.tree.db().canonical_tip().unwrap(), (4, block.hash()));
    assert_eq!(kit.balance_at(block.hash(), Address::repeat_byte(0xb1)), U256::from(5));
    assert_eq!(kit.balance_at(block.hash(), Address::repeat_byte(0xb0)), U256::from(3));
}

#[test]
fn trie_changes_are_refused_on_a_tip_off_their_branch() {
    let mut kit = Kit::new(TreeConfig { persistence_threshold: 0, ..TreeConfig::default() });
    let hashes = transfer_chain(&mut kit, 2);
    // Block 1 is persisted below the tip (block 2): building on it as if it were the tip
    // would lay block 1's state under block 2's trie.
    assert_eq!(kit.tree.db().canonical_tip().unwrap().1, hashes[2]);
    let err = trie_delta_after(kit.tree.db(), hashes[1], &[], &BundleState::default()).unwrap_err();
    assert!(matches!(err, StorageError::PendingNotOnTip { .. }), "{err}");
}
