//! Tenant tokens: signed, expiring, stateless.
//!
//! A token is `hft_` + base64url(`{"tenant":…,"exp":…}`) + `.` + base64url(HMAC-SHA256 of
//! that payload). Nothing is stored: any API process holding the same key verifies it, and
//! it dies at `exp`. There is no revocation before expiry; changing the key revokes them all,
//! which is why lifetimes are capped at 24 h.

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

/// The key tenant tokens are signed with. `Debug` does not show it.
#[derive(Clone)]
pub struct TokenKey(Vec<u8>);

impl std::fmt::Debug for TokenKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TokenKey(***)")
    }
}

#[derive(Serialize, Deserialize)]
struct Claims {
    tenant: String,
    /// Unix seconds.
    exp: i64,
}

/// Why a token was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Refused {
    #[error("the token is malformed or its signature does not match")]
    Invalid,
    #[error("the token has expired")]
    Expired,
}

impl TokenKey {
    pub fn new(key: impl Into<Vec<u8>>) -> Self {
        Self(key.into())
    }

    /// A key derived from the operator token, for deployments that set no key of their own.
    pub fn derived_from(operator_token: &str) -> Self {
        let mut mac = hmac();
        mac.update(b"hookfleet tenant tokens v1");
        mac.update(operator_token.as_bytes());
        Self(mac.finalize().into_bytes().to_vec())
    }

    /// A random key: tokens then die with the process (for `--insecure-no-auth` without a key).
    pub fn random() -> Self {
        Self(rand_bytes())
    }

    /// A token for `tenant` valid until `exp` (unix seconds).
    pub fn mint(&self, tenant: &TenantId, exp: i64) -> String {
        let claims = Claims {
            tenant: tenant.to_string(),
            exp,
        };
        let payload = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&claims).unwrap_or_default());
        let signature = URL_SAFE_NO_PAD.encode(self.sign(payload.as_bytes()));
        format!("{PREFIX}{payload}.{signature}")
    }

    /// The tenant a token names, if it is this key's and alive at `now` (unix seconds).
    pub fn verify(&self, token: &str, now: i64) -> Result<TenantId, Refused> {
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
        if now >= claims.exp {
            return Err(Refused::Expired);
        }
        claims.tenant.parse().map_err(|_| Refused::Invalid)
    }

    fn sign(&self, payload: &[u8]) -> Vec<u8> {
        let mut mac = self.mac();
        mac.update(payload);
        mac.finalize().into_bytes().to_vec()
    }

    fn mac(&self) -> Hmac<Sha256> {
        // HMAC takes keys of any length.
        Hmac::<Sha256>::new_from_slice(&self.0).unwrap_or_else(|_| hmac())
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

    #[test]
    fn a_token_names_its_tenant_until_it_expires() {
        let key = TokenKey::new(b"k".to_vec());
        let token = key.mint(&acme(), 100);
        assert_eq!(key.verify(&token, 99), Ok(acme()));
        assert_eq!(key.verify(&token, 100), Err(Refused::Expired));
    }

    #[test]
    fn forged_or_foreign_tokens_are_refused() {
        let key = TokenKey::new(b"k".to_vec());
        let other = TokenKey::new(b"other".to_vec());
        let token = other.mint(&acme(), 100);
        assert_eq!(key.verify(&token, 0), Err(Refused::Invalid));
        // A payload naming another tenant, with the original signature.
        let good = key.mint(&acme(), 100);
        let signature = good.rsplit_once('.').unwrap().1;
        let forged_payload = URL_SAFE_NO_PAD.encode(br#"{"tenant":"globex","exp":100}"#);
        let forged = format!("{PREFIX}{forged_payload}.{signature}");
        assert_eq!(key.verify(&forged, 0), Err(Refused::Invalid));
        for junk in ["", "hft_", "hft_a.b", "Bearer x", "hft_..."] {
            assert_eq!(key.verify(junk, 0), Err(Refused::Invalid), "{junk}");
        }
    }

    #[test]
    fn derived_keys_differ_by_operator_token() {
        let a = TokenKey::derived_from("one");
        let b = TokenKey::derived_from("two");
        let token = a.mint(&acme(), 100);
        assert!(a.verify(&token, 0).is_ok());
        assert!(b.verify(&token, 0).is_err());
        assert!(!format!("{a:?}").contains("one"));
    }
}
