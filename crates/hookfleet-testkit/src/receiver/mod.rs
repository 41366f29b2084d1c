//! [`Receiver`]: the one HTTP receiver standing in for customers' endpoints, an axum server on
//! a port of 127.0.0.1 of its own. It records every request per path (headers, body, arrival
//! time), counts them by `webhook-id`, and answers as programmed:
//! - per path, a default [`Reply`] that can be switched mid-run: a status, a status after a
//!   delay, or never an answer; and a queue of replies used first (fail N times, then succeed);
//! - per request, a reply for one `webhook-id` (a poison event refused forever);
//! - per port, down (connections refused) and up again, or resetting every new connection
//!   (accepted and closed without a word).
//!
//! [`Receiver::sibling`] opens another port on the same records and replies, so several
//! endpoints can fail on their own while one place counts them all. A 2xx is counted as
//! delivered when the handler returns it, i.e. what the worker was told.

mod records;
#[cfg(test)]
mod tests;

use std::collections::HashSet;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::header::RETRY_AFTER;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

pub use records::{Arrival, Count, Reply, Seen, Totals};
use records::{Records, Route, Shared, lock};

/// What a handler needs: the records, and the signal that lets requests never answered go.
#[derive(Debug, Clone)]
struct Handler {
    records: Shared,
    release: CancellationToken,
}

/// The server running on the port, and the switches that stop it.
#[derive(Debug)]
struct Running {
    stop: oneshot::Sender<()>,
    task: JoinHandle<()>,
    release: CancellationToken,
}

#[derive(Debug)]
pub struct Receiver {
    addr: SocketAddr,
    records: Shared,
    /// While set, new connections are accepted and closed at once.
    reset: Arc<AtomicBool>,
    /// `None` while down.
    running: Option<Running>,
}

impl Receiver {
    /// A receiver on a new port of 127.0.0.1 that answers 200 to everything.
    pub async fn start() -> io::Result<Self> {
        Self::on(Shared::default()).await
    }

    /// Another port with the same records and replies, that can go down or reset on its own.
    pub async fn sibling(&self) -> io::Result<Self> {
        Self::on(Arc::clone(&self.records)).await
    }

    async fn on(records: Shared) -> io::Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let mut receiver = Self {
            addr: listener.local_addr()?,
            records,
            reset: Arc::default(),
            running: None,
        };
        receiver.serve(listener);
        Ok(receiver)
    }

    fn serve(&mut self, listener: TcpListener) {
        let release = CancellationToken::new();
        let handler = Handler {
            records: Arc::clone(&self.records),
            release: release.clone(),
        };
        let app = Router::new().fallback(handle).with_state(handler);
        let flaky = Flaky {
            inner: listener,
            reset: Arc::clone(&self.reset),
        };
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            let serving = axum::serve(flaky, app).with_graceful_shutdown(async move {
                let _ = stopped.await;
            });
            if let Err(error) = serving.await {
                eprintln!("receiver stopped: {error}");
            }
        });
        self.running = Some(Running {
            stop,
            task,
            release,
        });
    }

    /// The URL of `path` (which starts with `/`) on this port.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// Sets how `path` answers once its queued replies are used up.
    pub fn set_default(&self, path: &str, reply: Reply) {
        self.with_route(path, |route| route.default = reply);
    }

    /// Answers the next requests to `path` with `replies`, in order, before the default.
    pub fn enqueue(&self, path: &str, replies: impl IntoIterator<Item = Reply>) {
        self.with_route(path, |route| route.queued.extend(replies));
    }

    /// Answers every request to `path` whose `webhook-id` is `id` with `reply`.
    pub fn reply_to(&self, path: &str, id: &str, reply: Reply) {
        self.with_route(path, |route| route.by_id.insert(id.to_owned(), reply));
    }

    /// Every request to `path` so far, in arrival order.
    pub fn requests(&self, path: &str) -> Vec<Arrival> {
        self.with_route(path, |route| route.arrivals.clone())
    }

    /// How many requests `path` got.
    pub fn count(&self, path: &str) -> usize {
        self.with_route(path, |route| route.arrivals.len())
    }

    /// What `path` got for one `webhook-id`.
    pub fn seen(&self, path: &str, id: &str) -> Seen {
        self.with_route(path, |route| {
            route.seen.get(id).copied().unwrap_or_default()
        })
    }

    /// What `path` got of the `expected` ids.
    pub fn tally(&self, path: &str, expected: &HashSet<String>) -> Count {
        self.with_route(path, |route| {
            let mut count = Count::default();
            for (id, seen) in &route.seen {
                count.requests += seen.requests;
                count.duplicates += seen.ok.saturating_sub(1);
                count.delivered += usize::from(seen.ok > 0 && expected.contains(id));
            }
            count
        })
    }

    /// When `path` first answered 2xx at or after `since` (the first delivery after a fault).
    pub fn first_ok_after(&self, path: &str, since: Instant) -> Option<Instant> {
        self.with_route(path, |route| {
            let i = route.oks.partition_point(|t| *t < since);
            route.oks.get(i).copied()
        })
    }

    pub fn totals(&self) -> Totals {
        lock(&self.records).totals
    }

    /// Forgets every request and every programmed reply (a new round on the same port).
    pub fn clear(&self) {
        *lock(&self.records) = Records::default();
    }

    /// Accepts and closes every new connection without answering, or stops doing so.
    pub fn set_reset(&self, reset: bool) {
        self.reset.store(reset, Ordering::Relaxed);
    }

    /// Goes down the way a receiver being redeployed does: stops accepting (new connections
    /// are refused), closes idle keep-alive connections, lets requests in flight finish and
    /// answers the ones it was never going to.
    pub async fn down(&mut self) {
        if let Some(running) = self.running.take() {
            running.release.cancel();
            let _ = running.stop.send(());
            let _ = tokio::time::timeout(Duration::from_secs(10), running.task).await;
        }
    }

    /// Comes back on the same port.
    pub async fn up(&mut self) -> io::Result<()> {
        if self.running.is_none() {
            let listener = TcpListener::bind(self.addr).await?;
            self.serve(listener);
        }
        Ok(())
    }

    fn with_route<T>(&self, path: &str, f: impl FnOnce(&mut Route) -> T) -> T {
        f(lock(&self.records)
            .routes
            .entry(path.to_owned())
            .or_default())
    }
}

impl Drop for Receiver {
    /// No run leaves a listener, or a request never answered, behind.
    fn drop(&mut self) {
        if let Some(running) = self.running.take() {
            running.release.cancel();
            running.task.abort();
        }
    }
}

async fn handle(
    State(handler): State<Handler>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> (StatusCode, HeaderMap, &'static str) {
    let path = uri.path();
    let id = (headers.get("webhook-id").and_then(|v| v.to_str().ok()))
        .unwrap_or("")
        .to_owned();
    let arrival = Arrival {
        method,
        headers,
        body,
        at: Instant::now(),
    };
    let reply = lock(&handler.records).arrive(path, &id, arrival);
    match reply.delay {
        Some(delay) => tokio::time::sleep(delay).await,
        None => handler.release.cancelled().await,
    }
    let status = StatusCode::from_u16(reply.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    if status.is_success() {
        lock(&handler.records).answered_ok(path, &id);
    }
    let mut answer = HeaderMap::new();
    if let Some(seconds) = reply.retry_after {
        answer.insert(RETRY_AFTER, seconds.into());
    }
    (status, answer, reply.body)
}

/// A listener that, while `reset` is set, accepts connections and closes them at once
/// without reading or answering: what the worker sees is a reset or a closed connection.
struct Flaky {
    inner: TcpListener,
    reset: Arc<AtomicBool>,
}

impl axum::serve::Listener for Flaky {
    type Io = TcpStream;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (TcpStream, SocketAddr) {
        loop {
            match self.inner.accept().await {
                Ok((stream, _)) if self.reset.load(Ordering::Relaxed) => drop(stream),
                Ok(accepted) => return accepted,
                // Out of file descriptors and the like: pause instead of spinning.
                Err(_) => tokio::time::sleep(Duration::from_millis(10)).await,
            }
        }
    }

    fn local_addr(&self) -> io::Result<SocketAddr> {
        self.inner.local_addr()
    }
}
