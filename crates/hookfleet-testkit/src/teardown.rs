//! Removing everything a namespace left behind: its queues and exchanges in RabbitMQ
//! ([`Topology::delete`]) and its keys in Redis ([`hookfleet_store::purge`]). Bounded in time,
//! retried while a service is down (someone may be restarting it), and failures are printed,
//! not returned, so clean-up never hides a result; it also runs from `Drop` after a test
//! already failed.

use std::time::{Duration, Instant};

use hookfleet_amqp::Broker;
use hookfleet_amqp::lapin::options::QueueDeleteOptions;

use crate::{Error, Result, WorkerEnv};

/// Bound on one attempt at a service (a Redis purge scans every key of a large namespace).
const ATTEMPT: Duration = Duration::from_secs(60);
/// How long a service that is down is retried, every second.
const PATIENCE: Duration = Duration::from_secs(30);

/// Deletes what the processes of `env` declared (its event types and delay tiers), the
/// `extra_queues` declared outside the topology (a baseline's), and the namespace's Redis keys.
pub async fn teardown(env: &WorkerEnv, extra_queues: &[String]) {
    let namespace = env.namespace();
    patiently("RabbitMQ", namespace, || remove_amqp(env, extra_queues)).await;
    patiently("Redis", namespace, || async {
        let redis = hookfleet_store::connect(env.redis_url())?;
        hookfleet_store::purge(&redis, &namespace.parse()?).await?;
        Ok(())
    })
    .await;
}

/// Runs `attempt` until it succeeds or [`PATIENCE`] is over, then prints the last failure.
async fn patiently<F, Fut>(service: &str, namespace: &str, attempt: F)
where
    F: Fn() -> Fut,
    Fut: Future<Output = Result<()>>,
{
    let started = Instant::now();
    loop {
        let error = match tokio::time::timeout(ATTEMPT, attempt()).await {
            Ok(Ok(())) => return,
            Ok(Err(error)) => error,
            Err(_) => Error::TimedOut(ATTEMPT),
        };
        if started.elapsed() >= PATIENCE {
            eprintln!("cleanup of {namespace} in {service} failed: {error}");
            return;
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

async fn remove_amqp(env: &WorkerEnv, extra_queues: &[String]) -> Result<()> {
    let topology = env.topology()?;
    let broker = Broker::connect(env.amqp_url()).await?;
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
