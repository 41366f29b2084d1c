//! De-duplication, contract-breaking messages, crashes and graceful shutdown (docs/contract.md §1, §3,
//! §7): whatever happens, every event reaches every endpoint, and at most the documented crash
//! window repeats one.

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use crate::util::{Fleet, Receiver, Reply, WAIT, wait_for_result, wait_until};

const BLOCKED: &str = "log.blocked";

#[tokio::test(flavor = "multi_thread")]
async fn the_same_event_id_published_twice_is_delivered_once() {
    let fleet = Fleet::new();
    let receiver = Receiver::start().await.unwrap();
    fleet
        .add_endpoint("acme", &receiver.url("/once"), &[BLOCKED])
        .await;
    let worker = fleet.spawn_worker().await;

    let publish = [
        "publish",
        "--type",
        BLOCKED,
        "--tenant",
        "acme",
        "--data",
        "{}",
        "--id",
        "evt_twice",
    ];
    fleet.run_ok(&publish).await;
    // The CLI answers a repeat without publishing it (as the API does); the same id published
    // again past it, straight to RabbitMQ, is de-duplicated by the worker.
    fleet.run_ok(&publish).await;
    let body = br#"{"id":"evt_twice","type":"log.blocked","data":{}}"#;
    fleet.publish_raw(BLOCKED, "acme", "evt_twice", body).await;
    wait_for_result(&worker, "duplicate", 1.0).await;
    assert_eq!(receiver.count("/once"), 1);

    assert!(worker.stop().await.unwrap().success());
    fleet.cleanup().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn messages_that_break_the_contract_are_dead_lettered_and_the_worker_goes_on() {
    let fleet = Fleet::new();
    let receiver = Receiver::start().await.unwrap();
    fleet
        .add_endpoint("acme", &receiver.url("/hook"), &[BLOCKED])
        .await;
    let worker = fleet.spawn_worker().await;

    let publisher = fleet.raw_publisher(BLOCKED).await;
    publisher
        .publish("evt_notjson", Some("acme"), b"this is not json")
        .await
        .unwrap();
    publisher
        .publish("evt_notenant", None, b"{}")
        .await
        .unwrap();
    let oversized = format!(r#"{{"pad":"{}"}}"#, "x".repeat(300 * 1024));
    publisher
        .publish("evt_big", Some("acme"), oversized.as_bytes())
        .await
        .unwrap();
    publisher
        .publish("evt_good", Some("acme"), br#"{"ok":true}"#)
        .await
        .unwrap();

    wait_until(WAIT, "the good event", || receiver.count("/hook") == 1).await;
    wait_for_result(&worker, "dead_lettered", 3.0).await;
    assert_eq!(
        receiver.requests("/hook")[0].header("webhook-id"),
        "evt_good"
    );
    let reasons: HashMap<String, String> = fleet
        .dead_letters()
        .await
        .iter()
        .map(|l| {
            (
                l["event_id"].as_str().unwrap().to_owned(),
                l["reason"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert!(reasons["evt_notjson"].contains("not JSON"), "{reasons:?}");
    assert!(reasons["evt_notenant"].contains("no tenant"), "{reasons:?}");
    assert!(
        reasons["evt_big"].contains("over the 262144-byte limit"),
        "{reasons:?}"
    );
    assert_eq!(worker.get("/healthz").await.map(|r| r.0), Some(200));

    assert!(worker.stop().await.unwrap().success());
    fleet.cleanup().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_worker_killed_mid_batch_loses_nothing_and_repeats_at_most_its_in_flight() {
    const EVENTS: usize = 40;
    const CONCURRENCY: &str = "8";
    let fleet = Fleet::new().env("HOOKFLEET_MAX_INFLIGHT", CONCURRENCY);
    let receiver = Receiver::start().await.unwrap();
    // Slow enough that the kill finds deliveries in flight.
    receiver.set_default(
        "/hook",
        Reply::status(200).delayed(Duration::from_millis(150)),
    );
    fleet
        .add_endpoint("acme", &receiver.url("/hook"), &[BLOCKED])
        .await;
    fleet.topology().await;

    let publisher = fleet.raw_publisher(BLOCKED).await;
    let ids: Vec<String> = (0..EVENTS).map(|i| format!("evt_kill_{i}")).collect();
    for id in &ids {
        publisher.publish(id, Some("acme"), b"{}").await.unwrap();
    }
    let first = fleet.spawn_worker().await;
    wait_until(WAIT, "a third of the batch", || {
        receiver.count("/hook") >= EVENTS / 3
    })
    .await;
    first.kill().await;

    receiver.set_default("/hook", Reply::status(200));
    let second = fleet.spawn_worker().await;
    let received = || -> HashMap<String, usize> {
        let mut seen = HashMap::new();
        for r in receiver.requests("/hook") {
            *seen.entry(r.header("webhook-id").to_owned()).or_default() += 1;
        }
        seen
    };
    wait_until(Duration::from_secs(30), "every event", || {
        received().len() == EVENTS
    })
    .await;

    let seen = received();
    let expected: HashSet<&String> = ids.iter().collect();
    assert_eq!(seen.keys().collect::<HashSet<_>>(), expected);
    // Only POSTs in flight at the kill (at most the concurrency) may repeat: their 2xx was
    // never recorded as done.
    let repeats: usize = seen.values().map(|n| n - 1).sum();
    assert!(repeats <= 8, "{repeats} repeats: {seen:?}");

    assert!(second.stop().await.unwrap().success());
    fleet.cleanup().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn sigterm_during_slow_deliveries_exits_in_time_and_loses_nothing() {
    const EVENTS: usize = 6;
    let fleet = Fleet::new().env("HOOKFLEET_MAX_INFLIGHT", "2");
    let receiver = Receiver::start().await.unwrap();
    receiver.set_default(
        "/slow",
        Reply::status(200).delayed(Duration::from_millis(1500)),
    );
    fleet
        .add_endpoint("acme", &receiver.url("/slow"), &[BLOCKED])
        .await;
    fleet.topology().await;
    let publisher = fleet.raw_publisher(BLOCKED).await;
    for i in 0..EVENTS {
        publisher
            .publish(&format!("evt_term_{i}"), Some("acme"), b"{}")
            .await
            .unwrap();
    }

    let worker = fleet.spawn_worker().await;
    wait_until(WAIT, "deliveries in flight", || {
        receiver.count("/slow") >= 1
    })
    .await;
    let stopping = Instant::now();
    assert!(
        worker.stop().await.unwrap().success(),
        "exit status 0 after SIGTERM"
    );
    // docs/contract.md §7: within the delivery timeout (2 s here) plus 2 s.
    assert!(
        stopping.elapsed() < Duration::from_secs(4),
        "took {:?}",
        stopping.elapsed()
    );

    receiver.set_default("/slow", Reply::status(200));
    let worker = fleet.spawn_worker().await;
    let ids = || -> HashSet<String> {
        receiver
            .requests("/slow")
            .iter()
            .map(|r| r.header("webhook-id").to_owned())
            .collect()
    };
    wait_until(WAIT, "every event after the restart", || {
        ids().len() == EVENTS
    })
    .await;

    assert!(worker.stop().await.unwrap().success());
    fleet.cleanup().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_consumer_cancelled_by_the_broker_is_restarted() {
    let fleet = Fleet::new().env("HOOKFLEET_EVENT_TYPES", BLOCKED);
    let receiver = Receiver::start().await.unwrap();
    fleet
        .add_endpoint("acme", &receiver.url("/hook"), &[BLOCKED])
        .await;
    let mut worker = fleet.spawn_worker().await;

    // Deleting the work queue makes the broker cancel the worker's consumer (basic.cancel).
    fleet.delete_work_queue(BLOCKED).await;
    worker
        .wait_for_metric(
            "hookfleet_consumer_restarts_total",
            &[("reason", "cancelled")],
            1.0,
            WAIT,
        )
        .await
        .unwrap();

    // The new session declared the topology again: events flow.
    worker.wait_ready(WAIT).await.unwrap();
    let id = fleet.publish(BLOCKED, "acme", "{}").await;
    wait_until(WAIT, "a delivery after the restart", || {
        receiver.count("/hook") == 1
    })
    .await;
    assert_eq!(receiver.requests("/hook")[0].header("webhook-id"), id);

    assert!(worker.stop().await.unwrap().success());
    fleet.cleanup().await;
}
