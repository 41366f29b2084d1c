//! The integration-test harness, zero2prod style: every test builds its own [`Fleet`] (a fresh
//! namespace on the shared RabbitMQ and Redis) and its own [`Receiver`] (a real HTTP server on
//! 127.0.0.1), drives the real `hookfleet` binary, and waits on conditions, never fixed sleeps.

// Helpers shared by every test module; not each module uses each helper.
#![allow(dead_code)]

mod cleanup;
mod fleet;
mod publisher;
mod receiver;
mod worker;

use std::time::{Duration, Instant};

use axum::http::HeaderMap;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

pub use fleet::Fleet;
pub use publisher::RawPublisher;
pub use receiver::{Receiver, Recorded, Reply};
pub use worker::Worker;

/// The shared broker and store every test uses, each in its own namespace.
const AMQP_URL: &str = "amqp://guest:guest@127.0.0.1:5672/%2f";
const REDIS_URL: &str = "redis://127.0.0.1:6379";

/// The default timeout of a test's waits: generous for a loaded CI machine, short enough
/// that a broken fleet fails fast.
pub const WAIT: Duration = Duration::from_secs(10);

/// Polls `condition` every 25 ms until it holds; panics naming `what` after `timeout`.
pub async fn wait_until(timeout: Duration, what: &str, mut condition: impl FnMut() -> bool) {
    let started = Instant::now();
    loop {
        if condition() {
            return;
        }
        assert!(
            started.elapsed() < timeout,
            "timed out after {timeout:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// An independent Standard Webhooks verifier (deliberately not the crate's signing code):
/// true when any of the space-separated `v1,<base64>` signatures in `webhook-signature` is
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
    let Some(key) = secret
        .strip_prefix("whsec_")
        .and_then(|k| BASE64.decode(k).ok())
    else {
        return false;
    };
    signatures.split(' ').any(|signature| {
        let Some(("v1", encoded)) = signature.split_once(',') else {
            return false;
        };
        let Ok(tag) = BASE64.decode(encoded) else {
            return false;
        };
        let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(&key).unwrap();
        mac.update(format!("{id}.{timestamp}.").as_bytes());
        mac.update(body);
        mac.verify_slice(&tag).is_ok()
    })
}

/// The sum of every series of metric `name` whose labels include all of `labels`, read from
/// Prometheus text format; 0 when there is none.
pub fn metric_value(text: &str, name: &str, labels: &[(&str, &str)]) -> f64 {
    text.lines()
        .filter(|line| !line.starts_with('#'))
        .filter_map(|line| {
            let (series, value) = line.rsplit_once(' ')?;
            let (metric, rest) = series.split_once('{').unwrap_or((series, ""));
            let matches = metric == name
                && labels
                    .iter()
                    .all(|(k, v)| rest.contains(&format!("{k}=\"{v}\"")));
            if matches {
                value.parse::<f64>().ok()
            } else {
                None
            }
        })
        .sum()
}

/// `n` random lowercase hex characters, from std alone (`RandomState` is randomly keyed).
pub fn random_hex(n: usize) -> String {
    use std::hash::{BuildHasher, Hasher};
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let mut out = String::new();
    while out.len() < n {
        let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
        hasher.write_u64(COUNTER.fetch_add(1, Ordering::Relaxed));
        hasher.write_u128(
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap_or_default()
                .as_nanos(),
        );
        out.push_str(&format!("{:016x}", hasher.finish()));
    }
    out.truncate(n);
    out
}

/// A port that was free a moment ago on 127.0.0.1 (bind port 0, read it, release it).
pub fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_verifier_accepts_a_known_standard_webhooks_signature() {
        // The example of the Standard Webhooks reference libraries.
        let secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
        let body = br#"{"test": 2432232314}"#;
        let mut headers = HeaderMap::new();
        headers.insert(
            "webhook-id",
            "msg_p5jXN8AQM9LWM0D4loKWxJek".parse().unwrap(),
        );
        headers.insert("webhook-timestamp", "1614265330".parse().unwrap());
        headers.insert(
            "webhook-signature",
            "v1,bm9ldHJlYWw= v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
                .parse()
                .unwrap(),
        );
        assert!(verify_signature(secret, &headers, body));
        assert!(!verify_signature(secret, &headers, b"{}"));
        assert!(!verify_signature("whsec_AAAA", &headers, body));
    }

    #[test]
    fn metric_values_are_summed_over_matching_series() {
        let text = "# TYPE x counter\n\
            x{event_type=\"a\",outcome=\"blocked\"} 2\n\
            x{event_type=\"a\",outcome=\"success\"} 3\n\
            x_other{event_type=\"a\"} 7\n";
        assert_eq!(metric_value(text, "x", &[("outcome", "blocked")]), 2.0);
        assert_eq!(metric_value(text, "x", &[("event_type", "a")]), 5.0);
        assert_eq!(metric_value(text, "y", &[]), 0.0);
    }
}
