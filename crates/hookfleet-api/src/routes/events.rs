//! `/v1/events`: publish one event, confirmed by the broker; search the message history, read
//! an event and its attempts, resend it.

use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use hookfleet_admin::history::{EventSearch, ResendRequest, Resent};
use hookfleet_admin::input::NewEvent;
use hookfleet_admin::view::Published;
use hookfleet_history::view::{EventAttempt, EventDetail, EventPage};
use serde::Deserialize;
use utoipa::IntoParams;

use crate::AppState;
use crate::auth::Caller;
use crate::body::{Json, Query};
use crate::error::{ApiResult, ErrorBody};

/// Publish an event (operator token); its `data` must meet its type's schema (422 with each
/// fault's `pointer`). Answers once RabbitMQ confirmed it. An `id` accepted in
/// the last 24 h is answered 202 again without publishing; 409 when that id was another event
/// or is being published right now.
#[utoipa::path(post, path = "/v1/events", tag = "events",
    request_body = NewEvent,
    responses(
        (status = 202, description = "Published; delivery follows", body = Published,
            headers(("deprecation" = String, description = "When the type is deprecated: `@<unix seconds>` since when (RFC 9745)"))),
        (status = 400, description = "Not JSON", body = ErrorBody),
        (status = 401, description = "No valid token", body = ErrorBody),
        (status = 404, description = "Not for tenant tokens", body = ErrorBody),
        (status = 409, description = "The id was another event in the last 24 h, or is being published", body = ErrorBody),
        (status = 413, description = "Body too large", body = ErrorBody),
        (status = 415, description = "Not sent as JSON", body = ErrorBody),
        (status = 422, description = "Invalid fields, each listed", body = ErrorBody),
        (status = 503, description = "RabbitMQ did not confirm", body = ErrorBody),
    ))]
pub async fn publish(
    State(state): State<AppState>,
    Caller(scope): Caller,
    Json(event): Json<NewEvent>,
) -> ApiResult<(StatusCode, HeaderMap, axum::Json<Published>)> {
    let published = state.admin.publish(&scope, event).await?;
    let mut headers = HeaderMap::new();
    if let Some(since) = published.deprecated_since {
        // RFC 9745: the moment the type was deprecated, as a structured date.
        if let Ok(value) = HeaderValue::from_str(&format!("@{since}")) {
            headers.insert("deprecation", value);
        }
    }
    Ok((StatusCode::ACCEPTED, headers, axum::Json(published)))
}

#[derive(Debug, Deserialize, IntoParams)]
pub struct EventsQuery {
    /// Only this tenant's events (a tenant token sees only its own anyway).
    #[param(pattern = "^[!-~]{1,255}$")]
    pub tenant: Option<String>,
    /// Only events of this type.
    #[serde(rename = "type")]
    #[param(rename = "type")]
    pub event_type: Option<String>,
    /// `delivered`, `failed` (some endpoint is retrying or gave up) or `pending` (some
    /// endpoint not tried yet).
    pub status: Option<String>,
    /// RFC 3339: events first handled at or after this.
    #[param(format = DateTime)]
    pub since: Option<String>,
    /// RFC 3339: events first handled before this.
    #[param(format = DateTime)]
    pub until: Option<String>,
    /// How many (1–250, default 50).
    pub limit: Option<usize>,
    /// Where the previous page ended: its `next_cursor`.
    pub cursor: Option<String>,
}

/// Search the message history, newest first. A page filtered by `status` may be short (even
/// empty) and still have a `next_cursor`: each page looks at 2,000 events at most.
#[utoipa::path(get, path = "/v1/events", tag = "events", params(EventsQuery),
    responses(
        (status = 200, description = "A page of events, newest first", body = EventPage),
        (status = 400, description = "Bad query, time or cursor", body = ErrorBody),
        (status = 401, description = "No valid token", body = ErrorBody),
        (status = 404, description = "A tenant the token does not see, or no message history here", body = ErrorBody),
        (status = 422, description = "Invalid tenant", body = ErrorBody),
        (status = 503, description = "The history's database did not answer", body = ErrorBody),
    ))]
pub async fn list(
    State(state): State<AppState>,
    Caller(scope): Caller,
    Query(query): Query<EventsQuery>,
) -> ApiResult<axum::Json<EventPage>> {
    let search = EventSearch {
        tenant: query.tenant.as_deref(),
        event_type: query.event_type.as_deref(),
        status: query.status.as_deref(),
        since: query.since.as_deref(),
        until: query.until.as_deref(),
        limit: query.limit,
        cursor: query.cursor.as_deref(),
    };
    Ok(axum::Json(state.admin.list_events(&scope, search).await?))
}

/// One event from the history: its payload and, per endpoint it was meant for, where it
/// stands. The history holds what workers did: an event just published is found once a worker
/// has handled it and recorded the batch (about 100 ms later).
#[utoipa::path(get, path = "/v1/events/{id}", tag = "events",
    params(("id" = String, Path, description = "The event id")),
    responses(
        (status = 200, description = "The event", body = EventDetail),
        (status = 401, description = "No valid token", body = ErrorBody),
        (status = 404, description = "No such event the token sees, or none a worker has handled yet", body = ErrorBody),
        (status = 503, description = "The history's database did not answer", body = ErrorBody),
    ))]
pub async fn get(
    State(state): State<AppState>,
    Caller(scope): Caller,
    Path(id): Path<String>,
) -> ApiResult<axum::Json<EventDetail>> {
    Ok(axum::Json(state.admin.get_event(&scope, &id).await?))
}

/// Every attempt at every endpoint for the event, oldest first.
#[utoipa::path(get, path = "/v1/events/{id}/attempts", tag = "events",
    params(("id" = String, Path, description = "The event id")),
    responses(
        (status = 200, description = "Attempts, oldest first", body = Vec<EventAttempt>),
        (status = 401, description = "No valid token", body = ErrorBody),
        (status = 404, description = "No such event the token sees", body = ErrorBody),
        (status = 503, description = "The history's database did not answer", body = ErrorBody),
    ))]
pub async fn attempts(
    State(state): State<AppState>,
    Caller(scope): Caller,
    Path(id): Path<String>,
) -> ApiResult<axum::Json<Vec<EventAttempt>>> {
    Ok(axum::Json(state.admin.event_attempts(&scope, &id).await?))
}

/// Deliver the stored event to one endpoint once more, even if it got it already (same
/// `webhook-id`).
#[utoipa::path(post, path = "/v1/events/{id}/resend", tag = "events",
    params(("id" = String, Path, description = "The event id")),
    request_body = ResendRequest,
    responses(
        (status = 202, description = "Queued for delivery", body = Resent),
        (status = 400, description = "Not JSON", body = ErrorBody),
        (status = 401, description = "No valid token", body = ErrorBody),
        (status = 404, description = "No such event or endpoint the token sees", body = ErrorBody),
        (status = 410, description = "The event's payload is past HOOKFLEET_PAYLOAD_RETENTION", body = ErrorBody),
        (status = 413, description = "Body too large", body = ErrorBody),
        (status = 415, description = "Not sent as JSON", body = ErrorBody),
        (status = 422, description = "The endpoint is disabled or does not subscribe to the event's type", body = ErrorBody),
        (status = 503, description = "The history's database or RabbitMQ did not answer", body = ErrorBody),
    ))]
pub async fn resend(
    State(state): State<AppState>,
    Caller(scope): Caller,
    Path(id): Path<String>,
    Json(request): Json<ResendRequest>,
) -> ApiResult<(StatusCode, axum::Json<Resent>)> {
    let resent = state.admin.resend(&scope, &id, request).await?;
    Ok((StatusCode::ACCEPTED, axum::Json(resent)))
}
