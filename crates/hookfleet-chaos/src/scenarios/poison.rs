//! Scenario 5: poison. In the middle of a stream of good events come an event its endpoint
//! answers 500 every time, and a message that breaks the contract (its body is not JSON).
//! The first goes through every retry tier and ends in `N.dead` with its attempt count; the
//! second goes to `N.dead` at once; the events behind them keep flowing.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use hookfleet_core::EventId;
use hookfleet_producer::OutboundEvent;
use hookfleet_testkit::load::Pace;
use hookfleet_testkit::{Fleet, RawPublisher, Reply};

use super::{
    CONCURRENCY, PATH, Recovery, TENANT, outcome, single_endpoint, wait_delivered, wait_quiet,
};
use crate::{EVENT_TYPE, Outcome, RETRY_DELAYS, Settings, fleet};

pub async fn run(settings: &Settings) -> anyhow::Result<Vec<Outcome>> {
    let events = settings.size.pick(1_000, 5_000);
    let fleet = fleet::fresh(settings, "poison", CONCURRENCY)?;
    let (receiver, _) = single_endpoint(&fleet, Duration::ZERO).await?;
    let workers = [
        fleet.spawn_worker(&[]).await?,
        fleet.spawn_worker(&[]).await?,
    ];
    let half = Pace::flood(events / 2);

    let mut good = fleet::load(&fleet, TENANT, half, Arc::default())
        .await?
        .await;
    let poison_id = EventId::generate();
    receiver.reply_to(PATH, poison_id.as_str(), Reply::status(500));
    let data = serde_json::json!({"poison": true});
    let id = Some(poison_id.clone());
    let poison = OutboundEvent::new(EVENT_TYPE.parse()?, TENANT.parse()?, &data, id);
    fleet.publisher().await?.publish(&poison).await?;
    let malformed_id = EventId::generate();
    let raw = RawPublisher::connect(fleet.namespace(), EVENT_TYPE).await?;
    raw.publish(malformed_id.as_str(), Some(TENANT), b"{not json")
        .await?;
    let poisoned_at = Instant::now();
    good.merge(
        fleet::load(&fleet, TENANT, half, Arc::default())
            .await?
            .await,
    );

    let limit = Duration::from_secs(settings.size.pick(120, 300));
    let done = wait_delivered(&receiver, &[PATH], &good.ids, limit).await;
    // The poison needs every retry tier (15.7 s) before it is parked.
    let parked = wait_parked(&fleet, &[poison_id.as_str(), malformed_id.as_str()], limit).await?;
    wait_quiet(&fleet, &receiver, &[PATH]).await;
    let count = receiver.tally(PATH, &good.ids);
    let poison_seen = receiver.seen(PATH, poison_id.as_str());
    let (attempts, oks) = (poison_seen.requests, poison_seen.ok);
    fleet.finish(workers).await;

    let expected_attempts = RETRY_DELAYS.len() as u64 + 1;
    let poison_parked = parked.iter().any(|d| {
        d["event_id"] == poison_id.as_str() && d["attempts"].as_u64() == Some(expected_attempts)
    });
    let malformed_parked = parked
        .iter()
        .any(|d| d["event_id"] == malformed_id.as_str());
    let mut row = outcome(
        "poison event + malformed message",
        &good,
        count,
        Recovery::measure(&receiver, PATH, poisoned_at, done),
        format!(
            "{} good events around one event its endpoint answers 500 to (received {attempts} \
             times, 2xx {oks}; in dead letters with {expected_attempts} attempts: \
             {poison_parked}) and one body that is not JSON (in dead letters: \
             {malformed_parked}); times are from the poison's publish to the next good \
             delivery and to the last",
            good.ids.len()
        ),
    );
    row.lost += usize::from(!poison_parked) + usize::from(!malformed_parked);
    Ok(vec![row])
}

/// Waits until every id in `ids` is in the dead-letter queue; returns the dead letters.
async fn wait_parked(
    fleet: &Fleet,
    ids: &[&str],
    limit: Duration,
) -> anyhow::Result<Vec<serde_json::Value>> {
    let started = Instant::now();
    loop {
        let dead = fleet.dead_letters().await?;
        let parked: HashSet<&str> = dead.iter().filter_map(|d| d["event_id"].as_str()).collect();
        if ids.iter().all(|id| parked.contains(id)) || started.elapsed() > limit {
            return Ok(dead);
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}
