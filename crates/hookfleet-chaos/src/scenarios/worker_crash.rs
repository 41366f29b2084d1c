//! Scenario 1: SIGKILL one of two workers in the middle of a few thousand events.
//!
//! The killed worker's unacked messages go back to the queue when its connection drops, and
//! the other worker delivers them. What it had POSTed and marked done is skipped; what it had
//! POSTed (2xx) but not yet marked is sent again: at most its concurrency in duplicates. A
//! claim it held blocks the other worker until the claim expires (delivery timeout + 10 s),
//! which is what "time to recover" mostly measures.

use std::sync::Arc;
use std::time::{Duration, Instant};

use hookfleet_testkit::load::Pace;

use super::{CONCURRENCY, Run, TENANT, single_endpoint, wait_requests};
use crate::{Outcome, Settings, fleet};

pub async fn run(settings: &Settings) -> anyhow::Result<Vec<Outcome>> {
    let events = settings.size.pick(2_000, 10_000);
    let fleet = fleet::fresh(settings, "crash", CONCURRENCY)?;
    // A few milliseconds per request, so that the killed worker dies holding a full
    // concurrency's worth of messages, some of them mid-POST.
    let (receiver, _) = single_endpoint(&fleet, Duration::from_millis(5)).await?;
    let victim = fleet.spawn_worker(&[]).await?;
    let survivor = fleet.spawn_worker(&[]).await?;

    let load = fleet::load(&fleet, TENANT, Pace::flood(events), Arc::default()).await?;
    let load = tokio::spawn(load);
    wait_requests(&receiver, events / 3).await;
    let victim_log = victim.log_path().to_owned();
    victim.kill().await;
    let killed_at = Instant::now();
    let published = load.await?;

    let allowed = CONCURRENCY;
    let run = Run {
        fleet,
        receiver,
        workers: vec![survivor],
        published,
    };
    let mut row = (run.conclude("worker SIGKILL", killed_at, |_| {
        format!(
            "two workers (concurrency {allowed} each), one SIGKILLed after a third had \
             arrived; duplicates are allowed up to the killed worker's concurrency (2xx \
             answered, done mark not yet written); killed worker's log {}",
            victim_log.display()
        )
    }))
    .await;
    row.allowed_duplicates = allowed;
    Ok(vec![row])
}
