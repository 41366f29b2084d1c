//! The web console (`/` of `hookfleet api`) in headless Chromium: `tests/console/run.mjs`,
//! driven by Playwright (npm `playwright-core`) against a real API, worker and receiver. The
//! steps are in that script; this sets up what it needs and checks what reached the receiver.

use std::time::Duration;

use reqwest::Method;
use serde_json::json;

use crate::util::{Fleet, OPERATOR_TOKEN, Receiver, Reply, WAIT, wait_for_result, wait_until};

/// A bound on the browser run (it takes about 10 s).
const LIMIT: Duration = Duration::from_secs(180);

/// What the failing receiver answers: an error page whose first lines the console shows.
const ERROR_PAGE: &str =
    "upstream exploded\nat OrderService.handle (orders.js:42)\nat Router.dispatch";

#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs Chromium and npm's playwright-core (tests/console); scripts/test runs it"]
async fn the_console_does_what_a_customer_and_an_operator_need() {
    // One retry, soon, so that a delivery is dead-lettered quickly for the operator's screen.
    let fleet = Fleet::new().env("HOOKFLEET_RETRY_DELAYS", "100ms");
    let receiver = Receiver::start().await.unwrap();
    receiver.set_default("/fail", Reply::status(500).body(ERROR_PAGE));
    // Two failures (dead-lettered), then the replay succeeds.
    receiver.enqueue("/dead", [Reply::status(503), Reply::status(503)]);
    let api = fleet.spawn_api().await;
    let worker = fleet.spawn_worker().await;

    let globex = api
        .create_endpoint("globex", &receiver.url("/globex"), &["*"])
        .await;
    let dead = api
        .create_endpoint("ops", &receiver.url("/dead"), &["log.failed"])
        .await;
    let event = json!({"type": "log.failed", "tenant": "ops", "data": {"job": 7}});
    let published = api.operator(Method::POST, "/v1/events", Some(event)).await;
    assert_eq!(published.status, 202, "{:?}", published.body);
    wait_for_result(&worker, "dead_lettered", 1.0).await;
    let tenant_token = api.tenant_token("acme").await;
    let globex_token = api.tenant_token("globex").await;

    let screenshots = std::env::var("HOOKFLEET_SCREENSHOTS")
        .unwrap_or_else(|_| format!("{}/console-screenshots", env!("CARGO_TARGET_TMPDIR")));
    let run = tokio::process::Command::new("node")
        .arg("tests/console/run.mjs")
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .env("CONSOLE_URL", api.url(""))
        .env("TENANT_TOKEN", &tenant_token)
        .env("GLOBEX_TOKEN", &globex_token)
        .env("OPERATOR_TOKEN", OPERATOR_TOKEN)
        .env("RECEIVER_OK", receiver.url("/ok"))
        .env("RECEIVER_FAIL", receiver.url("/fail"))
        .env("GLOBEX_ENDPOINT", globex["id"].as_str().unwrap())
        .env("DEAD_ENDPOINT", dead["id"].as_str().unwrap())
        .env("SCREENSHOTS", &screenshots)
        .kill_on_drop(true)
        .output();
    let output = tokio::time::timeout(LIMIT, run)
        .await
        .expect("the browser run went past its bound")
        .expect("node is needed: see tests/console/package.json");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "the console test failed:\n{stdout}\n{}\nAPI log:\n{}",
        String::from_utf8_lossy(&output.stderr),
        api.process.log()
    );
    println!("{stdout}screenshots in {screenshots}");

    // What the clicks did, seen from the receiver's side.
    assert_eq!(receiver.count("/ok"), 1, "one test delivery");
    assert_eq!(receiver.count("/fail"), 1, "one failing test delivery");
    assert_eq!(
        receiver.count("/globex"),
        0,
        "another tenant's endpoint was touched"
    );
    wait_until(WAIT, "the replayed dead letter", || {
        receiver.count("/dead") == 3
    })
    .await;

    assert!(worker.stop().await.unwrap().success());
    api.process.stop().await.unwrap();
    fleet.cleanup().await;
}
