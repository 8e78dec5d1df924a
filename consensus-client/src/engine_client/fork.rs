//! Which Engine API method versions apply at a block's timestamp.
//!
//! The versions follow the execution-apis spec: `newPayloadV1` (Paris), `V2` (Shanghai), `V3`
//! (Cancun: versioned hashes and the parent beacon block root), `V4` (Prague: execution
//! requests); `forkchoiceUpdatedV1/V2/V3` (V3 from Cancun on, Prague included);
//! `getPayloadV1/V2/V3/V4`. The schedule comes from the consensus genesis, which copies the EL
//! genesis' fork times, so the CL never asks the EL which fork is active.

use serde::{Deserialize, Serialize};

/// An Engine-relevant fork, in activation order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum EngineFork {
    /// The merge: payload V1.
    Paris,
    /// Withdrawals: payload V2.
    Shanghai,
    /// Blobs and beacon roots: payload V3.
    Cancun,
    /// Execution requests: payload V3 with requests.
    Prague,
}

/// Fork activation timestamps (seconds); `None`: never active.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ForkSchedule {
    /// Shanghai activation time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shanghai_time: Option<u64>,
    /// Cancun activation time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cancun_time: Option<u64>,
    /// Prague activation time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prague_time: Option<u64>,
}

impl ForkSchedule {
    /// Every fork up to Prague active from genesis.
    pub const fn prague_at_genesis() -> Self {
        Self { shanghai_time: Some(0), cancun_time: Some(0), prague_time: Some(0) }
    }

    /// The fork active at `timestamp`.
    pub fn at(&self, timestamp: u64) -> EngineFork {
        let active = |t: Option<u64>| t.is_some_and(|t| timestamp >= t);
        if active(self.prague_time) {
            EngineFork::Prague
        } else if active(self.cancun_time) {
            EngineFork::Cancun
        } else if active(self.shanghai_time) {
            EngineFork::Shanghai
        } else {
            EngineFork::Paris
        }
    }
}

impl EngineFork {
    /// `engine_newPayloadVn`.
    pub const fn new_payload_method(self) -> &'static str {
        match self {
            Self::Paris => "engine_newPayloadV1",
            Self::Shanghai => "engine_newPayloadV2",
            Self::Cancun => "engine_newPayloadV3",
            Self::Prague => "engine_newPayloadV4",
        }
    }

    /// `engine_forkchoiceUpdatedVn`.
    pub const fn forkchoice_updated_method(self) -> &'static str {
        match self {
            Self::Paris => "engine_forkchoiceUpdatedV1",
            Self::Shanghai => "engine_forkchoiceUpdatedV2",
            Self::Cancun | Self::Prague => "engine_forkchoiceUpdatedV3",
        }
    }

    /// `engine_getPayloadVn`.
    pub const fn get_payload_method(self) -> &'static str {
        match self {
            Self::Paris => "engine_getPayloadV1",
            Self::Shanghai => "engine_getPayloadV2",
            Self::Cancun => "engine_getPayloadV3",
            Self::Prague => "engine_getPayloadV4",
        }
    }

    /// Whether payloads of this fork carry withdrawals (V2 and later).
    pub const fn has_withdrawals(self) -> bool {
        !matches!(self, Self::Paris)
    }

    /// Whether payload attributes carry the parent beacon block root (V3 and later).
    pub const fn has_beacon_root(self) -> bool {
        matches!(self, Self::Cancun | Self::Prague)
    }

    /// The methods this client may call under this schedule, for `exchangeCapabilities`.
    pub fn all_methods() -> Vec<String> {
        let forks = [Self::Paris, Self::Shanghai, Self::Cancun, Self::Prague];
        let mut out: Vec<String> = Vec::new();
        for f in forks {
            for m in [f.new_payload_method(), f.forkchoice_updated_method(), f.get_payload_method()]
            {
                if !out.iter().any(|x| x == m) {
                    out.push(m.to_string());
                }
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_follow_the_fork_at_the_timestamp() {
        let s =
            ForkSchedule { shanghai_time: Some(10), cancun_time: Some(20), prague_time: Some(30) };
        assert_eq!(s.at(0), EngineFork::Paris);
        assert_eq!(s.at(10), EngineFork::Shanghai);
        assert_eq!(s.at(29), EngineFork::Cancun);
        assert_eq!(s.at(30), EngineFork::Prague);
        assert_eq!(s.at(30).new_payload_method(), "engine_newPayloadV4");
        assert_eq!(s.at(30).forkchoice_updated_method(), "engine_forkchoiceUpdatedV3");
        assert_eq!(s.at(25).get_payload_method(), "engine_getPayloadV3");
        assert_eq!(s.at(15).new_payload_method(), "engine_newPayloadV2");
        assert_eq!(ForkSchedule::default().at(u64::MAX), EngineFork::Paris);
        let all = EngineFork::all_methods();
        assert_eq!(all.len(), 11, "{all:?}");
    }
}
