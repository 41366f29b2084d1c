//! Isolation between endpoints (docs/contract.md §3): the per-endpoint in-flight cap, the
//! circuit breaker shared by every worker, `Retry-After` pauses and auto-disable with its
//! `endpoint.disabled` notice at an operator endpoint. Every case also checks that nothing is lost or sent twice.

use std::time::{Duration, Instant};

use serde_json::Value;

use hookfleet_testkit::WorkerProcess;

use crate::util::{Fleet, Receiver, Reply, WAIT, wait_until};

const BLOCKED: &str = "log.blocked";
/// Room for deferral tiers (1 s and up, jittered) on top of the usual waits.
const LONG_WAIT: Duration = Duration::from_secs(30);

/// Publishes events `{"n": n}` for each n; returns their ids.
async fn publish(fleet: &Fleet, numbers: std::ops::Range<u32>) -> Vec<String> {
    let mut ids = Vec::new();
    for n in numbers {
        ids.push(
            fleet
                .publish(BLOCKED, "acme", &format!(r#"{{"n":{n}}}"#))
                .await,
        );
    }
    ids
}

/// Waits until `worker` deferred at least `count` deliveries for `reason`.
async fn deferred(worker: &WorkerProcess, reason: &str, count: f64) {
    let labels = [("reason", reason)];
    let metric = "hookfleet_deliveries_deferred_total";
    worker
        .wait_for_metric(metric, &labels, count, WAIT)
        .await
        .unwrap();
}

/// Adds an endpoint of tenant `acme` for `log.blocked` at `path` on the receiver.
async fn add(fleet: &Fleet, receiver: &Receiver, path: &str) -> serde_json::Value {
    fleet
        .add_endpoint("acme", &receiver.url(path), &[BLOCKED])
        .await
}

/// Asserts that each id got exactly one 2xx on `path`.
fn delivered_once(receiver: &Receiver, path: &str, ids: &[String]) {
    for id in ids {
        assert_eq!(receiver.seen(path, id).ok, 1, "{id} on {path}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_busy_endpoint_is_deferred_not_waited_for() {
    let fleet = Fleet::new().env("HOOKFLEET_ENDPOINT_CONCURRENCY", "1");
    let receiver = Receiver::start().await.unwrap();
    receiver.set_default(
        "/slow",
        Reply::status(200).delayed(Duration::from_millis(1500)),
    );
    add(&fleet, &receiver, "/slow").await;
    add(&fleet, &receiver, "/fast").await;
    let worker = fleet.spawn_worker().await;

    let ids = publish(&fleet, 0..3).await;
    // The fast endpoint is not held up by the slow one's single slot.
    wait_until(WAIT, "the fast endpoint's three", || {
        receiver.count("/fast") == 3
    })
    .await;
    deferred(&worker, "endpoint_busy", 1.0).await;
    wait_until(LONG_WAIT, "the slow endpoint's three", || {
        ids.iter().all(|id| receiver.seen("/slow", id).ok == 1)
    })
    .await;
    assert_eq!(receiver.count("/slow"), 3, "a deferral made an HTTP call");
    delivered_once(&receiver, "/slow", &ids);
    delivered_once(&receiver, "/fast", &ids);
    // A deferral is not an attempt: nothing failed.
    let failed = worker
        .metric(
            "hookfleet_deliveries_total",
            &[("result", "retry_scheduled")],
        )
        .await
        .unwrap_or(0.0);
    assert_eq!(failed, 0.0);
    worker.stop().await.unwrap();
    fleet.cleanup().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn an_open_circuit_defers_without_attempts_until_a_probe_closes_it() {
    let fleet = Fleet::new()
        .env("HOOKFLEET_CIRCUIT_THRESHOLD", "2")
        .env("HOOKFLEET_CIRCUIT_COOLDOWN", "2s");
    let receiver = Receiver::start().await.unwrap();
    receiver.set_default("/down", Reply::status(500));
    add(&fleet, &receiver, "/down").await;
    add(&fleet, &receiver, "/up").await;
    let worker = fleet.spawn_worker().await;

    let first = fleet.publish(BLOCKED, "acme", r#"{"n":0}"#).await;
    // Two failures in a row (the attempt and its first retry) open the circuit.
    worker
        .wait_for_metric(
            "hookfleet_circuit_transitions_total",
            &[("to", "open")],
            1.0,
            WAIT,
        )
        .await
        .unwrap();
    let mut ids = vec![first];
    ids.extend(publish(&fleet, 1..3).await);
    wait_until(WAIT, "the healthy endpoint's three", || {
        receiver.count("/up") == 3
    })
    .await;
    deferred(&worker, "circuit_open", 2.0).await;
    assert_eq!(
        receiver.count("/down"),
        2,
        "no HTTP call while the circuit is open"
    );
    worker
        .wait_for_metric("hookfleet_circuit_open_endpoints", &[], 1.0, WAIT)
        .await
        .unwrap();

    receiver.set_default("/down", Reply::status(200));
    worker
        .wait_for_metric(
            "hookfleet_circuit_transitions_total",
            &[("to", "closed")],
            1.0,
            LONG_WAIT,
        )
        .await
        .unwrap();
    wait_until(LONG_WAIT, "every deferred event", || {
        ids.iter().all(|id| receiver.seen("/down", id).ok == 1)
    })
    .await;
    // Two failures, then one success per event: the deferrals made no call.
    assert_eq!(receiver.count("/down"), 2 + 3);
    delivered_once(&receiver, "/down", &ids);
    delivered_once(&receiver, "/up", &ids);
    let half_open = worker
        .metric(
            "hookfleet_circuit_transitions_total",
            &[("to", "half_open")],
        )
        .await;
    assert!(half_open >= Some(1.0), "{half_open:?}");
    assert!(fleet.dead_letters().await.is_empty());
    worker.stop().await.unwrap();
    fleet.cleanup().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_second_worker_sees_the_circuit_the_first_opened() {
    let fleet = Fleet::new()
        .env("HOOKFLEET_CIRCUIT_THRESHOLD", "2")
        .env("HOOKFLEET_CIRCUIT_COOLDOWN", "10m");
    let receiver = Receiver::start().await.unwrap();
    receiver.set_default("/down", Reply::status(503));
    add(&fleet, &receiver, "/down").await;
    let first = fleet.spawn_worker().await;
    fleet.publish(BLOCKED, "acme", r#"{"n":0}"#).await;
    first
        .wait_for_metric(
            "hookfleet_circuit_transitions_total",
            &[("to", "open")],
            1.0,
            WAIT,
        )
        .await
        .unwrap();
    first.stop().await.unwrap();
    let calls = receiver.count("/down");

    let second = fleet.spawn_worker().await;
    fleet.publish(BLOCKED, "acme", r#"{"n":1}"#).await;
    deferred(&second, "circuit_open", 1.0).await;
    assert_eq!(
        receiver.count("/down"),
        calls,
        "the second worker made no call"
    );
    second.stop().await.unwrap();
    fleet.cleanup().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_retry_after_pauses_that_endpoint_only() {
    let fleet = Fleet::new();
    let receiver = Receiver::start().await.unwrap();
    receiver.enqueue("/limited", [Reply::status(429).retry_after(2)]);
    add(&fleet, &receiver, "/limited").await;
    add(&fleet, &receiver, "/other").await;
    let worker = fleet.spawn_worker().await;

    let mut ids = vec![fleet.publish(BLOCKED, "acme", r#"{"n":0}"#).await];
    wait_until(WAIT, "the 429", || receiver.count("/limited") == 1).await;
    let limited_at = Instant::now();
    ids.extend(publish(&fleet, 1..3).await);
    wait_until(WAIT, "the other endpoint's three", || {
        receiver.count("/other") == 3
    })
    .await;
    deferred(&worker, "retry_after", 1.0).await;
    wait_until(LONG_WAIT, "the limited endpoint's three", || {
        ids.iter().all(|id| receiver.seen("/limited", id).ok == 1)
    })
    .await;
    let after_pause = receiver.requests("/limited");
    assert!(
        after_pause[1..]
            .iter()
            .all(|r| r.at >= limited_at + Duration::from_millis(1900)),
        "a delivery went through during the pause"
    );
    delivered_once(&receiver, "/limited", &ids);
    delivered_once(&receiver, "/other", &ids);
    worker.stop().await.unwrap();
    fleet.cleanup().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn an_endpoint_failing_for_the_window_is_disabled_with_a_notice() {
    let fleet = Fleet::new()
        .env("HOOKFLEET_DISABLE_AFTER", "1s")
        .env("HOOKFLEET_CIRCUIT_THRESHOLD", "100");
    let receiver = Receiver::start().await.unwrap();
    receiver.set_default("/broken", Reply::status(500));
    let endpoint = add(&fleet, &receiver, "/broken").await;
    let endpoint_id = endpoint["id"].as_str().unwrap().to_owned();
    // The platform hears of it at an endpoint of the operator tenant.
    let ops = receiver.url("/ops");
    fleet
        .add_endpoint("_operator", &ops, &["endpoint.disabled"])
        .await;
    let worker = fleet.spawn_worker().await;
    fleet.publish(BLOCKED, "acme", r#"{"n":0}"#).await;

    wait_until(LONG_WAIT, "the endpoint.disabled notice", || {
        receiver.count("/ops") == 1
    })
    .await;
    let notice: Value = serde_json::from_slice(&receiver.requests("/ops")[0].body).unwrap();
    assert_eq!(notice["type"], "endpoint.disabled");
    assert_eq!(notice["data"]["endpoint_id"], endpoint_id.as_str());
    assert_eq!(notice["data"]["tenant"], "acme");
    assert_eq!(notice["data"]["by"], "breaker");
    assert!(
        notice["data"]["reason"]
            .as_str()
            .unwrap()
            .contains("without a break"),
        "{notice}"
    );
    let got = fleet.run_ok(&["endpoints", "get", &endpoint_id]).await;
    let got: Value = serde_json::from_str(got.trim()).unwrap();
    assert_eq!(got["enabled"], false);
    // The delivery that disabled it is parked, not lost.
    let deadline = Instant::now() + WAIT;
    let letters = loop {
        let letters = fleet.dead_letters().await;
        if !letters.is_empty() || Instant::now() > deadline {
            break letters;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(letters.len(), 1, "{letters:?}");
    worker.stop().await.unwrap();
    fleet.cleanup().await;
}

/// With the default catalog (six queues) one busy event type may use the worker's whole
/// in-flight budget: 150 events of one type, queued before the worker starts, are all in
/// flight at once at receivers that answer only after 1.5 s. Were the budget of 200 shared out
/// among the queues, at most 64 would be (the old per-queue floor), the rest 1.5 s later.
#[tokio::test(flavor = "multi_thread")]
async fn one_busy_event_type_may_use_the_whole_in_flight_budget() {
    let fleet = Fleet::new().env("HOOKFLEET_MAX_INFLIGHT", "200");
    let receiver = Receiver::start().await.unwrap();
    let slow = Reply::status(200).delayed(Duration::from_millis(1500));
    // Two tenants, so that the per-endpoint cap (128) is not what limits.
    for (tenant, path) in [("acme", "/a"), ("globex", "/b")] {
        receiver.set_default(path, slow);
        (fleet.add_endpoint(tenant, &receiver.url(path), &[BLOCKED])).await;
    }
    fleet.topology().await;
    let publisher = fleet.raw_publisher(BLOCKED).await;
    for n in 0..150 {
        let (id, tenant) = (format!("evt_{n}"), ["acme", "globex"][n % 2]);
        let body = format!(r#"{{"id":"{id}","type":"{BLOCKED}","data":{{}}}}"#);
        publisher
            .publish(&id, Some(tenant), body.as_bytes())
            .await
            .unwrap();
    }
    let worker = fleet.spawn_worker().await;

    let total = || receiver.count("/a") + receiver.count("/b");
    wait_until(WAIT, "all 150 events at the receivers", || total() >= 150).await;
    let arrivals: Vec<Instant> = (receiver.requests("/a").iter())
        .chain(receiver.requests("/b").iter())
        .map(|a| a.at)
        .collect();
    let first = arrivals.iter().min().copied().unwrap();
    let spread = arrivals.iter().map(|at| *at - first).max().unwrap();
    assert!(
        spread < Duration::from_millis(1200),
        "the 150 arrived over {spread:?}: not all in flight at once"
    );
    assert_eq!(total(), 150, "a delivery was repeated");
    worker.stop().await.unwrap();
    fleet.cleanup().await;
}
