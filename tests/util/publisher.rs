//! [`RawPublisher`]: publishing as a plain AMQP client in any language would (docs/contract.md §1),
//! with full control over the properties, so tests can also break the contract on purpose.

use std::time::{SystemTime, UNIX_EPOCH};

use lapin::options::{BasicPublishOptions, ConfirmSelectOptions};
use lapin::types::{AMQPValue, FieldTable, LongString};
use lapin::{BasicProperties, Confirmation, Connection, ConnectionProperties};

use super::AMQP_URL;

/// A confirm-mode channel to one namespace's exchange of one event type.
#[derive(Debug)]
pub struct RawPublisher {
    /// Kept open for the channel's sake.
    _connection: Connection,
    channel: lapin::Channel,
    event_type: String,
    exchange: String,
}

impl RawPublisher {
    pub async fn connect(namespace: &str, event_type: &str) -> Self {
        let connection = Connection::connect(AMQP_URL, ConnectionProperties::default())
            .await
            .unwrap();
        let channel = connection.create_channel().await.unwrap();
        channel
            .confirm_select(ConfirmSelectOptions::default())
            .await
            .unwrap();
        Self {
            _connection: connection,
            channel,
            event_type: event_type.to_owned(),
            exchange: format!("{namespace}.events.{event_type}"),
        }
    }

    /// Publishes `body` with the contract's properties (no `tenant` header when `None`) and
    /// waits for the broker's confirm.
    pub async fn publish(&self, id: &str, tenant: Option<&str>, body: &[u8]) {
        let mut headers = FieldTable::default();
        if let Some(tenant) = tenant {
            headers.insert(
                "tenant".into(),
                AMQPValue::LongString(LongString::from(tenant)),
            );
        }
        let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap();
        let properties = BasicProperties::default()
            .with_message_id(id.into())
            .with_type(self.event_type.as_str().into())
            .with_timestamp(now.as_secs())
            .with_content_type("application/json".into())
            .with_delivery_mode(2)
            .with_headers(headers);
        let options = BasicPublishOptions {
            mandatory: true,
            ..Default::default()
        };
        let confirmation = self
            .channel
            .basic_publish(
                self.exchange.as_str().into(),
                "".into(),
                options,
                body,
                properties,
            )
            .await
            .unwrap()
            .await
            .unwrap();
        assert!(
            matches!(confirmation, Confirmation::Ack(None)),
            "publish of {id} to {} not confirmed: {confirmation:?}",
            self.exchange
        );
    }
}
