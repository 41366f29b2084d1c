//! Signing secrets (docs/contract.md §2, §3): `whsec_` + base64 of 24–64 random bytes for
//! HMAC-SHA256 (`v1`), or `whsk_` + base64 of an Ed25519 key for Standard Webhooks `v1a`,
//! whose public half (`whpk_…`) a receiver verifies with and need not keep secret.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use ed25519_dalek::{Signer, SigningKey};
use hmac::{Hmac, KeyInit, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;
use std::fmt;

use crate::{Error, Result};

const HMAC_PREFIX: &str = "whsec_";
const ED25519_PREFIX: &str = "whsk_";
const PUBLIC_PREFIX: &str = "whpk_";

/// How an endpoint's deliveries are signed: its secret's kind.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum Scheme {
    /// `v1`: HMAC-SHA256 with a shared secret.
    #[default]
    #[serde(rename = "hmac-sha256")]
    HmacSha256,
    /// `v1a`: Ed25519; the receiver holds the public key only.
    #[serde(rename = "ed25519")]
    Ed25519,
}

impl Scheme {
    /// Its name, as the API spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            Scheme::HmacSha256 => "hmac-sha256",
            Scheme::Ed25519 => "ed25519",
        }
    }

    /// What its secrets start with: `whsec_` or `whsk_`.
    pub fn secret_prefix(self) -> &'static str {
        match self {
            Scheme::HmacSha256 => HMAC_PREFIX,
            Scheme::Ed25519 => ED25519_PREFIX,
        }
    }
}

impl std::str::FromStr for Scheme {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        [Scheme::HmacSha256, Scheme::Ed25519]
            .into_iter()
            .find(|scheme| scheme.as_str() == s)
            .ok_or_else(|| format!("hmac-sha256 or ed25519, not {s:?}"))
    }
}

/// The key, worked out once per secret rather than once per POST.
#[derive(Clone)]
enum Key {
    /// HMAC-SHA256 with this key and nothing hashed yet: cloned for each signature.
    Hmac(Hmac<Sha256>),
    Ed25519(Box<SigningKey>),
}

/// A secret an endpoint's signatures are made with. `Debug` never shows it, so it cannot leak
/// into logs through `{:?}`; only [`Secret::expose`] gives the text.
#[derive(Clone, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Secret {
    text: String,
    key: Key,
}

/// Two secrets are the same when their text is (the rest follows from it).
impl PartialEq for Secret {
    fn eq(&self, other: &Self) -> bool {
        self.text == other.text
    }
}

impl Eq for Secret {}

impl Secret {
    /// A new secret of 32 random bytes, of `scheme`'s kind.
    pub fn generate_for(scheme: Scheme) -> Self {
        let bytes: [u8; 32] = rand::random();
        match scheme {
            Scheme::HmacSha256 => {
                Self::hmac(format!("{HMAC_PREFIX}{}", STANDARD.encode(bytes)), &bytes)
            }
            Scheme::Ed25519 => Self {
                text: format!("{ED25519_PREFIX}{}", STANDARD.encode(bytes)),
                key: Key::Ed25519(Box::new(SigningKey::from_bytes(&bytes))),
            },
        }
    }

    /// A new HMAC-SHA256 secret of 32 random bytes.
    pub fn generate() -> Self {
        Self::generate_for(Scheme::HmacSha256)
    }

    fn hmac(text: String, key: &[u8]) -> Self {
        // HMAC takes a key of any length: this cannot fail.
        let keyed = Hmac::<Sha256>::new_from_slice(key).unwrap_or_else(|_| unreachable!());
        Self {
            text,
            key: Key::Hmac(keyed),
        }
    }

    pub fn scheme(&self) -> Scheme {
        match self.key {
            Key::Hmac(_) => Scheme::HmacSha256,
            Key::Ed25519(_) => Scheme::Ed25519,
        }
    }

    /// `whpk_` + base64 of the Ed25519 public key; `None` for an HMAC secret.
    pub fn public_key(&self) -> Option<String> {
        match &self.key {
            Key::Hmac(_) => None,
            Key::Ed25519(key) => {
                let public = key.verifying_key().to_bytes();
                Some(format!("{PUBLIC_PREFIX}{}", STANDARD.encode(public)))
            }
        }
    }

    /// One signature of `<id>.<timestamp>.<body>`: `v1,<base64>` or `v1a,<base64>`.
    pub fn sign(&self, id: &str, timestamp: &str, body: &[u8], into: &mut String) {
        match &self.key {
            Key::Hmac(keyed) => {
                let mut mac = keyed.clone();
                for part in [id.as_bytes(), b".", timestamp.as_bytes(), b".", body] {
                    mac.update(part);
                }
                into.push_str("v1,");
                STANDARD.encode_string(mac.finalize().into_bytes(), into);
            }
            Key::Ed25519(key) => {
                // Ed25519 signs a whole message, not a stream.
                let mut content = Vec::with_capacity(id.len() + timestamp.len() + body.len() + 2);
                for part in [id.as_bytes(), b".", timestamp.as_bytes(), b".", body] {
                    content.extend_from_slice(part);
                }
                into.push_str("v1a,");
                STANDARD.encode_string(key.sign(&content).to_bytes(), into);
            }
        }
    }

    /// The secret as given to its owner, `whsec_…` or `whsk_…`.
    pub fn expose(&self) -> &str {
        &self.text
    }
}

impl TryFrom<String> for Secret {
    type Error = Error;
    fn try_from(text: String) -> Result<Self> {
        if let Some(encoded) = text.strip_prefix(ED25519_PREFIX) {
            let bytes = STANDARD
                .decode(encoded)
                .map_err(|_| Error::Secret("the part after whsk_ is not valid base64"))?;
            // The 32-byte seed, or libsodium's 64 bytes: the seed and its public key.
            let seed: [u8; 32] = bytes
                .get(..32)
                .filter(|_| matches!(bytes.len(), 32 | 64))
                .and_then(|seed| seed.try_into().ok())
                .ok_or(Error::Secret("whsk_ must encode a 32-byte Ed25519 key"))?;
            let key = SigningKey::from_bytes(&seed);
            if bytes.len() == 64 && bytes[32..] != key.verifying_key().to_bytes() {
                return Err(Error::Secret(
                    "whsk_: the public half does not match the key",
                ));
            }
            return Ok(Self {
                text,
                key: Key::Ed25519(Box::new(key)),
            });
        }
        let encoded = text.strip_prefix(HMAC_PREFIX).ok_or(Error::Secret(
            "must start with whsec_ (or whsk_ for Ed25519)",
        ))?;
        let key = STANDARD
            .decode(encoded)
            .map_err(|_| Error::Secret("the part after whsec_ is not valid base64"))?;
        if !(24..=64).contains(&key.len()) {
            return Err(Error::Secret("must encode 24 to 64 bytes"));
        }
        Ok(Self::hmac(text, &key))
    }
}

impl std::str::FromStr for Secret {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        Self::try_from(s.to_owned())
    }
}

impl From<Secret> for String {
    fn from(s: Secret) -> String {
        s.text
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Secret({}***)", self.scheme().secret_prefix())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_secrets_round_trip() {
        for scheme in [Scheme::HmacSha256, Scheme::Ed25519] {
            let s = Secret::generate_for(scheme);
            assert_eq!(s.scheme(), scheme);
            assert_eq!(s.expose().parse::<Secret>().unwrap(), s);
        }
        assert!(Secret::generate().public_key().is_none());
    }

    #[test]
    fn bad_secrets_are_refused() {
        for bad in ["abc", "whsec_!!!", "whsec_YWJj", "", "whsk_YWJj", "whsk_!!"] {
            assert!(bad.parse::<Secret>().is_err(), "{bad}");
        }
    }

    #[test]
    fn an_ed25519_key_is_taken_as_a_seed_or_with_its_public_half() {
        let seed = [7u8; 32];
        let key = SigningKey::from_bytes(&seed);
        let mut both = seed.to_vec();
        both.extend(key.verifying_key().to_bytes());
        let short: Secret = format!("whsk_{}", STANDARD.encode(seed)).parse().unwrap();
        let long: Secret = format!("whsk_{}", STANDARD.encode(&both)).parse().unwrap();
        assert_eq!(short.public_key(), long.public_key());
        both[40] ^= 1;
        assert!(
            format!("whsk_{}", STANDARD.encode(&both))
                .parse::<Secret>()
                .is_err()
        );
    }

    #[test]
    fn debug_hides_the_secret() {
        for scheme in [Scheme::HmacSha256, Scheme::Ed25519] {
            let s = Secret::generate_for(scheme);
            assert!(!format!("{s:?}").contains(&s.expose()[6..]));
        }
    }
}
