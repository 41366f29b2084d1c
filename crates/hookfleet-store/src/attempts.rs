//! The attempt log (docs/contract.md §3): one capped Redis stream per endpoint.
//!
//! `XADD … MAXLEN ~ N` trims whole stream nodes at a time, which is what keeps an append O(1);
//! the log therefore holds *at least* the last N attempts, a few dozen more at times. Each
//! entry is one field holding the attempt as JSON, so the record can grow without a migration.

use std::collections::HashMap;

use hookfleet_core::attempt::Attempt;
use hookfleet_core::{EndpointId, Namespace};

use crate::Result;
use crate::keys::Keys;

/// The stream field that holds an attempt's JSON.
const FIELD: &str = "a";

#[derive(Debug, Clone)]
pub struct AttemptLog {
    redis: crate::Redis,
    keys: Keys,
    /// Attempts kept per endpoint (`HOOKFLEET_ATTEMPT_LOG_LEN`); 0 turns the log off.
    max_len: usize,
}

impl AttemptLog {
    pub fn new(redis: crate::Redis, namespace: &Namespace, max_len: usize) -> Self {
        Self {
            redis,
            keys: Keys::new(namespace),
            max_len,
        }
    }

    /// Whether attempts are kept at all (`HOOKFLEET_ATTEMPT_LOG_LEN` > 0).
    pub fn is_enabled(&self) -> bool {
        self.max_len > 0
    }

    /// The command that appends the attempt `made` describes, for a caller to send in a
    /// pipeline with others; `None` (and `made` never called) when the log is off, since
    /// building an entry is the one cost the log adds to a delivery.
    pub fn append_command(
        &self,
        endpoint: &EndpointId,
        made: impl FnOnce() -> Attempt,
    ) -> Option<redis::Cmd> {
        if self.max_len == 0 {
            return None;
        }
        self.command(endpoint, &made())
    }

    fn command(&self, endpoint: &EndpointId, attempt: &Attempt) -> Option<redis::Cmd> {
        let json = serde_json::to_string(attempt).ok()?;
        let mut cmd = redis::cmd("XADD");
        cmd.arg(self.keys.attempts(endpoint))
            .arg("MAXLEN")
            .arg("~")
            .arg(self.max_len)
            .arg("*")
            .arg(FIELD)
            .arg(json);
        Some(cmd)
    }

    /// Appends many attempts: one pipeline per endpoint (its stream's slot), sent together.
    pub async fn append_batch(&self, attempts: &[(EndpointId, Attempt)]) -> Result<()> {
        if self.max_len == 0 {
            return Ok(());
        }
        let mut pipes: HashMap<&EndpointId, redis::Pipeline> = HashMap::new();
        for (endpoint, attempt) in attempts {
            let Some(cmd) = self.command(endpoint, attempt) else {
                continue;
            };
            pipes.entry(endpoint).or_default().add_command(cmd).ignore();
        }
        let sent = pipes
            .values()
            .map(|pipe| async move { pipe.query_async::<()>(&mut self.redis.clone()).await });
        for result in futures_util::future::join_all(sent).await {
            result?;
        }
        Ok(())
    }

    /// Appends `attempt` on its own.
    pub async fn append(&self, endpoint: &EndpointId, attempt: Attempt) -> Result<()> {
        if let Some(cmd) = self.append_command(endpoint, || attempt) {
            cmd.query_async::<()>(&mut self.redis.clone()).await?;
        }
        Ok(())
    }

    /// Up to `limit` attempts, newest first, older than the entry id `before` when given.
    pub async fn list(
        &self,
        endpoint: &EndpointId,
        limit: usize,
        before: Option<&str>,
    ) -> Result<Vec<Attempt>> {
        // `(id` makes the range exclusive (Redis 6.2+).
        let end = before.map_or_else(|| "+".to_owned(), |id| format!("({id}"));
        let mut conn = self.redis.clone();
        let entries: Vec<(String, Vec<(String, String)>)> = redis::cmd("XREVRANGE")
            .arg(self.keys.attempts(endpoint))
            .arg(end)
            .arg("-")
            .arg("COUNT")
            .arg(limit)
            .query_async(&mut conn)
            .await?;
        let attempts = entries.into_iter().filter_map(|(id, fields)| {
            let json = fields.into_iter().find(|(f, _)| f == FIELD)?.1;
            match serde_json::from_str::<Attempt>(&json) {
                Ok(attempt) => Some(Attempt { id, ..attempt }),
                Err(error) => {
                    tracing::warn!(message = "Skipping an unreadable attempt log entry.", %error);
                    None
                }
            }
        });
        Ok(attempts.collect())
    }
}
