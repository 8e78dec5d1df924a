//! Root of one Merkle-Patricia trie (the account trie or one storage trie), recomputed from the
//! stored branch nodes and the keys that changed.
//!
//! The walk: start at the top stored branch node; for each child nibble of a node at path `P`,
//! - the child `P‖i` is a branch whose hash is stored (hash mask) and no changed key lies under
//!   it: feed `(P‖i, hash)` to the hash builder as an opaque subtree and skip its leaves;
//! - else, if a stored node lies under it (tree mask): descend to the top node under `P‖i`;
//! - else: its leaves are read one by one from the leaf source.
//!
//! Leaves before, between and after the reused subtrees are fed in key order, so the
//! [`HashBuilder`] sees exactly the sorted sequence a full rebuild would see, with unchanged
//! subtrees collapsed to their hashes. Only branch children (never leaves or extensions) have
//! their hash reused, so a collapse of the parent cannot change a reused node. Every stored node
//! the walk visited is deleted unless the hash builder emits it again; nodes inside reused
//! subtrees are left as they are, since nothing under them changed.

use super::PrefixSet;
use alloy_primitives::B256;
use alloy_trie::{
    BranchNodeCompact, EMPTY_ROOT_HASH, HashBuilder, Nibbles,
    proof::{ProofNodes, ProofRetainer},
};
use std::collections::BTreeMap;

/// Node changes of one trie: `Some` to write, `None` to delete, keyed by node path.
pub type NodeUpdates = BTreeMap<Nibbles, Option<BranchNodeCompact>>;

/// A subtree whose stored hash is reused.
struct Reused {
    path: Nibbles,
    hash: B256,
    stored_below: bool,
}

/// What one trie's root computation reads.
pub trait TrieSource {
    /// Error of the underlying store.
    type Error;
    /// The first stored branch node with a path `>= path` in nibble order, `None` past the last.
    fn seek_node(
        &mut self,
        path: &Nibbles,
    ) -> Result<Option<(Nibbles, BranchNodeCompact)>, Self::Error>;
    /// The first leaf of the *new* state with key `>= key` and its RLP value, `None` past the last.
    fn seek_leaf(&mut self, key: &B256) -> Result<Option<(B256, Vec<u8>)>, Self::Error>;
}

/// Computes the root of one trie and the node changes that make the stored nodes match it.
///
/// `changed` must hold every key whose leaf differs between the state the stored nodes describe
/// and the new state `source` yields; with an empty store this is a full rebuild.
pub fn trie_root<S: TrieSource>(
    source: &mut S,
    changed: &PrefixSet,
) -> Result<(B256, NodeUpdates), S::Error> {
    let (root, updates, _) = walk(source, changed, None)?;
    Ok((root, updates))
}

/// Computes the root of one trie and the nodes on the paths of the `targets` keys (EIP-1186
/// proofs: present keys end in their leaf, absent ones where their path leaves the trie).
///
/// `changed` is as for [`trie_root`]; the walk also descends along every target's path, so each
/// node on it is rebuilt (and retained) instead of collapsed into a stored hash.
pub fn trie_proof<S: TrieSource>(
    source: &mut S,
    changed: &PrefixSet,
    targets: &[B256],
) -> Result<(B256, ProofNodes), S::Error> {
    let keys: Vec<Nibbles> = targets.iter().map(Nibbles::unpack).collect();
    let along = changed.with_keys(keys.iter().copied());
    let (root, _, proof) = walk(source, &along, Some(ProofRetainer::new(keys)))?;
    Ok((root, proof.unwrap_or_default()))
}

/// The walk behind [`trie_root`] and [`trie_proof`].
fn walk<S: TrieSource>(
    source: &mut S,
    changed: &PrefixSet,
    retainer: Option<ProofRetainer>,
) -> Result<(B256, NodeUpdates, Option<ProofNodes>), S::Error> {
    let proving = retainer.is_some();
    let mut reused = Vec::new();
    let mut visited = Vec::new();
    if let Some((path, node)) = source.seek_node(&Nibbles::default())? {
        if changed.is_empty()
            && path.is_empty()
            && let Some(root) = node.root_hash
        {
            return Ok((root, NodeUpdates::new(), None));
        }
        // Depth-first, children in nibble order: a stack of (node, next child) frames.
        visited.push(path);
        let mut frames: Vec<(Nibbles, BranchNodeCompact, u8)> = vec![(path, node, 0)];
        while let Some((path, node, nibble)) = frames.last_mut() {
            if *nibble == 16 {
                frames.pop();
                continue;
            }
            let i = *nibble;
            *nibble += 1;
            if !node.state_mask.is_bit_set(i) {
                continue;
            }
            let mut child = *path;
            child.push(i);
            if node.hash_mask.is_bit_set(i) && !changed.contains(&child) {
                reused.push(Reused {
                    path: child,
                    hash: node.hash_for_nibble(i),
                    stored_below: node.tree_mask.is_bit_set(i),
                });
            } else if node.tree_mask.is_bit_set(i)
                && let Some((below_path, below)) = source.seek_node(&child)?
                && below_path.starts_with(&child)
            {
                visited.push(below_path);
                frames.push((below_path, below, 0));
            }
        }
    }

    let mut builder = HashBuilder::default().with_updates(!proving);
    if let Some(retainer) = retainer {
        builder = builder.with_proof_retainer(retainer);
    }
    // The leaf position is lazy: a gap between two reused subtrees that no key can fall into
    // (consecutive siblings, the usual case) costs no seek at all.
    let mut next = LeafCursor::At(B256::ZERO);
    for subtree in reused {
        let start = first_key_under(&subtree.path);
        loop {
            if let LeafCursor::At(from) = next {
                if from >= start {
                    break;
                }
                next = LeafCursor::Fetched(source.seek_leaf(&from)?);
            }
            let LeafCursor::Fetched(Some((key, value))) = &next else { break };
            let nibbles = Nibbles::unpack(key);
            if nibbles >= subtree.path {
                break;
            }
            builder.add_leaf(nibbles, value);
            next = LeafCursor::after(key);
        }
        builder.add_branch(subtree.path, subtree.hash, subtree.stored_below);
        next = match subtree.path.increment() {
            Some(after) => LeafCursor::At(first_key_under(&after)),
            None => LeafCursor::Fetched(None),
        };
    }
    loop {
        if let LeafCursor::At(from) = next {
            next = LeafCursor::Fetched(source.seek_leaf(&from)?);
        }
        let LeafCursor::Fetched(Some((key, value))) = &next else { break };
        builder.add_leaf(Nibbles::unpack(key), value);
        next = LeafCursor::after(key);
    }
    let root = builder.root();
    if proving {
        return Ok((root, NodeUpdates::new(), Some(builder.take_proof_nodes())));
    }
    let (_, new_nodes) = builder.split();
    let mut updates: NodeUpdates = visited.into_iter().map(|path| (path, None)).collect();
    updates.extend(new_nodes.into_iter().map(|(path, node)| (path, Some(node))));
    debug_assert!(root != EMPTY_ROOT_HASH || updates.values().all(Option::is_none));
    Ok((root, updates, None))
}

/// Where the next leaf comes from.
enum LeafCursor {
    /// Not read yet: the first leaf with key `>=` this one.
    At(B256),
    /// Read: this leaf, or `None` past the last.
    Fetched(Option<(B256, Vec<u8>)>),
}

impl LeafCursor {
    /// The position right after the leaf at `key`.
    fn after(key: &B256) -> Self {
        match successor(key) {
            Some(next) => Self::At(next),
            None => Self::Fetched(None),
        }
    }
}

/// `key + 1`, `None` for the largest key.
pub fn successor(key: &B256) -> Option<B256> {
    let value = alloy_primitives::U256::from_be_bytes(key.0);
    value
        .checked_add(alloy_primitives::U256::from(1))
        .map(|next| B256::from(next.to_be_bytes::<32>()))
}

/// The smallest 32-byte key starting with the nibble path `prefix`.
fn first_key_under(prefix: &Nibbles) -> B256 {
    let mut key = B256::ZERO;
    for (i, nibble) in prefix.iter().enumerate().take(64) {
        let byte = &mut key.0[i / 2];
        *byte |= if i % 2 == 0 { nibble << 4 } else { nibble };
    }
    key
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_helpers() {
        assert_eq!(successor(&B256::ZERO), Some(B256::with_last_byte(1)));
        assert_eq!(successor(&B256::repeat_byte(0xff)), None);
        let mut carried = B256::ZERO;
        carried.0[30] = 1;
        assert_eq!(successor(&B256::with_last_byte(0xff)), Some(carried));
        let key = first_key_under(&Nibbles::from_nibbles([0xa, 0xb, 0xc]));
        assert_eq!(&key.0[..3], &[0xab, 0xc0, 0]);
        assert_eq!(
            Nibbles::from_nibbles([1, 0xf]).increment(),
            Some(Nibbles::from_nibbles([2, 0]))
        );
        assert!(Nibbles::from_nibbles([1, 2]) < Nibbles::from_nibbles([1, 2, 0]));
        assert!(Nibbles::from_nibbles([1, 2, 0xf]) < Nibbles::from_nibbles([1, 3]));
    }
}
