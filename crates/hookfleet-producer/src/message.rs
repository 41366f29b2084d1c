//! The AMQP shape of an event (contract §1), and the headers hookfleet adds on the way.

use lapin::BasicProperties;
use lapin::types::{AMQPValue, FieldTable, LongString, ShortString};

use hookfleet_core::{Envelope, EventId, EventType, TenantId};

/// The largest body the contract allows (256 KiB).
pub const MAX_BODY_BYTES: usize = 256 * 1024;

/// Header names. `tenant` is the contract's; the `x-hookfleet-*` ones are hookfleet's own and
/// travel with retries and dead letters.
pub mod header {
    /// The account whose endpoints receive the event (contract §1).
    pub const TENANT: &str = "tenant";
    /// Set on a retry or replay: deliver to this endpoint only, never fan out again.
    pub const ENDPOINT: &str = "x-hookfleet-endpoint";
    /// Attempts already made for that endpoint (absent = 0).
    pub const ATTEMPTS: &str = "x-hookfleet-attempts";
    /// The last attempt's HTTP status, when there was one.
    pub const LAST_STATUS: &str = "x-hookfleet-last-status";
    /// The last attempt's outcome, in words.
    pub const LAST_ERROR: &str = "x-hookfleet-last-error";
    /// On a dead letter: why it is there.
    pub const REASON: &str = "x-hookfleet-reason";
    /// On a dead letter: unix milliseconds when it was parked.
    pub const DEAD_AT: &str = "x-hookfleet-dead-at";
}

/// One event ready to publish: the contract's properties and the exact body receivers get.
#[derive(Debug, Clone)]
pub struct OutboundEvent {
    pub id: EventId,
    pub event_type: EventType,
    pub tenant: TenantId,
    /// Unix seconds when the event happened.
    pub timestamp: i64,
    pub body: Vec<u8>,
}

impl OutboundEvent {
    /// An event whose body is the contract's envelope around `data`; `id` defaults to a fresh
    /// `evt_` UUIDv7.
    pub fn new(
        event_type: EventType,
        tenant: TenantId,
        data: &serde_json::Value,
        id: Option<EventId>,
    ) -> Self {
        let id = id.unwrap_or_else(EventId::generate);
        let now = time::OffsetDateTime::now_utc();
        let body = Envelope::to_bytes(&id, &event_type, now, data);
        Self {
            id,
            event_type,
            tenant,
            timestamp: now.unix_timestamp(),
            body,
        }
    }

    /// The AMQP properties of contract §1.
    pub fn properties(&self) -> BasicProperties {
        let mut headers = FieldTable::default();
        set_str(&mut headers, header::TENANT, self.tenant.as_str());
        BasicProperties::default()
            .with_message_id(self.id.as_str().into())
            .with_type(self.event_type.as_str().into())
            .with_timestamp(u64::try_from(self.timestamp).unwrap_or(0))
            .with_content_type("application/json".into())
            .with_delivery_mode(2)
            .with_headers(headers)
    }
}

/// Sets a string header.
pub fn set_str(headers: &mut FieldTable, name: &str, value: &str) {
    headers.insert(
        ShortString::from(name),
        AMQPValue::LongString(LongString::from(value)),
    );
}

/// Sets an integer header.
pub fn set_int(headers: &mut FieldTable, name: &str, value: i64) {
    headers.insert(ShortString::from(name), AMQPValue::LongLongInt(value));
}

/// Removes headers (lapin's `FieldTable` has no `remove`).
pub fn remove(headers: &mut FieldTable, names: &[&str]) {
    let mut map = headers.inner().clone();
    map.retain(|k, _| !names.contains(&k.as_str()));
    *headers = map.into();
}

/// A header as text, whichever string type the publishing client chose.
pub fn get_str<'a>(props: &'a BasicProperties, name: &str) -> Option<std::borrow::Cow<'a, str>> {
    match props.headers().as_ref()?.inner().get(name)? {
        AMQPValue::LongString(s) => Some(String::from_utf8_lossy(s.as_bytes())),
        AMQPValue::ShortString(s) => Some(std::borrow::Cow::Borrowed(s.as_str())),
        _ => None,
    }
}

/// A header as an integer, whichever integer type the publishing client chose.
pub fn get_int(props: &BasicProperties, name: &str) -> Option<i64> {
    match props.headers().as_ref()?.inner().get(name)? {
        AMQPValue::ShortShortInt(v) => Some((*v).into()),
        AMQPValue::ShortShortUInt(v) => Some((*v).into()),
        AMQPValue::ShortInt(v) => Some((*v).into()),
        AMQPValue::ShortUInt(v) => Some((*v).into()),
        AMQPValue::LongInt(v) => Some((*v).into()),
        AMQPValue::LongUInt(v) => Some((*v).into()),
        AMQPValue::LongLongInt(v) => Some(*v),
        AMQPValue::LongString(s) => std::str::from_utf8(s.as_bytes()).ok()?.parse().ok(),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn properties_follow_the_contract() {
        let event = OutboundEvent::new(
            "log.blocked".parse().unwrap(),
            "acme".parse().unwrap(),
            &serde_json::json!({"a": 1}),
            Some("evt_1".parse().unwrap()),
        );
        let p = event.properties();
        assert_eq!(p.message_id().as_ref().unwrap().as_str(), "evt_1");
        assert_eq!(p.kind().as_ref().unwrap().as_str(), "log.blocked");
        assert_eq!(*p.delivery_mode(), Some(2));
        assert_eq!(get_str(&p, header::TENANT).unwrap(), "acme");
        let body: serde_json::Value = serde_json::from_slice(&event.body).unwrap();
        assert_eq!(body["id"], "evt_1");
        assert_eq!(body["data"]["a"], 1);
    }

    #[test]
    fn integer_headers_are_read_whatever_their_width() {
        let mut h = FieldTable::default();
        h.insert("a".into(), AMQPValue::ShortShortUInt(3));
        h.insert("b".into(), AMQPValue::LongString("7".into()));
        let p = BasicProperties::default().with_headers(h);
        assert_eq!(get_int(&p, "a"), Some(3));
        assert_eq!(get_int(&p, "b"), Some(7));
        assert_eq!(get_int(&p, "c"), None);
    }
}
