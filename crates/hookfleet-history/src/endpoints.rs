//! Reading one endpoint's history: its attempt log, its statistics, and what a recover
//! delivers again.

use std::collections::BTreeMap;

use hookfleet_core::attempt::Attempt;
use time::OffsetDateTime;

use crate::Result;
use crate::events::{ATTEMPT_COLUMNS, attempt_of};
use crate::reader::Reader;
use crate::sql::{AttemptCursor, Statement};
use crate::view::{EndpointStats, HourStats, Recoverable, StoredEvent, rfc3339};

/// Events one recover delivers again, at most: past this, the caller recovers the rest with
/// a later `since`.
pub const MAX_RECOVERED: usize = 10_000;

impl Reader {
    /// The endpoint's attempts, newest first, older than `before` when given.
    pub async fn endpoint_attempts(
        &self,
        endpoint_id: &str,
        limit: usize,
        before: Option<&AttemptCursor>,
    ) -> Result<Vec<Attempt>> {
        let client = self.client().await?;
        let s = &self.schema;
        let mut sql = Statement::new(format!(
            "SELECT {ATTEMPT_COLUMNS} FROM {s}.attempts WHERE true"
        ));
        sql.and(endpoint_id.to_owned(), |p| format!("endpoint_id = {p}"));
        if let Some(before) = before {
            let at = sql.bind(before.at);
            let event = sql.bind(before.event_id.clone());
            let attempt = sql.bind(before.attempt);
            sql.push(&format!(
                " AND attempted_at <= {at} AND (attempted_at, event_id, attempt) < ({at}, {event}, {attempt})"
            ));
        }
        let limit = sql.bind(limit as i64);
        sql.push(&format!(
            " ORDER BY attempted_at DESC, event_id DESC, attempt DESC LIMIT {limit}"
        ));
        let rows = client.query(&sql.text, &sql.params()).await?;
        Ok(rows.iter().map(|row| attempt_of(row, 0)).collect())
    }

    /// The endpoint's deliveries since `since`: counts by outcome, latency, and per hour.
    pub async fn endpoint_stats(
        &self,
        endpoint_id: &str,
        since: OffsetDateTime,
    ) -> Result<EndpointStats> {
        let client = self.client().await?;
        let s = &self.schema;
        let window = "endpoint_id = $1 AND attempted_at >= $2 AND source = 'worker'";
        let ok = "status BETWEEN 200 AND 299";
        let totals = format!(
            "SELECT count(*), count(*) FILTER (WHERE {ok}),
                    percentile_disc(0.5) WITHIN GROUP (ORDER BY latency_ms),
                    percentile_disc(0.99) WITHIN GROUP (ORDER BY latency_ms)
             FROM {s}.attempts WHERE {window}"
        );
        let failures = format!(
            "SELECT coalesce(error_class, 'unknown'), count(*) FROM {s}.attempts
             WHERE {window} AND NOT coalesce({ok}, false) GROUP BY 1"
        );
        let hours = format!(
            "SELECT date_trunc('hour', attempted_at), count(*) FILTER (WHERE {ok}),
                    count(*) FILTER (WHERE NOT coalesce({ok}, false))
             FROM {s}.attempts WHERE {window} GROUP BY 1 ORDER BY 1"
        );
        let params: [&(dyn tokio_postgres::types::ToSql + Sync); 2] = [&endpoint_id, &since];
        // Three statements in flight at once on the one connection.
        let (totals, failures, hours) = tokio::try_join!(
            client.query_one(&totals, &params),
            client.query(&failures, &params),
            client.query(&hours, &params),
        )?;
        let count = |value: i64| value.max(0) as u64;
        let attempts = count(totals.get(0));
        let delivered = count(totals.get(1));
        let p50: Option<i32> = totals.get(2);
        let p99: Option<i32> = totals.get(3);
        Ok(EndpointStats {
            since: rfc3339(since),
            attempts,
            delivered,
            failed: attempts - delivered,
            failures: failures
                .iter()
                .map(|row| (row.get::<_, String>(0), count(row.get(1))))
                .collect::<BTreeMap<_, _>>(),
            latency_p50_ms: p50.map(|ms| ms.max(0) as u64),
            latency_p99_ms: p99.map(|ms| ms.max(0) as u64),
            hours: hours
                .iter()
                .map(|row| HourStats {
                    hour: rfc3339(row.get(0)),
                    delivered: count(row.get(1)),
                    failed: count(row.get(2)),
                })
                .collect(),
        })
    }

    /// The events meant for the endpoint, recorded in `[since, until)`, whose last attempt
    /// there was not a 2xx (or that were never tried there), in the order they were recorded.
    pub async fn recoverable(
        &self,
        tenant: &str,
        endpoint_id: &str,
        since: OffsetDateTime,
        until: OffsetDateTime,
    ) -> Result<Recoverable> {
        let client = self.client().await?;
        let s = &self.schema;
        let rows = client
            .query(
                &format!(
                    "SELECT e.id, e.tenant, e.event_type, e.occurred_at, e.recorded_at,
                            (SELECT p.body FROM {s}.payloads p
                             WHERE p.event_id = e.id AND p.recorded_at = e.recorded_at LIMIT 1)
                     FROM {s}.events e
                     WHERE e.tenant = $1 AND $2 = ANY(e.endpoints)
                       AND e.recorded_at >= $3 AND e.recorded_at < $4
                       AND coalesce((
                           SELECT a.status BETWEEN 200 AND 299 FROM {s}.attempts a
                           WHERE a.event_id = e.id AND a.endpoint_id = $2
                             AND a.attempted_at >= $3 - interval '1 hour' AND a.source <> 'test'
                           ORDER BY a.attempted_at DESC, a.attempt DESC LIMIT 1
                       ), false) = false
                     ORDER BY e.recorded_at, e.id
                     LIMIT $5"
                ),
                &[
                    &tenant,
                    &endpoint_id,
                    &since,
                    &until,
                    &(MAX_RECOVERED as i64 + 1),
                ],
            )
            .await?;
        let next_since = rows.get(MAX_RECOVERED).map(|row| row.get(4));
        let mut seen = std::collections::HashSet::new();
        let events = rows
            .iter()
            .take(MAX_RECOVERED)
            .map(|row| StoredEvent {
                id: row.get(0),
                tenant: row.get(1),
                event_type: row.get(2),
                occurred_at: row.get(3),
                recorded_at: row.get(4),
                body: row.get(5),
            })
            // The same event recorded twice is delivered again once.
            .filter(|event| seen.insert(event.id.clone()))
            .collect();
        Ok(Recoverable { events, next_since })
    }
}
