//! How a delivery ends once its attempt is made: a 2xx is committed (the de-duplication mark),
//! a failure is retried through a delay tier or dead-lettered, and the circuit breaker hears of
//! either; and the early ends of [`crate::delivery`] (deferred, checked back on later).
//! Everything here is durable before it returns, so the message can be acked.

use std::time::Duration;

use hookfleet_core::delays::defer_base;
use hookfleet_core::policy::{AttemptOutcome, Verdict};
use hookfleet_core::{DisabledBy, Endpoint};
use hookfleet_store::Held;
use tokio::time::Instant;
use tracing::{debug, info, warn};

use crate::Result;
use crate::breaker::Aftermath;
use crate::delivery::Delivery;
use crate::handler::Deliverer;
use crate::inbound::InboundEvent;
use crate::metrics::{DeferReason, DeliveryResult};
use crate::notice::About;
use crate::retry::{self, Failure};
use crate::sender::Sent;

/// A failed attempt: its claim, its answer, what the policy makes of it, and whether its retry
/// was queued already at a hand-off.
pub(crate) type Failed<'a> = (&'a Held, &'a Sent, Verdict, bool);

impl Deliverer {
    /// Records the 2xx: the mark, the breaker (a success after failures closes the circuit),
    /// the metrics.
    pub(crate) async fn settle_delivered(
        &self,
        d: &Delivery<'_>,
        held: &Held,
        sent: &Sent,
    ) -> Result<()> {
        let event = d.event;
        self.commit(d.endpoint, event, held).await?;
        let about = about(d, event.attempts + 1, &sent.outcome);
        self.hear(d.endpoint, about).await?;
        let lag = (event.timestamp > 0).then(|| {
            let now = time::OffsetDateTime::now_utc().unix_timestamp_nanos() as f64 / 1e9;
            now - event.timestamp as f64
        });
        d.series.delivered(lag);
        debug!(message = "Delivered.", status = sent.outcome.status());
        Ok(())
    }

    /// Gives the claim back and sends the event on: to its retry's tier, or to the
    /// dead-letter queue; a 410, or failing for `HOOKFLEET_DISABLE_AFTER`, disables the
    /// endpoint first.
    pub(crate) async fn settle_failed(&self, d: &Delivery<'_>, failed: Failed<'_>) -> Result<()> {
        let (held, sent, verdict, handed_off) = failed;
        let (event, endpoint, outcome) = (d.event, d.endpoint, &sent.outcome);
        let released = (self.dedup)
            .release(&endpoint.id, event.dedup_key(), &held.token, None)
            .await;
        if let Err(error) = released {
            // Harmless: the claim expires on its own after the delivery timeout.
            warn!(message = "Could not release the claim; it will expire.", %error, event_id = %event.id, endpoint_id = %endpoint.id);
        }
        let attempts = event.attempts + 1;
        let failure = Failure::new(&endpoint.id, attempts, outcome);
        let disabled = self.hear(endpoint, about(d, attempts, outcome)).await?;
        let tier = match verdict {
            Verdict::Retry if !disabled => self.schedule.next_tier(attempts, outcome),
            _ => None,
        };
        let event_type = event.event_type.as_str();
        let ids = (event.id.as_str(), endpoint.id.as_str());
        match tier {
            Some(_) if handed_off => {
                // A Retry-After longer than that retry's tier paused the endpoint just now
                // (`record`), so the breaker holds the retry back until then.
                self.metrics
                    .delivery(event_type, DeliveryResult::RetryScheduled);
                info!(message = "Delivery failed; its retry was queued when it was handed off.", error = %failure.last_error, event_id = ids.0, endpoint_id = ids.1, attempt = attempts);
            }
            Some(tier) => {
                let delay = self.schedule.delays()[tier];
                self.retry_in(delay, d, &failure).await?;
                info!(message = "Delivery failed; retry scheduled.", error = %failure.last_error, retry_in = ?delay, event_id = ids.0, endpoint_id = ids.1, attempt = attempts);
            }
            None if handed_off && !disabled && verdict == Verdict::GiveUp { disable: false } => {
                // The retry queued at the hand-off meets the same rule and is dead-lettered
                // then; doing it here too would leave two dead letters.
                info!(message = "Delivery failed for good; its retry, queued when it was handed off, will dead-letter it.", error = %failure.last_error, event_id = ids.0, endpoint_id = ids.1, attempt = attempts);
            }
            None => {
                self.give_up(d, &failure, verdict, disabled, outcome)
                    .await?
            }
        }
        Ok(())
    }

    /// Dead-letters the event for this endpoint (disabling it first on a 410).
    async fn give_up(
        &self,
        d: &Delivery<'_>,
        failure: &Failure<'_>,
        verdict: Verdict,
        disabled: bool,
        outcome: &AttemptOutcome,
    ) -> Result<()> {
        if verdict == (Verdict::GiveUp { disable: true }) {
            self.disable(d.endpoint, "answered 410 Gone").await?;
        }
        let reason = give_up_reason(verdict, disabled, failure.attempts, outcome);
        // After a hand-off the endpoint is disabled by now, so the retry queued then is
        // dropped when it comes back: this dead letter is the only one.
        let event_type = d.event.event_type.as_str();
        let (publisher, namespace) = (&self.publisher, &self.namespace);
        let (properties, body) = (d.properties, d.body);
        retry::dead_letter(
            publisher,
            namespace,
            event_type,
            properties,
            body,
            Some(failure),
            &reason,
        )
        .await?;
        warn!(message = "Delivery failed for good; dead-lettered.", %reason, event_id = %d.event.id, endpoint_id = %d.endpoint.id, attempt = failure.attempts);
        let about = about(d, failure.attempts, outcome);
        self.tell_exhausted(d.endpoint, about, &reason).await;
        // Counted once told: the count says the whole give-up is over.
        self.metrics
            .delivery(event_type, DeliveryResult::DeadLettered);
        Ok(())
    }

    /// `message.attempt.exhausted`, unless the endpoint was told of one within the storm
    /// bound's window (the count of those held back rides on the next).
    pub(crate) async fn tell_exhausted(&self, endpoint: &Endpoint, about: About<'_>, reason: &str) {
        if endpoint.tenant == *self.notices.operator() {
            return;
        }
        let now_ms = (time::OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000) as i64;
        match self.exhausted.pass(&endpoint.id, now_ms).await {
            Ok(Some(suppressed)) => {
                (self
                    .notices
                    .attempt_exhausted(endpoint, about, reason, suppressed))
                .await;
            }
            Ok(None) => {}
            Err(error) => {
                warn!(message = "Cannot reach Redis to tell of an exhausted event; not told.", %error, event_id = %about.event_id, endpoint_id = %endpoint.id);
            }
        }
    }

    /// Another attempt for this (endpoint, event) is in flight right now (a redelivery racing
    /// the original, or a second publish). Waiting one tier and looking again, without
    /// counting an attempt, keeps the two from both POSTing, and loses nothing if the other
    /// attempt fails.
    pub(crate) async fn check_back_later(&self, d: &Delivery<'_>) -> Result<()> {
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
    pub(crate) async fn defer(
        &self,
        reason: DeferReason,
        wait: Duration,
        d: &Delivery<'_>,
    ) -> Result<()> {
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
            match self
                .dedup
                .commit(&endpoint.id, event.dedup_key(), held, None)
                .await
            {
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
    pub(crate) async fn disable(&self, endpoint: &Endpoint, reason: &str) -> Result<()> {
        let url = hookfleet_core::target::redact_url(&endpoint.url);
        warn!(message = "Disabling the endpoint.", %reason, %url, endpoint_id = %endpoint.id);
        (self.notices)
            .endpoint_disabled(endpoint, DisabledBy::Breaker, reason)
            .await?;
        match (self.store)
            .set_enabled(&endpoint.id, false, DisabledBy::Breaker)
            .await
        {
            // Removed meanwhile: nothing left to disable.
            Ok(_) | Err(hookfleet_store::Error::NotFound(_)) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    /// Records the attempt's outcome with the circuit breaker and tells the platform what it
    /// means: `message.attempt.failing` at the threshold, `message.attempt.recovered` after;
    /// an endpoint failing for `HOOKFLEET_DISABLE_AFTER` is disabled. Whether it was.
    pub(crate) async fn hear(&self, endpoint: &Endpoint, about: About<'_>) -> Result<bool> {
        let aftermath = self.record(endpoint, about.outcome).await;
        if let Some(streak) = aftermath.failing {
            (self.notices.attempt_failing(endpoint, about, streak)).await;
        }
        if let Some(streak) = aftermath.recovered {
            (self.notices.attempt_recovered(endpoint, about, streak)).await;
        }
        if aftermath.disable {
            let window = humantime::format_duration(self.breaker.disable_after());
            let reason = format!("failing without a break for {window}");
            self.disable(endpoint, &reason).await?;
        }
        Ok(aftermath.disable)
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

/// The delivery a notice is about.
fn about<'a>(d: &Delivery<'a>, attempt: u32, outcome: &'a AttemptOutcome) -> About<'a> {
    About {
        event_id: &d.event.id,
        event_type: &d.event.event_type,
        attempt,
        outcome,
    }
}

/// Why an event is given up at an endpoint, for its dead letter; `disabled` when the endpoint
/// was disabled for failing without a break.
pub(crate) fn give_up_reason(
    verdict: Verdict,
    disabled: bool,
    attempts: u32,
    outcome: &AttemptOutcome,
) -> String {
    if disabled {
        return "endpoint disabled after failing without a break".to_owned();
    }
    match verdict {
        Verdict::GiveUp { disable: true } => {
            "endpoint answered 410 Gone; endpoint disabled".to_owned()
        }
        Verdict::GiveUp { disable: false } => format!("not retried: {}", outcome.describe()),
        _ => format!("gave up after {attempts} attempts"),
    }
}
