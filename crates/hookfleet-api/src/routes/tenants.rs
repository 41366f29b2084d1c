//! `POST /v1/tenants/{tenant}/tokens`: mint a tenant token, and
//! `POST /v1/tenants/{tenant}/tokens/revoke`: refuse every one minted so far (operator token).

use std::time::Duration;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use hookfleet_admin::Scope;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::AppState;
use crate::auth::Caller;
use crate::body::OptionalJson;
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::tokens::{DEFAULT_TTL, MAX_TTL};

/// Shortest lifetime: a token must outlive the page load that uses it.
const MIN_TTL: Duration = Duration::from_secs(60);

#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TokenRequest {
    /// How long the token lives, e.g. `15m` (default `1h`, at most `24h`).
    #[serde(default)]
    pub ttl: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct TenantToken {
    /// Send as `Authorization: Bearer <token>`.
    pub token: String,
    pub tenant: String,
    /// RFC 3339, UTC.
    pub expires_at: String,
}

/// Mint a signed, expiring token that sees only this tenant's endpoints, attempts and tests:
/// what a platform hands its customer's dashboard page.
#[utoipa::path(post, path = "/v1/tenants/{tenant}/tokens", tag = "tenants",
    params(("tenant" = String, Path, description = "The tenant", pattern = "^[!-~]{1,255}$")),
    request_body(content = Option<TokenRequest>, description = "Optional: the lifetime"),
    responses(
        (status = 201, description = "The token", body = TenantToken),
        (status = 400, description = "Not JSON", body = ErrorBody),
        (status = 401, description = "No valid token", body = ErrorBody),
        (status = 404, description = "Not for tenant tokens", body = ErrorBody),
        (status = 413, description = "Body too large", body = ErrorBody),
        (status = 415, description = "Not sent as JSON", body = ErrorBody),
        (status = 422, description = "Invalid tenant or ttl", body = ErrorBody),
    ))]
pub async fn mint_token(
    State(state): State<AppState>,
    Caller(scope): Caller,
    Path(tenant): Path<String>,
    OptionalJson(request): OptionalJson<TokenRequest>,
) -> ApiResult<(StatusCode, axum::Json<TenantToken>)> {
    if scope != Scope::Operator {
        return Err(ApiError::not_found("route not found"));
    }
    let tenant =
        hookfleet_admin::input::tenant(&tenant).map_err(|m| ApiError::field("tenant", m))?;
    if tenant == state.admin.config().operator_tenant {
        let why = "the operator tenant (HOOKFLEET_OPERATOR_TENANT) is hookfleet's own: its endpoints are the operator's to manage, with the operator token";
        return Err(ApiError::field("tenant", why));
    }
    let ttl = match request.ttl.as_deref() {
        None => DEFAULT_TTL,
        Some(text) => parse_ttl(text).map_err(|m| ApiError::field("ttl", m))?,
    };
    let now = time::OffsetDateTime::now_utc();
    let now_ms = (now.unix_timestamp_nanos() / 1_000_000) as i64;
    let expires = now.unix_timestamp() + ttl.as_secs() as i64;
    let token = state.auth.token_key.mint(&tenant, now_ms, expires);
    tracing::info!(message = "Tenant token minted.", %tenant, ttl = %humantime::format_duration(ttl));
    Ok((
        StatusCode::CREATED,
        axum::Json(TenantToken {
            token,
            tenant: tenant.to_string(),
            expires_at: hookfleet_admin::view::rfc3339(expires),
        }),
    ))
}

/// Revoke every token of this tenant minted until now: each API replica refuses them within
/// a second. Tokens minted afterwards work.
#[utoipa::path(post, path = "/v1/tenants/{tenant}/tokens/revoke", tag = "tenants",
    params(("tenant" = String, Path, description = "The tenant", pattern = "^[!-~]{1,255}$")),
    responses(
        (status = 204, description = "Revoked"),
        (status = 401, description = "No valid token", body = ErrorBody),
        (status = 404, description = "Not for tenant tokens", body = ErrorBody),
        (status = 422, description = "Invalid tenant", body = ErrorBody),
        (status = 503, description = "Redis does not answer", body = ErrorBody),
    ))]
pub async fn revoke_tokens(
    State(state): State<AppState>,
    Caller(scope): Caller,
    Path(tenant): Path<String>,
) -> ApiResult<StatusCode> {
    state.admin.revoke_tokens(&scope, &tenant).await?;
    Ok(StatusCode::NO_CONTENT)
}

fn parse_ttl(text: &str) -> Result<Duration, String> {
    let ttl = humantime::parse_duration(text.trim())
        .map_err(|e| format!("{e}: expected a duration such as 15m or 2h"))?;
    if !(MIN_TTL..=MAX_TTL).contains(&ttl) {
        return Err("must be between 1m and 24h".to_owned());
    }
    Ok(ttl)
}

#[cfg(test)]
mod tests {
    #[test]
    fn ttls_are_bounded() {
        assert!(super::parse_ttl("15m").is_ok());
        assert!(super::parse_ttl("24h").is_ok());
        for bad in ["25h", "10s", "soon", ""] {
            assert!(super::parse_ttl(bad).is_err(), "{bad}");
        }
    }
}
