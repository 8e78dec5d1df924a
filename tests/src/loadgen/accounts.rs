//! Set-up before the timed phase: the senders are funded from the dev account by a fan-out of
//! transfers, and for the ERC-20 workload the token is deployed and handed out the same way.
//! Every level of the fan-out is committed before the next one is sent.

use alloy_primitives::{Address, Bytes, TxKind, U256};
use alloy_signer_local::PrivateKeySigner;
use serde_json::{Value, json};

use super::{
    Chain, LoadgenError, erc20,
    rpc::{RpcClient, quantity, quantity_u64},
    schedule::FanoutTree,
    signing::{SignedTx, TxRequest, sign_all},
    tracking::{CommitWatcher, tag_number},
};

/// Payments per payer and level (under the pool's 64-per-sender limit).
pub const FANOUT: usize = 32;

/// What a payment moves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Asset {
    /// Ether (value transfers).
    Ether,
    /// Units of the bench token at this address.
    Token(Address),
}

/// Next nonces (`pending`) of `addresses`.
pub async fn nonces(rpc: &RpcClient, addresses: &[Address]) -> Result<Vec<u64>, LoadgenError> {
    let calls: Vec<(&str, Value)> =
        addresses.iter().map(|a| ("eth_getTransactionCount", json!([a, "pending"]))).collect();
    rpc.batch_chunked(&calls, 200)
        .await?
        .into_iter()
        .zip(addresses)
        .map(|(reply, a)| {
            reply.ok().as_ref().and_then(quantity_u64).ok_or_else(|| LoadgenError::Rpc {
                url: rpc.url().to_string(),
                method: "eth_getTransactionCount".into(),
                message: format!("no nonce for {a}"),
            })
        })
        .collect()
}

/// Balances (`latest`) of `addresses`.
pub async fn balances(rpc: &RpcClient, addresses: &[Address]) -> Result<Vec<u128>, LoadgenError> {
    let calls: Vec<(&str, Value)> =
        addresses.iter().map(|a| ("eth_getBalance", json!([a, "latest"]))).collect();
    rpc.batch_chunked(&calls, 200)
        .await?
        .into_iter()
        .zip(addresses)
        .map(|(reply, a)| {
            // Balances above u128 are plenty: saturate.
            reply
                .ok()
                .and_then(|v| v.as_str().and_then(|s| s.parse::<U256>().ok()))
                .map(|b| u128::try_from(b).unwrap_or(u128::MAX))
                .ok_or_else(|| LoadgenError::Rpc {
                    url: rpc.url().to_string(),
                    method: "eth_getBalance".into(),
                    message: format!("no balance for {a}"),
                })
        })
        .collect()
}

/// Token balances (`balanceOf`, `latest`) of `owners`.
pub async fn token_balances(
    rpc: &RpcClient,
    token: Address,
    owners: &[Address],
) -> Result<Vec<U256>, LoadgenError> {
    let calls: Vec<(&str, Value)> = owners
        .iter()
        .map(|o| {
            ("eth_call", json!([{ "to": token, "data": erc20::balance_of_calldata(*o) }, "latest"]))
        })
        .collect();
    rpc.batch_chunked(&calls, 200)
        .await?
        .into_iter()
        .zip(owners)
        .map(|(reply, o)| {
            reply
                .ok()
                .and_then(|v| v.as_str().and_then(|s| s.parse::<Bytes>().ok()))
                .filter(|b| b.len() == 32)
                .map(|b| U256::from_be_slice(&b))
                .ok_or_else(|| LoadgenError::Rpc {
                    url: rpc.url().to_string(),
                    method: "eth_call".into(),
                    message: format!("no token balance for {o}"),
                })
        })
        .collect()
}

/// Sends set-up transactions to the first node, fails on any refusal, and waits until all are
/// committed; returns the highest block holding one.
pub async fn submit_and_wait(chain: &Chain, txs: &[SignedTx]) -> Result<u64, LoadgenError> {
    let rpc = chain.first()?;
    let mut watcher = CommitWatcher::start(rpc.clone(), chain.tag).await?;
    let calls: Vec<(&str, Value)> =
        txs.iter().map(|t| ("eth_sendRawTransaction", json!([t.raw_hex()]))).collect();
    for (reply, tx) in rpc.batch_chunked(&calls, 100).await?.into_iter().zip(txs) {
        if let Err(message) = reply {
            // A re-sent identical transaction is fine.
            if !message.contains("already known") {
                return Err(LoadgenError::Setup(format!(
                    "set-up transaction {} refused: {message}",
                    tx.hash
                )));
            }
        }
    }
    let hashes: Vec<_> = txs.iter().map(|t| t.hash).collect();
    watcher.wait_for(&hashes, chain.poll, chain.timeout).await
}

/// Pays each target (`targets[i]` is a sender index) `own[i]` of `asset` through a fan-out
/// tree rooted at `funder`: payers at each level pay their children their subtree's total,
/// plus gas when the asset is ether. Returns the highest block used (0 when nothing was paid).
pub async fn distribute(
    chain: &Chain,
    funder: &PrivateKeySigner,
    senders: &[PrivateKeySigner],
    targets: &[usize],
    own: &[u128],
    asset: Asset,
) -> Result<u64, LoadgenError> {
    let rpc = chain.first()?;
    let tree = FanoutTree::new(targets.len(), FANOUT);
    let (gas, per_payment) = match asset {
        Asset::Ether => (21_000, chain.fees.max_cost(21_000)),
        Asset::Token(_) => (erc20::TRANSFER_GAS, 0),
    };
    let amounts = tree.subtree_amounts(own, per_payment);
    // Node 0 signs with the funder's key; node j with target j - 1's.
    let mut keys = vec![funder.clone()];
    keys.extend(targets.iter().filter_map(|&s| senders.get(s).cloned()));
    if keys.len() != targets.len() + 1 {
        return Err(LoadgenError::Setup("a target is not a sender".into()));
    }
    if asset == Asset::Ether {
        let have = balances(rpc, &[funder.address()]).await?.first().copied().unwrap_or(0);
        let need = amounts.first().copied().unwrap_or(0);
        if have < need {
            return Err(LoadgenError::Setup(format!(
                "the funder {} has {have} wei, the senders need {need}",
                funder.address()
            )));
        }
    }
    let mut highest = 0;
    for level in tree.levels() {
        let mut payers: Vec<usize> = level.iter().map(|&(p, _)| p).collect();
        payers.dedup();
        let payer_addresses: Vec<Address> = payers.iter().map(|&p| keys[p].address()).collect();
        let mut next_nonce: std::collections::HashMap<usize, u64> =
            payers.iter().copied().zip(nonces(rpc, &payer_addresses).await?).collect();
        let requests: Vec<TxRequest> = level
            .iter()
            .map(|&(payer, child)| {
                let nonce = next_nonce.get(&payer).copied().unwrap_or(0);
                next_nonce.insert(payer, nonce + 1);
                let to = keys[child].address();
                let amount = U256::from(amounts[child]);
                let (to, value, input) = match asset {
                    Asset::Ether => (to, amount, Bytes::new()),
                    Asset::Token(token) => {
                        (token, U256::ZERO, erc20::transfer_calldata(to, amount))
                    }
                };
                TxRequest {
                    signer: payer,
                    nonce,
                    to: TxKind::Call(to),
                    value,
                    input,
                    gas_limit: gas,
                }
            })
            .collect();
        let signed = sign_all(&keys, chain.chain_id, chain.fees, &requests)?;
        highest = highest.max(submit_and_wait(chain, &signed).await?);
    }
    Ok(highest)
}

/// Deploys the bench token from `deployer` with `supply` units; returns its address and the
/// block holding the deployment.
pub async fn deploy_token(
    chain: &Chain,
    deployer: &PrivateKeySigner,
    supply: U256,
) -> Result<(Address, u64), LoadgenError> {
    let rpc = chain.first()?;
    let nonce = nonces(rpc, &[deployer.address()]).await?.first().copied().unwrap_or(0);
    let request = TxRequest {
        signer: 0,
        nonce,
        to: TxKind::Create,
        value: U256::ZERO,
        input: erc20::creation_code(supply)?,
        gas_limit: erc20::DEPLOY_GAS,
    };
    let signed = sign_all(std::slice::from_ref(deployer), chain.chain_id, chain.fees, &[request])?;
    let block = submit_and_wait(chain, &signed).await?;
    let hash = signed.first().map(|t| t.hash).unwrap_or_default();
    let receipt = rpc.call("eth_getTransactionReceipt", json!([hash])).await?;
    if quantity(&receipt["status"]) != Some(1) {
        return Err(LoadgenError::Setup(format!("the token deployment failed: {receipt}")));
    }
    let address = receipt["contractAddress"]
        .as_str()
        .and_then(|s| s.parse::<Address>().ok())
        .unwrap_or_else(|| deployer.address().create(nonce));
    Ok((address, block))
}

/// Waits until every node's commit tag has reached `block`, so each node's pool sees the
/// set-up's state.
pub async fn wait_nodes_at(chain: &Chain, block: u64) -> Result<(), LoadgenError> {
    let deadline = std::time::Instant::now() + chain.timeout;
    for rpc in &chain.clients {
        loop {
            if tag_number(rpc, chain.tag).await? >= block {
                break;
            }
            if std::time::Instant::now() > deadline {
                return Err(LoadgenError::Timeout(format!(
                    "{} did not reach block {block} within {:?}",
                    rpc.url(),
                    chain.timeout
                )));
            }
            tokio::time::sleep(chain.poll).await;
        }
    }
    Ok(())
}
