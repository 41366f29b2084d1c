//! One signed POST to one endpoint (docs/contract.md §3).

use std::time::{Duration, Instant};

use bytes::Bytes;
use hookfleet_core::attempt::RESPONSE_EXCERPT_BYTES;
use hookfleet_core::policy::AttemptOutcome;
use hookfleet_core::signature::sign;
use hookfleet_core::target::AllowedPorts;
use hookfleet_core::{Endpoint, EventId};
use reqwest::header::{CONTENT_TYPE, HeaderValue, RETRY_AFTER};

use crate::guard::{self, Blocked, PublicOnlyResolver};

/// Longest `Retry-After` taken into account; longer asks are clamped to the longest tier anyway.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(24 * 3600);

/// What one POST came to.
#[derive(Debug)]
pub struct Sent {
    pub outcome: AttemptOutcome,
    /// The first KiB of the answer's body, as text (empty without an answer).
    pub excerpt: String,
    /// From the start of the request to the end of the excerpt.
    pub latency: Duration,
}

/// The HTTP side of delivery: one client (one connection pool) shared by every attempt.
#[derive(Debug, Clone)]
pub struct Sender {
    client: reqwest::Client,
    /// Whether non-public targets are allowed (`HOOKFLEET_ALLOW_PRIVATE_TARGETS`).
    allow_private: bool,
    /// The ports targets may use (`HOOKFLEET_ALLOWED_PORTS`).
    allowed_ports: AllowedPorts,
}

/// Why a target on a port outside `HOOKFLEET_ALLOWED_PORTS` is refused.
pub const PORT_REFUSED: &str = "the URL's port is not allowed (HOOKFLEET_ALLOWED_PORTS)";

impl Sender {
    pub fn new(
        timeout: Duration,
        user_agent: &str,
        allow_private: bool,
        allowed_ports: AllowedPorts,
    ) -> reqwest::Result<Self> {
        let mut builder = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout)
            .user_agent(user_agent)
            // The Standard Webhooks spec: a redirect is a failure, never followed.
            .redirect(reqwest::redirect::Policy::none())
            // A proxy from the environment would bypass the address check.
            .no_proxy()
            .pool_idle_timeout(Duration::from_secs(60))
            .tcp_nodelay(true);
        if !allow_private {
            builder = builder.dns_resolver(std::sync::Arc::new(PublicOnlyResolver));
        }
        Ok(Self {
            client: builder.build()?,
            allow_private,
            allowed_ports,
        })
    }

    /// POSTs `body` to the endpoint, signed with its secrets at this moment.
    pub async fn post(&self, endpoint: &Endpoint, event_id: &EventId, body: Bytes) -> Sent {
        let started = Instant::now();
        let (outcome, excerpt) = self.send(endpoint, event_id, body).await;
        Sent {
            outcome,
            excerpt,
            latency: started.elapsed(),
        }
    }

    async fn send(
        &self,
        endpoint: &Endpoint,
        event_id: &EventId,
        body: Bytes,
    ) -> (AttemptOutcome, String) {
        let url = match endpoint.target_url() {
            Ok(url) => url,
            Err(e) => return (AttemptOutcome::Blocked(e.to_string()), String::new()),
        };
        if !self.allow_private
            && let Err(blocked) = guard::check_literal(&url)
        {
            blocked.log();
            return (AttemptOutcome::Blocked(blocked.to_string()), String::new());
        }
        if !self.allowed_ports.allows(&url) {
            return (
                AttemptOutcome::Blocked(PORT_REFUSED.to_owned()),
                String::new(),
            );
        }
        let timestamp = time::OffsetDateTime::now_utc().unix_timestamp();
        let secrets = endpoint.signing_secrets(timestamp);
        let signature = sign(secrets, event_id.as_str(), timestamp, &body);
        let mut request = self.client.post(url);
        // The endpoint's own first: checked never to name a header set below.
        for (name, value) in endpoint.headers.iter() {
            request = request.header(name, value);
        }
        let request = request
            .header(CONTENT_TYPE, HeaderValue::from_static("application/json"))
            .header("webhook-id", event_id.as_str())
            .header("webhook-timestamp", timestamp)
            .header("webhook-signature", signature)
            .body(body);
        match request.send().await {
            Ok(response) => {
                let outcome = AttemptOutcome::Status {
                    code: response.status().as_u16(),
                    retry_after: retry_after(response.headers().get(RETRY_AFTER)),
                };
                (outcome, excerpt(response).await)
            }
            Err(e) => (classify(e), String::new()),
        }
    }
}

/// The first KiB of an answer's body. Reading it also lets the connection be reused when the
/// body is short; a body that fails or stalls midway (the client's timeout still runs) just
/// ends the excerpt, since the status already decided the attempt.
async fn excerpt(mut response: reqwest::Response) -> String {
    let mut head = Vec::new();
    while head.len() < RESPONSE_EXCERPT_BYTES {
        match response.chunk().await {
            Ok(Some(chunk)) => head.extend_from_slice(&chunk),
            Ok(None) | Err(_) => break,
        }
    }
    hookfleet_core::attempt::excerpt(&head)
}

/// What a failed request amounts to. reqwest's message ends in "for url (…)", the URL with
/// its credentials and query: it is dropped, because this text is logged and travels in the
/// retry headers and dead letters (`x-hookfleet-last-error`).
fn classify(error: reqwest::Error) -> AttemptOutcome {
    let error = error.without_url();
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(&error);
    while let Some(e) = source {
        if let Some(blocked) = e.downcast_ref::<Blocked>() {
            return AttemptOutcome::Blocked(blocked.to_string());
        }
        source = e.source();
    }
    if error.is_timeout() {
        return AttemptOutcome::Timeout;
    }
    AttemptOutcome::ConnectError(chain(&error))
}

/// The error and its causes on one line: reqwest's top-level message alone says little.
fn chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(e) = source {
        text.push_str(": ");
        text.push_str(&e.to_string());
        source = e.source();
    }
    text
}

/// `Retry-After` as seconds or as an HTTP date (RFC 9110 §10.2.3), measured from now.
fn retry_after(value: Option<&HeaderValue>) -> Option<Duration> {
    retry_after_at(value, time::OffsetDateTime::now_utc())
}

fn retry_after_at(value: Option<&HeaderValue>, now: time::OffsetDateTime) -> Option<Duration> {
    let text = value?.to_str().ok()?.trim();
    let wait = match text.parse::<u64>() {
        Ok(secs) => Duration::from_secs(secs),
        Err(_) => {
            // An HTTP date is RFC 2822-shaped ("Wed, 21 Oct 2015 07:28:00 GMT").
            let rfc2822 = time::format_description::well_known::Rfc2822;
            let at = time::OffsetDateTime::parse(text, &rfc2822).ok()?;
            Duration::try_from(at - now).unwrap_or(Duration::ZERO)
        }
    };
    Some(wait.min(MAX_RETRY_AFTER))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The description of a failed attempt is logged and stored in retry headers and dead
    /// letters: it must not carry the endpoint's credentials or query string.
    #[tokio::test]
    async fn a_connection_error_names_no_credentials_and_no_query() {
        // Port 1 on loopback: nothing listens, the connection is refused at once.
        let url = "http://user:pass@127.0.0.1:1/hook?token=abc";
        let endpoint = Endpoint::new(
            "acme".parse().unwrap(),
            url,
            hookfleet_core::EventFilter::parse_list("*").unwrap(),
            None,
            String::new(),
        )
        .unwrap();
        let sender = Sender::new(
            Duration::from_secs(2),
            "test",
            true,
            AllowedPorts::default(),
        )
        .unwrap();
        let outcome = sender
            .post(
                &endpoint,
                &"evt_1".parse().unwrap(),
                Bytes::from_static(b"{}"),
            )
            .await
            .outcome;
        assert!(
            matches!(outcome, AttemptOutcome::ConnectError(_)),
            "{outcome:?}"
        );
        let text = outcome.describe();
        for secret in ["user", "pass", "token", "abc", "?"] {
            assert!(!text.contains(secret), "{secret:?} in {text:?}");
        }
    }

    /// A port outside `HOOKFLEET_ALLOWED_PORTS` is refused before any connection, and the
    /// text a tenant reads names no address.
    #[tokio::test]
    async fn ports_not_allowed_and_private_targets_are_refused_without_a_connection() {
        let endpoint = |url: &str| {
            let any = hookfleet_core::EventFilter::parse_list("*").unwrap();
            Endpoint::new("acme".parse().unwrap(), url, any, None, String::new()).unwrap()
        };
        let id: EventId = "evt_1".parse().unwrap();
        let body = || Bytes::from_static(b"{}");
        let only_443: AllowedPorts = "443".parse().unwrap();
        let sender = Sender::new(Duration::from_secs(2), "test", true, only_443).unwrap();
        let outcome = sender
            .post(&endpoint("http://127.0.0.1:1/"), &id, body())
            .await
            .outcome;
        assert!(
            matches!(&outcome, AttemptOutcome::Blocked(why) if why == PORT_REFUSED),
            "{outcome:?}"
        );

        let guarded = Sender::new(
            Duration::from_secs(2),
            "test",
            false,
            AllowedPorts::default(),
        )
        .unwrap();
        let outcome = guarded
            .post(&endpoint("http://10.1.2.3/"), &id, body())
            .await
            .outcome;
        let text = outcome.describe();
        assert!(matches!(outcome, AttemptOutcome::Blocked(_)), "{outcome:?}");
        for leak in ["10.1.2.3", "HOOKFLEET_ALLOW_PRIVATE_TARGETS"] {
            assert!(!text.contains(leak), "{leak:?} in {text:?}");
        }
    }

    #[test]
    fn retry_after_takes_seconds_or_an_http_date() {
        let v = |s: &'static str| HeaderValue::from_static(s);
        let now = time::macros::datetime!(2015-10-21 07:26:00 UTC);
        let table = [
            (Some(v("120")), Some(Duration::from_secs(120))),
            (Some(v(" 5 ")), Some(Duration::from_secs(5))),
            (
                Some(v("Wed, 21 Oct 2015 07:28:00 GMT")),
                Some(Duration::from_secs(120)),
            ),
            (
                Some(v("Wed, 21 Oct 2015 07:00:00 GMT")),
                Some(Duration::ZERO),
            ),
            (Some(v("99999999")), Some(MAX_RETRY_AFTER)),
            (Some(v("soon")), None),
            (None, None),
        ];
        for (header, wait) in table {
            assert_eq!(retry_after_at(header.as_ref(), now), wait, "{header:?}");
        }
    }
}
