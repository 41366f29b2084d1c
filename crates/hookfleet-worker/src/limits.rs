//! How much one worker holds at once: messages, their body bytes and their deliveries in total
//! (`HOOKFLEET_MAX_INFLIGHT` messages and as many deliveries, `HOOKFLEET_MAX_INFLIGHT_BYTES`),
//! and deliveries per endpoint (`HOOKFLEET_ENDPOINT_CONCURRENCY`).
//!
//! A delivery waiting on a slow receiver costs a socket and a few KiB, so the totals can be in
//! the thousands. The per-endpoint cap is what keeps one slow or dead endpoint from taking them
//! all: a delivery over it waits at most a short grace for a slot (a fast endpoint frees one
//! in milliseconds), then it is deferred through a delay queue instead of waiting here; and it
//! does not wait at all at a *stalled* endpoint, one that has freed no slot for a while when
//! the rest of the worker has.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hookfleet_core::EndpointId;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
// tokio's clock, so that tests can pause and advance it.
use tokio::time::Instant;

/// The worker-wide budget of messages and bytes.
#[derive(Debug, Clone)]
pub struct Budget {
    messages: Arc<Semaphore>,
    bytes: Arc<Semaphore>,
    max_bytes: usize,
}

/// One message's share of the budget, returned on drop.
#[derive(Debug)]
pub struct Held {
    _message: OwnedSemaphorePermit,
    _bytes: OwnedSemaphorePermit,
}

impl Budget {
    pub fn new(max_messages: usize, max_bytes: usize) -> Self {
        Self {
            messages: Arc::new(Semaphore::new(max_messages)),
            bytes: Arc::new(Semaphore::new(max_bytes)),
            max_bytes,
        }
    }

    /// Waits for room for one more message.
    pub async fn message(&self) -> OwnedSemaphorePermit {
        self.messages
            .clone()
            .acquire_owned()
            .await
            .expect("the budget's semaphores are never closed")
    }

    /// Waits for room for `len` body bytes (a body larger than the whole budget waits for all
    /// of it), and pairs them with the message's permit.
    pub async fn bytes(&self, message: OwnedSemaphorePermit, len: usize) -> Held {
        let want = u32::try_from(len.clamp(1, self.max_bytes)).unwrap_or(u32::MAX);
        let bytes = self
            .bytes
            .clone()
            .acquire_many_owned(want)
            .await
            .expect("the budget's semaphores are never closed");
        Held {
            _message: message,
            _bytes: bytes,
        }
    }
}

/// The worker-wide budget of deliveries (`HOOKFLEET_MAX_INFLIGHT`): a message fanning out to
/// `n` endpoints takes `n` at once, so a fan-out does not multiply what the worker holds.
#[derive(Debug, Clone)]
pub struct Deliveries {
    permits: Arc<Semaphore>,
    max: usize,
}

impl Deliveries {
    pub fn new(max: usize) -> Self {
        Self {
            permits: Arc::new(Semaphore::new(max)),
            max,
        }
    }

    /// Waits until `n` deliveries may start (all of the budget, for a fan-out larger than
    /// it). Taken in one piece, so messages never hold part of it while waiting for the rest.
    pub async fn take(&self, n: usize) -> OwnedSemaphorePermit {
        let n = u32::try_from(n.clamp(1, self.max)).unwrap_or(u32::MAX);
        self.permits
            .clone()
            .acquire_many_owned(n)
            .await
            .expect("the budget's semaphores are never closed")
    }
}

/// In-flight deliveries per endpoint, in this worker: one semaphore of `cap` permits per
/// endpoint with work in flight, and when it last freed a slot.
#[derive(Debug)]
pub struct EndpointSlots {
    cap: usize,
    /// How long a delivery may wait for a slot before it is deferred instead, counted from
    /// the last time the endpoint freed one.
    grace: Duration,
    /// How long an endpoint at its cap may free no slot, while the rest of the worker frees
    /// some, before it counts as stalled and its deliveries over the cap go at once.
    stall: Duration,
    lines: Arc<Mutex<Lines>>,
}

/// Every endpoint with work in flight, and when the worker last freed a slot anywhere.
#[derive(Debug)]
struct Lines {
    endpoints: HashMap<EndpointId, Busy>,
    any_freed: Instant,
}

/// One endpoint's slots.
#[derive(Debug)]
struct Busy {
    semaphore: Arc<Semaphore>,
    /// Its permits: the worker's cap, or the endpoint's own `max_in_flight` below it.
    cap: usize,
    /// When a delivery to it last finished (or it got its first).
    last_freed: Instant,
}

impl Lines {
    /// Whether `endpoint` (at its cap) is stalled: it has freed no slot for `stall`, and the
    /// worker freed one elsewhere since, or finished messages wait behind this delivery
    /// (`hurried`). Comparing with the rest of the worker keeps a worker that was itself held
    /// up (a CPU taken by other processes, a long poll) from taking a fast endpoint for
    /// stalled: every endpoint's slots would look just as old.
    fn stalled(&self, endpoint: &EndpointId, stall: Duration, hurried: bool) -> bool {
        let Some(busy) = self.endpoints.get(endpoint) else {
            return false;
        };
        let since = match hurried {
            true => Instant::now(),
            false => self.any_freed,
        };
        since.saturating_duration_since(busy.last_freed) >= stall
    }
}

/// A delivery's slot at its endpoint, freed on drop.
#[derive(Debug)]
pub struct Slot {
    endpoint: EndpointId,
    /// `None` only while dropping.
    permit: Option<OwnedSemaphorePermit>,
    lines: Arc<Mutex<Lines>>,
}

impl EndpointSlots {
    pub fn new(cap: usize, grace: Duration, stall: Duration) -> Self {
        Self {
            cap,
            grace,
            stall,
            lines: Arc::new(Mutex::new(Lines {
                endpoints: HashMap::new(),
                any_freed: Instant::now(),
            })),
        }
    }

    /// A slot at `endpoint`; `None` when the endpoint keeps all `cap` slots busy and frees
    /// none within the grace of its last freed one. A fast endpoint frees a slot within
    /// milliseconds, so its deliveries go ahead; a slow or dead one's are deferred, and at
    /// once when it is stalled: each would otherwise hold its message for the grace, and the
    /// finished messages behind it their prefetch slots. Once `hurry` resolves (finished
    /// messages wait behind this one), the endpoint counts as stalled after `stall` without
    /// a freed slot whatever the rest of the worker does.
    ///
    /// `own` is the endpoint's `max_in_flight`, if it has one: the cap is then the lower of
    /// the two. A changed cap holds for deliveries that start after the change.
    pub async fn take(
        &self,
        endpoint: &EndpointId,
        own: Option<usize>,
        hurry: impl Future<Output = ()>,
    ) -> Option<Slot> {
        let (semaphore, last_freed) = {
            let mut lines = lock(&self.lines);
            let cap = own.map_or(self.cap, |own| own.clamp(1, self.cap));
            let fresh = || Busy {
                semaphore: Arc::new(Semaphore::new(cap)),
                cap,
                last_freed: Instant::now(),
            };
            let entry = lines
                .endpoints
                .entry(endpoint.clone())
                .or_insert_with(fresh);
            if entry.cap != cap {
                // Slots taken under the old cap free their old permits, and are forgotten.
                *entry = Busy {
                    last_freed: entry.last_freed,
                    ..fresh()
                };
            }
            (entry.semaphore.clone(), entry.last_freed)
        };
        let permit = match semaphore.clone().try_acquire_owned() {
            Ok(permit) => Some(permit),
            Err(_) if self.stalled(endpoint) => None,
            Err(_) => self.wait(endpoint, semaphore, last_freed, hurry).await,
        };
        let Some(permit) = permit else {
            forget_if_idle(&mut lock(&self.lines), endpoint);
            return None;
        };
        Some(Slot {
            endpoint: endpoint.clone(),
            permit: Some(permit),
            lines: self.lines.clone(),
        })
    }

    /// Whether `endpoint` has freed no slot for the stall while the rest of the worker freed
    /// some: its deliveries in flight are not worth waiting on longer.
    pub fn stalled(&self, endpoint: &EndpointId) -> bool {
        lock(&self.lines).stalled(endpoint, self.stall, false)
    }

    /// Waits for a permit until the grace after `last_freed`, or until the endpoint is
    /// stalled, read afresh each time: a delivery far back in a fast endpoint's line waits
    /// long, though slots free up all the while, and must not be taken for stuck behind a
    /// dead one.
    async fn wait(
        &self,
        endpoint: &EndpointId,
        semaphore: Arc<Semaphore>,
        last_freed: Instant,
        hurry: impl Future<Output = ()>,
    ) -> Option<OwnedSemaphorePermit> {
        let permit = semaphore.acquire_owned();
        let deadline = tokio::time::sleep_until(last_freed + self.grace);
        let stall_check = tokio::time::sleep_until(last_freed + self.stall);
        tokio::pin!(permit, deadline, hurry, stall_check);
        let mut hurried = false;
        loop {
            tokio::select! {
                // A free slot wins over any timer that expired meanwhile.
                biased;
                permit = &mut permit => return permit.ok(),
                () = &mut deadline => return None,
                () = &mut hurry, if !hurried => {
                    hurried = true;
                    stall_check.as_mut().reset(Instant::now());
                }
                () = &mut stall_check => {
                    // Deliveries that finished meanwhile free their slots first.
                    tokio::task::yield_now().await;
                    let lines = lock(&self.lines);
                    if lines.stalled(endpoint, self.stall, hurried) {
                        return None;
                    }
                    let freed = lines.endpoints.get(endpoint).map_or(last_freed, |b| b.last_freed);
                    // Not stalled: it freed a slot within `stall`, or the rest of the worker
                    // is as quiet as it is. Look again when it could be.
                    let next = (freed + self.stall).max(Instant::now() + self.stall / 2);
                    stall_check.as_mut().reset(next);
                }
            }
        }
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut lines = lock(&self.lines);
        drop(self.permit.take());
        let now = Instant::now();
        lines.any_freed = now;
        if let Some(entry) = lines.endpoints.get_mut(&self.endpoint) {
            entry.last_freed = now;
        }
        forget_if_idle(&mut lines, &self.endpoint);
    }
}

/// Only endpoints with work in flight (or waiting) take memory: an entry goes when the map
/// holds its last handle and every permit is back.
fn forget_if_idle(lines: &mut Lines, endpoint: &EndpointId) {
    if let Some(entry) = lines.endpoints.get(endpoint)
        && Arc::strong_count(&entry.semaphore) == 1
        && entry.semaphore.available_permits() == entry.cap
    {
        lines.endpoints.remove(endpoint);
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // A panic while holding this lock leaves valid counts behind: keep using them.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn never() -> std::future::Pending<()> {
        std::future::pending()
    }

    #[tokio::test(start_paused = true)]
    async fn an_endpoint_gets_at_most_its_cap_and_waits_only_the_grace() {
        let slots = EndpointSlots::new(2, Duration::from_millis(50), Duration::from_millis(20));
        let a: EndpointId = "ep_a".parse().unwrap();
        let b: EndpointId = "ep_b".parse().unwrap();
        let first = slots.take(&a, None, never()).await.unwrap();
        let _second = slots.take(&a, None, never()).await.unwrap();
        let started = tokio::time::Instant::now();
        assert!(
            slots.take(&a, None, never()).await.is_none(),
            "a is at its cap"
        );
        assert_eq!(
            started.elapsed(),
            Duration::from_millis(50),
            "after the grace"
        );
        assert!(
            slots.take(&b, None, never()).await.is_some(),
            "b is not held up by a"
        );
        drop(first);
        assert!(
            slots.take(&a, None, never()).await.is_some(),
            "a freed slot is taken"
        );
    }

    /// `max_in_flight` lowers the cap (never raises it); a change holds for what comes next.
    #[tokio::test(start_paused = true)]
    async fn an_endpoints_own_cap_is_the_lower_one() {
        let slots = EndpointSlots::new(3, Duration::from_millis(50), Duration::from_millis(20));
        let a: EndpointId = "ep_a".parse().unwrap();
        let first = slots.take(&a, Some(1), never()).await.unwrap();
        assert!(
            slots.take(&a, Some(1), never()).await.is_none(),
            "own cap 1"
        );
        drop(first);
        let many: Vec<Slot> =
            futures_util::future::join_all((0..3).map(|_| slots.take(&a, Some(100), never())))
                .await
                .into_iter()
                .map(Option::unwrap)
                .collect();
        assert!(
            slots.take(&a, Some(100), never()).await.is_none(),
            "the worker's 3"
        );
        drop(many);
        assert!(
            lock(&slots.lines).endpoints.is_empty(),
            "forgotten when idle"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_stalled_endpoint_is_deferred_at_once() {
        let slots = EndpointSlots::new(2, Duration::from_millis(50), Duration::from_millis(20));
        let dead: EndpointId = "ep_dead".parse().unwrap();
        let _held = [
            slots.take(&dead, None, never()).await,
            slots.take(&dead, None, never()).await,
        ];
        // The first over the cap waits out the grace...
        let started = tokio::time::Instant::now();
        assert!(slots.take(&dead, None, never()).await.is_none());
        assert_eq!(started.elapsed(), Duration::from_millis(50));
        // ...after which nothing has been freed for the grace: no more waiting.
        let started = tokio::time::Instant::now();
        assert!(slots.take(&dead, None, never()).await.is_none());
        assert_eq!(
            started.elapsed(),
            Duration::ZERO,
            "a stalled endpoint costs no wait"
        );

        // An endpoint that keeps freeing slots is waited for, as before.
        let fast: EndpointId = "ep_fast".parse().unwrap();
        let first = slots.take(&fast, None, never()).await.unwrap();
        let _second = slots.take(&fast, None, never()).await.unwrap();
        tokio::time::sleep(Duration::from_millis(200)).await;
        let waiting = slots.take(&fast, None, never());
        let free = async {
            tokio::time::sleep(Duration::from_millis(10)).await;
            drop(first);
        };
        // Stalled by now (200 ms without a freed slot): deferred at once, before the free.
        let (slot, ()) = tokio::join!(waiting, free);
        assert!(slot.is_none());
        // Having just freed one, it is waited for again.
        let third = slots.take(&fast, None, never()).await.unwrap();
        let waiting = slots.take(&fast, None, never());
        let free = async {
            tokio::time::sleep(Duration::from_millis(10)).await;
            drop(third);
        };
        let (slot, ()) = tokio::join!(waiting, free);
        assert!(slot.is_some(), "a slot freed within the grace is taken");
    }

    #[tokio::test(start_paused = true)]
    async fn an_endpoint_quiet_while_others_free_slots_is_deferred_at_the_stall() {
        let ms = Duration::from_millis;
        let slots = EndpointSlots::new(1, ms(500), ms(100));
        let dead: EndpointId = "ep_dead".parse().unwrap();
        let healthy: EndpointId = "ep_healthy".parse().unwrap();
        let _hung = slots.take(&dead, None, never()).await.unwrap();
        // The healthy endpoint frees a slot every 10 ms.
        let traffic = async {
            for _ in 0..30 {
                let slot = slots.take(&healthy, None, never()).await;
                tokio::time::sleep(ms(10)).await;
                drop(slot);
            }
        };
        // Waiting from 30 ms: deferred once the dead one has freed nothing for 100 ms while
        // the healthy one did, not at the 500 ms grace.
        let waiter = async {
            tokio::time::sleep(ms(30)).await;
            let started = tokio::time::Instant::now();
            let slot = slots.take(&dead, None, never()).await;
            (slot.is_none(), started.elapsed())
        };
        let ((deferred, waited), ()) = tokio::join!(waiter, traffic);
        assert!(deferred);
        assert_eq!(
            waited,
            ms(70),
            "at the stall, counted from the last freed slot"
        );
        // Stalled now: the next one goes at once.
        let started = tokio::time::Instant::now();
        assert!(slots.take(&dead, None, never()).await.is_none());
        assert_eq!(started.elapsed(), Duration::ZERO);
    }

    #[tokio::test(start_paused = true)]
    async fn an_endpoint_is_stalled_once_others_free_slots_long_after_it() {
        let ms = Duration::from_millis;
        let slots = EndpointSlots::new(4, ms(500), ms(100));
        let dead: EndpointId = "ep_dead".parse().unwrap();
        let healthy: EndpointId = "ep_healthy".parse().unwrap();
        let _hung = slots.take(&dead, None, never()).await.unwrap();
        assert!(!slots.stalled(&dead), "nothing freed anywhere yet");
        tokio::time::sleep(ms(99)).await;
        drop(slots.take(&healthy, None, never()).await);
        assert!(!slots.stalled(&dead), "99 ms is within the stall");
        tokio::time::sleep(ms(1)).await;
        drop(slots.take(&healthy, None, never()).await);
        assert!(slots.stalled(&dead));
        assert!(!slots.stalled(&healthy), "it just freed one");
    }

    #[tokio::test(start_paused = true)]
    async fn a_worker_quiet_everywhere_does_not_take_an_endpoint_for_stalled() {
        let ms = Duration::from_millis;
        let slots = EndpointSlots::new(1, ms(500), ms(100));
        let fast: EndpointId = "ep_fast".parse().unwrap();
        let other: EndpointId = "ep_other".parse().unwrap();
        let held = slots.take(&fast, None, never()).await.unwrap();
        let _other = slots.take(&other, None, never()).await.unwrap();
        // Nothing freed anywhere for 300 ms (the worker itself was held up): a delivery that
        // comes now waits for the slot, which is freed 10 ms later.
        tokio::time::sleep(ms(300)).await;
        let free = async {
            tokio::time::sleep(ms(10)).await;
            drop(held);
        };
        let (slot, ()) = tokio::join!(slots.take(&fast, None, never()), free);
        assert!(
            slot.is_some(),
            "taken for stalled though nothing was freed anywhere"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_hurried_delivery_waits_only_the_shorter_grace() {
        let slots = EndpointSlots::new(1, Duration::from_millis(500), Duration::from_millis(100));
        let dead: EndpointId = "ep_dead".parse().unwrap();
        let _held = slots.take(&dead, None, never()).await.unwrap();
        let started = tokio::time::Instant::now();
        let hurry = tokio::time::sleep(Duration::from_millis(30));
        assert!(slots.take(&dead, None, hurry).await.is_none());
        assert_eq!(
            started.elapsed(),
            Duration::from_millis(100),
            "the shorter grace, counted from the last freed slot"
        );
        // Within the full grace but past the shorter one: unhurried it waits, hurried it is
        // deferred at once.
        tokio::time::sleep(Duration::from_millis(150)).await;
        let started = tokio::time::Instant::now();
        assert!(
            slots
                .take(&dead, None, std::future::ready(()))
                .await
                .is_none()
        );
        assert_eq!(started.elapsed(), Duration::ZERO);
        assert!(slots.take(&dead, None, never()).await.is_none());
        assert_eq!(started.elapsed(), Duration::from_millis(250));
    }

    #[tokio::test(start_paused = true)]
    async fn a_hurried_delivery_keeps_waiting_while_the_endpoint_frees_slots() {
        let slots = EndpointSlots::new(1, Duration::from_millis(500), Duration::from_millis(100));
        let fast: EndpointId = "ep_fast".parse().unwrap();
        let held = slots.take(&fast, None, never()).await.unwrap();
        let ms = Duration::from_millis;
        // First in line: gets the slot freed at 80 ms and frees it at 160 ms.
        let first = async {
            let slot = slots.take(&fast, None, never()).await;
            tokio::time::sleep(ms(80)).await;
            drop(slot);
        };
        // Second in line, hurried at once: it has waited past the shorter grace at 100 ms,
        // but a slot was freed 20 ms before, so it waits on and gets the one freed at 160 ms.
        let second = async {
            tokio::time::sleep(ms(1)).await;
            let started = tokio::time::Instant::now();
            let slot = slots.take(&fast, None, std::future::ready(())).await;
            (slot.is_some(), started.elapsed())
        };
        let free = async {
            tokio::time::sleep(ms(80)).await;
            drop(held);
        };
        let ((), (got, waited), ()) = tokio::join!(first, second, free);
        assert!(got, "deferred while the endpoint was freeing slots");
        assert_eq!(waited, ms(159));
    }

    #[tokio::test]
    async fn idle_endpoints_take_no_memory() {
        let slots = EndpointSlots::new(2, Duration::ZERO, Duration::ZERO);
        let a: EndpointId = "ep_a".parse().unwrap();
        let one = slots.take(&a, None, never()).await.unwrap();
        let two = slots.take(&a, None, never()).await.unwrap();
        drop(one);
        assert_eq!(lock(&slots.lines).endpoints.len(), 1, "still in flight");
        drop(two);
        assert!(lock(&slots.lines).endpoints.is_empty());
    }

    #[tokio::test(start_paused = true)]
    async fn a_fan_out_takes_its_deliveries_in_one_piece() {
        let deliveries = Deliveries::new(10);
        let eight = deliveries.take(8).await;
        let wait = std::time::Duration::from_secs(1);
        assert!(
            tokio::time::timeout(wait, deliveries.take(3))
                .await
                .is_err()
        );
        let _two = deliveries.take(2).await;
        drop(eight);
        // Larger than the budget: the whole budget, once free.
        let _all = tokio::time::timeout(wait, deliveries.take(50)).await;
    }

    #[tokio::test(start_paused = true)]
    async fn the_budget_bounds_messages_and_bytes() {
        let budget = Budget::new(2, 100);
        let one = budget.bytes(budget.message().await, 60).await;
        // 60 of 100 bytes held: 50 more must wait, 40 need not.
        let waiting = tokio::time::timeout(std::time::Duration::from_secs(1), async {
            budget.bytes(budget.message().await, 50).await
        });
        assert!(waiting.await.is_err());
        let two = budget.bytes(budget.message().await, 40).await;
        // Two messages held: a third waits for one of them.
        assert!(
            tokio::time::timeout(std::time::Duration::from_secs(1), budget.message())
                .await
                .is_err()
        );
        drop(one);
        drop(two);
        // A body over the whole byte budget waits for all of it, not forever.
        let _three = budget.bytes(budget.message().await, 1_000).await;
    }
}
