//! Retries through the delay tiers, dead letters and their replay, `410 Gone`, and the metrics
//! that count them (docs/contract.md §3, §4 `dead-letters`, §6). The fleet's retry schedule is
//! `200ms,400ms,800ms`.

use std::time::Duration;

use serde_json::Value;

use crate::util::{Fleet, Receiver, Reply, WAIT, metric_sum, wait_for_result, wait_until};

const BLOCKED: &str = "log.blocked";

#[tokio::test(flavor = "multi_thread")]
async fn an_endpoint_failing_twice_gets_three_attempts_spaced_by_the_tiers() {
    let fleet = Fleet::new();
    let receiver = Receiver::start().await.unwrap();
    receiver.enqueue("/flaky", [Reply::status(500), Reply::status(503)]);
    fleet
        .add_endpoint("acme", &receiver.url("/flaky"), &[BLOCKED])
        .await;
    fleet
        .add_endpoint("acme", &receiver.url("/steady"), &[BLOCKED])
        .await;
    let worker = fleet.spawn_worker().await;

    let id = fleet.publish(BLOCKED, "acme", r#"{"n":1}"#).await;
    wait_until(WAIT, "the third attempt", || receiver.count("/flaky") == 3).await;
    // Both endpoints' final outcomes are counted once the third attempt is committed.
    wait_for_result(&worker, "delivered", 2.0).await;

    let attempts = receiver.requests("/flaky");
    assert!(attempts.iter().all(|r| r.header("webhook-id") == id));
    let gaps: Vec<Duration> = attempts.windows(2).map(|w| w[1].at - w[0].at).collect();
    assert!(
        gaps[0] >= Duration::from_millis(200),
        "first retry after {:?}",
        gaps[0]
    );
    assert!(
        gaps[1] >= Duration::from_millis(400),
        "second retry after {:?}",
        gaps[1]
    );
    assert_eq!(
        receiver.count("/steady"),
        1,
        "the retry for /flaky re-sent to /steady"
    );

    let metrics = worker.metrics().await.unwrap();
    let value = |name, labels: &[(&str, &str)]| metric_sum(&metrics, name, labels);
    let blocked = ("event_type", BLOCKED);
    assert_eq!(value("hookfleet_events_received_total", &[blocked]), 1.0);
    assert_eq!(
        value(
            "hookfleet_delivery_attempts_total",
            &[blocked, ("outcome", "success")]
        ),
        2.0
    );
    assert_eq!(
        value(
            "hookfleet_delivery_attempts_total",
            &[blocked, ("outcome", "http_error")]
        ),
        2.0
    );
    assert_eq!(
        value(
            "hookfleet_deliveries_total",
            &[blocked, ("result", "retry_scheduled")]
        ),
        2.0
    );
    assert_eq!(
        value(
            "hookfleet_deliveries_total",
            &[blocked, ("result", "dead_lettered")]
        ),
        0.0
    );
    assert_eq!(
        value("hookfleet_delivery_duration_seconds_count", &[blocked]),
        4.0
    );
    assert_eq!(value("hookfleet_event_lag_seconds_count", &[blocked]), 2.0);
    assert_eq!(value("hookfleet_inflight_deliveries", &[]), 0.0);

    assert!(worker.stop().await.unwrap().success());
    fleet.cleanup().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn an_always_failing_delivery_is_dead_lettered_and_replays_once_the_endpoint_recovers() {
    let fleet = Fleet::new();
    let receiver = Receiver::start().await.unwrap();
    receiver.set_default("/down", Reply::status(500));
    let endpoint = fleet
        .add_endpoint("acme", &receiver.url("/down"), &[BLOCKED])
        .await;
    let endpoint_id = endpoint["id"].as_str().unwrap();
    let worker = fleet.spawn_worker().await;

    let id = fleet.publish(BLOCKED, "acme", r#"{"n":1}"#).await;
    wait_for_result(&worker, "dead_lettered", 1.0).await;
    assert_eq!(receiver.count("/down"), 4, "1 attempt + 3 retries");

    let letters = fleet.dead_letters().await;
    assert_eq!(letters.len(), 1, "{letters:?}");
    let letter = &letters[0];
    assert_eq!(letter["event_id"], id.as_str());
    assert_eq!(letter["event_type"], BLOCKED);
    assert_eq!(letter["tenant"], "acme");
    assert_eq!(letter["endpoint"], endpoint_id);
    assert_eq!(letter["attempts"], 4);
    assert_eq!(letter["last_status"], 500);
    assert_eq!(letter["reason"], "gave up after 4 attempts");
    assert_eq!(letter["payload"]["id"], id.as_str());

    receiver.set_default("/down", Reply::status(200));
    let replay = fleet
        .run_ok(&["dead-letters", "replay", "--endpoint", endpoint_id])
        .await;
    let report: Value = serde_json::from_str(replay.trim()).unwrap();
    assert_eq!(report["replayed"], 1, "{report}");
    wait_until(WAIT, "the replayed delivery", || {
        receiver.count("/down") == 5
    })
    .await;
    wait_for_result(&worker, "delivered", 1.0).await;
    assert!(
        fleet.dead_letters().await.is_empty(),
        "replayed letters stay removed"
    );

    assert!(worker.stop().await.unwrap().success());
    fleet.cleanup().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn replay_for_one_endpoint_leaves_the_others_dead_letters_alone() {
    let fleet = Fleet::new().env("HOOKFLEET_RETRY_DELAYS", "100ms");
    let receiver = Receiver::start().await.unwrap();
    receiver.set_default("/a", Reply::status(500));
    receiver.set_default("/b", Reply::status(500));
    let a = fleet
        .add_endpoint("acme", &receiver.url("/a"), &[BLOCKED])
        .await;
    fleet
        .add_endpoint("acme", &receiver.url("/b"), &[BLOCKED])
        .await;
    let worker = fleet.spawn_worker().await;

    fleet.publish(BLOCKED, "acme", "{}").await;
    wait_for_result(&worker, "dead_lettered", 2.0).await;
    assert_eq!(fleet.dead_letters().await.len(), 2);

    receiver.set_default("/a", Reply::status(200));
    let a_id = a["id"].as_str().unwrap();
    let replay = fleet
        .run_ok(&["dead-letters", "replay", "--endpoint", a_id])
        .await;
    assert_eq!(
        serde_json::from_str::<Value>(replay.trim()).unwrap()["replayed"],
        1
    );
    wait_until(WAIT, "the replay to /a", || receiver.count("/a") == 3).await;

    let left = fleet.dead_letters().await;
    assert_eq!(left.len(), 1, "{left:?}");
    assert_ne!(left[0]["endpoint"], a_id);
    assert_eq!(
        receiver.count("/b"),
        2,
        "replaying /a's letter must not re-send to /b"
    );

    assert!(worker.stop().await.unwrap().success());
    fleet.cleanup().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn gone_disables_the_endpoint_and_dead_letters_without_retrying() {
    let fleet = Fleet::new();
    let receiver = Receiver::start().await.unwrap();
    receiver.set_default("/gone", Reply::status(410));
    let endpoint = fleet
        .add_endpoint("acme", &receiver.url("/gone"), &[BLOCKED])
        .await;
    let worker = fleet.spawn_worker().await;

    fleet.publish(BLOCKED, "acme", "{}").await;
    wait_for_result(&worker, "dead_lettered", 1.0).await;
    assert_eq!(receiver.count("/gone"), 1, "410 is not retried");
    let id = endpoint["id"].as_str().unwrap();
    let now: Value =
        serde_json::from_str(fleet.run_ok(&["endpoints", "get", id]).await.trim()).unwrap();
    assert_eq!(now["enabled"], false);
    let letters = fleet.dead_letters().await;
    assert!(
        letters[0]["reason"].as_str().unwrap().contains("410"),
        "{letters:?}"
    );

    assert!(worker.stop().await.unwrap().success());
    fleet.cleanup().await;
}
