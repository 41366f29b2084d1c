//! Receivers: real HTTP servers on 127.0.0.1 that count deliveries by (path, `webhook-id`), and
//! the faults a customer's endpoint can have.
//!
//! Every [`Server`] has its own port, so each can fail on its own: go down (its listener is
//! closed: connections are refused), reset connections (it accepts and closes them without a
//! word), answer slowly, or answer 500 to chosen event ids forever. They all write into one
//! [`Tally`], which tells first deliveries from duplicates. A 2xx is counted when the
//! handler returns it, i.e. what the worker was told.

use std::collections::{HashMap, HashSet};
use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, Uri};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// One (path, event id)'s history.
#[derive(Debug, Default, Clone, Copy)]
struct Seen {
    requests: u32,
    /// 2xx answers given.
    ok: u32,
}

/// How one path answers.
#[derive(Debug, Default, Clone)]
struct Behaviour {
    delay: Duration,
    /// Event ids answered 500, every time (poison).
    refuse: HashSet<String>,
}

#[derive(Debug, Default)]
struct Inner {
    seen: HashMap<String, HashMap<String, Seen>>,
    /// When each 2xx was answered, per path, in order.
    answered: HashMap<String, Vec<Instant>>,
    behaviour: HashMap<String, Behaviour>,
}

/// Deliveries per path, shared by every server of a scenario.
#[derive(Debug, Default)]
pub struct Tally {
    state: Mutex<Inner>,
}

/// What one path received, compared with what it should have.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Count {
    /// Expected event ids answered 2xx at least once.
    pub delivered: usize,
    /// 2xx answers beyond the first, per event id (summed).
    pub duplicates: usize,
    /// Requests of any kind.
    pub requests: usize,
}

impl Tally {
    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Makes `path` wait `delay` before answering.
    pub fn set_delay(&self, path: &str, delay: Duration) {
        self.lock()
            .behaviour
            .entry(path.to_owned())
            .or_default()
            .delay = delay;
    }

    /// Makes `path` answer 500 to `event_id`, always.
    pub fn refuse(&self, path: &str, event_id: &str) {
        self.lock()
            .behaviour
            .entry(path.to_owned())
            .or_default()
            .refuse
            .insert(event_id.to_owned());
    }

    /// What `path` got of `expected`.
    pub fn count(&self, path: &str, expected: &HashSet<String>) -> Count {
        let state = self.lock();
        let Some(seen) = state.seen.get(path) else {
            return Count::default();
        };
        let mut count = Count::default();
        for (id, s) in seen {
            count.requests += s.requests as usize;
            count.duplicates += s.ok.saturating_sub(1) as usize;
            if s.ok > 0 && expected.contains(id) {
                count.delivered += 1;
            }
        }
        count
    }

    /// Requests `path` got for `event_id`, and how many it answered 2xx.
    pub fn seen(&self, path: &str, event_id: &str) -> (u32, u32) {
        let state = self.lock();
        let s = state
            .seen
            .get(path)
            .and_then(|m| m.get(event_id))
            .copied()
            .unwrap_or_default();
        (s.requests, s.ok)
    }

    /// When `path` first answered 2xx at or after `since` (e.g. the first delivery after a
    /// fault).
    pub fn first_ok_after(&self, path: &str, since: Instant) -> Option<Instant> {
        let state = self.lock();
        let times = state.answered.get(path)?;
        let i = times.partition_point(|t| *t < since);
        times.get(i).copied()
    }

    /// Called on arrival: records the request, returns how to answer.
    fn arrive(&self, path: &str, id: &str) -> (Duration, StatusCode) {
        let mut state = self.lock();
        let behaviour = state.behaviour.get(path).cloned().unwrap_or_default();
        let seen = state.seen.entry(path.to_owned()).or_default();
        seen.entry(id.to_owned()).or_default().requests += 1;
        let status = if behaviour.refuse.contains(id) {
            StatusCode::INTERNAL_SERVER_ERROR
        } else {
            StatusCode::OK
        };
        (behaviour.delay, status)
    }

    /// Called when a 2xx is handed back.
    fn answered_ok(&self, path: &str, id: &str) {
        let mut state = self.lock();
        let seen = state.seen.entry(path.to_owned()).or_default();
        seen.entry(id.to_owned()).or_default().ok += 1;
        let answered = state.answered.entry(path.to_owned()).or_default();
        answered.push(Instant::now());
    }
}

async fn handle(State(tally): State<Arc<Tally>>, uri: Uri, headers: HeaderMap) -> StatusCode {
    let id = headers
        .get("webhook-id")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    let path = uri.path();
    let (delay, status) = tally.arrive(path, &id);
    tokio::time::sleep(delay).await;
    if status.is_success() {
        tally.answered_ok(path, &id);
    }
    status
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

/// One receiver port: every path on it is counted in the shared [`Tally`].
#[derive(Debug)]
pub struct Server {
    addr: SocketAddr,
    tally: Arc<Tally>,
    reset: Arc<AtomicBool>,
    /// The running server and the switch that stops it; `None` while down.
    running: Option<(oneshot::Sender<()>, JoinHandle<()>)>,
}

impl Server {
    pub async fn start(tally: Arc<Tally>) -> anyhow::Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let mut server = Self {
            addr: listener.local_addr()?,
            tally,
            reset: Arc::default(),
            running: None,
        };
        server.serve(listener);
        Ok(server)
    }

    fn serve(&mut self, listener: TcpListener) {
        let app = Router::new()
            .fallback(handle)
            .with_state(Arc::clone(&self.tally));
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
        self.running = Some((stop, task));
    }

    /// The URL of `path` (starting with `/`) on this server.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// Accepts and closes every new connection without answering, or stops doing so.
    pub fn set_reset(&self, reset: bool) {
        self.reset.store(reset, Ordering::Relaxed);
    }

    /// Goes down the way a receiver being redeployed does: stops accepting (new connections
    /// are refused), closes idle keep-alive connections, and lets requests in flight finish.
    pub async fn down(&mut self) {
        if let Some((stop, task)) = self.running.take() {
            let _ = stop.send(());
            let _ = tokio::time::timeout(Duration::from_secs(10), task).await;
        }
    }

    /// Comes back on the same port.
    pub async fn up(&mut self) -> anyhow::Result<()> {
        if self.running.is_none() {
            let listener = TcpListener::bind(self.addr).await?;
            self.serve(listener);
        }
        Ok(())
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some((_, task)) = self.running.take() {
            task.abort();
        }
    }
}
