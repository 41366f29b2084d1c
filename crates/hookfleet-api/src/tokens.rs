//! Tenant tokens: signed, expiring, revocable per tenant.
//!
//! A token is `hft_` + base64url(`{"tenant":…,"aud":…,"iat_ms":…,"exp":…}`) + `.` +
//! base64url(HMAC-SHA256 of that payload). Nothing is stored per token: any API process
//! holding the same key verifies it, and it dies at `exp` (at most 24 h). `aud` is the
//! deployment's namespace, so a staging token is refused by a production API that shares the
//! key. A revocation stores one moment per tenant; tokens issued before it are refused
//! (`crate::auth`).

use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, KeyInit, Mac};
use hookfleet_core::TenantId;
use serde::{Deserialize, Serialize};
use sha2::Sha256;

const PREFIX: &str = "hft_";

/// The longest and default lifetimes (docs/contract.md §5).
pub const MAX_TTL: Duration = Duration::from_secs(24 * 3600);
pub const DEFAULT_TTL: Duration = Duration::from_secs(3600);

/// The key tenant tokens are signed with, and the audience they are for. `Debug` does not
/// show the key.
#[derive(Clone)]
pub struct TokenKey {
    key: Vec<u8>,
    audience: String,
}

impl std::fmt::Debug for TokenKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "TokenKey(***, audience {:?})", self.audience)
    }
}

#[derive(Serialize, Deserialize)]
struct Claims {
    tenant: String,
    /// The namespace of the deployment the token is for.
    aud: String,
    /// Unix milliseconds: a revocation refuses the tokens issued before it.
    iat_ms: i64,
    /// Unix seconds.
    exp: i64,
}

/// A token's tenant and when it was issued.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    pub tenant: TenantId,
    /// Unix milliseconds.
    pub issued_ms: i64,
}

/// Why a token was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Refused {
    #[error("the token is malformed or its signature does not match")]
    Invalid,
    #[error("the token is for another deployment")]
    Audience,
    #[error("the token has expired")]
    Expired,
    #[error("the token has been revoked")]
    Revoked,
}

impl TokenKey {
    /// A key for the deployment of namespace `audience`.
    pub fn new(key: impl Into<Vec<u8>>, audience: &str) -> Self {
        Self {
            key: key.into(),
            audience: audience.to_owned(),
        }
    }

    /// A key derived from the operator token, for deployments that set no key of their own.
    pub fn derived_from(operator_token: &str, audience: &str) -> Self {
        let mut mac = hmac();
        mac.update(b"hookfleet tenant tokens v1");
        mac.update(operator_token.as_bytes());
        Self::new(mac.finalize().into_bytes().to_vec(), audience)
    }

    /// A random key: tokens then die with the process (for `--insecure-no-auth` without a key).
    pub fn random(audience: &str) -> Self {
        Self::new(rand_bytes(), audience)
    }

    /// A token for `tenant`, issued at `now_ms` (unix ms), valid until `exp` (unix seconds).
    pub fn mint(&self, tenant: &TenantId, now_ms: i64, exp: i64) -> String {
        let claims = Claims {
            tenant: tenant.to_string(),
            aud: self.audience.clone(),
            iat_ms: now_ms,
            exp,
        };
        let payload = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&claims).unwrap_or_default());
        let signature = URL_SAFE_NO_PAD.encode(self.sign(payload.as_bytes()));
        format!("{PREFIX}{payload}.{signature}")
    }

    /// The tenant a token names, if it is this key's, for this deployment, and alive at `now`
    /// (unix seconds). Revocation is the caller's to check, against `issued_ms`.
    pub fn verify(&self, token: &str, now: i64) -> Result<Verified, Refused> {
        let rest = token.strip_prefix(PREFIX).ok_or(Refused::Invalid)?;
        let (payload, signature) = rest.split_once('.').ok_or(Refused::Invalid)?;
        let signature = URL_SAFE_NO_PAD
            .decode(signature)
            .map_err(|_| Refused::Invalid)?;
        let mut mac = self.mac();
        mac.update(payload.as_bytes());
        // `verify_slice` compares in constant time.
        mac.verify_slice(&signature).map_err(|_| Refused::Invalid)?;
        let claims: Claims = URL_SAFE_NO_PAD
            .decode(payload)
            .ok()
            .and_then(|json| serde_json::from_slice(&json).ok())
            .ok_or(Refused::Invalid)?;
        if claims.aud != self.audience {
            return Err(Refused::Audience);
        }
        if now >= claims.exp {
            return Err(Refused::Expired);
        }
        let tenant = claims.tenant.parse().map_err(|_| Refused::Invalid)?;
        Ok(Verified {
            tenant,
            issued_ms: claims.iat_ms,
        })
    }

    fn sign(&self, payload: &[u8]) -> Vec<u8> {
        let mut mac = self.mac();
        mac.update(payload);
        mac.finalize().into_bytes().to_vec()
    }

    fn mac(&self) -> Hmac<Sha256> {
        // HMAC takes keys of any length.
        Hmac::<Sha256>::new_from_slice(&self.key).unwrap_or_else(|_| hmac())
    }
}

fn hmac() -> Hmac<Sha256> {
    Hmac::<Sha256>::new_from_slice(b"hookfleet").unwrap_or_else(|_| unreachable!())
}

fn rand_bytes() -> Vec<u8> {
    // Two v4 UUIDs: 244 random bits from the OS generator, without another dependency.
    let mut bytes = Vec::with_capacity(32);
    for _ in 0..2 {
        bytes.extend_from_slice(uuid::Uuid::new_v4().as_bytes());
    }
    bytes
}

#[cfg(test)]
mod tests {
    use super::*;

    fn acme() -> TenantId {
        "acme".parse().unwrap()
    }

    fn key(secret: &[u8]) -> TokenKey {
        TokenKey::new(secret.to_vec(), "prod")
    }

    #[test]
    fn a_token_names_its_tenant_until_it_expires() {
        let key = key(b"k");
        let token = key.mint(&acme(), 5_000, 100);
        let verified = key.verify(&token, 99).unwrap();
        assert_eq!((verified.tenant, verified.issued_ms), (acme(), 5_000));
        assert_eq!(key.verify(&token, 100), Err(Refused::Expired));
    }

    #[test]
    fn forged_or_foreign_tokens_are_refused() {
        let key = key(b"k");
        let other = TokenKey::new(b"other".to_vec(), "prod");
        let token = other.mint(&acme(), 0, 100);
        assert_eq!(key.verify(&token, 0), Err(Refused::Invalid));
        // A payload naming another tenant, with the original signature.
        let good = key.mint(&acme(), 0, 100);
        let signature = good.rsplit_once('.').unwrap().1;
        let forged_payload =
            URL_SAFE_NO_PAD.encode(br#"{"tenant":"globex","aud":"prod","iat_ms":0,"exp":100}"#);
        let forged = format!("{PREFIX}{forged_payload}.{signature}");
        assert_eq!(key.verify(&forged, 0), Err(Refused::Invalid));
        for junk in ["", "hft_", "hft_a.b", "Bearer x", "hft_..."] {
            assert_eq!(key.verify(junk, 0), Err(Refused::Invalid), "{junk}");
        }
    }

    /// Staging and production may share a key; a token still works only where it was minted.
    #[test]
    fn a_token_of_another_namespace_is_refused() {
        let staging = TokenKey::new(b"shared".to_vec(), "staging");
        let production = TokenKey::new(b"shared".to_vec(), "prod");
        let token = staging.mint(&acme(), 0, 100);
        assert!(staging.verify(&token, 0).is_ok());
        assert_eq!(production.verify(&token, 0), Err(Refused::Audience));
        // A token of the format before audiences (no `aud`) is refused too.
        let payload = URL_SAFE_NO_PAD.encode(br#"{"tenant":"acme","exp":100}"#);
        let old = format!(
            "{PREFIX}{payload}.{}",
            URL_SAFE_NO_PAD.encode(production.sign(payload.as_bytes()))
        );
        assert_eq!(production.verify(&old, 0), Err(Refused::Invalid));
    }

    #[test]
    fn derived_keys_differ_by_operator_token() {
        let a = TokenKey::derived_from("one", "prod");
        let b = TokenKey::derived_from("two", "prod");
        let token = a.mint(&acme(), 0, 100);
        assert!(a.verify(&token, 0).is_ok());
        assert!(b.verify(&token, 0).is_err());
        assert!(!format!("{a:?}").contains("one"));
    }
}
