//! `--ordered`: ordered endpoints against their targets (docs/ordered.md), each part in a
//! fresh namespace with the binary's default settings but where a part says otherwise:
//!
//! 1. Throughput: one ordered endpoint answering in 10 ms, two workers, 1,000 events queued
//!    at once; events a second from its first request to its last event's 2xx.
//! 2. Order under failures: the same, with one request in five answered 500 at random
//!    (retries every 50 ms, eight of them, so none gives up): every event delivered, and no
//!    request ever for an event earlier than the one before it.
//! 3. Cost: 1,000 endpoints, one per tenant, a trickle of 200 events a second in all for 20 s
//!    (0.2 a second each), two workers; CPU of the workers, RabbitMQ and Redis from the first
//!    publish to the last delivery, ordered ÷ unordered, rounds in ABBA order.

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use hookfleet_producer::OutboundEvent;
use hookfleet_testkit::load::{self, Pace, Progress};
use hookfleet_testkit::{Fleet, Receiver, Reply, WorkerEnv, WorkerProcess};
use serde_json::json;

use crate::procfs::CpuSample;

const TYPES: [&str; 2] = ["approval.approved", "log.blocked"];
const EVENTS: usize = 1_000;
const ENDPOINTS: usize = 1_000;
const TRICKLE_PER_SECOND: f64 = 200.0;
const TRICKLE_SECONDS: f64 = 20.0;
/// Longest a part may take to deliver everything.
const PATIENCE: Duration = Duration::from_secs(180);

pub async fn run(binary: &Path, log_dir: &Path) -> anyhow::Result<String> {
    let receiver = Receiver::start().await?;
    let mut rows = Vec::new();

    let rate = in_order(binary, log_dir, &receiver, "/fast", None).await?;
    rows.push(format!(
        "| one ordered endpoint, 10 ms receiver, 2 workers, {EVENTS} events: events/s in order (target ≥ 50) | {rate:.0} |"
    ));
    let rate = in_order(binary, log_dir, &receiver, "/flaky", Some(5)).await?;
    rows.push(format!(
        "| the same, 20 % of requests failing at random: events/s, every one in publish order | {rate:.0}, in order |"
    ));

    let mut cpu: [Vec<f64>; 2] = [Vec::new(), Vec::new()];
    for round in 0..4 {
        let ordered = matches!(round, 1 | 2);
        let used = trickle(binary, log_dir, &receiver, ordered, round).await?;
        let seconds = used.workers + used.rabbitmq + used.redis;
        eprintln!(
            "[ordered] round {} {}: {seconds:.2} CPU s (workers {:.2}, RabbitMQ {:.2}, Redis {:.2})",
            round + 1,
            if ordered { "ordered" } else { "unordered" },
            used.workers,
            used.rabbitmq,
            used.redis,
        );
        cpu[usize::from(ordered)].push(seconds);
    }
    let [unordered, ordered] = cpu.map(|v| v.iter().sum::<f64>() / v.len() as f64);
    rows.push(format!(
        "| {ENDPOINTS} endpoints, {TRICKLE_PER_SECOND} events/s in all for {TRICKLE_SECONDS} s, 2 workers: CPU s (workers + RabbitMQ + Redis), unordered / ordered | {unordered:.1} / {ordered:.1} |"
    ));
    rows.push(format!(
        "| ordered ÷ unordered CPU (mean of 2 rounds each, ABBA; target ≤ 2) | {:.2} |",
        ordered / unordered
    ));
    Ok(format!(
        "| ordered endpoints | figure |\n|---|---|\n{}",
        rows.join("\n")
    ))
}

/// A fleet of `workers` in a fresh namespace, its topology declared.
async fn fleet(binary: &Path, log_dir: &Path, env: WorkerEnv) -> anyhow::Result<Fleet> {
    let fleet = Fleet::new(binary, log_dir, env.set("RUST_LOG", "info"))?;
    fleet.declare().await?;
    Ok(fleet)
}

async fn workers(fleet: &Fleet) -> anyhow::Result<Vec<WorkerProcess>> {
    Ok(vec![
        fleet.spawn_worker(&[]).await?,
        fleet.spawn_worker(&[]).await?,
    ])
}

/// Parts 1 and 2: the rate of in-order delivery to one ordered endpoint at `path`, where one
/// request in `fail_one_in` fails when given. Errors when an event is missing or out of order.
async fn in_order(
    binary: &Path,
    log_dir: &Path,
    receiver: &Receiver,
    path: &str,
    fail_one_in: Option<u64>,
) -> anyhow::Result<f64> {
    let mut env = WorkerEnv::fresh("bench");
    if fail_one_in.is_some() {
        env = env.set("HOOKFLEET_RETRY_DELAYS", ["50ms"; 8].join(","));
    }
    let fleet = fleet(binary, log_dir, env).await?;
    let ok = Reply::status(200).delayed(Duration::from_millis(10));
    receiver.set_default(path, ok);
    if let Some(one_in) = fail_one_in {
        // The same pseudo-random pattern every run: one in `one_in` answered 500.
        let mut state: u64 = 0x2545_f491_4f6c_dd1d;
        let replies = (0..EVENTS * 3).map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            if state.is_multiple_of(one_in) {
                Reply::status(500)
            } else {
                ok
            }
        });
        receiver.enqueue(path, replies);
    }
    let url = receiver.url(path);
    fleet
        .add_endpoint_with("acme", &url, &TYPES, |e| e.ordered = true)
        .await?;
    route(&fleet, ["acme"]).await?;
    let workers = workers(&fleet).await?;
    let publisher = Arc::new(fleet.publisher().await?);
    // One at a time: each confirmed before the next, so the broker's order is this one.
    let mut ids = Vec::with_capacity(EVENTS);
    for n in 0..EVENTS {
        let event = event("acme", TYPES[n % 2], n);
        publisher.publish(&event).await?;
        ids.push(event.id.to_string());
    }
    let all_in = wait_for(|| ids.iter().all(|id| receiver.seen(path, id).ok >= 1)).await;
    let arrivals = receiver.requests(path);
    fleet.finish(workers).await;
    anyhow::ensure!(all_in, "{path}: not every event was delivered");
    let position: HashMap<&str, usize> = ids
        .iter()
        .enumerate()
        .map(|(i, id)| (id.as_str(), i))
        .collect();
    let order: Vec<usize> = (arrivals.iter())
        .filter_map(|a| position.get(a.header("webhook-id")).copied())
        .collect();
    anyhow::ensure!(
        order.windows(2).all(|w| w[0] <= w[1]),
        "{path}: an event was sent after a later one"
    );
    let first = arrivals.first().map(|a| a.at);
    let last = arrivals.last().map(|a| a.at);
    let elapsed = match (first, last) {
        (Some(first), Some(last)) => last.duration_since(first).as_secs_f64(),
        _ => 0.0,
    };
    Ok(EVENTS as f64 / elapsed.max(1e-3))
}

/// Part 3: one round's CPU for the trickle to 1,000 endpoints.
async fn trickle(
    binary: &Path,
    log_dir: &Path,
    receiver: &Receiver,
    ordered: bool,
    round: usize,
) -> anyhow::Result<CpuSample> {
    let fleet = fleet(binary, log_dir, WorkerEnv::fresh("bench")).await?;
    let path = format!("/trickle/{round}");
    receiver.set_default(&path, Reply::status(200).delayed(Duration::from_millis(10)));
    let url = receiver.url(&path);
    let tenants: Vec<String> = (0..ENDPOINTS).map(|n| format!("t{n}")).collect();
    for tenant in &tenants {
        (fleet.add_endpoint_with(tenant, &url, &TYPES, |e| e.ordered = ordered)).await?;
    }
    if ordered {
        route(&fleet, tenants.iter().map(String::as_str)).await?;
    }
    let workers = workers(&fleet).await?;
    let pids: Vec<u32> = workers.iter().map(WorkerProcess::pid).collect();
    let publisher = Arc::new(fleet.publisher().await?);
    let count = (TRICKLE_PER_SECOND * TRICKLE_SECONDS) as usize;
    let pace = Pace {
        count,
        in_flight: 64,
        rate: Some(TRICKLE_PER_SECOND),
        attempts: 5,
    };
    let before = CpuSample::take(&pids);
    let published = load::publish(publisher, pace, Arc::new(Progress::default()), move |n| {
        event(&format!("t{}", n % ENDPOINTS), TYPES[n % 2], n)
    })
    .await;
    let expected: HashSet<String> = published.ids.clone();
    let all_in = wait_for(|| receiver.tally(&path, &expected).delivered == expected.len()).await;
    let used = CpuSample::take(&pids).since(&before);
    fleet.finish(workers).await;
    anyhow::ensure!(
        all_in && published.not_published == 0,
        "{path}: events missing"
    );
    Ok(used)
}

/// Lets `tenants`' events into the ordered intake, as the API does for an ordered endpoint.
pub async fn route<'a>(
    fleet: &Fleet,
    tenants: impl IntoIterator<Item = &'a str>,
) -> anyhow::Result<()> {
    let (env, topology) = (fleet.env(), fleet.env().topology()?);
    let broker = hookfleet_amqp::Broker::connect(env.amqp_url()).await?;
    let redis = hookfleet_store::connect(env.redis_url())?;
    let queues = hookfleet_store::OrderedQueues::new(redis, &topology.namespace);
    for tenant in tenants {
        let tenant = tenant.parse()?;
        hookfleet_worker::ordered::route_tenant(&broker, &topology, &queues, &tenant).await?;
    }
    broker.close().await;
    Ok(())
}

fn event(tenant: &str, event_type: &str, n: usize) -> OutboundEvent {
    OutboundEvent::new(
        event_type.parse().expect("a catalog type"),
        tenant.parse().expect("a valid tenant"),
        &json!({"request": format!("req-{}", n / 2), "n": n}),
        None,
    )
}

/// Waits for `done`, at most [`PATIENCE`]; whether it came.
async fn wait_for(mut done: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + PATIENCE;
    while !done() {
        if Instant::now() > deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    true
}
