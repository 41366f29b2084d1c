//! [`Publisher`]: publish one event and return only once RabbitMQ has confirmed it.

use std::time::Duration;

use hookfleet_amqp::{Broker, ConfirmedPublisher};
use hookfleet_core::{MAX_BODY_BYTES, Namespace};
use prometheus::{IntCounterVec, Opts, Registry};

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
    /// Counts confirmed publishes, when the process serves metrics ([`Publisher::with_counter`]).
    counter: Option<PublishedCounter>,
}

impl Publisher {
    /// A publisher on an existing broker handle (one connection can serve many publishers).
    pub fn new(broker: Broker, namespace: Namespace) -> Self {
        Self {
            confirmed: ConfirmedPublisher::new(broker),
            namespace,
            counter: None,
        }
    }

    /// Counts every event this publisher got confirmed in `counter`
    /// (`hookfleet_published_total{event_type}`), for a process that serves `/metrics`.
    pub fn with_counter(mut self, counter: PublishedCounter) -> Self {
        self.counter = Some(counter);
        self
    }

    /// Connects to the broker at `url` now, so a wrong URL or a stopped broker is reported here.
    /// `url` may list the nodes of one cluster, comma-separated: the connection goes to one and
    /// moves on to the next when that node is lost.
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
            .await?;
        if let Some(counter) = &self.counter {
            counter.confirmed(event.event_type.as_str());
        }
        Ok(())
    }
}

/// `hookfleet_published_total{event_type}`: events published through a [`Publisher`] and
/// confirmed by the broker, in this process (docs/contract.md §6).
///
/// A counter is only worth something in a process Prometheus scrapes: a platform service that
/// embeds this crate, the worker (its `endpoint.disabled` notices), the admin API. A one-shot
/// `hookfleet publish` exits before any scrape, so it counts nothing. Cheap to clone: clones
/// share the series.
#[derive(Debug, Clone)]
pub struct PublishedCounter(IntCounterVec);

impl PublishedCounter {
    pub const NAME: &'static str = "hookfleet_published_total";

    /// A counter registered in `registry`; fails if the registry already has the name.
    pub fn register(registry: &Registry) -> prometheus::Result<Self> {
        let counter = Self::unregistered();
        registry.register(Box::new(counter.0.clone()))?;
        Ok(counter)
    }

    /// A counter in no registry (tests, or a process that reads it with [`Self::get`]).
    pub fn unregistered() -> Self {
        let opts = Opts::new(
            Self::NAME,
            "Events published through hookfleet's producer and confirmed by the broker.",
        );
        Self(IntCounterVec::new(opts, &["event_type"]).expect("a valid metric definition"))
    }

    /// Events of `event_type` counted so far.
    pub fn get(&self, event_type: &str) -> u64 {
        self.0.with_label_values(&[event_type]).get()
    }

    fn confirmed(&self, event_type: &str) {
        self.0.with_label_values(&[event_type]).inc();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_counter_has_one_series_per_event_type_in_its_registry() {
        let registry = Registry::new();
        let counter = PublishedCounter::register(&registry).unwrap();
        counter.confirmed("log.blocked");
        counter.confirmed("log.blocked");
        counter.clone().confirmed("approval.approved");
        assert_eq!(counter.get("log.blocked"), 2);
        assert_eq!(counter.get("approval.approved"), 1);
        let families = registry.gather();
        assert_eq!(families.len(), 1);
        assert_eq!(families[0].name(), PublishedCounter::NAME);
        assert_eq!(families[0].get_metric().len(), 2);
        // One name per registry: a second registration is refused, not silently doubled.
        assert!(PublishedCounter::register(&registry).is_err());
    }
}
