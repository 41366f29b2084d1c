//! Standard Webhooks `v1` signatures:
//! <https://github.com/standard-webhooks/standard-webhooks/blob/main/spec/standard-webhooks.md>.
//!
//! The signed content is `<webhook-id>.<webhook-timestamp>.<body>`, HMAC-SHA256 with the secret's
//! key, base64 encoded and prefixed `v1,`. During a secret rotation every live secret signs and the
//! signatures are joined by spaces, so receivers holding either secret verify.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use hmac::Mac;

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
        let mut mac = secret.mac();
        mac.update(id.as_bytes());
        mac.update(b".");
        mac.update(timestamp.as_bytes());
        mac.update(b".");
        mac.update(body);
        if !header.is_empty() {
            header.push(' ');
        }
        header.push_str("v1,");
        STANDARD.encode_string(mac.finalize().into_bytes(), &mut header);
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
