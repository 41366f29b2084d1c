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

use crate::fleet::Fleet;
use crate::load::Pace;
use crate::receiver::{Server, Tally};
use crate::{Outcome, Settings};

use super::{Recovery, outcome, wait_delivered, wait_quiet};

const DOWN: Duration = Duration::from_secs(5);
const RESET: Duration = Duration::from_secs(3);
const SLOW: Duration = Duration::from_millis(1500);
const PATHS: [&str; 4] = ["/down", "/reset", "/slow", "/ok"];

pub async fn run(settings: &Settings) -> anyhow::Result<Vec<Outcome>> {
    let events = settings.size.pick(500, 2_000);
    let mut fleet = Fleet::new(settings, "receivers")?;
    // Every message waits for the slow endpoint: more in flight keeps the pace up.
    fleet.set("HOOKFLEET_CONCURRENCY", "64");
    let tally = Arc::new(Tally::default());
    tally.set_delay("/slow", SLOW);
    let mut servers = Vec::new();
    let tenant = "acme".parse()?;
    for path in PATHS {
        let server = Server::start(Arc::clone(&tally)).await?;
        fleet.add_endpoint(&tenant, &server.url(path)).await?;
        servers.push(server);
    }
    fleet.declare().await?;
    let workers = [fleet.spawn_worker().await?, fleet.spawn_worker().await?];

    servers[0].down().await;
    servers[1].set_reset(true);
    let started = Instant::now();
    let published = fleet
        .load(&tenant, Pace::flood(events), Arc::default())
        .await?
        .await;
    tokio::time::sleep(RESET.saturating_sub(started.elapsed())).await;
    servers[1].set_reset(false);
    let reset_over = Instant::now();
    tokio::time::sleep(DOWN.saturating_sub(started.elapsed())).await;
    servers[0].up().await?;
    let down_over = Instant::now();

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
                crate::DELIVERY_TIMEOUT_SECS
            ),
        ),
        ("/ok", None, "healthy, same tenant".to_owned()),
    ] {
        let done = wait_delivered(&tally, &[path], &published.ids, limit).await;
        // The slow endpoint has no fault that ends: its row times the whole run instead.
        let recovery = match fault_over {
            Some(over) => Recovery::measure(&tally, path, over, done),
            None if path == "/slow" => Recovery::measure(&tally, path, started, done),
            None => Recovery::default(),
        };
        rows.push((path, recovery, what));
    }
    wait_quiet(&fleet, &tally, &PATHS).await;
    let rows = rows
        .into_iter()
        .map(|(path, recovered, what)| {
            let count = tally.count(path, &published.ids);
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
    drop(servers);
    Ok(rows)
}
