//! Operational webhooks (docs/contract.md §3): hookfleet's own events reach an endpoint of the
//! operator tenant, signed like any delivery, each once per cause, with `data` that meets the
//! type's built-in schema; a storm of exhausted events is one notice; no tenant reaches the
//! operator tenant.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use reqwest::Method;
use serde_json::{Value, json};

use super::{BLOCKED, id_of, wrong_fields};
use crate::util::{Api, Fleet, Receiver, Reply, WAIT, reference_verifies, wait_until};

const OPERATOR: &str = "_operator";
/// Room for a 1,000-event backlog in a debug build.
const STORM_WAIT: Duration = Duration::from_secs(90);

/// Each notice that reached `path`, by type, checked: signed under `secret` (the Standard
/// Webhooks reference library), addressed to the operator tenant's endpoint, and its `data`
/// valid under the type's schema as `GET /v1/event-types` gives it.
async fn notices(
    api: &Api,
    receiver: &Receiver,
    path: &str,
    secret: &str,
) -> BTreeMap<String, Vec<Value>> {
    let listed = api.operator(Method::GET, "/v1/event-types", None).await;
    let schemas: BTreeMap<String, Value> = (listed.body.as_array().unwrap().iter())
        .filter(|t| t["schema"].is_object())
        .map(|t| (t["type"].as_str().unwrap().to_owned(), t["schema"].clone()))
        .collect();
    let mut by_type: BTreeMap<String, Vec<Value>> = BTreeMap::new();
    for arrival in receiver.requests(path) {
        reference_verifies(secret, &arrival).await.unwrap();
        let body: Value = serde_json::from_slice(&arrival.body).unwrap();
        let kind = body["type"].as_str().unwrap().to_owned();
        let validator = jsonschema::draft202012::new(&schemas[&kind]).unwrap();
        let faults: Vec<String> = (validator.iter_errors(&body["data"]))
            .map(|e| e.to_string())
            .collect();
        assert!(faults.is_empty(), "{kind}: {faults:?} in {body}");
        assert_eq!(arrival.header("webhook-id"), body["id"].as_str().unwrap());
        by_type.entry(kind).or_default().push(body["data"].clone());
    }
    by_type
}

/// An endpoint of the operator tenant for `events` at `path`; returns its secret.
async fn operator_endpoint(api: &Api, receiver: &Receiver, path: &str, events: &[&str]) -> String {
    let created = api
        .create_endpoint(OPERATOR, &receiver.url(path), events)
        .await;
    created["secret"].as_str().unwrap().to_owned()
}

#[tokio::test(flavor = "multi_thread")]
async fn endpoint_changes_reach_an_operator_endpoint_signed_once_each() {
    let fleet = Fleet::new().env("HOOKFLEET_ENDPOINT_CACHE_TTL", "0s");
    let receiver = Receiver::start().await.unwrap();
    let api = fleet.spawn_api().await;
    // Made before the worker runs: were it told (it is not: it is the operator's), it would
    // be the sixth notice.
    let secret = operator_endpoint(&api, &receiver, "/ops", &["*"]).await;
    let worker = fleet.spawn_worker().await;

    let token = api.tenant_token("acme").await;
    let new = json!({"url": receiver.url("/acme"), "events": [BLOCKED]});
    let created = api
        .call(Method::POST, "/v1/endpoints", Some(&token), Some(new))
        .await;
    assert_eq!(created.status, 201, "{:?}", created.body);
    let id = id_of(&created.body);
    let path = format!("/v1/endpoints/{id}");
    for patch in [
        json!({"url": receiver.url("/acme2"), "rate_limit": 5}),
        json!({"enabled": false}),
        json!({"enabled": true}),
    ] {
        let changed = api
            .call(Method::PATCH, &path, Some(&token), Some(patch))
            .await;
        assert_eq!(changed.status, 200, "{:?}", changed.body);
    }
    let removed = api.call(Method::DELETE, &path, Some(&token), None).await;
    assert!((200..300).contains(&removed.status), "{:?}", removed.body);

    wait_until(WAIT, "five notices", || receiver.count("/ops") >= 5).await;
    let told = notices(&api, &receiver, "/ops", &secret).await;
    let kinds: Vec<&str> = told.keys().map(String::as_str).collect();
    assert_eq!(
        kinds,
        [
            "endpoint.created",
            "endpoint.deleted",
            "endpoint.disabled",
            "endpoint.enabled",
            "endpoint.updated"
        ]
    );
    for (kind, data) in &told {
        assert_eq!(data.len(), 1, "{kind}: {data:?}");
        assert_eq!(data[0]["tenant"], "acme", "{kind}");
        assert_eq!(data[0]["endpoint_id"], id.as_str(), "{kind}");
    }
    assert_eq!(told["endpoint.created"][0]["events"], json!([BLOCKED]));
    assert_eq!(
        told["endpoint.updated"][0]["changed"],
        json!(["rate_limit", "url"])
    );
    assert_eq!(told["endpoint.disabled"][0]["by"], "tenant");
    assert_eq!(told["endpoint.enabled"][0]["by"], "tenant");
    worker.stop().await.unwrap();
    fleet.cleanup().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_failing_streak_is_told_once_and_its_recovery_once() {
    let fleet = Fleet::new()
        .env("HOOKFLEET_ENDPOINT_CACHE_TTL", "0s")
        .env("HOOKFLEET_CIRCUIT_THRESHOLD", "3")
        .env("HOOKFLEET_CIRCUIT_COOLDOWN", "1s")
        .env("HOOKFLEET_RETRY_DELAYS", "1s,1s");
    let receiver = Receiver::start().await.unwrap();
    let api = fleet.spawn_api().await;
    let watched = [
        "message.attempt.failing",
        "message.attempt.recovered",
        "message.attempt.exhausted",
    ];
    let secret = operator_endpoint(&api, &receiver, "/ops", &watched).await;
    // Three 500s, then 200s: three events fail once each, the third failure in a row opens
    // the circuit, and the probe after the cool-down succeeds.
    receiver.enqueue(
        "/flaky",
        [Reply::status(500), Reply::status(500), Reply::status(500)],
    );
    let endpoint = (api.create_endpoint("acme", &receiver.url("/flaky"), &[BLOCKED])).await;
    let worker = fleet.spawn_worker().await;
    let mut ids = Vec::new();
    for n in 0..3 {
        ids.push(
            api.publish(json!({"type": BLOCKED, "tenant": "acme", "data": {"n": n}}))
                .await,
        );
    }
    wait_until(Duration::from_secs(30), "all three delivered", || {
        ids.iter().all(|id| receiver.seen("/flaky", id).ok == 1)
    })
    .await;
    wait_until(WAIT, "failing and recovered", || {
        receiver.count("/ops") >= 2
    })
    .await;
    let told = notices(&api, &receiver, "/ops", &secret).await;
    let kinds: Vec<&str> = told.keys().map(String::as_str).collect();
    assert_eq!(
        kinds,
        ["message.attempt.failing", "message.attempt.recovered"]
    );
    let failing = &told["message.attempt.failing"];
    assert_eq!(failing.len(), 1, "{failing:?}");
    assert_eq!(failing[0]["endpoint_id"], endpoint["id"]);
    assert_eq!(failing[0]["failures"], 3);
    assert_eq!(failing[0]["last_status"], 500);
    assert!(ids.contains(&failing[0]["event_id"].as_str().unwrap().to_owned()));
    let recovered = &told["message.attempt.recovered"];
    assert_eq!(recovered.len(), 1, "{recovered:?}");
    assert_eq!(recovered[0]["last_status"], 200);
    assert_eq!(recovered[0]["attempt"], 2, "the retry succeeded");
    worker.stop().await.unwrap();
    fleet.cleanup().await;
}

/// 1,000 events given up at one endpoint make one `message.attempt.exhausted`: the storm
/// bound tells each endpoint at most once a minute. The endpoint answers 400, which is
/// retried (on the tests' short schedule) but does not open its circuit, so every event uses
/// up its retries.
#[tokio::test(flavor = "multi_thread")]
async fn a_thousand_exhausted_events_make_one_notice() {
    let fleet = Fleet::new().env("HOOKFLEET_ENDPOINT_CACHE_TTL", "0s");
    let receiver = Receiver::start().await.unwrap();
    receiver.set_default("/refuses", Reply::status(400));
    let api = fleet.spawn_api().await;
    let secret = operator_endpoint(&api, &receiver, "/ops", &["message.attempt.exhausted"]).await;
    api.create_endpoint("acme", &receiver.url("/refuses"), &[BLOCKED])
        .await;
    let worker = fleet.spawn_worker().await;

    let namespace = fleet.namespace().parse().unwrap();
    let publisher = Arc::new(
        hookfleet_producer::Publisher::connect(hookfleet_testkit::AMQP_URL, namespace)
            .await
            .unwrap(),
    );
    futures_util::stream::iter(0..1000)
        .map(|n| {
            let publisher = publisher.clone();
            async move {
                let event = hookfleet_producer::OutboundEvent::new(
                    BLOCKED.parse().unwrap(),
                    "acme".parse().unwrap(),
                    &json!({"n": n}),
                    None,
                );
                publisher.publish(&event).await.unwrap();
            }
        })
        .buffer_unordered(50)
        .collect::<Vec<()>>()
        .await;
    let dead = [("event_type", BLOCKED), ("result", "dead_lettered")];
    (worker.wait_for_metric("hookfleet_deliveries_total", &dead, 1000.0, STORM_WAIT))
        .await
        .unwrap();
    let delivered = [
        ("event_type", "message.attempt.exhausted"),
        ("result", "delivered"),
    ];
    (worker.wait_for_metric("hookfleet_deliveries_total", &delivered, 1.0, WAIT))
        .await
        .unwrap();
    let published = [("event_type", "message.attempt.exhausted")];
    let told = worker.metric("hookfleet_published_total", &published).await;
    assert_eq!(told, Some(1.0), "one notice published for 1,000 exhausted");
    let told = notices(&api, &receiver, "/ops", &secret).await;
    let exhausted = &told["message.attempt.exhausted"];
    assert_eq!(exhausted.len(), 1, "{exhausted:?}");
    assert_eq!(exhausted[0]["suppressed"], 0);
    assert_eq!(exhausted[0]["last_status"], 400);
    let reason = exhausted[0]["reason"].as_str().unwrap();
    assert!(reason.starts_with("gave up after"), "{reason}");
    worker.stop().await.unwrap();
    fleet.cleanup().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn no_tenant_reaches_the_operator_tenant_and_types_are_reserved() {
    let fleet = Fleet::new();
    let receiver = Receiver::start().await.unwrap();
    let api = fleet.spawn_api().await;

    let mint = format!("/v1/tenants/{OPERATOR}/tokens");
    let minted = api.operator(Method::POST, &mint, None).await;
    assert_eq!(wrong_fields(&minted), ["tenant"]);

    let token = api.tenant_token("acme").await;
    let subscribe = json!({"url": receiver.url("/x"), "events": ["endpoint.disabled"]});
    let refused = (api.call(Method::POST, "/v1/endpoints", Some(&token), Some(subscribe))).await;
    assert_eq!(wrong_fields(&refused), ["events"]);
    let own = json!({"tenant": OPERATOR, "url": receiver.url("/x"), "events": ["*"]});
    let refused = (api.call(Method::POST, "/v1/endpoints", Some(&token), Some(own))).await;
    assert_eq!(wrong_fields(&refused), ["tenant"]);
    let customer_type = json!({"tenant": OPERATOR, "url": receiver.url("/x"), "events": [BLOCKED]});
    let refused = (api.operator(Method::POST, "/v1/endpoints", Some(customer_type))).await;
    assert_eq!(wrong_fields(&refused), ["events"]);
    let ordered =
        json!({"tenant": OPERATOR, "url": receiver.url("/x"), "events": ["*"], "ordered": true});
    let refused = (api.operator(Method::POST, "/v1/endpoints", Some(ordered))).await;
    assert_eq!(wrong_fields(&refused), ["ordered"]);

    let forged = json!({"type": "endpoint.created", "tenant": "acme", "data": {}});
    let refused = api.operator(Method::POST, "/v1/events", Some(forged)).await;
    assert_eq!(wrong_fields(&refused), ["type"]);
    let to_operator = json!({"type": BLOCKED, "tenant": OPERATOR, "data": {}});
    let refused = api
        .operator(Method::POST, "/v1/events", Some(to_operator))
        .await;
    assert_eq!(wrong_fields(&refused), ["tenant"]);

    let names = |answer: &Value| -> Vec<String> {
        (answer.as_array().unwrap().iter())
            .map(|t| t["type"].as_str().unwrap().to_owned())
            .collect()
    };
    let seen_by_tenant = api
        .call(Method::GET, "/v1/event-types", Some(&token), None)
        .await;
    assert!(
        !names(&seen_by_tenant.body)
            .iter()
            .any(|t| t.starts_with("endpoint."))
    );
    let seen_by_operator = api.operator(Method::GET, "/v1/event-types", None).await;
    assert!(names(&seen_by_operator.body).contains(&"message.attempt.failing".to_owned()));
    let describe = json!({"description": "mine now"});
    let refused = (api.operator(
        Method::PUT,
        "/v1/event-types/endpoint.created",
        Some(describe),
    ))
    .await;
    assert_eq!(refused.status, 404, "{:?}", refused.body);

    // Test Webhook of an operator endpoint sends the type's built-in example.
    let ops = api
        .create_endpoint(OPERATOR, &receiver.url("/ops"), &["*"])
        .await;
    let test = format!("/v1/endpoints/{}/test", id_of(&ops));
    let sent = (api.operator(
        Method::POST,
        &test,
        Some(json!({"event_type": "endpoint.disabled"})),
    ))
    .await;
    assert_eq!(sent.status, 200, "{:?}", sent.body);
    let arrival = &receiver.requests("/ops")[0];
    let body: Value = serde_json::from_slice(&arrival.body).unwrap();
    assert_eq!(body["type"], "endpoint.disabled");
    assert_eq!(body["data"]["by"], "breaker");
    fleet.cleanup().await;
}
