//! Events as the contract (§1) defines them: id, type, tenant and the JSON envelope.

use serde::{Deserialize, Serialize};
use std::fmt;

use crate::{Error, Result};

/// The largest body the contract allows (§1: 256 KiB).
pub const MAX_BODY_BYTES: usize = 256 * 1024;

/// The first byte of a JSON text past its leading whitespace: `{` for an object, `[` for an
/// array. serde's derived structs also read a JSON array, field by field in declaration order,
/// so a reader that wants an object looks here first.
pub fn json_opening(text: &[u8]) -> Option<u8> {
    text.iter().copied().find(|b| !b.is_ascii_whitespace())
}

/// Checks the shape shared by ids and tenants: they travel in AMQP properties, HTTP headers and
/// Redis keys, so whitespace and control characters are refused.
fn is_token(s: &str) -> bool {
    !s.is_empty() && s.len() <= 255 && s.bytes().all(|b| b.is_ascii_graphic())
}

/// The idempotency key of an event, sent as `webhook-id`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct EventId(String);

impl EventId {
    /// A fresh id: `evt_` + a time-ordered UUIDv7, so ids sort by creation time.
    pub fn generate() -> Self {
        Self(format!("evt_{}", uuid::Uuid::now_v7().simple()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for EventId {
    type Error = Error;
    fn try_from(s: String) -> Result<Self> {
        if is_token(&s) {
            Ok(Self(s))
        } else {
            Err(Error::EventId(s))
        }
    }
}

/// The event type, e.g. `log.blocked`: 1–64 characters of `a-z 0-9 . _ -`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct EventType(String);

impl EventType {
    /// The catalog used when `HOOKFLEET_EVENT_TYPES` is not set.
    pub const DEFAULT_CATALOG: [&'static str; 6] = [
        "log.blocked",
        "log.pending_approval",
        "log.failed",
        "approval.approved",
        "approval.rejected",
        Self::TEST,
    ];

    /// The type of the event sent by "test endpoint".
    pub const TEST: &'static str = "webhook.test";

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for EventType {
    type Error = Error;
    fn try_from(s: String) -> Result<Self> {
        let valid = (1..=64).contains(&s.len())
            && s.bytes().all(|b| {
                b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'.' | b'_' | b'-')
            });
        if valid {
            Ok(Self(s))
        } else {
            Err(Error::EventType(s))
        }
    }
}

/// The account whose endpoints receive an event.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct TenantId(String);

impl TenantId {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for TenantId {
    type Error = Error;
    fn try_from(s: String) -> Result<Self> {
        if is_token(&s) {
            Ok(Self(s))
        } else {
            Err(Error::Tenant(s))
        }
    }
}

macro_rules! string_newtype_impls {
    ($($t:ty),*) => {$(
        impl fmt::Display for $t {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
        impl From<$t> for String {
            fn from(v: $t) -> String {
                v.0
            }
        }
        impl std::str::FromStr for $t {
            type Err = Error;
            fn from_str(s: &str) -> Result<Self> {
                Self::try_from(s.to_owned())
            }
        }
    )*};
}
string_newtype_impls!(EventId, EventType, TenantId);

/// The payload the producer, the CLI and the API build:
/// `{"id", "type", "timestamp" (RFC 3339), "data"}`. Receivers get these bytes unchanged.
#[derive(Debug, Clone, Serialize)]
pub struct Envelope<'a> {
    pub id: &'a EventId,
    #[serde(rename = "type")]
    pub event_type: &'a EventType,
    pub timestamp: String,
    pub data: &'a serde_json::Value,
}

impl<'a> Envelope<'a> {
    /// Serializes the envelope for an event that happened at `at`.
    pub fn to_bytes(
        id: &'a EventId,
        event_type: &'a EventType,
        at: time::OffsetDateTime,
        data: &'a serde_json::Value,
    ) -> Vec<u8> {
        let timestamp = at
            .format(&time::format_description::well_known::Rfc3339)
            .unwrap_or_else(|_| at.unix_timestamp().to_string());
        let envelope = Envelope {
            id,
            event_type,
            timestamp,
            data,
        };
        // Serializing plain strings and a `Value` cannot fail.
        serde_json::to_vec(&envelope).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_types_follow_the_contract() {
        for ok in [
            "log.blocked",
            "a",
            "webhook.test",
            "x-1_2.y",
            &"a".repeat(64),
        ] {
            assert!(ok.parse::<EventType>().is_ok(), "{ok}");
        }
        for bad in [
            "",
            "Log.blocked",
            "log blocked",
            "log/blocked",
            "é",
            &"a".repeat(65),
        ] {
            assert!(bad.parse::<EventType>().is_err(), "{bad}");
        }
    }

    #[test]
    fn ids_and_tenants_refuse_whitespace_and_empty() {
        assert!("evt_1".parse::<EventId>().is_ok());
        assert!("".parse::<EventId>().is_err());
        assert!("a b".parse::<EventId>().is_err());
        assert!("acme\n".parse::<TenantId>().is_err());
        assert!("acme-inc".parse::<TenantId>().is_ok());
    }

    #[test]
    fn generated_ids_are_prefixed_and_ordered() {
        let a = EventId::generate();
        let b = EventId::generate();
        assert!(a.as_str().starts_with("evt_"));
        assert!(a.as_str() < b.as_str());
    }

    #[test]
    fn envelope_has_the_contract_fields_in_order() {
        let id: EventId = "evt_1".parse().unwrap();
        let ty: EventType = "log.blocked".parse().unwrap();
        let at = time::OffsetDateTime::from_unix_timestamp(1_614_265_330).unwrap();
        let body = Envelope::to_bytes(&id, &ty, at, &serde_json::json!({"k": 1}));
        assert_eq!(
            String::from_utf8(body).unwrap(),
            r#"{"id":"evt_1","type":"log.blocked","timestamp":"2021-02-25T15:02:10Z","data":{"k":1}}"#
        );
    }
}
