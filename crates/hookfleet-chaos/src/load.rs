//! Publishing a known set of events with [`Publisher`], many confirms in flight.
//!
//! An error from `publish` means "not published" (the producer's contract); it is retried a
//! few times with the same event id, and an event that never gets a confirm is counted as not
//! published rather than expected. An event that was published twice (a lost confirm, then a
//! re-send) is still one event: receivers count it by id.

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use futures_util::StreamExt;
use hookfleet_core::{EventId, EventType, TenantId};
use hookfleet_producer::{OutboundEvent, Publisher};

/// How many times one event is offered before it counts as not published.
const ATTEMPTS: u32 = 5;

/// What a load run published.
#[derive(Debug, Default, Clone)]
pub struct Published {
    /// Ids of the events the broker confirmed: what receivers must get.
    pub ids: HashSet<String>,
    /// Events that were never confirmed.
    pub not_published: usize,
    /// `publish` calls that returned an error (and were retried).
    pub errors: usize,
}

/// Progress visible while a load runs (e.g. to inject a fault half way).
#[derive(Debug, Default)]
pub struct Counter(AtomicUsize);

impl Counter {
    pub fn get(&self) -> usize {
        self.0.load(Ordering::Relaxed)
    }
}

/// How to publish.
#[derive(Debug, Clone, Copy)]
pub struct Pace {
    pub count: usize,
    /// Publishes awaiting their confirm at once.
    pub in_flight: usize,
    /// Events per second at most (`None`: as fast as confirms come), so that a fault can hit
    /// the middle of publishing.
    pub rate: Option<f64>,
}

impl Pace {
    /// `count` events as fast as confirms come, 256 awaiting their confirm at once.
    pub fn flood(count: usize) -> Self {
        Self {
            count,
            in_flight: 256,
            rate: None,
        }
    }
}

/// Publishes `pace.count` events of `event_type` for `tenant`.
pub async fn publish(
    publisher: Arc<Publisher>,
    event_type: EventType,
    tenant: TenantId,
    pace: Pace,
    done: Arc<Counter>,
) -> Published {
    let started = tokio::time::Instant::now();
    let (event_type, tenant) = (&event_type, &tenant);
    let results: Vec<(String, bool, usize)> = futures_util::stream::iter(0..pace.count)
        .map(|seq| {
            let publisher = Arc::clone(&publisher);
            let done = Arc::clone(&done);
            async move {
                if let Some(rate) = pace.rate {
                    let at = Duration::from_secs_f64(seq as f64 / rate);
                    tokio::time::sleep_until(started + at).await;
                }
                let data = serde_json::json!({ "seq": seq, "chaos": true });
                let event = OutboundEvent::new(
                    event_type.clone(),
                    tenant.clone(),
                    &data,
                    Some(EventId::generate()),
                );
                let mut errors = 0;
                let mut ok = false;
                for _ in 0..ATTEMPTS {
                    match publisher.publish(&event).await {
                        Ok(()) => {
                            ok = true;
                            break;
                        }
                        Err(error) => {
                            errors += 1;
                            eprintln!("chaos: publish of {} failed: {error}", event.id);
                            tokio::time::sleep(Duration::from_millis(500)).await;
                        }
                    }
                }
                done.0.fetch_add(1, Ordering::Relaxed);
                (event.id.to_string(), ok, errors)
            }
        })
        .buffer_unordered(pace.in_flight)
        .collect()
        .await;
    let mut published = Published::default();
    for (id, ok, errors) in results {
        published.errors += errors;
        if ok {
            published.ids.insert(id);
        } else {
            published.not_published += 1;
        }
    }
    published
}
