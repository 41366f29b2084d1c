//! One pipeline scenario: a fresh namespace, endpoints in Redis, real worker processes, events
//! published through the producer, and the receiver's tally read until every expected delivery
//! arrived, the scenario's time is up, or deliveries stalled. What it got is reported either way.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use hookfleet_producer::{Broker, Publisher};
use hookfleet_store::EndpointStore;

use hookfleet_testkit::{Launch, WorkerProcess, metric_sum};

use crate::fleet;
use crate::load::{self, Events, Published};
use crate::procfs::{CpuSample, peak_rss_mib};
use crate::report::{CpuSplit, Lag, Outcome};
use crate::{AMQP_URL, Bench, REDIS_URL};

/// How long without a new delivery, once publishing is over, before giving up.
const STALL: Duration = Duration::from_secs(15);
/// How long to wait for the workers' metrics to count every delivery the receiver saw.
const SETTLE: Duration = Duration::from_secs(5);
/// How often progress is printed.
const PROGRESS_EVERY: Duration = Duration::from_secs(2);

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
}

/// Runs the scenario and removes everything it created.
pub async fn run(bench: &Bench, spec: &Spec) -> Outcome {
    let namespace = fleet::fresh_namespace();
    bench.track(&namespace);
    eprintln!("[{}] namespace {namespace}", spec.name);
    let mut outcome = Outcome::new(spec.name);
    outcome.workers = spec.workers;
    outcome.fanout = spec.fanout;
    outcome.other_endpoints = spec.other_endpoints;
    outcome.expected = spec.events * spec.fanout as u64;
    outcome.target_rate = spec.pace;
    let mut workers = Vec::new();
    if let Err(error) = drive(bench, spec, &namespace, &mut workers, &mut outcome).await {
        outcome.error = Some(format!("{error:#}"));
    }
    for worker in workers {
        worker.stop().await;
    }
    fleet::cleanup(&namespace, &[]).await;
    outcome
}

async fn drive(
    bench: &Bench,
    spec: &Spec,
    namespace: &str,
    workers: &mut Vec<WorkerProcess>,
    outcome: &mut Outcome,
) -> anyhow::Result<()> {
    let redis_before = fleet::redis_run_id().await;
    let pool = hookfleet_store::connect(REDIS_URL)?;
    if spec.other_endpoints > 0 {
        crate::endpoints::seed_other_tenants(&pool, namespace, spec.other_endpoints).await?;
    }
    let store = EndpointStore::new(pool, namespace);
    let secrets = crate::endpoints::register_bench(&store, &bench.receiver, spec.fanout).await?;
    bench.receiver.tally.begin(secrets, spec.events);

    let env = fleet::worker_env(namespace, bench.settings.concurrency);
    let launch = Launch {
        binary: &bench.worker_binary,
        env: &env,
        http: &bench.http,
        label: "",
    };
    for i in 0..spec.workers {
        let log = bench.log_dir.join(format!("{namespace}-worker-{i}.log"));
        let worker = WorkerProcess::spawn(&launch, log).await?;
        eprintln!(
            "[{}] worker {i} ready (pid {}, log {})",
            spec.name,
            worker.pid(),
            worker.log_path().display()
        );
        workers.push(worker);
    }
    let pids: Vec<u32> = workers.iter().map(|w| w.pid()).collect();

    let broker = Broker::connect(AMQP_URL).await?;
    let publisher = Arc::new(Publisher::new(broker.clone(), namespace.parse()?));
    let events = Events::new(crate::endpoints::TENANT, bench.settings.payload_bytes)?;
    let published = Arc::new(Published::default());
    let cpu_before = CpuSample::take(&pids);
    let task = match spec.pace {
        None => tokio::spawn(load::burst(
            publisher,
            events,
            spec.events,
            published.clone(),
        )),
        Some(rate) => tokio::spawn(load::paced(
            publisher,
            events,
            spec.events,
            rate,
            published.clone(),
        )),
    };

    let started = Instant::now();
    let mut last_progress = (Instant::now(), 0u64);
    let mut last_change = (Instant::now(), 0u64);
    let snapshot = loop {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let snap = bench.receiver.tally.snapshot();
        let sent = published.ok.load(Ordering::Relaxed);
        let publishing_done = published.done_us.load(Ordering::Relaxed) > 0;
        if snap.unique >= outcome.expected {
            break snap;
        }
        if snap.unique != last_change.1 {
            last_change = (Instant::now(), snap.unique);
        }
        if started.elapsed() >= bench.settings.timeout {
            eprintln!("[{}] timed out; reporting what arrived", spec.name);
            outcome.timed_out = true;
            break snap;
        }
        if publishing_done && last_change.0.elapsed() >= STALL {
            eprintln!("[{}] no delivery for {STALL:?}; giving up", spec.name);
            break snap;
        }
        if let Some(i) = workers.iter_mut().position(|w| !w.is_running()) {
            anyhow::bail!("worker {i} exited; see {}", workers[i].log_path().display());
        }
        if last_progress.0.elapsed() >= PROGRESS_EVERY {
            let rate =
                (snap.unique - last_progress.1) as f64 / last_progress.0.elapsed().as_secs_f64();
            eprintln!(
                "[{}] {:>5.1}s published {sent}/{}, delivered {}/{} ({rate:.0}/s)",
                spec.name,
                started.elapsed().as_secs_f64(),
                spec.events,
                snap.unique,
                outcome.expected
            );
            last_progress = (Instant::now(), snap.unique);
        }
    };
    let cpu = CpuSample::take(&pids).since(&cpu_before);
    task.abort();
    broker.close().await;

    let first_us = published.first_us.load(Ordering::Relaxed);
    outcome.sent = published.ok.load(Ordering::Relaxed);
    outcome.delivered = snapshot.unique;
    outcome.duplicates = snapshot.duplicates;
    outcome.signatures_checked = snapshot.verified;
    outcome.bad_signatures = snapshot.bad_signatures;
    outcome.seconds = snapshot.last_us.saturating_sub(first_us) as f64 / 1e6;
    if outcome.seconds > 0.0 {
        outcome.rate = outcome.delivered as f64 / outcome.seconds;
    }
    outcome.lag_ms = Lag::of(bench.receiver.tally.lags_us());
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
        bench: cpu.bench,
        other: (cpu.machine - cpu.workers - cpu.rabbitmq - cpu.redis - cpu.bench).max(0.0),
    });
    // The receiver answers before the worker records the delivery and acks: let the workers
    // catch up (bounded) before they are stopped, so a SIGTERM does not cut that short.
    let settle = Instant::now();
    loop {
        let (mut delivered, mut restarts) = (0.0, 0.0);
        for worker in workers.iter() {
            if let Some(text) = worker.metrics().await {
                delivered +=
                    metric_sum(&text, "hookfleet_deliveries_total", "result=\"delivered\"");
                restarts += metric_sum(&text, "hookfleet_consumer_restarts_total", "");
            }
        }
        outcome.consumer_restarts = restarts;
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
    let failed = published.failed.load(Ordering::Relaxed);
    if failed > 0 {
        anyhow::bail!("{failed} publishes failed");
    }
    Ok(())
}
