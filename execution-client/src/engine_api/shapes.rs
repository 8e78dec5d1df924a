//! Exact parameter shapes per method version, checked on the raw JSON keys: serde alone would
//! ignore unknown fields and accept a V3 payload where a V2 one is required.

use serde_json::{Map, Value};

/// `ExecutionPayloadV1` fields.
pub const PAYLOAD_V1: &[&str] = &[
    "parentHash",
    "feeRecipient",
    "stateRoot",
    "receiptsRoot",
    "logsBloom",
    "prevRandao",
    "blockNumber",
    "gasLimit",
    "gasUsed",
    "timestamp",
    "extraData",
    "baseFeePerGas",
    "blockHash",
    "transactions",
];
/// Added by `ExecutionPayloadV2`.
pub const PAYLOAD_V2_EXTRA: &[&str] = &["withdrawals"];
/// Added by `ExecutionPayloadV3`.
pub const PAYLOAD_V3_EXTRA: &[&str] = &["blobGasUsed", "excessBlobGas"];
/// `ForkchoiceStateV1` fields.
pub const FORKCHOICE_STATE: &[&str] = &["headBlockHash", "safeBlockHash", "finalizedBlockHash"];
/// `PayloadAttributesV1` fields.
pub const ATTRIBUTES_V1: &[&str] = &["timestamp", "prevRandao", "suggestedFeeRecipient"];
/// Added by `PayloadAttributesV2`.
pub const ATTRIBUTES_V2_EXTRA: &[&str] = &["withdrawals"];
/// Added by `PayloadAttributesV3`.
pub const ATTRIBUTES_V3_EXTRA: &[&str] = &["parentBeaconBlockRoot"];

/// The structure versions a JSON object can be (1, 2 or 3), judged by its keys.
pub fn version_of(
    object: &Map<String, Value>,
    base: &[&str],
    v2: &[&str],
    v3: &[&str],
) -> Option<u8> {
    // A null value counts as absent (spec: "any field having null value MUST be considered as
    // not provided").
    let present: Vec<&str> =
        object.iter().filter(|(_, v)| !v.is_null()).map(|(k, _)| k.as_str()).collect();
    let matches = |fields: &[&[&str]]| {
        let expected: Vec<&str> = fields.iter().flat_map(|f| f.iter().copied()).collect();
        present.len() == expected.len() && expected.iter().all(|k| present.contains(k))
    };
    if matches(&[base]) {
        Some(1)
    } else if matches(&[base, v2]) {
        Some(2)
    } else if matches(&[base, v2, v3]) {
        Some(3)
    } else {
        None
    }
}

/// The payload structure version, if the object is exactly one of them.
pub fn payload_version(object: &Map<String, Value>) -> Option<u8> {
    version_of(object, PAYLOAD_V1, PAYLOAD_V2_EXTRA, PAYLOAD_V3_EXTRA)
}

/// The payload attributes structure version, if the object is exactly one of them.
pub fn attributes_version(object: &Map<String, Value>) -> Option<u8> {
    version_of(object, ATTRIBUTES_V1, ATTRIBUTES_V2_EXTRA, ATTRIBUTES_V3_EXTRA)
}

/// Whether the object is exactly a `ForkchoiceStateV1`.
pub fn is_forkchoice_state(object: &Map<String, Value>) -> bool {
    object.len() == FORKCHOICE_STATE.len()
        && FORKCHOICE_STATE.iter().all(|k| object.get(*k).is_some_and(|v| !v.is_null()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn object(keys: &[&str]) -> Map<String, Value> {
        keys.iter().map(|k| (k.to_string(), Value::from("0x0"))).collect()
    }

    #[test]
    fn payload_versions_by_keys() {
        let v1 = object(PAYLOAD_V1);
        assert_eq!(payload_version(&v1), Some(1));
        let mut v2 = v1.clone();
        v2.insert("withdrawals".into(), Value::Array(vec![]));
        assert_eq!(payload_version(&v2), Some(2));
        let mut v3 = v2.clone();
        v3.insert("blobGasUsed".into(), "0x0".into());
        assert_eq!(payload_version(&v3), None, "half a V3 is no version");
        v3.insert("excessBlobGas".into(), "0x0".into());
        assert_eq!(payload_version(&v3), Some(3));
        let mut unknown = v3.clone();
        unknown.insert("slotNumber".into(), "0x1".into());
        assert_eq!(payload_version(&unknown), None);
        let mut nulled = v3;
        nulled.insert("excessBlobGas".into(), Value::Null);
        assert_eq!(payload_version(&nulled), None);
    }

    #[test]
    fn attributes_and_state() {
        let mut attrs = object(ATTRIBUTES_V1);
        assert_eq!(attributes_version(&attrs), Some(1));
        attrs.insert("withdrawals".into(), Value::Array(vec![]));
        attrs.insert("parentBeaconBlockRoot".into(), "0x0".into());
        assert_eq!(attributes_version(&attrs), Some(3));
        assert!(is_forkchoice_state(&object(FORKCHOICE_STATE)));
        let mut extra = object(FORKCHOICE_STATE);
        extra.insert("x".into(), "0x0".into());
        assert!(!is_forkchoice_state(&extra));
    }
}
