//! Delivery end to end: which endpoints receive an event, what a receiver sees (docs/contract.md §3),
//! endpoint changes, slow receivers and private targets.

use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::{Value, json};

use crate::util::{
    Arrival, Fleet, Receiver, Reply, WAIT, random_hex, verify_signature, wait_until,
};

const BLOCKED: &str = "log.blocked";

#[tokio::test(flavor = "multi_thread")]
async fn an_event_reaches_exactly_the_matching_endpoints() {
    let fleet = Fleet::new();
    let receiver = Receiver::start().await.unwrap();
    for (tenant, path, events) in [
        ("tenant-a", "/a-blocked", &[BLOCKED][..]),
        ("tenant-a", "/a-all", &["*"]),
        ("tenant-a", "/a-approved", &["approval.approved"]),
        ("tenant-b", "/b-all", &["*"]),
    ] {
        fleet
            .add_endpoint(tenant, &receiver.url(path), events)
            .await;
    }
    let worker = fleet.spawn_worker().await;

    let id = fleet.publish(BLOCKED, "tenant-a", r#"{"n":1}"#).await;
    wait_until(WAIT, "both matching endpoints of tenant A", || {
        receiver.count("/a-blocked") == 1 && receiver.count("/a-all") == 1
    })
    .await;
    // A sentinel on the same queue, published after the first event was delivered: once it
    // arrives, any wrong delivery of the first event would have arrived too.
    let sentinel = fleet.publish(BLOCKED, "tenant-b", r#"{"n":2}"#).await;
    wait_until(WAIT, "the sentinel", || receiver.count("/b-all") >= 1).await;

    for path in ["/a-blocked", "/a-all"] {
        let requests = receiver.requests(path);
        assert_eq!(requests.len(), 1, "{path} got {requests:?}");
        assert_eq!(requests[0].header("webhook-id"), id, "{path}");
    }
    assert_eq!(
        receiver.count("/a-approved"),
        0,
        "wrong event type delivered"
    );
    let tenant_b = receiver.requests("/b-all");
    assert_eq!(tenant_b.len(), 1, "wrong tenant delivered: {tenant_b:?}");
    assert_eq!(tenant_b[0].header("webhook-id"), sentinel);

    assert!(worker.stop().await.unwrap().success());
    fleet.cleanup().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_delivery_carries_the_contract_headers_and_a_valid_signature() {
    let fleet = Fleet::new();
    let receiver = Receiver::start().await.unwrap();
    let endpoint = fleet
        .add_endpoint("acme", &receiver.url("/hook"), &[BLOCKED])
        .await;
    let worker = fleet.spawn_worker().await;

    let data = r#"{"amount":12.5,"who":"Zoë","nested":{"list":[1,2,3]}}"#;
    let id = fleet.publish(BLOCKED, "acme", data).await;
    wait_until(WAIT, "the delivery", || receiver.count("/hook") == 1).await;

    let request = &receiver.requests("/hook")[0];
    assert_contract_headers(request, &id, "AgentWarden-Webhooks/1.0");
    let secret = endpoint["secret"].as_str().unwrap();
    assert!(secret.starts_with("whsec_"), "{secret}");
    assert!(verify_signature(secret, &request.headers, &request.body));
    assert!(
        !verify_signature(
            "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
            &request.headers,
            &request.body
        ),
        "the signature must depend on the secret"
    );
    let body: Value = serde_json::from_slice(&request.body).unwrap();
    assert_eq!(body["id"], id.as_str());
    assert_eq!(body["type"], BLOCKED);
    assert!(
        body["timestamp"].as_str().is_some_and(|t| t.contains('T')),
        "{body}"
    );
    assert_eq!(body["data"], serde_json::from_str::<Value>(data).unwrap());

    assert!(worker.stop().await.unwrap().success());
    fleet.cleanup().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn an_event_from_any_amqp_client_is_delivered_byte_for_byte() {
    let fleet = Fleet::new().env("HOOKFLEET_USER_AGENT", "hookfleet-tests/0.1");
    let receiver = Receiver::start().await.unwrap();
    let endpoint = fleet
        .add_endpoint("acme", &receiver.url("/hook"), &["*"])
        .await;
    let worker = fleet.spawn_worker().await;

    // Odd spacing, a raw and an escaped non-ASCII character, `1.50`, a trailing newline: a
    // parse-and-reserialise anywhere on the way would change these bytes.
    let id = format!("evt_amqp_{}", random_hex(8));
    let body = format!(
        "{{\"id\": \"{id}\",  \"type\":\"log.blocked\",\n \"data\" : {{\"é\": 1, \"esc\": \"\\u00e9\", \
         \"n\": 1.50, \"crab\": \"🦀\"}}}}\n"
    );
    fleet
        .publish_raw(BLOCKED, "acme", &id, body.as_bytes())
        .await;
    wait_until(WAIT, "the delivery", || receiver.count("/hook") == 1).await;

    let request = &receiver.requests("/hook")[0];
    assert_eq!(
        request.body.as_ref(),
        body.as_bytes(),
        "body changed on the way: {:?}",
        String::from_utf8_lossy(&request.body)
    );
    assert_contract_headers(request, &id, "hookfleet-tests/0.1");
    let secret = endpoint["secret"].as_str().unwrap();
    assert!(verify_signature(secret, &request.headers, &request.body));

    assert!(worker.stop().await.unwrap().success());
    fleet.cleanup().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_disabled_endpoint_stops_receiving() {
    stops_receiving_after("disable").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_removed_endpoint_stops_receiving() {
    stops_receiving_after("remove").await;
}

/// Runs `hookfleet endpoints <change> ID` on a live endpoint; later events must not reach it.
async fn stops_receiving_after(change: &str) {
    // No endpoint cache, so the worker sees the change with the next event: no waiting out the
    // contract's propagation bound (§2: 2 s), which nothing observable would end.
    let fleet = Fleet::new().env("HOOKFLEET_ENDPOINT_CACHE_TTL", "0s");
    let receiver = Receiver::start().await.unwrap();
    let target = fleet
        .add_endpoint("tenant-a", &receiver.url("/target"), &[BLOCKED])
        .await;
    fleet
        .add_endpoint("tenant-b", &receiver.url("/sentinel"), &[BLOCKED])
        .await;
    let worker = fleet.spawn_worker().await;
    fleet.publish(BLOCKED, "tenant-a", "{}").await;
    wait_until(WAIT, "the first delivery", || {
        receiver.count("/target") == 1
    })
    .await;

    let id = target["id"].as_str().unwrap();
    fleet.run_ok(&["endpoints", change, id]).await;
    fleet.publish(BLOCKED, "tenant-a", "{}").await;
    fleet.publish(BLOCKED, "tenant-b", "{}").await;
    wait_until(WAIT, "the sentinel", || receiver.count("/sentinel") == 1).await;
    worker
        .wait_for_metric(
            "hookfleet_events_received_total",
            &[("event_type", BLOCKED)],
            3.0,
            WAIT,
        )
        .await
        .unwrap();

    assert_eq!(
        receiver.count("/target"),
        1,
        "an event reached an endpoint after `{change}`"
    );
    assert!(worker.stop().await.unwrap().success());
    fleet.cleanup().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_slow_endpoint_does_not_hold_up_another() {
    // /slow never answers, and the delivery timeout is far beyond the test's waits: a worker
    // that let /slow hold it up (in either order of the endpoints) would deliver nothing to
    // /fast until that timeout, so the waits below would fail. No clock is read.
    let fleet = Fleet::new()
        .env("HOOKFLEET_DELIVERY_TIMEOUT", "30s")
        .env("HOOKFLEET_MAX_INFLIGHT", "8");
    let receiver = Receiver::start().await.unwrap();
    receiver.set_default("/slow", Reply::never());
    fleet
        .add_endpoint("acme", &receiver.url("/slow"), &[BLOCKED])
        .await;
    fleet
        .add_endpoint("acme", &receiver.url("/fast"), &[BLOCKED])
        .await;
    let worker = fleet.spawn_worker().await;

    let first = format!("evt_first_{}", random_hex(8));
    let second = format!("evt_second_{}", random_hex(8));
    let got = |path: &str, id: &str| {
        (receiver.requests(path).iter()).any(|r| r.header("webhook-id") == id)
    };
    fleet
        .publish_raw(BLOCKED, "acme", &first, &minimal_body(&first))
        .await;
    wait_until(WAIT, "the first event at both endpoints", || {
        got("/slow", &first) && got("/fast", &first)
    })
    .await;
    // A second event while /slow still holds the first one's request.
    fleet
        .publish_raw(BLOCKED, "acme", &second, &minimal_body(&second))
        .await;
    wait_until(WAIT, "the second event at the fast endpoint", || {
        got("/fast", &second)
    })
    .await;

    assert_eq!(
        receiver.count("/fast"),
        2,
        "{:?}",
        receiver.requests("/fast")
    );
    // Dropping the receiver answers /slow's held requests, so the worker can stop at once.
    drop(receiver);
    assert!(worker.stop().await.unwrap().success());
    fleet.cleanup().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_private_target_is_refused_at_create_time() {
    let fleet = Fleet::new().env("HOOKFLEET_ALLOW_PRIVATE_TARGETS", "false");
    let receiver = Receiver::start().await.unwrap();
    let port = receiver.port();
    for url in [
        format!("http://127.0.0.1:{port}/x"),
        format!("http://localhost:{port}/x"),
    ] {
        let args = [
            "endpoints",
            "add",
            "--tenant",
            "acme",
            "--url",
            &url,
            "--events",
            BLOCKED,
        ];
        let output = fleet.run(&args).await;
        let stderr = String::from_utf8_lossy(&output.stderr).to_lowercase();
        assert!(!output.status.success(), "{url} was accepted");
        assert!(
            ["not allowed", "public", "blocked", "private"]
                .iter()
                .any(|word| stderr.contains(word)),
            "{url}: stderr does not say why: {stderr}"
        );
    }
    let listed: Value = serde_json::from_str(&fleet.run_ok(&["endpoints", "list"]).await).unwrap();
    assert_eq!(listed, json!([]));
    fleet.cleanup().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_private_target_is_refused_at_delivery_time() {
    let fleet = Fleet::new();
    let receiver = Receiver::start().await.unwrap();
    // Created while private targets are allowed, delivered by a worker that refuses them.
    fleet
        .add_endpoint("acme", &receiver.url("/private"), &[BLOCKED])
        .await;
    let worker = fleet
        .spawn_worker_with(&[("HOOKFLEET_ALLOW_PRIVATE_TARGETS", "false")])
        .await;

    fleet.publish(BLOCKED, "acme", "{}").await;
    worker
        .wait_for_metric(
            "hookfleet_delivery_attempts_total",
            &[("event_type", BLOCKED), ("outcome", "blocked")],
            1.0,
            WAIT,
        )
        .await
        .unwrap();

    assert_eq!(receiver.count("/private"), 0, "a blocked target was called");
    assert!(worker.stop().await.unwrap().success());
    fleet.cleanup().await;
}

/// The smallest body of docs/contract.md §1 for an event published by a plain AMQP client.
fn minimal_body(id: &str) -> Vec<u8> {
    format!(r#"{{"id":"{id}","type":"log.blocked","data":{{}}}}"#).into_bytes()
}

/// Checks every header of docs/contract.md §3 except the signature.
fn assert_contract_headers(request: &Arrival, id: &str, user_agent: &str) {
    assert_eq!(request.method, "POST");
    assert_eq!(request.header("content-type"), "application/json");
    assert_eq!(request.header("user-agent"), user_agent);
    assert_eq!(request.header("webhook-id"), id);
    let timestamp: u64 = request.header("webhook-timestamp").parse().unwrap();
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    assert!(
        timestamp.abs_diff(now) <= 60,
        "webhook-timestamp {timestamp} is not now ({now})"
    );
    let signature = request.header("webhook-signature");
    assert!(
        signature.split(' ').all(|s| s.starts_with("v1,")),
        "{signature}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_cluster_url_list_gets_past_a_node_that_is_down() {
    // Two "nodes" of which one refuses connections: the worker and the publisher each start
    // from a random one and move on to the next.
    let nodes = "amqp://guest:guest@127.0.0.1:1/%2f, amqp://guest:guest@127.0.0.1:5672/%2f";
    let fleet = Fleet::new().env("HOOKFLEET_AMQP_URL", nodes);
    let receiver = Receiver::start().await.unwrap();
    fleet
        .add_endpoint("acme", &receiver.url("/hook"), &[BLOCKED])
        .await;
    let worker = fleet.spawn_worker().await;
    for _ in 0..3 {
        fleet.publish(BLOCKED, "acme", "{}").await;
    }
    wait_until(WAIT, "three deliveries", || receiver.count("/hook") == 3).await;
    assert!(worker.stop().await.unwrap().success());
    fleet.cleanup().await;
}
