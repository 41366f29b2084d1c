//! The API's side of the history: one connection, made again when it breaks, that reads
//! events and attempts and writes the odd attempt the API makes itself (Test Webhook).
//!
//! tokio-postgres pipelines the queries of concurrent requests on that one connection, as the
//! Redis handle does: no pool to size.

use std::sync::Arc;

use tokio::sync::Mutex;
use tokio_postgres::Client;

use crate::recorder::{AttemptRecord, copy_all};
use crate::{HistoryConfig, Result, schema_name};

/// How long one statement may run: a request never waits on PostgreSQL past this.
const STATEMENT_TIMEOUT: &str = "10s";

/// Reads the history (and writes the API's own attempts).
#[derive(Debug)]
pub struct Reader {
    config: HistoryConfig,
    /// The schema, quoted, as every statement names it.
    pub(crate) schema: String,
    client: Mutex<Option<Arc<Client>>>,
}

impl Reader {
    /// A reader that connects on first use.
    pub fn new(config: HistoryConfig) -> Self {
        Self {
            schema: schema_name(&config.namespace),
            config,
            client: Mutex::new(None),
        }
    }

    /// The connection, made now if there is none or it broke.
    pub(crate) async fn client(&self) -> Result<Arc<Client>> {
        let mut slot = self.client.lock().await;
        if let Some(client) = slot.as_ref().filter(|c| !c.is_closed()) {
            return Ok(client.clone());
        }
        *slot = None;
        let setup = format!("SET statement_timeout = '{STATEMENT_TIMEOUT}'");
        let client = Arc::new(crate::open(&self.config, Some(&setup)).await?);
        *slot = Some(client.clone());
        Ok(client)
    }

    /// Writes one attempt now (Test Webhook's: one at a time, so no batching).
    pub async fn record_attempt(&self, record: AttemptRecord) -> Result<()> {
        let client = self.client().await?;
        copy_all(&client, &self.schema, &[], std::slice::from_ref(&record)).await
    }
}
