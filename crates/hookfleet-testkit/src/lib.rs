//! The one test harness of hookfleet, zero2prod style: a fresh namespace per run, the real
//! `hookfleet` binary as child processes against the local RabbitMQ and Redis, a real HTTP
//! receiver on 127.0.0.1, and everything removed afterwards. The integration tests
//! (`tests/util` is a thin, panicking layer over this), the benchmark and the fault-injection
//! report all use it; what they decide differently (sizes, settings, how long to wait) stays
//! with them and is passed in.
//!
//! # Layout
//! - [`env`]: [`WorkerEnv`], the one builder of a namespace's settings.
//! - [`fleet`]: [`Fleet`], one namespace: its commands, workers, endpoints and tear-down.
//! - [`worker`]: [`WorkerProcess`], one running `hookfleet worker`: readiness, metrics, signals.
//! - [`receiver`]: [`Receiver`], the configurable HTTP receiver that records every arrival.
//! - [`load`]: publishing many events through the real producer.
//! - [`publisher`]: [`RawPublisher`], publishing as any AMQP client would, contract or not.
//! - [`signature`]: an independent Standard Webhooks verifier.
//! - [`metrics`]: reading numbers out of the Prometheus text a worker serves.
//! - [`teardown`]: removing everything a namespace left in RabbitMQ and Redis.
//! - [`cluster`]: the local RabbitMQ cluster and Redis Cluster of `scripts/cluster`.
//! - [`binary`]: where the `hookfleet` binary of this build is, and building it.
#![forbid(unsafe_code)]

pub mod binary;
pub mod cluster;
pub mod env;
mod error;
pub mod fleet;
pub mod load;
pub mod metrics;
pub mod publisher;
pub mod receiver;
pub mod signature;
pub mod teardown;
pub mod worker;

use std::time::{Duration, Instant};

pub use env::WorkerEnv;
pub use error::{Error, Result};
pub use fleet::Fleet;
pub use metrics::metric_sum;
pub use publisher::RawPublisher;
pub use receiver::{Arrival, Receiver, Reply};
pub use signature::verify_signature;
pub use teardown::teardown;
pub use worker::WorkerProcess;

/// The local broker (docs/contract.md §4 default): the only one the harness ever targets.
pub const AMQP_URL: &str = "amqp://guest:guest@127.0.0.1:5672/%2f";
/// The local Redis (docs/contract.md §4 default): the only one the harness ever targets.
pub const REDIS_URL: &str = "redis://127.0.0.1:6379";
/// The local PostgreSQL of `scripts/services.sh`, for the message history.
pub const DATABASE_URL: &str = "postgres://postgres:postgres@127.0.0.1:5432/postgres";

/// Polls `condition` every `every` until it holds (true) or `limit` passed (false).
pub async fn poll_until(
    limit: Duration,
    every: Duration,
    mut condition: impl FnMut() -> bool,
) -> bool {
    let started = Instant::now();
    loop {
        if condition() {
            return true;
        }
        if started.elapsed() >= limit {
            return false;
        }
        tokio::time::sleep(every).await;
    }
}

/// `n` random lowercase hex characters, from std alone (`RandomState` is randomly keyed).
pub fn random_hex(n: usize) -> String {
    use std::hash::{BuildHasher, Hasher};
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let mut out = String::new();
    while out.len() < n {
        let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
        hasher.write_u64(COUNTER.fetch_add(1, Ordering::Relaxed));
        out.push_str(&format!("{:016x}", hasher.finish()));
    }
    out.truncate(n);
    out
}

/// A port that was free a moment ago on 127.0.0.1 (bind port 0, read it, release it).
pub fn free_port() -> std::io::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}
