//! Publishing hookfleet events to RabbitMQ from any Rust service.
//!
//! ```no_run
//! # async fn example() -> hookfleet_producer::Result<()> {
//! use hookfleet_producer::{OutboundEvent, Publisher};
//!
//! let publisher = Publisher::connect("amqp://guest:guest@127.0.0.1:5672/%2f", "hookfleet".parse()?).await?;
//! let data = serde_json::json!({"agent": "a-17", "rule": "no-prod-writes"});
//! let event = OutboundEvent::new("log.blocked".parse()?, "acme".parse()?, &data, None);
//! publisher.publish(&event).await?; // returns once the broker confirmed it
//! println!("published {}", event.id.as_str());
//! # Ok(())
//! # }
//! ```
//!
//! [`Publisher::publish`] returns only once the broker has confirmed the message, so an event
//! reported as published is never lost. The message follows docs/contract.md §1 (docs/contract.md).
//!
//! # Layout
//! - [`message`]: [`OutboundEvent`], the AMQP shape of an event.
//! - [`publisher`]: [`Publisher`], confirmed and mandatory, and [`PublishedCounter`], the
//!   `hookfleet_published_total` metric a publishing process can serve.
#![forbid(unsafe_code)]

pub mod message;
pub mod publisher;

pub use hookfleet_amqp::{Broker, Error, Result};
pub use hookfleet_core::{EventId, EventType, Namespace, TenantId};
pub use message::OutboundEvent;
pub use publisher::{PublishedCounter, Publisher};
