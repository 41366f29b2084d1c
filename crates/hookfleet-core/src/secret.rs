//! Signing secrets: `whsec_` + base64 of 24–64 random bytes (docs/contract.md §2).

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, KeyInit};
use serde::{Deserialize, Serialize};
use sha2::Sha256;
use std::fmt;

use crate::{Error, Result};

const PREFIX: &str = "whsec_";

/// A secret an endpoint's signatures are made with. `Debug` never shows it, so it cannot leak
/// into logs through `{:?}`; only [`Secret::expose`] gives the text.
#[derive(Clone, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Secret {
    text: String,
    key: Vec<u8>,
    /// HMAC-SHA256 with this key and nothing hashed yet: cloned for each signature, so the
    /// key schedule is worked out once per secret, not once per POST.
    keyed: Hmac<Sha256>,
}

/// Two secrets are the same when their text is (the rest follows from it).
impl PartialEq for Secret {
    fn eq(&self, other: &Self) -> bool {
        self.text == other.text
    }
}

impl Eq for Secret {}

impl Secret {
    /// A new secret of 32 random bytes.
    pub fn generate() -> Self {
        let key: [u8; 32] = rand::random();
        Self::of(format!("{PREFIX}{}", STANDARD.encode(key)), key.to_vec())
    }

    fn of(text: String, key: Vec<u8>) -> Self {
        // HMAC takes a key of any length: this cannot fail.
        let keyed = Hmac::<Sha256>::new_from_slice(&key).unwrap_or_else(|_| unreachable!());
        Self { text, key, keyed }
    }

    /// The HMAC key: the base64-decoded part after `whsec_`.
    pub fn key(&self) -> &[u8] {
        &self.key
    }

    /// A MAC keyed with this secret, ready for the signed content.
    pub fn mac(&self) -> Hmac<Sha256> {
        self.keyed.clone()
    }

    /// The secret as given to the receiver, `whsec_…`.
    pub fn expose(&self) -> &str {
        &self.text
    }
}

impl TryFrom<String> for Secret {
    type Error = Error;
    fn try_from(text: String) -> Result<Self> {
        let encoded = text
            .strip_prefix(PREFIX)
            .ok_or(Error::Secret("must start with whsec_"))?;
        let key = STANDARD
            .decode(encoded)
            .map_err(|_| Error::Secret("the part after whsec_ is not valid base64"))?;
        if !(24..=64).contains(&key.len()) {
            return Err(Error::Secret("must encode 24 to 64 bytes"));
        }
        Ok(Self::of(text, key))
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
        f.write_str("Secret(whsec_***)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_secrets_round_trip() {
        let s = Secret::generate();
        assert_eq!(s.key().len(), 32);
        assert_eq!(s.expose().parse::<Secret>().unwrap(), s);
    }

    #[test]
    fn bad_secrets_are_refused() {
        for bad in ["abc", "whsec_!!!", "whsec_YWJj", ""] {
            assert!(bad.parse::<Secret>().is_err(), "{bad}");
        }
    }

    #[test]
    fn debug_hides_the_secret() {
        let s = Secret::generate();
        assert!(!format!("{s:?}").contains(&s.expose()[6..]));
    }
}
