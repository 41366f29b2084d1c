//! What callers get back.

use std::collections::{BTreeMap, BTreeSet};

use hookfleet_core::attempt::{Attempt, ErrorClass};
use hookfleet_core::{DisabledBy, Endpoint, Scheme};
use serde::Serialize;
use utoipa::ToSchema;

/// An endpoint as shown. The secret is only present right after create and rotation: the one
/// moment its owner needs it to configure the receiver.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct EndpointView {
    pub id: String,
    pub tenant: String,
    pub url: String,
    /// Event types, or `["*"]`.
    pub events: Vec<String>,
    pub enabled: bool,
    /// Who turned it off, while it is off: `tenant`, `operator` (a tenant cannot turn it back
    /// on) or `breaker` (failing too long, or a 410 answer).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub disabled_by: Option<DisabledBy>,
    pub description: String,
    /// RFC 3339, UTC.
    pub created_at: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub secret: Option<String>,
    /// `hmac-sha256` (`v1`) or `ed25519` (`v1a`).
    pub signature: Scheme,
    /// With `ed25519`: `whpk_` + base64 of the public key a receiver verifies with.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub public_key: Option<String>,
    /// When a rotation's replaced secret stops signing (RFC 3339), during the rotation.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub previous_secret_until: Option<String>,
    /// Headers sent with every delivery, by lower-case name; a sensitive one's value is
    /// `********` (except right after create, or with the CLI's `--reveal`).
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub headers: BTreeMap<String, String>,
    /// The names in `headers` whose values are sealed at rest and masked.
    #[serde(skip_serializing_if = "BTreeSet::is_empty")]
    pub sensitive_headers: BTreeSet<String>,
    /// Deliveries a second, fleet-wide, when limited.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rate_limit: Option<u32>,
    /// Deliveries in flight at once per worker, when capped below the workers' own cap.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_in_flight: Option<u32>,
    /// The payload filter, as written, when there is one.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub filter: Option<serde_json::Value>,
    /// Delivered one at a time, in the order the broker accepted the events.
    pub ordered: bool,
    /// An ordered endpoint's events waiting, and when its first is next tried.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ordered_backlog: Option<OrderedBacklog>,
    /// `closed`, `open` or `half_open` (as the circuit breaker shared by all workers has it).
    pub circuit: CircuitView,
    /// The newest attempt, when there is one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_attempt: Option<Attempt>,
}

/// What waits at an ordered endpoint.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct OrderedBacklog {
    /// Events waiting, the one being sent included.
    pub length: u64,
    /// When the first is next tried (RFC 3339, UTC); absent when nothing waits.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_attempt_at: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum CircuitView {
    Closed,
    Open,
    HalfOpen,
}

/// No header masked: what `reveal` shows.
static NONE_HIDDEN: BTreeSet<String> = BTreeSet::new();

impl EndpointView {
    pub(crate) fn new(
        endpoint: &Endpoint,
        reveal: bool,
        circuit: CircuitView,
        last_attempt: Option<Attempt>,
    ) -> Self {
        Self {
            id: endpoint.id.to_string(),
            tenant: endpoint.tenant.to_string(),
            url: endpoint.url.clone(),
            events: endpoint.events.clone().into(),
            enabled: endpoint.enabled,
            disabled_by: endpoint.disabled_by,
            description: endpoint.description.clone(),
            created_at: endpoint.created_at.clone(),
            secret: reveal.then(|| endpoint.secret.expose().to_owned()),
            signature: endpoint.secret.scheme(),
            public_key: endpoint.secret.public_key(),
            previous_secret_until: endpoint.previous_secret.as_ref().and_then(|p| {
                let now = time::OffsetDateTime::now_utc().unix_timestamp();
                (p.until > now).then(|| rfc3339(p.until))
            }),
            headers: endpoint.headers.masked(match reveal {
                true => &NONE_HIDDEN,
                false => &endpoint.sensitive_headers,
            }),
            sensitive_headers: endpoint.sensitive_headers.clone(),
            rate_limit: endpoint.rate_limit,
            max_in_flight: endpoint.max_in_flight,
            filter: endpoint.filter.as_ref().map(|f| f.as_json().clone()),
            ordered: endpoint.ordered,
            ordered_backlog: None,
            circuit,
            last_attempt,
        }
    }
}

/// Unix seconds as RFC 3339.
pub fn rfc3339(unix: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp(unix)
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_default()
}

/// What a "Test Webhook" came to (docs/contract.md §5).
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct TestResult {
    pub delivered: bool,
    /// The HTTP status, when the endpoint answered.
    pub status: Option<u16>,
    pub latency_ms: u64,
    /// What went wrong, in plain words; absent when delivered.
    pub error: Option<String>,
    /// The class of failure, for a program: `timeout`, `connection_refused`, `dns`, `tls`,
    /// `blocked_target`, `non_success_status`, `connection`.
    pub error_class: Option<ErrorClass>,
    /// The first KiB of the endpoint's answer.
    pub response_body: String,
    /// The test event's id.
    pub event_id: String,
    /// The endpoint's filter does not match the test event: nothing was sent.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub filtered: bool,
}

/// Whether a filter matches an example `data`.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct FilterMatch {
    pub matches: bool,
}

/// A published event's id.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Published {
    pub id: String,
    /// When its type was deprecated (unix seconds), if it is: the API's `Deprecation` header.
    #[serde(skip)]
    pub deprecated_since: Option<i64>,
}
