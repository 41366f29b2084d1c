//! The fast local receiver: an axum server on 127.0.0.1, in the bench's own runtime, that
//! answers 200 at once and keeps a [`Tally`] of what arrived.
//!
//! Endpoint `k` of the bench tenant is `/ep/<k>`; anything else (the HTTP baseline's
//! `/baseline`) is only counted. Each request body is the contract's envelope whose `data`
//! carries `sent_us` (unix micros at publish) and `seq` (the event's number in the run): lag is
//! this clock minus `sent_us`, and a bitset per endpoint tells first deliveries from repeats,
//! so a lost event cannot hide behind a duplicate. One request in [`VERIFY_EVERY`] has its
//! signature checked against the endpoint's secret.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, Uri};
use hookfleet_core::Secret;
use hookfleet_core::signature::sign;
use serde::Deserialize;

/// How often a delivery's signature is verified (HMAC is cheap, but not free on 2 cores).
const VERIFY_EVERY: u64 = 64;

/// What one scenario's deliveries looked like so far.
#[derive(Debug, Default, Clone)]
pub struct Snapshot {
    /// First 2xx per (endpoint, event).
    pub unique: u64,
    /// Repeats of an (endpoint, event) already seen.
    pub duplicates: u64,
    /// Requests to other paths, or with a body that is not a bench event.
    pub other: u64,
    /// Signatures checked and how many did not match.
    pub verified: u64,
    pub bad_signatures: u64,
    /// Unix micros of the last first delivery.
    pub last_us: u64,
}

#[derive(Debug, Default)]
struct Round {
    snapshot: Snapshot,
    /// One bitset of `seq` per endpoint.
    seen: Vec<Vec<u64>>,
    /// The secret of each endpoint, to verify signatures.
    secrets: Vec<Secret>,
    /// End-to-end lag of each first delivery, in micros.
    lags_us: Vec<u64>,
    requests: u64,
}

/// Shared between the server and the scenario that reads it.
#[derive(Debug, Default)]
pub struct Tally {
    round: Mutex<Round>,
}

impl Tally {
    fn lock(&self) -> MutexGuard<'_, Round> {
        self.round.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Starts counting a new scenario: `secrets[k]` signs endpoint `/ep/<k>`, and `events`
    /// sequence numbers are expected.
    pub fn begin(&self, secrets: Vec<Secret>, events: u64) {
        let words = usize::try_from(events.div_ceil(64)).unwrap_or(0);
        let mut round = self.lock();
        *round = Round {
            seen: vec![vec![0; words]; secrets.len()],
            secrets,
            lags_us: Vec::with_capacity(words * 64),
            ..Round::default()
        };
    }

    pub fn snapshot(&self) -> Snapshot {
        self.lock().snapshot.clone()
    }

    /// The lag of every first delivery so far, in micros (a copy).
    pub fn lags_us(&self) -> Vec<u64> {
        self.lock().lags_us.clone()
    }

    fn record(&self, path: &str, headers: &HeaderMap, body: &[u8]) {
        let now = crate::unix_micros();
        let parsed = serde_json::from_slice::<Envelope>(body).ok();
        let endpoint = path
            .strip_prefix("/ep/")
            .and_then(|k| k.parse::<usize>().ok());
        let mut round = self.lock();
        round.requests += 1;
        let (Some(k), Some(event)) = (endpoint, parsed) else {
            round.snapshot.other += 1;
            return;
        };
        let Some(word) = round
            .seen
            .get_mut(k)
            .and_then(|bits| bits.get_mut(usize::try_from(event.data.seq / 64).ok()?))
        else {
            round.snapshot.other += 1;
            return;
        };
        let bit = 1u64 << (event.data.seq % 64);
        if *word & bit != 0 {
            round.snapshot.duplicates += 1;
            return;
        }
        *word |= bit;
        round.snapshot.unique += 1;
        round.snapshot.last_us = round.snapshot.last_us.max(now);
        round.lags_us.push(now.saturating_sub(event.data.sent_us));
        if round.requests % VERIFY_EVERY == 1 {
            let ok = verify(&round.secrets[k], headers, body);
            round.snapshot.verified += 1;
            round.snapshot.bad_signatures += u64::from(!ok);
        }
    }
}

#[derive(Deserialize)]
struct Envelope {
    data: Data,
}

#[derive(Deserialize)]
struct Data {
    sent_us: u64,
    seq: u64,
}

/// Whether `webhook-signature` is the signature of this body under `secret`.
fn verify(secret: &Secret, headers: &HeaderMap, body: &[u8]) -> bool {
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    let (Some(id), Some(Ok(timestamp)), Some(signature)) = (
        header("webhook-id"),
        header("webhook-timestamp").map(str::parse::<i64>),
        header("webhook-signature"),
    ) else {
        return false;
    };
    sign([secret], id, timestamp, body) == signature
}

/// The running server; aborted on drop.
#[derive(Debug)]
pub struct Receiver {
    addr: SocketAddr,
    pub tally: Arc<Tally>,
    server: tokio::task::JoinHandle<()>,
}

impl Receiver {
    pub async fn start() -> anyhow::Result<Self> {
        let tally = Arc::new(Tally::default());
        let app = Router::new()
            .fallback(handle)
            .with_state(Arc::clone(&tally));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let server = tokio::spawn(async move {
            if let Err(error) = axum::serve(listener, app).await {
                eprintln!("receiver stopped: {error}");
            }
        });
        Ok(Self {
            addr,
            tally,
            server,
        })
    }

    /// The URL of `path` (starting with `/`).
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.server.abort();
    }
}

async fn handle(
    State(tally): State<Arc<Tally>>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> StatusCode {
    tally.record(uri.path(), &headers, &body);
    StatusCode::OK
}
