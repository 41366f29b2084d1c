//! Reading events: the list with filters, one event with its endpoints' outcomes, its attempts.
//!
//! An event's status is not stored: it is found from its attempts when read (the last attempt
//! at each endpoint it was meant for), so recording stays a plain append. A list filtered by
//! status therefore looks at the newest events a chunk at a time, and at most [`MAX_SCANNED`]
//! per page: a page may be short, and its `next_cursor` goes on from where it stopped.

use std::collections::{HashMap, HashSet};

use hookfleet_core::attempt::{Attempt, ErrorClass};
use time::OffsetDateTime;
use tokio_postgres::{Client, Row};

use crate::reader::Reader;
use crate::sql::{EventCursor, Statement};
use crate::view::{
    EndpointOutcome, EventAttempt, EventDetail, EventPage, EventSummary, Status, StoredEvent,
    rfc3339,
};
use crate::{Result, sql};

/// Events looked at for one page filtered by status, at most.
pub const MAX_SCANNED: usize = 2_000;
/// Events read at a time while filtering by status.
const CHUNK: usize = 250;
/// How long before an event's record its attempts may be stamped: workers' clocks differ a
/// little. Bounding the attempts' time lets PostgreSQL skip older partitions.
const CLOCK_SLACK: time::Duration = time::Duration::hours(1);

/// Which events, newest first.
#[derive(Debug, Clone, Default)]
pub struct EventQuery {
    pub tenant: Option<String>,
    pub event_type: Option<String>,
    pub status: Option<Status>,
    pub since: Option<OffsetDateTime>,
    pub until: Option<OffsetDateTime>,
    pub limit: usize,
    pub cursor: Option<EventCursor>,
}

/// An event's row, before its status is known.
struct EventRow {
    id: String,
    tenant: String,
    event_type: String,
    occurred_at: OffsetDateTime,
    recorded_at: OffsetDateTime,
    endpoints: Vec<String>,
}

const EVENT_COLUMNS: &str = "id, tenant, event_type, occurred_at, recorded_at, endpoints";

impl EventRow {
    fn of(row: &Row) -> Self {
        Self {
            id: row.get(0),
            tenant: row.get(1),
            event_type: row.get(2),
            occurred_at: row.get(3),
            recorded_at: row.get(4),
            endpoints: row.get(5),
        }
    }

    fn summary(&self, status: Status) -> EventSummary {
        EventSummary {
            id: self.id.clone(),
            tenant: self.tenant.clone(),
            event_type: self.event_type.clone(),
            occurred_at: rfc3339(self.occurred_at),
            recorded_at: rfc3339(self.recorded_at),
            status,
        }
    }

    fn cursor(&self) -> EventCursor {
        EventCursor {
            at: self.recorded_at,
            id: self.id.clone(),
        }
    }
}

impl Reader {
    /// A page of events, newest first.
    pub async fn events(&self, query: &EventQuery) -> Result<EventPage> {
        let client = self.client().await?;
        let limit = query.limit.max(1);
        let mut data = Vec::new();
        let mut seen = HashSet::new();
        let mut cursor = query.cursor.clone();
        let mut scanned = 0;
        loop {
            let chunk = match query.status {
                Some(_) => CHUNK,
                None => limit - data.len(),
            };
            let rows = self
                .event_rows(&client, query, cursor.as_ref(), chunk)
                .await?;
            let last_chunk = rows.len() < chunk;
            let outcomes = self.outcomes(&client, &rows).await?;
            for row in &rows {
                cursor = Some(row.cursor());
                scanned += 1;
                // The same event recorded twice (redelivered before its ack, or published
                // twice): shown once.
                if !seen.insert(row.id.clone()) {
                    continue;
                }
                let status = status_of(&endpoint_outcomes(row, &outcomes));
                if query.status.is_none_or(|wanted| wanted == status) {
                    data.push(row.summary(status));
                    if data.len() == limit {
                        let next_cursor = cursor.map(|c| c.to_string());
                        return Ok(EventPage { data, next_cursor });
                    }
                }
            }
            if last_chunk {
                return Ok(EventPage {
                    data,
                    next_cursor: None,
                });
            }
            if scanned >= MAX_SCANNED {
                let next_cursor = cursor.map(|c| c.to_string());
                return Ok(EventPage { data, next_cursor });
            }
        }
    }

    async fn event_rows(
        &self,
        client: &Client,
        query: &EventQuery,
        cursor: Option<&EventCursor>,
        limit: usize,
    ) -> Result<Vec<EventRow>> {
        let s = &self.schema;
        let mut sql = Statement::new(format!("SELECT {EVENT_COLUMNS} FROM {s}.events WHERE true"));
        if let Some(tenant) = &query.tenant {
            sql.and(tenant.clone(), |p| format!("tenant = {p}"));
        }
        if let Some(event_type) = &query.event_type {
            sql.and(event_type.clone(), |p| format!("event_type = {p}"));
        }
        if let Some(since) = query.since {
            sql.and(since, |p| format!("recorded_at >= {p}"));
        }
        if let Some(until) = query.until {
            sql.and(until, |p| format!("recorded_at < {p}"));
        }
        if let Some(cursor) = cursor {
            let at = sql.bind(cursor.at);
            let id = sql.bind(cursor.id.clone());
            // The plain bound first, so that the index on the time is used.
            sql.push(&format!(
                " AND recorded_at <= {at} AND (recorded_at, id) < ({at}, {id})"
            ));
        }
        let limit = sql.bind(limit as i64);
        sql.push(&format!(
            " ORDER BY recorded_at DESC, id DESC LIMIT {limit}"
        ));
        let rows = client.query(&sql.text, &sql.params()).await?;
        Ok(rows.iter().map(EventRow::of).collect())
    }

    /// The last outcome at each endpoint that was tried for these events.
    async fn outcomes(&self, client: &Client, rows: &[EventRow]) -> Result<Outcomes> {
        let Some(oldest) = rows.iter().map(|r| r.recorded_at).min() else {
            return Ok(Outcomes::new());
        };
        let ids: Vec<&str> = rows.iter().map(|r| r.id.as_str()).collect();
        let s = &self.schema;
        let found = client
            .query(
                &format!(
                    "SELECT event_id, endpoint_id, count(*),
                            (array_agg(status ORDER BY attempted_at DESC, attempt DESC))[1],
                            max(attempted_at)
                     FROM {s}.attempts
                     WHERE event_id = ANY($1) AND attempted_at >= $2 AND source <> 'test'
                     GROUP BY event_id, endpoint_id"
                ),
                &[&ids, &(oldest - CLOCK_SLACK)],
            )
            .await?;
        let mut outcomes = Outcomes::new();
        for row in found {
            let event_id: String = row.get(0);
            let last_status: Option<i16> = row.get(3);
            let last_status_code = last_status.map(|s| s as u16);
            let attempted: i64 = row.get(2);
            outcomes.entry(event_id).or_default().push(EndpointOutcome {
                endpoint_id: row.get(1),
                status: match last_status_code {
                    Some(200..=299) => Status::Delivered,
                    _ => Status::Failed,
                },
                attempts: attempted as u32,
                last_status_code,
                last_attempt_at: Some(rfc3339(row.get(4))),
            });
        }
        Ok(outcomes)
    }

    /// One event with its payload and each endpoint's outcome; `None` when the history does not
    /// have it (or it is not `tenant`'s).
    pub async fn event(&self, id: &str, tenant: Option<&str>) -> Result<Option<EventDetail>> {
        let client = self.client().await?;
        let Some((row, body)) = self.event_row(&client, id, tenant).await? else {
            return Ok(None);
        };
        let outcomes = self.outcomes(&client, std::slice::from_ref(&row)).await?;
        let endpoints = endpoint_outcomes(&row, &outcomes);
        let payload = body.map(|body| {
            serde_json::from_slice(&body).unwrap_or_else(|_| {
                serde_json::Value::String(String::from_utf8_lossy(&body).into_owned())
            })
        });
        Ok(Some(EventDetail {
            event: row.summary(status_of(&endpoints)),
            payload,
            endpoints,
        }))
    }

    /// The event as stored, payload included, to deliver again.
    pub async fn stored_event(
        &self,
        id: &str,
        tenant: Option<&str>,
    ) -> Result<Option<StoredEvent>> {
        let client = self.client().await?;
        Ok(self
            .event_row(&client, id, tenant)
            .await?
            .map(|(row, body)| StoredEvent {
                id: row.id,
                tenant: row.tenant,
                event_type: row.event_type,
                occurred_at: row.occurred_at,
                recorded_at: row.recorded_at,
                body,
            }))
    }

    /// The event's first record (a second is a redelivery's) and its payload.
    async fn event_row(
        &self,
        client: &Client,
        id: &str,
        tenant: Option<&str>,
    ) -> Result<Option<(EventRow, Option<Vec<u8>>)>> {
        let s = &self.schema;
        let columns = EVENT_COLUMNS
            .split(", ")
            .map(|c| format!("e.{c}"))
            .collect::<Vec<_>>()
            .join(", ");
        let mut sql = Statement::new(format!(
            "SELECT {columns},
                    (SELECT p.body FROM {s}.payloads p
                     WHERE p.event_id = e.id AND p.recorded_at = e.recorded_at LIMIT 1)
             FROM {s}.events e WHERE true"
        ));
        sql.and(id.to_owned(), |p| format!("e.id = {p}"));
        if let Some(tenant) = tenant {
            sql.and(tenant.to_owned(), |p| format!("e.tenant = {p}"));
        }
        sql.push(" ORDER BY e.recorded_at LIMIT 1");
        let row = client.query_opt(&sql.text, &sql.params()).await?;
        Ok(row.map(|row| (EventRow::of(&row), row.get(6))))
    }

    /// Every attempt at every endpoint for the event, oldest first; `None` when the history
    /// does not have the event (or it is not `tenant`'s).
    pub async fn event_attempts(
        &self,
        id: &str,
        tenant: Option<&str>,
    ) -> Result<Option<Vec<EventAttempt>>> {
        let client = self.client().await?;
        let Some((row, _)) = self.event_row(&client, id, tenant).await? else {
            return Ok(None);
        };
        let s = &self.schema;
        let rows = client
            .query(
                &format!(
                    "SELECT endpoint_id, {ATTEMPT_COLUMNS} FROM {s}.attempts
                     WHERE event_id = $1 AND tenant = $2 AND attempted_at >= $3
                     ORDER BY attempted_at, attempt"
                ),
                &[&row.id, &row.tenant, &(row.recorded_at - CLOCK_SLACK)],
            )
            .await?;
        Ok(Some(
            rows.iter()
                .map(|r| EventAttempt {
                    endpoint_id: r.get(0),
                    attempt: attempt_of(r, 1),
                })
                .collect(),
        ))
    }
}

/// Each event's outcomes at the endpoints tried for it.
type Outcomes = HashMap<String, Vec<EndpointOutcome>>;

/// The event's outcome at every endpoint it was meant for or was tried at: one never tried is
/// pending.
fn endpoint_outcomes(row: &EventRow, outcomes: &Outcomes) -> Vec<EndpointOutcome> {
    let mut found = outcomes.get(&row.id).cloned().unwrap_or_default();
    for endpoint in &row.endpoints {
        if !found.iter().any(|o| &o.endpoint_id == endpoint) {
            found.push(EndpointOutcome {
                endpoint_id: endpoint.clone(),
                status: Status::Pending,
                attempts: 0,
                last_status_code: None,
                last_attempt_at: None,
            });
        }
    }
    found.sort_by(|a, b| a.endpoint_id.cmp(&b.endpoint_id));
    found
}

/// An event's status from its endpoints': failed anywhere wins, then pending anywhere.
fn status_of(endpoints: &[EndpointOutcome]) -> Status {
    let any = |status| endpoints.iter().any(|o| o.status == status);
    if any(Status::Failed) {
        Status::Failed
    } else if any(Status::Pending) {
        Status::Pending
    } else {
        Status::Delivered
    }
}

/// The attempt columns [`attempt_of`] reads, in its order.
pub(crate) const ATTEMPT_COLUMNS: &str = "attempted_at, event_id, event_type, attempt, source, status, error_class, message, latency_ms, response";

/// An attempt as the attempt log shows it, from [`ATTEMPT_COLUMNS`] starting at column `from`.
pub(crate) fn attempt_of(row: &Row, from: usize) -> Attempt {
    let at: OffsetDateTime = row.get(from);
    let event_id: String = row.get(from + 1);
    let attempt: i32 = row.get(from + 3);
    let status: Option<i16> = row.get(from + 5);
    let error_class: Option<String> = row.get(from + 6);
    let latency_ms: i32 = row.get(from + 8);
    Attempt {
        id: sql::AttemptCursor {
            at,
            attempt,
            event_id: event_id.clone(),
        }
        .to_string(),
        at: rfc3339(at),
        event_id,
        event_type: row.get(from + 2),
        attempt: attempt.max(0) as u32,
        source: row.get(from + 4),
        status: status.map(|s| s as u16),
        error: error_class.and_then(|c| serde_json::from_value::<ErrorClass>(c.into()).ok()),
        message: row.get(from + 7),
        latency_ms: latency_ms.max(0) as u64,
        response_body: row.get(from + 9),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn outcome(endpoint: &str, status: Status) -> EndpointOutcome {
        EndpointOutcome {
            endpoint_id: endpoint.into(),
            status,
            attempts: 1,
            last_status_code: None,
            last_attempt_at: None,
        }
    }

    #[test]
    fn an_event_is_failed_if_any_endpoint_failed_then_pending_if_any_waits() {
        use Status::*;
        assert_eq!(status_of(&[]), Delivered);
        assert_eq!(status_of(&[outcome("a", Delivered)]), Delivered);
        assert_eq!(
            status_of(&[outcome("a", Delivered), outcome("b", Pending)]),
            Pending
        );
        assert_eq!(
            status_of(&[outcome("a", Pending), outcome("b", Failed)]),
            Failed
        );
    }

    #[test]
    fn an_endpoint_meant_for_but_never_tried_is_pending() {
        let row = EventRow {
            id: "evt_1".into(),
            tenant: "acme".into(),
            event_type: "log.blocked".into(),
            occurred_at: OffsetDateTime::UNIX_EPOCH,
            recorded_at: OffsetDateTime::UNIX_EPOCH,
            endpoints: vec!["ep_b".into(), "ep_a".into()],
        };
        let mut outcomes = Outcomes::new();
        outcomes.insert("evt_1".into(), vec![outcome("ep_a", Status::Delivered)]);
        let found = endpoint_outcomes(&row, &outcomes);
        assert_eq!(found[0], outcome("ep_a", Status::Delivered));
        assert_eq!(found[1].endpoint_id, "ep_b");
        assert_eq!(found[1].status, Status::Pending);
        assert_eq!(found[1].attempts, 0);
    }
}
