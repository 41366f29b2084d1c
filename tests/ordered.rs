//! Ordered endpoints (docs/ordered.md): events one at a time, in the order the broker accepted
//! them, across event types and two workers, through failures, retries and a killed worker;
//! an ordered endpoint that is down holds back only itself.

use std::collections::HashMap;
use std::time::Duration;

use hookfleet_testkit::WorkerProcess;
use serde_json::{Value, json};

use crate::util::{Fleet, Receiver, Reply, WAIT, wait_for_result, wait_until};

const TYPES: [&str; 2] = ["approval.approved", "log.blocked"];
/// Room for retries of the tests' schedule (200 ms, 400 ms, 800 ms) one after the other.
const LONG_WAIT: Duration = Duration::from_secs(60);

/// `hookfleet endpoints add --ordered` for tenant `acme` at `path`, both types.
async fn add_ordered(fleet: &Fleet, receiver: &Receiver, path: &str) -> Value {
    let url = receiver.url(path);
    let events = TYPES.join(",");
    let args = [
        "endpoints",
        "add",
        "--tenant",
        "acme",
        "--url",
        &url,
        "--events",
        &events,
        "--ordered",
    ];
    serde_json::from_str(fleet.run_ok(&args).await.trim()).unwrap()
}

/// Publishes `count` events, types alternating, each confirmed before the next: the broker
/// accepted them in this order. Returns their ids in it.
async fn publish_in_order(fleet: &Fleet, count: usize) -> Vec<String> {
    let namespace = fleet.namespace().parse().unwrap();
    let publisher = hookfleet_producer::Publisher::connect(hookfleet_testkit::AMQP_URL, namespace)
        .await
        .unwrap();
    let mut ids = Vec::new();
    for n in 0..count {
        let event = hookfleet_producer::OutboundEvent::new(
            TYPES[n % 2].parse().unwrap(),
            "acme".parse().unwrap(),
            &json!({"n": n}),
            None,
        );
        publisher.publish(&event).await.unwrap();
        ids.push(event.id.to_string());
    }
    ids
}

/// Asserts that `path` got every id, and that its requests, retries included, never went
/// back in the order: each one is for the same event as the one before, or a later one.
fn arrived_in_order(receiver: &Receiver, path: &str, ids: &[String]) {
    let position: HashMap<&str, usize> = ids
        .iter()
        .enumerate()
        .map(|(i, id)| (id.as_str(), i))
        .collect();
    let arrivals: Vec<usize> = (receiver.requests(path).iter())
        .map(|a| position[a.header("webhook-id")])
        .collect();
    for pair in arrivals.windows(2) {
        assert!(
            pair[0] <= pair[1],
            "event {} was sent after event {}: {arrivals:?}",
            pair[1],
            pair[0]
        );
    }
    for id in ids {
        assert!(receiver.seen(path, id).ok >= 1, "{id} never delivered");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn two_workers_deliver_in_publish_order_across_types_through_failures() {
    let fleet = Fleet::new().env("HOOKFLEET_ENDPOINT_CACHE_TTL", "0s");
    let receiver = Receiver::start().await.unwrap();
    // One request in five fails: the head is retried, everything behind it waits.
    let replies = (0..400).map(|n| Reply::status(if n % 5 == 3 { 500 } else { 200 }));
    receiver.enqueue("/ordered", replies);
    let endpoint = add_ordered(&fleet, &receiver, "/ordered").await;
    assert_eq!(endpoint["ordered"], true);
    let workers = [fleet.spawn_worker().await, fleet.spawn_worker().await];
    let ids = publish_in_order(&fleet, 60).await;
    wait_until(LONG_WAIT, "all 60 delivered", || {
        ids.iter().all(|id| receiver.seen("/ordered", id).ok >= 1)
    })
    .await;
    arrived_in_order(&receiver, "/ordered", &ids);
    assert!(receiver.count("/ordered") > ids.len(), "no request failed");
    for worker in workers {
        worker.stop().await.unwrap();
    }
    fleet.cleanup().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_killed_worker_loses_nothing_and_nothing_overtakes() {
    let fleet = Fleet::new().env("HOOKFLEET_ENDPOINT_CACHE_TTL", "0s");
    let receiver = Receiver::start().await.unwrap();
    receiver.set_default(
        "/ordered",
        Reply::status(200).delayed(Duration::from_millis(20)),
    );
    add_ordered(&fleet, &receiver, "/ordered").await;
    let first = fleet.spawn_worker().await;
    let second = fleet.spawn_worker().await;
    let ids = publish_in_order(&fleet, 200).await;
    wait_until(WAIT, "a third delivered", || {
        receiver.count("/ordered") >= 60
    })
    .await;
    first.kill().await;
    wait_until(LONG_WAIT, "all 200 delivered", || {
        ids.iter().all(|id| receiver.seen("/ordered", id).ok >= 1)
    })
    .await;
    // A head in flight when its worker died is sent again (same webhook-id): allowed.
    arrived_in_order(&receiver, "/ordered", &ids);
    second.stop().await.unwrap();
    fleet.cleanup().await;
}

/// An ordered endpoint at `/dead` that answers 500 beside an unordered one at `/fast`, a
/// worker, and `count` events published, once `/fast` has every one: the ordered endpoint's
/// id, and the events' ids in publish order.
async fn dead_beside_fast(
    fleet: &Fleet,
    receiver: &Receiver,
    count: usize,
) -> (String, WorkerProcess, Vec<String>) {
    receiver.set_default("/dead", Reply::status(500));
    let endpoint = add_ordered(fleet, receiver, "/dead").await;
    let id = endpoint["id"].as_str().unwrap().to_owned();
    fleet
        .add_endpoint("acme", &receiver.url("/fast"), &TYPES)
        .await;
    let worker = fleet.spawn_worker().await;
    let ids = publish_in_order(fleet, count).await;
    wait_until(WAIT, "every event at the unordered endpoint", || {
        ids.iter().all(|id| receiver.seen("/fast", id).ok == 1)
    })
    .await;
    (id, worker, ids)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_dead_ordered_endpoint_holds_back_only_itself() {
    // The head's second attempt comes after 1 s, its third only after 30 s: long enough to
    // look at the backlog while the head holds it.
    let fleet = Fleet::new()
        .env("HOOKFLEET_ENDPOINT_CACHE_TTL", "0s")
        .env("HOOKFLEET_RETRY_DELAYS", "1s,30s");
    let receiver = Receiver::start().await.unwrap();
    let (id, worker, ids) = dead_beside_fast(&fleet, &receiver, 20).await;
    // Only the head was tried: its first attempt and its retry.
    wait_until(WAIT, "the head's retry", || receiver.count("/dead") >= 2).await;
    for arrival in receiver.requests("/dead") {
        assert_eq!(arrival.header("webhook-id"), ids[0]);
    }
    let shown = fleet.run_ok(&["endpoints", "get", &id]).await;
    let shown: Value = serde_json::from_str(shown.trim()).unwrap();
    assert_eq!(shown["ordered_backlog"]["length"], 20, "{shown}");
    let labels = [("what", "events")];
    (worker.wait_for_metric("hookfleet_ordered_backlog", &labels, 20.0, WAIT))
        .await
        .unwrap();
    worker.stop().await.unwrap();
    fleet.cleanup().await;
}

/// An ordered endpoint's backlog waits in Redis with its payloads: past
/// `HOOKFLEET_ORDERED_BACKLOG`, its new events are dead-lettered for it at once (nothing lost,
/// Redis not filled), and the other endpoints still get every event.
#[tokio::test(flavor = "multi_thread")]
async fn a_full_ordered_backlog_dead_letters_that_endpoints_new_events() {
    let fleet = Fleet::new()
        .env("HOOKFLEET_ENDPOINT_CACHE_TTL", "0s")
        .env("HOOKFLEET_RETRY_DELAYS", "30s")
        .env("HOOKFLEET_ORDERED_BACKLOG", "5");
    let receiver = Receiver::start().await.unwrap();
    let (id, worker, ids) = dead_beside_fast(&fleet, &receiver, 8).await;
    wait_for_result(&worker, "dead_lettered", 3.0).await;
    let mut letters = fleet.dead_letters().await;
    letters.sort_by_key(|l| ids.iter().position(|id| l["event_id"] == id.as_str()));
    let refused: Vec<&str> = (letters.iter())
        .map(|l| l["event_id"].as_str().unwrap())
        .collect();
    assert_eq!(refused, ids[5..], "the three past the first five");
    for letter in &letters {
        assert_eq!(letter["endpoint"], id.as_str(), "{letter}");
        let reason = letter["reason"].as_str().unwrap();
        assert!(
            reason.starts_with("ordered backlog full: 5 events"),
            "{reason}"
        );
    }
    let shown = fleet.run_ok(&["endpoints", "get", &id]).await;
    let shown: Value = serde_json::from_str(shown.trim()).unwrap();
    assert_eq!(shown["ordered_backlog"]["length"], 5, "{shown}");
    assert_eq!(receiver.requests("/dead")[0].header("webhook-id"), ids[0]);
    assert!(worker.log().contains("backlog is full"));
    worker.stop().await.unwrap();
    fleet.cleanup().await;
}

/// Past 32 tenants with ordered endpoints, every event goes through the ordered intake (one
/// binding instead of one per tenant): the tenants routed before and the one after still get
/// their events, once each.
#[tokio::test(flavor = "multi_thread")]
async fn many_tenants_with_ordered_endpoints_are_routed_at_once() {
    let fleet = Fleet::new().env("HOOKFLEET_ENDPOINT_CACHE_TTL", "0s");
    let receiver = Receiver::start().await.unwrap();
    let api = fleet.spawn_api().await;
    for n in 0..=32 {
        let new = json!({"tenant": format!("t{n}"), "url": receiver.url(&format!("/t{n}")),
                         "events": TYPES, "ordered": true});
        let created = (api.operator(reqwest::Method::POST, "/v1/endpoints", Some(new))).await;
        assert_eq!(created.status, 201, "{:?}", created.body);
    }
    let worker = fleet.spawn_worker().await;
    let mut sent = Vec::new();
    for tenant in ["t0", "t31", "t32"] {
        let event = json!({"type": TYPES[0], "tenant": tenant, "data": {"to": tenant}});
        sent.push((tenant, api.publish(event).await));
    }
    wait_until(WAIT, "each tenant's event", || {
        (sent.iter()).all(|(t, id)| receiver.seen(&format!("/{t}"), id).ok == 1)
    })
    .await;
    worker.stop().await.unwrap();
    fleet.cleanup().await;
}

/// A 410 disables an ordered endpoint as any other: its head is dead-lettered, and what waited
/// behind it is dropped, never sent.
#[tokio::test(flavor = "multi_thread")]
async fn a_410_disables_an_ordered_endpoint() {
    let fleet = Fleet::new().env("HOOKFLEET_ENDPOINT_CACHE_TTL", "0s");
    let receiver = Receiver::start().await.unwrap();
    receiver.set_default("/gone", Reply::status(410));
    let endpoint = add_ordered(&fleet, &receiver, "/gone").await;
    let id = endpoint["id"].as_str().unwrap().to_owned();
    let worker = fleet.spawn_worker().await;
    let ids = publish_in_order(&fleet, 5).await;
    let deadline = std::time::Instant::now() + WAIT;
    let shown = loop {
        let shown = fleet.run_ok(&["endpoints", "get", &id]).await;
        let shown: Value = serde_json::from_str(shown.trim()).unwrap();
        let emptied = shown["ordered_backlog"]["length"] == 0;
        if (shown["enabled"] == false && emptied) || std::time::Instant::now() > deadline {
            break shown;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(shown["enabled"], false, "{shown}");
    assert_eq!(shown["ordered_backlog"]["length"], 0, "{shown}");
    let letters = fleet.dead_letters().await;
    assert_eq!(letters.len(), 1, "{letters:?}");
    assert_eq!(receiver.count("/gone"), 1, "only the head was sent");
    assert_eq!(receiver.requests("/gone")[0].header("webhook-id"), ids[0]);
    worker.stop().await.unwrap();
    fleet.cleanup().await;
}
