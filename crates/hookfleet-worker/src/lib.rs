//! The hookfleet worker: consume events, POST them signed to every subscribed endpoint, retry
//! through RabbitMQ delay queues, park what cannot be delivered, and report it all.
//!
//! # Layout
//! - [`consumer`]: sessions on the broker, bounded concurrency, the watchdog.
//! - [`acks`]: settling messages with the broker, batched where order allows.
//! - [`handler`]: one message from receipt to a durable outcome per endpoint.
//! - [`inbound`]: checking a message against docs/contract.md §1.
//! - [`sender`]: one signed POST; [`guard`]: the SSRF rule on it.
//! - [`retry`]: publishing to a delay tier or to the dead-letter queue.
//! - [`dead_letters`]: listing and replaying `N.dead`.
//! - [`metrics`] and [`health`]: what Prometheus and Kubernetes see.
#![forbid(unsafe_code)]

pub mod acks;
pub mod config;
pub mod consumer;
pub mod dead_letters;
pub mod guard;
pub mod handler;
pub mod health;
pub mod inbound;
pub mod metrics;
pub mod retry;
pub mod sender;

mod error;

use std::sync::Arc;
use std::time::Duration;

use hookfleet_amqp::{Broker, ConfirmedPublisher, Topology};
use hookfleet_store::{Dedup, EndpointCache, EndpointStore};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{info, warn};

pub use config::WorkerConfig;
pub use error::{Error, Result};

use consumer::{Consumer, Progress};
use handler::Deliverer;
use health::Health;
use metrics::Metrics;
use sender::Sender;

/// Runs a worker until `shutdown` is cancelled, then drains and returns.
pub async fn run(config: WorkerConfig, shutdown: CancellationToken) -> Result<()> {
    let metrics = Metrics::new();
    let health = Arc::new(Health::default());
    let server = health::serve(
        config.metrics_addr,
        metrics.clone(),
        health.clone(),
        shutdown.clone(),
    )
    .await?;

    let pool = hookfleet_store::connect(&config.redis_url)?;
    tokio::spawn(watch_redis(pool.clone(), health.clone(), shutdown.clone()));

    let broker = tokio::select! {
        _ = shutdown.cancelled() => return Ok(()),
        broker = Broker::connect_patiently(&config.amqp_url, Duration::MAX) => broker?,
    };
    // Retries and dead letters must be confirmed before the original is acked; past this the
    // message goes back to the queue instead of waiting on.
    let publisher =
        Arc::new(ConfirmedPublisher::new(broker.clone()).give_up_after(Duration::from_secs(10)));
    let ns = config.namespace.as_str();
    let store = EndpointStore::new(pool.clone(), ns);
    let claim_ttl = config.delivery_timeout + Duration::from_secs(10);
    let deliverer = Arc::new(Deliverer {
        namespace: config.namespace.clone(),
        endpoints: EndpointCache::new(store.clone(), config.endpoint_cache_ttl),
        store,
        dedup: Dedup::new(pool, ns, claim_ttl, config.dedup_ttl),
        sender: Sender::new(
            config.delivery_timeout,
            &config.user_agent,
            config.allow_private_targets,
        )?,
        publisher,
        schedule: config.retry.clone(),
        metrics,
    });
    let consumer = Consumer {
        broker,
        topology: Topology::new(
            config.namespace.clone(),
            config.queue_type,
            config.event_types.clone(),
            config.retry.delays().to_vec(),
        ),
        deliverer,
        health,
        concurrency: config.concurrency,
        // Claim, POST, commit and a confirmed retry publish, with room to spare.
        message_deadline: config.delivery_timeout * 2 + Duration::from_secs(20),
        stall_timeout: config.stall_timeout,
        tracker: TaskTracker::new(),
        progress: Arc::new(Progress::default()),
    };
    info!(message = "Worker starting.", config = ?config);
    // The contract: exit within the delivery timeout plus 2 s of SIGTERM.
    consumer
        .run(
            shutdown,
            config.delivery_timeout + Duration::from_millis(1500),
        )
        .await;
    let _ = server.await;
    info!(message = "Worker stopped.");
    Ok(())
}

/// Keeps readiness in step with Redis: a ping every second.
async fn watch_redis(
    pool: hookfleet_store::Redis,
    health: Arc<Health>,
    shutdown: CancellationToken,
) {
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    let mut was_up = true;
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tick.tick() => {}
        }
        let ping = tokio::time::timeout(Duration::from_secs(1), hookfleet_store::ping(&pool)).await;
        let up = matches!(ping, Ok(Ok(())));
        health.set_redis(up);
        if was_up && !up {
            warn!(message = "Redis does not answer; not ready until it does.");
        } else if !was_up && up {
            info!(message = "Redis answers again.");
        }
        was_up = up;
    }
}
