//! What the history answers: events with their status, per-endpoint outcomes, attempts and
//! an endpoint's statistics, as the API shows them.

use hookfleet_core::attempt::Attempt;
use serde::Serialize;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

/// Where an event stands at its endpoints (or at one of them).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// Every endpoint's last attempt was a 2xx (or it was meant for no endpoint).
    Delivered,
    /// Some endpoint's last attempt failed: it is still retrying there, or gave up.
    Failed,
    /// No endpoint failed, and some endpoint has had no attempt yet.
    Pending,
}

impl std::str::FromStr for Status {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "delivered" => Ok(Status::Delivered),
            "failed" => Ok(Status::Failed),
            "pending" => Ok(Status::Pending),
            other => Err(format!(
                "status: {other:?} is not one of delivered, failed, pending"
            )),
        }
    }
}

/// An event as the list shows it.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct EventSummary {
    pub id: String,
    pub tenant: String,
    #[serde(rename = "type")]
    pub event_type: String,
    /// When it happened, as published (RFC 3339).
    pub occurred_at: String,
    /// When a worker first handled it (RFC 3339).
    pub recorded_at: String,
    pub status: Status,
}

/// A page of events, newest first.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct EventPage {
    pub data: Vec<EventSummary>,
    /// Pass as `cursor` for the next page; absent on the last. A page filtered by `status`
    /// may hold fewer than `limit` events (even none) and still have a next page.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_cursor: Option<String>,
}

/// One endpoint's part in an event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct EndpointOutcome {
    pub endpoint_id: String,
    pub status: Status,
    /// Attempts made there (resends included).
    pub attempts: u32,
    pub last_status_code: Option<u16>,
    /// RFC 3339.
    pub last_attempt_at: Option<String>,
}

/// One event whole: its payload and what became of it at each endpoint.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct EventDetail {
    #[serde(flatten)]
    pub event: EventSummary,
    /// The payload as delivered; `null` once past `HOOKFLEET_PAYLOAD_RETENTION`.
    pub payload: Option<serde_json::Value>,
    pub endpoints: Vec<EndpointOutcome>,
}

/// An attempt at one of an event's endpoints.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct EventAttempt {
    pub endpoint_id: String,
    #[serde(flatten)]
    pub attempt: Attempt,
}

/// An endpoint's attempts since a time, for the console.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct EndpointStats {
    /// RFC 3339.
    pub since: String,
    /// Attempts (worker's, not tests) in the window.
    pub attempts: u64,
    /// Attempts answered 2xx.
    pub delivered: u64,
    pub failed: u64,
    /// Failed attempts by error class (`timeout`, `non_success_status`…).
    pub failures: std::collections::BTreeMap<String, u64>,
    /// Latency of the window's attempts, in ms (absent without attempts).
    pub latency_p50_ms: Option<u64>,
    pub latency_p99_ms: Option<u64>,
    /// Per hour, oldest first: only hours with attempts.
    pub hours: Vec<HourStats>,
}

/// One hour of an endpoint's attempts.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct HourStats {
    /// The hour's start (RFC 3339).
    pub hour: String,
    pub delivered: u64,
    pub failed: u64,
}

/// The events one recover will resend, oldest first.
#[derive(Debug)]
pub struct Recoverable {
    pub events: Vec<StoredEvent>,
    /// When the window held more than one recover sends: where the rest begins.
    pub next_since: Option<OffsetDateTime>,
}

/// An event as stored, to deliver again.
#[derive(Debug, Clone)]
pub struct StoredEvent {
    pub id: String,
    pub tenant: String,
    pub event_type: String,
    pub occurred_at: OffsetDateTime,
    pub recorded_at: OffsetDateTime,
    /// `None` once past the payload retention.
    pub body: Option<Vec<u8>>,
}

/// A time as the API writes it.
pub(crate) fn rfc3339(at: OffsetDateTime) -> String {
    at.format(&Rfc3339).unwrap_or_default()
}
