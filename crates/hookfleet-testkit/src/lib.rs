//! Process and namespace helpers shared by `hookfleet-bench` (the benchmark) and
//! `hookfleet-chaos` (the fault-injection report); not part of the product.
//!
//! Both tools run the real `hookfleet` binary as child processes against the local RabbitMQ
//! and Redis, each in a namespace of its own that is removed afterwards. What they do the same
//! way lives here; what they decide differently (worker settings, how hard to try to clean up,
//! when to build the binary) stays with them and is passed in.
//!
//! # Layout
//! - [`binary`]: where the `hookfleet` binary of this build is, and building it.
//! - [`worker`]: one running `hookfleet worker`: start, readiness, metrics, signals, stop.
//! - [`metrics`]: reading numbers out of the Prometheus text a worker serves.
//! - [`teardown`]: removing everything a namespace left in RabbitMQ and Redis.
#![forbid(unsafe_code)]

pub mod binary;
mod error;
pub mod metrics;
pub mod teardown;
pub mod worker;

pub use error::{Error, Result};
pub use metrics::metric_sum;
pub use teardown::teardown;
pub use worker::{Launch, WorkerProcess};

/// The local broker (docs/contract.md §4 default): the only one the tools ever target.
pub const AMQP_URL: &str = "amqp://guest:guest@127.0.0.1:5672/%2f";
/// The local Redis (docs/contract.md §4 default): the only one the tools ever target.
pub const REDIS_URL: &str = "redis://127.0.0.1:6379";
