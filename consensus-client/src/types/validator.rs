//! The validator set from the consensus genesis: public keys and voting power.

use super::PublicKey;
use thiserror::Error;

/// Index of a validator in the set (its position in the consensus genesis).
pub type ValidatorIndex = u16;

/// One validator.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Validator {
    /// Key that signs its proposals, votes and timeouts.
    pub public_key: PublicKey,
    /// Voting power (stake weight); zero is not allowed.
    pub voting_power: u64,
}

/// Why a validator set was refused.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum ValidatorSetError {
    /// No validators.
    #[error("the validator set is empty")]
    Empty,
    /// More validators than indices.
    #[error("{count} validators exceed the maximum {max}")]
    TooMany {
        /// How many were given.
        count: usize,
        /// The maximum.
        max: usize,
    },
    /// A validator has zero voting power.
    #[error("validator {index} has zero voting power")]
    ZeroPower {
        /// Its index.
        index: usize,
    },
    /// The total voting power overflows.
    #[error("total voting power overflows u64")]
    PowerOverflow,
    /// The same key appears twice.
    #[error("validator {index} repeats the key of validator {first}")]
    DuplicateKey {
        /// The repeated entry.
        index: usize,
        /// The first entry with that key.
        first: usize,
    },
}

/// An ordered set of validators; quorum is more than two thirds of the total voting power.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ValidatorSet {
    validators: Vec<Validator>,
    total_power: u64,
    quorum_power: u64,
}

impl ValidatorSet {
    /// Builds a set, refusing empty sets, zero power, duplicate keys and overflow.
    pub fn new(validators: Vec<Validator>) -> Result<Self, ValidatorSetError> {
        if validators.is_empty() {
            return Err(ValidatorSetError::Empty);
        }
        let max = usize::from(ValidatorIndex::MAX);
        if validators.len() > max {
            return Err(ValidatorSetError::TooMany { count: validators.len(), max });
        }
        let mut total: u64 = 0;
        for (index, v) in validators.iter().enumerate() {
            if v.voting_power == 0 {
                return Err(ValidatorSetError::ZeroPower { index });
            }
            if let Some(first) =
                validators[..index].iter().position(|o| o.public_key == v.public_key)
            {
                return Err(ValidatorSetError::DuplicateKey { index, first });
            }
            total = total.checked_add(v.voting_power).ok_or(ValidatorSetError::PowerOverflow)?;
        }
        // More than 2/3: the smallest q with 3q > 2·total. Computed in u128 so it cannot overflow.
        let quorum_power = ((u128::from(total) * 2) / 3 + 1) as u64;
        Ok(Self { validators, total_power: total, quorum_power })
    }

    /// Number of validators.
    pub fn len(&self) -> usize {
        self.validators.len()
    }
    /// Whether the set is empty (never true for a constructed set).
    pub fn is_empty(&self) -> bool {
        self.validators.is_empty()
    }
    /// The validator at `index`, if any.
    pub fn get(&self, index: ValidatorIndex) -> Option<&Validator> {
        self.validators.get(usize::from(index))
    }
    /// All validators in index order.
    pub fn iter(&self) -> impl Iterator<Item = &Validator> {
        self.validators.iter()
    }
    /// Voting power of `index` (zero for an unknown index).
    pub fn power(&self, index: ValidatorIndex) -> u64 {
        self.get(index).map_or(0, |v| v.voting_power)
    }
    /// Sum of all voting power.
    pub fn total_power(&self) -> u64 {
        self.total_power
    }
    /// Smallest power that is more than two thirds of the total.
    pub fn quorum_power(&self) -> u64 {
        self.quorum_power
    }
    /// Smallest power that is more than one third of the total (at least one honest validator).
    pub fn validity_power(&self) -> u64 {
        self.total_power / 3 + 1
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(powers: &[u64]) -> Result<ValidatorSet, ValidatorSetError> {
        ValidatorSet::new(
            powers
                .iter()
                .enumerate()
                .map(|(i, p)| Validator { public_key: PublicKey([i as u8; 32]), voting_power: *p })
                .collect(),
        )
    }

    #[test]
    fn quorum_is_more_than_two_thirds() {
        assert_eq!(set(&[1, 1, 1, 1]).unwrap().quorum_power(), 3);
        assert_eq!(set(&[1; 7]).unwrap().quorum_power(), 5);
        assert_eq!(set(&[1; 10]).unwrap().quorum_power(), 7);
        assert_eq!(set(&[1, 1, 1]).unwrap().quorum_power(), 3);
        // weighted: total 10, 2/3 = 6.67 -> 7
        assert_eq!(set(&[4, 3, 2, 1]).unwrap().quorum_power(), 7);
        assert_eq!(set(&[1; 4]).unwrap().validity_power(), 2);
    }

    #[test]
    fn refuses_bad_sets() {
        assert_eq!(set(&[]), Err(ValidatorSetError::Empty));
        assert_eq!(set(&[1, 0]), Err(ValidatorSetError::ZeroPower { index: 1 }));
        assert_eq!(set(&[u64::MAX, 1]), Err(ValidatorSetError::PowerOverflow));
        let dup = ValidatorSet::new(vec![
            Validator { public_key: PublicKey([1; 32]), voting_power: 1 },
            Validator { public_key: PublicKey([1; 32]), voting_power: 1 },
        ]);
        assert_eq!(dup, Err(ValidatorSetError::DuplicateKey { index: 1, first: 0 }));
    }
}
