//! The admin HTTP API (docs/contract.md §5) against a real `hookfleet api`, Redis, RabbitMQ
//! and, where deliveries happen, a real worker and receiver.
//!
//! - `access`: tokens (operator, tenant, none, forged) and what each may see.
//! - `catalog`: event types' schemas, examples and deprecation; publishing checked.
//! - `controls`: endpoint controls: custom and sensitive headers.
//! - `endpoints`: validation, create/read/change/remove, Test Webhook.
//! - `deliveries`: what workers do with what the API set up: the attempt log, rotated secrets,
//!   repeated event ids, dead letters, sealed secrets.
//! - `hardening`: what one tenant can do to the fleet and to others.
//! - `operational`: hookfleet's own events at an operator endpoint; the operator tenant kept
//!   from tenants.

mod access;
mod catalog;
mod controls;
mod deliveries;
mod endpoints;
mod hardening;
mod operational;

use serde_json::Value;

use crate::util::Answer;

const BLOCKED: &str = "log.blocked";

/// A key for `HOOKFLEET_SECRET_KEY`: base64 of the 32 bytes 0..=31.
const SEALING_KEY: &str = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";

/// The `id` of an answered resource.
fn id_of(value: &Value) -> String {
    value["id"].as_str().unwrap().to_owned()
}

/// The names of the fields a `validation_failed` answer lists, sorted.
fn wrong_fields(answer: &Answer) -> Vec<String> {
    assert_eq!(answer.status, 422, "{:?}", answer.body);
    assert_eq!(answer.body["error"]["code"], "validation_failed");
    let mut fields: Vec<String> = (answer.body["error"]["fields"].as_array().unwrap().iter())
        .map(|f| f["field"].as_str().unwrap().to_owned())
        .collect();
    fields.sort_unstable();
    fields
}

/// An endpoint's event types, sorted (their order is not part of the contract).
fn events_of(endpoint: &Value) -> Vec<String> {
    let mut events: Vec<String> = (endpoint["events"].as_array().unwrap().iter())
        .map(|e| e.as_str().unwrap().to_owned())
        .collect();
    events.sort_unstable();
    events
}
