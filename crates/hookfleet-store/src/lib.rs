//! hookfleet's state in Redis: endpoints and de-duplication marks.
//!
//! # Layout
//! - [`keys`]: every Redis key, namespaced and hash-tagged for Redis Cluster.
//! - [`endpoints`]: endpoint records and their per-tenant index.
//! - [`cache`]: a short-lived per-tenant cache of endpoints for the delivery path.
//! - [`dedup`]: claim-then-commit marks per (endpoint, event id).
#![forbid(unsafe_code)]

pub mod cache;
pub mod dedup;
pub mod endpoints;
pub mod keys;

mod error;

pub use cache::EndpointCache;
pub use dedup::{Claim, Dedup};
pub use endpoints::EndpointStore;
pub use error::{Error, Result};

/// Re-exported so users of this crate build pools of the same version.
pub use deadpool_redis;

use deadpool_redis::{Config, Pool, Runtime};

/// A pool of Redis connections at `url`. Connections are opened on first use, so this only
/// fails on a malformed URL; [`ping`] checks that Redis answers.
pub fn pool(url: &str) -> Result<Pool> {
    Config::from_url(url)
        .create_pool(Some(Runtime::Tokio1))
        .map_err(|e| Error::Config(e.to_string()))
}

/// Whether Redis answers, for start-up checks and readiness.
pub async fn ping(pool: &Pool) -> Result<()> {
    let mut conn = pool.get().await?;
    let _: String = deadpool_redis::redis::cmd("PING")
        .query_async(&mut conn)
        .await?;
    Ok(())
}
