//! `GET /v1/event-types`: the catalog, so that a dashboard offers exactly the types endpoints
//! may subscribe to (the catalog is configuration, `HOOKFLEET_EVENT_TYPES`), with what each
//! carries; `PUT /v1/event-types/{type}` to describe one (schema, example); and
//! `POST /v1/filters/test`, to try a payload filter before saving it.

use axum::extract::{Path, State};

use hookfleet_admin::catalog::{EventTypeView, PutEventType};
use hookfleet_admin::input::FilterTrial;
use hookfleet_admin::view::FilterMatch;

use crate::AppState;
use crate::auth::Caller;
use crate::body::Json;
use crate::error::{ApiResult, ErrorBody};

/// The event types endpoints may subscribe to, each with its description, schema, example
/// and whether it is deprecated (any token); for the operator token, then hookfleet's
/// operational types (`endpoint.*`, `message.attempt.*`) with their built-in schemas.
#[utoipa::path(get, path = "/v1/event-types", tag = "events",
    responses(
        (status = 200, description = "The catalog, sorted", body = Vec<EventTypeView>),
        (status = 401, description = "No valid token", body = ErrorBody),
        (status = 503, description = "Redis did not answer", body = ErrorBody),
    ))]
pub async fn list(
    State(state): State<AppState>,
    Caller(scope): Caller,
) -> ApiResult<axum::Json<Vec<EventTypeView>>> {
    Ok(axum::Json(state.admin.event_types(&scope).await?))
}

/// Describes an event type of the catalog (operator token): a JSON Schema 2020-12 that every
/// published event's `data` must meet, an example (checked against it; Test Webhook sends
/// it), and whether it is deprecated. Replaces what was said before.
#[utoipa::path(put, path = "/v1/event-types/{type}", tag = "events",
    params(("type" = String, Path, description = "A type of the catalog")),
    request_body = PutEventType,
    responses(
        (status = 200, description = "As now described", body = EventTypeView),
        (status = 400, description = "Not JSON", body = ErrorBody),
        (status = 401, description = "No valid token", body = ErrorBody),
        (status = 404, description = "Not a type of the catalog, or not for tenant tokens", body = ErrorBody),
        (status = 413, description = "Body too large", body = ErrorBody),
        (status = 415, description = "Not sent as JSON", body = ErrorBody),
        (status = 422, description = "An invalid schema, or an example that does not meet it (`error.fields[].pointer`)", body = ErrorBody),
        (status = 503, description = "Redis did not answer", body = ErrorBody),
    ))]
pub async fn put(
    State(state): State<AppState>,
    Caller(scope): Caller,
    Path(name): Path<String>,
    Json(put): Json<PutEventType>,
) -> ApiResult<axum::Json<EventTypeView>> {
    Ok(axum::Json(
        state.admin.put_event_type(&scope, &name, put).await?,
    ))
}

/// Whether a payload filter matches an example `data` (any token; nothing is stored).
#[utoipa::path(post, path = "/v1/filters/test", tag = "endpoints",
    request_body = FilterTrial,
    responses(
        (status = 200, description = "Whether it matches", body = FilterMatch),
        (status = 400, description = "Not JSON", body = ErrorBody),
        (status = 401, description = "No valid token", body = ErrorBody),
        (status = 413, description = "Body too large", body = ErrorBody),
        (status = 415, description = "Not sent as JSON", body = ErrorBody),
        (status = 422, description = "The filter is invalid (`error.fields` names where)", body = ErrorBody),
    ))]
pub async fn test_filter(
    State(state): State<AppState>,
    _caller: Caller,
    Json(trial): Json<FilterTrial>,
) -> ApiResult<axum::Json<FilterMatch>> {
    Ok(axum::Json(state.admin.test_filter(trial)?))
}
