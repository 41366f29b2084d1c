//! Fault-injection scenarios for hookfleet: each one runs real `hookfleet worker`
//! processes against the local RabbitMQ and Redis, publishes a known set of events, breaks
//! something (a worker, the broker, Redis, a receiver, a message) and counts, by `webhook-id`,
//! what a real receiver got: how many events were lost, how many arrived twice, and how long
//! the fleet took to catch up once the fault was over.
//!
//! The same scenarios run in two sizes: [`Size::Ci`] from `tests/chaos` (bounded, asserted) and
//! [`Size::Report`] from the `hookfleet-chaos` binary, which prints the reliability table.
//!
//! The worker processes, the receivers, the load and the clean-up are the shared harness's
//! (`hookfleet-testkit`); what is chaos's own is here.
//!
//! # Layout
//! - [`services`]: stopping and starting RabbitMQ and Redis, and the guard that always
//!   starts them again.
//! - [`cluster`]: the local RabbitMQ cluster and Redis Cluster, and losing a node of each.
//! - [`fleet`]: one scenario's fleet settings, load and queue backlog.
//! - [`outcome`]: what a scenario measured, and the markdown table.
//! - [`scenarios`]: the scenarios themselves.
#![forbid(unsafe_code)]

pub mod cluster;
pub mod fleet;
pub mod outcome;
pub mod scenarios;
pub mod services;

use std::path::PathBuf;
use std::time::Duration;

pub use outcome::Outcome;

/// Every scenario publishes and consumes this one type.
pub const EVENT_TYPE: &str = "log.blocked";
/// Short retry waits, so that a transient failure recovers within a scenario; their sum
/// (15.7 s) is how long an endpoint may stay broken before its events are dead-lettered.
pub const RETRY_DELAYS: [Duration; 6] = [
    Duration::from_millis(200),
    Duration::from_millis(500),
    Duration::from_secs(1),
    Duration::from_secs(2),
    Duration::from_secs(4),
    Duration::from_secs(8),
];
/// The workers' `HOOKFLEET_DELIVERY_TIMEOUT`.
pub const DELIVERY_TIMEOUT: Duration = Duration::from_secs(2);

/// How big the scenarios are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Size {
    /// Small and bounded (the chaos step of `scripts/test`, a few minutes in all).
    Ci,
    /// Several times larger, for the README's reliability table.
    Report,
}

impl Size {
    /// `ci` or `report`, whichever fits this size.
    pub fn pick<T>(self, ci: T, report: T) -> T {
        match self {
            Size::Ci => ci,
            Size::Report => report,
        }
    }
}

/// What every scenario needs from its caller.
#[derive(Debug, Clone)]
pub struct Settings {
    /// The `hookfleet` binary to run workers with.
    pub binary: PathBuf,
    pub size: Size,
    /// Where worker logs go (one file per worker, named by namespace).
    pub log_dir: PathBuf,
}

impl Settings {
    pub fn new(binary: impl Into<PathBuf>, size: Size) -> Self {
        Self {
            binary: binary.into(),
            size,
            log_dir: std::env::temp_dir().join("hookfleet-chaos"),
        }
    }
}
