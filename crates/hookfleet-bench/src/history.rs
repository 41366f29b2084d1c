//! The message history of a scenario that records one: its tables made in the local
//! PostgreSQL before the workers start, its attempts counted and its schema dropped after.
//! And `--history-reads`: the API's reads timed on a large generated history.

use std::time::{Duration, Instant};

use anyhow::Context;
use hookfleet_core::Namespace;
use hookfleet_history::view::Status;
use hookfleet_history::{EventQuery, HistoryConfig, Reader};

pub use hookfleet_testkit::DATABASE_URL;

/// A namespace's history tables, made.
pub struct History {
    client: tokio_postgres::Client,
    namespace: Namespace,
}

pub async fn prepare(namespace: &str) -> anyhow::Result<History> {
    let namespace: Namespace = namespace.parse()?;
    let mut client = hookfleet_history::connect(DATABASE_URL)
        .await
        .context("PostgreSQL does not answer at 127.0.0.1:5432 (scripts/services.sh starts it)")?;
    hookfleet_history::schema::migrate(&mut client, &namespace).await?;
    Ok(History { client, namespace })
}

impl History {
    /// Attempts recorded.
    pub async fn attempts(&self) -> anyhow::Result<u64> {
        let s = hookfleet_history::schema_name(&self.namespace);
        let row = (self.client)
            .query_one(&format!("SELECT count(*) FROM {s}.attempts"), &[])
            .await?;
        Ok(row.get::<_, i64>(0).max(0) as u64)
    }

    pub async fn drop(self) {
        let dropped = hookfleet_history::schema::drop_schema(&self.client, &self.namespace);
        if let Err(error) = dropped.await {
            eprintln!("warning: could not drop the history schema: {error:#}");
        }
    }
}

/// Endpoints and tenants of the generated history; each event goes to two endpoints, and
/// each of those gets two attempts: the first fails for one event in ten, both for one in a
/// hundred (those events are `failed`).
const ENDPOINTS: u64 = 1_000;
const TENANTS: u64 = 100;
/// Each kind of read is timed this many times.
const READS: usize = 200;

/// Generates `attempts` attempts (a quarter as many events, spread over the last 35 hours),
/// times the reads the API makes, and returns the table.
pub async fn reads(attempts: u64) -> anyhow::Result<String> {
    let namespace: Namespace = format!("bench_reads_{}", std::process::id()).parse()?;
    let history = prepare(namespace.as_str()).await?;
    let result = generate_and_read(&history, attempts).await;
    history.drop().await;
    result
}

async fn generate_and_read(history: &History, attempts: u64) -> anyhow::Result<String> {
    let config = HistoryConfig::reader(DATABASE_URL.to_owned(), history.namespace.clone());
    let events = attempts / 4;
    let s = hookfleet_history::schema_name(&history.namespace);
    // 35 h back from now: today's and yesterday's partitions, which the migration made.
    let step_ms = (35.0 * 3600.0 * 1000.0 / events.max(1) as f64).max(0.001);
    let started = Instant::now();
    eprintln!("generating {events} events and {attempts} attempts in {s}");
    let at = format!("now() - (g * interval '{step_ms} milliseconds')");
    let sql = format!(
        "INSERT INTO {s}.events (id, tenant, event_type, occurred_at, recorded_at, endpoints)
         SELECT 'evt_' || g, 't' || (g % {TENANTS}), 'log.blocked', {at}, {at},
                ARRAY['ep_' || (g % {ENDPOINTS}), 'ep_' || ((g + 1) % {ENDPOINTS})]
         FROM generate_series(1, {events}) g;
         INSERT INTO {s}.payloads (event_id, recorded_at, body)
         SELECT 'evt_' || g, {at}, convert_to('{{\"type\":\"log.blocked\",\"data\":{{\"n\":' || g || '}}}}', 'UTF8')
         FROM generate_series(1, {events}) g;
         INSERT INTO {s}.attempts (event_id, tenant, endpoint_id, event_type, attempt, source,
                                   attempted_at, status, error_class, message, latency_ms, response)
         SELECT 'evt_' || g, 't' || (g % {TENANTS}), 'ep_' || ((g + e) % {ENDPOINTS}),
                'log.blocked', a, 'worker', {at} + a * interval '1 second',
                CASE WHEN (a = 1 AND g % 10 = 0) OR g % 100 = 0 THEN 503 ELSE 200 END,
                CASE WHEN (a = 1 AND g % 10 = 0) OR g % 100 = 0 THEN 'non_success_status' END,
                'delivered: HTTP 200', (g % 97)::int, ''
         FROM generate_series(1, {events}) g, generate_series(0, 1) e, generate_series(1, 2) a;
         ANALYZE {s}.events; ANALYZE {s}.attempts; ANALYZE {s}.payloads;"
    );
    history.client.batch_execute(&sql).await?;
    let generated = started.elapsed();

    let reader = Reader::new(config);
    let mut rows = Vec::new();
    let pick = |i: usize, n: u64| (i as u64 * 7_919 + 13) % n;
    let list = |tenant: String, status: Option<Status>| EventQuery {
        tenant: Some(tenant),
        status,
        limit: 50,
        ..EventQuery::default()
    };
    rows.push(
        time("GET /v1/events?tenant=…&limit=50", async |i| {
            reader
                .events(&list(format!("t{}", pick(i, TENANTS)), None))
                .await?;
            Ok(())
        })
        .await?,
    );
    rows.push(
        time(
            "GET /v1/events?tenant=…&status=failed&limit=50",
            async |i| {
                let query = list(format!("t{}", pick(i, TENANTS)), Some(Status::Failed));
                reader.events(&query).await?;
                Ok(())
            },
        )
        .await?,
    );
    rows.push(
        time("GET /v1/events/{id}", async |i| {
            let id = format!("evt_{}", 1 + pick(i, events));
            anyhow::ensure!(reader.event(&id, None).await?.is_some(), "{id} not found");
            Ok(())
        })
        .await?,
    );
    rows.push(
        time("GET /v1/endpoints/{id}/stats (24 h)", async |i| {
            let since = time::OffsetDateTime::now_utc() - time::Duration::hours(24);
            let endpoint = format!("ep_{}", pick(i, ENDPOINTS));
            reader.endpoint_stats(&endpoint, since).await?;
            Ok(())
        })
        .await?,
    );
    let mut table = format!(
        "History reads on {attempts} attempts, {events} events ({} endpoints, {} tenants; \
         generated in {:.0} s), {READS} reads each, one at a time:\n\n\
         | read | p50 ms | p99 ms | max ms | target p99 |\n|---|---|---|---|---|\n",
        ENDPOINTS,
        TENANTS,
        generated.as_secs_f64()
    );
    for (what, p50, p99, max) in rows {
        let verdict = if p99 <= 100.0 {
            "≤ 100 ms: pass"
        } else {
            "≤ 100 ms: FAIL"
        };
        table += &format!("| {what} | {p50:.1} | {p99:.1} | {max:.1} | {verdict} |\n");
    }
    Ok(table)
}

/// Times `read` [`READS`] times; (what, p50, p99, max) in ms.
async fn time(
    what: &str,
    read: impl AsyncFn(usize) -> anyhow::Result<()>,
) -> anyhow::Result<(String, f64, f64, f64)> {
    let mut took: Vec<Duration> = Vec::with_capacity(READS);
    for i in 0..READS {
        let started = Instant::now();
        read(i).await?;
        took.push(started.elapsed());
    }
    took.sort_unstable();
    let ms = |q: f64| {
        let i = ((took.len() as f64 * q).ceil() as usize).clamp(1, took.len()) - 1;
        took[i].as_secs_f64() * 1000.0
    };
    eprintln!("{what}: p99 {:.1} ms", ms(0.99));
    Ok((what.to_owned(), ms(0.5), ms(0.99), ms(1.0)))
}
