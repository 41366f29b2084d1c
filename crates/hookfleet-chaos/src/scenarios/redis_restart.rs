//! Scenario 3: Redis goes away during delivery (`redis-cli shutdown nosave`) and a fresh one
//! starts.
//!
//! While Redis is down, workers answer 503 on `/readyz`, deliver nothing blind and hand
//! messages back to the queue. This machine's Redis keeps nothing on disk, so the restart
//! loses the endpoints and every de-duplication mark; production Redis runs with AOF
//! (`appendonly yes`) and keeps both. To stand for that, the workers are frozen (SIGSTOP) for
//! the moment between the new Redis answering and the endpoint being written again (same
//! id, same secret): otherwise a worker could read "no endpoints" and rightly drop the
//! event. The lost marks are why duplicates are possible here: a delivery whose 2xx came
//! just before Redis went down could not be marked, so it is sent again (bounded by the
//! messages in flight, 2 × concurrency).

use std::time::{Duration, Instant};

use hookfleet_testkit::WorkerProcess;

use super::{DELIVERING, blocking, queued_then_delivering, wait_requests};
use crate::services::{self, Restore};
use crate::{Outcome, Settings};

/// How long Redis stays away once the workers noticed.
const DOWN: Duration = Duration::from_secs(2);

pub async fn run(settings: &Settings) -> anyhow::Result<Vec<Outcome>> {
    let reply_after = Duration::from_millis(100);
    let (run, endpoint) = queued_then_delivering(settings, "redis", reply_after).await?;
    let guard = Restore::new()?;
    wait_requests(&run.receiver, run.published.ids.len() / 5).await;
    blocking(services::stop_redis).await?;
    let not_ready = all_not_ready(&run.workers, Duration::from_secs(10)).await;
    tokio::time::sleep(DOWN).await;
    for worker in &run.workers {
        worker.freeze(true);
    }
    let restarted = async {
        blocking(services::start_redis).await?;
        run.fleet.store()?.insert(&endpoint).await?;
        anyhow::Ok(())
    }
    .await;
    for worker in &run.workers {
        worker.freeze(false);
    }
    restarted?;
    let back_at = Instant::now();
    drop(guard);

    let concurrency = DELIVERING;
    let mut row = (run.conclude("Redis restart during delivery", back_at, |_| {
        format!(
            "shutdown nosave once a fifth had arrived, {} s down (both workers answered 503 \
             on /readyz), a fresh Redis without persistence (production runs with \
             appendonly yes and keeps both): endpoints written again, de-duplication marks \
             lost, so duplicates are allowed up to the messages in flight (2 × {concurrency})",
            DOWN.as_secs(),
        )
    }))
    .await;
    anyhow::ensure!(
        not_ready,
        "a worker kept answering 200 on /readyz while Redis was down"
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
