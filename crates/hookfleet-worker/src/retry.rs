//! Where a delivery goes when it did not succeed: the next delay tier, or the dead-letter queue.
//!
//! Both keep the body byte for byte and the contract's properties, and add hookfleet's headers:
//! the one endpoint the message is now for, the attempts made, and the last outcome. Both wait
//! for the broker's confirm; only then may the original message be acked.

use hookfleet_amqp::ConfirmedPublisher;
use hookfleet_amqp::headers::{self as header, remove, set_int, set_str};
use hookfleet_core::EndpointId;
use hookfleet_core::Namespace;
use hookfleet_core::policy::AttemptOutcome;
use lapin::BasicProperties;
use lapin::types::FieldTable;

use crate::Result;

/// What the last attempt for an endpoint looked like.
#[derive(Debug, Clone)]
pub struct Failure<'a> {
    pub endpoint: &'a EndpointId,
    /// Attempts made so far.
    pub attempts: u32,
    pub last_status: Option<u16>,
    pub last_error: String,
}

impl<'a> Failure<'a> {
    pub fn new(endpoint: &'a EndpointId, attempts: u32, outcome: &AttemptOutcome) -> Self {
        Self {
            endpoint,
            attempts,
            last_status: outcome.status(),
            last_error: outcome.describe(),
        }
    }
}

/// Publishes the message to `N.dead` with the reason; `failure` is absent for a message that
/// broke the contract before any endpoint was tried.
pub async fn dead_letter(
    publisher: &ConfirmedPublisher,
    namespace: &Namespace,
    routing_key: &str,
    properties: &BasicProperties,
    body: &[u8],
    failure: Option<&Failure<'_>>,
    reason: &str,
) -> Result<()> {
    let properties = match failure {
        Some(f) => with_failure(properties, f),
        None => properties.clone(),
    };
    let mut headers = properties.headers().clone().unwrap_or_default();
    set_str(&mut headers, header::REASON, reason);
    let now_ms = time::OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000;
    set_int(&mut headers, header::DEAD_AT, now_ms as i64);
    let (kept, original_size) = kept_body(body);
    if let Some(size) = original_size {
        set_int(
            &mut headers,
            header::ORIGINAL_SIZE,
            i64::try_from(size).unwrap_or(i64::MAX),
        );
    }
    publisher
        .send(
            &namespace.dead(),
            routing_key,
            kept,
            properties.with_headers(headers),
        )
        .await?;
    Ok(())
}

/// How much of an oversized body a dead letter keeps: enough to recognise the event.
pub const KEPT_BODY_BYTES: usize = 4 * 1024;

/// The body a dead letter keeps, and the original size when it was cut. A body over the
/// contract's limit (`MAX_BODY_BYTES`) can never be delivered or replayed, and keeping it whole
/// would let anyone who can publish fill `N.dead` (and its quorum replicas) 256 KiB+ at a time;
/// its first 4 KiB tell an operator what it was.
fn kept_body(body: &[u8]) -> (&[u8], Option<usize>) {
    if body.len() > hookfleet_core::MAX_BODY_BYTES {
        (&body[..KEPT_BODY_BYTES], Some(body.len()))
    } else {
        (body, None)
    }
}

/// The message's properties for a retry of `failure.endpoint` only, with the attempts made and
/// the last outcome ([`crate::bundle`] publishes it to a delay tier).
pub fn with_failure(properties: &BasicProperties, failure: &Failure<'_>) -> BasicProperties {
    let mut headers: FieldTable = properties.headers().clone().unwrap_or_default();
    set_str(&mut headers, header::ENDPOINT, failure.endpoint.as_str());
    set_int(&mut headers, header::ATTEMPTS, failure.attempts.into());
    set_str(&mut headers, header::LAST_ERROR, &failure.last_error);
    match failure.last_status {
        Some(code) => set_int(&mut headers, header::LAST_STATUS, code.into()),
        None => remove(&mut headers, &[header::LAST_STATUS]),
    }
    properties.clone().with_headers(headers)
}

/// The message's properties for `endpoint` only, with its attempt count and last outcome
/// unchanged: a deferral uses no attempt ([`crate::bundle`] publishes it).
pub fn for_endpoint(properties: &BasicProperties, endpoint: &EndpointId) -> BasicProperties {
    let mut headers: FieldTable = properties.headers().clone().unwrap_or_default();
    set_str(&mut headers, header::ENDPOINT, endpoint.as_str());
    properties.clone().with_headers(headers)
}

#[cfg(test)]
mod tests {
    use super::*;
    use hookfleet_core::MAX_BODY_BYTES;

    #[test]
    fn only_an_oversized_body_is_cut_to_its_first_4_kib() {
        let within = vec![b'x'; MAX_BODY_BYTES];
        assert_eq!(kept_body(&within), (&within[..], None));
        let over = vec![b'x'; MAX_BODY_BYTES + 1];
        let (kept, size) = kept_body(&over);
        assert_eq!(kept.len(), KEPT_BODY_BYTES);
        assert_eq!(size, Some(MAX_BODY_BYTES + 1));
        assert_eq!(kept_body(b"{}"), (&b"{}"[..], None));
    }
}
