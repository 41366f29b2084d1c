//! An independent Standard Webhooks verifier, deliberately not the product's signing code, so
//! that a test or the benchmark checks signatures against the specification, not against
//! itself.

use axum::http::HeaderMap;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

/// True when any of the space-separated `v1,<base64>` signatures in `webhook-signature` is
/// HMAC-SHA256 of `<webhook-id>.<webhook-timestamp>.<body>` under the key after `whsec_`.
/// <https://github.com/standard-webhooks/standard-webhooks/blob/main/spec/standard-webhooks.md>
pub fn verify_signature(secret: &str, headers: &HeaderMap, body: &[u8]) -> bool {
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    let (Some(id), Some(timestamp), Some(signatures)) = (
        header("webhook-id"),
        header("webhook-timestamp"),
        header("webhook-signature"),
    ) else {
        return false;
    };
    let Some(key) = (secret.strip_prefix("whsec_")).and_then(|k| BASE64.decode(k).ok()) else {
        return false;
    };
    signatures.split(' ').any(|signature| {
        let Some(("v1", encoded)) = signature.split_once(',') else {
            return false;
        };
        let (Ok(tag), Ok(mut mac)) = (
            BASE64.decode(encoded),
            <Hmac<Sha256> as KeyInit>::new_from_slice(&key),
        ) else {
            return false;
        };
        mac.update(format!("{id}.{timestamp}.").as_bytes());
        mac.update(body);
        mac.verify_slice(&tag).is_ok()
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn accepts_the_reference_libraries_example_and_nothing_else() {
        let secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
        let body = br#"{"test": 2432232314}"#;
        let mut headers = HeaderMap::new();
        headers.insert(
            "webhook-id",
            "msg_p5jXN8AQM9LWM0D4loKWxJek".parse().unwrap(),
        );
        headers.insert("webhook-timestamp", "1614265330".parse().unwrap());
        let signatures = "v1,bm9ldHJlYWw= v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=";
        headers.insert("webhook-signature", signatures.parse().unwrap());
        assert!(verify_signature(secret, &headers, body));
        assert!(!verify_signature(secret, &headers, b"{}"));
        assert!(!verify_signature("whsec_AAAA", &headers, body));
    }
}
