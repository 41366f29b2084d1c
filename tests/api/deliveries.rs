//! What workers do with what the API set up: the attempt log, rotated secrets, repeated
//! event ids, dead letters, secrets sealed at rest.

use redis::AsyncCommands;
use reqwest::Method;
use serde_json::{Value, json};

use super::{BLOCKED, SEALING_KEY, id_of, wrong_fields};
use crate::util::{Fleet, Receiver, Reply, WAIT, reference_verifies, wait_for_result, wait_until};

#[tokio::test(flavor = "multi_thread")]
async fn the_attempt_log_shows_a_workers_retries_in_order() {
    let fleet = Fleet::new();
    let receiver = Receiver::start().await.unwrap();
    receiver.enqueue("/flaky", [Reply::status(503), Reply::status(503)]);
    let api = fleet.spawn_api().await;
    let endpoint = api
        .create_endpoint("acme", &receiver.url("/flaky"), &[BLOCKED])
        .await;
    let worker = fleet.spawn_worker().await;

    let event = json!({"type": BLOCKED, "tenant": "acme", "data": {"n": 1}});
    let event_id = api.publish(event).await;
    wait_until(WAIT, "the third attempt", || receiver.count("/flaky") == 3).await;
    wait_for_result(&worker, "delivered", 1.0).await;

    let path = format!("/v1/endpoints/{}/attempts", id_of(&endpoint));
    let answer = api.operator(Method::GET, &path, None).await;
    assert_eq!(answer.status, 200, "{:?}", answer.body);
    let log = answer.body.as_array().unwrap();
    let numbers: Vec<u64> = log.iter().map(|a| a["attempt"].as_u64().unwrap()).collect();
    assert_eq!(numbers, [3, 2, 1], "{log:?}");
    for attempt in log {
        assert_eq!(attempt["event_id"], event_id.as_str(), "{attempt}");
        assert_eq!(attempt["event_type"], BLOCKED, "{attempt}");
        assert_eq!(attempt["source"], "worker", "{attempt}");
    }
    assert_eq!(log[0]["status"], 200, "{log:?}");
    assert!(log[0]["error"].is_null(), "{log:?}");
    for failed in &log[1..] {
        assert_eq!(failed["status"], 503, "{failed}");
        assert_eq!(failed["error"], "non_success_status", "{failed}");
    }

    let first_page = api
        .operator(Method::GET, &format!("{path}?limit=1"), None)
        .await;
    assert_eq!(
        first_page.body.as_array().unwrap().len(),
        1,
        "{:?}",
        first_page.body
    );
    assert_eq!(first_page.body[0], log[0]);
    let newest = id_of(&log[0]);
    let older = api
        .operator(Method::GET, &format!("{path}?before={newest}"), None)
        .await;
    assert_eq!(older.status, 200, "{:?}", older.body);
    assert_eq!(older.body.as_array().unwrap().as_slice(), &log[1..]);

    assert!(worker.stop().await.unwrap().success());
    api.process.stop().await.unwrap();
    fleet.cleanup().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_rotated_secret_signs_beside_the_old_one() {
    let fleet = Fleet::new();
    let receiver = Receiver::start().await.unwrap();
    let api = fleet.spawn_api().await;
    let endpoint = api
        .create_endpoint("acme", &receiver.url("/hook"), &[BLOCKED])
        .await;
    let old = endpoint["secret"].as_str().unwrap().to_owned();
    let rotate = format!("/v1/endpoints/{}/rotate-secret", id_of(&endpoint));

    let rotated = api.operator(Method::POST, &rotate, None).await;
    assert_eq!(rotated.status, 200, "{:?}", rotated.body);
    let new = rotated.body["secret"].as_str().unwrap().to_owned();
    assert!(new.starts_with("whsec_"), "{:?}", rotated.body);
    assert_ne!(new, old);
    assert!(
        rotated.body["previous_secret_until"].is_string(),
        "{:?}",
        rotated.body
    );

    let worker = fleet.spawn_worker().await;
    let event = json!({"type": BLOCKED, "tenant": "acme", "data": {"note": "Zoë"}});
    api.publish(event).await;
    wait_until(WAIT, "the delivery", || receiver.count("/hook") == 1).await;
    let request = &receiver.requests("/hook")[0];
    let signatures: Vec<&str> = request.header("webhook-signature").split(' ').collect();
    assert_eq!(signatures.len(), 2, "{signatures:?}");
    assert!(
        signatures.iter().all(|s| s.starts_with("v1,")),
        "{signatures:?}"
    );
    for (name, secret) in [("old", &old), ("new", &new)] {
        assert!(
            crate::util::verify_signature(secret, &request.headers, &request.body),
            "the {name} secret does not verify"
        );
        if let Err(error) = reference_verifies(secret, request).await {
            panic!(
                "the reference library refused the {name} secret (or is missing: pip install standardwebhooks): {error}"
            );
        }
    }

    let same = api
        .operator(Method::POST, &rotate, Some(json!({"secret": new})))
        .await;
    assert_eq!(wrong_fields(&same), ["secret"]);

    assert!(worker.stop().await.unwrap().success());
    api.process.stop().await.unwrap();
    fleet.cleanup().await;
}

/// `POST /v1/events` is idempotent for 24 h: the same id and content is answered 202 again and
/// not published again; another event under that id is 409. An id repeated past the API
/// (straight to RabbitMQ) is still delivered once, by the workers' marks.
#[tokio::test(flavor = "multi_thread")]
async fn a_repeated_event_id_is_published_and_delivered_once() {
    let fleet = Fleet::new();
    let receiver = Receiver::start().await.unwrap();
    let api = fleet.spawn_api().await;
    api.create_endpoint("acme", &receiver.url("/once"), &[BLOCKED])
        .await;
    let worker = fleet.spawn_worker().await;

    let event = json!({"type": BLOCKED, "tenant": "acme", "data": {"n": 1}, "id": "evt_api_dup_1"});
    assert_eq!(api.publish(event.clone()).await, "evt_api_dup_1");
    wait_until(WAIT, "the delivery", || receiver.count("/once") == 1).await;
    assert_eq!(api.publish(event.clone()).await, "evt_api_dup_1");
    let mut other = event.clone();
    other["data"] = json!({"n": 2});
    let conflict = api.operator(Method::POST, "/v1/events", Some(other)).await;
    assert_eq!(conflict.status, 409, "{:?}", conflict.body);
    assert_eq!(conflict.body["error"]["code"], "conflict");
    // Published after the repeat: once it is delivered, a published repeat would have been
    // handled (one queue, in order).
    let marker = json!({"type": BLOCKED, "tenant": "acme", "data": {"marker": true}});
    api.publish(marker).await;
    wait_until(WAIT, "the marker", || receiver.count("/once") == 2).await;
    let duplicates = worker.metric("hookfleet_deliveries_total", &[("result", "duplicate")]);
    assert_eq!(
        duplicates.await.unwrap_or(0.0),
        0.0,
        "the repeat was published"
    );

    let body = br#"{"id":"evt_api_dup_1","type":"log.blocked","data":{"n":1}}"#;
    fleet
        .publish_raw(BLOCKED, "acme", "evt_api_dup_1", body)
        .await;
    wait_for_result(&worker, "duplicate", 1.0).await;
    assert_eq!(receiver.count("/once"), 2);
    assert_eq!(
        receiver.requests("/once")[0].header("webhook-id"),
        "evt_api_dup_1"
    );

    let unknown = json!({"type": "no.such", "tenant": "acme", "data": {}});
    let refused = api
        .operator(Method::POST, "/v1/events", Some(unknown))
        .await;
    assert_eq!(wrong_fields(&refused), ["type"]);

    assert!(worker.stop().await.unwrap().success());
    api.process.stop().await.unwrap();
    fleet.cleanup().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn dead_letters_list_and_replay_through_the_api() {
    // One retry, soon: a failing delivery is dead-lettered after two attempts.
    let fleet = Fleet::new().env("HOOKFLEET_RETRY_DELAYS", "100ms");
    let receiver = Receiver::start().await.unwrap();
    receiver.set_default("/down", Reply::status(500));
    let api = fleet.spawn_api().await;
    let endpoint = api
        .create_endpoint("acme", &receiver.url("/down"), &[BLOCKED])
        .await;
    let endpoint_id = id_of(&endpoint);
    let worker = fleet.spawn_worker().await;

    let event = json!({"type": BLOCKED, "tenant": "acme", "data": {"n": 7}});
    let event_id = api.publish(event).await;
    wait_for_result(&worker, "dead_lettered", 1.0).await;
    assert_eq!(receiver.count("/down"), 2, "1 attempt + 1 retry");

    let listed = api.operator(Method::GET, "/v1/dead-letters", None).await;
    assert_eq!(listed.status, 200, "{:?}", listed.body);
    let letters = listed.body.as_array().unwrap();
    assert_eq!(letters.len(), 1, "{letters:?}");
    assert_eq!(letters[0]["endpoint"], endpoint_id.as_str());
    assert_eq!(letters[0]["event_id"], event_id.as_str());
    assert_eq!(letters[0]["attempts"], 2);
    assert_eq!(letters[0]["last_status"], 500);
    assert_eq!(letters[0]["payload"]["data"], json!({"n": 7}));
    // Listing leaves them where they are.
    let again = api
        .operator(Method::GET, "/v1/dead-letters?limit=10", None)
        .await;
    assert_eq!(again.body.as_array().unwrap().len(), 1, "{:?}", again.body);

    receiver.set_default("/down", Reply::status(200));
    let replay = api
        .operator(
            Method::POST,
            "/v1/dead-letters/replay",
            Some(json!({"endpoint": endpoint_id})),
        )
        .await;
    assert_eq!(replay.status, 200, "{:?}", replay.body);
    assert_eq!(replay.body["replayed"], 1, "{:?}", replay.body);
    wait_until(WAIT, "the replayed delivery", || {
        receiver.count("/down") == 3
    })
    .await;
    assert_eq!(receiver.requests("/down")[2].header("webhook-id"), event_id);
    wait_for_result(&worker, "delivered", 1.0).await;
    let after = api.operator(Method::GET, "/v1/dead-letters", None).await;
    assert_eq!(after.status, 200, "{:?}", after.body);
    assert_eq!(after.body, json!([]), "replayed letters stay removed");

    assert!(worker.stop().await.unwrap().success());
    api.process.stop().await.unwrap();
    fleet.cleanup().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn secrets_are_sealed_at_rest_and_still_sign() {
    let fleet = Fleet::new();
    let receiver = Receiver::start().await.unwrap();
    let key = [("HOOKFLEET_SECRET_KEY", SEALING_KEY)];
    let api = fleet.spawn_api_with(&key).await;
    let endpoint = api
        .create_endpoint("acme", &receiver.url("/hook"), &[BLOCKED])
        .await;
    let id = id_of(&endpoint);
    let secret = endpoint["secret"].as_str().unwrap().to_owned();

    let redis = redis::Client::open(hookfleet_testkit::REDIS_URL).unwrap();
    let mut conn = redis.get_multiplexed_async_connection().await.unwrap();
    let hash = format!("{{{}:endpoints}}:tenant:acme", fleet.namespace());
    let stored: Option<String> = conn.hget(&hash, &id).await.unwrap();
    let stored = stored.unwrap_or_else(|| panic!("no record {id} in {hash}"));
    let encoded = secret.strip_prefix("whsec_").unwrap();
    assert!(
        !stored.contains(encoded),
        "the secret is stored in clear: {stored}"
    );
    let record: Value = serde_json::from_str(&stored).unwrap();
    assert!(
        record["secret"].as_str().unwrap().starts_with("enc:v2:"),
        "{record}"
    );

    // A worker without the key cannot sign: the event must wait, not be dropped.
    let keyless = fleet.spawn_worker().await;
    let event = json!({"type": BLOCKED, "tenant": "acme", "data": {"sealed": true}});
    api.publish(event).await;
    wait_until(WAIT, "the keyless worker to name the missing key", || {
        keyless.log().contains("HOOKFLEET_SECRET_KEY")
    })
    .await;
    assert!(keyless.stop().await.unwrap().success());
    assert_eq!(receiver.count("/hook"), 0, "sent without its secret");

    let worker = fleet.spawn_worker_with(&key).await;
    wait_until(WAIT, "the delivery", || receiver.count("/hook") == 1).await;
    let request = &receiver.requests("/hook")[0];
    assert!(
        crate::util::verify_signature(&secret, &request.headers, &request.body),
        "the delivery does not verify with the secret given at create"
    );

    let without = fleet.run(&["endpoints", "get", &id]).await;
    let stderr = String::from_utf8_lossy(&without.stderr);
    assert!(
        !without.status.success(),
        "read a sealed secret without the key"
    );
    assert!(stderr.contains("HOOKFLEET_SECRET_KEY"), "{stderr}");
    let with = fleet.run_with(&key, &["endpoints", "get", &id]).await;
    assert!(
        with.status.success(),
        "{}",
        String::from_utf8_lossy(&with.stderr)
    );
    let shown: Value = serde_json::from_slice(&with.stdout).unwrap();
    assert_eq!(shown["id"], id.as_str());

    assert!(worker.stop().await.unwrap().success());
    api.process.stop().await.unwrap();
    fleet.cleanup().await;
}

/// The sealing key changes without a pause: the new key seals, the old one (in
/// `HOOKFLEET_SECRET_KEY_PREVIOUS`) still opens, `endpoints reseal` moves every record to the
/// new key (resumably), and then workers need the new key only. URLs with credentials are
/// sealed too.
#[tokio::test(flavor = "multi_thread")]
async fn the_sealing_key_can_be_changed_and_every_record_resealed() {
    const NEW_KEY: &str = "ICEiIyQlJicoKSorLC0uLzAxMjM0NTY3ODk6Ozw9Pj8=";
    let fleet = Fleet::new();
    let receiver = Receiver::start().await.unwrap();
    let plain = fleet.spawn_api().await;
    assert!(
        plain
            .process
            .log()
            .contains("HOOKFLEET_SECRET_KEY is not set"),
        "no warning that secrets are stored in plain text"
    );
    let in_clear = plain
        .create_endpoint("acme", &receiver.url("/clear"), &[BLOCKED])
        .await;
    plain.process.stop().await.unwrap();
    let old = [("HOOKFLEET_SECRET_KEY", SEALING_KEY)];
    let api = fleet.spawn_api_with(&old).await;
    let with_token = format!("{}?token=s3cret-in-the-query", receiver.url("/query"));
    let sealed = api.create_endpoint("acme", &with_token, &[BLOCKED]).await;
    api.process.stop().await.unwrap();

    let redis = redis::Client::open(hookfleet_testkit::REDIS_URL).unwrap();
    let mut conn = redis.get_multiplexed_async_connection().await.unwrap();
    let hash = format!("{{{}:endpoints}}:tenant:acme", fleet.namespace());
    let stored: String = conn.hget(&hash, id_of(&sealed)).await.unwrap();
    assert!(
        !stored.contains("s3cret"),
        "a URL with a token is stored in clear: {stored}"
    );

    let rotated = [
        ("HOOKFLEET_SECRET_KEY", NEW_KEY),
        ("HOOKFLEET_SECRET_KEY_PREVIOUS", SEALING_KEY),
    ];
    for expected in [
        json!({"resealed": 2, "current": 0, "failed": 0}),
        // Run again (as after an interruption): nothing left to do.
        json!({"resealed": 0, "current": 2, "failed": 0}),
    ] {
        let output = fleet.run_with(&rotated, &["endpoints", "reseal"]).await;
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(output.status.success(), "{stderr}");
        let done: Value = serde_json::from_slice(&output.stdout).unwrap();
        assert_eq!(done, expected);
    }
    let stored: String = conn.hget(&hash, id_of(&in_clear)).await.unwrap();
    let record: Value = serde_json::from_str(&stored).unwrap();
    assert!(
        record["secret"].as_str().unwrap().starts_with("enc:v2:"),
        "{record}"
    );

    // The old key is no longer needed.
    let worker = fleet
        .spawn_worker_with(&[("HOOKFLEET_SECRET_KEY", NEW_KEY)])
        .await;
    fleet.publish(BLOCKED, "acme", "{}").await;
    wait_until(WAIT, "both deliveries", || {
        receiver.count("/clear") == 1 && receiver.count("/query") == 1
    })
    .await;
    for (path, endpoint) in [("/clear", &in_clear), ("/query", &sealed)] {
        let request = &receiver.requests(path)[0];
        let secret = endpoint["secret"].as_str().unwrap();
        assert!(
            crate::util::verify_signature(secret, &request.headers, &request.body),
            "{path}: the resealed secret does not sign"
        );
    }
    assert!(worker.stop().await.unwrap().success());
    fleet.cleanup().await;
}
