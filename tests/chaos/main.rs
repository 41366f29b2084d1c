//! Fault-injection tests: the scenarios of `hookfleet-chaos` at CI size, against the
//! real `hookfleet` binary, RabbitMQ and Redis. Each asserts that nothing was lost and that
//! duplicates stay within what the design allows (none, except after a crash or a Redis that
//! lost its marks).
//!
//! They stop and restart RabbitMQ and Redis, so they are `#[ignore]`d: a plain `cargo test`
//! lists them as ignored and never disturbs the services. `scripts/test` runs them after the
//! main suite, one at a time: `cargo test --test chaos -- --ignored --test-threads=1`.
//! Whatever happens, the services are left running.
#![allow(clippy::unwrap_used)]

use std::path::PathBuf;

use hookfleet_chaos::{Outcome, Settings, Size, outcome, scenarios, services};

fn settings() -> Settings {
    let mut settings = Settings::new(env!("CARGO_BIN_EXE_hookfleet"), Size::Ci);
    settings.log_dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("chaos");
    settings
}

/// Prints the rows (visible with `--nocapture` or on failure) and checks each one.
fn check(result: anyhow::Result<Vec<Outcome>>) {
    // Whatever the scenario did, the next one starts with both services up.
    let restored = services::ensure();
    let outcomes = result.unwrap();
    eprintln!("{}", outcome::table(&outcomes));
    restored.unwrap();
    for o in &outcomes {
        assert!(
            o.holds(),
            "{}: lost {}, duplicates {} (allowed {}): {}",
            o.scenario,
            o.lost,
            o.duplicates,
            o.allowed_duplicates,
            o.note
        );
        assert!(o.published > 0, "{}: nothing was published", o.scenario);
    }
}

#[tokio::test(flavor = "multi_thread")]
#[ignore = "restarts RabbitMQ and Redis: scripts/test runs it alone"]
async fn a_worker_killed_mid_stream_loses_nothing() {
    check(scenarios::worker_crash::run(&settings()).await);
}

#[tokio::test(flavor = "multi_thread")]
#[ignore = "restarts RabbitMQ and Redis: scripts/test runs it alone"]
async fn a_rabbitmq_restart_during_delivery_loses_and_repeats_nothing() {
    check(scenarios::broker_restart::during_delivery(&settings()).await);
}

#[tokio::test(flavor = "multi_thread")]
#[ignore = "restarts RabbitMQ and Redis: scripts/test runs it alone"]
async fn a_rabbitmq_restart_during_publishing_loses_and_repeats_nothing() {
    check(scenarios::broker_restart::during_publishing(&settings()).await);
}

#[tokio::test(flavor = "multi_thread")]
#[ignore = "restarts RabbitMQ and Redis: scripts/test runs it alone"]
async fn a_redis_restart_during_delivery_loses_nothing() {
    check(scenarios::redis_restart::run(&settings()).await);
}

#[tokio::test(flavor = "multi_thread")]
#[ignore = "restarts RabbitMQ and Redis: scripts/test runs it alone"]
async fn receivers_down_slow_or_resetting_get_everything_once() {
    check(scenarios::receivers::run(&settings()).await);
}

#[tokio::test(flavor = "multi_thread")]
#[ignore = "restarts RabbitMQ and Redis: scripts/test runs it alone"]
async fn a_poison_event_is_parked_and_the_queue_keeps_flowing() {
    check(scenarios::poison::run(&settings()).await);
}
