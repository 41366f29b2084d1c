//! The unit of work: one message from a work queue, handled to the end.
//!
//! [`Deliverer::handle`] returns `Ok` only when every endpoint's outcome is durable (a
//! mark in Redis, or a retry or dead letter confirmed by the broker), so the caller may ack.
//! Any `Err` means the message must go back to the queue.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_util::future::join_all;
use hookfleet_amqp::{Broker, ConfirmedPublisher};
use hookfleet_core::Namespace;
use hookfleet_core::attempt::{Attempt, Made, Source};
use hookfleet_core::delays::{defer_base, jittered};
use hookfleet_core::policy::{AttemptOutcome, RetrySchedule, Verdict};
use hookfleet_core::{Endpoint, EventType};
use hookfleet_producer::Publisher;
use hookfleet_store::redis;
use hookfleet_store::{
    AttemptLog, CircuitPolicy, Circuits, Claim, Dedup, EndpointCache, EndpointStore, Held, Redis,
};
use lapin::BasicProperties;
use tracing::{Span, debug, info, warn};

use crate::breaker::{Admission, Aftermath, Breaker};
use crate::inbound::InboundEvent;
use crate::limits::{Deliveries, EndpointSlots};
use crate::metrics::{DeferReason, DeliveryResult, Metrics};
use crate::notice::Notices;
use crate::retry::{self, Failure};
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
    /// Each endpoint's attempt log.
    pub attempts: AttemptLog,
    pub sender: Sender,
    pub publisher: Arc<ConfirmedPublisher>,
    pub schedule: RetrySchedule,
    pub metrics: Metrics,
    /// Deliveries in flight in this worker, capped.
    pub deliveries: Deliveries,
    /// Deliveries in flight per endpoint, capped.
    pub slots: EndpointSlots,
    pub breaker: Breaker,
    /// Publishes `endpoint.disabled` when an endpoint is disabled.
    pub notices: Notices,
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
        let store = EndpointStore::new(redis.clone(), ns).with_sealing(config.secret_key.clone());
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
        let notices = Notices {
            publisher: Publisher::new(broker.clone(), config.namespace.clone())
                .give_up_after(timeouts.publish_patience)
                .with_counter(metrics.published()),
            disable_after: config.disable_after,
        };
        Ok(Self {
            namespace: config.namespace.clone(),
            endpoints: EndpointCache::new(store.clone(), config.endpoint_cache_ttl),
            store,
            attempts: AttemptLog::new(redis.clone(), ns, config.attempt_log_len),
            dedup: Dedup::new(redis, ns, timeouts.claim_ttl, config.dedup_ttl),
            sender: Sender::new(
                config.delivery_timeout,
                &config.user_agent,
                config.allow_private_targets,
            )?,
            // Retries and dead letters must be confirmed before the original is acked; past
            // this the message goes back to the queue instead of waiting on.
            publisher: Arc::new(
                ConfirmedPublisher::new(broker.clone()).give_up_after(timeouts.publish_patience),
            ),
            schedule: config.retry.clone(),
            breaker: Breaker::new(circuits, metrics.clone()),
            metrics,
            deliveries: Deliveries::new(config.max_inflight),
            slots: EndpointSlots::new(config.endpoint_concurrency, timeouts.slot_grace),
            notices,
            timeouts,
        })
    }

    /// Handles one message taken from the work queue of `queue_type`.
    #[tracing::instrument(skip_all, fields(event_type = %queue_type, event_id))]
    pub async fn handle(
        &self,
        properties: &BasicProperties,
        body: Bytes,
        queue_type: &EventType,
    ) -> Result<()> {
        let event = match InboundEvent::parse(properties, &body, queue_type) {
            Ok(event) => event,
            Err(malformed) => {
                warn!(message = "Message breaks the contract; dead-lettering it.", reason = %malformed);
                let reason = format!("malformed: {malformed}");
                retry::dead_letter(
                    &self.publisher,
                    &self.namespace,
                    queue_type.as_str(),
                    properties,
                    &body,
                    None,
                    &reason,
                )
                .await?;
                self.metrics
                    .delivery(queue_type.as_str(), DeliveryResult::DeadLettered);
                return Ok(());
            }
        };
        Span::current().record("event_id", event.id.as_str());
        if event.target.is_none() {
            self.metrics.event_received(queue_type.as_str());
        }
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
                endpoint_id = %target
            );
        }
        // A fan-out counts each of its deliveries against the worker's budget.
        let _deliveries = self.deliveries.take(targets.len()).await;
        let results = join_all(
            targets
                .into_iter()
                .map(|endpoint| self.deliver(&event, endpoint, properties, &body)),
        )
        .await;
        results.into_iter().collect()
    }

    /// One endpoint's attempt, from claim to a durable outcome.
    #[tracing::instrument(skip_all, fields(endpoint_id = %endpoint.id, attempt = event.attempts + 1))]
    async fn deliver(
        &self,
        event: &InboundEvent,
        endpoint: &Endpoint,
        properties: &BasicProperties,
        body: &Bytes,
    ) -> Result<()> {
        let event_type = event.event_type.as_str();
        // Isolation first: a busy or failing endpoint's delivery waits in a delay queue, not in
        // this worker, and uses no attempt.
        let Some(_slot) = self.slots.take(&endpoint.id).await else {
            // Its slots free up within one delivery timeout at the latest: looking again
            // sooner would only send a dead endpoint's deliveries round and round.
            let busy = DeferReason::EndpointBusy;
            let wait = self.timeouts.delivery;
            return self
                .defer(busy, wait, event, endpoint, properties, body)
                .await;
        };
        if let Admission::Defer(wait, reason) = self.breaker.admit(&endpoint.id).await? {
            return self
                .defer(reason, wait, event, endpoint, properties, body)
                .await;
        }
        let held = match self.dedup.claim(&endpoint.id, &event.id).await? {
            Claim::Acquired(held) => held,
            Claim::Done => {
                debug!(message = "Already delivered; skipping.");
                self.metrics.delivery(event_type, DeliveryResult::Duplicate);
                return Ok(());
            }
            Claim::Busy => {
                return self
                    .check_back_later(event, endpoint, properties, body)
                    .await;
            }
        };

        let sent = {
            let _inflight = self.metrics.inflight();
            self.sender.post(endpoint, &event.id, body.clone()).await
        };
        let outcome = &sent.outcome;
        self.metrics
            .attempt(event_type, outcome, sent.latency.as_secs_f64());
        let attempts = event.attempts + 1;
        let log_entry = self.attempts.append_command(&endpoint.id, || {
            Attempt::new(Made {
                event_id: event.id.as_str(),
                event_type,
                attempt: attempts,
                source: Source::Worker,
                outcome,
                excerpt: &sent.excerpt,
                latency: sent.latency,
                timeout: self.timeouts.delivery,
            })
        });

        let verdict = outcome.verdict();
        if verdict == Verdict::Delivered {
            // The attempt log rides with the dedup mark: one round trip.
            self.commit(endpoint, event, &held, log_entry.as_ref())
                .await?;
            self.record(endpoint, outcome).await;
            self.metrics.delivery(event_type, DeliveryResult::Delivered);
            if event.timestamp > 0 {
                let now = time::OffsetDateTime::now_utc().unix_timestamp_nanos() as f64 / 1e9;
                self.metrics.lag(event_type, now - event.timestamp as f64);
            }
            debug!(message = "Delivered.", status = outcome.status());
            return Ok(());
        }

        let released = (self.dedup)
            .release(&endpoint.id, &event.id, &held.token, log_entry.as_ref())
            .await;
        if let Err(error) = released {
            // Harmless: the claim expires on its own after the delivery timeout, and the
            // attempt log misses one entry.
            warn!(message = "Could not release the claim or log the attempt; the claim will expire.", %error);
        }
        let failure = Failure::new(&endpoint.id, attempts, outcome);
        let aftermath = self.record(endpoint, outcome).await;
        if aftermath.disable {
            let window = humantime::format_duration(self.notices.disable_after);
            let reason = format!("failing without a break for {window}");
            self.disable(endpoint, &reason).await?;
        }
        let tier = match verdict {
            Verdict::Retry if !aftermath.disable => self.schedule.next_tier(attempts, outcome),
            _ => None,
        };
        match tier {
            Some(tier) => {
                let delay = self.schedule.delays()[tier];
                self.retry_in(delay, event_type, properties, body, &failure)
                    .await?;
                info!(message = "Delivery failed; retry scheduled.", error = %failure.last_error, retry_in = ?delay);
            }
            None => {
                if verdict == (Verdict::GiveUp { disable: true }) {
                    self.disable(endpoint, "answered 410 Gone").await?;
                }
                let reason = if aftermath.disable {
                    "endpoint disabled after failing without a break".to_owned()
                } else {
                    give_up_reason(verdict, attempts, outcome)
                };
                retry::dead_letter(
                    &self.publisher,
                    &self.namespace,
                    event_type,
                    properties,
                    body,
                    Some(&failure),
                    &reason,
                )
                .await?;
                self.metrics
                    .delivery(event_type, DeliveryResult::DeadLettered);
                warn!(message = "Delivery failed for good; dead-lettered.", %reason);
            }
        }
        Ok(())
    }

    /// Another attempt for this (endpoint, event) is in flight right now (a redelivery racing
    /// the original, or a second publish). Waiting one tier and looking again, without
    /// counting an attempt, keeps the two from both POSTing, and loses nothing if the other
    /// attempt fails.
    async fn check_back_later(
        &self,
        event: &InboundEvent,
        endpoint: &Endpoint,
        properties: &BasicProperties,
        body: &Bytes,
    ) -> Result<()> {
        let delay = defer_base(self.timeouts.delivery);
        let failure = Failure {
            endpoint: &endpoint.id,
            attempts: event.attempts,
            last_status: None,
            last_error: "another attempt was in flight".to_owned(),
        };
        let event_type = event.event_type.as_str();
        self.retry_in(delay, event_type, properties, body, &failure)
            .await?;
        debug!(message = "Another attempt is in flight; checking back later.", retry_in = ?delay);
        Ok(())
    }

    /// Sends the message for this endpoint alone to a deferral tier of at least `wait`, with
    /// no attempt used.
    async fn defer(
        &self,
        reason: DeferReason,
        wait: Duration,
        event: &InboundEvent,
        endpoint: &Endpoint,
        properties: &BasicProperties,
        body: &Bytes,
    ) -> Result<()> {
        let delay = jittered(defer_base(wait));
        let tier = self.namespace.delay_tier(delay);
        let event_type = event.event_type.as_str();
        retry::defer(
            &self.publisher,
            &tier,
            event_type,
            properties,
            body,
            &endpoint.id,
        )
        .await?;
        self.metrics.deferred(reason);
        debug!(message = "Delivery deferred.", ?reason, retry_in = ?delay);
        Ok(())
    }

    /// Sends the message for `failure.endpoint` to a jittered sub-tier of `delay`, confirmed.
    async fn retry_in(
        &self,
        delay: Duration,
        event_type: &str,
        properties: &BasicProperties,
        body: &Bytes,
        failure: &Failure<'_>,
    ) -> Result<()> {
        let tier = self.namespace.delay_tier(jittered(delay));
        retry::schedule(
            &self.publisher,
            &tier,
            event_type,
            properties,
            body,
            failure,
        )
        .await?;
        self.metrics
            .delivery(event_type, DeliveryResult::RetryScheduled);
        Ok(())
    }

    /// Records the 2xx, trying again while Redis is away: giving up here would requeue a
    /// delivered message. Past the commit patience the claim may have expired and the message
    /// goes back to the queue; a repeat POST is then possible (the documented window).
    async fn commit(
        &self,
        endpoint: &Endpoint,
        event: &InboundEvent,
        held: &Held,
        log_entry: Option<&redis::Cmd>,
    ) -> Result<()> {
        let started = Instant::now();
        loop {
            match self
                .dedup
                .commit(&endpoint.id, &event.id, held, log_entry)
                .await
            {
                Ok(()) => return Ok(()),
                Err(error) if started.elapsed() < self.timeouts.commit_patience => {
                    warn!(message = "Cannot record the delivery yet; trying again.", %error);
                    tokio::time::sleep(Duration::from_millis(250)).await;
                }
                Err(error) => return Err(error.into()),
            }
        }
    }

    /// Tells the platform (`endpoint.disabled`), then disables the endpoint. The breaker
    /// grants an auto-disable to one worker; a 410 disables at each attempt that gets it.
    ///
    /// The notice goes first: should disabling fail, the message returns to the queue with
    /// the notice already out (at worst a second one follows), whereas the other order could
    /// drop the message as "endpoint disabled" with no notice ever sent.
    async fn disable(&self, endpoint: &Endpoint, reason: &str) -> Result<()> {
        let url = hookfleet_core::target::redact_url(&endpoint.url);
        warn!(message = "Disabling the endpoint.", %reason, %url);
        self.notices.endpoint_disabled(endpoint, reason).await?;
        match self.store.set_enabled(&endpoint.id, false).await {
            // Removed meanwhile: nothing left to disable.
            Ok(_) | Err(hookfleet_store::Error::NotFound(_)) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    /// Records the outcome with the circuit breaker. Best effort: the outcome itself is
    /// already durable or about to be, and a breaker that misses one attempt (Redis away) only
    /// opens or closes a little later.
    async fn record(&self, endpoint: &Endpoint, outcome: &AttemptOutcome) -> Aftermath {
        match self.breaker.record(&endpoint.id, outcome).await {
            Ok(aftermath) => aftermath,
            Err(error) => {
                warn!(message = "Cannot update the circuit breaker; going on without.", %error);
                Aftermath::default()
            }
        }
    }
}

fn give_up_reason(verdict: Verdict, attempts: u32, outcome: &AttemptOutcome) -> String {
    match verdict {
        Verdict::GiveUp { disable: true } => {
            "endpoint answered 410 Gone; endpoint disabled".to_owned()
        }
        Verdict::GiveUp { disable: false } => format!("not retried: {}", outcome.describe()),
        _ => format!("gave up after {attempts} attempts"),
    }
}

/// How long a message waits before going back to the queue after an error: long enough not
/// to spin while Redis or the broker is away.
pub const REQUEUE_BACKOFF: Duration = Duration::from_secs(1);
