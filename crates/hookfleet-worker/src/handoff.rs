//! One message's settlement, which a slow delivery can bring forward: a *hand-off*.
//!
//! A message is acked once the outcome of each of its deliveries is durable. Normally that is
//! when the last one ends; but a delivery waiting on a slow or dead receiver would then hold
//! back every finished message behind it, which the broker must be told of one ack at a time
//! (see [`crate::acks`]). So when the settler asks for a message, each of its deliveries that
//! has waited on its receiver for [`Timeouts::hand_off_after`](crate::timing::Timeouts), or
//! whose endpoint is stalled (see [`crate::limits`]), makes its outcome durable ahead of time: it publishes the retry that a failure would publish (the
//! attempt counted, the tier a timeout would take) and lets the attempt go on. A 2xx then
//! marks the event delivered, so the retry is skipped as a duplicate when it comes back; a
//! failure publishes nothing more. A delivery still waiting for a slot at a stalled endpoint is
//! deferred at once instead of at the end of the grace.
//!
//! Either way nothing is lost (the retry is confirmed before the ack) and nothing is sent twice
//! (the claim and the mark stand between the attempt and the retry).

use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use hookfleet_core::policy::AttemptOutcome;
use tokio::time::Instant;
use tracing::{debug, warn};

use crate::acks::{self, Settle, Settler};
use crate::delivery::Delivery;
use crate::handler::Deliverer;
use crate::retry::{self, Failure};
use crate::sender::Sent;

/// One message: acked when every delivery's outcome is durable, or requeued; once.
#[derive(Debug)]
pub struct Settlement {
    settler: Settler,
    tag: u64,
    /// Deliveries whose outcome is not durable yet, plus one until all are counted.
    outstanding: AtomicUsize,
    settled: AtomicBool,
}

impl Settlement {
    pub fn new(settler: Settler, tag: u64) -> Self {
        Self {
            settler,
            tag,
            outstanding: AtomicUsize::new(1),
            settled: AtomicBool::new(false),
        }
    }

    /// A settlement that goes nowhere and is never asked for, for a message handled outside a
    /// consuming session (tests).
    pub fn detached() -> Self {
        Self::new(Settler::new().0, 0)
    }

    /// The message has `n` more deliveries.
    pub fn expect(&self, n: usize) {
        self.outstanding.fetch_add(n, Ordering::SeqCst);
    }

    /// Every delivery is counted: the message may now be acked as soon as each is durable.
    /// A bundle never says so (its events count theirs one by one), so it is acked at the end.
    pub fn expected_all(&self) {
        self.count_down();
    }

    fn count_down(&self) {
        if self.outstanding.fetch_sub(1, Ordering::SeqCst) == 1 {
            self.ack();
        }
    }

    /// One delivery's share: it says once that its outcome is durable.
    pub fn share(&self) -> Share<'_> {
        Share {
            settlement: self,
            done: AtomicBool::new(false),
        }
    }

    /// Acks the message, unless it was settled before.
    pub fn ack(&self) {
        self.settle(Settle::Ack(self.tag));
    }

    /// Returns the message to its queue, unless it was settled before (acked after a
    /// hand-off: its retries are queued already).
    pub fn requeue(&self) {
        self.settle(Settle::Requeue(self.tag));
    }

    /// Whether the message was acked or requeued.
    pub fn is_settled(&self) -> bool {
        self.settled.load(Ordering::SeqCst)
    }

    /// Resolves once the settler asks for this message; never for a detached one.
    async fn asked(&self) {
        self.settler.asked(self.tag).await
    }

    /// Resolves once this message is asked for and `since` is at least `age` ago.
    pub async fn asked_after(&self, since: Instant, age: std::time::Duration) {
        tokio::time::sleep_until(since + age).await;
        self.asked().await
    }

    fn settle(&self, settle: Settle) {
        if !self.settled.swap(true, Ordering::SeqCst) {
            self.settler.settle(settle);
        }
    }
}

/// One delivery's part in its message's settlement.
#[derive(Debug)]
pub struct Share<'a> {
    settlement: &'a Settlement,
    done: AtomicBool,
}

impl Share<'_> {
    /// This delivery's outcome is durable; the message is acked when every one's is.
    pub fn durable(&self) {
        if !self.done.swap(true, Ordering::SeqCst) {
            self.settlement.count_down();
        }
    }
}

impl Deliverer {
    /// Waits for the attempt's answer. If its message is asked for meanwhile (finished
    /// messages wait behind it) once the attempt has taken `hand_off_after`, or its endpoint
    /// is stalled, the delivery is handed off first: the retry a failure would publish is
    /// published now, so the message can be acked while the attempt goes on. Returns the
    /// answer and whether it was.
    pub(crate) async fn attempt(
        &self,
        post: impl Future<Output = Sent>,
        d: &Delivery<'_>,
    ) -> (Sent, bool) {
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
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::acks::Settle;

    fn ack_tag(settle: Option<Settle>) -> Option<u64> {
        match settle {
            Some(Settle::Ack(tag)) => Some(tag),
            _ => None,
        }
    }

    #[test]
    fn a_message_is_acked_once_every_delivery_is_durable_and_only_once() {
        let (settler, mut inbox) = Settler::new();
        let message = Settlement::new(settler, 7);
        message.expect(2);
        let (a, b) = (message.share(), message.share());
        a.durable();
        a.durable();
        b.durable();
        assert!(
            !message.is_settled(),
            "one share counts once; not all counted yet"
        );
        message.expected_all();
        assert_eq!(ack_tag(inbox.try_next()), Some(7));
        message.ack();
        message.requeue();
        assert!(inbox.try_next().is_none(), "settled once");
    }

    #[test]
    fn a_requeued_message_is_not_acked_later() {
        let (settler, mut inbox) = Settler::new();
        let message = Settlement::new(settler, 3);
        message.expect(1);
        message.expected_all();
        message.requeue();
        message.share().durable();
        assert!(matches!(inbox.try_next(), Some(Settle::Requeue(3))));
        assert!(inbox.try_next().is_none());
    }
}
