//! One scenario's deployment: a harness [`Fleet`] in a fresh namespace `chaos_<name>_<hex>`
//! with the scenarios' settings, the load of events it gets, and the backlog its queues hold.

use std::sync::Arc;
use std::time::Duration;

use hookfleet_amqp::Broker;
use hookfleet_core::Namespace;
use hookfleet_producer::OutboundEvent;
use hookfleet_testkit::load::{self, Pace, Progress, Published};
use hookfleet_testkit::{Fleet, WorkerEnv};
use lapin::options::QueueDeclareOptions;
use lapin::types::FieldTable;

use crate::cluster::Clusters;
use crate::{DELIVERY_TIMEOUT, EVENT_TYPE, RETRY_DELAYS, Settings, services};

/// A fresh fleet for scenario `name` whose workers each handle `concurrency` messages at
/// once; checks the services answer first.
pub fn fresh(settings: &Settings, name: &str, concurrency: usize) -> anyhow::Result<Fleet> {
    services::ensure()?;
    let env = WorkerEnv::fresh(&format!("chaos_{name}"))
        .event_types(&[EVENT_TYPE])
        .retry_delays(&RETRY_DELAYS)
        .delivery_timeout(DELIVERY_TIMEOUT)
        .concurrency(concurrency)
        .stall_timeout(Duration::from_secs(15));
    Ok(Fleet::new(&settings.binary, &settings.log_dir, env)?)
}

/// `fleet` pointed at the clusters: every RabbitMQ node and every Redis seed, as a user sets
/// them.
pub fn on_clusters(mut fleet: Fleet, clusters: &Clusters) -> Fleet {
    fleet.set("HOOKFLEET_AMQP_URL", &clusters.amqp_url);
    fleet.set("HOOKFLEET_REDIS_URL", &clusters.redis_url);
    fleet
}

/// A load of the scenarios' event type for `tenant` on a publisher of its own, patient
/// enough to outlast a broker restart; ready to be awaited or spawned.
pub async fn load(
    fleet: &Fleet,
    tenant: &str,
    pace: Pace,
    progress: Arc<Progress>,
) -> anyhow::Result<impl Future<Output = Published> + Send + 'static> {
    let publisher = fleet
        .publisher()
        .await?
        .give_up_after(Duration::from_secs(60));
    let (event_type, tenant) = (EVENT_TYPE.parse()?, tenant.parse()?);
    let event = move |seq| {
        let data = serde_json::json!({ "seq": seq, "chaos": true });
        OutboundEvent::new(
            Clone::clone(&event_type),
            Clone::clone(&tenant),
            &data,
            None,
        )
    };
    Ok(load::publish(Arc::new(publisher), pace, progress, event))
}

/// `events` of the scenarios' type for `tenant`, published at `rate` (64 in flight) by a
/// spawned task; returns once `first` of them are published (or the load ended), with the
/// task to await for what was published.
pub async fn paced_load(
    fleet: &Fleet,
    tenant: &str,
    events: usize,
    rate: f64,
    first: usize,
) -> anyhow::Result<tokio::task::JoinHandle<Published>> {
    let progress = Arc::new(Progress::default());
    let pace = Pace {
        in_flight: 64,
        rate: Some(rate),
        ..Pace::flood(events)
    };
    let load = tokio::spawn(load(fleet, tenant, pace, Arc::clone(&progress)).await?);
    while progress.done() < first && !load.is_finished() {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Ok(load)
}

/// Messages waiting in the work queue and the delay tiers (ready, not yet handed out).
pub async fn backlog(fleet: &Fleet) -> anyhow::Result<u32> {
    let broker = Broker::connect(fleet.env().amqp_url()).await?;
    let channel = broker.channel().await?;
    let ns: Namespace = fleet.namespace().parse()?;
    let queues = std::iter::once(ns.work_queue(&EVENT_TYPE.parse()?))
        .chain(RETRY_DELAYS.iter().map(|delay| ns.delay_tier(*delay)));
    let passive = QueueDeclareOptions {
        passive: true,
        ..Default::default()
    };
    let mut total = 0;
    for queue in queues {
        let q = channel
            .queue_declare(queue.as_str().into(), passive, FieldTable::default())
            .await?;
        total += q.message_count();
    }
    broker.close().await;
    Ok(total)
}
