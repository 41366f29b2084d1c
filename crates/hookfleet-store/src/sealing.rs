//! Endpoint secrets (and URLs that carry credentials) encrypted at rest
//! (`HOOKFLEET_SECRET_KEY`, `HOOKFLEET_SECRET_KEY_PREVIOUS`).
//!
//! XChaCha20-Poly1305 (an AEAD): each value is sealed with a random 24-byte nonce, and the
//! endpoint id is the associated data, so a sealed value copied into another endpoint's record
//! does not open. A sealed value is `enc:v2:<key id>:` + base64(nonce ‖ ciphertext); the key id
//! names the key that sealed it, so the key can be changed: the new key seals, the old ones
//! (`HOOKFLEET_SECRET_KEY_PREVIOUS`) still open, and `hookfleet endpoints reseal` moves every
//! record to the new key. `enc:v1:` values (before key ids) are opened by trying each key. A
//! value without a prefix is plain text from before a key was set, read as it is and sealed on
//! its next write.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use chacha20poly1305::aead::{Aead, AeadCore, KeyInit, OsRng, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use sha2::{Digest, Sha256};

/// What every sealed value starts with, whatever its version.
const SEALED: &str = "enc:v";
const V1: &str = "enc:v1:";
const V2: &str = "enc:v2:";
const NONCE_BYTES: usize = 24;

/// One key that seals or opens. `Debug` shows its id only.
#[derive(Clone)]
pub struct SecretKey {
    cipher: XChaCha20Poly1305,
    /// The first 4 bytes of SHA-256 of the key, in hex: names the key in sealed values and
    /// logs without giving it away.
    id: String,
}

impl std::fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SecretKey(id {}, ***)", self.id)
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
        let digest = Sha256::new()
            .chain_update(b"hookfleet sealing key id\0")
            .chain_update(&bytes)
            .finalize();
        let id = digest[..4].iter().map(|b| format!("{b:02x}")).collect();
        Ok(Self { cipher, id })
    }
}

impl SecretKey {
    /// The key's id, as sealed values and logs name it.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// Seals `plain` for the record of `endpoint_id`.
    pub fn seal(&self, plain: &str, endpoint_id: &str) -> String {
        let nonce = XChaCha20Poly1305::generate_nonce(&mut OsRng);
        let payload = Payload {
            msg: plain.as_bytes(),
            aad: endpoint_id.as_bytes(),
        };
        // Encryption into a Vec fails only on absurd lengths, not for a secret or a URL.
        let sealed = self.cipher.encrypt(&nonce, payload).unwrap_or_default();
        let mut bytes = nonce.to_vec();
        bytes.extend(sealed);
        format!("{V2}{}:{}", self.id, STANDARD.encode(bytes))
    }

    /// Opens the base64 part of a sealed value of `endpoint_id`'s record.
    fn open_encoded(&self, encoded: &str, endpoint_id: &str) -> Result<String, &'static str> {
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
            .cipher
            .decrypt(XNonce::from_slice(nonce), payload)
            .map_err(|_| "cannot decrypt a sealed value: wrong HOOKFLEET_SECRET_KEY?")?;
        String::from_utf8(plain).map_err(|_| "decrypted value is not text")
    }
}

/// The keys a process holds: the current one seals and opens, the previous ones only open.
#[derive(Debug, Clone, Default)]
pub struct Keyring {
    current: Option<SecretKey>,
    previous: Vec<SecretKey>,
}

impl Keyring {
    pub fn new(current: Option<SecretKey>, previous: Vec<SecretKey>) -> Self {
        Self { current, previous }
    }

    /// The key that seals, if there is one.
    pub fn current(&self) -> Option<&SecretKey> {
        self.current.as_ref()
    }

    /// Seals with the current key; `None` without one.
    pub fn seal(&self, plain: &str, endpoint_id: &str) -> Option<String> {
        Some(self.current.as_ref()?.seal(plain, endpoint_id))
    }

    /// Opens a sealed value of `endpoint_id`'s record with whichever key sealed it.
    pub fn open(&self, sealed: &str, endpoint_id: &str) -> Result<String, &'static str> {
        let keys = || self.current.iter().chain(&self.previous);
        if let Some(rest) = sealed.strip_prefix(V2) {
            let (id, encoded) = rest.split_once(':').ok_or("sealed value is malformed")?;
            let key = keys().find(|k| k.id == id).ok_or(
                "it is sealed with a key that is neither HOOKFLEET_SECRET_KEY nor in HOOKFLEET_SECRET_KEY_PREVIOUS",
            )?;
            return key.open_encoded(encoded, endpoint_id);
        }
        let encoded = sealed.strip_prefix(V1).ok_or("not a sealed value")?;
        if self.current.is_none() && self.previous.is_empty() {
            return Err("it is sealed and HOOKFLEET_SECRET_KEY is not set");
        }
        keys()
            .find_map(|key| key.open_encoded(encoded, endpoint_id).ok())
            .ok_or("cannot decrypt a sealed value: wrong HOOKFLEET_SECRET_KEY?")
    }

    /// Whether a stored value is as the current key would store it: sealed by it, or plain
    /// when there is no key.
    pub fn is_current(&self, stored: &str) -> bool {
        match &self.current {
            None => !is_sealed(stored),
            Some(key) => stored
                .strip_prefix(V2)
                .and_then(|rest| rest.split_once(':'))
                .is_some_and(|(id, _)| id == key.id),
        }
    }
}

/// Whether a stored value is sealed.
pub fn is_sealed(value: &str) -> bool {
    value.starts_with(SEALED)
}

/// Whether a stored record may hold a sealed value (it holds the prefix somewhere).
pub fn is_sealed_anywhere(record: &str) -> bool {
    record.contains(SEALED)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(byte: u8) -> SecretKey {
        STANDARD.encode([byte; 32]).parse().unwrap()
    }

    fn ring(current: u8, previous: &[u8]) -> Keyring {
        Keyring::new(
            Some(key(current)),
            previous.iter().map(|b| key(*b)).collect(),
        )
    }

    #[test]
    fn sealed_values_open_only_for_their_endpoint_and_key() {
        let sealed = key(7).seal("whsec_abc", "ep_1");
        assert!(is_sealed(&sealed));
        assert!(!sealed.contains("abc"));
        assert!(sealed.starts_with(&format!("enc:v2:{}:", key(7).id())));
        assert_eq!(ring(7, &[]).open(&sealed, "ep_1").unwrap(), "whsec_abc");
        assert!(ring(7, &[]).open(&sealed, "ep_2").is_err());
        assert!(ring(8, &[]).open(&sealed, "ep_1").is_err());
        assert_ne!(sealed, key(7).seal("whsec_abc", "ep_1"), "fresh nonce");
    }

    #[test]
    fn a_new_key_seals_and_the_previous_ones_still_open() {
        let old = ring(7, &[]).seal("whsec_abc", "ep_1").unwrap();
        let rotated = ring(8, &[7]);
        assert_eq!(rotated.open(&old, "ep_1").unwrap(), "whsec_abc");
        assert!(!rotated.is_current(&old));
        let new = rotated.seal("whsec_abc", "ep_1").unwrap();
        assert!(rotated.is_current(&new));
        assert!(!rotated.is_current("whsec_plain"));
        assert!(Keyring::default().is_current("whsec_plain"));
        let error = ring(9, &[]).open(&old, "ep_1").unwrap_err();
        assert!(error.contains("HOOKFLEET_SECRET_KEY_PREVIOUS"), "{error}");
    }

    /// Values sealed before key ids (`enc:v1:`) open with whichever key sealed them.
    #[test]
    fn values_without_a_key_id_are_opened_by_trying_each_key() {
        let encoded = key(7).seal("whsec_abc", "ep_1");
        let v1 = format!("{V1}{}", encoded.rsplit(':').next().unwrap());
        assert_eq!(ring(8, &[7]).open(&v1, "ep_1").unwrap(), "whsec_abc");
        assert!(ring(8, &[]).open(&v1, "ep_1").is_err());
        assert!(Keyring::default().open(&v1, "ep_1").is_err());
        assert!(!ring(7, &[]).is_current(&v1), "resealed with an id");
    }

    #[test]
    fn keys_must_be_32_bytes_of_base64() {
        assert!("nope!".parse::<SecretKey>().is_err());
        assert!(STANDARD.encode([1u8; 16]).parse::<SecretKey>().is_err());
        let shown = format!("{:?}", key(7));
        assert!(
            shown.contains(key(7).id()) && !shown.contains("BwcH"),
            "{shown}"
        );
        assert_ne!(key(7).id(), key(8).id());
    }
}
