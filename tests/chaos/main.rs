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

/// The de-duplication checks of the integration tests, run here on the Redis Cluster too.
#[path = "../marks.rs"]
mod marks;

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
#[ignore = "stops PostgreSQL: scripts/test runs it alone"]
async fn postgres_stopped_for_30s_delays_and_loses_no_delivery_and_recording_resumes() {
    check(scenarios::postgres_stop::run(&settings()).await);
}

#[tokio::test(flavor = "multi_thread")]
#[ignore = "restarts RabbitMQ and Redis: scripts/test runs it alone"]
async fn a_poison_event_is_parked_and_the_queue_keeps_flowing() {
    check(scenarios::poison::run(&settings()).await);
}

#[tokio::test(flavor = "multi_thread")]
#[ignore = "restarts RabbitMQ and Redis: scripts/test runs it alone"]
async fn an_ordered_endpoint_keeps_its_order_when_its_worker_is_killed() {
    check(scenarios::ordered::worker_crash(&settings()).await);
}

#[tokio::test(flavor = "multi_thread")]
#[ignore = "restarts RabbitMQ and Redis: scripts/test runs it alone"]
async fn an_ordered_endpoint_keeps_its_order_through_a_rabbitmq_restart() {
    check(scenarios::ordered::broker_restart(&settings()).await);
}

#[tokio::test(flavor = "multi_thread")]
#[ignore = "restarts RabbitMQ and Redis: scripts/test runs it alone"]
async fn an_ordered_endpoint_keeps_its_order_through_a_redis_restart() {
    check(scenarios::ordered::redis_restart(&settings()).await);
}

/// Like [`check`], and the clusters are repaired for the next scenario whatever happened.
fn check_cluster(result: anyhow::Result<Vec<Outcome>>) {
    let repaired = hookfleet_chaos::cluster::start();
    check(result);
    repaired.unwrap();
}

#[tokio::test(flavor = "multi_thread")]
#[ignore = "starts scripts/cluster and stops its nodes: scripts/test runs it alone"]
async fn the_rabbitmq_node_leading_the_work_queue_lost_mid_delivery_loses_nothing() {
    check_cluster(scenarios::cluster::rabbit_leader_lost(&settings()).await);
}

#[tokio::test(flavor = "multi_thread")]
#[ignore = "starts scripts/cluster and stops its nodes: scripts/test runs it alone"]
async fn a_redis_cluster_master_lost_mid_delivery_loses_nothing() {
    check_cluster(scenarios::cluster::redis_master_lost(&settings()).await);
}

#[tokio::test(flavor = "multi_thread")]
#[ignore = "starts scripts/cluster and stops its nodes: scripts/test runs it alone"]
async fn a_rolling_restart_of_the_rabbitmq_cluster_under_load_loses_nothing() {
    check_cluster(scenarios::cluster::rabbit_rolling_restart(&settings()).await);
}

#[tokio::test(flavor = "multi_thread")]
#[ignore = "starts scripts/cluster: scripts/test runs it with the cluster scenarios"]
async fn marks_claims_and_intsets_work_on_a_redis_cluster() {
    let clusters = tokio::task::spawn_blocking(hookfleet_chaos::cluster::start)
        .await
        .unwrap()
        .unwrap();
    marks::claim_commit_release(&clusters.redis_url).await;
    marks::marks_stay_intsets_as_a_bucket_grows(&clusters.redis_url).await;
    marks::a_commit_survives_a_flushed_script_cache(&clusters.redis_url).await;
    marks::marks_live_the_window_across_buckets(&clusters.redis_url).await;
}
