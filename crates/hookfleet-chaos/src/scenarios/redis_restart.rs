//! Scenario 3: Redis goes away during delivery (`redis-cli shutdown nosave`) and a fresh one
//! starts.
//!
//! While Redis is down, workers answer 503 on `/readyz`, deliver nothing blind and hand
//! messages back to the queue. This machine's Redis keeps nothing on disk, so the restart
//! loses the endpoints and every de-duplication mark; production Redis runs with AOF
//! (`appendonly yes`) and keeps both. To stand for that, the workers are frozen (SIGSTOP) for
//! the moment between the new Redis answering and the endpoints being written again (same
//! ids, same secrets): otherwise a worker could read "no endpoints" and rightly drop the
//! event. The lost marks are why duplicates are possible here: a delivery whose 2xx came
//! just before Redis went down could not be marked, so it is sent again (bounded by the
//! messages in flight, 2 × concurrency).

use std::sync::Arc;
use std::time::{Duration, Instant};

use hookfleet_testkit::WorkerProcess;

use crate::fleet::Fleet;
use crate::load::Pace;
use crate::receiver::Tally;
use crate::services::{self, Restore};
use crate::{Outcome, Settings};

use super::{Recovery, blocking, outcome, settle, single_endpoint, wait_requests};

const PATH: &str = "/hook";
/// How long Redis stays away once the workers noticed.
const DOWN: Duration = Duration::from_secs(2);

pub async fn run(settings: &Settings) -> anyhow::Result<Vec<Outcome>> {
    let events = settings.size.pick(2_000, 10_000);
    let mut fleet = Fleet::new(settings, "redis")?;
    fleet.set("HOOKFLEET_CONCURRENCY", "16");
    let tally = Arc::new(Tally::default());
    tally.set_delay(PATH, Duration::from_millis(100));
    let (server, tenant) = single_endpoint(&mut fleet, &tally, PATH).await?;
    let published = fleet
        .load(&tenant, Pace::flood(events), Arc::default())
        .await?
        .await;
    let workers = [fleet.spawn_worker().await?, fleet.spawn_worker().await?];

    let guard = Restore::new()?;
    wait_requests(&tally, PATH, events / 5, Duration::from_secs(60)).await;
    blocking(services::stop_redis).await?;
    let not_ready = all_not_ready(&workers, Duration::from_secs(10)).await;
    tokio::time::sleep(DOWN).await;
    for worker in &workers {
        worker.freeze(true);
    }
    let restarted = async {
        blocking(services::start_redis).await?;
        fleet.restore_endpoints().await
    }
    .await;
    for worker in &workers {
        worker.freeze(false);
    }
    restarted?;
    let back_at = Instant::now();
    drop(guard);

    let (done, count) = settle(
        &fleet,
        &tally,
        PATH,
        &published.ids,
        Duration::from_secs(120),
    )
    .await;
    let concurrency = fleet.concurrency();
    fleet.finish(workers).await;
    drop(server);
    anyhow::ensure!(
        not_ready,
        "a worker kept answering 200 on /readyz while Redis was down"
    );
    let mut row = outcome(
        "Redis restart during delivery",
        &published,
        count,
        Recovery::measure(&tally, PATH, back_at, done),
        format!(
            "shutdown nosave once a fifth had arrived, {} s down (both workers answered 503 \
             on /readyz), a fresh Redis without persistence (production runs with \
             appendonly yes and keeps both): endpoints written again, de-duplication marks \
             lost, so duplicates are allowed up to the messages in flight (2 × {})",
            DOWN.as_secs(),
            concurrency
        ),
    );
    row.allowed_duplicates = 2 * concurrency;
    Ok(vec![row])
}

/// Waits until every worker answers 503 on `/readyz`; false if one never does.
async fn all_not_ready(workers: &[WorkerProcess], limit: Duration) -> bool {
    let started = Instant::now();
    for worker in workers {
        while worker.ready().await != Some(503) {
            if started.elapsed() > limit {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    true
}
