//! Endpoints: where a tenant wants its events, and which ones (docs/contract.md §2).

use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;
use std::fmt;

use crate::{CustomHeaders, Error, EventType, PayloadFilter, Result, Secret, TenantId};

/// An endpoint's id: `ep_` + a UUIDv7.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct EndpointId(String);

impl EndpointId {
    pub fn generate() -> Self {
        Self(format!("ep_{}", uuid::Uuid::now_v7().simple()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for EndpointId {
    type Error = Error;
    fn try_from(s: String) -> Result<Self> {
        let valid = (1..=128).contains(&s.len())
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-'));
        if valid {
            Ok(Self(s))
        } else {
            Err(Error::EndpointId(s))
        }
    }
}

impl std::str::FromStr for EndpointId {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        Self::try_from(s.to_owned())
    }
}

impl From<EndpointId> for String {
    fn from(v: EndpointId) -> String {
        v.0
    }
}

impl fmt::Display for EndpointId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Which event types an endpoint receives: `["*"]` for all, or a list.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "Vec<String>", into = "Vec<String>")]
pub enum EventFilter {
    All,
    Only(Vec<EventType>),
}

impl EventFilter {
    pub fn matches(&self, event_type: &EventType) -> bool {
        match self {
            EventFilter::All => true,
            EventFilter::Only(types) => types.contains(event_type),
        }
    }

    /// Parses a comma-separated list as the CLI takes it (`a,b` or `*`).
    pub fn parse_list(list: &str) -> Result<Self> {
        Self::try_from(
            list.split(',')
                .map(|s| s.trim().to_owned())
                .filter(|s| !s.is_empty())
                .collect::<Vec<_>>(),
        )
    }

    /// The types named that are not in `catalog` (always none for `*`).
    pub fn unknown_in<'a>(&'a self, catalog: &[EventType]) -> Vec<&'a EventType> {
        match self {
            EventFilter::All => Vec::new(),
            EventFilter::Only(types) => types.iter().filter(|t| !catalog.contains(t)).collect(),
        }
    }
}

impl TryFrom<Vec<String>> for EventFilter {
    type Error = Error;
    fn try_from(list: Vec<String>) -> Result<Self> {
        if list.is_empty() {
            return Err(Error::Events("name at least one event type, or *".into()));
        }
        if list.iter().any(|t| t == "*") {
            return if list.len() == 1 {
                Ok(EventFilter::All)
            } else {
                Err(Error::Events(
                    "* cannot be combined with other types".into(),
                ))
            };
        }
        let mut types = list
            .into_iter()
            .map(EventType::try_from)
            .collect::<Result<Vec<_>>>()?;
        types.sort();
        types.dedup();
        Ok(EventFilter::Only(types))
    }
}

impl From<EventFilter> for Vec<String> {
    fn from(f: EventFilter) -> Self {
        match f {
            EventFilter::All => vec!["*".to_owned()],
            EventFilter::Only(types) => types.into_iter().map(String::from).collect(),
        }
    }
}

/// The deliveries a second an endpoint's `rate_limit` may ask for.
pub const RATE_LIMITS: std::ops::RangeInclusive<u32> = 1..=10_000;

/// A subscription of one tenant: where to POST, which events, and the secret to sign with.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Endpoint {
    pub id: EndpointId,
    pub tenant: TenantId,
    pub url: String,
    pub events: EventFilter,
    pub secret: Secret,
    pub enabled: bool,
    #[serde(default)]
    pub description: String,
    /// RFC 3339, UTC.
    pub created_at: String,
    /// The secret a rotation replaced, still signing beside `secret` until its end.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous_secret: Option<RetiringSecret>,
    /// Who turned the endpoint off, while it is off.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disabled_by: Option<DisabledBy>,
    /// Headers sent with every delivery (checked: [`CustomHeaders::parse`]).
    #[serde(default, skip_serializing_if = "CustomHeaders::is_empty")]
    pub headers: CustomHeaders,
    /// The names in `headers` whose values are sealed at rest like secrets and shown masked.
    #[serde(default, skip_serializing_if = "BTreeSet::is_empty")]
    pub sensitive_headers: BTreeSet<String>,
    /// Deliveries a second to this endpoint, across the whole fleet ([`RATE_LIMITS`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate_limit: Option<u32>,
    /// This endpoint's own cap on deliveries in flight, per worker (at most each worker's
    /// `HOOKFLEET_ENDPOINT_CONCURRENCY`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_in_flight: Option<u32>,
    /// Which events' `data` this endpoint wants, beyond their type ([`PayloadFilter`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub filter: Option<PayloadFilter>,
    /// Deliveries one at a time, in the order the broker accepted the events
    /// (docs/ordered.md).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub ordered: bool,
    /// The record's version: every write names the version it read and stores the next one,
    /// so a write based on a stale read is refused instead of undoing another (a rotation, a
    /// removal).
    #[serde(default)]
    pub version: u64,
    /// `url` parsed, once, by the first delivery that needs it; not stored.
    #[serde(skip)]
    parsed: ParsedUrl,
}

/// A URL parsed on first use. Workers read endpoints afresh from Redis (each read is a new
/// value), so the parse is one per endpoint per cache refresh instead of one per POST. It
/// takes no part in comparisons: it only repeats `url`.
#[derive(Debug, Clone, Default)]
struct ParsedUrl(std::sync::OnceLock<Option<url::Url>>);

impl PartialEq for ParsedUrl {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}

impl Eq for ParsedUrl {}

/// Who turned an endpoint off. A tenant may turn back on what it or the circuit breaker
/// turned off, not what the operator did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum DisabledBy {
    Tenant,
    Operator,
    /// The circuit breaker (failing for `HOOKFLEET_AUTO_DISABLE_AFTER`) or a 410 answer.
    Breaker,
}

/// A replaced secret and when it stops signing (unix seconds).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RetiringSecret {
    pub secret: Secret,
    pub until: i64,
}

impl Endpoint {
    /// A new, enabled endpoint; the URL is checked, the secret generated when not given.
    pub fn new(
        tenant: TenantId,
        url: &str,
        events: EventFilter,
        secret: Option<Secret>,
        description: String,
    ) -> Result<Self> {
        crate::target::parse_url(url)?;
        let created_at = time::OffsetDateTime::now_utc()
            .format(&time::format_description::well_known::Rfc3339)
            .unwrap_or_default();
        Ok(Self {
            id: EndpointId::generate(),
            tenant,
            url: url.to_owned(),
            events,
            secret: secret.unwrap_or_else(Secret::generate),
            enabled: true,
            description,
            created_at,
            previous_secret: None,
            disabled_by: None,
            headers: CustomHeaders::default(),
            sensitive_headers: BTreeSet::new(),
            rate_limit: None,
            max_in_flight: None,
            filter: None,
            ordered: false,
            version: 0,
            parsed: ParsedUrl::default(),
        })
    }

    /// The URL to POST to, checked as [`crate::target::parse_url`] does; parsed once per
    /// value of this endpoint (do not change `url` on a value that delivers).
    pub fn target_url(&self) -> Result<url::Url> {
        match self
            .parsed
            .0
            .get_or_init(|| crate::target::parse_url(&self.url).ok())
        {
            Some(url) => Ok(url.clone()),
            // Rare (a record written by hand): the error is worked out again to be told.
            None => crate::target::parse_url(&self.url),
        }
    }

    /// The secrets that sign an attempt made at `now` (unix seconds): the current one, and
    /// during a rotation the replaced one too, so a receiver holding either verifies.
    pub fn signing_secrets(&self, now: i64) -> impl Iterator<Item = &Secret> {
        let previous = self
            .previous_secret
            .as_ref()
            .filter(|p| now < p.until)
            .map(|p| &p.secret);
        std::iter::once(&self.secret).chain(previous)
    }

    /// Replaces the secret; the old one keeps signing for `overlap` from `now`.
    pub fn rotate_secret(&mut self, new: Secret, now: i64, overlap: std::time::Duration) {
        let old = std::mem::replace(&mut self.secret, new);
        self.previous_secret = Some(RetiringSecret {
            secret: old,
            until: now.saturating_add(overlap.as_secs() as i64),
        });
    }

    /// Turns the endpoint on, or off on behalf of `by`.
    pub fn set_enabled(&mut self, enabled: bool, by: DisabledBy) {
        self.enabled = enabled;
        self.disabled_by = (!enabled).then_some(by);
    }

    /// Whether this endpoint should get an event of this type now.
    pub fn wants(&self, event_type: &EventType) -> bool {
        self.enabled && self.events.matches(event_type)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> EventType {
        s.parse().unwrap()
    }

    fn any_endpoint() -> Endpoint {
        let tenant = "acme".parse().unwrap();
        Endpoint::new(
            tenant,
            "http://example.com",
            EventFilter::All,
            None,
            String::new(),
        )
        .unwrap()
    }

    #[test]
    fn filters_match_listed_types_or_everything() {
        let only = EventFilter::parse_list("log.blocked, log.failed").unwrap();
        assert!(only.matches(&t("log.failed")));
        assert!(!only.matches(&t("approval.approved")));
        assert!(
            EventFilter::parse_list("*")
                .unwrap()
                .matches(&t("anything"))
        );
    }

    #[test]
    fn bad_filters_are_refused() {
        for bad in ["", "*,log.blocked", "Bad Type"] {
            assert!(EventFilter::parse_list(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn endpoint_json_carries_the_contract_fields() {
        let ep = Endpoint::new(
            "acme".parse().unwrap(),
            "https://example.com/hook",
            EventFilter::All,
            None,
            "d".into(),
        )
        .unwrap();
        let json = serde_json::to_value(&ep).unwrap();
        for field in [
            "id",
            "tenant",
            "url",
            "events",
            "secret",
            "enabled",
            "description",
            "created_at",
        ] {
            assert!(json.get(field).is_some(), "{field}");
        }
        assert_eq!(json["events"], serde_json::json!(["*"]));
        let back: Endpoint = serde_json::from_value(json).unwrap();
        assert_eq!(back, ep);
    }

    #[test]
    fn a_rotated_secret_signs_beside_the_new_one_until_its_end() {
        let mut ep = any_endpoint();
        let old = ep.secret.clone();
        assert_eq!(ep.signing_secrets(0).count(), 1);
        ep.rotate_secret(
            Secret::generate(),
            1_000,
            std::time::Duration::from_secs(60),
        );
        let during: Vec<&Secret> = ep.signing_secrets(1_059).collect();
        assert_eq!(during, [&ep.secret, &old]);
        assert_eq!(ep.signing_secrets(1_060).collect::<Vec<_>>(), [&ep.secret]);
        let back: Endpoint = serde_json::from_value(serde_json::to_value(&ep).unwrap()).unwrap();
        assert_eq!(back, ep);
    }

    #[test]
    fn disabled_endpoints_want_nothing() {
        let mut ep = any_endpoint();
        ep.enabled = false;
        assert!(!ep.wants(&t("log.blocked")));
    }
}
