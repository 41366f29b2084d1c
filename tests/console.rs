//! The web console (`/` of `hookfleet api`) in headless Chromium: `tests/console/run.mjs`
//! (without a message history) and `tests/console/history.mjs` (with one), driven by Playwright
//! (npm `playwright-core`) against a real API, worker and receiver. The steps are in those
//! scripts; these set up what they need and check what reached the receiver.

use std::time::Duration;

use reqwest::Method;
use serde_json::{Value, json};

use crate::history::{BLOCKED, drop_schema, history_fleet, wait_for_answer};
use crate::util::{Api, Fleet, OPERATOR_TOKEN, Receiver, Reply, WAIT, wait_for_result, wait_until};

/// A bound on a browser run (each takes about 10 s).
const LIMIT: Duration = Duration::from_secs(180);

/// What the failing receiver answers: an error page whose first lines the console shows.
const ERROR_PAGE: &str =
    "upstream exploded\nat OrderService.handle (orders.js:42)\nat Router.dispatch";

const FAILED: &str = "log.failed";

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

    let globex_id = globex["id"].as_str().unwrap();
    let dead_id = dead["id"].as_str().unwrap();
    run_script(
        "tests/console/run.mjs",
        &[
            ("TENANT_TOKEN", &tenant_token),
            ("GLOBEX_TOKEN", &globex_token),
            ("OPERATOR_TOKEN", OPERATOR_TOKEN),
            ("RECEIVER_OK", &receiver.url("/ok")),
            ("RECEIVER_FAIL", &receiver.url("/fail")),
            ("GLOBEX_ENDPOINT", globex_id),
            ("DEAD_ENDPOINT", dead_id),
        ],
        &api,
    )
    .await;

    // What the clicks did, seen from the receiver's side.
    assert_eq!(receiver.count("/ok"), 1, "one test delivery");
    assert_eq!(receiver.count("/fail"), 1, "one failing test delivery");
    let failing = &receiver.requests("/fail")[0];
    assert_eq!(
        failing.header("x-api-key"),
        "k-console-1",
        "the sensitive header, kept"
    );
    assert_eq!(failing.header("x-team"), "red");
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

#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs Chromium, npm's playwright-core (tests/console) and PostgreSQL; scripts/test runs it"]
async fn the_console_shows_the_message_history() {
    // Eight failures in a row at one endpoint: the circuit breaker must not pause it, or the
    // resend would wait out its cooldown.
    let fleet = history_fleet()
        .await
        .env("HOOKFLEET_CIRCUIT_THRESHOLD", "100");
    let receiver = Receiver::start().await.unwrap();
    // Every attempt of the two failing events (4 each) gets an error page; what comes after
    // (the resend, the recovery) is answered 200.
    receiver.enqueue("/flaky", [Reply::status(500).body(ERROR_PAGE); 8]);
    let api = fleet.spawn_api().await;
    let ok = api
        .create_endpoint("acme", &receiver.url("/ok"), &[BLOCKED, FAILED])
        .await;
    let flaky = api
        .create_endpoint("acme", &receiver.url("/flaky"), &[BLOCKED])
        .await;
    let worker = fleet.spawn_worker().await;

    // Newest first on the Events page: one after the other, each handled before the next.
    let order = |event_type: &str, n: u32| json!({"type": event_type, "tenant": "acme", "data": {"order": n}});
    let delivered = api.publish(order(FAILED, 1)).await;
    wait_until(WAIT, "the first delivery", || receiver.count("/ok") == 1).await;
    let resent = api.publish(order(BLOCKED, 2)).await;
    wait_for_result(&worker, "dead_lettered", 1.0).await;
    let recovered = api.publish(order(BLOCKED, 3)).await;
    wait_for_result(&worker, "dead_lettered", 2.0).await;
    // The history is written off the delivery path: every attempt recorded before the pages.
    let attempts_at = |event: &Value, endpoint: &Value| {
        (event["endpoints"].as_array().unwrap().iter())
            .find(|o| o["endpoint_id"] == endpoint["id"])
            .map_or(0, |o| o["attempts"].as_u64().unwrap())
    };
    for (id, at_flaky) in [(&delivered, 0), (&resent, 4), (&recovered, 4)] {
        let path = format!("/v1/events/{id}");
        wait_for_answer(&api, &path, "every attempt recorded", |event| {
            attempts_at(event, &ok) == 1 && attempts_at(event, &flaky) == at_flaky
        })
        .await;
    }
    let tenant_token = api.tenant_token("acme").await;

    run_script(
        "tests/console/history.mjs",
        &[
            ("TENANT_TOKEN", &tenant_token),
            ("OPERATOR_TOKEN", OPERATOR_TOKEN),
            ("DELIVERED_EVENT", &delivered),
            ("RESENT_EVENT", &resent),
            ("RECOVERED_EVENT", &recovered),
            ("FLAKY_URL", &receiver.url("/flaky")),
        ],
        &api,
    )
    .await;

    // What the clicks did, seen from the receiver's side: the resend, then the recovery, each
    // with its event's webhook-id and the body of its first attempt, byte for byte.
    wait_until(WAIT, "the resend and the recovery", || {
        receiver.count("/flaky") == 10
    })
    .await;
    assert!(worker.stop().await.unwrap().success());
    let arrivals = receiver.requests("/flaky");
    assert_eq!(arrivals.len(), 10, "nothing else was sent again");
    let first = |id: &str| {
        (arrivals.iter())
            .find(|a| a.header("webhook-id") == id)
            .unwrap()
    };
    assert_eq!(arrivals[8].header("webhook-id"), resent);
    assert_eq!(arrivals[8].body, first(&resent).body);
    assert_eq!(arrivals[9].header("webhook-id"), recovered);
    assert_eq!(arrivals[9].body, first(&recovered).body);
    assert_eq!(
        receiver.count("/ok"),
        3,
        "where they got through: once each"
    );

    api.process.stop().await.unwrap();
    drop_schema(&fleet).await;
    fleet.cleanup().await;
}

/// The screenshots' directory: `HOOKFLEET_SCREENSHOTS`, or one in the target directory.
fn screenshots() -> String {
    std::env::var("HOOKFLEET_SCREENSHOTS")
        .unwrap_or_else(|_| format!("{}/console-screenshots", env!("CARGO_TARGET_TMPDIR")))
}

/// Runs `node <script>` against `api`'s console with `env` (and `CONSOLE_URL`, `SCREENSHOTS`),
/// within [`LIMIT`]; fails the test with its output and the API's log unless every step passed.
async fn run_script(script: &str, env: &[(&str, &str)], api: &Api) {
    let screenshots = screenshots();
    let run = tokio::process::Command::new("node")
        .arg(script)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .env("CONSOLE_URL", api.url(""))
        .env("SCREENSHOTS", &screenshots)
        .envs(env.iter().copied())
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
}
