//! What callers get back.

use hookfleet_core::attempt::{Attempt, ErrorClass};
use hookfleet_core::{DisabledBy, Endpoint};
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
    /// When a rotation's replaced secret stops signing (RFC 3339), during the rotation.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub previous_secret_until: Option<String>,
    /// `closed`, `open` or `half_open` (as the circuit breaker shared by all workers has it).
    pub circuit: CircuitView,
    /// The newest attempt, when there is one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_attempt: Option<Attempt>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum CircuitView {
    Closed,
    Open,
    HalfOpen,
}

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
            previous_secret_until: endpoint.previous_secret.as_ref().and_then(|p| {
                let now = time::OffsetDateTime::now_utc().unix_timestamp();
                (p.until > now).then(|| rfc3339(p.until))
            }),
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
}

/// A published event's id.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Published {
    pub id: String,
}
