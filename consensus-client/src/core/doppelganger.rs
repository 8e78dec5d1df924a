//! Doppelganger protection: a validator whose safety data may be stale does not sign until the
//! network has moved past every round it could have signed before.
//!
//! Safety rules only protect what they remember. A data dir that was wiped, restored from a
//! backup or copied to a second machine starts with a `last_voted_round` below rounds this key
//! has already signed; signing at once can equivocate. Like Ethereum validators' doppelganger
//! protection, the core watches the certificates it verifies after start and abstains when
//! they show its data is behind:
//!
//! - **At start** the core is *watching* until the first verified certificate (QC or TC)
//!   tells it where the network is; peers send their highest certificates to a validator that
//!   connects, so this takes a round trip. If that certificate's round
//!   `R > last_voted_round + 1`, the network moved on at least two rounds while this validator
//!   signed nothing it remembers: its data may be stale. While watching it votes and times out
//!   as before (with no certificate yet there is nothing to be stale against, and waiting for
//!   one that needs its signature could halt the chain) but proposes nothing: a restarted
//!   leader cannot tell whether it already proposed in the round it finds (a proposal is signed
//!   before anyone else signs that round, so no certificate shows it), so it proposes only in
//!   rounds after the one it entered with its first certificate. A brand-new chain (no safety
//!   data, nothing in the execution client beyond genesis) proposes at once, otherwise no
//!   validator would ever propose the first block.
//! - **Missing data on a running chain** (no safety data, but the execution client or the
//!   consensus storage holds blocks beyond genesis: a wiped consensus data dir) abstains
//!   through the round of the first certificate whatever its round.
//! - **At any time**, a verified certificate carrying this validator's own signature for a
//!   round above `last_voted_round` proves that something with this key signed what the data
//!   does not remember (a restored backup, or a second instance of the key).
//! - **Abstaining** through round `T` (the round entered when the evidence was seen): no vote,
//!   no timeout, no proposal while the current round is `≤ T`. The core enters a round above
//!   `T` only on a certificate of round `≥ T`, formed by the others; from then on it signs only
//!   rounds the network had not reached when it started watching. Not a timer: a validator
//!   cut off from the network stays silent however long that takes.
//!
//! Stored messages (the last vote, timeout and proposal re-sent after a restart) are not new
//! signatures and are re-sent as before.

use crate::types::Round;

impl std::fmt::Display for AbstainReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::BehindTheNetwork { certificate_round, last_voted_round } => write!(
                f,
                "first certificate after start is of round {certificate_round}, safety data \
                 last signed round {last_voted_round}"
            ),
            Self::OwnSignatureNotRemembered { certificate_round, last_voted_round } => write!(
                f,
                "a certificate of round {certificate_round} carries our signature, safety data \
                 last signed round {last_voted_round}"
            ),
            Self::DataMissing { certificate_round } => write!(
                f,
                "no safety data on a chain that has run (first certificate: round \
                 {certificate_round})"
            ),
        }
    }
}

/// What is known at start.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StartData {
    /// Safety data was read from storage.
    Stored,
    /// No safety data, and nothing shows the chain ever ran (a brand-new chain).
    Missing,
    /// No safety data, but the chain has run (blocks beyond genesis are known locally).
    MissingOnRunningChain,
}

/// Why a validator abstains.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AbstainReason {
    /// The first certificate after start is more than one round above the last signed round.
    BehindTheNetwork {
        /// That certificate's round.
        certificate_round: Round,
        /// The last round the safety data remembers signing.
        last_voted_round: Round,
    },
    /// A certificate carries this validator's signature for a round it has no record of.
    OwnSignatureNotRemembered {
        /// The certificate's round.
        certificate_round: Round,
        /// The last round the safety data remembers signing.
        last_voted_round: Round,
    },
    /// The safety data is missing but the chain has run.
    DataMissing {
        /// The first certificate's round.
        certificate_round: Round,
    },
}

/// The protection's state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Doppelganger {
    /// Started; no certificate verified yet. Signs only on a brand-new chain.
    Watching(StartData),
    /// Signs nothing while the current round is at most `through`.
    Abstaining {
        /// The last round in which nothing is signed.
        through: Round,
        /// The evidence.
        reason: AbstainReason,
    },
    /// Signing normally (still checking for our own unremembered signatures), but proposing
    /// only above `no_proposal_through`: a restarted leader cannot know whether it proposed in
    /// the round it finds the network in (a proposal is signed before anyone else signs that
    /// round, so no certificate shows it).
    Off {
        /// The last round in which no proposal is signed.
        no_proposal_through: Round,
    },
    /// Turned off by configuration: never abstains.
    Disabled,
}

impl Doppelganger {
    /// The state at start; `enabled = false` turns the protection off (tests of what it guards).
    pub fn new(enabled: bool, start: StartData) -> Self {
        if enabled { Self::Watching(start) } else { Self::Disabled }
    }

    /// Feeds a verified certificate of `round` (`ours`: it carries our signature), seen while
    /// the safety data's last signed round is `last_voted_round`, after which the core is in
    /// `current_round`. Returns the reason when this starts an abstention. A certificate that
    /// is not `live` (history: the last QC of a synced range) says nothing of where the network
    /// is now, so it only counts as evidence of our own unremembered signature.
    pub fn observe(
        &mut self,
        round: Round,
        ours: bool,
        last_voted_round: Round,
        current_round: Round,
        live: bool,
    ) -> Option<AbstainReason> {
        if round == 0 || *self == Self::Disabled {
            return None;
        }
        let our_unremembered_signature = ours && round > last_voted_round;
        if !live && !our_unremembered_signature {
            return None;
        }
        let watching = match self {
            Self::Watching(start) => Some(*start),
            _ => None,
        };
        let reason = if ours && round > last_voted_round {
            Some(AbstainReason::OwnSignatureNotRemembered {
                certificate_round: round,
                last_voted_round,
            })
        } else if watching == Some(StartData::MissingOnRunningChain) {
            Some(AbstainReason::DataMissing { certificate_round: round })
        } else if watching.is_some()
            && round > last_voted_round + 1
            && !(watching == Some(StartData::Missing) && round < 2)
        {
            Some(AbstainReason::BehindTheNetwork { certificate_round: round, last_voted_round })
        } else {
            None
        };
        match (reason, &*self) {
            // Already abstaining at least that far.
            (Some(_), Self::Abstaining { through, .. }) if *through >= current_round => None,
            (Some(reason), _) => {
                *self = Self::Abstaining { through: current_round, reason };
                Some(reason)
            }
            (None, Self::Watching(start)) => {
                let no_proposal_through =
                    if *start == StartData::Stored { current_round } else { 0 };
                *self = Self::Off { no_proposal_through };
                None
            }
            (None, _) => None,
        }
    }

    /// Whether a new signature for `round` may be made; leaves the abstention once `round` is
    /// above it (returning `Some(through)` through `resumed` for the log).
    pub fn may_sign(&mut self, round: Round, resumed: &mut Option<Round>) -> bool {
        match *self {
            Self::Abstaining { through, .. } if round <= through => false,
            Self::Abstaining { through, .. } => {
                *self = Self::Off { no_proposal_through: through };
                *resumed = Some(through);
                true
            }
            // Stored data signs as before until a certificate shows it stale: when no
            // certificate exists yet (nothing formed since the chain began), waiting for one
            // that needs our signature would halt the chain.
            Self::Watching(start) => start != StartData::MissingOnRunningChain,
            Self::Off { .. } | Self::Disabled => true,
        }
    }

    /// Whether a new proposal for `round` may be signed ([`Self::may_sign`] and, after a
    /// restart, not in the round the network was found in).
    pub fn may_propose(&mut self, round: Round, resumed: &mut Option<Round>) -> bool {
        self.may_sign(round, resumed)
            && match *self {
                Self::Off { no_proposal_through } => round > no_proposal_through,
                Self::Watching(start) => start == StartData::Missing,
                _ => true,
            }
    }

    /// Whether votes and timeouts for `round` are withheld now (what [`Self::may_sign`]
    /// answers, without changing state).
    pub fn withholds(&self, round: Round) -> bool {
        match *self {
            Self::Abstaining { through, .. } => round <= through,
            Self::Watching(start) => start == StartData::MissingOnRunningChain,
            Self::Off { .. } | Self::Disabled => false,
        }
    }

    /// The last round of the current abstention, if any.
    pub fn abstaining_through(&self) -> Option<Round> {
        match self {
            Self::Abstaining { through, .. } => Some(*through),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_brand_new_chain_signs_at_once_a_restart_after_its_first_certificate() {
        let mut d = Doppelganger::new(true, StartData::Missing);
        assert!(d.may_sign(1, &mut None));
        assert_eq!(d.observe(1, false, 0, 2, true), None);
        assert!(matches!(d, Doppelganger::Off { .. }));
        let mut d = Doppelganger::new(true, StartData::Stored);
        assert!(d.may_sign(8, &mut None), "votes and timeouts before the first certificate");
        assert!(!d.may_propose(8, &mut None), "no proposal before the first certificate");
        assert_eq!(d.observe(8, false, 7, 9, true), None);
        assert!(d.may_sign(9, &mut None));
        // It may have proposed in round 9 before the restart: no proposal before round 10.
        assert!(!d.may_propose(9, &mut None));
        assert!(d.may_propose(10, &mut None));
    }

    #[test]
    fn missing_data_on_a_running_chain_abstains_whatever_the_round() {
        let mut d = Doppelganger::new(true, StartData::MissingOnRunningChain);
        assert!(!d.may_sign(1, &mut None));
        assert!(matches!(d.observe(1, false, 0, 2, true), Some(AbstainReason::DataMissing { .. })));
        assert!(!d.may_sign(2, &mut None));
        assert!(d.may_sign(3, &mut None));
    }

    #[test]
    fn a_validator_behind_the_network_abstains_through_the_round_it_found() {
        let mut d = Doppelganger::new(true, StartData::Stored);
        let reason = d.observe(40, false, 0, 41, true).unwrap();
        assert!(matches!(reason, AbstainReason::BehindTheNetwork { certificate_round: 40, .. }));
        // Later certificates above its data do not restart the wait.
        assert_eq!(d.observe(41, false, 0, 41, true), None);
        assert!(!d.may_sign(41, &mut None));
        let mut resumed = None;
        assert!(d.may_sign(42, &mut resumed));
        assert_eq!((resumed, d.abstaining_through()), (Some(41), None));
    }

    #[test]
    fn our_own_unremembered_signature_stops_us_at_any_time() {
        let mut d = Doppelganger::new(true, StartData::Stored);
        assert_eq!(d.observe(5, true, 5, 6, true), None);
        assert!(matches!(d, Doppelganger::Off { .. }));
        assert!(d.observe(7, true, 5, 8, true).is_some());
        assert!(!d.may_sign(8, &mut None));
        assert!(d.may_sign(9, &mut None));
    }

    #[test]
    fn disabled_never_abstains() {
        let mut d = Doppelganger::new(false, StartData::Stored);
        assert_eq!(d.observe(40, false, 0, 41, true), None);
        assert_eq!(d.observe(40, true, 0, 41, true), None);
        assert!(d.may_sign(41, &mut None));
    }

    /// History (a synced range's last QC) does not say where the network is: a node without
    /// safety data keeps watching, but history carrying our unremembered signature still
    /// counts.
    #[test]
    fn history_does_not_set_the_abstention_but_our_signature_in_it_does() {
        let mut d = Doppelganger::new(true, StartData::MissingOnRunningChain);
        assert_eq!(d.observe(1, false, 0, 2, false), None);
        assert!(d.withholds(2), "still watching");
        assert!(matches!(
            d.observe(9, false, 0, 10, true),
            Some(AbstainReason::DataMissing { .. })
        ));
        assert_eq!(d.abstaining_through(), Some(10));
        let mut d = Doppelganger::new(true, StartData::Stored);
        assert!(matches!(
            d.observe(7, true, 5, 8, false),
            Some(AbstainReason::OwnSignatureNotRemembered { .. })
        ));
    }
}
