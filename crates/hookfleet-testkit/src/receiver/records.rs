//! What a [`super::Receiver`] remembers and how it answers: the replies programmed per path
//! and per `webhook-id`, every arrival, and the counts by `webhook-id`. No I/O here.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::http::{HeaderMap, Method};

/// How to answer one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Reply {
    pub(super) status: u16,
    /// How long to wait before answering; `None`: never answer (until the port goes down or
    /// the receiver is dropped, which answers 503 to let the worker's connection go).
    pub(super) delay: Option<Duration>,
    /// A `Retry-After` header, in seconds.
    pub(super) retry_after: Option<u32>,
    /// The answer's body (empty by default).
    pub(super) body: &'static str,
}

impl Reply {
    pub const fn status(status: u16) -> Self {
        Self {
            status,
            delay: Some(Duration::ZERO),
            retry_after: None,
            body: "",
        }
    }

    /// The same answer with this body (an error page, say).
    pub const fn body(self, body: &'static str) -> Self {
        Self { body, ..self }
    }

    /// The same answer with `Retry-After: <seconds>` (a receiver asking for a pause).
    pub const fn retry_after(self, seconds: u32) -> Self {
        Self {
            retry_after: Some(seconds),
            ..self
        }
    }

    /// The same answer after `delay` (a slow or timing-out receiver).
    pub const fn delayed(self, delay: Duration) -> Self {
        Self {
            delay: Some(delay),
            ..self
        }
    }

    /// Accept the request and never answer.
    pub const fn never() -> Self {
        Self {
            status: 503,
            delay: None,
            retry_after: None,
            body: "",
        }
    }
}

impl Default for Reply {
    fn default() -> Self {
        Self::status(200)
    }
}

/// One request as it arrived.
#[derive(Debug, Clone)]
pub struct Arrival {
    pub method: Method,
    pub headers: HeaderMap,
    pub body: Bytes,
    /// When the request arrived, to measure latency, lag and spacing between attempts.
    pub at: Instant,
}

impl Arrival {
    /// A header as text; panics when it is missing (every contract header is mandatory).
    pub fn header(&self, name: &str) -> &str {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_else(|| panic!("no text {name} header in {:?}", self.headers))
    }
}

/// One `webhook-id`'s history on one path.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Seen {
    pub requests: usize,
    /// 2xx answers given.
    pub ok: usize,
}

/// What one path received, compared with what it should have.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Count {
    /// Expected ids answered 2xx at least once.
    pub delivered: usize,
    /// 2xx answers beyond the first, per id (summed).
    pub duplicates: usize,
    /// Requests of any kind.
    pub requests: usize,
}

/// Everything received on every path, kept up to date at each request.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Totals {
    pub requests: usize,
    /// (path, id) pairs answered 2xx at least once.
    pub delivered: usize,
    /// 2xx answers beyond the first per (path, id).
    pub duplicates: usize,
}

#[derive(Debug, Default)]
pub(super) struct Route {
    pub(super) arrivals: Vec<Arrival>,
    /// Replies to use first, in order.
    pub(super) queued: VecDeque<Reply>,
    /// The reply once `queued` is empty.
    pub(super) default: Reply,
    /// Replies to one `webhook-id`, before anything else.
    pub(super) by_id: HashMap<String, Reply>,
    pub(super) seen: HashMap<String, Seen>,
    /// When each 2xx was answered, in order.
    pub(super) oks: Vec<Instant>,
}

#[derive(Debug, Default)]
pub(super) struct Records {
    pub(super) routes: HashMap<String, Route>,
    pub(super) totals: Totals,
}

impl Records {
    /// Records a request to `path` with `webhook-id` `id`; returns how to answer it.
    pub(super) fn arrive(&mut self, path: &str, id: &str, arrival: Arrival) -> Reply {
        self.totals.requests += 1;
        let route = self.routes.entry(path.to_owned()).or_default();
        route.seen.entry(id.to_owned()).or_default().requests += 1;
        route.arrivals.push(arrival);
        match route.by_id.get(id) {
            Some(reply) => *reply,
            None => route.queued.pop_front().unwrap_or(route.default),
        }
    }

    /// Records that a 2xx was handed back.
    pub(super) fn answered_ok(&mut self, path: &str, id: &str) {
        let route = self.routes.entry(path.to_owned()).or_default();
        route.oks.push(Instant::now());
        let seen = route.seen.entry(id.to_owned()).or_default();
        seen.ok += 1;
        if seen.ok == 1 {
            self.totals.delivered += 1;
        } else {
            self.totals.duplicates += 1;
        }
    }
}

/// Shared by the receiver, its siblings and their handlers.
pub(super) type Shared = Arc<Mutex<Records>>;

pub(super) fn lock(records: &Shared) -> MutexGuard<'_, Records> {
    // A panic while holding the lock leaves valid records behind: keep using them.
    records.lock().unwrap_or_else(|p| p.into_inner())
}
