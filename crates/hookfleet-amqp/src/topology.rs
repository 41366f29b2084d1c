//! Declaring every exchange and queue hookfleet needs, idempotently: `hookfleet topology` and
//! every worker start run the same [`Topology::declare`].
//!
//! Flow: `N.events.<type>` fans out to `N.work.<type>`. A failed attempt is published to the
//! tier exchange `N.delay.<ms>ms` with the event type as routing key; its queue holds the message
//! for the tier's TTL and then dead-letters it to `N.retry`, which routes by that key back to
//! `N.work.<type>`. What cannot be delivered ends in `N.dead`. The operational types
//! ([`Operational`]) get their exchange and work queue like the catalog's.

use std::time::Duration;

use hookfleet_core::{EventType, Namespace, Operational, TenantId};
use lapin::options::{
    ExchangeBindOptions, ExchangeDeclareOptions, ExchangeDeleteOptions, QueueBindOptions,
    QueueDeclareOptions, QueueDeleteOptions,
};
use lapin::types::{AMQPValue, FieldTable, LongString, ShortString};
use lapin::{Channel, ExchangeKind};

use crate::{Broker, Result};

/// How often a message may be handed out (and not acked) before the broker parks it in
/// `N.dead`: a message that crashes workers cannot loop forever. RabbitMQ 4 defaults to 20;
/// 3.x has no default, so it is always set.
pub const DELIVERY_LIMIT: i64 = 20;

/// The delivery limit of `N.dead` (quorum): about 2.1 billion hand-backs, so listing the dead
/// letters never uses it up (see [`Topology::dead_queue_args`] for why not `-1`).
pub const DEAD_DELIVERY_LIMIT: i64 = i32::MAX as i64;

/// The kind of every queue hookfleet declares (`HOOKFLEET_QUEUE_TYPE`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum QueueType {
    /// Replicated, with at-least-once dead-lettering: the production choice.
    #[default]
    Quorum,
    /// Single-node; for development, or brokers without quorum queues.
    Classic,
}

impl std::str::FromStr for QueueType {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "quorum" => Ok(Self::Quorum),
            "classic" => Ok(Self::Classic),
            _ => Err(format!("{s:?} is not a queue type: use quorum or classic")),
        }
    }
}

/// Everything to declare for one namespace.
#[derive(Debug, Clone)]
pub struct Topology {
    pub namespace: Namespace,
    pub queue_type: QueueType,
    /// The event types to declare an exchange and a work queue for: the catalog's and
    /// hookfleet's operational ones ([`Operational`]), sorted.
    pub event_types: Vec<EventType>,
    /// The retry schedule's delays; each, and each deferral wait, gets its delay tiers
    /// (`hookfleet_core::delays`).
    pub retry_delays: Vec<Duration>,
}

impl Topology {
    /// The topology of one deployment: its namespace, queue type, event catalog and retry
    /// schedule, as the settings give them. The operational types are always added: every
    /// worker delivers them, and they are few.
    pub fn new(
        namespace: Namespace,
        queue_type: QueueType,
        catalog: Vec<EventType>,
        retry_delays: Vec<Duration>,
    ) -> Self {
        let mut event_types = catalog;
        event_types.extend(Operational::ALL.map(Operational::event_type));
        event_types.sort();
        event_types.dedup();
        Self {
            namespace,
            queue_type,
            event_types,
            retry_delays,
        }
    }

    pub async fn declare(&self, channel: &Channel) -> Result<()> {
        let ns = &self.namespace;
        let dead = ns.dead();
        declare_exchange(channel, &dead, ExchangeKind::Fanout).await?;
        self.declare_queue(channel, &dead, self.dead_queue_args())
            .await?;
        bind(channel, &dead, &dead, "").await?;

        let retry = ns.retry_exchange();
        declare_exchange(channel, &retry, ExchangeKind::Direct).await?;

        for event_type in &self.event_types {
            let exchange = ns.events_exchange(event_type);
            let queue = ns.work_queue(event_type);
            declare_exchange(channel, &exchange, ExchangeKind::Fanout).await?;
            let mut args = self.dead_letter_args(&dead);
            if self.queue_type == QueueType::Quorum {
                args.insert(
                    "x-delivery-limit".into(),
                    AMQPValue::LongLongInt(DELIVERY_LIMIT),
                );
            }
            self.declare_queue(channel, &queue, args).await?;
            bind(channel, &queue, &exchange, "").await?;
            bind(channel, &queue, &retry, event_type.as_str()).await?;
        }

        self.declare_ordered(channel, &dead).await?;

        for delay in self.tiers() {
            let tier = ns.delay_tier(delay);
            declare_exchange(channel, &tier, ExchangeKind::Fanout).await?;
            let mut args = self.dead_letter_args(&retry);
            let ttl = i64::try_from(delay.as_millis()).unwrap_or(i64::MAX);
            args.insert("x-message-ttl".into(), AMQPValue::LongLongInt(ttl));
            self.declare_queue(channel, &tier, args).await?;
            bind(channel, &tier, &tier, "").await?;
        }
        Ok(())
    }

    /// The ordered intake (docs/ordered.md): every catalog exchange feeds `N.ordered.route`,
    /// which passes on only the events of tenants bound with [`bind_ordered`], into
    /// `N.ordered`, one queue whose single active consumer sees them in the order the broker
    /// accepted them, across event types.
    async fn declare_ordered(&self, channel: &Channel, dead: &str) -> Result<()> {
        let ns = &self.namespace;
        let route = ns.ordered_route();
        declare_exchange(channel, &route, ExchangeKind::Headers).await?;
        let mut args = self.dead_letter_args(dead);
        args.insert("x-single-active-consumer".into(), AMQPValue::Boolean(true));
        if self.queue_type == QueueType::Quorum {
            let limit = AMQPValue::LongLongInt(DELIVERY_LIMIT);
            args.insert("x-delivery-limit".into(), limit);
        }
        let queue = ns.ordered_queue();
        self.declare_queue(channel, &queue, args).await?;
        for event_type in &self.event_types {
            if Operational::of(event_type.as_str()).is_some() {
                continue;
            }
            let source = ns.events_exchange(event_type);
            let (options, no_args) = (ExchangeBindOptions::default(), FieldTable::default());
            (channel.exchange_bind(
                route.as_str().into(),
                source.as_str().into(),
                "".into(),
                options,
                no_args,
            ))
            .await?;
        }
        Ok(())
    }

    /// Deletes every queue (with its messages) and exchange of this topology: for tests,
    /// benchmarks and tearing down a namespace. Names that do not exist are skipped.
    pub async fn delete(&self, broker: &Broker) -> Result<()> {
        let ns = &self.namespace;
        let tiers: Vec<String> = self.tiers().iter().map(|d| ns.delay_tier(*d)).collect();
        let queues = (self.event_types.iter().map(|t| ns.work_queue(t)))
            .chain(tiers.iter().cloned())
            .chain([ns.dead(), ns.notices(), ns.ordered_queue()]);
        let exchanges = (self.event_types.iter().map(|t| ns.events_exchange(t)))
            .chain(tiers.iter().cloned())
            .chain([ns.retry_exchange(), ns.dead(), ns.ordered_route()]);
        let mut channel = broker.channel().await?;
        for queue in queues {
            let options = QueueDeleteOptions::default();
            if channel
                .queue_delete(queue.as_str().into(), options)
                .await
                .is_err()
            {
                // A failed delete (a name never declared) closes the channel.
                channel = broker.channel().await?;
            }
        }
        for exchange in exchanges {
            let options = ExchangeDeleteOptions::default();
            if channel
                .exchange_delete(exchange.as_str().into(), options)
                .await
                .is_err()
            {
                channel = broker.channel().await?;
            }
        }
        Ok(())
    }

    /// Every delay tier: the retry delays and the deferrals, each with its jitter sub-tiers.
    fn tiers(&self) -> Vec<Duration> {
        hookfleet_core::delays::all_tiers(&self.retry_delays)
    }

    /// The arguments of `N.dead`: on quorum queues, a delivery limit no listing reaches.
    ///
    /// `dead-letters list` reads with `basic.get` and hands every message back by closing its
    /// channel, and a quorum queue counts that as a delivery. RabbitMQ 4.0+ gives every quorum
    /// queue a default `x-delivery-limit` of 20 and *drops* a message past it (`N.dead` has no
    /// dead-letter exchange), so the 21st listing would silently lose every dead letter
    /// (<https://www.rabbitmq.com/docs/quorum-queues#repeated-requeues>).
    ///
    /// RabbitMQ 4 documents `-1` as "unlimited", but 3.x (3.10–3.13) accepts `-1` and then
    /// compares every delivery count against it: checked on 3.10.8, a message in a queue with
    /// `x-delivery-limit = -1` is dropped at its first return. 3.x has no default limit, but
    /// leaving the argument out would need a broker-version check and would still leave a queue
    /// declared on 3.x with the 4.x default after an upgrade. A finite limit that no listing
    /// reaches means the same on every version: [`DEAD_DELIVERY_LIMIT`].
    fn dead_queue_args(&self) -> FieldTable {
        let mut args = FieldTable::default();
        if self.queue_type == QueueType::Quorum {
            args.insert(
                "x-delivery-limit".into(),
                AMQPValue::LongLongInt(DEAD_DELIVERY_LIMIT),
            );
        }
        args
    }

    /// Dead-lettering to `exchange`, keeping the message's routing key. On quorum queues the
    /// default strategy is at-most-once, which may drop a message in transit;
    /// at-least-once needs `reject-publish` overflow
    /// (<https://www.rabbitmq.com/docs/quorum-queues#dead-lettering>).
    fn dead_letter_args(&self, exchange: &str) -> FieldTable {
        let mut args = FieldTable::default();
        args.insert("x-dead-letter-exchange".into(), long_string(exchange));
        if self.queue_type == QueueType::Quorum {
            args.insert(
                "x-dead-letter-strategy".into(),
                long_string("at-least-once"),
            );
            args.insert("x-overflow".into(), long_string("reject-publish"));
        }
        args
    }

    async fn declare_queue(
        &self,
        channel: &Channel,
        name: &str,
        mut args: FieldTable,
    ) -> Result<()> {
        let kind = match self.queue_type {
            QueueType::Quorum => "quorum",
            QueueType::Classic => "classic",
        };
        args.insert("x-queue-type".into(), long_string(kind));
        let options = QueueDeclareOptions {
            durable: true,
            ..Default::default()
        };
        channel.queue_declare(name.into(), options, args).await?;
        Ok(())
    }
}

/// Declares a durable exchange.
async fn declare_exchange(channel: &Channel, name: &str, kind: ExchangeKind) -> Result<()> {
    let durable = ExchangeDeclareOptions {
        durable: true,
        ..Default::default()
    };
    (channel.exchange_declare(name.into(), kind, durable, FieldTable::default())).await?;
    Ok(())
}

/// Lets `tenant`'s events into `N.ordered`, or every tenant's with `None` (idempotent):
/// done before an endpoint of the tenant is stored as ordered, so none of its events
/// published after that is missed.
pub async fn bind_ordered(
    channel: &Channel,
    ns: &Namespace,
    tenant: Option<&TenantId>,
) -> Result<()> {
    (channel.queue_bind(
        ns.ordered_queue().as_str().into(),
        ns.ordered_route().as_str().into(),
        "".into(),
        QueueBindOptions::default(),
        ordered_match(tenant),
    ))
    .await?;
    Ok(())
}

/// Drops `tenant`'s own route into `N.ordered`, once every tenant's events reach it.
pub async fn unbind_ordered(channel: &Channel, ns: &Namespace, tenant: &TenantId) -> Result<()> {
    (channel.queue_unbind(
        ns.ordered_queue().as_str().into(),
        ns.ordered_route().as_str().into(),
        "".into(),
        ordered_match(Some(tenant)),
    ))
    .await?;
    Ok(())
}

/// The headers binding of `tenant`, or the one that matches every message.
fn ordered_match(tenant: Option<&TenantId>) -> FieldTable {
    let mut args = FieldTable::default();
    args.insert("x-match".into(), long_string("all"));
    if let Some(tenant) = tenant {
        args.insert("tenant".into(), long_string(tenant.as_str()));
    }
    args
}

async fn bind(channel: &Channel, queue: &str, exchange: &str, key: &str) -> Result<()> {
    channel
        .queue_bind(
            ShortString::from(queue),
            ShortString::from(exchange),
            ShortString::from(key),
            QueueBindOptions::default(),
            FieldTable::default(),
        )
        .await?;
    Ok(())
}

fn long_string(s: &str) -> AMQPValue {
    AMQPValue::LongString(LongString::from(s))
}
