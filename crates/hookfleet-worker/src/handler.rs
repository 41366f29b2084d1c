//! The unit of work: one message from a work queue, handled to the end. Message in → its
//! events (a bundle from a delay tier unpacked; a malformed one parked) → each event's target
//! endpoints → one [`crate::delivery`] each.
//!
//! [`Deliverer::handle`] returns `Ok` only when every endpoint's outcome is durable (a
//! mark in Redis, or a retry or dead letter confirmed by the broker), so the caller may ack.
//! Any `Err` means the message must go back to the queue.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures_util::future::join_all;
use hookfleet_amqp::{Broker, ConfirmedPublisher};
use hookfleet_core::policy::RetrySchedule;
use hookfleet_core::{Endpoint, EventType, Namespace, payload_filter};
use hookfleet_history::{EventRecord, Recorder};
use hookfleet_producer::Publisher;
use hookfleet_store::{
    AttemptLog, CircuitPolicy, Circuits, Dedup, EndpointCache, EndpointStore, ExhaustedNotices,
    RateLimits, Redis,
};
use lapin::BasicProperties;
use tracing::{Span, debug, info, warn};

use crate::breaker::Breaker;
use crate::bundle::{self, Bundler};
use crate::delivery::Delivery;
use crate::handoff::Settlement;
use crate::inbound::InboundEvent;
use crate::journal::Journal;
use crate::limits::{Deliveries, EndpointSlots};
use crate::metrics::{DeliveryResult, Metrics};
use crate::notice::Notices;
use crate::retry;
use crate::sender::Sender;
use crate::timing::Timeouts;
use crate::{Result, WorkerConfig};

/// Everything one delivery needs; shared by all in-flight messages.
#[derive(Debug)]
pub struct Deliverer {
    pub namespace: Namespace,
    pub endpoints: EndpointCache,
    /// For disabling an endpoint that answered 410 Gone.
    pub store: EndpointStore,
    pub dedup: Dedup,
    /// Each endpoint's attempt log, written in batches.
    pub journal: Journal,
    /// The message history in PostgreSQL, when there is one: written in batches.
    pub history: Option<Recorder>,
    pub sender: Sender,
    pub publisher: Arc<ConfirmedPublisher>,
    /// Copies for the delay tiers (retries and deferrals), many to a message.
    pub bundler: Bundler,
    pub schedule: RetrySchedule,
    pub metrics: Metrics,
    /// Deliveries in flight in this worker, capped.
    pub deliveries: Deliveries,
    /// Deliveries in flight per endpoint, capped.
    pub slots: EndpointSlots,
    /// Each endpoint's `rate_limit`, fleet-wide.
    pub rates: RateLimits,
    pub breaker: Breaker,
    /// Publishes the operational events (`endpoint.disabled`, `message.attempt.*`).
    pub notices: Notices,
    /// The storm bound of `message.attempt.exhausted`.
    pub exhausted: ExhaustedNotices,
    pub timeouts: Timeouts,
}

impl Deliverer {
    /// Everything one delivery needs, built from the worker's settings on a broker
    /// connection and a Redis handle; `metrics` is where its outcomes are counted.
    pub fn new(
        config: &WorkerConfig,
        broker: &Broker,
        redis: Redis,
        metrics: Metrics,
    ) -> Result<Self> {
        let timeouts = Timeouts::new(config.delivery_timeout);
        let ns = &config.namespace;
        let store = EndpointStore::new(redis.clone(), ns).with_keyring(config.keyring.clone());
        let circuits = Circuits::new(
            redis.clone(),
            ns,
            CircuitPolicy {
                threshold: config.circuit_threshold,
                cooldown: config.circuit_cooldown,
                probe_hold: timeouts.probe_hold,
                disable_after: config.disable_after,
            },
        );
        let notices = Notices::new(
            Publisher::new(broker.clone(), config.namespace.clone())
                .give_up_after(timeouts.publish_patience)
                .with_counter(metrics.published()),
            config.operator_tenant.clone(),
        );
        // Retries and dead letters must be confirmed before the original is acked; past
        // this the message goes back to the queue instead of waiting on.
        let publisher = Arc::new(
            ConfirmedPublisher::new(broker.clone()).give_up_after(timeouts.publish_patience),
        );
        Ok(Self {
            bundler: Bundler::new(publisher.clone(), config.namespace.clone()),
            namespace: config.namespace.clone(),
            endpoints: EndpointCache::new(store.clone(), config.endpoint_cache_ttl),
            store,
            journal: Journal::start(
                AttemptLog::new(redis.clone(), ns, config.attempt_log_len),
                metrics.clone(),
            ),
            rates: RateLimits::new(redis.clone(), ns),
            exhausted: ExhaustedNotices::new(redis.clone(), ns),
            dedup: Dedup::new(redis, ns, timeouts.claim_ttl, config.dedup_ttl),
            history: (config.history.clone())
                .map(|history| Recorder::start(history, metrics.history_dropped())),
            sender: Sender::new(
                config.delivery_timeout,
                &config.user_agent,
                config.allow_private_targets,
                config.allowed_ports.clone(),
            )?,
            publisher,
            schedule: config.retry.clone(),
            breaker: Breaker::new(circuits, metrics.clone()),
            metrics,
            deliveries: Deliveries::new(config.max_inflight),
            slots: EndpointSlots::new(
                config.endpoint_concurrency,
                timeouts.slot_grace,
                timeouts.slot_stall,
            ),
            notices,
            timeouts,
        })
    }

    /// Handles one message taken from the work queue of `queue_type`: one event, or a bundle
    /// of copies back from a delay tier. `Ok` means it may be acked; `message` may have been acked before, by a
    /// hand-off.
    pub async fn handle(
        &self,
        properties: &BasicProperties,
        body: Bytes,
        queue_type: &EventType,
        message: &Settlement,
    ) -> Result<()> {
        if bundle::count(properties).is_none() {
            return self
                .handle_event(properties, body, queue_type, message, true)
                .await;
        }
        let events = match bundle::unpack(&body) {
            Ok(events) => events,
            Err(damage) => {
                warn!(message = "A bundle from a delay tier cannot be read; dead-lettering it whole.", %damage);
                let reason = format!("malformed bundle: {damage}");
                return self.park(queue_type, properties, &body, &reason).await;
            }
        };
        let results = join_all(events.into_iter().map(|(properties, body)| async move {
            let body = Bytes::from(body);
            (self.handle_event(&properties, body, queue_type, message, false)).await
        }))
        .await;
        results.into_iter().collect()
    }

    /// Dead-letters a message that no endpoint can be tried for, as it is.
    async fn park(
        &self,
        queue_type: &EventType,
        properties: &BasicProperties,
        body: &[u8],
        reason: &str,
    ) -> Result<()> {
        let event_type = queue_type.as_str();
        let (publisher, namespace) = (&self.publisher, &self.namespace);
        retry::dead_letter(
            publisher, namespace, event_type, properties, body, None, reason,
        )
        .await?;
        self.metrics
            .delivery(event_type, DeliveryResult::DeadLettered);
        Ok(())
    }

    /// Handles one event; `whole` when it is the whole message (not one of a bundle's), which
    /// may then be acked as soon as each delivery's outcome is durable.
    #[tracing::instrument(level = "debug", skip_all, fields(event_type = %queue_type, event_id))]
    async fn handle_event(
        &self,
        properties: &BasicProperties,
        body: Bytes,
        queue_type: &EventType,
        message: &Settlement,
        whole: bool,
    ) -> Result<()> {
        let event = match InboundEvent::parse(properties, &body, queue_type) {
            Ok(event) => event,
            Err(malformed) => {
                warn!(message = "Message breaks the contract; dead-lettering it.", reason = %malformed, event_type = %queue_type, message_id = ?properties.message_id());
                let reason = format!("malformed: {malformed}");
                return self.park(queue_type, properties, &body, &reason).await;
            }
        };
        Span::current().record("event_id", event.id.as_str());
        let series = self.metrics.series(event.event_type.as_str());
        let endpoints = self.endpoints.for_tenant(&event.tenant).await?;
        let targets: Vec<&Endpoint> = endpoints
            .iter()
            .filter(|e| e.wants(&event.event_type))
            .filter(|e| event.target.as_ref().is_none_or(|t| *t == e.id))
            .collect();
        if let Some(target) = &event.target
            && targets.is_empty()
        {
            info!(
                message = "Endpoint removed, disabled or unsubscribed; dropping its retry.",
                endpoint_id = %target,
                event_id = %event.id
            );
        }
        let mut targets = self.matching(&event, &body, targets);
        if event.target.is_none() {
            series.received();
            self.record_event(&event, &body, &targets);
            // Ordered endpoints get it through `crate::ordered`; a message addressed to one
            // (a replay, a resend) is sent at once.
            targets.retain(|e| !e.ordered);
        }
        // A fan-out counts each of its deliveries against the worker's budget.
        let _deliveries = self.deliveries.take(targets.len()).await;
        message.expect(targets.len());
        if whole {
            message.expected_all();
        }
        let to = |endpoint| {
            let (event, body, series) = (&event, &body, &*series);
            async move {
                let share = message.share();
                let delivery = Delivery {
                    event,
                    endpoint,
                    properties,
                    body,
                    message,
                    share: &share,
                    whole,
                    series,
                };
                // Boxed: the message's task stays small, and is not copied whole when spawned.
                let result = Box::pin(self.deliver(&delivery)).await;
                if result.is_ok() {
                    share.durable();
                }
                result
            }
        };
        match targets[..] {
            [endpoint] => to(endpoint).await,
            _ => join_all(targets.into_iter().map(to))
                .await
                .into_iter()
                .collect(),
        }
    }
}

impl Deliverer {
    /// The targets whose payload filter the event's `data` matches (all of them when none
    /// has a filter, and for a resend, which is a deliberate ask); the others are counted as
    /// filtered, with no attempt. The payload is parsed only when some filter needs it.
    fn matching<'e>(
        &self,
        event: &InboundEvent,
        body: &[u8],
        targets: Vec<&'e Endpoint>,
    ) -> Vec<&'e Endpoint> {
        if event.resend.is_some() || targets.iter().all(|e| e.filter.is_none()) {
            return targets;
        }
        let data = payload_filter::data_of(body);
        let (wanted, filtered): (Vec<&Endpoint>, Vec<&Endpoint>) =
            (targets.into_iter()).partition(|e| e.filter.as_ref().is_none_or(|f| f.matches(&data)));
        for endpoint in filtered {
            debug!(message = "Filtered out.", endpoint_id = %endpoint.id);
            let event_type = event.event_type.as_str();
            self.metrics.delivery(event_type, DeliveryResult::Filtered);
        }
        wanted
    }

    /// The event in the history, with the endpoints it is meant for, the first time a worker
    /// handles it (retries, replays and resends are addressed to one endpoint and are not new
    /// events).
    fn record_event(&self, event: &InboundEvent, body: &Bytes, targets: &[&Endpoint]) {
        let Some(history) = &self.history else {
            return;
        };
        let occurred_at = time::OffsetDateTime::from_unix_timestamp(event.timestamp)
            .ok()
            .filter(|_| event.timestamp > 0)
            .unwrap_or_else(time::OffsetDateTime::now_utc);
        history.event(EventRecord {
            id: event.id.to_string(),
            tenant: event.tenant.to_string(),
            event_type: event.event_type.to_string(),
            occurred_at,
            body: body.clone(),
            endpoints: targets.iter().map(|e| e.id.to_string()).collect(),
        });
    }
}

/// How long a message waits before going back to the queue after an error: long enough not
/// to spin while Redis or the broker is away.
pub const REQUEUE_BACKOFF: Duration = Duration::from_secs(1);
