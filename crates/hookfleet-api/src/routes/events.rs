//! `POST /v1/events`: publish one event, confirmed by the broker.

use axum::extract::State;
use axum::http::StatusCode;
use hookfleet_admin::input::NewEvent;
use hookfleet_admin::view::Published;

use crate::AppState;
use crate::auth::Caller;
use crate::body::Json;
use crate::error::{ApiResult, ErrorBody};

/// Publish an event (operator token). Answers once RabbitMQ confirmed it; a repeated `id` is
/// accepted and still delivered once per endpoint.
#[utoipa::path(post, path = "/v1/events", tag = "events",
    request_body = NewEvent,
    responses(
        (status = 202, description = "Published; delivery follows", body = Published),
        (status = 400, description = "Not JSON", body = ErrorBody),
        (status = 401, description = "No valid token", body = ErrorBody),
        (status = 404, description = "Not for tenant tokens", body = ErrorBody),
        (status = 413, description = "Body too large", body = ErrorBody),
        (status = 415, description = "Not sent as JSON", body = ErrorBody),
        (status = 422, description = "Invalid fields, each listed", body = ErrorBody),
        (status = 503, description = "RabbitMQ did not confirm", body = ErrorBody),
    ))]
pub async fn publish(
    State(state): State<AppState>,
    Caller(scope): Caller,
    Json(event): Json<NewEvent>,
) -> ApiResult<(StatusCode, axum::Json<Published>)> {
    let published = state.admin.publish(&scope, event).await?;
    Ok((StatusCode::ACCEPTED, axum::Json(published)))
}
