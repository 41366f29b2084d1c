//! The attempt log, written in batches off the delivery path.
//!
//! Each attempt's entry is queued here ([`Journal::write`] never waits) and one task appends
//! whatever has queued up since its last write in one round trip per endpoint: under load a
//! round trip carries hundreds of entries, and at a trickle each entry goes at once. The queue
//! is bounded: while Redis is away or slow, entries past [`CAPACITY`] are dropped and counted
//! (`hookfleet_attempt_log_dropped_total`), and logged once per incident; the deliveries
//! themselves never wait for their log entry.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use hookfleet_core::EndpointId;
use hookfleet_core::attempt::Attempt;
use hookfleet_store::AttemptLog;
use tokio::sync::{mpsc, oneshot};
use tracing::{info, warn};

use crate::metrics::Metrics;

/// Entries waiting at most: about 5 MB, a few seconds of a saturated worker.
pub const CAPACITY: usize = 10_000;
/// Entries in one write at most.
const BATCH: usize = 512;

/// The sending side, one per worker.
#[derive(Debug, Clone)]
pub struct Journal {
    tx: mpsc::Sender<Item>,
    /// `HOOKFLEET_ATTEMPT_LOG_LEN` > 0: with the log off, no entry is even built.
    enabled: bool,
    incident: Arc<Incident>,
}

/// What the writer is sent.
#[derive(Debug)]
// Entries are nearly every item: boxing them would cost an allocation each.
#[allow(clippy::large_enum_variant)]
enum Item {
    Entry(EndpointId, Attempt),
    /// Answered once every entry queued before it is written (or dropped).
    Flush(oneshot::Sender<()>),
}

/// Whether entries are being lost right now: logged when it starts and when it ends.
#[derive(Debug)]
struct Incident {
    dropping: AtomicBool,
    metrics: Metrics,
}

impl Incident {
    fn dropped(&self, entries: usize, why: &str) {
        self.metrics.attempt_log_dropped(entries);
        if !self.dropping.swap(true, Ordering::Relaxed) {
            warn!(message = "Attempt log entries are being dropped; deliveries go on.", reason = %why);
        }
    }

    fn written(&self) {
        if self.dropping.swap(false, Ordering::Relaxed) {
            info!(message = "Attempt log entries are written again.");
        }
    }
}

impl Journal {
    /// A journal, and its writer started as a task that ends once every clone is dropped.
    pub fn start(log: AttemptLog, metrics: Metrics) -> Self {
        let (tx, rx) = mpsc::channel(CAPACITY);
        let incident = Arc::new(Incident {
            dropping: AtomicBool::new(false),
            metrics,
        });
        let journal = Self {
            enabled: log.is_enabled(),
            tx,
            incident: incident.clone(),
        };
        tokio::spawn(write_all(log, rx, incident));
        journal
    }

    /// Queues the entry `made` builds; never waits.
    pub fn write(&self, endpoint: &EndpointId, made: impl FnOnce() -> Attempt) {
        if !self.enabled {
            return;
        }
        match self.tx.try_send(Item::Entry(endpoint.clone(), made())) {
            Ok(()) => {}
            Err(mpsc::error::TrySendError::Full(_)) => {
                self.incident.dropped(1, "the queue of entries is full");
            }
            // The writer is gone: the worker is stopping.
            Err(mpsc::error::TrySendError::Closed(_)) => {}
        }
    }

    /// Resolves once every entry queued so far is written (or dropped): before the worker
    /// exits.
    pub async fn flush(&self) {
        let (done, written) = oneshot::channel();
        if self.tx.send(Item::Flush(done)).await.is_ok() {
            let _ = written.await;
        }
    }
}

async fn write_all(log: AttemptLog, mut rx: mpsc::Receiver<Item>, incident: Arc<Incident>) {
    let mut items = Vec::with_capacity(BATCH);
    let mut entries = Vec::with_capacity(BATCH);
    while rx.recv_many(&mut items, BATCH).await > 0 {
        let mut flushes = Vec::new();
        for item in items.drain(..) {
            match item {
                Item::Entry(endpoint, attempt) => entries.push((endpoint, attempt)),
                Item::Flush(done) => flushes.push(done),
            }
        }
        if !entries.is_empty() {
            match log.append_batch(&entries).await {
                Ok(()) => incident.written(),
                Err(error) => incident.dropped(entries.len(), &error.to_string()),
            }
            entries.clear();
        }
        for done in flushes {
            let _ = done.send(());
        }
    }
}
