//! Building: fills by tip, skips what fails, ids are deterministic, blocks validate.

use alloy_primitives::{Address, B256};

use super::*;
use crate::{fork_choice::TreeConfig, testkit::Kit};

#[test]
fn payload_ids_are_deterministic() {
    let mut kit = Kit::new(TreeConfig::default());
    let attrs = kit.attributes(Address::ZERO);
    let parent = B256::repeat_byte(1);
    assert_eq!(payload_id(parent, &attrs), payload_id(parent, &attrs));
    assert_ne!(payload_id(parent, &attrs), payload_id(B256::repeat_byte(2), &attrs));
    let mut other = attrs.clone();
    other.suggested_fee_recipient = Address::repeat_byte(1);
    assert_ne!(payload_id(parent, &attrs), payload_id(parent, &other));
}

#[test]
fn empty_and_full_blocks_validate_on_reexecution() {
    let mut kit = Kit::new(TreeConfig::default());
    let genesis = kit.tree.head().hash;
    let empty = kit.build_on(genesis, Address::ZERO);
    assert!(empty.block.block.body.transactions.is_empty());
    assert_eq!(empty.fees, U256::ZERO);
    for nonce in 0..50 {
        kit.submit(kit.transfer(2, nonce, Address::repeat_byte(0xb0), 1));
    }
    let full = kit.build_on(genesis, Address::repeat_byte(0xfe));
    assert_eq!(full.block.block.body.transactions.len(), 50);
    assert_eq!(full.block.header().gas_used, 50 * 21_000);
    // The tree re-executes it from scratch and agrees on every root.
    let status = kit.tree.new_payload(full.block.block.clone()).unwrap();
    assert!(status.status.is_valid(), "{status:?}");
}

/// Blocks are capped by the bytes of their transactions, not only by gas, so a proposal always
/// fits a consensus message; what does not fit stays in the pool for the next block.
#[test]
fn blocks_are_capped_by_transaction_bytes() {
    let mut kit = Kit::new(TreeConfig::default());
    let genesis = kit.tree.head().hash;
    let txs: Vec<_> = (0..20).map(|n| kit.transfer(2, n, Address::repeat_byte(0xb0), 1)).collect();
    let size = alloy_eips::eip2718::Encodable2718::encode_2718_len(&txs[0]);
    for tx in &txs {
        kit.submit(tx.clone());
    }
    let target = BuildTarget {
        parent: kit.tree.header(genesis).unwrap().unwrap(),
        parent_hash: genesis,
        layers: Vec::new(),
    };
    let attrs = kit.attributes(Address::ZERO);
    let best = kit.pool.read().best_transactions();
    let capped = build_payload_within(
        &kit.executor,
        kit.tree.db(),
        &target,
        &attrs,
        best,
        Bytes::new(),
        size * 7 + size / 2,
    )
    .unwrap();
    let block = capped.block.block.clone();
    assert_eq!(block.body.transactions.len(), 7, "gas would allow all 20");
    assert!(capped.invalid.is_empty(), "what does not fit is not invalid");
    assert!(kit.tree.new_payload(block).unwrap().status.is_valid());
    // The default cap is far above 20 transfers.
    assert_eq!(kit.build_on(genesis, Address::ZERO).block.block.body.transactions.len(), 20);
}

#[test]
fn failing_transactions_are_skipped_and_reported() {
    let mut kit = Kit::new(TreeConfig::default());
    let genesis = kit.tree.head().hash;
    let stale = kit.transfer(3, 0, Address::repeat_byte(0xb0), 1);
    kit.submit(stale.clone());
    kit.submit(kit.transfer(3, 1, Address::repeat_byte(0xb0), 1));
    kit.submit(kit.transfer(0, 0, Address::repeat_byte(0xb1), 1));
    let first = kit.build_on(genesis, Address::ZERO).block.block.clone();
    assert_eq!(first.body.transactions.len(), 3);
    kit.tree.new_payload(first.clone()).unwrap();
    // The pool has not seen `first` yet: building on it offers nonces that are now too low.
    let second = kit.build_on(first.hash(), Address::ZERO);
    assert!(second.block.block.body.transactions.is_empty());
    assert_eq!(second.invalid.len(), 2, "key 3's and key 0's stale nonces are reported");
    assert!(second.invalid.contains(stale.tx_hash()));
    assert!(kit.tree.new_payload(second.block.block.clone()).unwrap().status.is_valid());
}

/// Issue #18: a pool filled through the RPC with the cheapest junk that passes validation (1 wei
/// fee cap and tip, nonce-gapped or parked below the base fee, from many senders) still takes a
/// peer's normal transactions, and the next block carries them.
#[test]
fn a_pool_full_of_junk_still_takes_and_builds_peer_transactions() {
    use alloy_consensus::{SignableTransaction, TxEip1559};
    use alloy_primitives::TxKind;
    use alloy_signer::SignerSync;
    use alloy_signer_local::PrivateKeySigner;

    use crate::{
        testkit::{CHAIN_ID, GWEI, genesis_json},
        txpool::{Origin, PoolConfig, PoolError, TxPool},
    };

    let junk_keys: Vec<PrivateKeySigner> = (0..40u8)
        .map(|i| PrivateKeySigner::from_bytes(&B256::repeat_byte(0x80 + i)).unwrap())
        .collect();
    let mut kit = Kit::with_genesis(TreeConfig::default(), |keys| {
        genesis_json(&[keys, junk_keys.as_slice()].concat(), false)
    });
    let ctx = kit.pool.read().context();
    let config = PoolConfig { max_count: 200, account_queue: 8, ..PoolConfig::default() };
    *kit.pool.write() = TxPool::new(config, ctx);
    let sign = |key: &PrivateKeySigner, nonce: u64, fee_cap: u128, tip: u128| {
        let tx = TxEip1559 {
            chain_id: CHAIN_ID,
            nonce,
            gas_limit: 21_000,
            max_fee_per_gas: fee_cap,
            max_priority_fee_per_gas: tip,
            to: TxKind::Call(Address::repeat_byte(0xb0)),
            ..Default::default()
        };
        let sig = key.sign_hash_sync(&tx.signature_hash()).unwrap();
        alloy_consensus::TxEnvelope::from(tx.into_signed(sig))
    };
    // 20 senders with 8 nonce-gapped transactions each, 20 with 2 below the 1 gwei base fee.
    for (i, key) in junk_keys.iter().enumerate() {
        let nonces = if i % 2 == 0 { 1..9 } else { 0..2 };
        for nonce in nonces {
            kit.add(sign(key, nonce, 1, 1), Origin::Local).unwrap();
        }
    }
    assert_eq!(kit.pool.read().len(), 200);

    // A peer's ordinary transfers (2 gwei fee cap, 1 gwei tip) from four senders.
    let mut peer = Vec::new();
    for key in 0..4 {
        for nonce in 0..5 {
            let tx = sign(&kit.keys[key], nonce, 2 * GWEI, GWEI);
            let added = kit.add(tx, Origin::External).unwrap();
            assert_eq!(added.evicted.len(), 1, "each takes the place of one junk transaction");
            peer.push(added.hash);
        }
    }
    assert_eq!(kit.pool.read().len(), 200);
    // More junk cannot push them out again: at best it takes the place of other junk.
    let more = kit.add(sign(&junk_keys[1], 2, 1, 1), Origin::Local).unwrap_err();
    assert_eq!(more, PoolError::PoolFull);
    let genesis = kit.tree.head().hash;
    let built = kit.build_on(genesis, Address::repeat_byte(0xfe));
    let included: Vec<B256> =
        built.block.block.body.transactions.iter().map(|tx| *tx.tx_hash()).collect();
    assert_eq!(included.len(), peer.len(), "the peer's transactions and nothing else");
    assert!(peer.iter().all(|hash| included.contains(hash)));
    assert!(built.invalid.is_empty());
    assert!(kit.tree.new_payload(built.block.block.clone()).unwrap().status.is_valid());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jobs_improve_until_resolved_and_then_stop() {
    use crate::payload_builder::job::{JobConfig, PayloadJobs};
    let mut kit = Kit::new(TreeConfig::default());
    let genesis = kit.tree.head().hash;
    let target = BuildTarget {
        parent: kit.tree.header(genesis).unwrap().unwrap(),
        parent_hash: genesis,
        layers: Vec::new(),
    };
    let config =
        JobConfig { interval: std::time::Duration::from_millis(10), ..JobConfig::default() };
    let jobs =
        PayloadJobs::new(kit.executor.clone(), kit.tree.db().clone(), kit.pool.clone(), config);
    let attrs = kit.attributes(Address::ZERO);
    let id = payload_id(genesis, &attrs);
    let job = jobs.start(id, target, attrs);
    // The first build starts with an empty pool; a transaction arrives afterwards.
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    kit.submit(kit.transfer(0, 0, Address::repeat_byte(0xb0), 1));
    // Rebuilds run every 10 ms while the pool changes; give the job time for one.
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    let built = job.resolve().await.unwrap();
    assert_eq!(
        built.block.block.body.transactions.len(),
        1,
        "the payload improved with the new transaction"
    );
    assert!(built.fees > U256::ZERO);
    // Resolved: a later pool change does not alter what getPayload returns.
    kit.submit(kit.transfer(1, 0, Address::repeat_byte(0xb1), 1));
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    let again = job.resolve().await.unwrap();
    assert_eq!(again.block.hash(), built.block.hash());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_on_an_older_parent_does_not_purge_the_pool() {
    use crate::payload_builder::job::{JobConfig, PayloadJobs};
    let mut kit = Kit::new(TreeConfig::default());
    let genesis = kit.tree.head().hash;
    let genesis_header = kit.tree.header(genesis).unwrap().unwrap();
    // Block A mines key 0's nonce 0; the pool moves to A and takes nonce 1 as pending.
    kit.submit(kit.transfer(0, 0, Address::repeat_byte(0xb0), 1));
    let a = kit.build_on(genesis, Address::ZERO);
    kit.tree.insert_executed(a.block.clone());
    kit.fcu(a.block.block.hash(), genesis);
    {
        let mut pool = kit.pool.write();
        let mined = *a.block.block.body.transactions[0].tx_hash();
        pool.remove_with_descendants(&mined);
        let ctx = crate::txpool::PoolContext::after(kit.executor.chain(), a.block.header());
        pool.on_new_head(ctx, [(kit.keys[0].address(), 1, U256::from(10).pow(U256::from(24)))]);
    }
    let next = kit.transfer(0, 1, Address::repeat_byte(0xb0), 1);
    kit.submit(next.clone());

    // A job still building on genesis (the old head) sees nonce 1 as "too high" there.
    let config =
        JobConfig { interval: std::time::Duration::from_millis(10), ..JobConfig::default() };
    let jobs =
        PayloadJobs::new(kit.executor.clone(), kit.tree.db().clone(), kit.pool.clone(), config);
    let attrs = kit.attributes(Address::ZERO);
    let target = BuildTarget { parent: genesis_header, parent_hash: genesis, layers: Vec::new() };
    let built = jobs.start(payload_id(genesis, &attrs), target, attrs).resolve().await.unwrap();
    assert!(built.block.block.body.transactions.is_empty());
    assert_eq!(built.invalid, vec![*next.tx_hash()], "reported as failing there");
    assert!(kit.pool.read().contains(next.tx_hash()), "but kept: it is valid on the head");
}
