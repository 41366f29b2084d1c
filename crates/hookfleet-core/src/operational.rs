//! hookfleet's own events ("operational webhooks", docs/contract.md §3): what happens to
//! endpoints and their deliveries, told to the platform through hookfleet itself. They are
//! published under one reserved tenant (`HOOKFLEET_OPERATOR_TENANT`, default `_operator`),
//! whose endpoints the operator subscribes like any other, so these events are signed,
//! retried, logged and isolated like a customer's.
//!
//! Each type has a built-in JSON Schema (2020-12) of its `data` and an example, listed by
//! `GET /v1/event-types` to operator tokens; the tests hold what hookfleet sends to them.

use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::{EndpointId, EventId, EventType};

/// The operator tenant when `HOOKFLEET_OPERATOR_TENANT` is not set.
pub const DEFAULT_OPERATOR_TENANT: &str = "_operator";

/// One kind of operational event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Operational {
    EndpointCreated,
    EndpointUpdated,
    EndpointDeleted,
    EndpointDisabled,
    EndpointEnabled,
    /// An event gave up at an endpoint: its retries are used up, or it was not retried.
    AttemptExhausted,
    /// An endpoint's deliveries failed `HOOKFLEET_CIRCUIT_THRESHOLD` times in a row.
    AttemptFailing,
    /// A success after a `message.attempt.failing`.
    AttemptRecovered,
}

impl Operational {
    pub const ALL: [Self; 8] = [
        Self::EndpointCreated,
        Self::EndpointUpdated,
        Self::EndpointDeleted,
        Self::EndpointDisabled,
        Self::EndpointEnabled,
        Self::AttemptExhausted,
        Self::AttemptFailing,
        Self::AttemptRecovered,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Self::EndpointCreated => "endpoint.created",
            Self::EndpointUpdated => "endpoint.updated",
            Self::EndpointDeleted => "endpoint.deleted",
            Self::EndpointDisabled => "endpoint.disabled",
            Self::EndpointEnabled => "endpoint.enabled",
            Self::AttemptExhausted => "message.attempt.exhausted",
            Self::AttemptFailing => "message.attempt.failing",
            Self::AttemptRecovered => "message.attempt.recovered",
        }
    }

    /// The event type (valid by construction).
    pub fn event_type(self) -> EventType {
        self.name()
            .parse()
            .expect("operational type names are valid event types")
    }

    /// The id of this kind's event about `endpoint` for one `cause` (a record version, a
    /// streak's start, an event id): the same cause told twice, by two workers or a retry, is
    /// one event, and the receiver's de-duplication delivers it once. Readable when it fits an
    /// id's 255 characters, else hashed.
    pub fn event_id(self, endpoint: &EndpointId, cause: &str) -> EventId {
        let readable = format!("{}.{endpoint}.{cause}", self.name());
        let id = if readable.len() <= 255 && readable.bytes().all(|b| b.is_ascii_graphic()) {
            readable
        } else {
            let hash = Sha256::digest(readable.as_bytes());
            let hex: String = hash[..16].iter().map(|b| format!("{b:02x}")).collect();
            format!("{}.{hex}", self.name())
        };
        EventId::try_from(id).expect("a readable or hashed id is a valid event id")
    }

    /// The kind an event type names, if it is an operational one.
    pub fn of(event_type: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|kind| kind.name() == event_type)
    }

    pub fn description(self) -> &'static str {
        match self {
            Self::EndpointCreated => "An endpoint was created.",
            Self::EndpointUpdated => {
                "An endpoint was changed (`changed` names the fields; a new secret is `secret`)."
            }
            Self::EndpointDeleted => "An endpoint was removed.",
            Self::EndpointDisabled => {
                "An endpoint was turned off: by its tenant, by the operator, or by hookfleet (`by: breaker`: it answered 410 Gone, or failed without a break for HOOKFLEET_DISABLE_AFTER)."
            }
            Self::EndpointEnabled => "An endpoint was turned back on.",
            Self::AttemptExhausted => {
                "An event gave up at an endpoint and went to the dead-letter queue. At most one a minute per endpoint: `suppressed` counts those given up on since the previous one without a notice of their own."
            }
            Self::AttemptFailing => {
                "An endpoint's deliveries failed HOOKFLEET_CIRCUIT_THRESHOLD times in a row (its circuit opened); once per streak of failures."
            }
            Self::AttemptRecovered => {
                "An endpoint answered 2xx again after a message.attempt.failing."
            }
        }
    }

    /// The JSON Schema (2020-12) of this kind's `data`.
    pub fn schema(self) -> Value {
        let mut properties = json!({
            "tenant": {"type": "string", "description": "The endpoint's tenant"},
            "endpoint_id": {"type": "string"},
        });
        let mut required = vec!["tenant", "endpoint_id"];
        let mut add = |name: &'static str, schema: Value, needed: bool| {
            properties[name] = schema;
            if needed {
                required.push(name);
            }
        };
        let string = json!({"type": "string"});
        let status = json!({"type": ["integer", "null"], "description": "The last HTTP status; null when there was no answer"});
        let attempt = json!({"type": "integer", "minimum": 1});
        match self {
            Self::EndpointCreated => {
                add("url", string.clone(), true);
                add(
                    "events",
                    json!({"type": "array", "items": {"type": "string"}}),
                    true,
                );
                add("description", string, true);
            }
            Self::EndpointUpdated => {
                let fields = json!({"type": "array", "items": {"type": "string"}, "minItems": 1});
                add("changed", fields, true);
                add("version", json!({"type": "integer"}), true);
            }
            Self::EndpointDeleted => {}
            Self::EndpointDisabled => {
                let by = json!({"enum": ["tenant", "operator", "breaker"]});
                add("by", by, true);
                add("reason", string, true);
            }
            Self::EndpointEnabled => {
                add("by", json!({"enum": ["tenant", "operator"]}), true);
            }
            Self::AttemptExhausted | Self::AttemptFailing | Self::AttemptRecovered => {
                add("event_id", string.clone(), true);
                add("event_type", string.clone(), true);
                add("attempt", attempt, true);
                add("last_status", status, true);
                if self != Self::AttemptRecovered {
                    add("reason", string, true);
                }
                match self {
                    Self::AttemptExhausted => {
                        add("suppressed", json!({"type": "integer", "minimum": 0}), true)
                    }
                    Self::AttemptFailing => {
                        add("failures", json!({"type": "integer", "minimum": 1}), true)
                    }
                    _ => {}
                }
            }
        }
        json!({
            "$schema": "https://json-schema.org/draft/2020-12/schema",
            "type": "object",
            "required": required,
            "properties": properties,
        })
    }

    /// An example `data` (it meets [`Operational::schema`]; Test Webhook sends it).
    pub fn example(self) -> Value {
        let mut data =
            json!({"tenant": "acme", "endpoint_id": "ep_0193c5b2a7e47d3c9f0e1a2b3c4d5e6f"});
        let delivery = json!({
            "event_id": "evt_0193c5b2a7e47d3c9f0e1a2b3c4d5e70",
            "event_type": "log.blocked",
        });
        let fields = match self {
            Self::EndpointCreated => json!({
                "url": "https://hooks.acme.example/agentwarden",
                "events": ["log.blocked", "approval.approved"],
                "description": "Acme's on-call bridge",
            }),
            Self::EndpointUpdated => json!({"changed": ["url", "events"], "version": 4}),
            Self::EndpointDeleted => json!({}),
            Self::EndpointDisabled => json!({"by": "breaker", "reason": "answered 410 Gone"}),
            Self::EndpointEnabled => json!({"by": "tenant"}),
            Self::AttemptExhausted => json!({
                "attempt": 4, "last_status": 503,
                "reason": "gave up after 4 attempts", "suppressed": 0,
            }),
            Self::AttemptFailing => json!({
                "attempt": 2, "last_status": null,
                "reason": "timed out after 5s", "failures": 5,
            }),
            Self::AttemptRecovered => json!({"attempt": 3, "last_status": 200}),
        };
        let delivery_kind = matches!(
            self,
            Self::AttemptExhausted | Self::AttemptFailing | Self::AttemptRecovered
        );
        let extra = [Some(fields), delivery_kind.then_some(delivery)];
        for part in extra.into_iter().flatten() {
            if let (Some(data), Value::Object(part)) = (data.as_object_mut(), part) {
                data.extend(part);
            }
        }
        data
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn names_are_event_types_and_read_back() {
        for kind in Operational::ALL {
            assert_eq!(kind.event_type().as_str(), kind.name());
            assert_eq!(Operational::of(kind.name()), Some(kind));
        }
        assert_eq!(Operational::of("log.blocked"), None);
    }

    #[test]
    fn ids_name_the_cause_and_stay_valid() {
        let endpoint: EndpointId = "ep_1".parse().unwrap();
        let kind = Operational::EndpointDisabled;
        assert_eq!(
            kind.event_id(&endpoint, "v3").as_str(),
            "endpoint.disabled.ep_1.v3"
        );
        let long = "x".repeat(300);
        let hashed = Operational::AttemptExhausted.event_id(&endpoint, &long);
        assert!(hashed.as_str().len() < 80, "{hashed}");
        assert_eq!(
            hashed,
            Operational::AttemptExhausted.event_id(&endpoint, &long)
        );
    }

    #[test]
    fn examples_have_every_required_field() {
        for kind in Operational::ALL {
            let (schema, example) = (kind.schema(), kind.example());
            for field in schema["required"].as_array().unwrap_or(&Vec::new()) {
                let field = field.as_str().unwrap_or_default();
                assert!(example.get(field).is_some(), "{}: {field}", kind.name());
            }
        }
    }
}
