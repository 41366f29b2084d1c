//! `GET /v1/event-types`: the catalog, so that a dashboard offers exactly the types endpoints
//! may subscribe to (the catalog is configuration, `HOOKFLEET_EVENT_TYPES`); and
//! `POST /v1/filters/test`, to try a payload filter before saving it.

use axum::extract::State;

use hookfleet_admin::input::FilterTrial;
use hookfleet_admin::view::FilterMatch;

use crate::AppState;
use crate::auth::Caller;
use crate::body::Json;
use crate::error::{ApiResult, ErrorBody};

/// The event types endpoints may subscribe to (any token).
#[utoipa::path(get, path = "/v1/event-types", tag = "events",
    responses(
        (status = 200, description = "The catalog, sorted", body = Vec<String>),
        (status = 401, description = "No valid token", body = ErrorBody),
    ))]
pub async fn list(
    State(state): State<AppState>,
    _caller: Caller,
) -> ApiResult<axum::Json<Vec<String>>> {
    let types = state.admin.config().catalog.iter().map(|t| t.to_string());
    Ok(axum::Json(types.collect()))
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
