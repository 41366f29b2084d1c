//! Security hygiene: what the fleet prints, logs and stores must not hand out secrets or
//! silently lose data (docs/contract.md §2–§4, §6).
//!
//! - endpoint secrets are masked unless `--reveal`;
//! - endpoint URLs appear without credentials or query in logs, retry headers, dead letters;
//! - the RabbitMQ and Redis passwords appear in no error;
//! - malformed `HOOKFLEET_AMQP_URL` / `HOOKFLEET_REDIS_URL` stop the command at start;
//! - `N.dead` keeps its dead letters however often they are listed;
//! - an oversized message is dead-lettered with its first 4 KiB only;
//! - the producer counts what the broker confirmed (`hookfleet_published_total`).

use std::process::{Output, Stdio};
use std::time::{Duration, Instant};

use hookfleet_amqp::lapin::options::{
    BasicPublishOptions, ConfirmSelectOptions, QueueDeclareOptions,
};
use hookfleet_amqp::lapin::types::{AMQPValue, FieldTable, LongString};
use hookfleet_amqp::lapin::{BasicProperties, Confirmation, Connection, ConnectionProperties};
use hookfleet_amqp::topology::DEAD_DELIVERY_LIMIT;
use hookfleet_producer::{OutboundEvent, PublishedCounter, Publisher};
use serde_json::Value;
use tokio::io::{AsyncBufReadExt, BufReader};

use crate::util::{Fleet, Receiver, Reply, WAIT};

const BLOCKED: &str = "log.blocked";
/// The shared broker every test uses (each in its own namespace).
const AMQP_URL: &str = "amqp://guest:guest@127.0.0.1:5672/%2f";
/// The password planted in the URLs below; it must never come back out.
const PASSWORD: &str = "s3cret";

fn stderr_of(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// `hookfleet dead-letters list` until it shows at least `n` dead letters.
async fn dead_letters_at_least(fleet: &Fleet, n: usize) -> Vec<Value> {
    let started = Instant::now();
    loop {
        let letters = fleet.dead_letters().await;
        if letters.len() >= n {
            return letters;
        }
        assert!(
            started.elapsed() < WAIT,
            "timed out waiting for {n} dead letters; have {letters:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn endpoint_secrets_are_masked_unless_revealed() {
    let fleet = Fleet::new();
    let added = fleet
        .add_endpoint("acme", "http://127.0.0.1:9/hook", &[BLOCKED])
        .await;
    let id = added["id"].as_str().unwrap();
    let secret = added["secret"].as_str().unwrap();
    assert!(secret.starts_with("whsec_") && secret.len() > 20, "{added}");

    for args in [
        vec!["endpoints", "list"],
        vec!["endpoints", "list", "--tenant", "acme"],
        vec!["endpoints", "get", id],
        vec!["endpoints", "disable", id],
        vec!["endpoints", "enable", id],
    ] {
        let stdout = fleet.run_ok(&args).await;
        assert!(!stdout.contains(secret), "{args:?} printed the secret");
        assert!(
            stdout.contains(r#""secret":"whsec_***""#),
            "{args:?}: {stdout}"
        );
    }
    for args in [
        vec!["endpoints", "list", "--reveal"],
        vec!["endpoints", "get", id, "--reveal"],
    ] {
        let stdout = fleet.run_ok(&args).await;
        assert!(stdout.contains(secret), "{args:?} hid the secret: {stdout}");
    }
    let removed = fleet.run_ok(&["endpoints", "remove", id]).await;
    assert!(!removed.contains(secret), "remove printed the secret");
    fleet.cleanup().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn endpoint_credentials_and_queries_stay_out_of_logs_retries_and_dead_letters() {
    let fleet = Fleet::new();
    let receiver = Receiver::start().await.unwrap();
    receiver.set_default("/gone", Reply::status(410));
    let with_secrets = |url: String| {
        format!(
            "{}?token=tok{PASSWORD}",
            url.replacen("http://", &format!("http://user:{PASSWORD}@"), 1)
        )
    };
    // Nothing listens on port 1: every attempt is a connection error, then a dead letter.
    let refused = "http://127.0.0.1:1/hook".to_owned();
    fleet
        .add_endpoint("acme", &with_secrets(refused), &[BLOCKED])
        .await;
    // 410 Gone: the worker disables the endpoint and logs it.
    fleet
        .add_endpoint("acme", &with_secrets(receiver.url("/gone")), &[BLOCKED])
        .await;
    let worker = fleet.spawn_worker().await;

    fleet.publish(BLOCKED, "acme", "{}").await;
    let letters = dead_letters_at_least(&fleet, 2).await;
    assert_eq!(receiver.count("/gone"), 1);
    let refused = letters
        .iter()
        .find(|l| (l["last_error"].as_str()).is_some_and(|e| e.starts_with("connection failed")));
    assert!(refused.is_some(), "no connection error: {letters:?}");
    let dead = serde_json::to_string(&letters).unwrap();
    assert!(!dead.contains(PASSWORD), "a dead letter leaks: {dead}");
    assert!(!dead.contains("token"), "a dead letter leaks: {dead}");

    let log_path = worker.log_path().to_owned();
    assert!(worker.stop().await.unwrap().success());
    let log = std::fs::read_to_string(log_path).unwrap();
    assert!(
        log.contains("Disabling the endpoint"),
        "the 410 was not logged:\n{log}"
    );
    assert!(!log.contains(PASSWORD), "the worker log leaks:\n{log}");
    assert!(!log.contains("token"), "the worker log leaks:\n{log}");
    fleet.cleanup().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn no_error_shows_the_broker_or_redis_password() {
    let fleet = Fleet::new();
    let unreachable_amqp = format!("amqp://guest:{PASSWORD}@127.0.0.1:1/%2f");
    let wrong_password = format!("amqp://guest:{PASSWORD}@127.0.0.1:5672/%2f");
    let unreachable_redis = format!("redis://default:{PASSWORD}@127.0.0.1:1");
    let publish = [
        "publish", "--type", BLOCKED, "--tenant", "acme", "--data", "{}",
    ];
    let cases: [(&str, &str, &[&str]); 5] = [
        ("HOOKFLEET_AMQP_URL", &unreachable_amqp, &publish),
        (
            "HOOKFLEET_AMQP_URL",
            &unreachable_amqp,
            &["dead-letters", "list"],
        ),
        ("HOOKFLEET_AMQP_URL", &wrong_password, &publish),
        ("HOOKFLEET_AMQP_URL", &wrong_password, &["topology"]),
        (
            "HOOKFLEET_REDIS_URL",
            &unreachable_redis,
            &["endpoints", "list"],
        ),
    ];
    for (setting, url, args) in cases {
        let output = fleet.run_with(&[(setting, url)], args).await;
        let stderr = stderr_of(&output);
        assert!(
            !output.status.success(),
            "{args:?} with {setting} succeeded"
        );
        assert!(!stderr.trim().is_empty(), "{args:?}: no error printed");
        assert!(!stderr.contains(PASSWORD), "{args:?}: {stderr}");
    }

    // A worker keeps retrying an unreachable broker, logging each try: read its log until a
    // retry shows, then stop it.
    let mut worker = bare_command(fleet.namespace())
        .env("HOOKFLEET_AMQP_URL", &unreachable_amqp)
        .env("HOOKFLEET_METRICS_ADDR", "127.0.0.1:0")
        .arg("worker")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(worker.stderr.take().unwrap()).lines();
    let mut log = String::new();
    let read = async {
        while let Some(line) = lines.next_line().await.unwrap() {
            log.push_str(&line);
            log.push('\n');
            if line.contains("retrying") {
                return;
            }
        }
    };
    let retried = tokio::time::timeout(WAIT, read).await.is_ok();
    worker.kill().await.unwrap();
    assert!(retried, "the worker logged no retry:\n{log}");
    assert!(!log.contains(PASSWORD), "the worker log leaks:\n{log}");
    fleet.cleanup().await;
}

/// `hookfleet` in `namespace`, with no setting from the developer's shell: for a process the
/// harness does not run (a worker that never gets ready).
fn bare_command(namespace: &str) -> tokio::process::Command {
    let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_hookfleet"));
    for (key, _) in std::env::vars_os() {
        if key.to_string_lossy().starts_with("HOOKFLEET_") {
            command.env_remove(key);
        }
    }
    command
        .env("HOOKFLEET_NAMESPACE", namespace)
        .env("NO_COLOR", "1")
        .env("RUST_LOG", "info");
    command
}

#[tokio::test(flavor = "multi_thread")]
async fn malformed_service_urls_exit_2_with_one_line_naming_the_setting() {
    let fleet = Fleet::new();
    let bad_port = format!("amqp://guest:{PASSWORD}@127.0.0.1:notaport/%2f");
    let bad_redis = format!("redis://:{PASSWORD}@127.0.0.1:notaport");
    let cases: [(&str, &str, &[&str]); 6] = [
        ("HOOKFLEET_AMQP_URL", "nonsense", &["worker"]),
        ("HOOKFLEET_AMQP_URL", "http://x", &["worker"]),
        ("HOOKFLEET_AMQP_URL", &bad_port, &["worker"]),
        ("HOOKFLEET_AMQP_URL", "nonsense", &["dead-letters", "list"]),
        ("HOOKFLEET_REDIS_URL", "nonsense", &["worker"]),
        ("HOOKFLEET_REDIS_URL", &bad_redis, &["endpoints", "list"]),
    ];
    for (setting, value, args) in cases {
        let stderr = fleet.assert_refused(setting, value, args).await;
        assert!(!stderr.contains(PASSWORD), "{setting}={value:?}: {stderr}");
    }
    fleet.cleanup().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn dead_letters_survive_being_listed_25_times() {
    let fleet = Fleet::new();
    fleet.topology().await;
    let dead = format!("{}.dead", fleet.namespace());
    let connection = Connection::connect(AMQP_URL, ConnectionProperties::default())
        .await
        .unwrap();
    let channel = connection.create_channel().await.unwrap();
    channel
        .confirm_select(ConfirmSelectOptions::default())
        .await
        .unwrap();
    for n in 0..3 {
        let mut headers = FieldTable::default();
        headers.insert(
            "x-hookfleet-reason".into(),
            AMQPValue::LongString(LongString::from("planted by the test")),
        );
        let properties = BasicProperties::default()
            .with_message_id(format!("evt_dead_{n}").into())
            .with_delivery_mode(2)
            .with_headers(headers);
        let confirmation = channel
            .basic_publish(
                dead.as_str().into(),
                "".into(),
                BasicPublishOptions::default(),
                b"{}",
                properties,
            )
            .await
            .unwrap()
            .await
            .unwrap();
        assert!(
            matches!(confirmation, Confirmation::Ack(None)),
            "{confirmation:?}"
        );
    }

    // RabbitMQ 4.x would drop them after 20 listings without an explicit limit, 3.x after the
    // first with a limit of -1 (docs of `Topology::dead_queue_args`).
    for round in 0..25 {
        let letters = fleet.dead_letters().await;
        let ids: Vec<&str> = letters
            .iter()
            .filter_map(|l| l["event_id"].as_str())
            .collect();
        assert_eq!(
            ids,
            ["evt_dead_0", "evt_dead_1", "evt_dead_2"],
            "listing {round}"
        );
    }

    // 3.x has no default limit, so the listings alone would pass there without the argument:
    // a redeclare shows `N.dead` carries it (a different argument set is refused).
    let mut args = FieldTable::default();
    args.insert(
        "x-queue-type".into(),
        AMQPValue::LongString(LongString::from("quorum")),
    );
    assert!(
        redeclare(&connection, &dead, args.clone()).await.is_err(),
        "N.dead was declared without a delivery limit"
    );
    args.insert(
        "x-delivery-limit".into(),
        AMQPValue::LongLongInt(DEAD_DELIVERY_LIMIT),
    );
    redeclare(&connection, &dead, args).await.unwrap();
    let _ = connection.close(200, "done".into()).await;
    fleet.cleanup().await;
}

/// Declares the durable queue `name` with `args` on a channel of its own (a refusal closes it).
async fn redeclare(
    connection: &Connection,
    name: &str,
    args: FieldTable,
) -> hookfleet_amqp::lapin::Result<()> {
    let channel = connection.create_channel().await?;
    let options = QueueDeclareOptions {
        durable: true,
        ..Default::default()
    };
    channel.queue_declare(name.into(), options, args).await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn an_oversized_message_is_dead_lettered_with_its_first_4_kib_only() {
    let fleet = Fleet::new();
    let worker = fleet.spawn_worker().await;
    let body = format!(r#"{{"pad":"{}"}}"#, "x".repeat(300 * 1024));
    fleet
        .publish_raw(BLOCKED, "acme", "evt_big", body.as_bytes())
        .await;

    let letters = dead_letters_at_least(&fleet, 1).await;
    let letter = &letters[0];
    assert_eq!(letter["event_id"], "evt_big");
    assert!(
        letter["reason"].as_str().unwrap().contains("too large"),
        "{}",
        letter["reason"]
    );
    assert_eq!(letter["original_size"], body.len());
    // Cut, it is no JSON any more: listed as text.
    let payload = letter["payload"].as_str().unwrap();
    assert!(payload.len() <= 4 * 1024, "kept {} bytes", payload.len());
    assert!(payload.starts_with(r#"{"pad":"xxx"#), "{payload:.40}");

    // Never replayed: it would only be refused again.
    let report: Value =
        serde_json::from_str(fleet.run_ok(&["dead-letters", "replay"]).await.trim()).unwrap();
    assert_eq!(report["replayed"], 0, "{report}");
    assert_eq!(fleet.dead_letters().await.len(), 1);

    assert!(worker.stop().await.unwrap().success());
    fleet.cleanup().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn the_producer_counts_what_the_broker_confirmed() {
    let fleet = Fleet::new();
    fleet.topology().await;
    let counter = PublishedCounter::unregistered();
    let publisher = Publisher::connect(AMQP_URL, fleet.namespace().parse().unwrap())
        .await
        .unwrap()
        .with_counter(counter.clone());
    let event = |event_type: &str| {
        OutboundEvent::new(
            event_type.parse().unwrap(),
            "acme".parse().unwrap(),
            &serde_json::json!({"n": 1}),
            None,
        )
    };

    // Not declared: the broker refuses it, so it is not counted.
    assert!(publisher.publish(&event("no.such.type")).await.is_err());
    assert_eq!(counter.get("no.such.type"), 0);
    publisher.publish(&event(BLOCKED)).await.unwrap();
    publisher.publish(&event(BLOCKED)).await.unwrap();
    assert_eq!(counter.get(BLOCKED), 2);
    fleet.cleanup().await;
}
