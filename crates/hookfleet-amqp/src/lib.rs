//! hookfleet's AMQP layer: what the producer and the worker share about RabbitMQ.
//!
//! Platforms publish with `hookfleet-producer`, whose public surface is small; this crate is
//! the machinery beneath it and beneath the worker.
//!
//! # Layout
//! - [`broker`]: one connection to RabbitMQ, re-opened when it drops; reconnect backoff.
//! - [`topology`]: declaring (and deleting) every exchange and queue, idempotently.
//! - [`confirm`]: confirmed, mandatory publishing of any message, re-sent across reconnects.
//! - [`headers`]: the contract's `tenant` header, hookfleet's `x-hookfleet-*` headers, and
//!   typed access to AMQP header tables.
#![forbid(unsafe_code)]

pub mod broker;
pub mod confirm;
pub mod headers;
pub mod topology;

mod error;

pub use broker::{Backoff, Broker};
pub use confirm::ConfirmedPublisher;
pub use error::{Error, Result};
pub use topology::{QueueType, Topology};

/// Re-exported so users of this crate need not depend on lapin's exact version.
pub use lapin;
