//! Ordered endpoints (docs/ordered.md): their events one at a time, in the order the broker
//! accepted them, across event types and across the fleet.
//!
//! - The *intake* consumes `N.ordered` as its single active consumer (one worker of the
//!   fleet at a time, chosen by the broker): the events of tenants with ordered endpoints, in
//!   the broker's order. It appends each to the queue of each ordered endpoint that wants it
//!   ([`OrderedQueues`], in Redis) and only then acks, so nothing is lost between the two.
//! - The *pump* of every worker looks for endpoints whose head is due, takes an endpoint's
//!   lease, and sends its events one after the other: the next only once the head got a 2xx
//!   or was given up. A failed head waits its retry's delay, and everything behind it waits.
//!
//! The work queues' path leaves ordered endpoints to these two, except for a message
//! addressed to one endpoint (a replay or resend), which is sent at once, outside the order.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use futures_util::StreamExt;
use hookfleet_amqp::{Backoff, Broker, Topology};
use hookfleet_core::policy::Verdict;
use hookfleet_core::{Endpoint, EndpointId, EventId, EventType, TenantId, payload_filter};
use hookfleet_store::{Claim, OrderedQueues, Route, Waiting};
use lapin::message::Delivery;
use lapin::options::{BasicAckOptions, BasicQosOptions};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use tracing::{debug, error, info, warn};

use crate::handler::Deliverer;
use crate::inbound::InboundEvent;
use crate::metrics::DeliveryResult;
use crate::notice::About;
use crate::retry::{self, Failure};
use crate::settle::give_up_reason;
use crate::{Error, Result};

/// How often the pump looks for due endpoints when nothing wakes it sooner.
const POLL: Duration = Duration::from_millis(100);
/// Due endpoints one look takes on.
const DUE_BATCH: usize = 64;
/// Events one lease sends before it lets another worker have a turn.
const TURN: usize = 1000;
/// Messages the intake holds from the broker while it queues them.
const INTAKE_PREFETCH: u16 = 256;
/// Messages the intake queues in one go at most.
const INTAKE_BURST: usize = 64;
/// How often the backlog gauge is read.
const REPORT_EVERY: Duration = Duration::from_secs(5);

#[derive(Debug)]
pub struct Ordered {
    deliverer: Arc<Deliverer>,
    queues: OrderedQueues,
    topology: Topology,
    /// This worker's name in a lease.
    token: String,
    /// Rung by the intake when it queued something: the pump looks at once.
    wake: Notify,
    /// Events one ordered endpoint may have waiting (`HOOKFLEET_ORDERED_BACKLOG`).
    backlog_cap: usize,
    /// When a full backlog was last logged (Unix ms).
    refusal_logged_ms: AtomicI64,
}

impl Ordered {
    pub fn new(
        deliverer: Arc<Deliverer>,
        queues: OrderedQueues,
        topology: Topology,
        backlog_cap: usize,
    ) -> Self {
        Self {
            deliverer,
            queues,
            topology,
            token: lease_token(),
            wake: Notify::new(),
            backlog_cap,
            refusal_logged_ms: AtomicI64::new(0),
        }
    }

    /// A lease outlives one attempt (the delivery timeout) with room to write its outcome.
    fn lease_ttl(&self) -> Duration {
        self.deliverer.timeouts.delivery + Duration::from_secs(10)
    }

    /// Runs the intake's sessions until `shutdown`, starting again after any failure.
    pub async fn run_intake(self: Arc<Self>, broker: Broker, shutdown: CancellationToken) {
        let mut backoff = Backoff::default();
        while !shutdown.is_cancelled() {
            match self.intake_session(&broker, &shutdown).await {
                Ok(()) => return,
                Err(error) => {
                    error!(message = "The ordered intake stopped; starting again.", %error)
                }
            }
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = backoff.wait() => {}
            }
        }
    }

    /// One session on its own channel, closed at its end whatever ended it: a channel left
    /// open would keep the queue's single-active-consumer slot, and its messages, from the
    /// next session.
    async fn intake_session(&self, broker: &Broker, shutdown: &CancellationToken) -> Result<()> {
        let channel = broker.channel().await?;
        let result = self.consume_intake(&channel, shutdown).await;
        let _ = channel.close(200, "intake session over".into()).await;
        result
    }

    async fn consume_intake(
        &self,
        channel: &lapin::Channel,
        shutdown: &CancellationToken,
    ) -> Result<()> {
        self.topology.declare(channel).await?;
        channel
            .basic_qos(INTAKE_PREFETCH, BasicQosOptions::default())
            .await?;
        let queue = self.topology.namespace.ordered_queue();
        let deliveries = hookfleet_amqp::broker::consume(channel, &queue).await?;
        // What the broker has already sent goes as one burst: one Redis script and one
        // `multiple` ack for it instead of one of each per event (each ack frame is a Raft
        // command on a quorum queue).
        let mut bursts = deliveries.ready_chunks(INTAKE_BURST);
        loop {
            let next = tokio::select! {
                _ = shutdown.cancelled() => return Ok(()),
                next = bursts.next() => next,
            };
            let Some(burst) = next else {
                return Err(Error::ConsumerCancelled(queue));
            };
            // On an error, what was not acked goes back to the queue, in order, when the
            // session closes its channel.
            let burst = burst.into_iter().collect::<Result<Vec<_>, _>>()?;
            let Some(last) = burst.last() else {
                continue;
            };
            let Some(newly_due) = self.take(&burst, shutdown).await else {
                return Ok(());
            };
            last.ack(BasicAckOptions { multiple: true }).await?;
            if newly_due {
                self.wake.notify_one();
            }
        }
    }

    /// Queues a burst of events, in order, at each ordered endpoint that wants them, trying
    /// again while Redis is away (the broker's order is kept by not moving on). Whether an
    /// endpoint became due by it; `None` at shutdown.
    async fn take(&self, burst: &[Delivery], shutdown: &CancellationToken) -> Option<bool> {
        let events: Vec<(InboundEvent, &Delivery)> = burst
            .iter()
            .filter_map(|delivery| {
                let (properties, body) = (&delivery.properties, &delivery.data[..]);
                let kind = properties.kind().as_ref().map(|k| k.to_string());
                // Either is dead-lettered, with the reason, from its work queue.
                let event_type = kind.and_then(|k| k.parse::<EventType>().ok())?;
                let event = InboundEvent::parse(properties, body, &event_type).ok()?;
                Some((event, delivery))
            })
            .collect();
        loop {
            match self.append(&events).await {
                Ok(newly_due) => return Some(newly_due),
                Err(error) => {
                    let first = events.first().map(|(event, _)| event.id.to_string());
                    warn!(message = "Cannot queue events for their ordered endpoints; trying again.", %error, events = events.len(), first_event_id = first.unwrap_or_default());
                }
            }
            tokio::select! {
                _ = shutdown.cancelled() => return None,
                _ = tokio::time::sleep(Duration::from_secs(1)) => {}
            }
        }
    }

    /// Whether an endpoint became due by them. An event that finds its endpoint's backlog
    /// full is dead-lettered for it instead.
    async fn append(&self, events: &[(InboundEvent, &Delivery)]) -> Result<bool> {
        let mut queued = Vec::with_capacity(events.len());
        let mut sources = Vec::with_capacity(events.len());
        for (event, delivery) in events {
            let body = &delivery.data[..];
            let endpoints = self.deliverer.endpoints.for_tenant(&event.tenant).await?;
            // The work queues' path counted those a filter leaves out, and recorded the rest
            // as meant for it in the history. The payload is read once, and only for a filter.
            let mut data = None;
            let targets: Vec<EndpointId> = endpoints
                .iter()
                .filter(|e| e.ordered && e.wants(&event.event_type))
                .filter(|e| {
                    e.filter.as_ref().is_none_or(|filter| {
                        filter.matches(data.get_or_insert_with(|| payload_filter::data_of(body)))
                    })
                })
                .map(|e| e.id.clone())
                .collect();
            if targets.is_empty() {
                continue;
            }
            let waiting = Waiting {
                id: event.id.to_string(),
                event_type: event.event_type.to_string(),
                tenant: event.tenant.to_string(),
                timestamp: event.timestamp,
                attempts: 0,
                body: String::from_utf8_lossy(body).into_owned(),
            };
            queued.push((waiting, targets));
            sources.push((event, *delivery));
        }
        let appended = (self.queues)
            .append(&queued, now_ms(), self.backlog_cap)
            .await?;
        for (i, endpoint) in &appended.refused {
            let (event, delivery) = sources[*i];
            self.refuse(event, delivery, endpoint).await?;
        }
        Ok(appended.newly_due)
    }

    /// Dead-letters for `endpoint` an event its full backlog could not take: the backlog's
    /// payloads live in Redis, which an endpoint down for days must not fill for everyone.
    async fn refuse(
        &self,
        event: &InboundEvent,
        delivery: &Delivery,
        endpoint: &EndpointId,
    ) -> Result<()> {
        let d = &self.deliverer;
        let cap = self.backlog_cap;
        let reason = format!(
            "ordered backlog full: {cap} events wait at this endpoint (HOOKFLEET_ORDERED_BACKLOG)"
        );
        let properties = retry::for_endpoint(&delivery.properties, endpoint);
        let event_type = event.event_type.as_str();
        retry::dead_letter(
            &d.publisher,
            &d.namespace,
            event_type,
            &properties,
            &delivery.data,
            None,
            &reason,
        )
        .await?;
        d.metrics.delivery(event_type, DeliveryResult::DeadLettered);
        // Once a minute at most: a full endpoint refuses every event that comes.
        let now = now_ms();
        let last = self.refusal_logged_ms.load(Ordering::Relaxed);
        if now - last >= 60_000 {
            self.refusal_logged_ms.store(now, Ordering::Relaxed);
            warn!(message = "An ordered endpoint's backlog is full; its new events are dead-lettered (logged once a minute).", endpoint_id = %endpoint, event_id = %event.id, backlog = cap);
        }
        Ok(())
    }

    /// Looks for due endpoints until `shutdown` and drives each one this worker can lease;
    /// also keeps the backlog gauge.
    pub async fn run_pump(self: Arc<Self>, shutdown: CancellationToken) {
        let mut report = tokio::time::interval(REPORT_EVERY);
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = self.wake.notified() => {}
                _ = tokio::time::sleep(POLL) => {}
                _ = report.tick() => self.report().await,
            }
            let due = match self.queues.due(now_ms(), DUE_BATCH).await {
                Ok(due) => due,
                Err(error) => {
                    debug!(message = "Cannot read the ordered endpoints due.", %error);
                    continue;
                }
            };
            for endpoint in due {
                match self
                    .queues
                    .lease(&endpoint, &self.token, self.lease_ttl())
                    .await
                {
                    Ok(true) => {
                        let this = self.clone();
                        tokio::spawn(async move { this.turn(endpoint).await });
                    }
                    Ok(false) => {}
                    Err(error) => {
                        debug!(message = "Cannot take an ordered endpoint's lease.", %error)
                    }
                }
            }
        }
    }

    async fn report(&self) {
        if let Ok((events, endpoints)) = self.queues.total().await {
            self.deliverer
                .metrics
                .set_ordered_backlog(events, endpoints);
        }
    }

    /// One lease's turn at an endpoint; the lease is given back after, unless the last pop
    /// did.
    async fn turn(&self, endpoint: EndpointId) {
        let holds = match self.drive(&endpoint).await {
            Ok(holds) => holds,
            Err(error) => {
                // The head stays first and due: this worker or another takes it up again.
                warn!(message = "Sending an ordered endpoint's events stopped; its first event will be tried again.", %error, endpoint_id = %endpoint);
                true
            }
        };
        if holds && let Err(error) = self.queues.release(&endpoint, &self.token).await {
            debug!(message = "Cannot give back an ordered endpoint's lease; it expires.", %error);
        }
    }

    /// Sends the endpoint's events in order while they succeed, up to a [`TURN`]; whether
    /// this worker still holds the lease.
    async fn drive(&self, id: &EndpointId) -> Result<bool> {
        let Some(mut head) = self.queues.head(id).await? else {
            return Ok(true);
        };
        for _ in 0..TURN {
            let Some(endpoint) = self.endpoint(id, &head).await? else {
                let dropped = self.queues.clear(id).await?;
                info!(message = "Ordered endpoint removed or disabled; dropping what waited for it.", endpoint_id = %id, dropped);
                return Ok(true);
            };
            match self.send_head(&endpoint, head).await? {
                Step::Next(Some(next)) => head = next,
                // Nothing left, and the lease given back; or the lease lost.
                Step::Next(None) => return Ok(false),
                Step::Wait => return Ok(true),
            }
        }
        Ok(true)
    }

    /// The endpoint as the tenant's cached list has it, when it is there and on.
    async fn endpoint(&self, id: &EndpointId, head: &Waiting) -> Result<Option<Endpoint>> {
        let Ok(tenant) = head.tenant.parse() else {
            return Ok(None);
        };
        let endpoints = self.deliverer.endpoints.for_tenant(&tenant).await?;
        Ok(endpoints.iter().find(|e| e.id == *id && e.enabled).cloned())
    }

    /// One attempt at the head: the next one when it is done with (delivered, already
    /// delivered, or given up), or [`Step::Wait`] for its retry.
    async fn send_head(&self, endpoint: &Endpoint, mut head: Waiting) -> Result<Step> {
        let d = &self.deliverer;
        let (Ok(event_id), Ok(event_type)) = (
            head.id.parse::<EventId>(),
            head.event_type.parse::<EventType>(),
        ) else {
            // Only hookfleet writes these queues: this cannot happen, and must not wedge it.
            error!(message = "A queued ordered event has a bad id or type; dropping it.", event_id = %head.id, endpoint_id = %endpoint.id);
            return self.done(&endpoint.id, &head).await;
        };
        let held = match d.dedup.claim(&endpoint.id, &event_id).await? {
            Claim::Acquired(held) => held,
            Claim::Done => {
                d.metrics
                    .delivery(event_type.as_str(), DeliveryResult::Duplicate);
                return self.done(&endpoint.id, &head).await;
            }
            Claim::Busy => {
                // A replay of it is in flight: look again in a moment, attempt unused.
                let at = now_ms() + 1_000;
                self.queues.retry_head(&endpoint.id, &head, at).await?;
                return Ok(Step::Wait);
            }
        };
        let body = Bytes::from(head.body.clone());
        let sent = {
            let _inflight = d.metrics.inflight();
            d.sender.post(endpoint, &event_id, body.clone()).await
        };
        head.attempts += 1;
        let series = d.metrics.series(event_type.as_str());
        let about = About {
            event_id: &event_id,
            event_type: &event_type,
            attempt: head.attempts,
            outcome: &sent.outcome,
        };
        d.log_attempt(endpoint, &series, about, &sent);
        let verdict = sent.outcome.verdict();
        if verdict == Verdict::Delivered {
            d.dedup.commit(&endpoint.id, &event_id, &held, None).await?;
            d.hear(endpoint, about).await?;
            let lag = (head.timestamp > 0).then(|| now_ms() as f64 / 1e3 - head.timestamp as f64);
            series.delivered(lag);
            return self.done(&endpoint.id, &head).await;
        }
        if let Err(error) = d
            .dedup
            .release(&endpoint.id, &event_id, &held.token, None)
            .await
        {
            debug!(message = "Could not release the claim; it will expire.", %error);
        }
        // The breaker hears of it (failing and recovered notices, auto-disable), though it
        // holds nothing back here: one request at a time is the ordered endpoint's own cap.
        let disabled = d.hear(endpoint, about).await?;
        let tier = match verdict {
            Verdict::Retry if !disabled => d.schedule.next_tier(head.attempts, &sent.outcome),
            _ => None,
        };
        if let Some(tier) = tier {
            let delay = d.schedule.delays()[tier];
            let at = now_ms() + i64::try_from(delay.as_millis()).unwrap_or(i64::MAX);
            self.queues.retry_head(&endpoint.id, &head, at).await?;
            d.metrics
                .delivery(event_type.as_str(), DeliveryResult::RetryScheduled);
            info!(message = "Ordered delivery failed; it and those behind it wait for its retry.", error = %sent.outcome.describe(), retry_in = ?delay, event_id = %event_id, endpoint_id = %endpoint.id, attempt = head.attempts);
            return Ok(Step::Wait);
        }
        if verdict == (Verdict::GiveUp { disable: true }) {
            d.disable(endpoint, "answered 410 Gone").await?;
        }
        let failure = Failure::new(&endpoint.id, head.attempts, &sent.outcome);
        let reason = give_up_reason(verdict, disabled, head.attempts, &sent.outcome);
        let properties = hookfleet_producer::message::properties(
            &event_id,
            &event_type,
            &endpoint.tenant,
            head.timestamp,
        );
        let (publisher, namespace) = (&d.publisher, &d.namespace);
        retry::dead_letter(
            publisher,
            namespace,
            event_type.as_str(),
            &properties,
            &body,
            Some(&failure),
            &reason,
        )
        .await?;
        warn!(message = "Ordered delivery failed for good; dead-lettered, the next one goes.", %reason, event_id = %event_id, endpoint_id = %endpoint.id);
        d.tell_exhausted(endpoint, about, &reason).await;
        d.metrics
            .delivery(event_type.as_str(), DeliveryResult::DeadLettered);
        self.done(&endpoint.id, &head).await
    }

    /// The head is done with: the next one, due now, if there is one (and the lease held).
    async fn done(&self, endpoint: &EndpointId, head: &Waiting) -> Result<Step> {
        let lease = (self.token.as_str(), self.lease_ttl());
        let next = self.queues.pop(endpoint, &head.id, lease, now_ms()).await?;
        Ok(Step::Next(next))
    }
}

/// What comes after one attempt at an ordered endpoint's head.
enum Step {
    /// The head is done with; the next one, if there is one and the lease is still held.
    Next(Option<Waiting>),
    /// The head waits for its retry, and the rest with it.
    Wait,
}

/// Routes `tenant`'s events into the ordered intake, before one of its endpoints is stored as
/// ordered: by a headers binding of its own while few tenants have ordered endpoints, then by
/// one binding for every tenant (docs/ordered.md, "Cost and capacity"). Idempotent.
pub async fn route_tenant(
    broker: &Broker,
    topology: &Topology,
    queues: &OrderedQueues,
    tenant: &TenantId,
) -> Result<()> {
    use hookfleet_amqp::topology::{bind_ordered, unbind_ordered};
    let channel = broker.channel().await?;
    let routed = async {
        topology.declare(&channel).await?;
        let ns = &topology.namespace;
        match queues.route(tenant).await? {
            Route::Tenant => bind_ordered(&channel, ns, Some(tenant)).await?,
            Route::All => bind_ordered(&channel, ns, None).await?,
            Route::SwitchToAll => {
                // Every tenant first, then their own routes go: no moment without a route.
                bind_ordered(&channel, ns, None).await?;
                for routed in queues.routed_tenants().await? {
                    unbind_ordered(&channel, ns, &routed).await?;
                }
                info!(message = "Many tenants have ordered endpoints: every event now passes through the ordered intake.");
            }
        }
        Ok(())
    }
    .await;
    let _ = channel.close(200, "done".into()).await;
    routed
}

/// This worker's name in a lease, `<host>:<pid>:<unique>`: who drives an endpoint can be read
/// from Redis (`{N:ordered}:lease:<endpoint>`), and no two processes share it.
fn lease_token() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();
    let unique = EventId::generate();
    format!("{}:{}:{unique}", host.trim(), std::process::id())
}

fn now_ms() -> i64 {
    (time::OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000) as i64
}
