//! hookfleet's admin HTTP API (docs/contract.md §5): endpoints, "Test Webhook", secret
//! rotation, the attempt log, publishing, dead letters and tenant tokens, over
//! [`hookfleet_admin::Admin`], the same operations the CLI runs.
//!
//! # Layout
//! - [`console`]: the web console at `/`, embedded in the binary.
//! - [`auth`]: who is calling (operator token, tenant token), compared in constant time.
//! - [`tokens`]: signed, expiring tenant tokens; nothing stored.
//! - [`routes`]: the `/v1` handlers, each with its OpenAPI description.
//! - [`body`]: JSON bodies and queries, refused in the API's error shape.
//! - [`error`]: `{"error": {"code", "message", "fields"}}` answers.
//! - [`metrics`]: what `/metrics` shows.
#![forbid(unsafe_code)]

pub mod auth;
pub mod body;
pub mod console;
pub mod error;
pub mod metrics;
pub mod routes;
pub mod tokens;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::{Json, Router};
use hookfleet_admin::Admin;
use tokio_util::sync::CancellationToken;
use utoipa::OpenApi;
use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};

use crate::auth::Auth;
use crate::error::ApiError;
use crate::metrics::ApiMetrics;

/// What every handler shares.
#[derive(Debug, Clone)]
pub struct AppState {
    pub admin: Arc<Admin>,
    pub auth: Arc<Auth>,
    pub metrics: ApiMetrics,
    /// The OpenAPI document, rendered once.
    pub openapi: Bytes,
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "hookfleet admin API",
        description = "Manage webhook endpoints, test them, read their attempt log, publish events and replay dead letters. Every /v1 route needs `Authorization: Bearer <token>`: the operator token, or a tenant token that sees one tenant only.",
        license(name = "MIT OR Apache-2.0")
    ),
    modifiers(&BearerAuth),
    security(("bearer" = []))
)]
struct ApiDoc;

struct BearerAuth;

impl utoipa::Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(Http::new(HttpAuthScheme::Bearer)),
        );
    }
}

/// The whole application: `/v1`, `/openapi.json`, `/healthz`, `/readyz`, `/metrics`.
pub fn app(admin: Arc<Admin>, auth: Auth, metrics: ApiMetrics) -> Router {
    let (v1, openapi) = utoipa_axum::router::OpenApiRouter::with_openapi(ApiDoc::openapi())
        .merge(routes::v1())
        .split_for_parts();
    let openapi = openapi.to_pretty_json().unwrap_or_default();
    let state = AppState {
        admin,
        auth: Arc::new(auth),
        metrics,
        openapi: Bytes::from(openapi),
    };
    v1.merge(console::routes())
        .route("/openapi.json", get(openapi_json))
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(ready))
        .route("/metrics", get(render_metrics))
        .fallback(|| async { ApiError::not_found("no such route") })
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            metrics::track,
        ))
        .layer(DefaultBodyLimit::max(body::MAX_BODY_BYTES))
        .with_state(state)
}

/// Binds `addr` now (so a taken port fails the start), then serves until `shutdown`.
/// Returns the bound address (useful with port 0) and the server's task.
pub async fn serve(
    addr: SocketAddr,
    app: Router,
    shutdown: CancellationToken,
) -> std::io::Result<(SocketAddr, tokio::task::JoinHandle<std::io::Result<()>>)> {
    let listener = tokio::net::TcpListener::bind(addr).await?;
    let bound = listener.local_addr()?;
    let task = tokio::spawn(async move {
        axum::serve(listener, app)
            .with_graceful_shutdown(shutdown.cancelled_owned())
            .await
    });
    Ok((bound, task))
}

async fn openapi_json(State(state): State<AppState>) -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "application/json")],
        state.openapi.clone(),
    )
}

async fn render_metrics(State(state): State<AppState>) -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        state.metrics.render(),
    )
}

/// Ready while Redis answers and RabbitMQ takes a channel, each within 2 s.
async fn ready(State(state): State<AppState>) -> impl IntoResponse {
    let limit = Duration::from_secs(2);
    let redis = tokio::time::timeout(limit, state.admin.redis_ready())
        .await
        .unwrap_or(false);
    let broker = match tokio::time::timeout(limit, state.admin.broker().channel()).await {
        Ok(Ok(channel)) => {
            let _ = channel.close(200, "ready".into()).await;
            true
        }
        _ => false,
    };
    let missing: Vec<&str> = [
        (redis, "Redis does not answer"),
        (broker, "RabbitMQ does not answer"),
    ]
    .into_iter()
    .filter(|(ok, _)| !ok)
    .map(|(_, why)| why)
    .collect();
    if missing.is_empty() {
        (StatusCode::OK, Json(serde_json::json!({"ready": true})))
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(serde_json::json!({"ready": false, "missing": missing})),
        )
    }
}
