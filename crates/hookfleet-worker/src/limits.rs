//! How much one worker holds at once: messages and body bytes in total
//! (`HOOKFLEET_MAX_INFLIGHT`, `HOOKFLEET_MAX_INFLIGHT_BYTES`), and deliveries per endpoint
//! (`HOOKFLEET_ENDPOINT_CONCURRENCY`).
//!
//! A delivery waiting on a slow receiver costs a socket and a few KiB, so the totals can be in
//! the thousands. The per-endpoint cap is what keeps one slow or dead endpoint from taking them
//! all: a delivery over it does not wait here, it is deferred through a delay queue.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use hookfleet_core::EndpointId;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

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

/// In-flight deliveries per endpoint, in this worker.
#[derive(Debug)]
pub struct EndpointSlots {
    cap: usize,
    busy: Arc<Mutex<HashMap<EndpointId, usize>>>,
}

/// A delivery's slot at its endpoint, freed on drop.
#[derive(Debug)]
pub struct Slot {
    endpoint: EndpointId,
    busy: Arc<Mutex<HashMap<EndpointId, usize>>>,
}

impl EndpointSlots {
    pub fn new(cap: usize) -> Self {
        Self {
            cap,
            busy: Arc::default(),
        }
    }

    /// A slot at `endpoint`, or `None` when it already has `cap` deliveries in flight here.
    pub fn try_take(&self, endpoint: &EndpointId) -> Option<Slot> {
        let mut busy = lock(&self.busy);
        let count = busy.entry(endpoint.clone()).or_insert(0);
        if *count >= self.cap {
            return None;
        }
        *count += 1;
        Some(Slot {
            endpoint: endpoint.clone(),
            busy: self.busy.clone(),
        })
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut busy = lock(&self.busy);
        if let Some(count) = busy.get_mut(&self.endpoint) {
            *count -= 1;
            if *count == 0 {
                // Only endpoints with work in flight take memory.
                busy.remove(&self.endpoint);
            }
        }
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

    #[test]
    fn an_endpoint_gets_at_most_its_cap() {
        let slots = EndpointSlots::new(2);
        let a: EndpointId = "ep_a".parse().unwrap();
        let b: EndpointId = "ep_b".parse().unwrap();
        let first = slots.try_take(&a).unwrap();
        let _second = slots.try_take(&a).unwrap();
        assert!(slots.try_take(&a).is_none(), "a is at its cap");
        assert!(slots.try_take(&b).is_some(), "b is not held up by a");
        drop(first);
        assert!(slots.try_take(&a).is_some(), "a freed slot is reused");
    }

    #[test]
    fn idle_endpoints_take_no_memory() {
        let slots = EndpointSlots::new(2);
        let a: EndpointId = "ep_a".parse().unwrap();
        drop(slots.try_take(&a));
        assert!(lock(&slots.busy).is_empty());
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
