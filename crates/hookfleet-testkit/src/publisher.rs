//! [`RawPublisher`]: publishing as a plain AMQP client in any language would (docs/contract.md
//! §1), with full control over the properties, so callers can also break the contract on purpose.

use std::time::{SystemTime, UNIX_EPOCH};

use hookfleet_amqp::lapin::options::{BasicPublishOptions, ConfirmSelectOptions};
use hookfleet_amqp::lapin::types::{AMQPValue, FieldTable, LongString};
use hookfleet_amqp::lapin::{BasicProperties, Channel, Confirmation, Connection};

use crate::{AMQP_URL, Error, Result};

/// A confirm-mode channel to one namespace's exchange of one event type.
#[derive(Debug)]
pub struct RawPublisher {
    /// Kept open for the channel's sake.
    _connection: Connection,
    channel: Channel,
    event_type: String,
    exchange: String,
}

impl RawPublisher {
    pub async fn connect(namespace: &str, event_type: &str) -> Result<Self> {
        let connection = Connection::connect(AMQP_URL, Default::default()).await?;
        let channel = connection.create_channel().await?;
        channel
            .confirm_select(ConfirmSelectOptions::default())
            .await?;
        Ok(Self {
            _connection: connection,
            channel,
            event_type: event_type.to_owned(),
            exchange: format!("{namespace}.events.{event_type}"),
        })
    }

    /// Publishes `body` with the contract's properties (no `tenant` header when `None`) and
    /// waits for the broker's confirm.
    pub async fn publish(&self, id: &str, tenant: Option<&str>, body: &[u8]) -> Result<()> {
        let mut headers = FieldTable::default();
        if let Some(tenant) = tenant {
            let tenant = AMQPValue::LongString(LongString::from(tenant));
            headers.insert("tenant".into(), tenant);
        }
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
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
        let exchange = self.exchange.as_str();
        let confirmation = (self.channel)
            .basic_publish(exchange.into(), "".into(), options, body, properties)
            .await?
            .await?;
        match confirmation {
            Confirmation::Ack(None) => Ok(()),
            other => Err(Error::NotConfirmed {
                id: id.to_owned(),
                exchange: self.exchange.clone(),
                confirmation: format!("{other:?}"),
            }),
        }
    }
}
