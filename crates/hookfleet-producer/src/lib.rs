//! Publishing hookfleet events to RabbitMQ, and the broker topology they travel through.
//!
//! Any Rust service can publish with [`Publisher`]: it returns only once the broker has
//! confirmed the message, so an event reported as published is never lost.
//!
//! # Layout
//! - [`names`]: the namespace and every exchange and queue name derived from it.
//! - [`topology`]: declaring exchanges and queues, idempotently.
//! - [`broker`]: one connection to RabbitMQ, re-opened when it drops.
//! - [`publisher`]: confirmed, mandatory publishing, re-sent across reconnects.
//! - [`message`]: the AMQP shape of an event (contract §1) and hookfleet's own headers.
#![forbid(unsafe_code)]

pub mod broker;
pub mod message;
pub mod names;
pub mod publisher;
pub mod topology;

mod error;

pub use broker::Broker;
pub use error::{Error, Result};
pub use message::OutboundEvent;
pub use names::Namespace;
pub use publisher::Publisher;
pub use topology::{QueueType, Topology};

/// Re-exported so users of this crate need not depend on lapin's exact version.
pub use lapin;
