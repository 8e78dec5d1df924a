//! Sets of changed trie keys, asked "does anything under this path change?".

use alloy_trie::Nibbles;

/// The full-length (64-nibble) keys that changed in one trie, sorted. The walker descends into a
/// stored subtree only when [`PrefixSet::contains`] says a changed key lies under it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PrefixSet {
    keys: Vec<Nibbles>,
}

impl PrefixSet {
    /// Builds the set from keys in any order; duplicates are dropped.
    pub fn new(mut keys: Vec<Nibbles>) -> Self {
        keys.sort_unstable();
        keys.dedup();
        Self { keys }
    }

    /// This set with `keys` added.
    pub fn with_keys(&self, keys: impl IntoIterator<Item = Nibbles>) -> Self {
        let mut all = self.keys.clone();
        all.extend(keys);
        Self::new(all)
    }

    /// Whether some changed key starts with `prefix` (the empty prefix matches any key).
    pub fn contains(&self, prefix: &Nibbles) -> bool {
        let index = self.keys.partition_point(|key| key < prefix);
        self.keys.get(index).is_some_and(|key| key.starts_with(prefix))
    }

    /// Number of changed keys.
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// Whether nothing changed.
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn contains_prefixes_of_changed_keys_only() {
        let set = PrefixSet::new(vec![
            Nibbles::from_nibbles([1, 2, 3, 4]),
            Nibbles::from_nibbles([1, 2, 5, 0]),
            Nibbles::from_nibbles([0xf, 0, 0, 0]),
            Nibbles::from_nibbles([1, 2, 3, 4]),
        ]);
        assert_eq!(set.len(), 3);
        assert!(set.contains(&Nibbles::default()));
        assert!(set.contains(&Nibbles::from_nibbles([1])));
        assert!(set.contains(&Nibbles::from_nibbles([1, 2])));
        assert!(set.contains(&Nibbles::from_nibbles([1, 2, 5])));
        assert!(set.contains(&Nibbles::from_nibbles([0xf])));
        assert!(!set.contains(&Nibbles::from_nibbles([1, 2, 4])));
        assert!(!set.contains(&Nibbles::from_nibbles([1, 3])));
        assert!(!set.contains(&Nibbles::from_nibbles([0])));
        assert!(!set.contains(&Nibbles::from_nibbles([1, 2, 3, 4, 0])));
        assert!(!PrefixSet::default().contains(&Nibbles::default()));
    }
}
