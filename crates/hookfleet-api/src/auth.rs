//! Who is calling: the operator token, a tenant token, or (only with `--insecure-no-auth`)
//! anyone.

use axum::extract::FromRequestParts;
use axum::http::header;
use axum::http::request::Parts;
use hookfleet_admin::Scope;
use subtle::ConstantTimeEq;

use crate::AppState;
use crate::error::ApiError;
use crate::tokens::TokenKey;

/// How requests are authenticated.
#[derive(Debug, Clone)]
pub struct Auth {
    /// `HOOKFLEET_API_TOKEN`; `None` only with `--insecure-no-auth`, where a request without a
    /// token is the operator's.
    pub operator_token: Option<String>,
    /// Signs and checks tenant tokens.
    pub token_key: TokenKey,
}

impl Auth {
    /// The scope of a request with this `Authorization` header value.
    pub fn scope(&self, authorization: Option<&str>, now: i64) -> Result<Scope, ApiError> {
        let Some(value) = authorization else {
            return match self.operator_token {
                None => Ok(Scope::Operator),
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
                .map(Scope::Tenant)
                .map_err(|refused| ApiError::unauthorized(refused.to_string()));
        }
        match &self.operator_token {
            // Constant time: the comparison must not tell how much of a guess was right.
            Some(expected) if bool::from(expected.as_bytes().ct_eq(token.as_bytes())) => {
                Ok(Scope::Operator)
            }
            None => Ok(Scope::Operator),
            Some(_) => Err(ApiError::unauthorized("the token is not valid")),
        }
    }
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
        state.auth.scope(header, now).map(Caller)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn auth(token: Option<&str>) -> Auth {
        Auth {
            operator_token: token.map(str::to_owned),
            token_key: TokenKey::new(b"k".to_vec()),
        }
    }

    #[test]
    fn tokens_give_scopes() {
        let auth = auth(Some("op-secret"));
        assert_eq!(
            auth.scope(Some("Bearer op-secret"), 0).unwrap(),
            Scope::Operator
        );
        assert!(auth.scope(None, 0).is_err());
        assert!(auth.scope(Some("Bearer op-secreT"), 0).is_err());
        assert!(auth.scope(Some("op-secret"), 0).is_err());
        let tenant = auth.token_key.mint(&"acme".parse().unwrap(), 10);
        assert_eq!(
            auth.scope(Some(&format!("Bearer {tenant}")), 0).unwrap(),
            Scope::Tenant("acme".parse().unwrap())
        );
        assert!(auth.scope(Some(&format!("Bearer {tenant}")), 10).is_err());
    }

    #[test]
    fn without_auth_everyone_is_the_operator_but_tenant_tokens_still_scope() {
        let auth = auth(None);
        assert_eq!(auth.scope(None, 0).unwrap(), Scope::Operator);
        let tenant = auth.token_key.mint(&"acme".parse().unwrap(), 10);
        assert!(matches!(
            auth.scope(Some(&format!("Bearer {tenant}")), 0).unwrap(),
            Scope::Tenant(_)
        ));
    }
}
