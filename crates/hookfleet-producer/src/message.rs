//! The AMQP shape of an event (docs/contract.md §1).

use hookfleet_amqp::headers::{self, set_str};
use hookfleet_amqp::lapin::BasicProperties;
use hookfleet_amqp::lapin::types::FieldTable;
use hookfleet_core::{Envelope, EventId, EventType, TenantId};

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

    /// The AMQP properties of docs/contract.md §1.
    pub fn properties(&self) -> BasicProperties {
        properties(&self.id, &self.event_type, &self.tenant, self.timestamp)
    }
}

/// The AMQP properties of docs/contract.md §1 of an event (`timestamp` in unix seconds), for
/// whoever sends one again without its original message (an ordered endpoint's dead letter).
pub fn properties(
    id: &EventId,
    event_type: &EventType,
    tenant: &TenantId,
    timestamp: i64,
) -> BasicProperties {
    let mut headers = FieldTable::default();
    set_str(&mut headers, headers::TENANT, tenant.as_str());
    BasicProperties::default()
        .with_message_id(id.as_str().into())
        .with_type(event_type.as_str().into())
        .with_timestamp(u64::try_from(timestamp).unwrap_or(0))
        .with_content_type("application/json".into())
        .with_delivery_mode(2)
        .with_headers(headers)
}

#[cfg(test)]
mod tests {
    use super::*;
    use hookfleet_amqp::headers::get_str;

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
        assert_eq!(get_str(&p, headers::TENANT).unwrap(), "acme");
        let body: serde_json::Value = serde_json::from_slice(&event.body).unwrap();
        assert_eq!(body["id"], "evt_1");
        assert_eq!(body["data"]["a"], 1);
    }
}
