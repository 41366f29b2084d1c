//! Scenarios 6–8: a node lost from a cluster (`scripts/cluster`) while events are published
//! and delivered. Two workers and the publisher get every RabbitMQ node and every Redis seed
//! (`HOOKFLEET_AMQP_URL`, `HOOKFLEET_REDIS_URL` comma-separated lists), as a user would set
//! them.
//!
//! - [`rabbit_leader_lost`]: the node that leads the work queue (a quorum queue, replicated
//!   on all three) is stopped and started again. Its clients reconnect to another node, a
//!   new leader is elected, nothing confirmed is lost, and marks skip what was delivered.
//! - [`redis_master_lost`]: the Redis master that holds the endpoint's marks, claims and
//!   circuit is shut down without saving; its replica takes over within seconds and the old
//!   master rejoins as a replica. Replication is asynchronous, so marks written in the last
//!   instant before the crash can be gone: duplicates are allowed up to the messages in flight.
//! - [`rabbit_rolling_restart`]: every RabbitMQ node restarted, one at a time, under load.

use std::time::{Duration, Instant};

use hookfleet_core::Endpoint;
use hookfleet_testkit::Fleet;

use super::{CONCURRENCY, blocking, fault_while_publishing, single_endpoint};
use crate::cluster::{self, Clusters};
use crate::{EVENT_TYPE, Outcome, Settings, fleet};

/// Events of each scenario, published at [`RATE`] while the workers deliver.
const EVENTS: usize = 10_000;
const RATE: f64 = 1_000.0;
/// How long a stopped RabbitMQ node stays away.
const DOWN: Duration = Duration::from_secs(3);

pub async fn rabbit_leader_lost(settings: &Settings) -> anyhow::Result<Vec<Outcome>> {
    let title = "RabbitMQ cluster: work queue leader lost";
    under_load(
        settings,
        "rmq_leader",
        title,
        RATE,
        async |clusters, fleet, _| {
            let queue = fleet
                .env()
                .namespace()
                .parse::<hookfleet_core::Namespace>()?;
            let queue = queue.work_queue(&EVENT_TYPE.parse()?);
            let asked = clusters.rabbit_nodes[0].clone();
            let leader = blocking(move || cluster::queue_leader(&asked, &queue)).await?;
            let node = leader.clone();
            blocking(move || cluster::stop_rabbit(&node)).await?;
            tokio::time::sleep(DOWN).await;
            let node = leader.clone();
            blocking(move || cluster::start_rabbit(&node)).await?;
            Ok(format!(
                "{EVENTS} events at {RATE}/s; {leader}, the work queue's leader, stop_app a \
             tenth of the way through, {} s down, start_app",
                DOWN.as_secs()
            ))
        },
    )
    .await
}

pub async fn redis_master_lost(settings: &Settings) -> anyhow::Result<Vec<Outcome>> {
    let title = "Redis Cluster: master lost, replica promoted";
    let mut rows = under_load(
        settings,
        "redis_master",
        title,
        RATE,
        async |_, _, endpoint| {
            let port = blocking({
                let tag = format!("{{{}}}", endpoint.id);
                move || cluster::redis_master_of(&tag)
            })
            .await?;
            let failed_over = Instant::now();
            blocking(move || cluster::stop_redis(port)).await?;
            let tag = format!("{{{}}}", endpoint.id);
            let limit = Duration::from_secs(60);
            blocking(move || cluster::wait_failover(&tag, port, limit)).await?;
            let failover = failed_over.elapsed();
            blocking(move || cluster::start_redis(port)).await?;
            Ok(format!(
                "{EVENTS} events at {RATE}/s; the master of the endpoint's slot (:{port}) shut \
             down without saving a tenth of the way through, its replica promoted in \
             {:.1} s, the old master back as a replica; marks not yet replicated may be lost, \
             so duplicates are allowed up to the messages in flight (2 × {CONCURRENCY})",
                failover.as_secs_f64()
            ))
        },
    )
    .await?;
    for row in &mut rows {
        row.allowed_duplicates = 2 * CONCURRENCY;
    }
    Ok(rows)
}

pub async fn rabbit_rolling_restart(settings: &Settings) -> anyhow::Result<Vec<Outcome>> {
    // Slower, so that the load outlasts three restarts.
    let rate = RATE / 3.0;
    let title = "RabbitMQ cluster: rolling restart of all nodes";
    under_load(
        settings,
        "rmq_rolling",
        title,
        rate,
        async |clusters, _, _| {
            for node in clusters.rabbit_nodes.clone() {
                let stopped = node.clone();
                blocking(move || cluster::stop_rabbit(&stopped)).await?;
                tokio::time::sleep(DOWN).await;
                blocking(move || cluster::start_rabbit(&node)).await?;
            }
            Ok(format!(
                "{EVENTS} events at {rate:.0}/s; each of the three nodes stop_app, {} s \
                 down, start_app, one after the other, from a tenth of the way through",
                DOWN.as_secs()
            ))
        },
    )
    .await
}

/// The stage of every cluster scenario: both clusters up, a fleet on them, one endpoint, and
/// [`fault_while_publishing`] with [`EVENTS`] at `rate`, the fault once a tenth is published.
async fn under_load(
    settings: &Settings,
    name: &str,
    title: &str,
    rate: f64,
    fault: impl AsyncFnOnce(&Clusters, &Fleet, &Endpoint) -> anyhow::Result<String>,
) -> anyhow::Result<Vec<Outcome>> {
    let clusters = blocking(cluster::start).await?;
    let fleet = fleet::on_clusters(fleet::fresh(settings, name, CONCURRENCY)?, &clusters);
    let (receiver, endpoint) = single_endpoint(&fleet, Duration::from_millis(10)).await?;
    let first = EVENTS / 10;
    let row = fault_while_publishing(fleet, receiver, title, EVENTS, rate, first, async |fleet| {
        fault(&clusters, fleet, &endpoint).await
    })
    .await?;
    Ok(vec![row])
}
