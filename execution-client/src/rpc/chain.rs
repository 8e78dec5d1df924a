//! Reading blocks, receipts and state for a request: the view's in-memory canonical blocks
//! first, then MDBX.

use std::sync::Arc;

use alloy_consensus::{Header, ReceiptEnvelope, TxEnvelope};
use alloy_eips::{BlockId, BlockNumberOrTag};
use alloy_primitives::{Address, B256, U256};

use super::{RpcContext, RpcError, RpcResult};
use crate::{
    fork_choice::{ChainView, OverlayState},
    storage::SealedBlock,
};

/// A canonical block with its senders.
#[derive(Debug, Clone)]
pub(crate) struct BlockData {
    /// The block.
    pub block: SealedBlock,
    /// One sender per transaction.
    pub senders: Vec<Address>,
}

impl BlockData {
    pub(crate) fn number(&self) -> u64 {
        self.block.header.number
    }

    pub(crate) fn hash(&self) -> B256 {
        self.block.hash()
    }

    pub(crate) fn header(&self) -> &Header {
        &self.block.header
    }
}

/// Most storage keys one `eth_getProof` proves.
pub(crate) const MAX_PROOF_KEYS: usize = 1024;

/// A transaction located in the canonical chain.
#[derive(Debug, Clone)]
pub(crate) struct LocatedTx {
    pub tx: TxEnvelope,
    pub sender: Address,
    pub block_hash: B256,
    pub block_number: u64,
    pub index: usize,
    pub base_fee: Option<u64>,
    pub timestamp: u64,
}

impl RpcContext {
    /// The number a tag or number names, checked against the head.
    pub(crate) fn resolve_number(
        &self,
        view: &ChainView,
        tag: BlockNumberOrTag,
    ) -> RpcResult<Option<u64>> {
        Ok(match tag {
            BlockNumberOrTag::Latest | BlockNumberOrTag::Pending => Some(view.head.number),
            BlockNumberOrTag::Safe => Some(view.safe.ok_or(RpcError::SafeNotFound)?.number),
            BlockNumberOrTag::Finalized => {
                Some(view.finalized.ok_or(RpcError::FinalizedNotFound)?.number)
            }
            BlockNumberOrTag::Earliest => Some(0),
            BlockNumberOrTag::Number(n) => (n <= view.head.number).then_some(n),
        })
    }

    /// The canonical block number of a block id; `None` when unknown or not canonical.
    pub(crate) fn resolve_id(&self, view: &ChainView, id: BlockId) -> RpcResult<Option<u64>> {
        match id {
            BlockId::Number(tag) => self.resolve_number(view, tag),
            BlockId::Hash(hash) => self.number_of_hash(view, hash.block_hash),
        }
    }

    /// The number of a canonical block by hash.
    pub(crate) fn number_of_hash(&self, view: &ChainView, hash: B256) -> RpcResult<Option<u64>> {
        if let Some(block) = view.block_by_hash(hash) {
            return Ok(Some(block.number()));
        }
        let number = self.db.block_number(hash)?;
        // A block persisted after the view was taken is not part of this view's chain yet.
        Ok(number.filter(|n| *n <= view.head.number))
    }

    /// A canonical header by number.
    pub(crate) fn header_by_number(
        &self,
        view: &ChainView,
        number: u64,
    ) -> RpcResult<Option<(Header, B256)>> {
        if number > view.head.number {
            return Ok(None);
        }
        if let Some(block) = view.block_by_number(number) {
            return Ok(Some((block.header().clone(), block.hash())));
        }
        let Some(header) = self.db.header(number)? else { return Ok(None) };
        let hash = self.db.canonical_hash(number)?.unwrap_or_else(|| header.hash_slow());
        Ok(Some((header, hash)))
    }

    /// A canonical block with senders by number.
    pub(crate) fn block_by_number(
        &self,
        view: &ChainView,
        number: u64,
    ) -> RpcResult<Option<BlockData>> {
        if number > view.head.number {
            return Ok(None);
        }
        if let Some(block) = view.block_by_number(number) {
            return Ok(Some(BlockData {
                block: block.block.clone(),
                senders: block.senders.clone(),
            }));
        }
        let Some(block) = self.db.block(number)? else { return Ok(None) };
        let senders = self.db.senders(number)?.unwrap_or_default();
        Ok(Some(BlockData { block, senders }))
    }

    /// `eth_getProof`: EIP-1186 proofs of an account and some of its slots at a block (in memory,
    /// or at most [`crate::storage::PROOF_HISTORY`] blocks below the persisted tip).
    pub(crate) fn proof(
        &self,
        address: Address,
        keys: Vec<alloy_serde::storage::JsonStorageKey>,
        block: BlockId,
    ) -> RpcResult<alloy_rpc_types_eth::EIP1186AccountProofResponse> {
        use alloy_rpc_types_eth::{EIP1186AccountProofResponse, EIP1186StorageProof};
        if keys.len() > MAX_PROOF_KEYS {
            return Err(RpcError::LimitExceeded(format!(
                "too many storage keys: {} (limit {MAX_PROOF_KEYS})",
                keys.len()
            )));
        }
        let view = self.snapshot();
        let number = self.resolve_id(&view, block)?.ok_or(RpcError::HeaderNotFound)?;
        let (_, hash) = self.header_by_number(&view, number)?.ok_or(RpcError::HeaderNotFound)?;
        let pending: Vec<_> = view
            .canonical
            .iter()
            .map(|b| (b.number(), b.hash(), b.header().parent_hash, &b.bundle))
            .collect();
        let slots: Vec<B256> = keys.iter().map(|k| k.as_b256()).collect();
        let proof = match self.db.state_proof(number, hash, &pending, address, &slots) {
            Ok(proof) => proof,
            Err(crate::storage::StorageError::ProofUnavailable(why)) => {
                return Err(RpcError::Execution(why));
            }
            Err(e) => return Err(e.into()),
        };
        let (account, storage_hash) = match proof.account {
            Some((account, root)) => (Some(account), root),
            None => (None, alloy_trie::EMPTY_ROOT_HASH),
        };
        Ok(EIP1186AccountProofResponse {
            address,
            balance: account.map_or(U256::ZERO, |a| a.balance),
            code_hash: account.map_or(alloy_primitives::KECCAK256_EMPTY, |a| a.code_hash),
            nonce: account.map_or(0, |a| a.nonce),
            storage_hash,
            account_proof: proof.account_proof,
            storage_proof: keys
                .into_iter()
                .zip(proof.storage)
                .map(|(key, (_, value, proof))| EIP1186StorageProof { key, value, proof })
                .collect(),
        })
    }

    /// A canonical block with senders by id.
    pub(crate) fn block_by_id(
        &self,
        view: &ChainView,
        id: BlockId,
    ) -> RpcResult<Option<BlockData>> {
        match self.resolve_id(view, id)? {
            Some(number) => self.block_by_number(view, number),
            None => Ok(None),
        }
    }

    /// Receipts of canonical block `number`.
    pub(crate) fn receipts_by_number(
        &self,
        view: &ChainView,
        number: u64,
    ) -> RpcResult<Option<Arc<Vec<ReceiptEnvelope>>>> {
        if number > view.head.number {
            return Ok(None);
        }
        if let Some(block) = view.block_by_number(number) {
            return Ok(Some(Arc::new(block.receipts.clone())));
        }
        Ok(self.db.receipts(number)?.map(Arc::new))
    }

    /// A canonical transaction by hash.
    pub(crate) fn transaction_by_hash(
        &self,
        view: &ChainView,
        hash: B256,
    ) -> RpcResult<Option<LocatedTx>> {
        for block in view.canonical.iter().rev() {
            if let Some(index) =
                block.block.body.transactions.iter().position(|t| *t.tx_hash() == hash)
            {
                let header = block.header();
                return Ok(Some(LocatedTx {
                    tx: block.block.body.transactions[index].clone(),
                    sender: block.senders.get(index).copied().unwrap_or_default(),
                    block_hash: block.hash(),
                    block_number: block.number(),
                    index,
                    base_fee: header.base_fee_per_gas,
                    timestamp: header.timestamp,
                }));
            }
        }
        let Some((tx, location)) = self.db.transaction_by_hash(hash)? else { return Ok(None) };
        if location.block_number > view.head.number {
            return Ok(None);
        }
        let index = location.index as usize;
        let sender =
            match self.db.senders(location.block_number)?.and_then(|s| s.get(index).copied()) {
                Some(sender) => sender,
                None => self.senders.recover(&tx)?,
            };
        let header = self.db.header(location.block_number)?.ok_or(RpcError::HeaderNotFound)?;
        Ok(Some(LocatedTx {
            tx,
            sender,
            block_hash: location.block_hash,
            block_number: location.block_number,
            index,
            base_fee: header.base_fee_per_gas,
            timestamp: header.timestamp,
        }))
    }

    /// The state after a block and that block's header; `header not found` when unknown.
    pub(crate) fn state_at_id<'a>(
        &'a self,
        view: &ChainView,
        id: BlockId,
    ) -> RpcResult<(OverlayState<'a>, Header)> {
        let number = self.resolve_id(view, id)?.ok_or(RpcError::HeaderNotFound)?;
        let (header, _) = self.header_by_number(view, number)?.ok_or(RpcError::HeaderNotFound)?;
        Ok((view.state_at(&self.db, number)?, header))
    }
}
