//! The integration-test harness: a thin layer over `hookfleet_testkit` (the harness the
//! benchmark and the chaos report use too) that fixes the tests' settings and turns failures
//! into panics. Every test builds its own [`Fleet`] (a fresh namespace on the shared RabbitMQ
//! and Redis) and its own [`Receiver`] (a real HTTP server on 127.0.0.1), drives the real
//! `hookfleet` binary, and waits on conditions, never fixed sleeps.

// Helpers shared by every test module; not each module uses each helper.
#![allow(dead_code)]

mod api;
mod fleet;
mod reference;

use std::time::Duration;

pub use api::{Answer, Api, OPERATOR_TOKEN};
pub use fleet::Fleet;
pub use hookfleet_testkit::{
    Arrival, Receiver, Reply, WorkerProcess, metric_sum, random_hex, verify_signature,
};
pub use reference::{ed25519_verifies, reference_verifies};

/// The default timeout of a test's waits: generous for a loaded CI machine, short enough
/// that a broken fleet fails fast.
pub const WAIT: Duration = Duration::from_secs(10);

/// Waits until `worker` counted `at_least` deliveries with this `result` of
/// `hookfleet_deliveries_total` (`delivered`, `retry_scheduled`, `dead_lettered`, `duplicate`).
pub async fn wait_for_result(worker: &WorkerProcess, result: &str, at_least: f64) {
    let labels = [("result", result)];
    (worker
        .wait_for_metric("hookfleet_deliveries_total", &labels, at_least, WAIT)
        .await)
        .unwrap();
}

/// Polls `condition` every 25 ms until it holds; panics naming `what` after `timeout`.
pub async fn wait_until(timeout: Duration, what: &str, condition: impl FnMut() -> bool) {
    let every = Duration::from_millis(25);
    let met = hookfleet_testkit::poll_until(timeout, every, condition).await;
    assert!(met, "timed out after {timeout:?} waiting for {what}");
}
