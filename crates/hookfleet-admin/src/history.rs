//! The message history's operations: search events, read one with its attempts, resend one,
//! recover an endpoint's failures, an endpoint's statistics. Each needs
//! `HOOKFLEET_DATABASE_URL`; a tenant's scope reads only that tenant's events.

use hookfleet_amqp::headers::{self, set_str};
use hookfleet_core::{Endpoint, EventId, EventType, TenantId};
use hookfleet_history::view::{
    EndpointStats, EventAttempt, EventDetail, EventPage, Status, StoredEvent,
};
use hookfleet_history::{EventCursor, EventQuery, Reader};
use hookfleet_producer::OutboundEvent;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use utoipa::ToSchema;

use crate::input::Checks;
use crate::{Admin, Error, Result, Scope};

/// Events in one page at most, and by default.
pub const MAX_EVENTS_PAGE: usize = 250;
pub const DEFAULT_EVENTS_PAGE: usize = 50;
/// How far back an endpoint's statistics look by default.
const DEFAULT_STATS_WINDOW: time::Duration = time::Duration::hours(24);

/// Which events to list, as the query string has them.
#[derive(Debug, Default)]
pub struct EventSearch<'a> {
    pub tenant: Option<&'a str>,
    pub event_type: Option<&'a str>,
    pub status: Option<&'a str>,
    pub since: Option<&'a str>,
    pub until: Option<&'a str>,
    pub limit: Option<usize>,
    pub cursor: Option<&'a str>,
}

/// Deliver a stored event to one endpoint again.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ResendRequest {
    /// The endpoint, of the event's tenant and subscribed to its type.
    pub endpoint_id: String,
}

/// Deliver again what an endpoint did not get in a time window.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RecoverRequest {
    /// RFC 3339: events first handled at or after this.
    #[schema(example = "2026-12-05T14:00:00Z", format = DateTime)]
    pub since: String,
    /// RFC 3339: and before this (default: now).
    #[serde(default)]
    #[schema(format = DateTime)]
    pub until: Option<String>,
}

/// What a resend queued.
#[derive(Debug, Serialize, ToSchema)]
pub struct Resent {
    pub event_id: String,
    pub endpoint_id: String,
}

/// What a recover queued.
#[derive(Debug, Serialize, ToSchema)]
pub struct Recovered {
    /// Events sent for delivery again, oldest first.
    pub queued: usize,
    /// Events of the window left out: their payload is past `HOOKFLEET_PAYLOAD_RETENTION`, or
    /// the endpoint no longer subscribes to their type.
    pub skipped: usize,
    /// Present when the window held more than one recover sends (10,000): recover again
    /// with this as `since` for the rest (RFC 3339).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_since: Option<String>,
}

impl Admin {
    fn history(&self) -> Result<&Reader> {
        self.history.as_ref().ok_or_else(|| {
            Error::NotFound(
                "message history (this deployment has no HOOKFLEET_DATABASE_URL)".to_owned(),
            )
        })
    }

    /// A page of events, newest first.
    pub async fn list_events(&self, scope: &Scope, search: EventSearch<'_>) -> Result<EventPage> {
        let history = self.history()?;
        let tenant = scope.tenant_filter(search.tenant)?.map(|t| t.to_string());
        let status = (search.status)
            .map(|s| s.parse::<Status>())
            .transpose()
            .map_err(Error::BadQuery)?;
        let cursor = (search.cursor)
            .map(|c| {
                EventCursor::parse(c)
                    .ok_or_else(|| Error::BadQuery("cursor: not one this API gave out".into()))
            })
            .transpose()?;
        let query = EventQuery {
            tenant,
            event_type: search.event_type.map(str::to_owned),
            status,
            since: search.since.map(|t| time_query("since", t)).transpose()?,
            until: search.until.map(|t| time_query("until", t)).transpose()?,
            limit: (search.limit)
                .unwrap_or(DEFAULT_EVENTS_PAGE)
                .clamp(1, MAX_EVENTS_PAGE),
            cursor,
        };
        Ok(history.events(&query).await?)
    }

    /// One event with its payload and each endpoint's outcome.
    pub async fn get_event(&self, scope: &Scope, id: &str) -> Result<EventDetail> {
        let found = self.history()?.event(id, tenant_of(scope)).await?;
        found.ok_or_else(|| Error::NotFound(format!("event {id}")))
    }

    /// Every attempt for the event, oldest first.
    pub async fn event_attempts(&self, scope: &Scope, id: &str) -> Result<Vec<EventAttempt>> {
        let found = self.history()?.event_attempts(id, tenant_of(scope)).await?;
        found.ok_or_else(|| Error::NotFound(format!("event {id}")))
    }

    /// Sends the stored event to the endpoint once more, whatever it got before.
    pub async fn resend(&self, scope: &Scope, id: &str, request: ResendRequest) -> Result<Resent> {
        let history = self.history()?;
        let mut event = (history.stored_event(id, tenant_of(scope)).await?)
            .ok_or_else(|| Error::NotFound(format!("event {id}")))?;
        let endpoint = self.visible(scope, &request.endpoint_id).await?;
        if endpoint.tenant.as_str() != event.tenant {
            return Err(Error::NotFound(format!("endpoint {}", request.endpoint_id)));
        }
        let event_type = deliverable(&endpoint, &event.event_type)?;
        let Some(body) = event.body.take() else {
            return Err(Error::Gone(format!(
                "the payload of event {id} is no longer kept (HOOKFLEET_PAYLOAD_RETENTION)"
            )));
        };
        self.send_again(&event, event_type, body, &endpoint).await?;
        tracing::info!(message = "Event resent.", event_id = %id, endpoint_id = %endpoint.id);
        Ok(Resent {
            event_id: event.id,
            endpoint_id: endpoint.id.to_string(),
        })
    }

    /// Sends again, oldest first, every event of the window that the endpoint did not get.
    pub async fn recover(
        &self,
        scope: &Scope,
        endpoint_id: &str,
        request: RecoverRequest,
    ) -> Result<Recovered> {
        let history = self.history()?;
        let endpoint = self.visible(scope, endpoint_id).await?;
        let mut checks = Checks::default();
        let since = checks.field("since", parse_time(&request.since));
        let until = match request.until.as_deref() {
            Some(text) => checks.field("until", parse_time(text)),
            None => Some(OffsetDateTime::now_utc()),
        };
        let (Some(since), Some(until)) = (since, until) else {
            return Err(checks.into_error());
        };
        if since >= until {
            return Err(Error::field("until", "must be after since"));
        }
        if !endpoint.enabled {
            return Err(Error::field(
                "endpoint",
                "the endpoint is disabled: enable it before recovering its events",
            ));
        }
        let found = history
            .recoverable(endpoint.tenant.as_str(), endpoint_id, since, until)
            .await?;
        let mut recovered = Recovered {
            queued: 0,
            skipped: 0,
            next_since: found.next_since.and_then(|at| at.format(&Rfc3339).ok()),
        };
        for mut event in found.events {
            let (Some(body), Ok(event_type)) =
                (event.body.take(), deliverable(&endpoint, &event.event_type))
            else {
                recovered.skipped += 1;
                continue;
            };
            // One at a time, each confirmed before the next: they reach the queues in order.
            self.send_again(&event, event_type, body, &endpoint).await?;
            recovered.queued += 1;
        }
        tracing::info!(message = "Endpoint recovered.", endpoint_id = %endpoint.id, queued = recovered.queued, skipped = recovered.skipped, more = recovered.next_since.is_some());
        Ok(recovered)
    }

    /// The endpoint's deliveries since `since` (default: the last 24 h).
    pub async fn endpoint_stats(
        &self,
        scope: &Scope,
        id: &str,
        since: Option<&str>,
    ) -> Result<EndpointStats> {
        let history = self.history()?;
        let endpoint = self.visible(scope, id).await?;
        let since = match since {
            Some(text) => time_query("since", text)?,
            None => OffsetDateTime::now_utc() - DEFAULT_STATS_WINDOW,
        };
        Ok(history.endpoint_stats(endpoint.id.as_str(), since).await?)
    }

    /// Publishes a copy of `event` for `endpoint` alone, de-duplicated by a fresh resend id
    /// (the receiver sees the same `webhook-id`).
    async fn send_again(
        &self,
        event: &StoredEvent,
        event_type: EventType,
        body: Vec<u8>,
        endpoint: &Endpoint,
    ) -> Result<()> {
        let stored =
            |what: &str| Error::Unavailable(format!("a stored event's {what} is not valid"));
        let outbound = OutboundEvent {
            id: event.id.parse::<EventId>().map_err(|_| stored("id"))?,
            tenant: event
                .tenant
                .parse::<TenantId>()
                .map_err(|_| stored("tenant"))?,
            timestamp: event.occurred_at.unix_timestamp(),
            body,
            event_type,
        };
        let mut properties = outbound.properties();
        let mut table = properties.headers().clone().unwrap_or_default();
        set_str(&mut table, headers::ENDPOINT, endpoint.id.as_str());
        let resend_id = format!("rs_{}", uuid::Uuid::now_v7().simple());
        set_str(&mut table, headers::RESEND, &resend_id);
        properties = properties.with_headers(table);
        let namespace = &self.config.namespace;
        self.confirmed
            .send(
                &namespace.retry_exchange(),
                outbound.event_type.as_str(),
                &outbound.body,
                properties,
            )
            .await?;
        Ok(())
    }
}

/// The tenant a scope's reads are limited to.
fn tenant_of(scope: &Scope) -> Option<&str> {
    match scope {
        Scope::Operator => None,
        Scope::Tenant(tenant) => Some(tenant.as_str()),
    }
}

/// The event's type, if the endpoint takes it now; a worker would drop it otherwise. A
/// refusal names the request's `endpoint_id`.
fn deliverable(endpoint: &Endpoint, event_type: &str) -> Result<EventType> {
    let field = "endpoint_id";
    let event_type: EventType = event_type.parse().map_err(|_| {
        Error::field(
            field,
            format!("the event's type {event_type:?} is not valid"),
        )
    })?;
    if !endpoint.enabled {
        return Err(Error::field(field, "the endpoint is disabled"));
    }
    if !endpoint.wants(&event_type) {
        return Err(Error::field(
            field,
            format!("the endpoint does not subscribe to {event_type}"),
        ));
    }
    Ok(event_type)
}

fn parse_time(text: &str) -> Result<OffsetDateTime, String> {
    OffsetDateTime::parse(text, &Rfc3339)
        .map_err(|_| format!("{text:?} is not an RFC 3339 time (e.g. 2026-12-05T14:00:00Z)"))
}

fn time_query(name: &str, text: &str) -> Result<OffsetDateTime> {
    parse_time(text).map_err(|why| Error::BadQuery(format!("{name}: {why}")))
}

impl From<hookfleet_history::Error> for Error {
    fn from(e: hookfleet_history::Error) -> Self {
        Error::Unavailable(format!("message history: {e}"))
    }
}
