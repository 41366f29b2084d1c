//! [`Receiver`]: a real HTTP server on 127.0.0.1 standing in for customers' endpoints. It
//! records every request per path and answers as the test programmes it: a queue of replies
//! consumed in order, then a default that can be switched mid-test.

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};

/// One request as it arrived.
#[derive(Debug, Clone)]
pub struct Recorded {
    pub method: Method,
    pub headers: HeaderMap,
    pub body: Bytes,
    /// When the request arrived, to measure latency and spacing between attempts.
    pub at: Instant,
}

impl Recorded {
    /// A header as text; panics when it is missing (every contract header is mandatory).
    pub fn header(&self, name: &str) -> &str {
        self.headers
            .get(name)
            .unwrap_or_else(|| panic!("no {name} header in {:?}", self.headers))
            .to_str()
            .unwrap()
    }
}

/// How to answer one request.
#[derive(Debug, Clone, Copy)]
pub struct Reply {
    pub status: u16,
    /// How long to wait before answering (to play a slow or timing-out receiver).
    pub delay: Duration,
}

impl Reply {
    pub fn status(status: u16) -> Self {
        Self {
            status,
            delay: Duration::ZERO,
        }
    }

    pub fn delayed(self, delay: Duration) -> Self {
        Self { delay, ..self }
    }
}

impl Default for Reply {
    fn default() -> Self {
        Self::status(200)
    }
}

#[derive(Debug, Default)]
struct Route {
    requests: Vec<Recorded>,
    /// Replies to use first, in order.
    queued: VecDeque<Reply>,
    /// The reply once `queued` is empty.
    default: Reply,
}

type Routes = Arc<Mutex<HashMap<String, Route>>>;

#[derive(Debug)]
pub struct Receiver {
    addr: SocketAddr,
    routes: Routes,
    /// The server task, aborted on drop so no test leaves a listener behind.
    server: tokio::task::JoinHandle<()>,
}

impl Receiver {
    pub async fn start() -> Self {
        let routes = Routes::default();
        let app = Router::new()
            .fallback(record)
            .with_state(Arc::clone(&routes));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let server = tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        Self {
            addr,
            routes,
            server,
        }
    }

    /// The URL of `path` (which starts with `/`) on this receiver.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// Answers the next requests to `path` with `replies`, in order, before the default.
    pub fn enqueue(&self, path: &str, replies: impl IntoIterator<Item = Reply>) {
        self.with_route(path, |route| route.queued.extend(replies));
    }

    /// Sets how `path` answers once its queued replies are used up.
    pub fn set_default(&self, path: &str, reply: Reply) {
        self.with_route(path, |route| route.default = reply);
    }

    /// Every request to `path` so far, in arrival order.
    pub fn requests(&self, path: &str) -> Vec<Recorded> {
        self.with_route(path, |route| route.requests.clone())
    }

    pub fn count(&self, path: &str) -> usize {
        self.with_route(path, |route| route.requests.len())
    }

    fn with_route<T>(&self, path: &str, f: impl FnOnce(&mut Route) -> T) -> T {
        f(self
            .routes
            .lock()
            .unwrap()
            .entry(path.to_owned())
            .or_default())
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.server.abort();
    }
}

async fn record(
    State(routes): State<Routes>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> StatusCode {
    let reply = {
        let mut routes = routes.lock().unwrap();
        let route = routes.entry(uri.path().to_owned()).or_default();
        route.requests.push(Recorded {
            method,
            headers,
            body,
            at: Instant::now(),
        });
        route.queued.pop_front().unwrap_or(route.default)
    };
    tokio::time::sleep(reply.delay).await;
    StatusCode::from_u16(reply.status).unwrap()
}
