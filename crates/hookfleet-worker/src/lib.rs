//! The hookfleet worker: consume events, POST them signed to every subscribed endpoint, retry
//! through RabbitMQ delay queues, park what cannot be delivered, and report it all.
//!
//! # Layout
//! - [`consumer`]: sessions on the broker, the in-flight budget, the watchdog.
//! - [`limits`]: what one worker holds at once, in total and per endpoint.
//! - [`breaker`]: the shared circuit breaker, read through a local cache.
//! - [`notice`]: hookfleet's operational events (`endpoint.*`, `message.attempt.*`).
//! - [`ordered`]: ordered endpoints: the intake from `N.ordered` and the pump.
//! - [`timing`]: every time limit, derived from the delivery timeout.
//! - [`acks`]: settling messages with the broker, batched where order allows.
//! - [`handler`]: one message in: its events (a bundle unpacked), their targets, a delivery each.
//! - `delivery`: one endpoint's delivery, stage by stage: admit, claim, sign and POST, record,
//!   settle.
//! - [`handoff`]: one message's settlement, brought forward when a slow receiver holds it.
//! - `settle`: how a delivery ends: committed, retried, dead-lettered or deferred.
//! - [`inbound`]: checking a message against docs/contract.md §1.
//! - [`journal`]: the attempt log, written in batches off the delivery path.
//! - [`sender`]: one signed POST; [`guard`]: the SSRF rule on it.
//! - [`retry`]: publishing to a delay tier or to the dead-letter queue.
//! - [`bundle`]: deferrals gathered into one message per tier.
//! - [`dead_letters`]: listing and replaying `N.dead`.
//! - [`metrics`] and [`health`]: what Prometheus and Kubernetes see.
#![forbid(unsafe_code)]

pub mod acks;
pub mod breaker;
pub mod bundle;
pub mod config;
pub mod consumer;
pub mod dead_letters;
mod delivery;
pub mod guard;
pub mod handler;
pub mod handoff;
pub mod health;
pub mod inbound;
pub mod journal;
pub mod limits;
pub mod metrics;
pub mod notice;
pub mod ordered;
pub mod retry;
pub mod sender;
mod settle;
pub mod timing;

mod error;

use std::sync::Arc;
use std::time::Duration;

use hookfleet_amqp::Broker;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{info, warn};

pub use config::WorkerConfig;
pub use error::{Error, Result};

use consumer::{Consumer, Progress};
use handler::Deliverer;
use health::Health;
use limits::Budget;
use metrics::Metrics;
use ordered::Ordered;
use timing::Timeouts;

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
    let timeouts = Timeouts::new(config.delivery_timeout);
    let queues = hookfleet_store::OrderedQueues::new(pool.clone(), &config.namespace);
    let deliverer = Arc::new(Deliverer::new(&config, &broker, pool, metrics)?);
    let (topology, cap) = (config.topology(), config.ordered_backlog);
    let ordered = Arc::new(Ordered::new(deliverer.clone(), queues, topology, cap));
    let tracker = TaskTracker::new();
    tracker.spawn(ordered.clone().run_intake(broker.clone(), shutdown.clone()));
    tracker.spawn(ordered.run_pump(shutdown.clone()));
    let consumer = Consumer {
        broker,
        topology: config.topology(),
        deliverer,
        health,
        budget: Budget::new(config.max_inflight, config.max_inflight_bytes),
        max_inflight: config.max_inflight,
        message_deadline: timeouts.message_deadline,
        stall_timeout: config.stall_timeout,
        tracker,
        progress: Arc::new(Progress::default()),
    };
    info!(message = "Worker starting.", config = ?config);
    consumer.run(shutdown, timeouts.drain).await;
    // The last attempts' log entries, before the process goes.
    let flushed = consumer.deliverer.journal.flush();
    let _ = tokio::time::timeout(timeouts.journal_flush, flushed).await;
    if let Some(history) = &consumer.deliverer.history {
        let _ = tokio::time::timeout(timeouts.journal_flush, history.flush()).await;
    }
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
