//! The bare loop: what the least a webhook worker must do costs, as the baseline of the drain.
//!
//! A queue is filled with the backlog's events (same bodies, same properties), then a child
//! process (this executable with `--bare-loop`) drains it the naive way: one lapin consumer at
//! prefetch 1 000, and for every message a task that takes a `SET NX PX` de-duplication key,
//! POSTs the body to the receiver and acks the message on its own. It is a separate process so
//! that its CPU is read from `/proc` exactly as a worker's is; it prints one JSON line with what
//! it did, the bench compares `backlog-clean` with it.

use std::sync::Arc;
use std::time::Instant;

use anyhow::{Context, bail};
use futures_util::StreamExt;
use hookfleet_store::redis;
use lapin::options::{BasicAckOptions, BasicConsumeOptions, BasicQosOptions};
use lapin::types::FieldTable;
use lapin::{Connection, ConnectionProperties};
use serde::{Deserialize, Serialize};
use tokio::task::JoinSet;

use crate::load::Events;
use crate::report::{Outcome, name};
use crate::{AMQP_URL, REDIS_URL, baseline, fleet, procfs};

/// The bare loop's prefetch: each unacked message is one POST in flight, as in a worker.
const PREFETCH: u16 = 1_000;

/// What the child was asked to do: `--bare-loop QUEUE,URL,COUNT,KEY_PREFIX`.
#[derive(Debug, Clone)]
pub struct Job {
    queue: String,
    url: String,
    count: u64,
    key_prefix: String,
}

impl std::str::FromStr for Job {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let parts: Vec<&str> = s.splitn(4, ',').collect();
        let [queue, url, count, key_prefix] = parts[..] else {
            return Err("expected QUEUE,URL,COUNT,KEY_PREFIX".to_owned());
        };
        Ok(Self {
            queue: queue.to_owned(),
            url: url.to_owned(),
            count: count.parse().map_err(|e| format!("count: {e}"))?,
            key_prefix: key_prefix.to_owned(),
        })
    }
}

/// What the child prints when it is done.
#[derive(Debug, Serialize, Deserialize)]
struct Report {
    delivered: u64,
    seconds: f64,
    cpu_seconds: f64,
}

/// Fills a queue with `count` events, drains it with the bare loop in a child process, and
/// reports its rate and CPU per 1 000 deliveries.
pub async fn drain(bench: &crate::Bench, count: u64, events: &Events) -> Outcome {
    let mut outcome = Outcome::new(name::BARE);
    outcome.expected = count;
    outcome.fanout = 1;
    let env = fleet::env(&bench.settings);
    bench.track(&env);
    let namespace = env.namespace().to_owned();
    let run = async {
        let queue = baseline::queue_name(&namespace);
        eprintln!("[{}] queueing {count} events", name::BARE);
        baseline::fill(&queue, events, count).await?;
        let path = "/bare";
        let job = format!(
            "{queue},{},{count},{namespace}:dedup:bare:",
            bench.receiver.url(path)
        );
        let exe = std::env::current_exe()?;
        let output = tokio::process::Command::new(exe)
            .args(["--bare-loop", &job])
            .kill_on_drop(true)
            .output()
            .await
            .context("cannot run the bare loop")?;
        if !output.status.success() {
            bail!(
                "the bare loop failed: {}",
                String::from_utf8_lossy(&output.stderr).trim()
            );
        }
        let report: Report =
            serde_json::from_slice(&output.stdout).context("the bare loop printed no report")?;
        outcome.sent = count;
        outcome.delivered = report.delivered;
        outcome.seconds = report.seconds;
        outcome.rate = report.delivered as f64 / report.seconds.max(1e-9);
        outcome.worker_cpu_ms_per_1k =
            Some(report.cpu_seconds * 1e6 / report.delivered.max(1) as f64);
        if bench.receiver.count(path) < count as usize {
            bail!("the receiver saw fewer POSTs than the bare loop acked");
        }
        anyhow::Ok(())
    };
    match tokio::time::timeout(bench.settings.timeout, run).await {
        Ok(Ok(())) => {}
        Ok(Err(error)) => outcome.error = Some(format!("{error:#}")),
        Err(_) => outcome.timed_out = true,
    }
    hookfleet_testkit::teardown(&env, &[baseline::queue_name(&namespace)]).await;
    outcome
}

/// The child: drains `job.count` messages and prints its [`Report`] on stdout.
pub async fn child(job: Job) -> anyhow::Result<()> {
    let connection = Connection::connect(AMQP_URL, ConnectionProperties::default()).await?;
    let channel = connection.create_channel().await?;
    channel
        .basic_qos(PREFETCH, BasicQosOptions::default())
        .await?;
    let mut deliveries = channel
        .basic_consume(
            job.queue.as_str().into(),
            "bare".into(),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await?;
    let redis = redis::Client::open(REDIS_URL)?
        .get_multiplexed_async_connection()
        .await?;
    let http = reqwest::Client::builder().no_proxy().build()?;
    let job = Arc::new(job);
    // Timed from the first consume, as a worker is timed from when it is ready.
    let (started, cpu_before) = (Instant::now(), own_cpu_seconds());
    let mut tasks = JoinSet::new();
    let mut delivered = 0;
    while delivered < job.count {
        tokio::select! {
            delivery = deliveries.next() => {
                let Some(delivery) = delivery else { bail!("the consumer was cancelled") };
                let delivery = delivery?;
                let (mut redis, http, job) = (redis.clone(), http.clone(), job.clone());
                tasks.spawn(async move {
                    let id = delivery.properties.message_id().clone().map(|id| id.to_string());
                    let key = format!("{}{}", job.key_prefix, id.unwrap_or_default());
                    let fresh: Option<String> = redis::cmd("SET").arg(&key).arg(1).arg("NX")
                        .arg("PX").arg(60_000).query_async(&mut redis).await?;
                    if fresh.is_some() {
                        http.post(&job.url).header("content-type", "application/json")
                            .body(delivery.data.clone()).send().await?.error_for_status()?;
                    }
                    delivery.acker.ack(BasicAckOptions::default()).await?;
                    anyhow::Ok(())
                });
            }
            Some(done) = tasks.join_next() => {
                done??;
                delivered += 1;
            }
        }
    }
    let seconds = started.elapsed().as_secs_f64();
    let cpu_seconds = own_cpu_seconds() - cpu_before;
    let report = Report {
        delivered,
        seconds,
        cpu_seconds,
    };
    println!("{}", serde_json::to_string(&report)?);
    let _ = connection.close(200, "bare loop done".into()).await;
    Ok(())
}

fn own_cpu_seconds() -> f64 {
    procfs::cpu_seconds(std::process::id()).unwrap_or(0.0)
}
