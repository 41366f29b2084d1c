//! Scenario 2: restart RabbitMQ (`rabbitmqctl stop_app`, a pause, `start_app`) while workers
//! deliver, and while events are being published.
//!
//! Workers lose their connection, reconnect with backoff, declare the topology again and
//! resume; the messages they held come back as redeliveries, and those whose POST succeeded
//! are skipped by their done mark: no duplicates. The publisher re-sends whatever was not
//! confirmed, so nothing it reported as published is lost.

use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::fleet::Fleet;
use crate::load::{Counter, Pace};
use crate::receiver::Tally;
use crate::services::{self, Restore};
use crate::{Outcome, Settings};

use super::{Recovery, blocking, outcome, settle, single_endpoint, wait_requests};

const PATH: &str = "/hook";
/// How long the broker stays away.
const DOWN: Duration = Duration::from_secs(3);

/// Stops the broker's app, waits [`DOWN`], starts it and waits until it accepts connections;
/// returns when it did. `guard` keeps the broker from being left stopped on a failure.
async fn restart_broker(_guard: &Restore) -> anyhow::Result<Instant> {
    blocking(services::stop_rabbitmq_app).await?;
    tokio::time::sleep(DOWN).await;
    blocking(services::start_rabbitmq_app).await?;
    Ok(Instant::now())
}

/// All events are queued first; the broker restarts once a tenth of them has arrived.
pub async fn during_delivery(settings: &Settings) -> anyhow::Result<Vec<Outcome>> {
    let events = settings.size.pick(2_000, 10_000);
    let mut fleet = Fleet::new(settings, "rmq_delivery")?;
    fleet.set("HOOKFLEET_CONCURRENCY", "16");
    let tally = Arc::new(Tally::default());
    // 200 ms per request and 2 × 16 in flight: about 160 events a second, so the restart
    // lands in the middle of delivery.
    tally.set_delay(PATH, Duration::from_millis(200));
    let (server, tenant) = single_endpoint(&mut fleet, &tally, PATH).await?;
    let published = fleet
        .load(&tenant, Pace::flood(events), Arc::default())
        .await?
        .await;
    let workers = [fleet.spawn_worker().await?, fleet.spawn_worker().await?];

    let guard = Restore::new()?;
    wait_requests(&tally, PATH, events / 10, Duration::from_secs(60)).await;
    let back_at = restart_broker(&guard).await?;
    drop(guard);

    let (done, count) = settle(
        &fleet,
        &tally,
        PATH,
        &published.ids,
        Duration::from_secs(120),
    )
    .await;
    let restarts = restarts(&workers).await;
    fleet.finish(workers).await;
    drop(server);
    Ok(vec![outcome(
        "RabbitMQ restart during delivery",
        &published,
        count,
        Recovery::measure(&tally, PATH, back_at, done),
        format!(
            "stop_app, {} s, start_app once a tenth had arrived; 2 workers reconnected \
             ({restarts} consumer restarts in all); the time to all delivered is mostly \
             the receiver's pace (2 × 16 in flight, 200 ms each)",
            DOWN.as_secs()
        ),
    )])
}

/// Events are published at a steady pace; the broker restarts a quarter of the way through.
pub async fn during_publishing(settings: &Settings) -> anyhow::Result<Vec<Outcome>> {
    let events = settings.size.pick(2_000, 10_000);
    let rate = settings.size.pick(200.0, 500.0);
    let mut fleet = Fleet::new(settings, "rmq_publish")?;
    let tally = Arc::new(Tally::default());
    let (server, tenant) = single_endpoint(&mut fleet, &tally, PATH).await?;
    let workers = [fleet.spawn_worker().await?, fleet.spawn_worker().await?];

    let guard = Restore::new()?;
    let progress = Arc::new(Counter::default());
    let pace = Pace {
        count: events,
        in_flight: 64,
        rate: Some(rate),
    };
    let load = tokio::spawn(fleet.load(&tenant, pace, Arc::clone(&progress)).await?);
    while progress.get() < events / 4 && !load.is_finished() {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let back_at = restart_broker(&guard).await?;
    drop(guard);
    let published = load.await?;

    let (done, count) = settle(
        &fleet,
        &tally,
        PATH,
        &published.ids,
        Duration::from_secs(120),
    )
    .await;
    let restarts = restarts(&workers).await;
    fleet.finish(workers).await;
    drop(server);
    Ok(vec![outcome(
        "RabbitMQ restart during publishing",
        &published,
        count,
        Recovery::measure(&tally, PATH, back_at, done),
        format!(
            "publishing {rate} events/s, stop_app, {} s, start_app a quarter of the way \
             through; {} publish calls failed and were retried, {restarts} consumer restarts",
            DOWN.as_secs(),
            published.errors
        ),
    )])
}

/// `hookfleet_consumer_restarts_total` summed over the workers.
async fn restarts(workers: &[hookfleet_testkit::WorkerProcess]) -> f64 {
    let mut sum = 0.0;
    for worker in workers {
        if let Some(text) = worker.metrics().await {
            sum += hookfleet_testkit::metric_sum(&text, "hookfleet_consumer_restarts_total", "");
        }
    }
    sum
}
