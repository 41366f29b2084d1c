//! The fault-injection scenarios, and the waiting and counting they share.
//!
//! Each scenario publishes a known set of events, injects its fault, then waits until every
//! receiver path got every event (or the scenario's time limit passed), and then until the
//! queues are empty and nothing arrived for a while, so that late duplicates are counted too.
//!
//! - [`worker_crash`]: SIGKILL one of two workers mid-stream.
//! - [`broker_restart`]: `rabbitmqctl stop_app` / `start_app` during delivery, and during
//!   publishing.
//! - [`redis_restart`]: `redis-cli shutdown nosave` and a fresh Redis during delivery.
//! - [`receivers`]: a receiver down for seconds, one slow, one resetting connections.
//! - [`poison`]: an event one endpoint always refuses, and a malformed message.

pub mod broker_restart;
pub mod poison;
pub mod receivers;
pub mod redis_restart;
pub mod worker_crash;

use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use hookfleet_core::TenantId;

use crate::fleet::Fleet;
use crate::receiver::{Count, Server, Tally};
use crate::{Outcome, Settings};

/// How long the queues must stay empty, with nothing new arriving, before counting ends.
const QUIET: Duration = Duration::from_millis(1500);
/// The longest wait for that quiet, after every event arrived.
const QUIET_LIMIT: Duration = Duration::from_secs(40);

/// Runs every scenario in order (the report); a scenario that fails is reported as an error
/// row and the others still run.
pub async fn run_all(settings: &Settings) -> Vec<Outcome> {
    let mut outcomes = Vec::new();
    macro_rules! run {
        ($name:literal, $f:expr) => {
            eprintln!("chaos: running {}", $name);
            match $f.await {
                Ok(rows) => outcomes.extend(rows),
                Err(error) => outcomes.push(Outcome {
                    scenario: $name.to_owned(),
                    note: format!("scenario failed: {error:#}"),
                    lost: usize::MAX,
                    ..Outcome::default()
                }),
            }
        };
    }
    run!("worker SIGKILL", worker_crash::run(settings));
    run!(
        "RabbitMQ restart",
        broker_restart::during_delivery(settings)
    );
    run!(
        "RabbitMQ restart while publishing",
        broker_restart::during_publishing(settings)
    );
    run!("Redis restart", redis_restart::run(settings));
    run!("receivers", receivers::run(settings));
    run!("poison", poison::run(settings));
    outcomes
}

/// The usual stage: one receiver path served from `tally`, the endpoint of tenant `acme`
/// pointing at it, the topology declared. Keep the server alive for the scenario.
pub async fn single_endpoint(
    fleet: &mut Fleet,
    tally: &Arc<Tally>,
    path: &str,
) -> anyhow::Result<(Server, TenantId)> {
    let server = Server::start(Arc::clone(tally)).await?;
    let tenant: TenantId = "acme".parse()?;
    fleet.add_endpoint(&tenant, &server.url(path)).await?;
    fleet.declare().await?;
    Ok((server, tenant))
}

/// Waits (at most `limit`) until `path` got every id, then until everything is quiet, and
/// counts: when all had arrived, and what arrived.
pub async fn settle(
    fleet: &Fleet,
    tally: &Tally,
    path: &str,
    ids: &HashSet<String>,
    limit: Duration,
) -> (Option<Instant>, Count) {
    let done = wait_delivered(tally, &[path], ids, limit).await;
    wait_quiet(fleet, tally, &[path]).await;
    (done, tally.count(path, ids))
}

/// Waits until every path got every expected id, polling every 50 ms; returns when that
/// happened, or `None` after `limit`.
pub async fn wait_delivered(
    tally: &Tally,
    paths: &[&str],
    expected: &HashSet<String>,
    limit: Duration,
) -> Option<Instant> {
    let started = Instant::now();
    loop {
        if paths
            .iter()
            .all(|p| tally.count(p, expected).delivered >= expected.len())
        {
            return Some(Instant::now());
        }
        if started.elapsed() > limit {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Waits until the namespace's queues are empty and no request arrived for [`QUIET`], so that
/// redeliveries and retries still on their way are counted (bounded by [`QUIET_LIMIT`]).
pub async fn wait_quiet(fleet: &Fleet, tally: &Tally, paths: &[&str]) {
    let none = HashSet::new();
    let requests = || -> usize { paths.iter().map(|p| tally.count(p, &none).requests).sum() };
    let started = Instant::now();
    let mut last = requests();
    let mut quiet_since = Instant::now();
    while started.elapsed() < QUIET_LIMIT {
        tokio::time::sleep(Duration::from_millis(250)).await;
        let now = requests();
        let backlog = fleet.backlog().await.unwrap_or(u32::MAX);
        if now != last || backlog > 0 {
            last = now;
            quiet_since = Instant::now();
        } else if quiet_since.elapsed() >= QUIET {
            return;
        }
    }
    eprintln!("chaos: {} never went quiet", fleet.namespace);
}

/// Waits until `path` has had at least `n` requests (any event), bounded by `limit`.
pub async fn wait_requests(tally: &Tally, path: &str, n: usize, limit: Duration) -> bool {
    let none = HashSet::new();
    let started = Instant::now();
    while tally.count(path, &none).requests < n {
        if started.elapsed() > limit {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    true
}

/// How long after `fault_over` the first 2xx came, and when everything had (`done`).
#[derive(Debug, Clone, Copy, Default)]
pub struct Recovery {
    pub first: Option<Duration>,
    pub all: Option<Duration>,
}

impl Recovery {
    pub fn measure(tally: &Tally, path: &str, fault_over: Instant, done: Option<Instant>) -> Self {
        Self {
            first: tally
                .first_ok_after(path, fault_over)
                .map(|t| t.saturating_duration_since(fault_over)),
            all: done.map(|t| t.saturating_duration_since(fault_over)),
        }
    }
}

/// A report row from a path's count.
pub fn outcome(
    scenario: &str,
    published: &crate::load::Published,
    count: Count,
    recovery: Recovery,
    note: String,
) -> Outcome {
    Outcome {
        scenario: scenario.to_owned(),
        published: published.ids.len(),
        not_published: published.not_published,
        delivered: count.delivered,
        lost: published.ids.len().saturating_sub(count.delivered),
        duplicates: count.duplicates,
        allowed_duplicates: 0,
        first_delivery_in: recovery.first,
        recovered_in: recovery.all,
        note,
    }
}

/// Runs a blocking service command (rabbitmqctl, redis-cli) off the async threads.
pub async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> anyhow::Result<T> + Send + 'static,
) -> anyhow::Result<T> {
    tokio::task::spawn_blocking(f).await?
}
