//! `/v1/endpoints`: create, list, get, change, remove, test, rotate the secret, attempts,
//! recover, statistics.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use hookfleet_admin::endpoints::{DEFAULT_ENDPOINTS_PAGE, MAX_ENDPOINTS_PAGE};
use hookfleet_admin::history::{RecoverRequest, Recovered};
use hookfleet_admin::input::{EndpointPatch, NewEndpoint, Rotation, TestRequest};
use hookfleet_admin::view::{EndpointView, TestResult};
use hookfleet_admin::{EndpointPage, Page};
use hookfleet_core::attempt::Attempt;
use hookfleet_history::view::EndpointStats;
use serde::Deserialize;
use utoipa::IntoParams;

use crate::AppState;
use crate::auth::Caller;
use crate::body::{Json, OptionalJson, Query};
use crate::error::{ApiResult, ErrorBody};

type Answer<T> = ApiResult<axum::Json<T>>;

/// Create an endpoint. The answer carries its `secret`, shown this once.
#[utoipa::path(post, path = "/v1/endpoints", tag = "endpoints",
    request_body = NewEndpoint,
    responses(
        (status = 201, description = "Created", body = EndpointView),
        (status = 400, description = "Not JSON", body = ErrorBody),
        (status = 401, description = "No valid token", body = ErrorBody),
        (status = 409, description = "The tenant has the most endpoints allowed", body = ErrorBody),
        (status = 413, description = "Body too large", body = ErrorBody),
        (status = 415, description = "Not sent as JSON", body = ErrorBody),
        (status = 422, description = "Invalid fields, each listed", body = ErrorBody),
    ))]
pub async fn create(
    State(state): State<AppState>,
    Caller(scope): Caller,
    Json(new): Json<NewEndpoint>,
) -> ApiResult<(StatusCode, axum::Json<EndpointView>)> {
    let view = state.admin.create_endpoint(&scope, new).await?;
    Ok((StatusCode::CREATED, axum::Json(view)))
}

#[derive(Debug, Deserialize, IntoParams)]
pub struct ListQuery {
    /// Only this tenant's endpoints (a tenant token sees only its own anyway).
    #[param(pattern = "^[!-~]{1,255}$")]
    pub tenant: Option<String>,
    /// How many (1–500, default 100).
    pub limit: Option<usize>,
    /// Where the previous page ended: its `next_cursor`.
    pub cursor: Option<String>,
}

/// List endpoints, a page at a time: a tenant token's own, or (operator) all or one tenant's.
#[utoipa::path(get, path = "/v1/endpoints", tag = "endpoints", params(ListQuery),
    responses(
        (status = 200, description = "A page of endpoints, oldest first, and the next page's cursor", body = EndpointPage),
        (status = 400, description = "Bad query or cursor", body = ErrorBody),
        (status = 401, description = "No valid token", body = ErrorBody),
        (status = 404, description = "A tenant the token does not see", body = ErrorBody),
        (status = 422, description = "Invalid tenant", body = ErrorBody),
    ))]
pub async fn list(
    State(state): State<AppState>,
    Caller(scope): Caller,
    Query(query): Query<ListQuery>,
) -> Answer<EndpointPage> {
    let page = Page {
        limit: query
            .limit
            .unwrap_or(DEFAULT_ENDPOINTS_PAGE)
            .clamp(1, MAX_ENDPOINTS_PAGE),
        cursor: query.cursor.as_deref(),
    };
    let listed = state
        .admin
        .list_endpoints(&scope, query.tenant.as_deref(), false, page)
        .await?;
    Ok(axum::Json(listed))
}

/// One endpoint (its secret is not shown).
#[utoipa::path(get, path = "/v1/endpoints/{id}", tag = "endpoints",
    params(("id" = String, Path, description = "The endpoint id")),
    responses(
        (status = 200, description = "The endpoint", body = EndpointView),
        (status = 401, description = "No valid token", body = ErrorBody),
        (status = 404, description = "No such endpoint the token sees", body = ErrorBody),
    ))]
pub async fn get(
    State(state): State<AppState>,
    Caller(scope): Caller,
    Path(id): Path<String>,
) -> Answer<EndpointView> {
    Ok(axum::Json(
        state.admin.get_endpoint(&scope, &id, false).await?,
    ))
}

/// Change an endpoint's URL, events, description or enabled flag; fields left out stay.
#[utoipa::path(patch, path = "/v1/endpoints/{id}", tag = "endpoints",
    params(("id" = String, Path, description = "The endpoint id")),
    request_body = EndpointPatch,
    responses(
        (status = 200, description = "The changed endpoint", body = EndpointView),
        (status = 400, description = "Not JSON", body = ErrorBody),
        (status = 401, description = "No valid token", body = ErrorBody),
        (status = 403, description = "A tenant token enabling an endpoint the operator disabled", body = ErrorBody),
        (status = 404, description = "No such endpoint the token sees", body = ErrorBody),
        (status = 409, description = "Other changes to the endpoint kept racing this one", body = ErrorBody),
        (status = 413, description = "Body too large", body = ErrorBody),
        (status = 415, description = "Not sent as JSON", body = ErrorBody),
        (status = 422, description = "Invalid fields, each listed", body = ErrorBody),
    ))]
pub async fn update(
    State(state): State<AppState>,
    Caller(scope): Caller,
    Path(id): Path<String>,
    Json(patch): Json<EndpointPatch>,
) -> Answer<EndpointView> {
    Ok(axum::Json(
        state.admin.update_endpoint(&scope, &id, patch).await?,
    ))
}

/// Remove an endpoint and its attempt log; answers what was removed.
#[utoipa::path(delete, path = "/v1/endpoints/{id}", tag = "endpoints",
    params(("id" = String, Path, description = "The endpoint id")),
    responses(
        (status = 200, description = "The removed endpoint", body = EndpointView),
        (status = 401, description = "No valid token", body = ErrorBody),
        (status = 404, description = "No such endpoint the token sees", body = ErrorBody),
    ))]
pub async fn remove(
    State(state): State<AppState>,
    Caller(scope): Caller,
    Path(id): Path<String>,
) -> Answer<EndpointView> {
    Ok(axum::Json(state.admin.remove_endpoint(&scope, &id).await?))
}

/// "Test Webhook": one signed `webhook.test` delivery now (or, with `event_type`, that
/// subscribed type's example), recorded in the attempt log.
#[utoipa::path(post, path = "/v1/endpoints/{id}/test", tag = "endpoints",
    params(("id" = String, Path, description = "The endpoint id")),
    request_body(content = Option<TestRequest>, description = "Optional: a type whose example to send"),
    responses(
        (status = 200, description = "What the delivery came to (delivered or not)", body = TestResult),
        (status = 400, description = "Not JSON", body = ErrorBody),
        (status = 401, description = "No valid token", body = ErrorBody),
        (status = 404, description = "No such endpoint the token sees", body = ErrorBody),
        (status = 413, description = "Body too large", body = ErrorBody),
        (status = 415, description = "Not sent as JSON", body = ErrorBody),
        (status = 422, description = "An event type that is not subscribed, or has no example", body = ErrorBody),
        (status = 429, description = "The tenant's tests of this minute are spent (HOOKFLEET_TEST_RATE); see Retry-After", body = ErrorBody),
    ))]
pub async fn test(
    State(state): State<AppState>,
    Caller(scope): Caller,
    Path(id): Path<String>,
    OptionalJson(request): OptionalJson<TestRequest>,
) -> Answer<TestResult> {
    Ok(axum::Json(
        state.admin.test_endpoint(&scope, &id, request).await?,
    ))
}

/// A new signing secret (given, or generated); the old one keeps signing beside it for 24 h.
/// The answer carries the new `secret`, shown this once.
#[utoipa::path(post, path = "/v1/endpoints/{id}/rotate-secret", tag = "endpoints",
    params(("id" = String, Path, description = "The endpoint id")),
    request_body(content = Option<Rotation>, description = "Optional: the new secret"),
    responses(
        (status = 200, description = "The endpoint with its new secret", body = EndpointView),
        (status = 400, description = "Not JSON", body = ErrorBody),
        (status = 401, description = "No valid token", body = ErrorBody),
        (status = 404, description = "No such endpoint the token sees", body = ErrorBody),
        (status = 409, description = "Other changes to the endpoint kept racing this one", body = ErrorBody),
        (status = 413, description = "Body too large", body = ErrorBody),
        (status = 415, description = "Not sent as JSON", body = ErrorBody),
        (status = 422, description = "Invalid secret", body = ErrorBody),
    ))]
pub async fn rotate_secret(
    State(state): State<AppState>,
    Caller(scope): Caller,
    Path(id): Path<String>,
    OptionalJson(rotation): OptionalJson<Rotation>,
) -> Answer<EndpointView> {
    Ok(axum::Json(
        state.admin.rotate_secret(&scope, &id, rotation).await?,
    ))
}

#[derive(Debug, Deserialize, IntoParams)]
pub struct AttemptsQuery {
    /// How many (1–1000, default 50).
    pub limit: Option<usize>,
    /// Only attempts older than this attempt id (from a previous page).
    pub before: Option<String>,
}

/// The endpoint's most recent attempts (worker and test), newest first.
#[utoipa::path(get, path = "/v1/endpoints/{id}/attempts", tag = "endpoints",
    params(("id" = String, Path, description = "The endpoint id"), AttemptsQuery),
    responses(
        (status = 200, description = "Attempts, newest first", body = Vec<Attempt>),
        (status = 400, description = "Bad query", body = ErrorBody),
        (status = 401, description = "No valid token", body = ErrorBody),
        (status = 404, description = "No such endpoint the token sees", body = ErrorBody),
    ))]
pub async fn attempts(
    State(state): State<AppState>,
    Caller(scope): Caller,
    Path(id): Path<String>,
    Query(query): Query<AttemptsQuery>,
) -> Answer<Vec<Attempt>> {
    let limit = query.limit.unwrap_or(50);
    let attempts = state
        .admin
        .attempts(&scope, &id, limit, query.before.as_deref())
        .await?;
    Ok(axum::Json(attempts))
}

/// Deliver again, oldest first, every event of the window whose last attempt at this endpoint
/// was not a 2xx (or that was never tried there). Needs the message history.
#[utoipa::path(post, path = "/v1/endpoints/{id}/recover", tag = "endpoints",
    params(("id" = String, Path, description = "The endpoint id")),
    request_body = RecoverRequest,
    responses(
        (status = 202, description = "Queued for delivery, in the order first handled", body = Recovered),
        (status = 400, description = "Not JSON", body = ErrorBody),
        (status = 401, description = "No valid token", body = ErrorBody),
        (status = 404, description = "No such endpoint the token sees, or no message history here", body = ErrorBody),
        (status = 413, description = "Body too large", body = ErrorBody),
        (status = 415, description = "Not sent as JSON", body = ErrorBody),
        (status = 422, description = "Bad times, or the endpoint is disabled", body = ErrorBody),
        (status = 503, description = "The history's database or RabbitMQ did not answer", body = ErrorBody),
    ))]
pub async fn recover(
    State(state): State<AppState>,
    Caller(scope): Caller,
    Path(id): Path<String>,
    Json(request): Json<RecoverRequest>,
) -> ApiResult<(StatusCode, axum::Json<Recovered>)> {
    let recovered = state.admin.recover(&scope, &id, request).await?;
    Ok((StatusCode::ACCEPTED, axum::Json(recovered)))
}

#[derive(Debug, Deserialize, IntoParams)]
pub struct StatsQuery {
    /// RFC 3339 (default: 24 hours ago).
    #[param(format = DateTime)]
    pub since: Option<String>,
}

/// The endpoint's attempts since a time: counts by outcome, latency p50/p99, and per hour.
/// Needs the message history.
#[utoipa::path(get, path = "/v1/endpoints/{id}/stats", tag = "endpoints",
    params(("id" = String, Path, description = "The endpoint id"), StatsQuery),
    responses(
        (status = 200, description = "The endpoint's statistics", body = EndpointStats),
        (status = 400, description = "Bad time", body = ErrorBody),
        (status = 401, description = "No valid token", body = ErrorBody),
        (status = 404, description = "No such endpoint the token sees, or no message history here", body = ErrorBody),
        (status = 503, description = "The history's database did not answer", body = ErrorBody),
    ))]
pub async fn stats(
    State(state): State<AppState>,
    Caller(scope): Caller,
    Path(id): Path<String>,
    Query(query): Query<StatsQuery>,
) -> Answer<EndpointStats> {
    let since = query.since.as_deref();
    Ok(axum::Json(
        state.admin.endpoint_stats(&scope, &id, since).await?,
    ))
}
