//! hookfleet's message history in PostgreSQL (`HOOKFLEET_DATABASE_URL`): every event a worker
//! handles and every attempt it makes, written in batches off the delivery path.
//!
//! # Layout
//! - [`schema`]: the tables, one PostgreSQL schema per namespace, and `hookfleet migrate`.
//! - [`partitions`]: a partition per day, made ahead and dropped at the end of retention.
//! - [`recorder`]: the queue deliveries hand records to (never waiting), and the task that
//!   copies them into PostgreSQL.
//! - [`reader`]: the API's connection; [`events`] and [`endpoints`] are what it reads, in
//!   the shapes of [`view`], paged with the cursors of [`sql`].
#![forbid(unsafe_code)]

pub mod endpoints;
pub mod events;
pub mod partitions;
pub mod reader;
pub mod recorder;
pub mod schema;
pub mod sql;
pub mod view;

use std::time::Duration;

use hookfleet_core::Namespace;

pub use events::EventQuery;
pub use reader::Reader;
pub use recorder::{AttemptRecord, EventRecord, Recorder};
pub use sql::{AttemptCursor, EventCursor};

/// Where the history is and how long it is kept.
#[derive(Clone)]
pub struct HistoryConfig {
    /// A `postgres://` URL (it may carry a password: `Debug` does not show it).
    pub url: String,
    pub namespace: Namespace,
    /// Events and attempts are kept this long (`HOOKFLEET_HISTORY_RETENTION`).
    pub retention: Duration,
    /// Payloads are kept this long, at most `retention` (`HOOKFLEET_PAYLOAD_RETENTION`).
    pub payload_retention: Duration,
}

/// How long history is kept by default (`HOOKFLEET_HISTORY_RETENTION`).
pub const DEFAULT_RETENTION: Duration = Duration::from_secs(30 * 24 * 3600);

impl HistoryConfig {
    /// The settings of a process that only reads the history (the API, the CLI): retention
    /// is the workers' to apply.
    pub fn reader(url: String, namespace: Namespace) -> Self {
        Self {
            url,
            namespace,
            retention: DEFAULT_RETENTION,
            payload_retention: DEFAULT_RETENTION,
        }
    }
}

impl std::fmt::Debug for HistoryConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HistoryConfig")
            .field("namespace", &self.namespace)
            .field("retention", &self.retention)
            .field("payload_retention", &self.payload_retention)
            .finish_non_exhaustive()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("PostgreSQL: {0}")]
    Postgres(#[from] tokio_postgres::Error),
    #[error(
        "the history tables of namespace {0} are not there (or not at this version): run `hookfleet migrate`"
    )]
    NotMigrated(String),
    #[error("{0}")]
    Unavailable(String),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// How long opening a connection may take: a PostgreSQL that accepts and never answers
/// (frozen, or cut off by the network) must not hold the caller, or what waits behind it.
const OPEN_TIMEOUT: Duration = Duration::from_secs(5);

/// A connection to a database migrated to this build's version, within [`OPEN_TIMEOUT`];
/// `setup` runs first (a session setting).
pub(crate) async fn open(
    config: &HistoryConfig,
    setup: Option<&str>,
) -> Result<tokio_postgres::Client> {
    let opened = async {
        let client = connect(&config.url).await?;
        if let Some(sql) = setup {
            client.batch_execute(sql).await?;
        }
        if schema::version(&client, &config.namespace).await? != schema::VERSION {
            return Err(Error::NotMigrated(config.namespace.to_string()));
        }
        Ok(client)
    };
    tokio::time::timeout(OPEN_TIMEOUT, opened)
        .await
        .map_err(|_| Error::Unavailable("PostgreSQL did not answer within 5 s".into()))?
}

/// Connects, and drives the connection on a task of its own until the client is dropped.
pub async fn connect(url: &str) -> Result<tokio_postgres::Client> {
    let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls).await?;
    tokio::spawn(async move {
        if let Err(error) = connection.await {
            tracing::debug!(message = "PostgreSQL connection ended.", %error);
        }
    });
    Ok(client)
}

/// The namespace's schema name, quoted: namespaces are `A-Z a-z 0-9 _ -`, so quoting is
/// all they need.
pub fn schema_name(namespace: &Namespace) -> String {
    format!("\"{}\"", namespace.as_str())
}
