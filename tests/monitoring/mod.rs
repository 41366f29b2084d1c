//! The monitoring in `deploy/` against the real binary: the Prometheus rules
//! (`deploy/prometheus/`) and the Grafana dashboard (`deploy/grafana/dashboards/`) name only
//! metrics a worker or the API exports, and a real Prometheus (Debian's `prometheus` package)
//! scrapes a worker and the API with the project's scrape config and loads and evaluates the
//! project's rules. Both are ignored (they need that package); `scripts/check-monitoring`
//! installs it and runs them, after `promtool check` and `promtool test rules`.

use std::collections::BTreeSet;
use std::path::Path;
use std::time::Duration;

use serde_json::{Value, json};

use crate::util::{Fleet, Receiver, Reply, WAIT, wait_until};

mod deploy_files;
mod prometheus;

use deploy_files::{dashboard_exprs, deploy, exported, families, named, rules_text};
use prometheus::{Prometheus, local_config, scalar};

const BLOCKED: &str = "log.blocked";

/// How long Prometheus may take to start, scrape, and evaluate what a test waits for.
const PROMETHEUS_WAIT: Duration = Duration::from_secs(60);

#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs Prometheus (Debian's prometheus package); scripts/check-monitoring runs it"]
async fn every_metric_the_rules_and_dashboard_name_is_exported() {
    // One failing attempt opens the circuit, so its transition, the open-endpoints gauge and
    // the retry's deferral all show up; a vector's family appears only with its first series.
    let fleet = Fleet::new()
        .env("HOOKFLEET_EVENT_TYPES", BLOCKED)
        .env("HOOKFLEET_CIRCUIT_THRESHOLD", "1")
        .env("HOOKFLEET_CIRCUIT_COOLDOWN", "10m");
    let receiver = Receiver::start().await.unwrap();
    receiver.set_default("/down", Reply::status(500));
    for path in ["/ok", "/down"] {
        fleet
            .add_endpoint("acme", &receiver.url(path), &[BLOCKED])
            .await;
    }
    let mut worker = fleet.spawn_worker().await;
    let api = fleet.spawn_api().await;

    api.publish(event(0)).await;
    for (name, labels) in [
        ("hookfleet_deliveries_total", [("result", "delivered")]),
        ("hookfleet_circuit_transitions_total", [("to", "open")]),
        (
            "hookfleet_deliveries_deferred_total",
            [("reason", "circuit_open")],
        ),
    ] {
        worker
            .wait_for_metric(name, &labels, 1.0, WAIT)
            .await
            .unwrap();
    }
    // Deleting the work queue makes the broker cancel the consumer: a consumer restart.
    fleet.delete_work_queue(BLOCKED).await;
    let restarts = [("reason", "cancelled")];
    worker
        .wait_for_metric("hookfleet_consumer_restarts_total", &restarts, 1.0, WAIT)
        .await
        .unwrap();
    worker.wait_ready(WAIT).await.unwrap();

    let worker_text = worker.metrics().await.unwrap();
    let api_text = api.process.metrics().await.unwrap();
    let mut exports = families(&worker_text);
    exports.extend(families(&api_text));

    let metrics = named("hookfleet_");
    assert!(metrics.len() >= 10, "too few names found: {metrics:?}");
    let missing: Vec<&String> = (metrics.iter())
        .filter(|name| !exported(name, &exports))
        .collect();
    assert!(
        missing.is_empty(),
        "named by the rules or the dashboard but not exported: {missing:?}\n\
         worker:\n{worker_text}\napi:\n{api_text}"
    );
    // The recorded series they read must be recorded by some rule.
    let recorded: BTreeSet<String> = (rules_text().lines())
        .filter_map(|line| line.trim().strip_prefix("- record:"))
        .map(|name| name.trim().to_owned())
        .collect();
    let used = named("hookfleet:");
    let unrecorded: Vec<&String> = used.difference(&recorded).collect();
    assert!(unrecorded.is_empty(), "never recorded: {unrecorded:?}");
    // RabbitMQ's own metrics come from its plugin, not from us: listed, not checked.
    let rabbitmq = named("rabbitmq_");
    println!("checked: {metrics:?}\nrecorded: {used:?}\nRabbitMQ's, not checked: {rabbitmq:?}");

    assert!(worker.stop().await.unwrap().success());
    assert!(api.process.stop().await.unwrap().success());
    fleet.cleanup().await;
}

#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs Prometheus (Debian's prometheus package); scripts/check-monitoring runs it"]
async fn a_real_prometheus_scrapes_a_worker_and_evaluates_the_rules() {
    const EVENTS: usize = 50;
    let fleet = Fleet::new().env("HOOKFLEET_EVENT_TYPES", BLOCKED);
    let receiver = Receiver::start().await.unwrap();
    fleet
        .add_endpoint("acme", &receiver.url("/hook"), &[BLOCKED])
        .await;
    let worker = fleet.spawn_worker().await;
    let api = fleet.spawn_api().await;

    let dir =
        Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("prometheus-{}", fleet.namespace()));
    std::fs::create_dir_all(&dir).unwrap();
    let project = std::fs::read_to_string(deploy("prometheus/prometheus.yml")).unwrap();
    let worker_addr = worker.base_url().trim_start_matches("http://");
    let api_addr = api.process.base_url().trim_start_matches("http://");
    let config = local_config(&project, &deploy("prometheus"), |job| match job {
        "hookfleet-worker" => worker_addr.to_owned(),
        "hookfleet-api" => api_addr.to_owned(),
        // RabbitMQ's plugin port here: a target that is down unless the plugin is on.
        _ => "127.0.0.1:15692".to_owned(),
    });
    let prometheus = Prometheus::start(&dir, &config).await;

    // A counter's series appears with its first delivery, and rate() counts only what
    // happens after its first scrape: one event first, then the rest once it is scraped.
    let total = "sum(hookfleet_deliveries_total)";
    let counted = |at_least: usize| {
        move |answer: &Value| scalar(answer).is_some_and(|v| v >= at_least as f64)
    };
    api.publish(event(0)).await;
    prometheus
        .eventually("the first delivery scraped", total, counted(1))
        .await;
    for n in 1..EVENTS {
        api.publish(event(n)).await;
    }
    wait_until(WAIT, "every event delivered", || {
        receiver.count("/hook") == EVENTS
    })
    .await;
    prometheus
        .eventually("every delivery scraped", total, counted(EVENTS))
        .await;
    for job in ["hookfleet-worker", "hookfleet-api"] {
        let up = format!("up{{job=\"{job}\"}}");
        let what = format!("{job} up");
        prometheus
            .eventually(&what, &up, |a| scalar(a) == Some(1.0))
            .await;
    }
    // Every job of the project's config has a target (RabbitMQ's may be down here).
    let jobs = project.matches("- job_name:").count() as f64;
    prometheus
        .eventually("every job scraped", "count(up)", |a| {
            scalar(a) == Some(jobs)
        })
        .await;

    // Every rule file loaded, every rule evaluated without error.
    let groups = prometheus
        .poll("every rule evaluated", ("/api/v1/rules", &[]), |answer| {
            let groups = answer["data"]["groups"].as_array()?;
            let mut rules = groups.iter().flat_map(|g| g["rules"].as_array().unwrap());
            (!groups.is_empty() && rules.all(|r| r["health"] == "ok")).then(|| groups.clone())
        })
        .await;
    let names: BTreeSet<&str> = groups.iter().map(|g| g["name"].as_str().unwrap()).collect();
    assert_eq!(
        names,
        BTreeSet::from(["hookfleet-alerts", "hookfleet-recording"])
    );
    let recorded = "hookfleet:deliveries:rate5m{result=\"delivered\"}";
    prometheus
        .eventually("a recorded delivery rate", recorded, |a| {
            scalar(a).is_some_and(|v| v > 0.0)
        })
        .await;

    // Every expression of the dashboard parses and runs, its variables filled in.
    for expr in dashboard_exprs() {
        let expr = (expr.replace("$__rate_interval", "1m"))
            .replace("$event_type", ".+")
            .replace("$namespace", fleet.namespace());
        let answer = prometheus.query(&expr).await;
        assert_eq!(answer["status"], "success", "{expr}: {answer}");
    }

    prometheus.stop().await;
    assert!(worker.stop().await.unwrap().success());
    assert!(api.process.stop().await.unwrap().success());
    fleet.cleanup().await;
    let _ = std::fs::remove_dir_all(&dir);
}

/// Event `n` of the load.
fn event(n: usize) -> Value {
    json!({"type": BLOCKED, "tenant": "acme", "data": {"n": n}})
}
