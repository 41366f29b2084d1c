//! One endpoint's delivery of one event, stage by stage, as [`Deliverer::deliver`] reads:
//! admit (the endpoint's cap and circuit) → claim (de-duplication) → sign and POST (with the
//! hand-off of [`crate::handoff`] on a slow receiver) → record the attempt → settle
//! ([`crate::settle`]: commit, retry, dead-letter). A stage that ends the delivery early
//! (deferred, already delivered, another attempt in flight) settles it itself and says so
//! with `None`.

use bytes::Bytes;
use futures_util::future::Either;
use hookfleet_core::Endpoint;
use hookfleet_core::attempt::{Attempt, Made, Source};
use hookfleet_core::policy::Verdict;
use hookfleet_history::AttemptRecord;
use hookfleet_store::{Claim, Held, Turn};
use lapin::BasicProperties;
use std::time::Duration;
use tokio::time::Instant;
use tracing::debug;

use crate::Result;
use crate::breaker::Admission;
use crate::handler::Deliverer;
use crate::handoff::{Settlement, Share};
use crate::inbound::InboundEvent;
use crate::limits::Slot;
use crate::metrics::{DeferReason, DeliveryResult, Series};
use crate::notice::About;
use crate::sender::Sent;

/// One endpoint's delivery of one message.
pub(crate) struct Delivery<'a> {
    pub event: &'a InboundEvent,
    pub endpoint: &'a Endpoint,
    pub properties: &'a BasicProperties,
    pub body: &'a Bytes,
    pub message: &'a Settlement,
    /// Its part in the message's settlement.
    pub share: &'a Share<'a>,
    /// Its event is the whole message (not one of a bundle's), so a hand-off can ack it.
    pub whole: bool,
    /// Its event type's metrics.
    pub series: &'a Series,
}

impl Deliverer {
    /// One endpoint's attempt, from admission to a durable outcome.
    #[tracing::instrument(level = "debug", skip_all, fields(endpoint_id = %d.endpoint.id, attempt = d.event.attempts + 1))]
    pub(crate) async fn deliver(&self, d: &Delivery<'_>) -> Result<()> {
        let Some(slot) = self.admit(d).await? else {
            return Ok(());
        };
        let Some(held) = self.claim(d).await? else {
            return Ok(());
        };
        let (sent, handed_off) = {
            let _inflight = self.metrics.inflight();
            let post = self.sender.post(d.endpoint, &d.event.id, d.body.clone());
            self.attempt(post, d).await
        };
        // The cap is on requests in flight: recording the outcome holds no slot.
        drop(slot);
        self.record_attempt(d, &sent);
        match sent.outcome.verdict() {
            Verdict::Delivered => self.settle_delivered(d, &held, &sent).await,
            verdict => {
                let failed = (&held, &sent, verdict, handed_off);
                self.settle_failed(d, failed).await
            }
        }
    }

    /// Isolation first: a busy or failing endpoint's delivery waits in a delay queue, not in
    /// this worker, and uses no attempt; a rate-limited one waits here for its turn when it
    /// comes within the horizon. The slot, or `None` once deferred.
    async fn admit(&self, d: &Delivery<'_>) -> Result<Option<Slot>> {
        // Only a whole message can be acked early: a bundle's events wait their turn. Only a
        // delivery that has waited `hand_off_after` listens for the ask at all: a fast
        // endpoint's line is hundreds long, and every ask would wake each of them.
        let hurry = if d.whole {
            let waited = self.timeouts.hand_off_after;
            Either::Left(d.message.asked_after(Instant::now(), waited))
        } else {
            Either::Right(std::future::pending())
        };
        let cap = d.endpoint.max_in_flight.map(|n| n as usize);
        let Some(slot) = self.slots.take(&d.endpoint.id, cap, hurry).await else {
            // Its slots free up within one delivery timeout at the latest: looking again
            // sooner would only send a dead endpoint's deliveries round and round.
            let busy = DeferReason::EndpointBusy;
            self.defer(busy, self.timeouts.delivery, d).await?;
            return Ok(None);
        };
        if let Admission::Defer(wait, reason) = self.breaker.admit(&d.endpoint.id).await? {
            self.defer(reason, wait, d).await?;
            return Ok(None);
        }
        if let Some(per_second) = d.endpoint.rate_limit {
            let horizon = self.timeouts.rate_horizon;
            match self.rates.take(&d.endpoint.id, per_second, horizon).await? {
                Turn::After(wait) if wait.is_zero() => {}
                Turn::After(wait) => tokio::time::sleep(wait).await,
                Turn::Later => {
                    // Back in about a second, when turns within the horizon are free again.
                    self.defer(DeferReason::RateLimit, Duration::ZERO, d)
                        .await?;
                    return Ok(None);
                }
            }
        }
        Ok(Some(slot))
    }

    /// The claim on (endpoint, event), or `None` when the event was delivered there already or
    /// another attempt is in flight (then it is looked at again later).
    async fn claim(&self, d: &Delivery<'_>) -> Result<Option<Held>> {
        match self
            .dedup
            .claim(&d.endpoint.id, d.event.dedup_key())
            .await?
        {
            Claim::Acquired(held) => Ok(Some(held)),
            Claim::Done => {
                debug!(message = "Already delivered; skipping.");
                let event_type = d.event.event_type.as_str();
                self.metrics.delivery(event_type, DeliveryResult::Duplicate);
                Ok(None)
            }
            Claim::Busy => {
                self.check_back_later(d).await?;
                Ok(None)
            }
        }
    }

    fn record_attempt(&self, d: &Delivery<'_>, sent: &Sent) {
        let about = About {
            event_id: &d.event.id,
            event_type: &d.event.event_type,
            attempt: d.event.attempts + 1,
            outcome: &sent.outcome,
        };
        self.log_attempt(d.endpoint, d.series, about, sent);
    }

    /// The attempt in its metrics and, in the background, the history when there is one, else
    /// the endpoint's attempt log.
    pub(crate) fn log_attempt(
        &self,
        endpoint: &Endpoint,
        series: &Series,
        about: About<'_>,
        sent: &Sent,
    ) {
        series.attempt(&sent.outcome, sent.latency.as_secs_f64());
        let made = || {
            Attempt::new(Made {
                event_id: about.event_id.as_str(),
                event_type: about.event_type.as_str(),
                attempt: about.attempt,
                source: Source::Worker,
                outcome: &sent.outcome,
                excerpt: &sent.excerpt,
                latency: sent.latency,
                timeout: self.timeouts.delivery,
            })
        };
        // One source of truth: with a history, the attempt log is read from it.
        let Some(history) = &self.history else {
            return self.journal.write(&endpoint.id, made);
        };
        history.attempt(AttemptRecord {
            tenant: endpoint.tenant.to_string(),
            endpoint_id: endpoint.id.to_string(),
            attempt: made(),
        });
    }
}
