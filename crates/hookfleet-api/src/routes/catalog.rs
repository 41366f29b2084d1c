//! `GET /v1/event-types`: the catalog, so that a dashboard offers exactly the types endpoints
//! may subscribe to (the catalog is configuration, `HOOKFLEET_EVENT_TYPES`).

use axum::extract::State;

use crate::AppState;
use crate::auth::Caller;
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
