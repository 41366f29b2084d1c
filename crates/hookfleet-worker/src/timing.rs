//! Every time limit of a worker, derived from the delivery timeout in one place, so that the
//! rules between them hold by construction and are tested.

use std::time::Duration;

/// How long a publish (retry, deferral, dead letter) keeps trying through broker trouble
/// before the message goes back to the queue instead.
const PUBLISH_PATIENCE: Duration = Duration::from_secs(10);

/// See [`Timeouts::rate_horizon`].
const RATE_HORIZON: Duration = Duration::from_secs(1);

/// The worker's time limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timeouts {
    /// One HTTP attempt (`HOOKFLEET_DELIVERY_TIMEOUT`).
    pub delivery: Duration,
    /// How long a dedup claim lives if its holder dies: past the attempt and the commit, so no
    /// other worker POSTs the same event while an attempt may still succeed.
    pub claim_ttl: Duration,
    /// How long a 2xx keeps trying to be recorded while Redis is away.
    pub commit_patience: Duration,
    /// How long a confirmed publish keeps trying.
    pub publish_patience: Duration,
    /// How long a half-open circuit's probe holds it: one attempt plus a margin.
    pub probe_hold: Duration,
    /// How long after an endpoint last freed a slot its waiting deliveries keep waiting for
    /// one before they are deferred. A backlog for one fast endpoint (a few ms per request)
    /// drains its waiters well within it, so its deliveries are not sent round the delay
    /// queues; a stalled endpoint's give up, at once once it has been stalled this long.
    pub slot_grace: Duration,
    /// How long an endpoint at its cap may free no slot, while the rest of the worker frees
    /// some, before it counts as stalled: its deliveries over the cap are then deferred at
    /// once instead of waiting out the grace.
    pub slot_stall: Duration,
    /// How long a delivery must have waited on its receiver (or on a stalled endpoint's
    /// slot) before its message may be handed off when finished messages wait behind it
    /// ([`crate::handoff`]). Longer than most receivers take, so that a hand-off, which costs
    /// a publish, is kept for the slow and the dead.
    pub hand_off_after: Duration,
    /// How far ahead a rate-limited delivery takes its endpoint's turn and waits for it
    /// (`hookfleet_store::rate`); beyond it, it is deferred. Longer would keep a backlog's
    /// endpoint busier between deferrals (they come back after 1 to 1.3 s), but a stopping
    /// worker must still finish a waiting delivery within its drain.
    pub rate_horizon: Duration,
    /// Longest a message may take from receipt to ack or requeue before it is abandoned.
    pub message_deadline: Duration,
    /// How long a stopping worker lets in-flight deliveries finish (the contract: exit within
    /// the delivery timeout plus 2 s).
    pub drain: Duration,
    /// How long a stopping worker then waits for the last attempt log entries to be written.
    pub journal_flush: Duration,
}

impl Timeouts {
    pub fn new(delivery: Duration) -> Self {
        let commit_patience = Duration::from_secs(8);
        Self {
            delivery,
            claim_ttl: delivery + commit_patience + Duration::from_secs(2),
            commit_patience,
            publish_patience: PUBLISH_PATIENCE,
            probe_hold: delivery + Duration::from_secs(2),
            slot_grace: Duration::from_millis(500),
            slot_stall: (delivery / 4).min(Duration::from_millis(100)),
            hand_off_after: (delivery / 4).min(Duration::from_millis(100)),
            rate_horizon: RATE_HORIZON,
            // A turn, claim, POST, commit or a confirmed publish, and a breaker update, with
            // room.
            message_deadline: RATE_HORIZON + delivery * 2 + commit_patience + PUBLISH_PATIENCE,
            drain: delivery + Duration::from_millis(1500),
            journal_flush: Duration::from_millis(300),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_limits_keep_their_order_for_any_delivery_timeout() {
        for secs in [1, 5, 30, 300] {
            let t = Timeouts::new(Duration::from_secs(secs));
            // A claim outlives the attempt and the commit's retries.
            assert!(t.claim_ttl > t.delivery + t.commit_patience, "{t:?}");
            // A message is abandoned only after its attempt and its outcome had their time.
            assert!(
                t.message_deadline >= t.delivery + t.commit_patience,
                "{t:?}"
            );
            assert!(
                t.message_deadline >= t.delivery + t.publish_patience,
                "{t:?}"
            );
            // The probe's hold covers its attempt.
            assert!(t.probe_hold > t.delivery, "{t:?}");
            // Waiting for a slot is shorter than one attempt.
            assert!(t.slot_grace < t.delivery, "{t:?}");
            // A hand-off comes well within the attempt, and no later than the grace.
            assert!(t.hand_off_after <= t.delivery / 4, "{t:?}");
            assert!(t.hand_off_after <= t.slot_grace, "{t:?}");
            assert!(t.slot_stall < t.slot_grace, "{t:?}");
            // Stopping honours the contract.
            assert!(
                t.drain + t.journal_flush < t.delivery + Duration::from_secs(2),
                "{t:?}"
            );
            assert!(t.drain > t.delivery, "{t:?}");
            // A delivery waiting for its rate-limit turn finishes within the drain.
            assert!(t.drain >= t.rate_horizon + t.delivery, "{t:?}");
            assert!(
                t.message_deadline >= t.rate_horizon + t.delivery + t.commit_patience,
                "{t:?}"
            );
        }
    }
}
