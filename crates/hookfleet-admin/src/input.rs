//! What callers send, and the checks that turn it into domain values.
//!
//! Each check reports every wrong field at once, so a form can mark them all in one round.
//! Unknown fields are refused (`deny_unknown_fields`): a misspelt `evnets` must not silently
//! leave an endpoint subscribed to nothing new.

use std::collections::{BTreeMap, BTreeSet};

use hookfleet_core::custom_headers;
use hookfleet_core::{
    CustomHeaders, EventFilter, EventId, EventType, PayloadFilter, Scheme, Secret, TenantId,
};
use serde::Deserialize;
use utoipa::ToSchema;

use crate::FieldError;

/// Longest endpoint description, in characters.
pub const MAX_DESCRIPTION_CHARS: usize = 500;

/// A new endpoint.
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewEndpoint {
    /// The tenant; with a tenant token it may be left out (it is the token's).
    #[serde(default)]
    #[schema(example = "acme", pattern = "^[!-~]{1,255}$")]
    pub tenant: Option<String>,
    /// Where to POST: http or https with a public host.
    #[schema(example = "https://example.com/webhooks", max_length = 2048)]
    pub url: String,
    /// Event types from the catalog, or `["*"]` for all.
    #[schema(example = json!(["log.blocked", "approval.approved"]), min_items = 1)]
    pub events: Vec<String>,
    /// `whsec_` + base64 of 24–64 bytes (`hmac-sha256`), or `whsk_` + base64 of a 32-byte
    /// Ed25519 key (`ed25519`); generated when left out.
    #[serde(default)]
    #[schema(
        example = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
        pattern = "^(whsec|whsk)_[A-Za-z0-9+/]+={0,2}$"
    )]
    pub secret: Option<String>,
    /// How deliveries are signed: `hmac-sha256` (Standard Webhooks `v1`, the default) or
    /// `ed25519` (`v1a`: the receiver verifies with the endpoint's `public_key`).
    #[serde(default)]
    #[schema(example = "hmac-sha256", pattern = "^(hmac-sha256|ed25519)$")]
    pub signature: Option<String>,
    #[serde(default)]
    #[schema(example = "Orders service", max_length = 500)]
    pub description: Option<String>,
    /// Headers sent with every delivery: at most 20, names case-insensitive (kept lower-case),
    /// values visible ASCII up to 1 KiB; `webhook-*`, `content-type`, `content-length`,
    /// `host`, `user-agent`, `connection` and `transfer-encoding` are refused.
    #[serde(default)]
    #[schema(example = json!({"X-Api-Key": "k-123", "X-Team": "red"}))]
    pub headers: Option<BTreeMap<String, String>>,
    /// Names in `headers` whose values are sealed at rest and shown as `********`.
    #[serde(default)]
    #[schema(example = json!(["X-Api-Key"]))]
    pub sensitive_headers: Option<Vec<String>>,
    /// Deliveries a second to this endpoint across the whole fleet (1–10,000); more wait.
    #[serde(default, deserialize_with = "integer")]
    #[schema(example = 20, minimum = 1, maximum = 10000)]
    pub rate_limit: Option<i64>,
    /// Deliveries in flight to this endpoint at once, per worker (1 to the workers'
    /// `HOOKFLEET_ENDPOINT_CONCURRENCY`).
    #[serde(default, deserialize_with = "integer")]
    #[schema(example = 4, minimum = 1)]
    pub max_in_flight: Option<i64>,
    /// Only events whose `data` matches this predicate are sent here (docs/contract.md §2).
    #[serde(default)]
    #[schema(value_type = Option<Object>, example = json!({"severity": {"$in": ["high", "critical"]}, "agent.team": "payments"}))]
    pub filter: Option<serde_json::Value>,
    /// Deliver one at a time, in the order the broker accepted the events (default false).
    #[serde(default)]
    pub ordered: Option<bool>,
}

/// A change to an endpoint: only the fields given change.
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EndpointPatch {
    #[serde(default)]
    #[schema(example = "https://example.com/webhooks/v2", max_length = 2048)]
    pub url: Option<String>,
    #[serde(default)]
    #[schema(example = json!(["*"]), min_items = 1)]
    pub events: Option<Vec<String>>,
    #[serde(default)]
    #[schema(max_length = 500)]
    pub description: Option<String>,
    #[serde(default)]
    pub enabled: Option<bool>,
    /// A different scheme makes a new secret of its kind, as a rotation does: the old one
    /// keeps signing beside it for 24 h.
    #[serde(default)]
    #[schema(example = "ed25519", pattern = "^(hmac-sha256|ed25519)$")]
    pub signature: Option<String>,
    /// Replaces every header; `null` removes them all. A sensitive header sent back as
    /// `********` keeps its value.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<BTreeMap<String, String>>, nullable)]
    pub headers: Option<Option<BTreeMap<String, String>>>,
    /// Replaces the list; `null` empties it. Names no longer in `headers` leave it.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<Vec<String>>, nullable)]
    pub sensitive_headers: Option<Option<Vec<String>>>,
    /// `null` removes the limit.
    #[serde(default, deserialize_with = "present_integer")]
    #[schema(value_type = Option<i64>, nullable, minimum = 1, maximum = 10000)]
    pub rate_limit: Option<Option<i64>>,
    /// `null` removes the endpoint's own cap.
    #[serde(default, deserialize_with = "present_integer")]
    #[schema(value_type = Option<i64>, nullable, minimum = 1)]
    pub max_in_flight: Option<Option<i64>>,
    /// `null` removes the filter: every event of the subscribed types is sent.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<Object>, nullable)]
    pub filter: Option<Option<serde_json::Value>>,
    /// Fixed when the endpoint is created: a different value is refused (422).
    #[serde(default)]
    pub ordered: Option<bool>,
}

/// A filter to try on an example `data` (`POST /v1/filters/test`).
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct FilterTrial {
    #[schema(value_type = Object, example = json!({"severity": {"$in": ["high", "critical"]}}))]
    pub filter: serde_json::Value,
    /// An event's `data` (any JSON).
    #[schema(example = json!({"severity": "critical", "agent": {"team": "payments"}}))]
    pub data: serde_json::Value,
}

/// A `PATCH` field that was sent, `null` or not (`Some(None)` is "remove it").
fn present<'de, T, D>(deserializer: D) -> Result<Option<Option<T>>, D::Error>
where
    T: Deserialize<'de>,
    D: serde::Deserializer<'de>,
{
    Option::<T>::deserialize(deserializer).map(Some)
}

/// An integer field, `null` or left out as `None`. JSON Schema's `integer`, which the OpenAPI
/// document promises, is any number without a fractional part: `20.0` is one, and a client
/// that checks its request against the document may send it. serde's integers refuse it.
fn integer<'de, T, D>(deserializer: D) -> Result<Option<T>, D::Error>
where
    T: TryFrom<i64>,
    D: serde::Deserializer<'de>,
{
    use serde::de::Error;
    let Some(number) = Option::<serde_json::Number>::deserialize(deserializer)? else {
        return Ok(None);
    };
    let whole = number.as_i64().or_else(|| {
        (number.as_f64())
            .filter(|f| f.fract() == 0.0 && (i64::MIN as f64..i64::MAX as f64).contains(f))
            .map(|f| f as i64)
    });
    match whole.and_then(|n| T::try_from(n).ok()) {
        Some(value) => Ok(Some(value)),
        None if number.as_f64().is_some_and(|f| f.fract() != 0.0) => Err(D::Error::custom(
            format!("invalid value: {number}, expected an integer"),
        )),
        None => Err(D::Error::custom(format!(
            "invalid value: {number}, out of range"
        ))),
    }
}

/// [`present`] for an integer field.
fn present_integer<'de, D>(deserializer: D) -> Result<Option<Option<i64>>, D::Error>
where
    D: serde::Deserializer<'de>,
{
    integer(deserializer).map(Some)
}

/// What Test Webhook sends.
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TestRequest {
    /// Send this subscribed type's example (`PUT /v1/event-types/{type}`) instead of a
    /// `webhook.test` event.
    #[serde(default)]
    #[schema(example = "log.blocked")]
    pub event_type: Option<String>,
}

/// A new secret for an endpoint.
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Rotation {
    /// The new secret (`whsec_…` or `whsk_…`: a rotation may change the scheme); one of the
    /// current scheme is generated when left out.
    #[serde(default)]
    #[schema(pattern = "^(whsec|whsk)_[A-Za-z0-9+/]+={0,2}$")]
    pub secret: Option<String>,
}

/// An event to publish (docs/contract.md §1).
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewEvent {
    /// The event type, from the catalog.
    #[serde(rename = "type")]
    #[schema(example = "log.blocked", pattern = "^[a-z0-9._-]{1,64}$")]
    pub event_type: String,
    #[schema(example = "acme", pattern = "^[!-~]{1,255}$")]
    pub tenant: String,
    /// Any JSON; it becomes the payload's `data`.
    #[schema(example = json!({"agent": "a-17", "rule": "no-prod-writes"}))]
    pub data: serde_json::Value,
    /// The event id; generated when left out. The same id with the same content within 24 h
    /// is answered as the first time and not published again.
    #[serde(default)]
    #[schema(example = "evt_01J9Z3", pattern = "^[!-~]{1,255}$")]
    pub id: Option<String>,
}

/// Which dead letters to replay.
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReplayRequest {
    /// Only this endpoint's dead letters.
    #[serde(default)]
    pub endpoint: Option<String>,
    /// At most this many.
    #[serde(default, deserialize_with = "integer")]
    pub limit: Option<usize>,
}

/// Collects field errors while values are checked one by one.
#[derive(Debug, Default)]
pub struct Checks(pub Vec<FieldError>);

impl Checks {
    /// The value, or `None` with its field's error noted.
    pub fn field<T, E: std::fmt::Display>(
        &mut self,
        name: &str,
        result: Result<T, E>,
    ) -> Option<T> {
        match result {
            Ok(value) => Some(value),
            Err(e) => {
                self.fail(name, e.to_string());
                None
            }
        }
    }

    pub fn fail(&mut self, name: &str, message: impl Into<String>) {
        self.0.push(FieldError::new(name, message));
    }

    /// `Err` with every noted error, if there is any.
    pub fn finish(self) -> crate::Result<()> {
        if self.0.is_empty() {
            Ok(())
        } else {
            Err(self.into_error())
        }
    }

    /// The noted errors as one error.
    pub fn into_error(self) -> crate::Error {
        crate::Error::Invalid(self.0)
    }
}

/// A subscription list checked against the catalog.
pub fn events(list: Vec<String>, catalog: &[EventType]) -> Result<EventFilter, String> {
    let filter = EventFilter::try_from(list).map_err(|e| e.to_string())?;
    let unknown = filter.unknown_in(catalog);
    if unknown.is_empty() {
        return Ok(filter);
    }
    let names: Vec<&str> = unknown.iter().map(|t| t.as_str()).collect();
    let known: Vec<&str> = catalog.iter().map(EventType::as_str).collect();
    Err(format!(
        "not in the catalog: {} (known: {}, or *)",
        names.join(", "),
        known.join(", ")
    ))
}

pub fn description(text: String) -> Result<String, String> {
    let chars = text.chars().count();
    if chars > MAX_DESCRIPTION_CHARS {
        return Err(format!(
            "at most {MAX_DESCRIPTION_CHARS} characters, not {chars}"
        ));
    }
    Ok(text)
}

/// Headers and their sensitive names, as one endpoint's: `Err((field, why))`.
pub fn headers(
    given: BTreeMap<String, String>,
    sensitive: Vec<String>,
) -> Result<(CustomHeaders, BTreeSet<String>), (&'static str, String)> {
    let headers = CustomHeaders::parse(given).map_err(|why| ("headers", why))?;
    let sensitive = custom_headers::sensitive_names(sensitive, &headers)
        .map_err(|why| ("sensitive_headers", why))?;
    Ok((headers, sensitive))
}

pub fn rate_limit(n: i64) -> Result<u32, String> {
    let range = hookfleet_core::endpoint::RATE_LIMITS;
    u32::try_from(n)
        .ok()
        .filter(|n| range.contains(n))
        .ok_or_else(|| {
            let (low, high) = (range.start(), range.end());
            format!("deliveries a second, {low} to {high}, not {n}")
        })
}

/// At most `most`, the workers' `HOOKFLEET_ENDPOINT_CONCURRENCY`.
pub fn max_in_flight(n: i64, most: u32) -> Result<u32, String> {
    u32::try_from(n)
        .ok()
        .filter(|n| (1..=most).contains(n))
        .ok_or_else(|| {
            format!("1 to {most} (the workers' HOOKFLEET_ENDPOINT_CONCURRENCY), not {n}")
        })
}

pub fn scheme(text: &str) -> Result<Scheme, String> {
    text.parse()
}

/// The secret to create an endpoint with: the one given (of the scheme asked for, if one
/// is) or a new one of the scheme asked for.
pub fn secret_for(given: Option<&str>, scheme: Option<Scheme>) -> Result<Secret, String> {
    match (given, scheme) {
        (None, scheme) => Ok(Secret::generate_for(scheme.unwrap_or_default())),
        (Some(text), scheme) => {
            let secret = self::secret(text)?;
            match scheme {
                Some(scheme) if scheme != secret.scheme() => Err(format!(
                    "a {} secret cannot sign {}: give a {} one, or none",
                    secret.scheme().secret_prefix(),
                    scheme.as_str(),
                    scheme.secret_prefix()
                )),
                _ => Ok(secret),
            }
        }
    }
}

pub fn filter(value: &serde_json::Value) -> Result<PayloadFilter, String> {
    PayloadFilter::parse(value).map_err(|e| e.to_string())
}

pub fn tenant(text: &str) -> Result<TenantId, String> {
    text.parse()
        .map_err(|e: hookfleet_core::Error| e.to_string())
}

pub fn secret(text: &str) -> Result<Secret, String> {
    text.parse()
        .map_err(|e: hookfleet_core::Error| e.to_string())
}

pub fn event_id(text: &str) -> Result<EventId, String> {
    text.parse()
        .map_err(|e: hookfleet_core::Error| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_are_checked_against_the_catalog() {
        let catalog: Vec<EventType> = vec!["log.blocked".parse().unwrap()];
        assert!(events(vec!["log.blocked".into()], &catalog).is_ok());
        assert!(events(vec!["*".into()], &catalog).is_ok());
        let error = events(vec!["log.nope".into()], &catalog).unwrap_err();
        assert!(
            error.contains("log.nope") && error.contains("log.blocked"),
            "{error}"
        );
        assert!(events(vec![], &catalog).is_err());
    }

    #[test]
    fn unknown_fields_are_refused() {
        let bad = serde_json::json!({"url": "https://x.example", "events": ["*"], "evnets": []});
        assert!(serde_json::from_value::<NewEndpoint>(bad).is_err());
    }

    #[test]
    fn an_integer_may_be_written_with_a_zero_fraction() {
        let new = |text: &str| serde_json::from_str::<NewEndpoint>(text).map(|n| n.rate_limit);
        assert_eq!(
            new(r#"{"url": "u", "events": [], "rate_limit": 20}"#).unwrap(),
            Some(20)
        );
        assert_eq!(
            new(r#"{"url": "u", "events": [], "rate_limit": 20.0}"#).unwrap(),
            Some(20)
        );
        assert_eq!(
            new(r#"{"url": "u", "events": [], "rate_limit": 2e1}"#).unwrap(),
            Some(20)
        );
        assert_eq!(
            new(r#"{"url": "u", "events": [], "rate_limit": null}"#).unwrap(),
            None
        );
        assert_eq!(new(r#"{"url": "u", "events": []}"#).unwrap(), None);
        let error = new(r#"{"url": "u", "events": [], "rate_limit": 2.5}"#).unwrap_err();
        assert!(error.to_string().contains("expected an integer"), "{error}");
        assert!(new(r#"{"url": "u", "events": [], "rate_limit": "20"}"#).is_err());
        let error = new(r#"{"url": "u", "events": [], "rate_limit": 1e300}"#).unwrap_err();
        assert!(error.to_string().contains("out of range"), "{error}");

        let patch =
            |text: &str| serde_json::from_str::<EndpointPatch>(text).map(|p| p.max_in_flight);
        assert_eq!(patch(r#"{"max_in_flight": 4.0}"#).unwrap(), Some(Some(4)));
        assert_eq!(patch(r#"{"max_in_flight": null}"#).unwrap(), Some(None));
        assert_eq!(patch("{}").unwrap(), None);

        let replay = |text: &str| serde_json::from_str::<ReplayRequest>(text).map(|r| r.limit);
        assert_eq!(replay(r#"{"limit": 10.0}"#).unwrap(), Some(10));
        let error = replay(r#"{"limit": -1}"#).unwrap_err();
        assert!(error.to_string().contains("out of range"), "{error}");
    }

    #[test]
    fn checks_keep_every_error() {
        let mut checks = Checks::default();
        assert_eq!(checks.field("a", Ok::<_, String>(1)), Some(1));
        assert_eq!(checks.field("b", Err::<u8, _>("bad b")), None);
        checks.fail("c", "bad c");
        let Err(crate::Error::Invalid(fields)) = checks.finish() else {
            panic!("expected invalid");
        };
        assert_eq!(fields.len(), 2);
    }
}
