//! One pipeline scenario: a fresh namespace, endpoints in Redis, real worker processes, events
//! published through the producer, and the receiver's tally read until every expected delivery
//! arrived, the scenario's time is up, or deliveries stalled. What it got is reported either way.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use hookfleet_core::Secret;
use hookfleet_testkit::load::{self, Pace, Progress};
use hookfleet_testkit::{Fleet, Receiver, Reply, WorkerProcess, verify_signature};
use serde::Deserialize;

use crate::history::{self, DATABASE_URL};
use crate::load::{Events, IN_FLIGHT, Mix};
use crate::procfs::{CpuSample, peak_rss_mib};
use crate::report::{CpuSplit, Lag, Outcome};
use crate::{Bench, REDIS_URL, endpoints, fleet};

/// How long without a new delivery, once publishing is over, before giving up.
const STALL: Duration = Duration::from_secs(15);
/// How long to wait for the workers' metrics to count every delivery the receiver saw.
const SETTLE: Duration = Duration::from_secs(5);
/// How often progress is printed.
const PROGRESS_EVERY: Duration = Duration::from_secs(2);
/// How often a delivery's signature is verified (HMAC is cheap, but not free on 2 cores).
const VERIFY_EVERY: usize = 64;

/// What to run.
#[derive(Debug, Clone)]
pub struct Spec {
    pub name: &'static str,
    pub events: u64,
    pub fanout: usize,
    pub workers: usize,
    pub other_endpoints: u64,
    /// Events per second for a paced publisher; `None` publishes as fast as possible.
    pub pace: Option<f64>,
    /// Which tenants the events go to; a healthy tenant has `fanout` endpoints.
    pub mix: Mix,
    /// How long the healthy endpoints take to answer (a real receiver: 100–500 ms).
    pub reply_after: Duration,
    /// Publish every event before the workers start (a backlog), and time from their start.
    pub prefill: bool,
    /// Run on `scripts/cluster`'s RabbitMQ cluster and Redis Cluster instead of the local
    /// services.
    pub cluster: bool,
    /// Percent of events of the busy type; the rest go to the catalog's other types.
    pub busy_pct: usize,
    /// Record a message history in the local PostgreSQL (a schema of the namespace's own,
    /// dropped at the end).
    pub history: bool,
    /// The healthy endpoints use the controls that cost something per delivery: two custom
    /// headers and a payload filter that every event matches.
    pub controls: bool,
}

impl Spec {
    /// Events to `fanout` endpoints of one instant tenant, published while the workers run.
    pub fn simple(name: &'static str, events: u64, fanout: usize, workers: usize) -> Self {
        Self {
            name,
            events,
            fanout,
            workers,
            other_endpoints: 0,
            pace: None,
            mix: Mix {
                healthy_tenants: 1,
                ..Mix::default()
            },
            reply_after: Duration::ZERO,
            prefill: false,
            cluster: false,
            busy_pct: 100,
            history: false,
            controls: false,
        }
    }
}

/// Runs the scenario and removes everything it created.
pub async fn run(bench: &Bench, spec: &Spec) -> Outcome {
    let mut outcome = Outcome::new(spec.name);
    outcome.workers = spec.workers;
    outcome.fanout = spec.fanout * spec.mix.healthy_tenants.max(1);
    outcome.other_endpoints = spec.other_endpoints;
    let healthy = spec.mix.healthy(spec.events as usize) as u64;
    outcome.expected = healthy * spec.fanout as u64;
    outcome.target_rate = spec.pace;
    let mut env = fleet::env(&bench.settings);
    if spec.cluster {
        let Some(clusters) = &bench.clusters else {
            outcome.error = Some("scripts/cluster did not start".into());
            return outcome;
        };
        env = (env.set("HOOKFLEET_AMQP_URL", &clusters.amqp_url))
            .set("HOOKFLEET_REDIS_URL", &clusters.redis_url);
    }
    if spec.history {
        env = env.set("HOOKFLEET_DATABASE_URL", DATABASE_URL);
    }
    bench.track(&env);
    eprintln!("[{}] namespace {}", spec.name, env.namespace());
    let history = match spec.history {
        true => match history::prepare(env.namespace()).await {
            Ok(history) => Some(history),
            Err(error) => {
                outcome.error = Some(format!("the message history: {error:#}"));
                return outcome;
            }
        },
        false => None,
    };
    let fleet = match Fleet::new(&bench.worker_binary, &bench.log_dir, env) {
        Ok(fleet) => fleet,
        Err(error) => {
            outcome.error = Some(format!("{error:#}"));
            return outcome;
        }
    };
    let mut workers = Vec::new();
    if let Err(error) = drive(bench, spec, &fleet, &mut workers, &mut outcome).await {
        outcome.error = Some(format!("{error:#}"));
    }
    fleet.finish(workers).await;
    if let Some(history) = history {
        // The workers flushed what they had queued as they stopped.
        match history.attempts().await {
            Ok(count) => outcome.history_attempts = Some(count),
            Err(error) => outcome.error = Some(format!("the message history: {error:#}")),
        }
        history.drop().await;
    }
    outcome
}

async fn drive(
    bench: &Bench,
    spec: &Spec,
    fleet: &Fleet,
    workers: &mut Vec<WorkerProcess>,
    outcome: &mut Outcome,
) -> anyhow::Result<()> {
    let redis_before = fleet::redis_run_id().await;
    if spec.other_endpoints > 0 {
        let pool = hookfleet_store::connect(REDIS_URL)?;
        let (namespace, count) = (fleet.namespace(), spec.other_endpoints);
        crate::endpoints::seed_other_tenants(&pool, namespace, count).await?;
    }
    let receiver = &bench.receiver;
    let tenants = endpoints::healthy_tenants(spec.mix.healthy_tenants);
    let controls = spec.controls;
    let secrets =
        endpoints::register_bench(fleet, receiver, &tenants, spec.fanout, controls).await?;
    if spec.mix.has_faults() {
        endpoints::register_faulty(fleet, receiver).await?;
    }
    receiver.clear();
    if !spec.reply_after.is_zero() {
        for path in 0..secrets.len() {
            let reply = Reply::status(200).delayed(spec.reply_after);
            receiver.set_default(&format!("/ep/{path}"), reply);
        }
    }
    receiver.set_default(endpoints::DEAD_PATH, Reply::never());
    receiver.set_default(endpoints::FAILING_PATH, Reply::status(503));

    let publisher = Arc::new(fleet.publisher().await?);
    let names: Vec<String> = (tenants.iter().cloned())
        .chain([
            endpoints::DEAD_TENANT.to_owned(),
            endpoints::FAILING_TENANT.to_owned(),
            endpoints::LIMITED_TENANT.to_owned(),
        ])
        .collect();
    let events =
        Events::of_tenants(&names, bench.settings.payload_bytes)?.busy_share(spec.busy_pct);
    let progress = Arc::new(Progress::default());
    let pace = Pace {
        count: spec.events as usize,
        in_flight: IN_FLIGHT,
        rate: spec.pace,
        // An error is a lost publish here, reported, not retried.
        attempts: 1,
    };
    let mix = spec.mix;
    let build = move |seq| events.build_for(seq, mix.tenant(seq));
    let publishing = load::publish(publisher, pace, progress.clone(), build);
    let task = if spec.prefill {
        // No worker has declared the queues yet.
        fleet.declare().await?;
        publishing.await;
        eprintln!("[{}] {} events queued", spec.name, progress.confirmed());
        None
    } else {
        Some(publishing)
    };

    for i in 0..spec.workers {
        let worker = fleet.spawn_worker(&[]).await?;
        eprintln!(
            "[{}] worker {i} ready (pid {}, log {})",
            spec.name,
            worker.pid(),
            worker.log_path().display()
        );
        workers.push(worker);
    }
    let pids: Vec<u32> = workers.iter().map(|w| w.pid()).collect();

    // Wall-clock and monotonic time now, to put arrivals on the clock of `sent_us`.
    let anchor = (Instant::now(), crate::unix_micros());
    let cpu_before = CpuSample::take(&pids);
    let workers_started = Instant::now();
    let task = task.map(tokio::spawn);

    let started = Instant::now();
    let mut last_progress = (Instant::now(), 0);
    let mut last_change = (Instant::now(), 0);
    let totals = loop {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let mut totals = receiver.totals();
        // The rate-limited endpoint's deliveries are not the healthy ones this counts.
        totals.delivered -= receiver
            .count(endpoints::LIMITED_PATH)
            .min(totals.delivered);
        let sent = progress.confirmed();
        let publishing_done = progress.done() >= pace.count;
        if totals.delivered as u64 >= outcome.expected {
            break totals;
        }
        if totals.delivered != last_change.1 {
            last_change = (Instant::now(), totals.delivered);
        }
        if started.elapsed() >= bench.settings.timeout {
            eprintln!("[{}] timed out; reporting what arrived", spec.name);
            outcome.timed_out = true;
            break totals;
        }
        if publishing_done && last_change.0.elapsed() >= STALL {
            eprintln!("[{}] no delivery for {STALL:?}; giving up", spec.name);
            break totals;
        }
        if let Some(i) = workers.iter_mut().position(|w| !w.is_running()) {
            anyhow::bail!("worker {i} exited; see {}", workers[i].log_path().display());
        }
        if last_progress.0.elapsed() >= PROGRESS_EVERY {
            let new = totals.delivered - last_progress.1;
            let rate = new as f64 / last_progress.0.elapsed().as_secs_f64();
            eprintln!(
                "[{}] {:>5.1}s published {sent}/{}, delivered {}/{} ({rate:.0}/s)",
                spec.name,
                started.elapsed().as_secs_f64(),
                spec.events,
                totals.delivered,
                outcome.expected
            );
            last_progress = (Instant::now(), totals.delivered);
        }
    };
    let cpu = CpuSample::take(&pids).since(&cpu_before);
    if let Some(task) = task {
        task.abort();
    }

    let first = FirstDeliveries::of(receiver, &secrets, anchor);
    outcome.sent = progress.confirmed() as u64;
    outcome.delivered = totals.delivered as u64;
    outcome.duplicates = totals.duplicates as u64;
    outcome.signatures_checked = first.verified;
    outcome.bad_signatures = first.bad_signatures;
    // A backlog is timed from the workers' start; a live load from its first publish.
    let start = match spec.prefill {
        true => Some(workers_started),
        false => progress.started(),
    };
    if let (Some(start), Some(last)) = (start, first.last) {
        outcome.seconds = last.saturating_duration_since(start).as_secs_f64();
    }
    if outcome.seconds > 0.0 {
        outcome.rate = outcome.delivered as f64 / outcome.seconds;
    }
    outcome.lag_ms = Lag::of(first.lags_us);
    if outcome.delivered > 0 {
        outcome.worker_cpu_ms_per_1k = Some(cpu.workers * 1e6 / outcome.delivered as f64);
    }
    outcome.worker_peak_rss_mib = pids
        .iter()
        .filter_map(|p| peak_rss_mib(*p))
        .reduce(f64::max);
    outcome.cpu_seconds = Some(CpuSplit {
        workers: cpu.workers,
        rabbitmq: cpu.rabbitmq,
        redis: cpu.redis,
        postgres: cpu.postgres,
        bench: cpu.bench,
        other: (cpu.machine - cpu.workers - cpu.rabbitmq - cpu.redis - cpu.postgres - cpu.bench)
            .max(0.0),
    });
    // The receiver answers before the worker records the delivery and acks: let the workers
    // catch up (bounded) before they are stopped, so a SIGTERM does not cut that short.
    let settle = Instant::now();
    loop {
        let (mut delivered, mut restarts) = (0.0, 0.0);
        for worker in workers.iter() {
            let result = [("result", "delivered")];
            let done = worker.metric("hookfleet_deliveries_total", &result).await;
            delivered += done.unwrap_or(0.0);
            let restarted = worker
                .metric("hookfleet_consumer_restarts_total", &[])
                .await;
            restarts += restarted.unwrap_or(0.0);
        }
        outcome.consumer_restarts = restarts;
        if spec.history {
            let mut dropped = 0.0;
            for worker in workers.iter() {
                let counted = worker.metric("hookfleet_history_dropped_total", &[]).await;
                dropped += counted.unwrap_or(0.0);
            }
            outcome.history_dropped = Some(dropped);
        }
        outcome.metric_delivered = Some(delivered);
        if delivered >= outcome.delivered as f64 || settle.elapsed() >= SETTLE {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let mut disturbed = Vec::new();
    if outcome.consumer_restarts > 0.0 {
        disturbed.push(format!(
            "{} consumer restarts (broker connection lost)",
            outcome.consumer_restarts
        ));
    }
    if fleet::redis_run_id().await != redis_before {
        disturbed.push("Redis restarted (its endpoints were wiped)".to_owned());
    }
    if !disturbed.is_empty() {
        outcome.disturbed = Some(disturbed.join("; "));
    }
    let failed = progress.done() - progress.confirmed();
    if failed > 0 {
        anyhow::bail!("{failed} publishes failed");
    }
    Ok(())
}

/// What the receiver's records say about the first delivery of each event to each endpoint
/// `/ep/<k>` (repeats are the receiver's duplicates).
#[derive(Debug, Default)]
struct FirstDeliveries {
    /// The receiver's clock minus `data.sent_us`, in micros.
    lags_us: Vec<u64>,
    /// When the last one arrived.
    last: Option<Instant>,
    /// Signatures checked (one in [`VERIFY_EVERY`]) and how many did not match.
    verified: u64,
    bad_signatures: u64,
}

/// The part of a bench event's body the tally reads.
#[derive(Deserialize)]
struct Envelope {
    data: Sent,
}

#[derive(Deserialize)]
struct Sent {
    sent_us: u64,
}

impl FirstDeliveries {
    /// `secrets[k]` signs endpoint `/ep/<k>`; `anchor` is one instant and the same time in
    /// unix micros.
    fn of(receiver: &Receiver, secrets: &[Secret], anchor: (Instant, u64)) -> Self {
        let mut first = Self::default();
        for (k, secret) in secrets.iter().enumerate() {
            let mut seen = HashSet::new();
            for arrival in receiver.requests(&format!("/ep/{k}")) {
                let id = arrival
                    .headers
                    .get("webhook-id")
                    .and_then(|v| v.to_str().ok());
                if !seen.insert(id.unwrap_or_default().to_owned()) {
                    continue;
                }
                let at_us =
                    anchor.1 + arrival.at.saturating_duration_since(anchor.0).as_micros() as u64;
                if let Ok(event) = serde_json::from_slice::<Envelope>(&arrival.body) {
                    first.lags_us.push(at_us.saturating_sub(event.data.sent_us));
                }
                first.last = first.last.max(Some(arrival.at));
                if seen.len() % VERIFY_EVERY == 1 {
                    let ok = verify_signature(secret.expose(), &arrival.headers, &arrival.body);
                    first.verified += 1;
                    first.bad_signatures += u64::from(!ok);
                }
            }
        }
        first
    }
}
