//! Standard Webhooks signatures:
//! <https://github.com/standard-webhooks/standard-webhooks/blob/main/spec/standard-webhooks.md>.
//!
//! The signed content is `<webhook-id>.<webhook-timestamp>.<body>`: HMAC-SHA256 with a
//! `whsec_` secret's key (`v1,<base64>`), or Ed25519 with a `whsk_` key (`v1a,<base64>`).
//! During a secret rotation every live secret signs and the signatures are joined by spaces,
//! so receivers holding either secret (or public key) verify, whatever the two kinds are.

use crate::Secret;

/// The `webhook-signature` header value for one attempt.
pub fn sign<'a>(
    secrets: impl IntoIterator<Item = &'a Secret>,
    id: &str,
    timestamp: i64,
    body: &[u8],
) -> String {
    let timestamp = timestamp.to_string();
    let mut header = String::new();
    for secret in secrets {
        if !header.is_empty() {
            header.push(' ');
        }
        secret.sign(id, &timestamp, body, &mut header);
    }
    header
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The test vector of the Standard Webhooks specification.
    #[test]
    fn reproduces_the_specification_vector() {
        let secret: Secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw".parse().unwrap();
        let header = sign(
            [&secret],
            "msg_p5jXN8AQM9LWM0D4loKWxJek",
            1614265330,
            br#"{"test": 2432232314}"#,
        );
        assert_eq!(header, "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
    }

    /// `v1a` verifies with the public key (the independent check is tests/api/controls.rs,
    /// with Python's `cryptography`).
    #[test]
    fn an_ed25519_secret_signs_v1a() {
        use base64::Engine;
        use base64::engine::general_purpose::STANDARD;
        use ed25519_dalek::{Signature, Verifier, VerifyingKey};
        let secret = Secret::generate_for(crate::secret::Scheme::Ed25519);
        let header = sign([&secret], "evt_1", 1614265330, b"{}");
        let signature = STANDARD
            .decode(header.strip_prefix("v1a,").unwrap())
            .unwrap();
        let public = secret.public_key().unwrap();
        let public = STANDARD
            .decode(public.strip_prefix("whpk_").unwrap())
            .unwrap();
        let key = VerifyingKey::from_bytes(&public.try_into().unwrap()).unwrap();
        let signature = Signature::from_slice(&signature).unwrap();
        key.verify(b"evt_1.1614265330.{}", &signature).unwrap();
    }

    #[test]
    fn several_secrets_give_space_separated_signatures() {
        let a = Secret::generate();
        let b = Secret::generate();
        let both = sign([&a, &b], "evt_1", 1, b"{}");
        let parts: Vec<&str> = both.split(' ').collect();
        assert_eq!(
            parts,
            [sign([&a], "evt_1", 1, b"{}"), sign([&b], "evt_1", 1, b"{}")]
        );
    }
}
