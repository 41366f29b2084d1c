//! The fleet under test: fresh namespaces, the settings of its `hookfleet worker` processes
//! (the release binary next to this one), and removing everything a namespace left in
//! RabbitMQ and Redis. The processes and the tear-down themselves are `hookfleet_testkit`'s.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, bail};
use hookfleet_store::redis;
use hookfleet_testkit::{binary, teardown};

use crate::{AMQP_URL, EVENT_TYPE, REDIS_URL};

/// The retry schedule the workers run with, spelled out so clean-up knows the tier names.
const RETRY_DELAYS: &str = "30s,2m,8m";
const RETRY_DELAYS_MS: [u64; 3] = [30_000, 120_000, 480_000];
/// How long clean-up retries a service that is down (e.g. restarted by someone else).
const CLEANUP_PATIENCE: Duration = Duration::from_secs(30);

/// A fresh namespace, `bench_<12 hex>`.
pub fn fresh_namespace() -> String {
    format!("bench_{:012x}", rand::random::<u64>() & 0xffff_ffff_ffff)
}

/// The `hookfleet` release binary: next to this executable, built if missing.
pub fn worker_binary() -> anyhow::Result<PathBuf> {
    let binary = binary::beside_current_exe()?;
    if binary.exists() {
        return Ok(binary);
    }
    eprintln!(
        "{} is missing: running `cargo build --release --bin hookfleet`",
        binary.display()
    );
    let status = binary::cargo_build(true).context("cannot run cargo")?;
    if !status.success() || !binary.exists() {
        bail!(
            "could not build {}: run `cargo build --release` first",
            binary.display()
        );
    }
    Ok(binary)
}

/// The settings of every worker of `namespace`.
pub fn worker_env(namespace: &str, concurrency: usize) -> Vec<(String, String)> {
    [
        ("HOOKFLEET_NAMESPACE", namespace),
        ("HOOKFLEET_AMQP_URL", AMQP_URL),
        ("HOOKFLEET_REDIS_URL", REDIS_URL),
        ("HOOKFLEET_ALLOW_PRIVATE_TARGETS", "true"),
        ("HOOKFLEET_CONCURRENCY", &concurrency.to_string()),
        ("HOOKFLEET_EVENT_TYPES", EVENT_TYPE),
        ("HOOKFLEET_QUEUE_TYPE", "quorum"),
        ("HOOKFLEET_RETRY_DELAYS", RETRY_DELAYS),
        ("RUST_LOG", "warn"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect()
}

/// Redis's `run_id` (new at every restart): this machine's Redis keeps nothing on disk, so a
/// restart during a scenario wipes its endpoints and the numbers mean nothing.
pub async fn redis_run_id() -> Option<String> {
    let client = redis::Client::open(REDIS_URL).ok()?;
    let mut connection = client.get_multiplexed_async_connection().await.ok()?;
    let info: String = redis::cmd("INFO")
        .arg("server")
        .query_async(&mut connection)
        .await
        .ok()?;
    info.lines()
        .find_map(|l| l.strip_prefix("run_id:"))
        .map(|id| id.trim().to_owned())
}

/// Deletes the namespace's queues and exchanges (`extra_queues` too) and its Redis keys.
/// A service that is down is retried for up to [`CLEANUP_PATIENCE`]; failures are printed,
/// not returned, so clean-up never hides a result.
pub async fn cleanup(namespace: &str, extra_queues: &[String]) {
    let options = teardown::Options {
        extra_queues,
        rabbitmq_attempt: Duration::from_secs(20),
        redis_attempt: Duration::from_secs(60),
        retry_for: CLEANUP_PATIENCE,
        label: "",
    };
    let delays = RETRY_DELAYS_MS.map(Duration::from_millis);
    teardown(namespace, &[EVENT_TYPE], &delays, &options).await;
}
