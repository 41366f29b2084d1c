//! Scenario 4: flapping receivers. One tenant has four endpoints, each on its own port:
//! - `/down`: its server is down (connections refused) for [`DOWN`], then back;
//! - `/reset`: its server accepts and closes connections without answering for [`RESET`];
//! - `/slow`: answers after [`SLOW`], close to the 2 s delivery timeout;
//! - `/ok`: healthy, to show the others' trouble costs it nothing but time.
//!
//! Every failed attempt goes to a retry tier; the tiers add up to 15.7 s, longer than either
//! outage, so every event reaches every endpoint, once.

use std::sync::Arc;
use std::time::{Duration, Instant};

use hookfleet_testkit::load::Pace;
use hookfleet_testkit::{Receiver, Reply};

use super::{Recovery, TENANT, outcome, wait_delivered, wait_quiet};
use crate::{DELIVERY_TIMEOUT, EVENT_TYPE, Outcome, Settings, fleet};

const DOWN: Duration = Duration::from_secs(5);
const RESET: Duration = Duration::from_secs(3);
const SLOW: Duration = Duration::from_millis(1500);
const PATHS: [&str; 4] = ["/down", "/reset", "/slow", "/ok"];

pub async fn run(settings: &Settings) -> anyhow::Result<Vec<Outcome>> {
    let events = settings.size.pick(500, 2_000);
    // Every message waits for the slow endpoint: more in flight keeps the pace up.
    let fleet = fleet::fresh(settings, "receivers", 64)?;
    // One port per path, so each fails on its own; all count in the first one's records.
    let mut receivers = vec![Receiver::start().await?];
    for _ in 1..PATHS.len() {
        let sibling = receivers[0].sibling().await?;
        receivers.push(sibling);
    }
    receivers[0].set_default("/slow", Reply::status(200).delayed(SLOW));
    for (receiver, path) in receivers.iter().zip(PATHS) {
        let url = receiver.url(path);
        fleet.add_endpoint(TENANT, &url, &[EVENT_TYPE]).await?;
    }
    fleet.declare().await?;
    let workers = [
        fleet.spawn_worker(&[]).await?,
        fleet.spawn_worker(&[]).await?,
    ];

    receivers[0].down().await;
    receivers[1].set_reset(true);
    let started = Instant::now();
    let load = fleet::load(&fleet, TENANT, Pace::flood(events), Arc::default()).await?;
    let published = load.await;
    tokio::time::sleep(RESET.saturating_sub(started.elapsed())).await;
    receivers[1].set_reset(false);
    let reset_over = Instant::now();
    tokio::time::sleep(DOWN.saturating_sub(started.elapsed())).await;
    receivers[0].up().await?;
    let down_over = Instant::now();
    let tally = &receivers[0];

    let limit = Duration::from_secs(settings.size.pick(120, 300));
    let mut rows = Vec::new();
    for (path, fault_over, what) in [
        (
            "/down",
            Some(down_over),
            format!("connections refused for the first {} s", DOWN.as_secs()),
        ),
        (
            "/reset",
            Some(reset_over),
            format!(
                "connections accepted and closed unanswered for the first {} s",
                RESET.as_secs()
            ),
        ),
        (
            "/slow",
            None,
            format!(
                "every answer after {} ms (timeout {} s); times are from the first publish",
                SLOW.as_millis(),
                DELIVERY_TIMEOUT.as_secs()
            ),
        ),
        ("/ok", None, "healthy, same tenant".to_owned()),
    ] {
        let done = wait_delivered(tally, &[path], &published.ids, limit).await;
        // The slow endpoint has no fault that ends: its row times the whole run instead.
        let recovery = match fault_over {
            Some(over) => Recovery::measure(tally, path, over, done),
            None if path == "/slow" => Recovery::measure(tally, path, started, done),
            None => Recovery::default(),
        };
        rows.push((path, recovery, what));
    }
    wait_quiet(&fleet, tally, &PATHS).await;
    let rows = rows
        .into_iter()
        .map(|(path, recovered, what)| {
            let count = tally.tally(path, &published.ids);
            outcome(
                &format!("receiver {path}"),
                &published,
                count,
                recovered,
                what,
            )
        })
        .collect();
    fleet.finish(workers).await;
    drop(receivers);
    Ok(rows)
}
