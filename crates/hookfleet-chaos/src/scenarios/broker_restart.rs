//! Scenario 2: restart RabbitMQ (`rabbitmqctl stop_app`, a pause, `start_app`) while workers
//! deliver, and while events are being published.
//!
//! Workers lose their connection, reconnect with backoff, declare the topology again and
//! resume; the messages they held come back as redeliveries, and those whose POST succeeded
//! are skipped by their done mark: no duplicates. The publisher re-sends whatever was not
//! confirmed, so nothing it reported as published is lost.

use std::time::{Duration, Instant};

use super::{
    CONCURRENCY, blocking, fault_while_publishing, queued_then_delivering, single_endpoint,
    wait_requests,
};
use crate::services::{self, Restore};
use crate::{Outcome, Settings, fleet};

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
    // 200 ms per request and 2 × 16 in flight: about 160 events a second, so the restart
    // lands in the middle of delivery.
    let reply_after = Duration::from_millis(200);
    let (run, _) = queued_then_delivering(settings, "rmq_delivery", reply_after).await?;
    let guard = Restore::new()?;
    wait_requests(&run.receiver, run.published.ids.len() / 10).await;
    let back_at = restart_broker(&guard).await?;
    drop(guard);
    let row = run.conclude("RabbitMQ restart during delivery", back_at, |restarts| {
        format!(
            "stop_app, {} s, start_app once a tenth had arrived; 2 workers reconnected \
             ({restarts} consumer restarts in all); the time to all delivered is mostly \
             the receiver's pace (2 × 16 in flight, 200 ms each)",
            DOWN.as_secs()
        )
    });
    Ok(vec![row.await])
}

/// Events are published at a steady pace; the broker restarts a quarter of the way through.
pub async fn during_publishing(settings: &Settings) -> anyhow::Result<Vec<Outcome>> {
    let events = settings.size.pick(2_000, 10_000);
    let rate = settings.size.pick(200.0, 500.0);
    let fleet = fleet::fresh(settings, "rmq_publish", CONCURRENCY)?;
    let (receiver, _) = single_endpoint(&fleet, Duration::ZERO).await?;
    let title = "RabbitMQ restart during publishing";
    let row = fault_while_publishing(fleet, receiver, title, events, rate, events / 4, async |_| {
        restart_broker(&Restore::new()?).await?;
        Ok(format!(
            "publishing {rate} events/s, stop_app, {} s, start_app a quarter of the way through",
            DOWN.as_secs()
        ))
    })
    .await?;
    Ok(vec![row])
}
