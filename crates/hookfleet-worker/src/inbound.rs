//! Reading a message from a work queue: everything docs/contract.md §1 requires is checked here, once,
//! so the rest of the worker only sees valid events.

use hookfleet_amqp::headers::{self as header, get_int, get_str};
use hookfleet_core::MAX_BODY_BYTES;
use hookfleet_core::{EndpointId, EventId, EventType, TenantId};
use lapin::BasicProperties;

/// A message that meets the contract.
#[derive(Debug, Clone)]
pub struct InboundEvent {
    pub id: EventId,
    pub event_type: EventType,
    pub tenant: TenantId,
    /// Unix seconds when the event happened (0 when the publisher sent none).
    pub timestamp: i64,
    /// Set on a retry or replay: the one endpoint this message is for.
    pub target: Option<EndpointId>,
    /// Attempts already made for `target`.
    pub attempts: u32,
    /// Set on a resend: its own id, de-duplicated instead of the event's.
    pub resend: Option<EventId>,
}

/// Why a message breaks the contract; it goes to the dead-letter queue with this reason.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Malformed {
    #[error("body too large: {0} bytes, over the 262144-byte limit")]
    TooLarge(usize),
    #[error("body is not JSON: {0}")]
    NotJson(String),
    #[error("no message_id (the event id)")]
    NoId,
    #[error("bad message_id: {0}")]
    BadId(String),
    #[error("no type property")]
    NoType,
    #[error("type {got:?} does not belong on the queue of {expected}")]
    WrongType { got: String, expected: String },
    #[error("no tenant header")]
    NoTenant,
    #[error("bad tenant header: {0}")]
    BadTenant(String),
    #[error("bad x-hookfleet-endpoint header: {0}")]
    BadTarget(String),
    #[error("bad x-hookfleet-resend header: {0}")]
    BadResend(String),
}

impl InboundEvent {
    /// Checks a message taken from the work queue of `queue_type`.
    pub fn parse(
        properties: &BasicProperties,
        body: &[u8],
        queue_type: &EventType,
    ) -> Result<Self, Malformed> {
        if body.len() > MAX_BODY_BYTES {
            return Err(Malformed::TooLarge(body.len()));
        }
        serde_json::from_slice::<serde::de::IgnoredAny>(body)
            .map_err(|e| Malformed::NotJson(e.to_string()))?;
        let id = properties.message_id().as_ref().ok_or(Malformed::NoId)?;
        let id = id
            .as_str()
            .parse()
            .map_err(|e: hookfleet_core::Error| Malformed::BadId(e.to_string()))?;
        let kind = properties.kind().as_ref().ok_or(Malformed::NoType)?;
        if kind.as_str() != queue_type.as_str() {
            return Err(Malformed::WrongType {
                got: kind.to_string(),
                expected: queue_type.to_string(),
            });
        }
        let tenant = get_str(properties, header::TENANT).ok_or(Malformed::NoTenant)?;
        let tenant = tenant
            .parse()
            .map_err(|e: hookfleet_core::Error| Malformed::BadTenant(e.to_string()))?;
        let target = get_str(properties, header::ENDPOINT)
            .map(|t| t.parse::<EndpointId>())
            .transpose()
            .map_err(|e| Malformed::BadTarget(e.to_string()))?;
        let attempts = get_int(properties, header::ATTEMPTS).unwrap_or(0);
        let resend = get_str(properties, header::RESEND)
            .map(|r| r.parse::<EventId>())
            .transpose()
            .map_err(|e| Malformed::BadResend(e.to_string()))?;
        Ok(Self {
            id,
            event_type: queue_type.clone(),
            tenant,
            timestamp: properties.timestamp().map_or(0, |t| t as i64),
            target,
            attempts: u32::try_from(attempts).unwrap_or(0),
            resend,
        })
    }

    /// What de-duplication knows this delivery by: the event id, or a resend's own id.
    pub fn dedup_key(&self) -> &EventId {
        self.resend.as_ref().unwrap_or(&self.id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hookfleet_amqp::headers::set_str;
    use lapin::types::FieldTable;

    fn props(id: Option<&str>, kind: Option<&str>, tenant: Option<&str>) -> BasicProperties {
        let mut headers = FieldTable::default();
        if let Some(t) = tenant {
            set_str(&mut headers, header::TENANT, t);
        }
        let mut p = BasicProperties::default().with_headers(headers);
        if let Some(id) = id {
            p = p.with_message_id(id.into());
        }
        if let Some(k) = kind {
            p = p.with_type(k.into());
        }
        p
    }

    #[test]
    fn contract_breaches_are_named() {
        let t: EventType = "log.blocked".parse().unwrap();
        let ok = props(Some("evt_1"), Some("log.blocked"), Some("acme"));
        let big = vec![b' '; MAX_BODY_BYTES + 1];
        let table: Vec<(BasicProperties, &[u8], Malformed)> = vec![
            (ok.clone(), &big, Malformed::TooLarge(MAX_BODY_BYTES + 1)),
            (
                props(None, Some("log.blocked"), Some("acme")),
                b"{}",
                Malformed::NoId,
            ),
            (
                props(Some("evt_1"), None, Some("acme")),
                b"{}",
                Malformed::NoType,
            ),
            (
                props(Some("evt_1"), Some("log.blocked"), None),
                b"{}",
                Malformed::NoTenant,
            ),
            (
                props(Some("evt_1"), Some("log.failed"), Some("acme")),
                b"{}",
                Malformed::WrongType {
                    got: "log.failed".into(),
                    expected: "log.blocked".into(),
                },
            ),
        ];
        for (p, body, expected) in table {
            assert_eq!(InboundEvent::parse(&p, body, &t).unwrap_err(), expected);
        }
        assert!(matches!(
            InboundEvent::parse(&ok, b"not json", &t),
            Err(Malformed::NotJson(_))
        ));
        let event = InboundEvent::parse(&ok, br#"{"a": 1}"#, &t).unwrap();
        assert_eq!(event.tenant.as_str(), "acme");
        assert_eq!(event.attempts, 0);
        assert!(event.target.is_none());
    }
}
