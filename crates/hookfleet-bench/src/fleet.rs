//! The fleet under test: the settings of its `hookfleet worker` processes (the release binary
//! next to this one), and Redis's identity. The processes, the settings builder, the receiver
//! and the tear-down are the shared harness's (`hookfleet_testkit`).

use std::path::PathBuf;

use anyhow::{Context, bail};
use hookfleet_store::redis;
use hookfleet_testkit::{REDIS_URL, WorkerEnv, binary};

use crate::Settings;

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

/// The settings of every worker of a fresh namespace `bench_<12 hex>`: the binary's defaults
/// (the default catalog, `RUST_LOG=info`: what a user runs) but, when given,
/// `HOOKFLEET_MAX_INFLIGHT` and `HOOKFLEET_ATTEMPT_LOG_LEN`.
pub fn env(settings: &Settings) -> WorkerEnv {
    let mut env = WorkerEnv::fresh("bench").set("RUST_LOG", "info");
    if let Some(n) = settings.max_inflight {
        env = env.concurrency(n);
    }
    if let Some(n) = settings.attempt_log_len {
        env = env.set("HOOKFLEET_ATTEMPT_LOG_LEN", n.to_string());
    }
    env
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
