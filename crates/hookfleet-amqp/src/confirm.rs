//! Confirmed publishing of any message: [`ConfirmedPublisher::send`] returns only when
//! RabbitMQ has taken responsibility for the message, and re-sends across reconnects until then.
//! The producer's event publisher and the worker's retries and dead letters both go through it.
//!
//! Every publish is `mandatory`: a message no queue would receive comes back with the confirm
//! (reply 312 NO_ROUTE) and is reported as [`Error::Unroutable`] instead of a silent success.
//! A publish to a missing exchange closes the channel with 404 and is [`Error::NotDeclared`].

use std::time::Duration;

use lapin::options::{BasicPublishOptions, ConfirmSelectOptions};
use lapin::protocol::{AMQPErrorKind, AMQPSoftError};
use lapin::{BasicProperties, Channel, Confirmation, ErrorKind};
use tokio::sync::Mutex;

use crate::broker::Backoff;
use crate::{Broker, Error, Result};

/// Publishes with confirms on one shared channel; cheap to share behind an `Arc`, and
/// concurrent publishes are pipelined on the channel.
#[derive(Debug)]
pub struct ConfirmedPublisher {
    broker: Broker,
    /// The confirm-mode channel, opened on first use and after it closes.
    channel: Mutex<Option<Channel>>,
    /// How long to keep re-sending through broker trouble before reporting failure.
    give_up_after: Duration,
}

impl ConfirmedPublisher {
    pub fn new(broker: Broker) -> Self {
        Self {
            broker,
            channel: Mutex::new(None),
            give_up_after: Duration::from_secs(30),
        }
    }

    /// Sets how long a publish keeps trying through connection loss (default 30 s).
    pub fn give_up_after(mut self, limit: Duration) -> Self {
        self.give_up_after = limit;
        self
    }

    /// Publishes any message and waits for the confirm, re-sending on a fresh channel while the
    /// failure is transient. A re-send after a lost confirm may duplicate the message; the
    /// worker's de-duplication absorbs that (at-least-once).
    pub async fn send(
        &self,
        exchange: &str,
        routing_key: &str,
        body: &[u8],
        properties: BasicProperties,
    ) -> Result<()> {
        let started = tokio::time::Instant::now();
        let mut backoff = Backoff::default();
        loop {
            let error = match self
                .try_send(exchange, routing_key, body, properties.clone())
                .await
            {
                Ok(()) => return Ok(()),
                Err(e) if !e.is_transient() => return Err(e),
                Err(e) => e,
            };
            if started.elapsed() >= self.give_up_after {
                return Err(Error::GaveUp {
                    exchange: exchange.to_owned(),
                    elapsed: started.elapsed(),
                    last: Box::new(error),
                });
            }
            tracing::warn!(message = "Publish failed; retrying.", %exchange, %error);
            backoff.wait().await;
        }
    }

    async fn try_send(
        &self,
        exchange: &str,
        routing_key: &str,
        body: &[u8],
        properties: BasicProperties,
    ) -> Result<()> {
        let channel = self.channel().await?;
        let options = BasicPublishOptions {
            mandatory: true,
            ..Default::default()
        };
        let confirm = async {
            channel
                .basic_publish(
                    exchange.into(),
                    routing_key.into(),
                    options,
                    body,
                    properties,
                )
                .await?
                .await
        };
        let result = match confirm.await {
            Ok(Confirmation::Ack(None)) => Ok(()),
            Ok(Confirmation::Ack(Some(_)) | Confirmation::Nack(Some(_))) => {
                Err(Error::Unroutable {
                    exchange: exchange.to_owned(),
                })
            }
            Ok(Confirmation::Nack(None) | Confirmation::NotRequested) => Err(Error::Nacked {
                exchange: exchange.to_owned(),
            }),
            Err(e) if is_not_found(&e) => Err(Error::NotDeclared {
                exchange: exchange.to_owned(),
            }),
            Err(e) => Err(Error::Amqp(e)),
        };
        if result.is_err() && !channel.status().connected() {
            self.forget(&channel).await;
        }
        result
    }

    /// The shared confirm channel, opening one if needed.
    async fn channel(&self) -> Result<Channel> {
        let mut slot = self.channel.lock().await;
        if let Some(channel) = slot.as_ref()
            && channel.status().connected()
        {
            return Ok(channel.clone());
        }
        let channel = self.broker.channel().await?;
        channel
            .confirm_select(ConfirmSelectOptions::default())
            .await?;
        *slot = Some(channel.clone());
        Ok(channel)
    }

    /// Drops `channel` from the slot, unless another task already replaced it.
    async fn forget(&self, channel: &Channel) {
        let mut slot = self.channel.lock().await;
        if slot.as_ref().is_some_and(|c| c.id() == channel.id()) {
            *slot = None;
        }
    }
}

fn is_not_found(e: &lapin::Error) -> bool {
    matches!(
        e.kind(),
        ErrorKind::ProtocolError(amqp) if *amqp.kind() == AMQPErrorKind::Soft(AMQPSoftError::NOTFOUND)
    )
}
