//! The API's HTTP server: what one client may hold of it.
//!
//! `axum::serve` has no header timeout and no connection cap, so 1,000 half-open connections
//! held it. Here each connection must send a request's headers within the header timeout
//! (counted afresh while a kept-alive connection waits for its next request, so idle
//! connections go too), at most `max_connections` are served at once (the rest wait in the
//! listen backlog), and a whole request has the request timeout (in [`crate::app`]).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

/// How much of the server one client can hold.
#[derive(Debug, Clone, Copy)]
pub struct ServerLimits {
    /// A connection that has not sent a request's headers this long after connecting, or
    /// after its previous answer, is closed (`HOOKFLEET_API_HEADER_TIMEOUT`).
    pub header_timeout: Duration,
    /// Connections served at once (`HOOKFLEET_API_MAX_CONNECTIONS`).
    pub max_connections: usize,
}

/// How long open connections may finish their requests once shutdown is asked for.
const DRAIN: Duration = Duration::from_secs(10);

/// Binds `addr` now (so a taken port fails the start), then serves until `shutdown`.
/// Returns the bound address (useful with port 0) and the server's task.
pub async fn serve(
    addr: SocketAddr,
    app: Router,
    limits: ServerLimits,
    shutdown: CancellationToken,
) -> std::io::Result<(SocketAddr, tokio::task::JoinHandle<std::io::Result<()>>)> {
    let listener = TcpListener::bind(addr).await?;
    let bound = listener.local_addr()?;
    let task = tokio::spawn(accept(listener, app, limits, shutdown));
    Ok((bound, task))
}

async fn accept(
    listener: TcpListener,
    app: Router,
    limits: ServerLimits,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    let slots = Arc::new(Semaphore::new(limits.max_connections.max(1)));
    let graceful = GracefulShutdown::new();
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout);
    loop {
        let slot = tokio::select! {
            slot = slots.clone().acquire_owned() => slot.expect("the semaphore is never closed"),
            () = shutdown.cancelled() => break,
        };
        let stream = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(error) => {
                    // Out of file descriptors, most likely: wait for some to close.
                    tracing::warn!(message = "Cannot accept a connection.", %error);
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            () = shutdown.cancelled() => break,
        };
        let _ = stream.set_nodelay(true);
        let service = TowerToHyperService::new(app.clone());
        let connection = graceful.watch(http.serve_connection(TokioIo::new(stream), service));
        tokio::spawn(async move {
            // A client that goes away or times out ends its connection; nothing to report.
            let _ = connection.await;
            drop(slot);
        });
    }
    drop(listener);
    if tokio::time::timeout(DRAIN, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!(message = "Closing connections that were still busy after the drain.");
    }
    Ok(())
}
