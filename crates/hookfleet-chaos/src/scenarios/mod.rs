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
//! - [`postgres_stop`]: the message history's PostgreSQL stopped for 30 s under load.
//! - [`cluster`]: a RabbitMQ node, a Redis master, and every RabbitMQ node in turn lost from
//!   the clusters of `scripts/cluster`.
//! - [`ordered`]: an ordered endpoint through a SIGKILL, a RabbitMQ and a Redis restart, its
//!   order checked.

pub mod broker_restart;
pub mod cluster;
pub mod ordered;
pub mod poison;
pub mod postgres_stop;
pub mod receivers;
pub mod redis_restart;
pub mod worker_crash;

use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use hookfleet_core::Endpoint;
use hookfleet_testkit::load::{Pace, Published};
use hookfleet_testkit::receiver::Count;
use hookfleet_testkit::{Fleet, Receiver, Reply, WorkerProcess, poll_until};

use crate::{EVENT_TYPE, Outcome, Settings, fleet};

/// The tenant of every scenario's endpoints.
const TENANT: &str = "acme";
/// The receiver path of the single-endpoint scenarios.
const PATH: &str = "/hook";
/// How many messages each worker handles at once, unless a scenario says otherwise.
const CONCURRENCY: usize = 32;
/// The same in the scenarios where a fault hits workers busy delivering a queue.
const DELIVERING: usize = 16;
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
    run!("PostgreSQL stopped", postgres_stop::run(settings));
    run!("ordered: worker SIGKILL", ordered::worker_crash(settings));
    run!(
        "ordered: RabbitMQ restart",
        ordered::broker_restart(settings)
    );
    run!("ordered: Redis restart", ordered::redis_restart(settings));
    run!(
        "RabbitMQ leader lost",
        cluster::rabbit_leader_lost(settings)
    );
    run!("Redis master lost", cluster::redis_master_lost(settings));
    run!(
        "RabbitMQ rolling restart",
        cluster::rabbit_rolling_restart(settings)
    );
    outcomes
}

/// The usual stage: [`TENANT`]'s endpoint at [`PATH`] on a receiver that answers 200 after
/// `reply_after`, the topology declared. Keep the receiver alive for the scenario.
pub async fn single_endpoint(
    fleet: &Fleet,
    reply_after: Duration,
) -> anyhow::Result<(Receiver, Endpoint)> {
    let receiver = Receiver::start().await?;
    receiver.set_default(PATH, Reply::status(200).delayed(reply_after));
    let endpoint = fleet
        .add_endpoint(TENANT, &receiver.url(PATH), &[EVENT_TYPE])
        .await?;
    fleet.declare().await?;
    Ok((receiver, endpoint))
}

/// A single-endpoint scenario once its fault is injected.
#[derive(Debug)]
pub struct Run {
    pub fleet: Fleet,
    pub receiver: Receiver,
    pub workers: Vec<WorkerProcess>,
    pub published: Published,
}

impl Run {
    /// Waits (at most two minutes) until [`PATH`] got every published event and then until
    /// all is quiet, stops the workers, removes the namespace, and makes the row, timed from
    /// `fault_over`; `note` gets the workers' consumer restarts, read before they stop.
    pub async fn conclude(
        self,
        scenario: &str,
        fault_over: Instant,
        note: impl FnOnce(f64) -> String,
    ) -> Outcome {
        self.conclude_keeping(scenario, fault_over, note).await.0
    }

    /// [`Run::conclude`], and the receiver, for a scenario that checks more of what it got.
    pub async fn conclude_keeping(
        self,
        scenario: &str,
        fault_over: Instant,
        note: impl FnOnce(f64) -> String,
    ) -> (Outcome, Receiver) {
        let Run {
            fleet,
            receiver,
            workers,
            published,
        } = self;
        let limit = Duration::from_secs(120);
        let done = wait_delivered(&receiver, &[PATH], &published.ids, limit).await;
        wait_quiet(&fleet, &receiver, &[PATH]).await;
        let mut restarts = 0.0;
        for worker in &workers {
            let metric = worker
                .metric("hookfleet_consumer_restarts_total", &[])
                .await;
            restarts += metric.unwrap_or(0.0);
        }
        fleet.finish(workers).await;
        let recovery = Recovery::measure(&receiver, PATH, fault_over, done);
        let count = receiver.tally(PATH, &published.ids);
        let row = outcome(scenario, &published, count, recovery, note(restarts));
        (row, receiver)
    }
}

/// The stage of the faults during delivery: every event queued first, then two workers of
/// [`DELIVERING`] messages at once delivering to [`single_endpoint`]'s receiver, answering
/// after `reply_after`.
pub async fn queued_then_delivering(
    settings: &Settings,
    name: &str,
    reply_after: Duration,
) -> anyhow::Result<(Run, Endpoint)> {
    let events = settings.size.pick(2_000, 10_000);
    let fleet = fleet::fresh(settings, name, DELIVERING)?;
    let (receiver, endpoint) = single_endpoint(&fleet, reply_after).await?;
    let load = fleet::load(&fleet, TENANT, Pace::flood(events), Arc::default()).await?;
    let published = load.await;
    let workers = vec![
        fleet.spawn_worker(&[]).await?,
        fleet.spawn_worker(&[]).await?,
    ];
    let run = Run {
        fleet,
        receiver,
        workers,
        published,
    };
    Ok((run, endpoint))
}

/// The stage of the faults during publishing: two workers deliver to `receiver` while
/// `events` are published at `rate` ([`fleet::paced_load`]); `fault` runs once `first` have
/// been published and says what it did. Returns `title`'s row, timed from the fault's end.
pub async fn fault_while_publishing(
    fleet: Fleet,
    receiver: Receiver,
    title: &str,
    events: usize,
    rate: f64,
    first: usize,
    fault: impl AsyncFnOnce(&Fleet) -> anyhow::Result<String>,
) -> anyhow::Result<Outcome> {
    let workers = vec![
        fleet.spawn_worker(&[]).await?,
        fleet.spawn_worker(&[]).await?,
    ];
    let load = fleet::paced_load(&fleet, TENANT, events, rate, first).await?;
    let note = fault(&fleet).await;
    let fault_over = Instant::now();
    // Awaited even when the fault failed, so that no publisher outlives the scenario.
    let published = load.await?;
    let note = note?;
    let errors = published.errors;
    let run = Run {
        fleet,
        receiver,
        workers,
        published,
    };
    let row = run.conclude(title, fault_over, |restarts| {
        format!("{note}; {errors} publish calls retried, {restarts} consumer restarts")
    });
    Ok(row.await)
}

/// Waits until every path got every expected id, polling every 50 ms; returns when that
/// happened, or `None` after `limit`.
pub async fn wait_delivered(
    receiver: &Receiver,
    paths: &[&str],
    expected: &HashSet<String>,
    limit: Duration,
) -> Option<Instant> {
    let all = || (paths.iter()).all(|p| receiver.tally(p, expected).delivered >= expected.len());
    let met = poll_until(limit, Duration::from_millis(50), all).await;
    met.then(Instant::now)
}

/// Waits until the namespace's queues are empty and no request arrived for [`QUIET`], so that
/// redeliveries and retries still on their way are counted (bounded by [`QUIET_LIMIT`]).
pub async fn wait_quiet(fleet: &Fleet, receiver: &Receiver, paths: &[&str]) {
    let requests = || -> usize { paths.iter().map(|p| receiver.count(p)).sum() };
    let started = Instant::now();
    let mut last = requests();
    let mut quiet_since = Instant::now();
    while started.elapsed() < QUIET_LIMIT {
        tokio::time::sleep(Duration::from_millis(250)).await;
        let now = requests();
        let backlog = fleet::backlog(fleet).await.unwrap_or(u32::MAX);
        if now != last || backlog > 0 {
            last = now;
            quiet_since = Instant::now();
        } else if quiet_since.elapsed() >= QUIET {
            return;
        }
    }
    eprintln!("chaos: {} never went quiet", fleet.namespace());
}

/// Waits until [`PATH`] has had at least `n` requests (any event), bounded by a minute.
pub async fn wait_requests(receiver: &Receiver, n: usize) -> bool {
    let enough = || receiver.count(PATH) >= n;
    poll_until(Duration::from_secs(60), Duration::from_millis(20), enough).await
}

/// How long after `fault_over` the first 2xx came, and when everything had (`done`).
#[derive(Debug, Clone, Copy, Default)]
pub struct Recovery {
    pub first: Option<Duration>,
    pub all: Option<Duration>,
}

impl Recovery {
    pub fn measure(
        receiver: &Receiver,
        path: &str,
        fault_over: Instant,
        done: Option<Instant>,
    ) -> Self {
        Self {
            first: receiver
                .first_ok_after(path, fault_over)
                .map(|t| t.saturating_duration_since(fault_over)),
            all: done.map(|t| t.saturating_duration_since(fault_over)),
        }
    }
}

/// A report row from a path's count.
pub fn outcome(
    scenario: &str,
    published: &Published,
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
