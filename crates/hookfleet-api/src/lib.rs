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
//! - [`server`]: the HTTP server, with a header timeout and a connection cap.
//! - [`error`]: `{"error": {"code", "message", "fields"}}` answers.
//! - [`metrics`]: what `/metrics` shows.
#![forbid(unsafe_code)]

pub mod auth;
pub mod body;
pub mod console;
pub mod error;
pub mod metrics;
pub mod routes;
pub mod server;
pub mod tokens;

pub use server::{ServerLimits, serve};

use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use hookfleet_admin::Admin;
use hookfleet_store::Fresh;
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
    /// `/readyz`'s answer, at most a second old: a probe per second from every kubelet and
    /// load balancer must not open an AMQP channel each.
    readiness: Arc<Fresh<(), Readiness>>,
}

/// How the application answers, beyond its operations.
#[derive(Debug, Clone)]
pub struct AppSettings {
    /// Who may frame the console (`HOOKFLEET_CONSOLE_FRAME_ANCESTORS`).
    pub console_frame_ancestors: String,
    /// Longest a request may take, body included (`HOOKFLEET_API_REQUEST_TIMEOUT`).
    pub request_timeout: Duration,
}

impl Default for AppSettings {
    fn default() -> Self {
        Self {
            console_frame_ancestors: "'self'".to_owned(),
            request_timeout: Duration::from_secs(30),
        }
    }
}

/// What `/readyz` found.
#[derive(Debug, Clone)]
struct Readiness {
    missing: Vec<&'static str>,
}

/// How long `/readyz` serves the answer it found.
const READINESS_TTL: Duration = Duration::from_secs(1);

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
pub fn app(admin: Arc<Admin>, auth: Auth, metrics: ApiMetrics, settings: &AppSettings) -> Router {
    let (v1, openapi) = utoipa_axum::router::OpenApiRouter::with_openapi(ApiDoc::openapi())
        .merge(routes::v1())
        .split_for_parts();
    let openapi = openapi.to_pretty_json().unwrap_or_default();
    let state = AppState {
        admin,
        auth: Arc::new(auth),
        metrics,
        openapi: Bytes::from(openapi),
        readiness: Arc::new(Fresh::new(READINESS_TTL, READINESS_TTL)),
    };
    let timeout = settings.request_timeout;
    // Answers of /v1 carry secrets and tokens (create, rotate, mint) or tenant data: no cache
    // along the way may keep them.
    v1.layer(axum::middleware::map_response(no_store))
        .merge(console::routes(&settings.console_frame_ancestors))
        .route("/openapi.json", get(openapi_json))
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(ready))
        .route("/metrics", get(render_metrics))
        .fallback(|| async { ApiError::not_found("no such route") })
        .layer(axum::middleware::from_fn(move |request, next| {
            within(timeout, request, next)
        }))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            metrics::track,
        ))
        .layer(DefaultBodyLimit::max(body::MAX_BODY_BYTES))
        .with_state(state)
}

async fn no_store(mut response: Response) -> Response {
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

/// The request, answered within `limit` (a slow body included) or with 408.
async fn within(limit: Duration, request: Request, next: Next) -> Response {
    match tokio::time::timeout(limit, next.run(request)).await {
        Ok(response) => response,
        Err(_) => ApiError::new(
            StatusCode::REQUEST_TIMEOUT,
            "request_timeout",
            format!(
                "the request took longer than {} (HOOKFLEET_API_REQUEST_TIMEOUT)",
                humantime::format_duration(limit)
            ),
        )
        .into_response(),
    }
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

/// Ready while Redis answers and RabbitMQ takes a channel, each within 2 s; the answer is
/// found at most once a second, however many probes ask.
async fn ready(State(state): State<AppState>) -> impl IntoResponse {
    let found = state
        .readiness
        .get(&(), || async {
            Ok::<_, std::convert::Infallible>(check_readiness(&state).await)
        })
        .await;
    let Ok(Readiness { missing }) = found;
    if missing.is_empty() {
        (StatusCode::OK, Json(serde_json::json!({"ready": true})))
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(serde_json::json!({"ready": false, "missing": missing})),
        )
    }
}

async fn check_readiness(state: &AppState) -> Readiness {
    state.metrics.readiness_checks.inc();
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
    Readiness { missing }
}
