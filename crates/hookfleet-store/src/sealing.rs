//! Endpoint secrets encrypted at rest (`HOOKFLEET_SECRET_KEY`).
//!
//! XChaCha20-Poly1305 (an AEAD): each secret is sealed with a random 24-byte nonce, and the
//! endpoint id is the associated data, so a sealed secret copied into another endpoint's record
//! does not open. A sealed value is `enc:v1:` + base64(nonce ‖ ciphertext); a record without the
//! prefix is plain text from before the key was set, read as it is and sealed on its next write.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use chacha20poly1305::aead::{Aead, AeadCore, KeyInit, OsRng, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};

const PREFIX: &str = "enc:v1:";
const NONCE_BYTES: usize = 24;

/// The key that seals endpoint secrets. `Debug` does not show it.
#[derive(Clone)]
pub struct SecretKey(XChaCha20Poly1305);

impl std::fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SecretKey(***)")
    }
}

impl std::str::FromStr for SecretKey {
    type Err = String;
    /// Base64 of 32 bytes, e.g. from `openssl rand -base64 32`.
    fn from_str(s: &str) -> Result<Self, String> {
        let bytes = STANDARD
            .decode(s.trim())
            .map_err(|_| "not valid base64 (make one with: openssl rand -base64 32)".to_owned())?;
        let cipher = XChaCha20Poly1305::new_from_slice(&bytes)
            .map_err(|_| format!("must be 32 bytes once base64-decoded, not {}", bytes.len()))?;
        Ok(Self(cipher))
    }
}

impl SecretKey {
    /// Seals `plain` for the record of `endpoint_id`.
    pub fn seal(&self, plain: &str, endpoint_id: &str) -> String {
        let nonce = XChaCha20Poly1305::generate_nonce(&mut OsRng);
        let payload = Payload {
            msg: plain.as_bytes(),
            aad: endpoint_id.as_bytes(),
        };
        // Encryption into a Vec fails only on absurd lengths, not for a secret.
        let sealed = self.0.encrypt(&nonce, payload).unwrap_or_default();
        let mut bytes = nonce.to_vec();
        bytes.extend(sealed);
        format!("{PREFIX}{}", STANDARD.encode(bytes))
    }

    /// Opens a sealed value of `endpoint_id`'s record.
    pub fn open(&self, sealed: &str, endpoint_id: &str) -> Result<String, &'static str> {
        let encoded = sealed.strip_prefix(PREFIX).ok_or("not a sealed value")?;
        let bytes = STANDARD
            .decode(encoded)
            .map_err(|_| "sealed value is not base64")?;
        if bytes.len() <= NONCE_BYTES {
            return Err("sealed value too short");
        }
        let (nonce, ciphertext) = bytes.split_at(NONCE_BYTES);
        let payload = Payload {
            msg: ciphertext,
            aad: endpoint_id.as_bytes(),
        };
        let plain = self
            .0
            .decrypt(XNonce::from_slice(nonce), payload)
            .map_err(|_| "cannot decrypt the secret: wrong HOOKFLEET_SECRET_KEY?")?;
        String::from_utf8(plain).map_err(|_| "decrypted secret is not text")
    }
}

/// Whether a stored secret is sealed.
pub fn is_sealed(value: &str) -> bool {
    value.starts_with(PREFIX)
}

/// Whether a stored record may hold a sealed value (it holds the prefix somewhere).
pub fn is_sealed_anywhere(record: &str) -> bool {
    record.contains(PREFIX)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> SecretKey {
        STANDARD.encode([7u8; 32]).parse().unwrap()
    }

    #[test]
    fn sealed_secrets_open_only_for_their_endpoint_and_key() {
        let sealed = key().seal("whsec_abc", "ep_1");
        assert!(is_sealed(&sealed));
        assert!(!sealed.contains("abc"));
        assert_eq!(key().open(&sealed, "ep_1").unwrap(), "whsec_abc");
        assert!(key().open(&sealed, "ep_2").is_err());
        let other: SecretKey = STANDARD.encode([8u8; 32]).parse().unwrap();
        assert!(other.open(&sealed, "ep_1").is_err());
        assert_ne!(
            sealed,
            key().seal("whsec_abc", "ep_1"),
            "fresh nonce each time"
        );
    }

    #[test]
    fn keys_must_be_32_bytes_of_base64() {
        assert!("nope!".parse::<SecretKey>().is_err());
        assert!(STANDARD.encode([1u8; 16]).parse::<SecretKey>().is_err());
        assert!(!format!("{:?}", key()).contains('7'));
    }
}
