//! `/v1/dead-letters`: list and replay (operator token).

use axum::extract::State;
use hookfleet_admin::dead_letters::{DeadLetter, ReplayReport};
use hookfleet_admin::input::ReplayRequest;
use serde::Deserialize;
use utoipa::IntoParams;

use crate::AppState;
use crate::auth::Caller;
use crate::body::{OptionalJson, Query};
use crate::error::{ApiResult, ErrorBody};

#[derive(Debug, Deserialize, IntoParams)]
pub struct ListQuery {
    /// How many (1–1000, default 100).
    pub limit: Option<usize>,
}

/// Dead letters, oldest first; the queue is left as it is.
#[utoipa::path(get, path = "/v1/dead-letters", tag = "dead letters", params(ListQuery),
    responses(
        (status = 200, description = "Dead letters", body = Vec<DeadLetter>),
        (status = 400, description = "Bad query", body = ErrorBody),
        (status = 401, description = "No valid token", body = ErrorBody),
        (status = 404, description = "Not for tenant tokens", body = ErrorBody),
        (status = 503, description = "RabbitMQ unavailable", body = ErrorBody),
    ))]
pub async fn list(
    State(state): State<AppState>,
    Caller(scope): Caller,
    Query(query): Query<ListQuery>,
) -> ApiResult<axum::Json<Vec<DeadLetter>>> {
    let letters = state
        .admin
        .dead_letters(&scope, query.limit.unwrap_or(100))
        .await?;
    Ok(axum::Json(letters))
}

/// Send dead letters back for delivery with a fresh attempt count; each leaves the dead-letter
/// queue only once its copy is confirmed.
#[utoipa::path(post, path = "/v1/dead-letters/replay", tag = "dead letters",
    request_body(content = Option<ReplayRequest>, description = "Optional: which, and how many"),
    responses(
        (status = 200, description = "What was replayed", body = ReplayReport),
        (status = 400, description = "Not JSON", body = ErrorBody),
        (status = 401, description = "No valid token", body = ErrorBody),
        (status = 404, description = "Not for tenant tokens", body = ErrorBody),
        (status = 413, description = "Body too large", body = ErrorBody),
        (status = 415, description = "Not sent as JSON", body = ErrorBody),
        (status = 422, description = "Invalid fields", body = ErrorBody),
        (status = 503, description = "RabbitMQ unavailable", body = ErrorBody),
    ))]
pub async fn replay(
    State(state): State<AppState>,
    Caller(scope): Caller,
    OptionalJson(request): OptionalJson<ReplayRequest>,
) -> ApiResult<axum::Json<ReplayReport>> {
    Ok(axum::Json(state.admin.replay(&scope, request).await?))
}
