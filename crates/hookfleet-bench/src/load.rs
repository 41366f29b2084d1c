//! The load: events of about [`crate::PAYLOAD_BYTES`] whose data carries the publish time and a
//! sequence number, published through the real producer (`hookfleet_producer::Publisher`)
//! either as fast as possible with many publishes in flight, or paced at a fixed rate.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use hookfleet_core::{EventType, TenantId};
use hookfleet_producer::{OutboundEvent, Publisher};
use serde_json::json;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

use crate::EVENT_TYPE;

/// Publishes in flight at once on the producer's confirm channel.
pub const IN_FLIGHT: usize = 256;

/// What a publishing task has done so far; read by the scenario while it runs.
#[derive(Debug, Default)]
pub struct Published {
    pub ok: AtomicU64,
    pub failed: AtomicU64,
    /// Unix micros of the first publish (0 until then).
    pub first_us: AtomicU64,
    /// Set once the last publish returned.
    pub done_us: AtomicU64,
}

/// How to build the bench's events.
#[derive(Debug, Clone)]
pub struct Events {
    event_type: EventType,
    tenant: TenantId,
    pad: Arc<str>,
}

impl Events {
    /// Events of `tenant` whose body is about `size` bytes.
    pub fn new(tenant: &str, size: usize) -> anyhow::Result<Self> {
        let mut events = Self {
            event_type: EVENT_TYPE.parse()?,
            tenant: tenant.parse()?,
            pad: "".into(),
        };
        let bare = events.build(0).body.len();
        events.pad = "x".repeat(size.saturating_sub(bare)).into();
        Ok(events)
    }

    /// Event number `seq`, stamped with the time now.
    pub fn build(&self, seq: u64) -> OutboundEvent {
        let data = json!({"sent_us": crate::unix_micros(), "seq": seq, "pad": &*self.pad});
        OutboundEvent::new(self.event_type.clone(), self.tenant.clone(), &data, None)
    }
}

async fn publish_one(publisher: &Publisher, events: &Events, seq: u64, progress: &Published) {
    let event = events.build(seq);
    let _ = progress.first_us.compare_exchange(
        0,
        crate::unix_micros(),
        Ordering::Relaxed,
        Ordering::Relaxed,
    );
    match publisher.publish(&event).await {
        Ok(()) => progress.ok.fetch_add(1, Ordering::Relaxed),
        Err(error) => {
            if progress.failed.fetch_add(1, Ordering::Relaxed) == 0 {
                eprintln!("publish failed: {error}");
            }
            0
        }
    };
}

/// Publishes events `0..count` as fast as the broker confirms them, [`IN_FLIGHT`] at a time.
pub async fn burst(
    publisher: Arc<Publisher>,
    events: Events,
    count: u64,
    progress: Arc<Published>,
) {
    futures_util::stream::iter(0..count)
        .map(|seq| {
            let (publisher, events, progress) = (&publisher, &events, &progress);
            async move { publish_one(publisher, events, seq, progress).await }
        })
        .buffer_unordered(IN_FLIGHT)
        .for_each(|()| async {})
        .await;
    progress
        .done_us
        .store(crate::unix_micros(), Ordering::Relaxed);
}

/// Publishes events `0..count` at `per_second`, started on a 5 ms clock; never more than
/// [`IN_FLIGHT`] unconfirmed (a broker that cannot keep up slows the pace, and the lag shows it).
pub async fn paced(
    publisher: Arc<Publisher>,
    events: Events,
    count: u64,
    per_second: f64,
    progress: Arc<Published>,
) {
    let permits = Arc::new(Semaphore::new(IN_FLIGHT));
    let mut tasks = JoinSet::new();
    let mut tick = tokio::time::interval(Duration::from_millis(5));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let started = Instant::now();
    let mut launched = 0u64;
    while launched < count {
        tick.tick().await;
        let due = ((started.elapsed().as_secs_f64() * per_second) as u64).min(count);
        while launched < due {
            let Ok(permit) = permits.clone().acquire_owned().await else {
                break;
            };
            let (publisher, events, progress) =
                (publisher.clone(), events.clone(), progress.clone());
            let seq = launched;
            tasks.spawn(async move {
                publish_one(&publisher, &events, seq, &progress).await;
                drop(permit);
            });
            launched += 1;
        }
        // Reap finished tasks so the set stays small.
        while tasks.try_join_next().is_some() {}
    }
    while tasks.join_next().await.is_some() {}
    progress
        .done_us
        .store(crate::unix_micros(), Ordering::Relaxed);
}
