//! Removing everything a namespace left behind: its queues and exchanges in RabbitMQ
//! ([`Topology::delete`]) and its keys in Redis ([`hookfleet_store::purge`]). Bounded in time,
//! and failures are printed, not returned, so clean-up never hides a result.

use std::time::{Duration, Instant};

use hookfleet_amqp::lapin::options::QueueDeleteOptions;
use hookfleet_amqp::{Broker, QueueType, Topology};
use hookfleet_core::EventType;

use crate::{AMQP_URL, REDIS_URL};

/// How hard to try, and what else to remove.
#[derive(Debug, Clone, Copy)]
pub struct Options<'a> {
    /// Queues declared outside the topology (a baseline's), deleted too.
    pub extra_queues: &'a [String],
    /// Bound on one attempt at RabbitMQ.
    pub rabbitmq_attempt: Duration,
    /// Bound on one attempt at Redis (a purge scans every key).
    pub redis_attempt: Duration,
    /// How long to keep retrying (every second) a service that is down, e.g. restarted by
    /// someone else; zero for a single attempt.
    pub retry_for: Duration,
    /// Put before every message printed (`"chaos: "`); may be empty.
    pub label: &'a str,
}

/// Why one attempt failed; printed, never returned.
#[derive(Debug, thiserror::Error)]
enum Failure {
    #[error("failed: {0}")]
    Amqp(#[from] hookfleet_amqp::Error),
    #[error("failed: {0}")]
    EventType(#[from] hookfleet_core::Error),
    #[error("failed: {0}")]
    Store(#[from] hookfleet_store::Error),
    #[error("timed out")]
    TimedOut,
}

/// Deletes the queues and exchanges of `namespace` (for `event_types` and the delay tiers of
/// `retry_delays`, as the workers declared them), then its Redis keys.
pub async fn teardown(
    namespace: &str,
    event_types: &[&str],
    retry_delays: &[Duration],
    options: &Options<'_>,
) {
    let amqp = || remove_amqp(namespace, event_types, retry_delays, options.extra_queues);
    patiently(
        "RabbitMQ",
        namespace,
        options.rabbitmq_attempt,
        options,
        amqp,
    )
    .await;
    let redis = || remove_redis(namespace);
    patiently("Redis", namespace, options.redis_attempt, options, redis).await;
}

/// Runs `attempt` until it succeeds or [`Options::retry_for`] is over, then prints the last
/// failure.
async fn patiently<F, Fut>(
    service: &str,
    namespace: &str,
    bound: Duration,
    options: &Options<'_>,
    attempt: F,
) where
    F: Fn() -> Fut,
    Fut: Future<Output = Result<(), Failure>>,
{
    let started = Instant::now();
    loop {
        let failure = match tokio::time::timeout(bound, attempt()).await {
            Ok(Ok(())) => return,
            Ok(Err(failure)) => failure,
            Err(_) => Failure::TimedOut,
        };
        if started.elapsed() >= options.retry_for {
            let label = options.label;
            eprintln!("{label}cleanup of {namespace} in {service} {failure}");
            return;
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

async fn remove_amqp(
    namespace: &str,
    event_types: &[&str],
    retry_delays: &[Duration],
    extra_queues: &[String],
) -> Result<(), Failure> {
    let broker = Broker::connect(AMQP_URL).await?;
    let event_types = event_types
        .iter()
        .map(|t| t.parse::<EventType>())
        .collect::<Result<_, _>>()?;
    // Deleting does not depend on the queue type.
    let topology = Topology::new(
        namespace.parse()?,
        QueueType::Quorum,
        event_types,
        retry_delays.to_vec(),
    );
    topology.delete(&broker).await?;
    for queue in extra_queues {
        // A channel each: a failed delete closes it.
        let channel = broker.channel().await?;
        let _ = channel
            .queue_delete(queue.as_str().into(), QueueDeleteOptions::default())
            .await;
    }
    broker.close().await;
    Ok(())
}

/// Every Redis key of the namespace: endpoints and de-duplication marks.
async fn remove_redis(namespace: &str) -> Result<(), Failure> {
    let redis = hookfleet_store::connect(REDIS_URL)?;
    hookfleet_store::purge(&redis, namespace).await?;
    Ok(())
}
