//! `/metrics`, `/healthz` and `/readyz` on `HOOKFLEET_METRICS_ADDR`.
//!
//! `/healthz` answers while the process runs; `/readyz` only while the worker consumes from
//! RabbitMQ and Redis answers, so Kubernetes routes no traffic to (and KEDA counts no capacity
//! in) a worker that cannot deliver.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use tokio_util::sync::CancellationToken;

use crate::metrics::Metrics;
use crate::{Error, Result};

/// What readiness depends on; each part is set by the task that knows it.
#[derive(Debug, Default)]
pub struct Health {
    consuming: AtomicBool,
    redis: AtomicBool,
}

impl Health {
    pub fn set_consuming(&self, yes: bool) {
        self.consuming.store(yes, Ordering::Relaxed);
    }

    pub fn set_redis(&self, yes: bool) {
        self.redis.store(yes, Ordering::Relaxed);
    }

    pub fn redis_up(&self) -> bool {
        self.redis.load(Ordering::Relaxed)
    }

    /// Waits until Redis answers again, at most `limit`.
    pub async fn wait_for_redis(&self, limit: Duration) {
        let deadline = tokio::time::Instant::now() + limit;
        while !self.redis_up() && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// `None` when ready, else what is missing.
    pub fn not_ready(&self) -> Option<&'static str> {
        match (
            self.consuming.load(Ordering::Relaxed),
            self.redis.load(Ordering::Relaxed),
        ) {
            (true, true) => None,
            (false, true) => Some("not consuming from RabbitMQ"),
            (true, false) => Some("Redis does not answer"),
            (false, false) => Some("not consuming from RabbitMQ; Redis does not answer"),
        }
    }
}

#[derive(Clone)]
struct AppState {
    metrics: Metrics,
    health: Arc<Health>,
}

/// Binds now (so a taken port fails the start) and serves until `shutdown`.
pub async fn serve(
    addr: SocketAddr,
    metrics: Metrics,
    health: Arc<Health>,
    shutdown: CancellationToken,
) -> Result<tokio::task::JoinHandle<()>> {
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|source| Error::Bind { addr, source })?;
    let app = Router::new()
        .route("/metrics", get(render_metrics))
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(ready))
        .with_state(AppState { metrics, health });
    tracing::info!(message = "Serving metrics and health.", addr = %addr);
    Ok(tokio::spawn(async move {
        let served = axum::serve(listener, app)
            .with_graceful_shutdown(shutdown.cancelled_owned())
            .await;
        if let Err(error) = served {
            tracing::error!(message = "Metrics server stopped.", %error);
        }
    }))
}

async fn render_metrics(State(state): State<AppState>) -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        state.metrics.render(),
    )
}

async fn ready(State(state): State<AppState>) -> impl IntoResponse {
    match state.health.not_ready() {
        None => (StatusCode::OK, "ready\n".to_owned()),
        Some(why) => (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("not ready: {why}\n"),
        ),
    }
}
