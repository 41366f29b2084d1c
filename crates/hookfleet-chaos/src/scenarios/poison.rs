//! Scenario 5: poison. In the middle of a stream of good events come an event its endpoint
//! answers 500 every time, and a message that breaks the contract (its body is not JSON).
//! The first goes through every retry tier and ends in `N.dead` with its attempt count; the
//! second goes to `N.dead` at once; the events behind them keep flowing.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use hookfleet_amqp::headers::set_str;
use hookfleet_amqp::{Broker, ConfirmedPublisher};
use hookfleet_core::EventId;
use hookfleet_producer::OutboundEvent;
use lapin::BasicProperties;
use lapin::types::FieldTable;

use crate::fleet::Fleet;
use crate::load::{self, Pace, Published};
use crate::receiver::Tally;
use crate::{AMQP_URL, Outcome, RETRY_DELAYS_MS, Settings};

use super::{Recovery, outcome, single_endpoint, wait_delivered, wait_quiet};

const PATH: &str = "/hook";

pub async fn run(settings: &Settings) -> anyhow::Result<Vec<Outcome>> {
    let events = settings.size.pick(1_000, 5_000);
    let mut fleet = Fleet::new(settings, "poison")?;
    let tally = Arc::new(Tally::default());
    let (server, tenant) = single_endpoint(&mut fleet, &tally, PATH).await?;
    let workers = [fleet.spawn_worker().await?, fleet.spawn_worker().await?];
    let publisher = fleet.publisher().await?;
    let pace = Pace {
        count: events / 2,
        in_flight: 256,
        rate: None,
    };
    let batch = || {
        load::publish(
            Arc::clone(&publisher),
            fleet.event_type.clone(),
            tenant.clone(),
            pace,
            Arc::default(),
        )
    };

    let mut good = batch().await;
    let poison_id = EventId::generate();
    tally.refuse(PATH, poison_id.as_str());
    let poison = OutboundEvent::new(
        fleet.event_type.clone(),
        tenant.clone(),
        &serde_json::json!({"poison": true}),
        Some(poison_id.clone()),
    );
    publisher.publish(&poison).await?;
    let malformed_id = EventId::generate();
    let mut headers = FieldTable::default();
    set_str(&mut headers, "tenant", tenant.as_str());
    let properties = BasicProperties::default()
        .with_message_id(malformed_id.as_str().into())
        .with_type(fleet.event_type.as_str().into())
        .with_content_type("application/json".into())
        .with_delivery_mode(2)
        .with_headers(headers);
    let exchange = publisher.namespace().events_exchange(&fleet.event_type);
    let broker = Broker::connect(AMQP_URL).await?;
    ConfirmedPublisher::new(broker.clone())
        .send(&exchange, "", b"{not json", properties)
        .await?;
    broker.close().await;
    let poisoned_at = Instant::now();
    let rest = batch().await;
    merge(&mut good, rest);

    let limit = Duration::from_secs(settings.size.pick(120, 300));
    let done = wait_delivered(&tally, &[PATH], &good.ids, limit).await;
    // The poison needs every retry tier (15.7 s) before it is parked.
    let parked = wait_parked(&fleet, &[poison_id.as_str(), malformed_id.as_str()], limit).await?;
    wait_quiet(&fleet, &tally, &[PATH]).await;
    let count = tally.count(PATH, &good.ids);
    let (attempts, oks) = tally.seen(PATH, poison_id.as_str());
    fleet.finish(workers).await;
    drop(server);

    let expected_attempts = RETRY_DELAYS_MS.len() as u32 + 1;
    let poison_parked = parked.iter().any(|d| {
        d["event_id"] == poison_id.as_str()
            && d["attempts"].as_u64() == Some(expected_attempts.into())
    });
    let malformed_parked = parked
        .iter()
        .any(|d| d["event_id"] == malformed_id.as_str());
    let mut row = outcome(
        "poison event + malformed message",
        &good,
        count,
        Recovery::measure(&tally, PATH, poisoned_at, done),
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

fn merge(into: &mut Published, other: Published) {
    into.ids.extend(other.ids);
    into.not_published += other.not_published;
    into.errors += other.errors;
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
