//! Scenario 1: SIGKILL one of two workers in the middle of a few thousand events.
//!
//! The killed worker's unacked messages go back to the queue when its connection drops, and
//! the other worker delivers them. What it had POSTed and marked done is skipped; what it had
//! POSTed (2xx) but not yet marked is sent again: at most its concurrency in duplicates. A
//! claim it held blocks the other worker until the claim expires (delivery timeout + 10 s),
//! which is what "time to recover" mostly measures.

use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::fleet::Fleet;
use crate::load::{Counter, Pace};
use crate::receiver::Tally;
use crate::{Outcome, Settings};

use super::{Recovery, outcome, settle, single_endpoint, wait_requests};

const PATH: &str = "/hook";

pub async fn run(settings: &Settings) -> anyhow::Result<Vec<Outcome>> {
    let events = settings.size.pick(2_000, 10_000);
    let mut fleet = Fleet::new(settings, "crash")?;
    let tally = Arc::new(Tally::default());
    // A few milliseconds per request, so that the killed worker dies holding a full
    // concurrency's worth of messages, some of them mid-POST.
    tally.set_delay(PATH, Duration::from_millis(5));
    let (server, tenant) = single_endpoint(&mut fleet, &tally, PATH).await?;
    let victim = fleet.spawn_worker().await?;
    let survivor = fleet.spawn_worker().await?;

    let published = Arc::new(Counter::default());
    let load = tokio::spawn(
        fleet
            .load(&tenant, Pace::flood(events), Arc::clone(&published))
            .await?,
    );
    wait_requests(&tally, PATH, events / 3, Duration::from_secs(60)).await;
    let victim_log = victim.log_path().to_owned();
    victim.kill().await;
    let killed_at = Instant::now();
    let published = load.await?;

    let (done, count) = settle(
        &fleet,
        &tally,
        PATH,
        &published.ids,
        Duration::from_secs(120),
    )
    .await;
    let allowed = fleet.concurrency();
    let note = format!(
        "two workers (concurrency {allowed} each), one SIGKILLed after a third had arrived; \
         duplicates are allowed up to the killed worker's concurrency (2xx answered, done mark \
         not yet written); killed worker's log {}",
        victim_log.display()
    );
    fleet.finish([survivor]).await;
    drop(server);
    let mut row = outcome(
        "worker SIGKILL",
        &published,
        count,
        Recovery::measure(&tally, PATH, killed_at, done),
        note,
    );
    row.allowed_duplicates = allowed;
    Ok(vec![row])
}
