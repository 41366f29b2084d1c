//! Who is calling: the operator token, a tenant token, or (only with `--insecure-no-auth`)
//! anyone.

use std::time::Duration;

use axum::extract::FromRequestParts;
use axum::http::header;
use axum::http::request::Parts;
use hookfleet_admin::{Admin, Scope};
use hookfleet_core::TenantId;
use hookfleet_store::Fresh;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::AppState;
use crate::error::ApiError;
use crate::tokens::{Refused, TokenKey, Verified};

/// How long a tenant's revocation moment is cached: a revocation takes effect on every API
/// replica within this.
pub const REVOCATION_CACHE: Duration = Duration::from_secs(1);

/// How requests are authenticated.
pub struct Auth {
    /// SHA-256 of `HOOKFLEET_API_TOKEN`; `None` only with `--insecure-no-auth`, where a
    /// request without a token is the operator's. Digests are compared, so the comparison
    /// takes the same time whatever the length of a guess.
    operator_digest: Option<[u8; 32]>,
    /// Signs and checks tenant tokens.
    pub token_key: TokenKey,
    /// Each tenant's "tokens issued before this are revoked" moment, as read from Redis.
    revocations: Fresh<TenantId, Option<i64>>,
}

impl std::fmt::Debug for Auth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let operator = self.operator_digest.map(|_| "***");
        f.debug_struct("Auth")
            .field("operator_token", &operator)
            .field("token_key", &self.token_key)
            .finish()
    }
}

impl Auth {
    /// `operator_token` is `None` only with `--insecure-no-auth`.
    pub fn new(operator_token: Option<&str>, token_key: TokenKey) -> Self {
        Self {
            operator_digest: operator_token.map(digest),
            token_key,
            revocations: Fresh::new(REVOCATION_CACHE, REVOCATION_CACHE),
        }
    }

    /// The scope of a request with this `Authorization` header value, before revocations:
    /// a tenant token's issue time comes with it.
    pub fn scope(
        &self,
        authorization: Option<&str>,
        now: i64,
    ) -> Result<(Scope, Option<i64>), ApiError> {
        let Some(value) = authorization else {
            return match self.operator_digest {
                None => Ok((Scope::Operator, None)),
                Some(_) => Err(ApiError::unauthorized(
                    "send Authorization: Bearer <token> (the operator token or a tenant token)",
                )),
            };
        };
        let token = value
            .strip_prefix("Bearer ")
            .or_else(|| value.strip_prefix("bearer "))
            .map(str::trim)
            .ok_or_else(|| {
                ApiError::unauthorized("the Authorization header must be Bearer <token>")
            })?;
        if token.starts_with("hft_") {
            return self
                .token_key
                .verify(token, now)
                .map(|Verified { tenant, issued_ms }| (Scope::Tenant(tenant), Some(issued_ms)))
                .map_err(|refused| ApiError::unauthorized(refused.to_string()));
        }
        match &self.operator_digest {
            Some(expected) if bool::from(expected.ct_eq(&digest(token))) => {
                Ok((Scope::Operator, None))
            }
            None => Ok((Scope::Operator, None)),
            Some(_) => Err(ApiError::unauthorized("the token is not valid")),
        }
    }

    /// Refuses a tenant token issued before its tenant's last revocation.
    async fn check_revocation(
        &self,
        admin: &Admin,
        tenant: &TenantId,
        issued_ms: i64,
    ) -> Result<(), ApiError> {
        let not_before = self
            .revocations
            .get(tenant, || admin.tokens_not_before(tenant))
            .await?;
        match not_before {
            Some(not_before) if issued_ms < not_before => {
                Err(ApiError::unauthorized(Refused::Revoked.to_string()))
            }
            _ => Ok(()),
        }
    }
}

fn digest(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

/// The scope of the request being handled.
#[derive(Debug, Clone)]
pub struct Caller(pub Scope);

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let header = parts
            .headers
            .get(header::AUTHORIZATION)
            .map(|v| v.to_str().unwrap_or(""));
        let now = time::OffsetDateTime::now_utc().unix_timestamp();
        let (scope, issued_ms) = state.auth.scope(header, now)?;
        if let Scope::Tenant(tenant) = &scope
            && *tenant == state.admin.config().operator_tenant
        {
            // Never minted (the mint refuses it); one signed with a leaked key gets nothing.
            return Err(ApiError::unauthorized(
                "a tenant token cannot name the operator tenant",
            ));
        }
        if let (Scope::Tenant(tenant), Some(issued_ms)) = (&scope, issued_ms) {
            state
                .auth
                .check_revocation(&state.admin, tenant, issued_ms)
                .await?;
        }
        Ok(Caller(scope))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn auth(token: Option<&str>) -> Auth {
        Auth::new(token, TokenKey::new(b"k".to_vec(), "test"))
    }

    fn scope(auth: &Auth, header: Option<&str>, now: i64) -> Result<Scope, ApiError> {
        auth.scope(header, now).map(|(scope, _)| scope)
    }

    #[test]
    fn tokens_give_scopes() {
        let auth = auth(Some("op-secret-0123456789"));
        assert_eq!(
            scope(&auth, Some("Bearer op-secret-0123456789"), 0).unwrap(),
            Scope::Operator
        );
        assert!(scope(&auth, None, 0).is_err());
        for wrong in ["op-secret-012345678", "op-secret-0123456789x", "o", ""] {
            assert!(scope(&auth, Some(&format!("Bearer {wrong}")), 0).is_err());
        }
        assert!(scope(&auth, Some("op-secret-0123456789"), 0).is_err());
        let tenant = auth.token_key.mint(&"acme".parse().unwrap(), 7, 10);
        assert_eq!(
            auth.scope(Some(&format!("Bearer {tenant}")), 0).unwrap(),
            (Scope::Tenant("acme".parse().unwrap()), Some(7))
        );
        assert!(scope(&auth, Some(&format!("Bearer {tenant}")), 10).is_err());
    }

    #[test]
    fn without_auth_everyone_is_the_operator_but_tenant_tokens_still_scope() {
        let auth = auth(None);
        assert_eq!(scope(&auth, None, 0).unwrap(), Scope::Operator);
        let tenant = auth.token_key.mint(&"acme".parse().unwrap(), 0, 10);
        assert!(matches!(
            scope(&auth, Some(&format!("Bearer {tenant}")), 0).unwrap(),
            Scope::Tenant(_)
        ));
    }

    #[test]
    fn debug_does_not_show_the_operator_token() {
        let shown = format!("{:?}", auth(Some("op-secret-0123456789")));
        assert!(!shown.contains("op-secret"), "{shown}");
    }
}
