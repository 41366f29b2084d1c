//! hookfleet's state in Redis: endpoints and de-duplication marks.
//!
//! # Layout
//! - [`connection`]: [`Redis`], one server or a Redis Cluster.
//! - [`keys`]: every Redis key, namespaced and hash-tagged for Redis Cluster.
//! - [`endpoints`]: endpoint records and their per-tenant index.
//! - [`fresh`]: values kept for a short TTL and refreshed single-flight.
//! - [`catalog`]: the operator's description, schema and example of each event type.
//! - [`cache`]: a short-lived per-tenant cache of endpoints for the delivery path.
//! - [`dedup`]: claim-then-commit marks per (endpoint, event id).
//! - [`attempts`]: each endpoint's capped attempt log.
//! - [`sealing`]: endpoint secrets (and URLs with credentials) encrypted at rest, by key id.
//! - [`circuit`]: each endpoint's circuit breaker state, shared by every worker.
//! - [`rate`]: each endpoint's rate limit, shared by every worker.
//! - [`notice_gate`]: at most one `message.attempt.exhausted` per endpoint a minute.
//! - [`ordered`]: ordered endpoints' queues, due times and leases.
//! - [`published`]: publish idempotency: event ids the API accepted in the last 24 h.
//! - [`tenants`]: the API's per-tenant state: Test Webhook budget, token revocation.
#![forbid(unsafe_code)]

pub mod attempts;
pub mod cache;
pub mod catalog;
pub mod circuit;
pub mod connection;
pub mod dedup;
pub mod endpoints;
pub mod fresh;
pub mod keys;
pub mod notice_gate;
pub mod ordered;
pub mod published;
pub mod rate;
pub mod sealing;
pub mod tenants;

mod error;

pub use attempts::AttemptLog;
pub use cache::EndpointCache;
pub use catalog::{EventTypes, TypeInfo};
pub use circuit::{CircuitPolicy, Circuits, Closed, ProbeGrant, Recorded, Streak};
pub use dedup::{Claim, Dedup, Held};
pub use endpoints::{EndpointStore, Resealed};
pub use error::{Error, Result};
pub use fresh::Fresh;
pub use notice_gate::ExhaustedNotices;
pub use ordered::{Appended, Backlog, OrderedQueues, Route, Waiting};
pub use published::{Publications, Seen};
pub use rate::{RateLimits, Turn};
pub use sealing::{Keyring, SecretKey};
pub use tenants::Tenants;

/// Re-exported so users of this crate issue raw commands with the same version.
pub use redis;

pub use connection::{Redis, connect, ping};

/// A namespace of its own on the local Redis, so that tests running at once share nothing.
#[cfg(test)]
#[allow(clippy::unwrap_used)]
pub(crate) fn scratch(prefix: &str) -> (hookfleet_core::Namespace, Redis) {
    let namespace = format!("{prefix}-{}", uuid::Uuid::now_v7().simple());
    let redis = connect("redis://127.0.0.1:6379").unwrap();
    (namespace.parse().unwrap(), redis)
}

/// Deletes every key of `namespace` (endpoints and de-duplication marks): for tests,
/// benchmarks and tearing down a namespace. Returns how many keys went.
pub async fn purge(redis: &Redis, namespace: &hookfleet_core::Namespace) -> Result<u64> {
    let mut conn = redis.clone();
    let mut removed = 0;
    for pattern in keys::Keys::new(namespace).all_patterns() {
        if redis.is_cluster() {
            // SCAN walks one node; KEYS goes to every master and joins their answers (and
            // UNLINK is split by slot), which is what tearing down a test namespace wants.
            let keys: Vec<String> = redis::cmd("KEYS")
                .arg(&pattern)
                .query_async(&mut conn)
                .await?;
            for chunk in keys.chunks(1_000) {
                removed += redis::cmd("UNLINK")
                    .arg(chunk)
                    .query_async::<u64>(&mut conn)
                    .await?;
            }
            continue;
        }
        let mut cursor: u64 = 0;
        loop {
            let (next, keys): (u64, Vec<String>) = redis::cmd("SCAN")
                .arg(cursor)
                .arg("MATCH")
                .arg(&pattern)
                .arg("COUNT")
                .arg(5_000)
                .query_async(&mut conn)
                .await?;
            if !keys.is_empty() {
                removed += redis::cmd("UNLINK")
                    .arg(&keys)
                    .query_async::<u64>(&mut conn)
                    .await?;
            }
            if next == 0 {
                break;
            }
            cursor = next;
        }
    }
    Ok(removed)
}
