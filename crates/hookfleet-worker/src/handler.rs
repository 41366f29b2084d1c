//! The unit of work: one message from a work queue, handled to the end.
//!
//! [`Deliverer::handle`] returns `Ok` only when every endpoint's outcome is durable (a
//! mark in Redis, or a retry or dead letter confirmed by the broker), so the caller may ack.
//! Any `Err` means the message must go back to the queue.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures_util::future::{Either, join_all};
use hookfleet_amqp::{Broker, ConfirmedPublisher};
use hookfleet_core::Namespace;
use hookfleet_core::attempt::{Attempt, Made, Source};
use hookfleet_core::delays::defer_base;
use hookfleet_core::policy::{AttemptOutcome, RetrySchedule, Verdict};
use hookfleet_core::{Endpoint, EventType};
use hookfleet_producer::Publisher;
use hookfleet_store::{
    AttemptLog, CircuitPolicy, Circuits, Claim, Dedup, EndpointCache, EndpointStore, Held, Redis,
};
use lapin::BasicProperties;
use tokio::time::Instant;
use tracing::{Span, debug, info, warn};

use crate::acks;
use crate::breaker::{Admission, Aftermath, Breaker};
use crate::bundle::{self, Bundler};
use crate::handoff::{Settlement, Share};
use crate::inbound::InboundEvent;
use crate::journal::Journal;
use crate::limits::{Deliveries, EndpointSlots};
use crate::metrics::{DeferReason, DeliveryResult, Metrics, Series};
use crate::notice::Notices;
use crate::retry::{self, Failure};
use crate::sender::{Sender, Sent};
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
            dedup: Dedup::new(redis, ns, timeouts.claim_ttl, config.dedup_ttl),
            sender: Sender::new(
                config.delivery_timeout,
                &config.user_agent,
                config.allow_private_targets,
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
        if event.target.is_none() {
            series.received();
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
                endpoint_id = %target,
                event_id = %event.id
            );
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

    /// One endpoint's attempt, from claim to a durable outcome.
    #[tracing::instrument(level = "debug", skip_all, fields(endpoint_id = %d.endpoint.id, attempt = d.event.attempts + 1))]
    async fn deliver(&self, d: &Delivery<'_>) -> Result<()> {
        let (event, endpoint) = (d.event, d.endpoint);
        let event_type = event.event_type.as_str();
        // Isolation first: a busy or failing endpoint's delivery waits in a delay queue, not in
        // this worker, and uses no attempt.
        // Only a whole message can be acked early: a bundle's events wait their turn. Only a
        // delivery that has waited `hand_off_after` listens for the ask at all: a fast
        // endpoint's line is hundreds long, and every ask would wake each of them.
        let hurry = if d.whole {
            let waited = self.timeouts.hand_off_after;
            Either::Left(d.message.asked_after(Instant::now(), waited))
        } else {
            Either::Right(std::future::pending())
        };
        let slot = self.slots.take(&endpoint.id, hurry);
        let Some(slot) = slot.await else {
            // Its slots free up within one delivery timeout at the latest: looking again
            // sooner would only send a dead endpoint's deliveries round and round.
            let busy = DeferReason::EndpointBusy;
            return self.defer(busy, self.timeouts.delivery, d).await;
        };
        if let Admission::Defer(wait, reason) = self.breaker.admit(&endpoint.id).await? {
            return self.defer(reason, wait, d).await;
        }
        let held = match self.dedup.claim(&endpoint.id, &event.id).await? {
            Claim::Acquired(held) => held,
            Claim::Done => {
                debug!(message = "Already delivered; skipping.");
                self.metrics.delivery(event_type, DeliveryResult::Duplicate);
                return Ok(());
            }
            Claim::Busy => return self.check_back_later(d).await,
        };

        let (sent, handed_off) = {
            let _inflight = self.metrics.inflight();
            let post = self.sender.post(endpoint, &event.id, d.body.clone());
            self.attempt(post, d).await
        };
        // The cap is on requests in flight: recording the outcome holds no slot.
        drop(slot);
        let outcome = &sent.outcome;
        d.series.attempt(outcome, sent.latency.as_secs_f64());
        let attempts = event.attempts + 1;
        self.journal.write(&endpoint.id, || {
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
            self.commit(endpoint, event, &held).await?;
            self.record(endpoint, outcome).await;
            let lag = (event.timestamp > 0).then(|| {
                let now = time::OffsetDateTime::now_utc().unix_timestamp_nanos() as f64 / 1e9;
                now - event.timestamp as f64
            });
            d.series.delivered(lag);
            debug!(message = "Delivered.", status = outcome.status());
            return Ok(());
        }

        let released = (self.dedup)
            .release(&endpoint.id, &event.id, &held.token, None)
            .await;
        if let Err(error) = released {
            // Harmless: the claim expires on its own after the delivery timeout.
            warn!(message = "Could not release the claim; it will expire.", %error, event_id = %event.id, endpoint_id = %endpoint.id);
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
            Some(_) if handed_off => {
                // A Retry-After longer than that retry's tier paused the endpoint just now
                // (`record`), so the breaker holds the retry back until then.
                self.metrics
                    .delivery(event_type, DeliveryResult::RetryScheduled);
                info!(message = "Delivery failed; its retry was queued when it was handed off.", error = %failure.last_error, event_id = %event.id, endpoint_id = %endpoint.id, attempt = attempts);
            }
            Some(tier) => {
                let delay = self.schedule.delays()[tier];
                self.retry_in(delay, d, &failure).await?;
                info!(message = "Delivery failed; retry scheduled.", error = %failure.last_error, retry_in = ?delay, event_id = %event.id, endpoint_id = %endpoint.id, attempt = attempts);
            }
            None if handed_off
                && !aftermath.disable
                && verdict == Verdict::GiveUp { disable: false } =>
            {
                // The retry queued at the hand-off meets the same rule and is dead-lettered
                // then; doing it here too would leave two dead letters.
                info!(message = "Delivery failed for good; its retry, queued when it was handed off, will dead-letter it.", error = %failure.last_error, event_id = %event.id, endpoint_id = %endpoint.id, attempt = attempts);
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
                // After a hand-off the endpoint is disabled by now, so the retry queued then
                // is dropped when it comes back: this dead letter is the only one.
                retry::dead_letter(
                    &self.publisher,
                    &self.namespace,
                    event_type,
                    d.properties,
                    d.body,
                    Some(&failure),
                    &reason,
                )
                .await?;
                self.metrics
                    .delivery(event_type, DeliveryResult::DeadLettered);
                warn!(message = "Delivery failed for good; dead-lettered.", %reason, event_id = %event.id, endpoint_id = %endpoint.id, attempt = attempts);
            }
        }
        Ok(())
    }

    /// Waits for the attempt's answer. If its message is asked for meanwhile (finished
    /// messages wait behind it) once the attempt has taken `hand_off_after`, or its endpoint
    /// is stalled, the delivery is handed off first: the retry a failure would publish is
    /// published now, so the message can be acked while the attempt goes on. Returns the
    /// answer and whether it was.
    async fn attempt(&self, post: impl Future<Output = Sent>, d: &Delivery<'_>) -> (Sent, bool) {
        tokio::pin!(post);
        let attempts = d.event.attempts + 1;
        // The last attempt has no retry to publish ahead: it holds its message to the end. A
        // bundle is acked only at its end anyway.
        let tier = self.schedule.next_tier(attempts, &AttemptOutcome::Timeout);
        let Some(tier) = tier.filter(|_| d.whole) else {
            return (post.await, false);
        };
        let started = Instant::now();
        tokio::select! {
            sent = &mut post => return (sent, false),
            () = self.hand_off_due(d, started) => {}
        }
        let waited = Duration::from_millis(started.elapsed().as_millis() as u64);
        let failure = Failure {
            endpoint: &d.endpoint.id,
            attempts,
            last_status: None,
            last_error: format!(
                "no answer after {}; handed off while the attempt went on",
                humantime::format_duration(waited)
            ),
        };
        let delay = self.schedule.delays()[tier];
        let properties = retry::with_failure(d.properties, &failure);
        let event_type = d.event.event_type.as_str();
        // The POST is polled while the retry is confirmed: its timeout is checked before its
        // answer, so a confirm held up by a broker outage would otherwise turn a 2xx that had
        // arrived into a timeout, and the queued retry would POST the event again.
        let publish = self.bundler.send(delay, event_type, &properties, d.body);
        tokio::pin!(publish);
        let mut sent = None;
        let published = loop {
            tokio::select! {
                published = &mut publish => break published,
                answer = &mut post, if sent.is_none() => sent = Some(answer),
            }
        };
        let handed_off = match published {
            Ok(()) => {
                d.share.durable();
                self.metrics.handed_off();
                debug!(message = "Slow receiver: retry queued ahead, message handed back.", retry_in = ?delay);
                true
            }
            Err(error) => {
                warn!(message = "Could not hand the delivery off; its message waits for the attempt.", %error, event_id = %d.event.id, endpoint_id = %d.endpoint.id);
                false
            }
        };
        let sent = match sent {
            Some(sent) => sent,
            None => post.await,
        };
        (sent, handed_off)
    }

    /// Resolves when an attempt started at `started` is to be handed off: once its message is
    /// asked for and the attempt has taken `hand_off_after`, or sooner at a stalled endpoint
    /// (one that has freed no slot for a while when the rest of the worker has), where waiting
    /// longer tells nothing new and holds up the finished messages behind it.
    async fn hand_off_due(&self, d: &Delivery<'_>, started: Instant) {
        let due = started + self.timeouts.hand_off_after;
        d.message
            .asked_after(started, acks::ASK_AFTER.min(self.timeouts.hand_off_after))
            .await;
        // Asked: the endpoint is looked at again every `ASK_AFTER` until the usual age.
        while Instant::now() < due && !self.slots.stalled(&d.endpoint.id) {
            tokio::time::sleep_until(due.min(Instant::now() + acks::ASK_AFTER)).await;
        }
    }

    /// Another attempt for this (endpoint, event) is in flight right now (a redelivery racing
    /// the original, or a second publish). Waiting one tier and looking again, without
    /// counting an attempt, keeps the two from both POSTing, and loses nothing if the other
    /// attempt fails.
    async fn check_back_later(&self, d: &Delivery<'_>) -> Result<()> {
        let delay = defer_base(self.timeouts.delivery);
        let failure = Failure {
            endpoint: &d.endpoint.id,
            attempts: d.event.attempts,
            last_status: None,
            last_error: "another attempt was in flight".to_owned(),
        };
        self.retry_in(delay, d, &failure).await?;
        debug!(message = "Another attempt is in flight; checking back later.", retry_in = ?delay);
        Ok(())
    }

    /// Sends the message for this endpoint alone to a deferral tier of at least `wait`, with
    /// no attempt used.
    async fn defer(&self, reason: DeferReason, wait: Duration, d: &Delivery<'_>) -> Result<()> {
        let base = defer_base(wait);
        let properties = retry::for_endpoint(d.properties, &d.endpoint.id);
        let event_type = d.event.event_type.as_str();
        (self.bundler.send(base, event_type, &properties, d.body)).await?;
        self.metrics.deferred(reason);
        debug!(message = "Delivery deferred.", ?reason, retry_in = ?base);
        Ok(())
    }

    /// Sends the message for `failure.endpoint` to a jittered sub-tier of `delay`, confirmed.
    async fn retry_in(
        &self,
        delay: Duration,
        d: &Delivery<'_>,
        failure: &Failure<'_>,
    ) -> Result<()> {
        let properties = retry::with_failure(d.properties, failure);
        let event_type = d.event.event_type.as_str();
        (self.bundler.send(delay, event_type, &properties, d.body)).await?;
        self.metrics
            .delivery(event_type, DeliveryResult::RetryScheduled);
        Ok(())
    }

    /// Records the 2xx, trying again while Redis is away: giving up here would requeue a
    /// delivered message. Past the commit patience the claim may have expired and the message
    /// goes back to the queue; a repeat POST is then possible (the documented window).
    async fn commit(&self, endpoint: &Endpoint, event: &InboundEvent, held: &Held) -> Result<()> {
        let started = Instant::now();
        loop {
            match self.dedup.commit(&endpoint.id, &event.id, held, None).await {
                Ok(()) => return Ok(()),
                Err(error) if started.elapsed() < self.timeouts.commit_patience => {
                    warn!(message = "Cannot record the delivery yet; trying again.", %error, event_id = %event.id, endpoint_id = %endpoint.id);
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
        warn!(message = "Disabling the endpoint.", %reason, %url, endpoint_id = %endpoint.id);
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
                warn!(message = "Cannot update the circuit breaker; going on without.", %error, endpoint_id = %endpoint.id);
                Aftermath::default()
            }
        }
    }
}

/// One endpoint's delivery of one message.
struct Delivery<'a> {
    event: &'a InboundEvent,
    endpoint: &'a Endpoint,
    properties: &'a BasicProperties,
    body: &'a Bytes,
    message: &'a Settlement,
    /// Its part in the message's settlement.
    share: &'a Share<'a>,
    /// Its event is the whole message (not one of a bundle's), so a hand-off can ack it.
    whole: bool,
    /// Its event type's metrics.
    series: &'a Series,
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
