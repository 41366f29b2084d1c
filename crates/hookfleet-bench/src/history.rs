//! The message history of a scenario that records one: its tables made in the local
//! PostgreSQL before the workers start, its attempts counted and its schema dropped after.

use anyhow::Context;
use hookfleet_core::Namespace;

/// The local PostgreSQL of `scripts/services.sh`.
pub const DATABASE_URL: &str = "postgres://postgres:postgres@127.0.0.1:5432/postgres";

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
