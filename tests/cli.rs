//! The command line's contract (§4) beyond delivery: its errors (undeclared types, bad
//! settings) and the endpoint commands' JSON.

use serde_json::{Value, json};

use crate::util::Fleet;

const BLOCKED: &str = "log.blocked";

#[tokio::test(flavor = "multi_thread")]
async fn publishing_an_undeclared_type_fails_clearly() {
    // The topology was never declared: the exchange does not exist.
    let fleet = Fleet::new();
    let args = [
        "publish", "--type", BLOCKED, "--tenant", "acme", "--data", "{}",
    ];
    let output = fleet.run(&args).await;
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "publish succeeded");
    assert!(stderr.contains("does not exist"), "stderr: {stderr}");
    assert!(
        output.stdout.is_empty(),
        "printed an id for a failed publish"
    );

    // A type outside the catalog the topology was declared with.
    let fleet = fleet.env("HOOKFLEET_EVENT_TYPES", BLOCKED);
    fleet.topology().await;
    let args = [
        "publish",
        "--type",
        "approval.approved",
        "--tenant",
        "acme",
        "--data",
        "{}",
    ];
    let output = fleet.run(&args).await;
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "publish succeeded");
    assert!(stderr.contains("approval.approved"), "stderr: {stderr}");
    assert!(
        output.stdout.is_empty(),
        "printed an id for a failed publish"
    );
    fleet.cleanup().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_settings_exit_2_with_one_line_naming_the_setting() {
    let fleet = Fleet::new();
    for (setting, value) in [
        ("HOOKFLEET_DELIVERY_TIMEOUT", "banana"),
        ("HOOKFLEET_MAX_INFLIGHT", "0"),
        ("HOOKFLEET_MAX_INFLIGHT", "many"),
        ("HOOKFLEET_QUEUE_TYPE", "foo"),
        ("HOOKFLEET_NAMESPACE", "bad ns"),
        ("HOOKFLEET_RETRY_DELAYS", "soon"),
        ("HOOKFLEET_ALLOW_PRIVATE_TARGETS", "maybe"),
        ("HOOKFLEET_ALLOWED_PORTS", "70000"),
        ("HOOKFLEET_ALLOWED_PORTS", "9000-80"),
        ("HOOKFLEET_SECRET_KEY_PREVIOUS", "not-a-key"),
    ] {
        fleet.assert_refused(setting, value, &["worker"]).await;
    }
    for (setting, value) in [
        ("HOOKFLEET_MAX_ENDPOINTS_PER_TENANT", "0"),
        ("HOOKFLEET_TEST_RATE", "lots"),
        ("HOOKFLEET_API_HEADER_TIMEOUT", "0s"),
        ("HOOKFLEET_API_MAX_CONNECTIONS", "0"),
    ] {
        fleet.assert_refused(setting, value, &["api"]).await;
    }
    fleet.cleanup().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn endpoint_commands_round_trip_as_json() {
    let fleet = Fleet::new();
    let json_of = |stdout: String| serde_json::from_str::<Value>(stdout.trim()).unwrap();
    let secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    let added = json_of(
        fleet
            .run_ok(&[
                "endpoints",
                "add",
                "--tenant",
                "acme",
                "--url",
                "http://127.0.0.1:9/orders",
                "--events",
                "log.blocked,approval.approved",
                "--secret",
                secret,
                "--description",
                "orders service",
            ])
            .await,
    );
    let id = added["id"].as_str().unwrap().to_owned();
    assert!(!id.is_empty());
    assert_eq!(added["tenant"], "acme");
    assert_eq!(added["url"], "http://127.0.0.1:9/orders");
    // A set of types: its order is not part of the contract.
    let mut events: Vec<&str> = (added["events"].as_array().unwrap().iter())
        .filter_map(Value::as_str)
        .collect();
    events.sort_unstable();
    assert_eq!(events, ["approval.approved", "log.blocked"]);
    assert_eq!(added["secret"], secret);
    assert_eq!(added["enabled"], true);
    assert_eq!(added["description"], "orders service");
    assert!(added["created_at"].is_string(), "{added}");

    let other = fleet
        .add_endpoint("globex", "http://127.0.0.1:9/all", &["*"])
        .await;
    assert_eq!(other["events"], json!(["*"]));
    assert!(other["secret"].as_str().unwrap().starts_with("whsec_"));
    assert_ne!(other["id"], added["id"]);

    // Only `add` and `--reveal` print the secret; elsewhere it is masked.
    let mut masked = added.clone();
    masked["secret"] = json!("whsec_***");
    assert_eq!(
        json_of(fleet.run_ok(&["endpoints", "get", &id, "--reveal"]).await),
        added
    );
    assert_eq!(
        json_of(fleet.run_ok(&["endpoints", "get", &id]).await),
        masked
    );
    let acme = json_of(
        fleet
            .run_ok(&["endpoints", "list", "--tenant", "acme"])
            .await,
    );
    assert_eq!(acme, json!([masked.clone()]));
    let all = json_of(fleet.run_ok(&["endpoints", "list"]).await);
    let mut ids: Vec<&str> = all
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e["id"].as_str())
        .collect();
    ids.sort_unstable();
    let mut expected = vec![id.as_str(), other["id"].as_str().unwrap()];
    expected.sort_unstable();
    assert_eq!(ids, expected);

    let disabled = json_of(fleet.run_ok(&["endpoints", "disable", &id]).await);
    assert_eq!(disabled["enabled"], false);
    assert_eq!(disabled["id"], id.as_str());
    let got = json_of(fleet.run_ok(&["endpoints", "get", &id]).await);
    assert_eq!(got["enabled"], false);
    let enabled = json_of(fleet.run_ok(&["endpoints", "enable", &id]).await);
    assert_eq!(enabled, masked, "enable restores the endpoint as created");

    let removed = json_of(fleet.run_ok(&["endpoints", "remove", &id]).await);
    assert_eq!(removed["id"], id.as_str());
    let gone = fleet.run(&["endpoints", "get", &id]).await;
    assert!(!gone.status.success(), "a removed endpoint is still found");
    let acme = json_of(
        fleet
            .run_ok(&["endpoints", "list", "--tenant", "acme"])
            .await,
    );
    assert_eq!(acme, json!([]));
    fleet.cleanup().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn endpoints_test_sends_one_signed_test_event_and_reports_it() {
    let fleet = Fleet::new();
    let receiver = crate::util::Receiver::start().await.unwrap();
    receiver.set_default("/down", crate::util::Reply::status(503));
    let up = fleet
        .add_endpoint("acme", &receiver.url("/up"), &["*"])
        .await;
    let down = fleet
        .add_endpoint("acme", &receiver.url("/down"), &["*"])
        .await;

    let report: Value = serde_json::from_str(
        fleet
            .run_ok(&["endpoints", "test", up["id"].as_str().unwrap()])
            .await
            .trim(),
    )
    .unwrap();
    assert_eq!(report["delivered"], true, "{report}");
    assert_eq!(report["status"], 200);
    assert!(report["latency_ms"].is_u64());
    let request = &receiver.requests("/up")[0];
    let body: Value = serde_json::from_slice(&request.body).unwrap();
    assert_eq!(body["type"], "webhook.test");
    assert_eq!(body["data"]["endpoint_id"], up["id"]);
    let secret = up["secret"].as_str().unwrap();
    assert!(crate::util::verify_signature(
        secret,
        &request.headers,
        &request.body
    ));

    let failed = fleet
        .run(&["endpoints", "test", down["id"].as_str().unwrap()])
        .await;
    assert_eq!(failed.status.code(), Some(1), "a failed test exits 1");
    let report: Value = serde_json::from_slice(&failed.stdout).unwrap();
    assert_eq!(report["delivered"], false);
    assert_eq!(report["status"], 503);
    assert_eq!(report["error_class"], "non_success_status");
    let error = report["error"].as_str().unwrap();
    assert!(error.contains("HTTP 503"), "{error}");

    fleet.cleanup().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn rotate_secret_and_attempts_from_the_cli() {
    let fleet = Fleet::new();
    let receiver = crate::util::Receiver::start().await.unwrap();
    let endpoint = fleet
        .add_endpoint("acme", &receiver.url("/hook"), &["*"])
        .await;
    let id = endpoint["id"].as_str().unwrap();
    fleet.run_ok(&["endpoints", "test", id]).await;

    let lines = fleet.run_ok(&["endpoints", "attempts", id]).await;
    let attempts: Vec<Value> = lines
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(attempts.len(), 1, "{lines}");
    assert_eq!(attempts[0]["source"], "test");
    assert_eq!(attempts[0]["event_type"], "webhook.test");
    assert_eq!(attempts[0]["status"], 200);

    let old = endpoint["secret"].as_str().unwrap();
    let rotated: Value = serde_json::from_str(
        fleet
            .run_ok(&["endpoints", "rotate-secret", id])
            .await
            .trim(),
    )
    .unwrap();
    let new = rotated["secret"].as_str().unwrap();
    assert!(new.starts_with("whsec_") && new != old, "{rotated}");
    assert!(rotated["previous_secret_until"].is_string(), "{rotated}");
    let shown: Value =
        serde_json::from_str(fleet.run_ok(&["endpoints", "get", id]).await.trim()).unwrap();
    assert_eq!(shown["secret"], "whsec_***");

    fleet.run_ok(&["endpoints", "test", id]).await;
    let request = &receiver.requests("/hook")[1];
    for secret in [old, new] {
        assert!(crate::util::verify_signature(
            secret,
            &request.headers,
            &request.body
        ));
    }
    let bad = fleet
        .run(&["endpoints", "rotate-secret", id, "--secret", "nope"])
        .await;
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("secret"));
    fleet.cleanup().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn the_demo_delivers_everything_and_leaves_nothing_behind() {
    let fleet = Fleet::new();
    let output = fleet.run(&["demo", "--timeout", "25s"]).await;
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        stdout.contains("all 5 events delivered, every signature verified"),
        "{stdout}"
    );
    // log.failed is refused twice, so its third attempt is the one delivered.
    let row = stdout
        .lines()
        .find(|l| l.starts_with("log.failed"))
        .unwrap_or_else(|| panic!("no summary row: {stdout}"));
    assert!(row.contains(" 3 ") && row.contains("delivered"), "{row}");

    let namespace = stdout
        .lines()
        .next()
        .and_then(|l| l.split_whitespace().nth(4))
        .unwrap_or_else(|| panic!("no namespace in {stdout}"))
        .to_owned();
    let redis = redis::Client::open(hookfleet_testkit::REDIS_URL).unwrap();
    let mut conn = redis.get_multiplexed_async_connection().await.unwrap();
    let left: Vec<String> = redis::cmd("KEYS")
        .arg(format!("*{namespace}*"))
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(left, Vec::<String>::new(), "the demo left Redis keys");
    let broker = hookfleet_amqp::Broker::connect(hookfleet_testkit::AMQP_URL)
        .await
        .unwrap();
    let channel = broker.channel().await.unwrap();
    let passive = hookfleet_amqp::lapin::options::QueueDeclareOptions {
        passive: true,
        ..Default::default()
    };
    let dead = channel
        .queue_declare(
            format!("{namespace}.dead").as_str().into(),
            passive,
            Default::default(),
        )
        .await;
    assert!(dead.is_err(), "the demo left its dead-letter queue");
    broker.close().await;
    fleet.cleanup().await;
}
