//! hookfleet's state in Redis: endpoints and de-duplication marks.
//!
//! # Layout
//! - [`keys`]: every Redis key, namespaced and hash-tagged for Redis Cluster.
//! - [`endpoints`]: endpoint records and their per-tenant index.
//! - [`cache`]: a short-lived per-tenant cache of endpoints for the delivery path.
//! - [`dedup`]: claim-then-commit marks per (endpoint, event id).
//! - [`attempts`]: each endpoint's capped attempt log.
//! - [`sealing`]: endpoint secrets encrypted at rest.
//! - [`circuit`]: each endpoint's circuit breaker state, shared by every worker.
#![forbid(unsafe_code)]

pub mod attempts;
pub mod cache;
pub mod circuit;
pub mod dedup;
pub mod endpoints;
pub mod keys;
pub mod sealing;

mod error;

pub use attempts::AttemptLog;
pub use cache::EndpointCache;
pub use circuit::{CircuitPolicy, Circuits, ProbeGrant, Recorded};
pub use dedup::{Claim, Dedup};
pub use endpoints::EndpointStore;
pub use error::{Error, Result};
pub use sealing::SecretKey;

/// Re-exported so users of this crate issue raw commands with the same version.
pub use redis;

use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};

/// A handle to Redis, cheap to clone and shared by every task.
///
/// It is one multiplexed connection: commands from concurrent deliveries are pipelined into
/// the same writes and reads, which costs both hookfleet and Redis far fewer system calls per
/// command than a pool of connections used one command at a time. It reconnects by itself
/// after an error, and a command that gets no answer within 2 s fails instead of hanging.
pub type Redis = ConnectionManager;

/// A handle to Redis at `url`. The connection opens on first use, so this only fails on a
/// malformed URL; [`ping`] checks that Redis answers.
pub fn connect(url: &str) -> Result<Redis> {
    let client = redis::Client::open(url).map_err(|e| Error::Config(e.to_string()))?;
    let config = ConnectionManagerConfig::new()
        .set_connection_timeout(Some(Duration::from_secs(2)))
        .set_response_timeout(Some(Duration::from_secs(2)))
        .set_number_of_retries(2)
        .set_max_delay(Duration::from_millis(500));
    ConnectionManager::new_lazy_with_config(client, config).map_err(Error::Redis)
}

/// Whether Redis answers, for start-up checks and readiness.
pub async fn ping(redis: &Redis) -> Result<()> {
    let _: String = redis::cmd("PING").query_async(&mut redis.clone()).await?;
    Ok(())
}

/// Deletes every key of `namespace` (endpoints and de-duplication marks): for tests,
/// benchmarks and tearing down a namespace. Returns how many keys went.
pub async fn purge(redis: &Redis, namespace: &hookfleet_core::Namespace) -> Result<u64> {
    let mut conn = redis.clone();
    let mut removed = 0;
    for pattern in keys::Keys::new(namespace).all_patterns() {
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
