//! The history, written in batches off the delivery path.
//!
//! A delivery hands its records to [`Recorder`] and never waits: they queue here, and a
//! writer on a thread of its own lets a batch fill for 100 ms (`LINGER`) and copies it into
//! PostgreSQL with binary `COPY`, one transaction per batch. On its own thread, the writer
//! (and its connection) never takes a turn on the thread that delivers: a worker runs one by
//! default, and the drain is as fast as that thread. The queue is bounded, in records and in
//! bytes: while PostgreSQL is down or slow, records past [`CAPACITY`] or
//! [`CAPACITY_BYTES`] (and any batch that cannot be written) are dropped, counted in
//! `hookfleet_history_dropped_total` and logged once per incident; the writer reconnects by
//! itself and recording resumes.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use bytes::Bytes;
use futures_util::pin_mut;
use hookfleet_core::attempt::Attempt;
use prometheus::IntCounter;
use time::OffsetDateTime;
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc, oneshot};
use tokio::time::Instant;
use tokio_postgres::binary_copy::BinaryCopyInWriter;
use tokio_postgres::types::{ToSql, Type};

use crate::{Error, HistoryConfig, Result, partitions, schema_name};

/// Records waiting at most: a second or two of a saturated worker.
pub const CAPACITY: usize = 20_000;
/// Bytes of records waiting or being written at most. An event keeps its payload (up to
/// 256 KiB) until it is written: 20 000 of them would be 5 GB while PostgreSQL is slow, in a
/// worker that Kubernetes gives 256 MiB (deploy/k8s/worker.yaml). Today's few-KiB payloads
/// at a saturated worker's rate fill a tenth of this in the 100 ms a batch waits.
pub const CAPACITY_BYTES: usize = 32 * 1024 * 1024;
/// Records in one batch at most.
const BATCH: usize = 4_000;
/// How long a batch may fill before it is written: one transaction of thousands of rows
/// costs PostgreSQL (and the worker, in wake-ups and round trips) far less than many of a
/// few rows, and a record shows in the history this much later at most.
const LINGER: Duration = Duration::from_millis(100);
/// How long after a failed connection the next is tried; records meanwhile are dropped.
const RECONNECT_AFTER: Duration = Duration::from_secs(1);
/// How long one batch may take before the connection is given up as stalled.
const WRITE_TIMEOUT: Duration = Duration::from_secs(10);
/// How often partitions are made ahead and dropped past retention.
const MAINTAIN_EVERY: Duration = Duration::from_secs(3600);

/// An event as a worker first handled it.
#[derive(Debug)]
pub struct EventRecord {
    pub id: String,
    pub tenant: String,
    pub event_type: String,
    /// When the event happened, as published.
    pub occurred_at: OffsetDateTime,
    /// The payload, byte for byte.
    pub body: Bytes,
    /// The endpoints it was meant for (subscribed and enabled when it was handled).
    pub endpoints: Vec<String>,
}

/// One attempt at one endpoint.
#[derive(Debug)]
pub struct AttemptRecord {
    pub tenant: String,
    pub endpoint_id: String,
    pub attempt: Attempt,
}

#[derive(Debug)]
#[expect(
    clippy::large_enum_variant,
    reason = "nearly every item is a record; boxing it would allocate once per delivery"
)]
enum Item {
    /// A record, with its room in the byte budget: given back when it is written or dropped.
    Record(Record, OwnedSemaphorePermit),
    /// Answered once every record queued before it is written (or dropped).
    Flush(oneshot::Sender<()>),
}

#[derive(Debug)]
enum Record {
    Event(EventRecord, OffsetDateTime),
    Attempt(AttemptRecord),
}

impl Record {
    /// What it holds in memory: itself, its strings and its payload.
    fn size(&self) -> usize {
        let parts = match self {
            Record::Event(e, _) => {
                let endpoints: usize = e.endpoints.iter().map(String::len).sum();
                e.body.len() + e.id.len() + e.tenant.len() + e.event_type.len() + endpoints
            }
            Record::Attempt(a) => {
                let made = &a.attempt;
                made.response_body.len()
                    + made.message.len()
                    + made.event_id.len()
                    + made.event_type.len()
                    + made.at.len()
                    + a.tenant.len()
                    + a.endpoint_id.len()
            }
        };
        std::mem::size_of::<Item>() + parts
    }

    /// Its room in `bytes` (of [`CAPACITY_BYTES`]), if there is any.
    fn hold(&self, bytes: &Arc<Semaphore>) -> Option<OwnedSemaphorePermit> {
        let size = u32::try_from(self.size()).ok()?;
        bytes.clone().try_acquire_many_owned(size).ok()
    }
}

/// Whether records are being lost right now: logged when it starts and when it ends.
#[derive(Debug)]
struct Incident {
    dropping: AtomicBool,
    dropped: IntCounter,
}

impl Incident {
    fn dropped(&self, records: usize, why: &str) {
        self.dropped.inc_by(records as u64);
        if !self.dropping.swap(true, Ordering::Relaxed) {
            tracing::warn!(message = "History records are being dropped; deliveries go on.", reason = %why);
        }
    }

    fn written(&self) {
        if self.dropping.swap(false, Ordering::Relaxed) {
            tracing::info!(message = "History records are written again.");
        }
    }
}

/// The sending side, one per worker.
#[derive(Debug, Clone)]
pub struct Recorder {
    tx: mpsc::Sender<Item>,
    incident: Arc<Incident>,
    /// The bytes of the records queued or being written, held to [`CAPACITY_BYTES`].
    bytes: Arc<Semaphore>,
}

impl Recorder {
    /// A recorder, and its writer started on a thread of its own that ends once every clone
    /// is dropped. `dropped` counts what could not be recorded.
    pub fn start(config: HistoryConfig, dropped: IntCounter) -> Self {
        let (tx, rx) = mpsc::channel(CAPACITY);
        let incident = Arc::new(Incident {
            dropping: AtomicBool::new(false),
            dropped,
        });
        let writer = write_all(config, rx, incident.clone());
        let spawned = std::thread::Builder::new()
            .name("history-writer".to_owned())
            .spawn(move || {
                match tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                {
                    Ok(runtime) => runtime.block_on(writer),
                    Err(error) => {
                        tracing::error!(message = "Cannot start the history writer; nothing will be recorded.", %error);
                    }
                }
            });
        if let Err(error) = spawned {
            tracing::error!(message = "Cannot start the history writer; nothing will be recorded.", %error);
        }
        Self {
            tx,
            incident,
            bytes: Arc::new(Semaphore::new(CAPACITY_BYTES)),
        }
    }

    /// Queues an event; never waits.
    pub fn event(&self, record: EventRecord) {
        self.send(Record::Event(record, OffsetDateTime::now_utc()));
    }

    /// Queues an attempt; never waits.
    pub fn attempt(&self, record: AttemptRecord) {
        self.send(Record::Attempt(record));
    }

    fn send(&self, record: Record) {
        let Some(held) = record.hold(&self.bytes) else {
            let why = "the records waiting hold 32 MiB (PostgreSQL is slow)";
            return self.incident.dropped(1, why);
        };
        match self.tx.try_send(Item::Record(record, held)) {
            Ok(()) => {}
            Err(mpsc::error::TrySendError::Full(_)) => {
                self.incident.dropped(1, "the queue of records is full");
            }
            // The writer is gone: the worker is stopping (or it never started, and said so).
            Err(mpsc::error::TrySendError::Closed(_)) => {}
        }
    }

    /// Resolves once every record queued so far is written (or dropped).
    pub async fn flush(&self) {
        let (done, written) = oneshot::channel();
        if self.tx.send(Item::Flush(done)).await.is_ok() {
            let _ = written.await;
        }
    }
}

/// The writer's connection, made again after a failure.
struct Database {
    config: HistoryConfig,
    client: Option<tokio_postgres::Client>,
    tried: Option<Instant>,
    maintained: Option<Instant>,
    why: String,
}

impl Database {
    /// The connection, if there is one or one can be made now.
    async fn client(&mut self) -> Option<&tokio_postgres::Client> {
        if self.client.as_ref().is_some_and(|c| c.is_closed()) {
            self.client = None;
        }
        if self.client.is_none() && self.tried.is_none_or(|t| t.elapsed() >= RECONNECT_AFTER) {
            self.tried = Some(Instant::now());
            match crate::open(&self.config, None).await {
                Ok(client) => {
                    self.client = Some(client);
                    self.maintained = None;
                }
                Err(error) => self.why = error.to_string(),
            }
        }
        let client = self.client.as_ref()?;
        if self
            .maintained
            .is_none_or(|t| t.elapsed() >= MAINTAIN_EVERY)
        {
            self.maintained = Some(Instant::now());
            // Bounded like a write: a PostgreSQL that stopped answering must not hold the
            // writer here; the next write gives the connection up.
            let maintained =
                tokio::time::timeout(WRITE_TIMEOUT, partitions::maintain(client, &self.config))
                    .await
                    .unwrap_or_else(|_| {
                        Err(Error::Unavailable("PostgreSQL took over 10 s".to_owned()))
                    });
            if let Err(error) = maintained {
                tracing::warn!(message = "Cannot maintain the history's partitions.", %error);
            }
        }
        Some(client)
    }
}

async fn write_all(config: HistoryConfig, mut rx: mpsc::Receiver<Item>, incident: Arc<Incident>) {
    let table = schema_name(&config.namespace);
    let mut db = Database {
        config,
        client: None,
        tried: None,
        maintained: None,
        why: String::new(),
    };
    let mut items = Vec::with_capacity(BATCH);
    while rx.recv_many(&mut items, BATCH).await > 0 {
        let flushing = items.iter().any(|item| matches!(item, Item::Flush(_)));
        if items.len() < BATCH && !flushing {
            // Asleep, the writer is not woken by every record a delivery queues.
            tokio::time::sleep(LINGER).await;
            while items.len() < BATCH {
                match rx.try_recv() {
                    Ok(item) => items.push(item),
                    Err(_) => break,
                }
            }
        }
        let (mut events, mut attempts, mut flushes) = (Vec::new(), Vec::new(), Vec::new());
        // The batch's room in the byte budget, given back with the batch at the loop's end.
        let mut held = Vec::with_capacity(items.len());
        for item in items.drain(..) {
            match item {
                Item::Record(Record::Event(event, at), room) => {
                    events.push((event, at));
                    held.push(room);
                }
                Item::Record(Record::Attempt(attempt), room) => {
                    attempts.push(attempt);
                    held.push(room);
                }
                Item::Flush(done) => flushes.push(done),
            }
        }
        let count = events.len() + attempts.len();
        if count > 0 {
            match db.client().await {
                None => incident.dropped(count, &db.why),
                Some(client) => {
                    let written = tokio::time::timeout(
                        WRITE_TIMEOUT,
                        write(client, &table, &events, &attempts),
                    )
                    .await;
                    match written {
                        Ok(Ok(())) => incident.written(),
                        Ok(Err(error)) => {
                            incident.dropped(count, &error.to_string());
                            db.client = None;
                        }
                        Err(_) => {
                            incident.dropped(count, "PostgreSQL took over 10 s to take a batch");
                            db.client = None;
                        }
                    }
                }
            }
        }
        for done in flushes.drain(..) {
            let _ = done.send(());
        }
    }
}

/// One batch, in one transaction: events, their payloads, attempts.
async fn write(
    client: &tokio_postgres::Client,
    s: &str,
    events: &[(EventRecord, OffsetDateTime)],
    attempts: &[AttemptRecord],
) -> Result<()> {
    // `Client::transaction` needs `&mut`; the explicit statements work on a shared client
    // that only this task uses.
    client.batch_execute("BEGIN").await?;
    let copied = copy_all(client, s, events, attempts).await;
    match copied {
        Ok(()) => client.batch_execute("COMMIT").await?,
        Err(error) => {
            let _ = client.batch_execute("ROLLBACK").await;
            return Err(error);
        }
    }
    Ok(())
}

pub(crate) async fn copy_all(
    client: &tokio_postgres::Client,
    s: &str,
    events: &[(EventRecord, OffsetDateTime)],
    attempts: &[AttemptRecord],
) -> Result<()> {
    if !events.is_empty() {
        let columns = "id, tenant, event_type, occurred_at, recorded_at, endpoints";
        let types = [
            Type::TEXT,
            Type::TEXT,
            Type::TEXT,
            Type::TIMESTAMPTZ,
            Type::TIMESTAMPTZ,
            Type::TEXT_ARRAY,
        ];
        let rows = events.iter().map(|(e, at)| -> [&(dyn ToSql + Sync); 6] {
            [
                &e.id,
                &e.tenant,
                &e.event_type,
                &e.occurred_at,
                at,
                &e.endpoints,
            ]
        });
        copy(client, &format!("{s}.events ({columns})"), &types, rows).await?;
        let types = [Type::TEXT, Type::TIMESTAMPTZ, Type::BYTEA];
        let bodies: Vec<&[u8]> = events.iter().map(|(e, _)| e.body.as_ref()).collect();
        let rows = (events.iter().zip(&bodies))
            .map(|((e, at), body)| -> [&(dyn ToSql + Sync); 3] { [&e.id, at, body] });
        copy(
            client,
            &format!("{s}.payloads (event_id, recorded_at, body)"),
            &types,
            rows,
        )
        .await?;
    }
    if !attempts.is_empty() {
        let rows: Vec<AttemptRow> = attempts.iter().map(AttemptRow::of).collect();
        let columns = "event_id, tenant, endpoint_id, event_type, attempt, source, attempted_at, status, error_class, message, latency_ms, response";
        let types = [
            Type::TEXT,
            Type::TEXT,
            Type::TEXT,
            Type::TEXT,
            Type::INT4,
            Type::TEXT,
            Type::TIMESTAMPTZ,
            Type::INT2,
            Type::TEXT,
            Type::TEXT,
            Type::INT4,
            Type::TEXT,
        ];
        let values = rows.iter().map(|r| -> [&(dyn ToSql + Sync); 12] {
            let a = &r.record.attempt;
            [
                &a.event_id,
                &r.record.tenant,
                &r.record.endpoint_id,
                &a.event_type,
                &r.attempt,
                &a.source,
                &r.at,
                &r.status,
                &r.error_class,
                &a.message,
                &r.latency_ms,
                &a.response_body,
            ]
        });
        copy(client, &format!("{s}.attempts ({columns})"), &types, values).await?;
    }
    Ok(())
}

/// An attempt's columns that are not stored as the attempt log has them.
struct AttemptRow<'a> {
    record: &'a AttemptRecord,
    attempt: i32,
    at: OffsetDateTime,
    status: Option<i16>,
    error_class: Option<String>,
    latency_ms: i32,
}

impl<'a> AttemptRow<'a> {
    fn of(record: &'a AttemptRecord) -> Self {
        let a = &record.attempt;
        let at = OffsetDateTime::parse(&a.at, &time::format_description::well_known::Rfc3339)
            .unwrap_or_else(|_| OffsetDateTime::now_utc());
        // As the attempt log's JSON spells it: `non_success_status`.
        let error_class = (a.error)
            .and_then(|class| serde_json::to_value(class).ok())
            .and_then(|value| value.as_str().map(str::to_owned));
        Self {
            record,
            attempt: a.attempt.min(i32::MAX as u32) as i32,
            at,
            status: a.status.map(|s| s as i16),
            error_class,
            latency_ms: a.latency_ms.min(i32::MAX as u64) as i32,
        }
    }
}

/// `COPY table FROM STDIN BINARY` of `rows`.
async fn copy<'a, const N: usize>(
    client: &tokio_postgres::Client,
    table: &str,
    types: &[Type; N],
    rows: impl Iterator<Item = [&'a (dyn ToSql + Sync); N]>,
) -> Result<()> {
    let sink = client
        .copy_in(&format!("COPY {table} FROM STDIN BINARY"))
        .await?;
    let writer = BinaryCopyInWriter::new(sink, types);
    pin_mut!(writer);
    for row in rows {
        writer.as_mut().write(&row).await?;
    }
    writer.finish().await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(body_bytes: usize) -> EventRecord {
        EventRecord {
            id: "evt_1".to_owned(),
            tenant: "acme".to_owned(),
            event_type: "log.blocked".to_owned(),
            occurred_at: OffsetDateTime::now_utc(),
            body: Bytes::from(vec![b'x'; body_bytes]),
            endpoints: vec!["ep_1".to_owned()],
        }
    }

    #[test]
    fn held_bytes_stop_at_the_capacity_and_come_back() {
        let bytes = Arc::new(Semaphore::new(CAPACITY_BYTES));
        let record = Record::Event(event(1024 * 1024), OffsetDateTime::now_utc());
        let held: Vec<_> = std::iter::from_fn(|| record.hold(&bytes)).collect();
        assert_eq!(held.len(), CAPACITY_BYTES / record.size());
        assert!(record.hold(&bytes).is_none());
        drop(held);
        assert_eq!(bytes.available_permits(), CAPACITY_BYTES);
    }

    /// A PostgreSQL that takes connections and never answers (frozen, or cut off): the writer
    /// waits on it, and the payloads behind it must not pile up.
    #[tokio::test]
    async fn payloads_waiting_on_a_silent_postgres_hold_32_mib_at_most() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let silent = tokio::spawn(async move {
            let mut open = Vec::new();
            while let Ok((socket, _)) = listener.accept().await {
                open.push(socket);
            }
        });
        let url = format!("postgres://postgres:postgres@{addr}/postgres");
        let config = HistoryConfig::reader(url, "history-unit".parse().unwrap());
        let dropped = IntCounter::new("dropped", "records dropped").unwrap();
        let recorder = Recorder::start(config, dropped.clone());
        let mib = 1024 * 1024;
        // Sent within the writer's first wait (100 ms, then 5 s for the connection).
        for _ in 0..100 {
            recorder.event(event(mib));
        }
        // A MiB of payload and a few hundred bytes more each, queued or taken by the writer:
        // 31 fit in 32 MiB.
        assert_eq!(dropped.get(), 69);
        // The connection is given up after 5 s, and the 31 with it: the writer is free again.
        let deadline = Instant::now() + Duration::from_secs(20);
        while dropped.get() < 100 {
            assert!(
                Instant::now() < deadline,
                "the writer still waits on PostgreSQL"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        silent.abort();
    }
}
