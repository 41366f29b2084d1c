//! The worker's main loop: consume every work queue, hand each message to the [`Deliverer`],
//! ack or requeue, and heal from lost connections, broker-cancelled consumers and stalls.
//!
//! One *session* is one channel with one consumer per event type. Any failure ends the session
//! (its channel is closed, so the broker hands its unacked messages to the next consumer) and a
//! new one starts after a backoff. Messages still in flight from an old session finish on
//! their own; their acks fail and the messages come back, where de-duplication stops a second
//! POST to an endpoint that already answered.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use bytes::Bytes;
use futures_util::StreamExt;
use futures_util::stream::select_all;
use hookfleet_amqp::{Backoff, Broker, Topology};
use hookfleet_core::EventType;
use lapin::message::Delivery;
use lapin::options::BasicQosOptions;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{error, info, warn};

use crate::acks::{self, Settler};
use crate::handler::{Deliverer, REQUEUE_BACKOFF};
use crate::handoff::Settlement;
use crate::health::Health;
use crate::limits::Budget;
use crate::{Error, Result};

/// The consuming side of a worker.
#[derive(Debug)]
pub struct Consumer {
    pub broker: Broker,
    pub topology: Topology,
    pub deliverer: Arc<Deliverer>,
    pub health: Arc<Health>,
    /// Messages and body bytes held at once.
    pub budget: Budget,
    /// `HOOKFLEET_MAX_INFLIGHT`: also each consumer's prefetch.
    pub max_inflight: usize,
    /// Longest a message may take from receipt to ack/requeue before it is abandoned.
    pub message_deadline: Duration,
    pub stall_timeout: Duration,
    /// Every message task, so shutdown can wait for them.
    pub tracker: TaskTracker,
    pub progress: Arc<Progress>,
}

/// What the watchdog looks at: messages held and when one last finished.
#[derive(Debug)]
pub struct Progress {
    started: Instant,
    held: AtomicUsize,
    last_finished_ms: AtomicU64,
}

impl Default for Progress {
    fn default() -> Self {
        Self {
            started: Instant::now(),
            held: AtomicUsize::new(0),
            last_finished_ms: AtomicU64::new(0),
        }
    }
}

impl Progress {
    fn took(&self) {
        if self.held.fetch_add(1, Ordering::Relaxed) == 0 {
            // Work starts now: an idle spell before it is no stall.
            self.mark();
        }
    }

    fn mark(&self) {
        let now = self.started.elapsed().as_millis() as u64;
        self.last_finished_ms.store(now, Ordering::Relaxed);
    }

    fn finished(&self) {
        self.held.fetch_sub(1, Ordering::Relaxed);
        self.mark();
    }

    /// Whether messages are held and none finished for `limit`.
    fn stalled(&self, limit: Duration) -> bool {
        let idle_ms = (self.started.elapsed().as_millis() as u64)
            .saturating_sub(self.last_finished_ms.load(Ordering::Relaxed));
        self.held.load(Ordering::Relaxed) > 0 && idle_ms > limit.as_millis() as u64
    }
}

impl Consumer {
    /// Runs sessions until `shutdown`, then waits for in-flight messages up to `drain`.
    pub async fn run(&self, shutdown: CancellationToken, drain: Duration) {
        let mut backoff = Backoff::default();
        while !shutdown.is_cancelled() {
            let started = Instant::now();
            let result = self.session(&shutdown).await;
            self.health.set_consuming(false);
            match result {
                Ok(()) => break,
                Err(error) => {
                    let reason = match &error {
                        Error::Stalled(_) => "stall",
                        Error::ConsumerCancelled(_) => "cancelled",
                        _ => "connection",
                    };
                    self.deliverer.metrics.consumer_restart(reason);
                    error!(message = "Consuming stopped; starting again.", %error);
                }
            }
            if started.elapsed() > Duration::from_secs(30) {
                backoff.reset();
            }
            tokio::select! {
                _ = shutdown.cancelled() => break,
                _ = backoff.wait() => {}
            }
        }
        self.tracker.close();
        info!(
            message = "Stopping: waiting for in-flight deliveries.",
            held = self.progress.held.load(Ordering::Relaxed)
        );
        if tokio::time::timeout(drain, self.tracker.wait())
            .await
            .is_err()
        {
            warn!(
                message = "Deliveries still in flight at the deadline; their messages return to the queue."
            );
        }
        self.broker.close().await;
    }

    /// Once a second: the watchdog, and the circuit gauge.
    fn tick(&self) -> Result<()> {
        self.deliverer.breaker.report();
        self.check_progress()
    }

    fn check_progress(&self) -> Result<()> {
        if self.progress.stalled(self.stall_timeout) {
            return Err(Error::Stalled(self.stall_timeout));
        }
        Ok(())
    }

    async fn session(&self, shutdown: &CancellationToken) -> Result<()> {
        let channel = self.broker.channel().await?;
        let result = self.consume(&channel, shutdown).await;
        if result.is_err() {
            // Hands this session's unacked messages back to the broker at once. On shutdown
            // the channel stays open so in-flight messages can still be acked; `run` closes
            // the connection after draining.
            let _ = channel.close(200, "session over".into()).await;
        }
        result
    }

    async fn consume(&self, channel: &lapin::Channel, shutdown: &CancellationToken) -> Result<()> {
        let prefetch = prefetch(self.max_inflight);
        let mut deliveries = self.subscribe(channel, prefetch).await?;
        self.health.set_consuming(true);
        // A new session gets the full stall timeout, even if an old one's messages are stuck.
        self.progress.mark();
        info!(
            message = "Consuming.",
            queues = self.topology.event_types.len(),
            prefetch
        );

        // The settler lives as long as any message task of this session holds a handle, and
        // the tracker waits for it, so a graceful stop sends the last acks before closing.
        let (settler, inbox) = Settler::new();
        // Finished messages waiting for one `multiple` ack hold prefetch slots: at most 3/4.
        let max_waiting = usize::from(prefetch) * 3 / 4;
        self.tracker
            .spawn(acks::run(channel.clone(), inbox, max_waiting));
        let mut watchdog = tokio::time::interval(Duration::from_secs(1));
        loop {
            // No new work while Redis is away: it could only go back to the queue.
            if !self.health.redis_up() {
                tokio::select! {
                    biased;
                    _ = shutdown.cancelled() => return Ok(()),
                    _ = self.health.wait_for_redis(Duration::from_secs(3600)) => {}
                }
            }
            // The watchdog also runs while every slot is taken: stuck messages holding all of
            // them is the stall most worth catching.
            let permit = loop {
                tokio::select! {
                    biased;
                    _ = shutdown.cancelled() => return Ok(()),
                    _ = watchdog.tick() => self.tick()?,
                    permit = self.budget.message() => break permit,
                }
            };
            let next = loop {
                tokio::select! {
                    biased;
                    _ = shutdown.cancelled() => return Ok(()),
                    _ = watchdog.tick() => self.tick()?,
                    next = deliveries.next() => break next,
                }
            };
            match next {
                Some((event_type, Some(Ok(delivery)))) => {
                    // Intake waits here while the bodies in flight use the byte budget.
                    let held = self.budget.bytes(permit, delivery.data.len()).await;
                    let message = Settlement::new(settler.clone(), delivery.delivery_tag);
                    self.start(message, event_type, delivery, held, shutdown);
                }
                Some((_, Some(Err(e)))) => return Err(e.into()),
                Some((event_type, None)) => {
                    let queue = self.topology.namespace.work_queue(&event_type);
                    return Err(Error::ConsumerCancelled(queue));
                }
                None => return Err(Error::ConsumerCancelled("every queue".to_owned())),
            }
        }
    }

    /// Declares the topology and consumes every work queue at `prefetch`: one stream of
    /// `(event type, delivery)`, where a `None` delivery means that queue's consumer ended.
    async fn subscribe(&self, channel: &lapin::Channel, prefetch: u16) -> Result<Deliveries> {
        self.topology.declare(channel).await?;
        channel
            .basic_qos(prefetch, BasicQosOptions::default())
            .await?;
        let mut streams = Vec::new();
        for event_type in &self.topology.event_types {
            let queue = self.topology.namespace.work_queue(event_type);
            let consumer = hookfleet_amqp::broker::consume(channel, &queue).await?;
            // Each stream ends with a `None` item, so that one consumer cancelled by the broker
            // (its queue deleted, a node lost) ends the session instead of going quiet.
            let ty = event_type.clone();
            let end = futures_util::stream::once(std::future::ready((event_type.clone(), None)));
            streams.push(
                consumer
                    .map(move |d| (ty.clone(), Some(d)))
                    .chain(end)
                    .boxed(),
            );
        }
        Ok(select_all(streams))
    }

    /// Handles one message in a task of its own, holding its share of the budget until done.
    fn start<H: Send + 'static>(
        &self,
        message: Settlement,
        event_type: EventType,
        delivery: Delivery,
        held: H,
        shutdown: &CancellationToken,
    ) {
        self.progress.took();
        // Boxed: the task tokio stores and moves is then a few words, not the whole
        // delivery's state (perf showed those copies at about 3 % of a saturated worker).
        let task = Box::pin(handle(
            self.deliverer.clone(),
            self.health.clone(),
            message,
            event_type,
            delivery,
            self.message_deadline,
            shutdown.clone(),
        ));
        let progress = self.progress.clone();
        self.tracker.spawn(async move {
            task.await;
            progress.finished();
            drop(held);
        });
    }
}

/// Every work queue's deliveries, tagged with the queue's event type.
type Deliveries = futures_util::stream::SelectAll<
    futures_util::stream::BoxStream<'static, (EventType, Option<lapin::Result<Delivery>>)>,
>;

/// Handles one message and settles it with the broker: ack when its outcome is durable (which
/// a hand-off may make happen early), requeue (after a pause) when not.
async fn handle(
    deliverer: Arc<Deliverer>,
    health: Arc<Health>,
    message: Settlement,
    event_type: EventType,
    delivery: Delivery,
    deadline: Duration,
    shutdown: CancellationToken,
) {
    let Delivery {
        properties, data, ..
    } = delivery;
    let work = deliverer.handle(&properties, Bytes::from(data), &event_type, &message);
    // Logged on the cold paths below only: no span per message on the hot path.
    let event_id = properties.message_id().clone();
    let result = match tokio::time::timeout(deadline, work).await {
        Ok(result) => result,
        Err(_) => Err(Error::Stalled(deadline)),
    };
    match result {
        Ok(()) => message.ack(),
        Err(error) if message.is_settled() => {
            // Acked at a hand-off: its retries are queued, and the error cost at most the
            // mark of an attempt that got a 2xx (that retry may then POST once more).
            warn!(message = "Error after the message was handed off; its queued retry stands.", %error, %event_type, ?event_id);
        }
        Err(error) => {
            warn!(message = "Message not handled; returning it to the queue.", %error, %event_type, ?event_id);
            // Held until Redis answers again (bounded), so that an outage does not spin
            // messages through the queue towards its delivery limit.
            tokio::select! {
                _ = shutdown.cancelled() => {}
                _ = tokio::time::sleep(REQUEUE_BACKOFF) => {}
            }
            tokio::select! {
                _ = shutdown.cancelled() => {}
                _ = health.wait_for_redis(Duration::from_secs(30)) => {}
            }
            message.requeue();
        }
    }
}

/// Each consumer's prefetch: the whole in-flight budget, so that whichever event type has work
/// can use all of it (real traffic is skewed: one type usually dominates). The worker's own
/// [`Budget`] bounds what it handles at once; RabbitMQ has no channel-wide prefetch for quorum
/// queues, so a message beyond the budget waits in memory, unhandled, until a slot frees. How
/// much can wait: the prefetch of every other queue with a backlog, written down in the README
/// ("In-flight budget").
fn prefetch(max_inflight: usize) -> u16 {
    u16::try_from(max_inflight.max(1)).unwrap_or(u16::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn the_watchdog_sees_a_stall_only_while_messages_are_held() {
        let progress = Progress::default();
        let limit = Duration::from_secs(60);
        tokio::time::advance(Duration::from_secs(600)).await;
        assert!(!progress.stalled(limit), "idle is no stall");
        progress.took();
        tokio::time::advance(Duration::from_secs(59)).await;
        assert!(
            !progress.stalled(limit),
            "the clock starts when work starts"
        );
        progress.took();
        progress.finished();
        tokio::time::advance(Duration::from_secs(59)).await;
        assert!(!progress.stalled(limit), "a finished message resets it");
        tokio::time::advance(Duration::from_secs(2)).await;
        assert!(
            progress.stalled(limit),
            "held and nothing finished for 61 s"
        );
        progress.mark();
        assert!(!progress.stalled(limit), "a new session starts afresh");
    }

    #[test]
    fn every_queue_may_use_the_whole_budget() {
        for (max_inflight, prefetch_) in [(1024, 1024), (1, 1), (0, 1), (200_000, u16::MAX)] {
            assert_eq!(prefetch(max_inflight), prefetch_, "{max_inflight}");
        }
    }
}
