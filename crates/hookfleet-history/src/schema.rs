//! The history's tables, in one PostgreSQL schema per namespace (so deployments and tests
//! share a database without touching each other), and the migrations that make them.
//!
//! Events, payloads and attempts are each partitioned by day on the time they were recorded
//! ([`crate::partitions`]): retention drops whole partitions instead of deleting rows, and
//! payloads, the bulk, live in a table of their own so they can be kept for less long.

use hookfleet_core::Namespace;

use crate::{Result, schema_name};

/// Each migration, in order; `{s}` is the quoted schema. Never edit one that has shipped:
/// add the next.
const MIGRATIONS: &[&str] = &[
    // Identifiers compare byte by byte ("C"): a database's default collation (C.UTF-8,
    // en_US.UTF-8) makes every index insert call strcoll, which was most of PostgreSQL's
    // CPU while recording a saturated worker.
    r#"
CREATE TABLE {s}.events (
    id text COLLATE "C" NOT NULL,
    tenant text COLLATE "C" NOT NULL,
    event_type text COLLATE "C" NOT NULL,
    occurred_at timestamptz NOT NULL,
    recorded_at timestamptz NOT NULL
) PARTITION BY RANGE (recorded_at);
CREATE INDEX ON {s}.events (tenant, recorded_at DESC);
CREATE INDEX ON {s}.events (id);
CREATE TABLE {s}.events_default PARTITION OF {s}.events DEFAULT;

CREATE TABLE {s}.payloads (
    event_id text COLLATE "C" NOT NULL,
    recorded_at timestamptz NOT NULL,
    body bytea NOT NULL
) PARTITION BY RANGE (recorded_at);
CREATE INDEX ON {s}.payloads (event_id);
CREATE TABLE {s}.payloads_default PARTITION OF {s}.payloads DEFAULT;

CREATE TABLE {s}.attempts (
    event_id text COLLATE "C" NOT NULL,
    tenant text COLLATE "C" NOT NULL,
    endpoint_id text COLLATE "C" NOT NULL,
    event_type text COLLATE "C" NOT NULL,
    attempt integer NOT NULL,
    source text NOT NULL,
    attempted_at timestamptz NOT NULL,
    status smallint,
    error_class text,
    message text NOT NULL,
    latency_ms integer NOT NULL,
    response text NOT NULL
) PARTITION BY RANGE (attempted_at);
CREATE INDEX ON {s}.attempts (event_id);
CREATE INDEX ON {s}.attempts (endpoint_id, attempted_at DESC);
CREATE TABLE {s}.attempts_default PARTITION OF {s}.attempts DEFAULT;
"#,
    r#"
-- The endpoints an event was meant for when a worker first handled it: an endpoint with no
-- attempt yet is a pending one. The operator's list, across tenants, reads by time alone.
ALTER TABLE {s}.events ADD COLUMN endpoints text[] NOT NULL DEFAULT '{}';
CREATE INDEX ON {s}.events (recorded_at DESC);
"#,
];

/// The version a process of this build reads and writes.
pub const VERSION: i32 = MIGRATIONS.len() as i32;

/// Applies the migrations the namespace's schema lacks, in one transaction, under an
/// advisory lock so that two `migrate` runs at once do not race, then makes the coming days'
/// partitions. Returns the versions applied.
pub async fn migrate(
    client: &mut tokio_postgres::Client,
    namespace: &Namespace,
) -> Result<Vec<i32>> {
    let s = schema_name(namespace);
    let lock = format!("hookfleet migrate {}", namespace.as_str());
    let mut applied = Vec::new();
    let tx = client.transaction().await?;
    tx.execute("SELECT pg_advisory_xact_lock(hashtext($1))", &[&lock])
        .await?;
    tx.batch_execute(&format!(
        "CREATE SCHEMA IF NOT EXISTS {s};
         CREATE TABLE IF NOT EXISTS {s}.migrations (
             version integer PRIMARY KEY,
             applied_at timestamptz NOT NULL DEFAULT now()
         );"
    ))
    .await?;
    let current = current_version(&tx, &s).await?;
    for (index, sql) in MIGRATIONS.iter().enumerate() {
        let version = index as i32 + 1;
        if version <= current {
            continue;
        }
        tx.batch_execute(&sql.replace("{s}", &s)).await?;
        tx.execute(
            &format!("INSERT INTO {s}.migrations (version) VALUES ($1)"),
            &[&version],
        )
        .await?;
        applied.push(version);
    }
    tx.commit().await?;
    // After the commit, one statement at a time: a day whose rows already sit in the default
    // partition cannot have its own, and that must not undo the migration.
    crate::partitions::make_ahead(client, namespace).await;
    Ok(applied)
}

/// The namespace's schema version (0 before any migration).
pub async fn version(client: &tokio_postgres::Client, namespace: &Namespace) -> Result<i32> {
    let s = schema_name(namespace);
    let exists: bool = client
        .query_one(
            "SELECT to_regclass($1) IS NOT NULL",
            &[&format!("{s}.migrations")],
        )
        .await?
        .get(0);
    if !exists {
        return Ok(0);
    }
    current_version(client, &s).await
}

async fn current_version(client: &impl tokio_postgres::GenericClient, s: &str) -> Result<i32> {
    let row = client
        .query_one(
            &format!("SELECT coalesce(max(version), 0) FROM {s}.migrations"),
            &[],
        )
        .await?;
    Ok(row.get(0))
}

/// Drops the namespace's schema and everything in it (tests and tear-down).
pub async fn drop_schema(client: &tokio_postgres::Client, namespace: &Namespace) -> Result<()> {
    let s = schema_name(namespace);
    client
        .batch_execute(&format!("DROP SCHEMA IF EXISTS {s} CASCADE"))
        .await?;
    Ok(())
}
