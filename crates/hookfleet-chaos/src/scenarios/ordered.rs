//! Scenarios 8–10: an ordered endpoint (docs/ordered.md) through the same faults: the worker
//! that drives it SIGKILLed, RabbitMQ restarted while events are published, Redis restarted
//! with its data kept. Besides nothing lost, each checks the order: no request at the
//! receiver is ever for an event published before the one of the request before it. A repeat
//! of the event in flight (same `webhook-id`) is allowed: one, the head.

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use hookfleet_amqp::Broker;
use hookfleet_producer::OutboundEvent;
use hookfleet_store::redis::AsyncCommands;
use hookfleet_testkit::load::Published;
use hookfleet_testkit::{Fleet, Receiver, Reply, WorkerProcess};

use super::{DELIVERING, PATH, Run, TENANT, blocking, wait_requests};
use crate::services::{self, Restore};
use crate::{EVENT_TYPE, Outcome, Settings, fleet};

/// A repeat of the event in flight when the fault hit.
const ALLOWED: usize = 1;

/// A fleet with [`TENANT`]'s ordered endpoint at [`PATH`], answering after `reply_after`,
/// routed into the ordered intake and its topology declared.
async fn stage(
    settings: &Settings,
    name: &str,
    reply_after: Duration,
) -> anyhow::Result<(Fleet, Receiver, hookfleet_core::Endpoint)> {
    let fleet = fleet::fresh(settings, name, DELIVERING)?;
    let receiver = Receiver::start().await?;
    receiver.set_default(PATH, Reply::status(200).delayed(reply_after));
    let url = receiver.url(PATH);
    let endpoint =
        (fleet.add_endpoint_with(TENANT, &url, &[EVENT_TYPE], |e| e.ordered = true)).await?;
    let (env, topology) = (fleet.env(), fleet.env().topology()?);
    let broker = Broker::connect(env.amqp_url()).await?;
    let redis = hookfleet_store::connect(env.redis_url())?;
    let queues = hookfleet_store::OrderedQueues::new(redis, &topology.namespace);
    (hookfleet_worker::ordered::route_tenant(&broker, &topology, &queues, &TENANT.parse()?))
        .await?;
    broker.close().await;
    Ok((fleet, receiver, endpoint))
}

/// Publishes `count` events one after the other, each confirmed before the next (patient
/// through a broker restart), at most `rate` a second; their ids in publish order.
async fn publish_in_order(
    fleet: &Fleet,
    count: usize,
    rate: Option<f64>,
) -> anyhow::Result<Vec<String>> {
    let publisher = fleet
        .publisher()
        .await?
        .give_up_after(Duration::from_secs(60));
    let started = Instant::now();
    let mut ids = Vec::with_capacity(count);
    for seq in 0..count {
        if let Some(rate) = rate {
            tokio::time::sleep_until((started + Duration::from_secs_f64(seq as f64 / rate)).into())
                .await;
        }
        let data = serde_json::json!({ "seq": seq, "chaos": "ordered" });
        let event = OutboundEvent::new(EVENT_TYPE.parse()?, TENANT.parse()?, &data, None);
        publisher.publish(&event).await?;
        ids.push(event.id.to_string());
    }
    Ok(ids)
}

/// Concludes like every single-endpoint scenario, then checks the order: an error names the
/// first request that went back.
async fn conclude(
    fleet: Fleet,
    receiver: Receiver,
    workers: Vec<WorkerProcess>,
    ids: &[String],
    scenario: &str,
    fault_over: Instant,
    note: String,
) -> anyhow::Result<Outcome> {
    let published = Published {
        ids: ids.iter().cloned().collect::<HashSet<_>>(),
        ..Published::default()
    };
    let run = Run {
        fleet,
        receiver,
        workers,
        published,
    };
    let (mut row, receiver) = run.conclude_keeping(scenario, fault_over, |_| note).await;
    row.allowed_duplicates = ALLOWED;
    let position: HashMap<&str, usize> = (ids.iter().enumerate())
        .map(|(i, id)| (id.as_str(), i))
        .collect();
    let order: Vec<usize> = (receiver.requests(PATH).iter())
        .filter_map(|a| position.get(a.header("webhook-id")).copied())
        .collect();
    if let Some(pair) = order.windows(2).find(|w| w[0] > w[1]) {
        anyhow::bail!(
            "{scenario}: event {} was sent after event {}",
            pair[1],
            pair[0]
        );
    }
    row.note.push_str("; order kept");
    Ok(row)
}

/// The worker that holds the endpoint's lease (its token is `<host>:<pid>:…`), if any.
async fn driver(
    fleet: &Fleet,
    endpoint: &hookfleet_core::EndpointId,
) -> anyhow::Result<Option<u32>> {
    let client = hookfleet_store::redis::Client::open(fleet.env().redis_url())?;
    let mut conn = client.get_multiplexed_async_connection().await?;
    let key = format!("{{{}:ordered}}:lease:{endpoint}", fleet.namespace());
    let token: Option<String> = conn.get(key).await?;
    Ok(token.and_then(|t| t.split(':').nth(1).and_then(|pid| pid.parse().ok())))
}

/// Scenario 8: the worker driving the ordered endpoint is SIGKILLed a third of the way.
pub async fn worker_crash(settings: &Settings) -> anyhow::Result<Vec<Outcome>> {
    let events = settings.size.pick(600, 3_000);
    let (fleet, receiver, endpoint) =
        stage(settings, "ord_crash", Duration::from_millis(5)).await?;
    let ids = publish_in_order(&fleet, events, None).await?;
    let mut workers = vec![
        fleet.spawn_worker(&[]).await?,
        fleet.spawn_worker(&[]).await?,
    ];
    wait_requests(&receiver, events / 3).await;
    let pid = driver(&fleet, &endpoint.id).await?;
    let victim = (workers.iter())
        .position(|w| Some(w.pid()) == pid)
        .unwrap_or(0);
    workers.remove(victim).kill().await;
    let killed_at = Instant::now();
    let note = format!(
        "{events} events queued, two workers; the one holding the endpoint's lease \
         SIGKILLed after a third had arrived ({}); the next takes over when the lease expires",
        if pid.is_some() {
            "found by its lease"
        } else {
            "no lease held at that moment"
        }
    );
    let scenario = "ordered: worker SIGKILL";
    let row = conclude(fleet, receiver, workers, &ids, scenario, killed_at, note);
    Ok(vec![row.await?])
}

/// Scenario 9: RabbitMQ restarts while events are being published one by one, so the intake
/// loses its connection with events still to take.
pub async fn broker_restart(settings: &Settings) -> anyhow::Result<Vec<Outcome>> {
    let events = settings.size.pick(400, 2_000);
    let rate = 100.0;
    let (fleet, receiver, _) = stage(settings, "ord_rmq", Duration::ZERO).await?;
    let workers = vec![
        fleet.spawn_worker(&[]).await?,
        fleet.spawn_worker(&[]).await?,
    ];
    let publishing = publish_in_order(&fleet, events, Some(rate));
    let restart = async {
        wait_requests(&receiver, events / 4).await;
        let guard = Restore::new()?;
        blocking(services::stop_rabbitmq_app).await?;
        tokio::time::sleep(Duration::from_secs(3)).await;
        blocking(services::start_rabbitmq_app).await?;
        drop(guard);
        anyhow::Ok(Instant::now())
    };
    let (ids, back_at) = tokio::join!(publishing, restart);
    let (ids, back_at) = (ids?, back_at?);
    let note = format!(
        "{events} events published one by one at {rate}/s, stop_app, 3 s, start_app a quarter \
         of the way through: the intake and the publisher reconnect"
    );
    let scenario = "ordered: RabbitMQ restart";
    let row = conclude(fleet, receiver, workers, &ids, scenario, back_at, note);
    Ok(vec![row.await?])
}

/// Scenario 10: Redis shuts down saving its data, as a Redis with persistence keeps it, and
/// starts again with it while the ordered endpoint's backlog is being sent.
pub async fn redis_restart(settings: &Settings) -> anyhow::Result<Vec<Outcome>> {
    let events = settings.size.pick(600, 3_000);
    let (fleet, receiver, _) = stage(settings, "ord_redis", Duration::from_millis(5)).await?;
    let ids = publish_in_order(&fleet, events, None).await?;
    let workers = vec![
        fleet.spawn_worker(&[]).await?,
        fleet.spawn_worker(&[]).await?,
    ];
    wait_requests(&receiver, events / 3).await;
    let guard = Restore::new()?;
    blocking(services::stop_redis_saving).await?;
    tokio::time::sleep(Duration::from_secs(2)).await;
    blocking(services::start_redis).await?;
    let forgot = blocking(services::forget_redis_dump).await;
    drop(guard);
    forgot?;
    let back_at = Instant::now();
    let note = format!(
        "{events} events queued, two workers; Redis shut down with save once a third had \
         arrived, 2 s down, started again with its data (as appendonly yes keeps it)"
    );
    let scenario = "ordered: Redis restart";
    let row = conclude(fleet, receiver, workers, &ids, scenario, back_at, note);
    Ok(vec![row.await?])
}
