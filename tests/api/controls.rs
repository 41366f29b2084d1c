//! Endpoint controls (docs/contract.md §2): custom and sensitive headers, the fleet-wide
//! rate limit, the endpoint's own in-flight cap, Ed25519 (`v1a`) signatures, payload filters.

use std::collections::HashSet;
use std::time::Duration;

use reqwest::Method;
use serde_json::{Value, json};

use super::{BLOCKED, SEALING_KEY, id_of, wrong_fields};
use crate::util::{
    Fleet, Receiver, Reply, WAIT, ed25519_verifies, metric_sum, reference_verifies, wait_until,
};

/// Headers reach the receiver beside the signature; a sensitive one is sealed in Redis and
/// masked when read; sent back masked it keeps its value; `null` removes them all.
#[tokio::test(flavor = "multi_thread")]
async fn custom_headers_are_sent_and_sensitive_ones_stay_hidden() {
    // Each change reaches the worker at once (the contract allows it 2 s).
    let fleet = Fleet::new().env("HOOKFLEET_ENDPOINT_CACHE_TTL", "0s");
    let receiver = Receiver::start().await.unwrap();
    let key = [("HOOKFLEET_SECRET_KEY", SEALING_KEY)];
    let api = fleet.spawn_api_with(&key).await;
    let new = json!({
        "tenant": "acme", "url": receiver.url("/hook"), "events": [BLOCKED],
        "headers": {"X-Api-Key": "k-secret-123", "X-Team": "red"},
        "sensitive_headers": ["x-api-key"],
    });
    let created = api.operator(Method::POST, "/v1/endpoints", Some(new)).await;
    assert_eq!(created.status, 201, "{:?}", created.body);
    let id = id_of(&created.body);
    let path = format!("/v1/endpoints/{id}");
    let shown = api.operator(Method::GET, &path, None).await.body;
    assert_eq!(
        shown["headers"],
        json!({"x-api-key": "********", "x-team": "red"})
    );
    assert_eq!(shown["sensitive_headers"], json!(["x-api-key"]));

    let redis = redis::Client::open(hookfleet_testkit::REDIS_URL).unwrap();
    let mut conn = redis.get_multiplexed_async_connection().await.unwrap();
    let hash = format!("{{{}:endpoints}}:tenant:acme", fleet.namespace());
    let stored: String = redis::AsyncCommands::hget(&mut conn, &hash, &id)
        .await
        .unwrap();
    assert!(
        !stored.contains("k-secret-123"),
        "stored in clear: {stored}"
    );

    let worker = fleet.spawn_worker_with(&key).await;
    api.publish(json!({"type": BLOCKED, "tenant": "acme", "data": {"n": 1}}))
        .await;
    wait_until(WAIT, "the first delivery", || receiver.count("/hook") == 1).await;
    let first = &receiver.requests("/hook")[0];
    assert_eq!(first.header("x-api-key"), "k-secret-123");
    assert_eq!(first.header("x-team"), "red");
    assert!(first.header("webhook-signature").starts_with("v1,"));

    // A client that read the endpoint sends its headers back, masked, with one changed.
    let mut headers = shown["headers"].clone();
    headers["x-team"] = json!("blue");
    let patch = json!({"headers": headers});
    let patched = api.operator(Method::PATCH, &path, Some(patch)).await;
    assert_eq!(patched.status, 200, "{:?}", patched.body);
    api.publish(json!({"type": BLOCKED, "tenant": "acme", "data": {"n": 2}}))
        .await;
    wait_until(WAIT, "the second delivery", || receiver.count("/hook") == 2).await;
    let second = &receiver.requests("/hook")[1];
    assert_eq!(
        second.header("x-api-key"),
        "k-secret-123",
        "the mask was stored"
    );
    assert_eq!(second.header("x-team"), "blue");

    let removed = (api.operator(Method::PATCH, &path, Some(json!({"headers": null})))).await;
    assert_eq!(removed.status, 200, "{:?}", removed.body);
    assert!(removed.body.get("headers").is_none(), "{:?}", removed.body);
    assert!(
        removed.body.get("sensitive_headers").is_none(),
        "{:?}",
        removed.body
    );

    assert!(worker.stop().await.unwrap().success());
    api.process.stop().await.unwrap();
    fleet.cleanup().await;
}

/// Bad headers are refused with 422 naming the field, at create and at update.
#[tokio::test(flavor = "multi_thread")]
async fn bad_headers_are_refused_with_their_field() {
    let fleet = Fleet::new();
    let api = fleet.spawn_api().await;
    let endpoint = (api.create_endpoint("acme", "http://127.0.0.1:9/hook", &[BLOCKED])).await;
    let path = format!("/v1/endpoints/{}", id_of(&endpoint));
    let many: serde_json::Map<String, Value> =
        (0..21).map(|i| (format!("x-h{i}"), json!("v"))).collect();
    let bad: [(Value, &str); 18] = [
        (json!({"headers": {"Webhook-Id": "x"}}), "headers"),
        (
            json!({"headers": {"Content-Type": "text/plain"}}),
            "headers",
        ),
        (json!({"headers": {"bad name": "x"}}), "headers"),
        (json!({"headers": {"x-a": "line\nbreak"}}), "headers"),
        (json!({"headers": {"x-a": "x".repeat(1025)}}), "headers"),
        (json!({"headers": many}), "headers"),
        (
            json!({"headers": {"x-a": "1"}, "sensitive_headers": ["x-b"]}),
            "sensitive_headers",
        ),
        (json!({"rate_limit": 0}), "rate_limit"),
        (json!({"rate_limit": 10_001}), "rate_limit"),
        (json!({"rate_limit": "fast"}), "rate_limit"),
        (json!({"max_in_flight": 0}), "max_in_flight"),
        (json!({"max_in_flight": 129}), "max_in_flight"),
        (json!({"max_in_flight": 1.5}), "max_in_flight"),
        (json!({"signature": "rsa"}), "signature"),
        (json!({"signature": ["ed25519"]}), "signature"),
        (json!({"filter": {"severity": {"$gtx": 1}}}), "filter"),
        (json!({"filter": ["severity"]}), "filter"),
        (json!({"filter": {"$or": []}}), "filter"),
    ];
    for (patch, field) in bad {
        let answer = api
            .operator(Method::PATCH, &path, Some(patch.clone()))
            .await;
        assert_eq!(wrong_fields(&answer), [field], "{patch}");
        let mut new = json!({"tenant": "acme", "url": "http://127.0.0.1:9/x", "events": ["*"]});
        for (name, value) in patch.as_object().unwrap() {
            new[name] = value.clone();
        }
        let answer = api.operator(Method::POST, "/v1/endpoints", Some(new)).await;
        assert_eq!(wrong_fields(&answer), [field], "{patch}");
    }
    api.process.stop().await.unwrap();
    fleet.cleanup().await;
}

/// The document's `integer` is JSON Schema's: a number without a fractional part, so `20.0`
/// is taken as 20, at create and at update; `2.5` is refused naming its field.
#[tokio::test(flavor = "multi_thread")]
async fn whole_numbers_written_with_a_fraction_are_integers() {
    let fleet = Fleet::new();
    let api = fleet.spawn_api().await;
    let new = json!({"tenant": "acme", "url": "http://127.0.0.1:9/x", "events": ["*"],
                     "rate_limit": 20.0, "max_in_flight": 4.0});
    let created = api.operator(Method::POST, "/v1/endpoints", Some(new)).await;
    assert_eq!(created.status, 201, "{:?}", created.body);
    assert_eq!(created.body["rate_limit"], 20);
    assert_eq!(created.body["max_in_flight"], 4);
    let path = format!("/v1/endpoints/{}", id_of(&created.body));
    let patch = json!({"rate_limit": 1e1, "max_in_flight": 2.0});
    let changed = api.operator(Method::PATCH, &path, Some(patch)).await;
    assert_eq!(changed.status, 200, "{:?}", changed.body);
    assert_eq!(changed.body["rate_limit"], 10);
    assert_eq!(changed.body["max_in_flight"], 2);
    let half = json!({"rate_limit": 2.5});
    let refused = api.operator(Method::PATCH, &path, Some(half)).await;
    assert_eq!(wrong_fields(&refused), ["rate_limit"]);
    let shown = api.operator(Method::GET, &path, None).await.body;
    assert_eq!(shown["rate_limit"], 10);
    api.process.stop().await.unwrap();
    fleet.cleanup().await;
}

/// Three workers share an endpoint's `rate_limit` of 10 a second: the receiver never sees more
/// than 11 requests in any one second, and every event arrives, once.
#[tokio::test(flavor = "multi_thread")]
async fn the_rate_limit_holds_across_the_fleet_and_nothing_is_lost() {
    const EVENTS: usize = 40;
    let fleet = Fleet::new();
    let receiver = Receiver::start().await.unwrap();
    let api = fleet.spawn_api().await;
    let new = json!({"tenant": "acme", "url": receiver.url("/limited"), "events": [BLOCKED],
                     "rate_limit": 10});
    let created = api.operator(Method::POST, "/v1/endpoints", Some(new)).await;
    assert_eq!(created.status, 201, "{:?}", created.body);
    assert_eq!(created.body["rate_limit"], 10);
    let workers = [
        fleet.spawn_worker().await,
        fleet.spawn_worker().await,
        fleet.spawn_worker().await,
    ];
    let mut ids = HashSet::new();
    for n in 0..EVENTS {
        let event = json!({"type": BLOCKED, "tenant": "acme", "data": {"n": n}});
        ids.insert(api.publish(event).await);
    }
    let all = Duration::from_secs(30);
    wait_until(all, "every event", || receiver.count("/limited") >= EVENTS).await;
    let arrivals = receiver.requests("/limited");
    let seen: HashSet<String> = (arrivals.iter())
        .map(|a| a.header("webhook-id").to_owned())
        .collect();
    assert_eq!((seen, arrivals.len()), (ids, EVENTS), "lost or repeated");
    let mut times: Vec<_> = arrivals.iter().map(|a| a.at).collect();
    times.sort();
    let busiest = (0..times.len())
        .map(|i| {
            times[i..]
                .iter()
                .take_while(|t| **t - times[i] < Duration::from_secs(1))
                .count()
        })
        .max()
        .unwrap();
    assert!(busiest <= 11, "{busiest} requests within one second");
    let mut deferred = 0.0;
    for worker in &workers {
        let labels = [("reason", "rate_limit")];
        let text = worker.metrics().await.unwrap_or_default();
        deferred += metric_sum(&text, "hookfleet_deliveries_deferred_total", &labels);
    }
    assert!(
        deferred > 0.0,
        "40 events at once, and none deferred by the rate limit?"
    );
    for worker in workers {
        assert!(worker.stop().await.unwrap().success());
    }
    api.process.stop().await.unwrap();
    fleet.cleanup().await;
}

/// `max_in_flight: 1` sends one request at a time to a slow receiver (per worker; one here).
#[tokio::test(flavor = "multi_thread")]
async fn max_in_flight_caps_the_endpoints_requests_at_once() {
    let fleet = Fleet::new();
    let receiver = Receiver::start().await.unwrap();
    let slow = Duration::from_millis(300);
    receiver.set_default("/one", Reply::status(200).delayed(slow));
    let api = fleet.spawn_api().await;
    let new = json!({"tenant": "acme", "url": receiver.url("/one"), "events": [BLOCKED],
                     "max_in_flight": 1});
    let created = api.operator(Method::POST, "/v1/endpoints", Some(new)).await;
    assert_eq!(created.status, 201, "{:?}", created.body);
    let worker = fleet.spawn_worker().await;
    for n in 0..5 {
        api.publish(json!({"type": BLOCKED, "tenant": "acme", "data": {"n": n}}))
            .await;
    }
    wait_until(Duration::from_secs(30), "5 deliveries", || {
        receiver.count("/one") >= 5
    })
    .await;
    let mut times: Vec<_> = receiver.requests("/one").iter().map(|a| a.at).collect();
    times.sort();
    for pair in times.windows(2) {
        // The next starts only once the one before was answered.
        assert!(
            pair[1] - pair[0] >= slow - Duration::from_millis(20),
            "{times:?}"
        );
    }
    assert!(worker.stop().await.unwrap().success());
    api.process.stop().await.unwrap();
    fleet.cleanup().await;
}

/// An Ed25519 endpoint's deliveries carry `v1a` signatures that Python's `cryptography`
/// verifies with its `public_key`; a rotation signs with both keys for the overlap, and a
/// switch back to HMAC keeps the Ed25519 key signing beside the new secret.
#[tokio::test(flavor = "multi_thread")]
async fn ed25519_signatures_verify_with_the_public_key_through_rotations() {
    let fleet = Fleet::new().env("HOOKFLEET_ENDPOINT_CACHE_TTL", "0s");
    let receiver = Receiver::start().await.unwrap();
    let api = fleet.spawn_api().await;
    let new = json!({"tenant": "acme", "url": receiver.url("/hook"), "events": [BLOCKED],
                     "signature": "ed25519"});
    let created = api.operator(Method::POST, "/v1/endpoints", Some(new)).await;
    assert_eq!(created.status, 201, "{:?}", created.body);
    assert_eq!(created.body["signature"], "ed25519");
    assert!(
        created.body["secret"]
            .as_str()
            .unwrap()
            .starts_with("whsk_")
    );
    let first_key = created.body["public_key"].as_str().unwrap().to_owned();
    assert!(first_key.starts_with("whpk_"), "{first_key}");
    let path = format!("/v1/endpoints/{}", id_of(&created.body));
    let worker = fleet.spawn_worker().await;
    let mut sent = 0;
    let mut deliver = async || {
        sent += 1;
        api.publish(json!({"type": BLOCKED, "tenant": "acme", "data": {"n": sent}}))
            .await;
        wait_until(WAIT, "the delivery", || receiver.count("/hook") == sent).await;
        receiver.requests("/hook")[sent - 1].clone()
    };

    let first = deliver().await;
    assert!(first.header("webhook-signature").starts_with("v1a,"));
    ed25519_verifies(&first_key, &first).await.unwrap();

    let rotated = (api.operator(Method::POST, &format!("{path}/rotate-secret"), None)).await;
    assert_eq!(rotated.status, 200, "{:?}", rotated.body);
    let second_key = rotated.body["public_key"].as_str().unwrap().to_owned();
    assert_ne!(second_key, first_key);
    let second = deliver().await;
    assert_eq!(
        second.header("webhook-signature").matches("v1a,").count(),
        2
    );
    ed25519_verifies(&second_key, &second).await.unwrap();
    ed25519_verifies(&first_key, &second).await.unwrap();

    let back = json!({"signature": "hmac-sha256"});
    let switched = api.operator(Method::PATCH, &path, Some(back)).await;
    assert_eq!(switched.status, 200, "{:?}", switched.body);
    assert!(
        switched.body.get("public_key").is_none(),
        "{:?}",
        switched.body
    );
    let secret = switched.body["secret"].as_str().unwrap().to_owned();
    assert!(secret.starts_with("whsec_"), "{secret}");
    let third = deliver().await;
    reference_verifies(&secret, &third).await.unwrap();
    ed25519_verifies(&second_key, &third).await.unwrap();

    // The check can fail: another endpoint's key does not verify.
    let other = api
        .operator(
            Method::POST,
            "/v1/endpoints",
            Some(json!({"tenant": "acme",
            "url": receiver.url("/other"), "events": [BLOCKED], "signature": "ed25519"})),
        )
        .await;
    let stranger = other.body["public_key"].as_str().unwrap();
    assert!(ed25519_verifies(stranger, &first).await.is_err());

    assert!(worker.stop().await.unwrap().success());
    api.process.stop().await.unwrap();
    fleet.cleanup().await;
}

/// A secret of the wrong kind for the scheme asked for is refused, naming the secret.
#[tokio::test(flavor = "multi_thread")]
async fn a_secret_must_match_its_signature_scheme() {
    let fleet = Fleet::new();
    let api = fleet.spawn_api().await;
    let new = json!({"tenant": "acme", "url": "http://127.0.0.1:9/x", "events": ["*"],
                     "signature": "ed25519", "secret": "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"});
    let answer = api.operator(Method::POST, "/v1/endpoints", Some(new)).await;
    assert_eq!(wrong_fields(&answer), ["secret"]);
    let key = "whsk_AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";
    let new = json!({"tenant": "acme", "url": "http://127.0.0.1:9/x", "events": ["*"],
                     "secret": key});
    let answer = api.operator(Method::POST, "/v1/endpoints", Some(new)).await;
    assert_eq!(answer.status, 201, "{:?}", answer.body);
    assert_eq!(
        answer.body["signature"], "ed25519",
        "the scheme follows the secret"
    );
    api.process.stop().await.unwrap();
    fleet.cleanup().await;
}

/// Only events whose `data` matches the filter reach the endpoint; the others count as
/// `filtered`, with no attempt; `POST /v1/filters/test` answers as the worker would; a bad
/// filter's error names the faulty operator's path; Test Webhook says when it is filtered.
#[tokio::test(flavor = "multi_thread")]
async fn a_payload_filter_picks_what_is_delivered() {
    let fleet = Fleet::new();
    let receiver = Receiver::start().await.unwrap();
    let api = fleet.spawn_api().await;
    let filter = json!({
        "severity": {"$in": ["high", "critical"]},
        "agent.team": "payments",
        "$not": {"rule": {"$startsWith": "test-"}},
    });
    let new = json!({"tenant": "acme", "url": receiver.url("/filtered"), "events": [BLOCKED],
                     "filter": filter});
    let created = api.operator(Method::POST, "/v1/endpoints", Some(new)).await;
    assert_eq!(created.status, 201, "{:?}", created.body);
    assert_eq!(created.body["filter"], filter);
    (api.create_endpoint("acme", &receiver.url("/all"), &[BLOCKED])).await;

    let cases = [
        (
            json!({"severity": "critical", "agent": {"team": "payments"}, "rule": "r-1"}),
            true,
        ),
        (
            json!({"severity": "low", "agent": {"team": "payments"}, "rule": "r-1"}),
            false,
        ),
        (
            json!({"severity": "high", "agent": {"team": "search"}, "rule": "r-1"}),
            false,
        ),
        (
            json!({"severity": "high", "agent": {"team": "payments"}, "rule": "test-9"}),
            false,
        ),
        (
            json!({"severity": "high", "agent": {"team": "payments"}}),
            true,
        ),
        (json!({"agent": {"team": "payments"}}), false),
    ];
    let mut wanted = HashSet::new();
    for (data, matches) in &cases {
        let trial = json!({"filter": filter, "data": data});
        let tried = (api.operator(Method::POST, "/v1/filters/test", Some(trial))).await;
        assert_eq!(tried.status, 200, "{:?}", tried.body);
        assert_eq!(tried.body["matches"], *matches, "{data}");
        let id = (api.publish(json!({"type": BLOCKED, "tenant": "acme", "data": data}))).await;
        if *matches {
            wanted.insert(id);
        }
    }
    let worker = fleet.spawn_worker().await;
    wait_until(WAIT, "every event at the unfiltered endpoint", || {
        receiver.count("/all") == cases.len()
    })
    .await;
    let labels = [("result", "filtered")];
    (worker
        .wait_for_metric("hookfleet_deliveries_total", &labels, 4.0, WAIT)
        .await)
        .unwrap();
    let got: HashSet<String> = (receiver.requests("/filtered").iter())
        .map(|a| a.header("webhook-id").to_owned())
        .collect();
    assert_eq!(got, wanted);
    assert_eq!(receiver.count("/filtered"), wanted.len(), "sent twice?");
    // The attempt log is written in batches a moment after the attempts: wait for it, then
    // check that it holds no more than the deliveries.
    let attempts = format!("/v1/endpoints/{}/attempts", id_of(&created.body));
    let deadline = std::time::Instant::now() + WAIT;
    let log = loop {
        let log = api.operator(Method::GET, &attempts, None).await.body;
        let logged = log.as_array().map_or(0, Vec::len);
        if logged >= wanted.len() || std::time::Instant::now() > deadline {
            break log;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(log.as_array().unwrap().len(), wanted.len(), "{log:?}");

    let bad = json!({"filter": {"agent": {"team": {"$gtx": 1}}}, "data": {}});
    let refused = api
        .operator(Method::POST, "/v1/filters/test", Some(bad))
        .await;
    assert_eq!(wrong_fields(&refused), ["filter"]);
    let message = refused.body["error"]["fields"][0]["message"]
        .as_str()
        .unwrap();
    assert!(message.contains("filter.agent.team.$gtx"), "{message}");

    let test = format!("/v1/endpoints/{}/test", id_of(&created.body));
    let tested = api.operator(Method::POST, &test, None).await;
    assert_eq!(tested.status, 200, "{:?}", tested.body);
    assert_eq!(tested.body["filtered"], true, "{:?}", tested.body);
    assert_eq!(tested.body["delivered"], false, "{:?}", tested.body);
    assert_eq!(
        receiver.count("/filtered"),
        wanted.len(),
        "the test was sent"
    );

    assert!(worker.stop().await.unwrap().success());
    api.process.stop().await.unwrap();
    fleet.cleanup().await;
}
