//! The attempt log's record (docs/contract.md §3): what one attempt sent and got back, kept per
//! endpoint so a customer can see why their endpoint is not receiving.

use serde::{Deserialize, Serialize};

use crate::policy::AttemptOutcome;

/// How much of a receiver's answer is kept: enough to show an error page's first lines.
pub const RESPONSE_EXCERPT_BYTES: usize = 1024;

/// Why an attempt failed, as a class a dashboard can filter on and explain.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum ErrorClass {
    /// The receiver answered, but not 2xx.
    NonSuccessStatus,
    Timeout,
    ConnectionRefused,
    Dns,
    Tls,
    /// Any other connection failure (reset, unreachable network…).
    Connection,
    /// The URL resolves to an address hookfleet does not deliver to.
    BlockedTarget,
}

impl ErrorClass {
    /// The class of a failed outcome; `None` for a 2xx.
    pub fn of(outcome: &AttemptOutcome) -> Option<Self> {
        Some(match outcome {
            AttemptOutcome::Status { code, .. } if (200..300).contains(code) => return None,
            AttemptOutcome::Status { .. } => ErrorClass::NonSuccessStatus,
            AttemptOutcome::Timeout => ErrorClass::Timeout,
            AttemptOutcome::Blocked(_) => ErrorClass::BlockedTarget,
            AttemptOutcome::ConnectError(text) => {
                // The error chain's text is all reqwest exposes of these causes.
                let text = text.to_ascii_lowercase();
                if text.contains("connection refused") {
                    ErrorClass::ConnectionRefused
                } else if text.contains("dns") || text.contains("lookup") {
                    ErrorClass::Dns
                } else if text.contains("tls") || text.contains("certificate") {
                    ErrorClass::Tls
                } else {
                    ErrorClass::Connection
                }
            }
        })
    }
}

/// An attempt's result in words a customer understands, with the timeout for "timed out".
pub fn explain(outcome: &AttemptOutcome, timeout: std::time::Duration) -> String {
    match (ErrorClass::of(outcome), outcome) {
        (None, AttemptOutcome::Status { code, .. }) => format!("delivered: HTTP {code}"),
        (Some(ErrorClass::NonSuccessStatus), AttemptOutcome::Status { code, .. }) => {
            format!("your endpoint answered HTTP {code}; only a 2xx status counts as delivered")
        }
        (Some(ErrorClass::Timeout), _) => {
            format!("timed out: no answer within {}", humanize(timeout))
        }
        (Some(ErrorClass::ConnectionRefused), _) => {
            "connection refused: nothing accepts connections at that host and port".to_owned()
        }
        (Some(ErrorClass::Dns), _) => "DNS failure: the host name does not resolve".to_owned(),
        (Some(ErrorClass::Tls), _) => {
            "TLS failure: the HTTPS handshake or certificate check failed".to_owned()
        }
        (Some(ErrorClass::BlockedTarget), AttemptOutcome::Blocked(why)) => {
            format!("blocked target: {why}")
        }
        (_, outcome) => format!("connection failed: {}", outcome.describe()),
    }
}

fn humanize(d: std::time::Duration) -> String {
    if d.subsec_millis() == 0 {
        format!("{} s", d.as_secs())
    } else {
        format!("{} ms", d.as_millis())
    }
}

/// One entry of the attempt log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Attempt {
    /// The log's own id for this entry (a Redis stream id), for paging with `before`.
    #[serde(default)]
    pub id: String,
    /// RFC 3339, UTC.
    pub at: String,
    pub event_id: String,
    pub event_type: String,
    /// 1 for the first attempt; a test delivery is always 1.
    pub attempt: u32,
    /// `worker` or `test`.
    pub source: String,
    pub status: Option<u16>,
    pub error: Option<ErrorClass>,
    /// What happened, in words.
    pub message: String,
    pub latency_ms: u64,
    /// The first KiB of the receiver's answer, as text.
    pub response_body: String,
}

/// Who made an attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    Worker,
    Test,
}

/// What an attempt was, for [`Attempt::new`].
#[derive(Debug)]
pub struct Made<'a> {
    pub event_id: &'a str,
    pub event_type: &'a str,
    pub attempt: u32,
    pub source: Source,
    pub outcome: &'a AttemptOutcome,
    pub excerpt: &'a str,
    pub latency: std::time::Duration,
    /// The delivery timeout, to say how long "timed out" waited.
    pub timeout: std::time::Duration,
}

impl Attempt {
    /// The log entry of an attempt made just now.
    pub fn new(made: Made<'_>) -> Self {
        let at = time::OffsetDateTime::now_utc()
            .format(&time::format_description::well_known::Rfc3339)
            .unwrap_or_default();
        Self {
            id: String::new(),
            at,
            event_id: made.event_id.to_owned(),
            event_type: made.event_type.to_owned(),
            attempt: made.attempt,
            source: match made.source {
                Source::Worker => "worker",
                Source::Test => "test",
            }
            .to_owned(),
            status: made.outcome.status(),
            error: ErrorClass::of(made.outcome),
            message: explain(made.outcome, made.timeout),
            latency_ms: made.latency.as_millis() as u64,
            response_body: made.excerpt.to_owned(),
        }
    }

    /// Whether the attempt was delivered (a 2xx).
    pub fn delivered(&self) -> bool {
        self.error.is_none()
    }
}

/// The first [`RESPONSE_EXCERPT_BYTES`] of a body as text, cut on a character boundary.
pub fn excerpt(body: &[u8]) -> String {
    let cut = &body[..body.len().min(RESPONSE_EXCERPT_BYTES)];
    let text = String::from_utf8_lossy(cut);
    // A cut through a multi-byte character shows as one replacement character at the end.
    text.into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn status(code: u16) -> AttemptOutcome {
        AttemptOutcome::Status {
            code,
            retry_after: None,
        }
    }

    #[test]
    fn outcomes_fall_into_classes() {
        let connect = |s: &str| AttemptOutcome::ConnectError(s.to_owned());
        let table = [
            (status(204), None),
            (status(500), Some(ErrorClass::NonSuccessStatus)),
            (AttemptOutcome::Timeout, Some(ErrorClass::Timeout)),
            (
                connect(
                    "error sending request: client error (Connect): tcp connect error: Connection refused (os error 111)",
                ),
                Some(ErrorClass::ConnectionRefused),
            ),
            (
                connect("client error (Connect): dns error: failed to lookup address information"),
                Some(ErrorClass::Dns),
            ),
            (
                connect("client error (Connect): invalid peer certificate: UnknownIssuer"),
                Some(ErrorClass::Tls),
            ),
            (
                connect("connection reset by peer"),
                Some(ErrorClass::Connection),
            ),
            (
                AttemptOutcome::Blocked("10.0.0.1 is private".into()),
                Some(ErrorClass::BlockedTarget),
            ),
        ];
        for (outcome, class) in table {
            assert_eq!(ErrorClass::of(&outcome), class, "{outcome:?}");
        }
    }

    #[test]
    fn explanations_use_plain_words() {
        let t = Duration::from_secs(5);
        assert_eq!(explain(&status(201), t), "delivered: HTTP 201");
        assert!(explain(&status(500), t).contains("HTTP 500"));
        assert_eq!(
            explain(&AttemptOutcome::Timeout, t),
            "timed out: no answer within 5 s"
        );
        let refused = AttemptOutcome::ConnectError("Connection refused (os error 111)".into());
        assert!(explain(&refused, t).starts_with("connection refused"));
    }

    #[test]
    fn excerpts_stop_at_one_kib() {
        assert_eq!(excerpt(b"oops"), "oops");
        assert_eq!(excerpt(&[b'x'; 5000]).len(), RESPONSE_EXCERPT_BYTES);
    }
}
