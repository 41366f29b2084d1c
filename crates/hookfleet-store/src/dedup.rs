//! De-duplication per (endpoint, event id): claim, then commit.
//!
//! Before a POST the worker claims the mark with `SET key lock:<token> NX PX <ms> GET`, one
//! round trip that both takes the claim and says what was there. A 2xx turns the mark into
//! `done` for the de-duplication TTL; a failure releases the claim, but only if it is still this
//! worker's (a claim that outlived its expiry may belong to someone else by then). The only
//! window for a repeat is a crash between the receiver's 2xx and the commit.

use std::time::Duration;

use hookfleet_core::{EndpointId, EventId, Namespace};
use redis;

use crate::Result;
use crate::keys::Keys;

const DONE: &str = "done";

/// Deletes the mark only if it still holds this attempt's token.
const RELEASE: &str =
    "if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end return 0";

/// What a claim found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Claim {
    /// The attempt is ours to make; commit or release with this token.
    Acquired(String),
    /// The endpoint already answered 2xx for this event.
    Done,
    /// Another attempt is in flight right now (another worker, or a redelivery).
    Busy,
}

#[derive(Debug, Clone)]
pub struct Dedup {
    redis: crate::Redis,
    keys: Keys,
    /// How long a claim lives if its holder dies: the delivery timeout plus a margin.
    claim_ttl: Duration,
    /// How long a `done` mark lives (`HOOKFLEET_DEDUP_TTL`).
    done_ttl: Duration,
}

impl Dedup {
    pub fn new(
        redis: crate::Redis,
        namespace: &Namespace,
        claim_ttl: Duration,
        done_ttl: Duration,
    ) -> Self {
        Self {
            redis,
            keys: Keys::new(namespace),
            claim_ttl,
            done_ttl,
        }
    }

    pub async fn claim(&self, endpoint: &EndpointId, event: &EventId) -> Result<Claim> {
        let token = format!("lock:{}", uuid::Uuid::now_v7().simple());
        let mut conn = self.redis.clone();
        let previous: Option<String> = redis::cmd("SET")
            .arg(self.keys.dedup(endpoint, event))
            .arg(&token)
            .arg("NX")
            .arg("PX")
            .arg(self.claim_ttl.as_millis() as u64)
            .arg("GET")
            .query_async(&mut conn)
            .await?;
        Ok(match previous.as_deref() {
            None => Claim::Acquired(token),
            Some(DONE) => Claim::Done,
            Some(_) => Claim::Busy,
        })
    }

    /// Records that the endpoint answered 2xx, sending `also` (the attempt log's append) in
    /// the same round trip.
    pub async fn commit(
        &self,
        endpoint: &EndpointId,
        event: &EventId,
        also: Option<&redis::Cmd>,
    ) -> Result<()> {
        let mut conn = self.redis.clone();
        let mut pipe = redis::pipe();
        pipe.cmd("SET")
            .arg(self.keys.dedup(endpoint, event))
            .arg(DONE)
            .arg("PX")
            .arg(self.done_ttl.as_millis() as u64)
            .ignore();
        if let Some(cmd) = also {
            pipe.add_command(cmd.clone()).ignore();
        }
        pipe.query_async::<()>(&mut conn).await?;
        Ok(())
    }

    /// Gives the claim back after a failed attempt, if it is still ours, sending `also` (the
    /// attempt log's append) in the same round trip.
    pub async fn release(
        &self,
        endpoint: &EndpointId,
        event: &EventId,
        token: &str,
        also: Option<&redis::Cmd>,
    ) -> Result<()> {
        let mut conn = self.redis.clone();
        let mut pipe = redis::pipe();
        // EVAL with the source, not EVALSHA: a pipeline cannot fall back on NOSCRIPT, and
        // Redis caches the compiled script by its hash either way.
        pipe.cmd("EVAL")
            .arg(RELEASE)
            .arg(1)
            .arg(self.keys.dedup(endpoint, event))
            .arg(token)
            .ignore();
        if let Some(cmd) = also {
            pipe.add_command(cmd.clone()).ignore();
        }
        pipe.query_async::<()>(&mut conn).await?;
        Ok(())
    }
}
