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

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use tokio::time::Instant;

use crate::acks::{Settle, Settler};

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
