//! [`Publisher`]: publish one event and return only once RabbitMQ has confirmed it.

use std::time::Duration;

use hookfleet_amqp::{Broker, ConfirmedPublisher};
use hookfleet_core::{MAX_BODY_BYTES, Namespace};

use crate::{Error, OutboundEvent, Result};

/// Publishes events of one namespace with publisher confirms. Cheap to share behind an `Arc`:
/// concurrent publishes are pipelined on one channel.
///
/// Every publish is `mandatory`: a message no queue would receive is [`Error::Unroutable`], a
/// missing exchange [`Error::NotDeclared`] (the event type is not in the catalog, or the
/// topology was never declared). Connection trouble is retried on a fresh connection, for 30 s
/// by default; a re-send after a lost confirm may publish twice, which workers de-duplicate.
#[derive(Debug)]
pub struct Publisher {
    confirmed: ConfirmedPublisher,
    namespace: Namespace,
}

impl Publisher {
    /// A publisher on an existing broker handle (one connection can serve many publishers).
    pub fn new(broker: Broker, namespace: Namespace) -> Self {
        Self {
            confirmed: ConfirmedPublisher::new(broker),
            namespace,
        }
    }

    /// Connects to the broker at `url` now, so a wrong URL or a stopped broker is reported here.
    pub async fn connect(url: &str, namespace: Namespace) -> Result<Self> {
        Ok(Self::new(Broker::connect(url).await?, namespace))
    }

    /// Sets how long a publish keeps trying through connection loss (default 30 s).
    pub fn give_up_after(mut self, limit: Duration) -> Self {
        self.confirmed = self.confirmed.give_up_after(limit);
        self
    }

    pub fn namespace(&self) -> &Namespace {
        &self.namespace
    }

    /// Publishes an event to `N.events.<type>` and waits for the broker's confirm.
    pub async fn publish(&self, event: &OutboundEvent) -> Result<()> {
        if event.body.len() > MAX_BODY_BYTES {
            return Err(Error::TooLarge {
                size: event.body.len(),
                limit: MAX_BODY_BYTES,
            });
        }
        let exchange = self.namespace.events_exchange(&event.event_type);
        self.confirmed
            .send(&exchange, "", &event.body, event.properties())
            .await
    }
}
