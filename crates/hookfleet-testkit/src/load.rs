//! Publishing a known set of events through the real producer ([`Publisher`]) with many
//! confirms in flight, as fast as confirms come or at a steady rate.
//!
//! An error from `publish` means "not published" (the producer's contract): the same event
//! (same id) is offered again up to [`Pace::attempts`] times, and one that never gets a
//! confirm counts as not published rather than expected. An event published twice (a lost
//! confirm, then a re-send) is still one event: receivers count by `webhook-id`.

use std::collections::HashSet;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use hookfleet_producer::{OutboundEvent, Publisher};

/// How to publish.
#[derive(Debug, Clone, Copy)]
pub struct Pace {
    pub count: usize,
    /// Publishes awaiting their confirm at once.
    pub in_flight: usize,
    /// Events per second at most (`None`: as fast as confirms come), so that a fault can hit
    /// the middle of publishing, or a load stays sustainable.
    pub rate: Option<f64>,
    /// How many times one event is offered before it counts as not published.
    pub attempts: u32,
}

impl Pace {
    /// `count` events as fast as confirms come, 256 awaiting their confirm at once, each
    /// offered up to 5 times.
    pub fn flood(count: usize) -> Self {
        Self {
            count,
            in_flight: 256,
            rate: None,
            attempts: 5,
        }
    }
}

/// Progress visible while a load runs (to inject a fault half way, or to report).
#[derive(Debug, Default)]
pub struct Progress {
    done: AtomicUsize,
    confirmed: AtomicUsize,
    errors: AtomicUsize,
    started: OnceLock<Instant>,
}

impl Progress {
    /// Events whose publishing is over, confirmed or not.
    pub fn done(&self) -> usize {
        self.done.load(Ordering::Relaxed)
    }

    pub fn confirmed(&self) -> usize {
        self.confirmed.load(Ordering::Relaxed)
    }

    /// When the first event was published.
    pub fn started(&self) -> Option<Instant> {
        self.started.get().copied()
    }
}

/// What a load published.
#[derive(Debug, Default, Clone)]
pub struct Published {
    /// Ids of the events the broker confirmed: what receivers must get.
    pub ids: HashSet<String>,
    /// Events that were never confirmed.
    pub not_published: usize,
    /// `publish` calls that returned an error (and were offered again).
    pub errors: usize,
}

impl Published {
    pub fn merge(&mut self, other: Published) {
        self.ids.extend(other.ids);
        self.not_published += other.not_published;
        self.errors += other.errors;
    }
}

/// Publishes `event(0..pace.count)`; each event is built when its turn comes.
pub async fn publish<F>(
    publisher: Arc<Publisher>,
    pace: Pace,
    progress: Arc<Progress>,
    event: F,
) -> Published
where
    F: Fn(usize) -> OutboundEvent + Send + Sync + 'static,
{
    let started = tokio::time::Instant::now();
    let (publisher, progress, event) = (&publisher, &progress, &event);
    let results: Vec<(String, usize, bool)> = futures_util::stream::iter(0..pace.count)
        .map(|seq| async move {
            if let Some(rate) = pace.rate {
                tokio::time::sleep_until(started + Duration::from_secs_f64(seq as f64 / rate))
                    .await;
            }
            progress.started.get_or_init(Instant::now);
            let event = event(seq);
            let (mut tries, mut confirmed) = (0, false);
            while !confirmed && tries < pace.attempts {
                tries += 1;
                if let Err(error) = publisher.publish(&event).await {
                    if progress.errors.fetch_add(1, Ordering::Relaxed) == 0 {
                        let id = event.id.as_str();
                        eprintln!(
                            "publish of {id} failed (offered up to {} times): {error}",
                            pace.attempts
                        );
                    }
                    if tries < pace.attempts {
                        tokio::time::sleep(Duration::from_millis(500)).await;
                    }
                } else {
                    confirmed = true;
                    progress.confirmed.fetch_add(1, Ordering::Relaxed);
                }
            }
            progress.done.fetch_add(1, Ordering::Relaxed);
            (
                event.id.as_str().to_owned(),
                tries as usize - usize::from(confirmed),
                confirmed,
            )
        })
        .buffer_unordered(pace.in_flight)
        .collect()
        .await;
    let mut published = Published::default();
    for (id, errors, confirmed) in results {
        published.errors += errors;
        if confirmed {
            published.ids.insert(id);
        } else {
            published.not_published += 1;
        }
    }
    published
}
