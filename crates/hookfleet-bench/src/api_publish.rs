//! `--api-publish N`: what checking `data` against its type's JSON Schema costs
//! `POST /v1/events`. One `hookfleet api` in a fresh namespace (no worker: the events wait in
//! their queue and go with the namespace), N publishes a round, 32 at a time, rounds
//! without and with a schema on the type in ABBA order, the median of each compared.

use std::sync::Arc;
use std::time::Instant;

use futures_util::StreamExt;
use hookfleet_testkit::{Fleet, WorkerEnv};
use serde_json::{Value, json};

/// The operator token of the API this starts.
const TOKEN: &str = "bench-operator-token-0123456789";
/// Requests in flight at once.
const IN_FLIGHT: usize = 32;
/// Rounds of each kind.
const ROUNDS: usize = 3;
const TYPE: &str = "log.blocked";

/// Runs the rounds and returns the table.
pub async fn run(
    binary: &std::path::Path,
    log_dir: &std::path::Path,
    n: u64,
) -> anyhow::Result<String> {
    let env = WorkerEnv::fresh("bench").set("RUST_LOG", "info");
    let fleet = Fleet::new(binary, log_dir, env)?;
    fleet.declare().await?;
    let api = fleet.spawn_api(&[("HOOKFLEET_API_TOKEN", TOKEN)]).await?;
    let base = api.base_url().to_owned();
    let client = reqwest::Client::builder().no_proxy().build()?;
    let schema = json!({
        "type": "object",
        "required": ["agent", "rule", "severity"],
        "properties": {
            "agent": {"type": "object", "required": ["id", "team"],
                      "properties": {"id": {"type": "string"}, "team": {"type": "string"}}},
            "rule": {"type": "string", "minLength": 1},
            "severity": {"enum": ["low", "high", "critical"]},
            "seq": {"type": "integer", "minimum": 0},
        },
        "additionalProperties": false,
    });
    let mut rates: [Vec<f64>; 2] = [Vec::new(), Vec::new()];
    let run = async {
        // Without, with, with, without, …: the queue grows round by round and the broker
        // slows with it, so neither kind always runs on the fuller queue.
        for round in 0..ROUNDS * 2 {
            let with = matches!(round % 4, 1 | 2);
            let described = match with {
                true => json!({"schema": schema}),
                false => json!({}),
            };
            let put = client
                .put(format!("{base}/v1/event-types/{TYPE}"))
                .bearer_auth(TOKEN)
                .header("content-type", "application/json")
                .body(described.to_string())
                .send()
                .await?;
            anyhow::ensure!(put.status().is_success(), "PUT schema: {}", put.status());
            let rate = publish(&client, &base, n, round).await?;
            eprintln!(
                "[api-publish] round {} {} schema: {rate:.0}/s",
                round + 1,
                if with { "with" } else { "without" }
            );
            rates[usize::from(with)].push(rate);
        }
        anyhow::Ok(())
    };
    let result = run.await;
    let _ = api.stop().await;
    fleet.teardown(&[]).await;
    result?;
    let [without, with] = rates.map(median);
    Ok(format!(
        "| POST /v1/events, {n} a round, {IN_FLIGHT} at a time | events/s (median of {ROUNDS}) |\n|---|---|\n\
         | no schema | {without:.0} |\n| a JSON Schema (2020-12) on the type | {with:.0} |\n\
         | with ÷ without (target ≥ 0.9) | {:.2} |",
        with / without
    ))
}

/// Publishes `n` valid events and returns the rate; any answer but 202 is an error.
async fn publish(
    client: &reqwest::Client,
    base: &str,
    n: u64,
    round: usize,
) -> anyhow::Result<f64> {
    let url = Arc::new(format!("{base}/v1/events"));
    let started = Instant::now();
    let answers = futures_util::stream::iter(0..n)
        .map(|seq| {
            let (client, url) = (client.clone(), url.clone());
            let event: Value = json!({
                "type": TYPE, "tenant": "bench",
                "id": format!("evt_apibench_{round}_{seq}"),
                "data": {"agent": {"id": "a-17", "team": "payments"}, "rule": "no-prod-writes",
                         "severity": "high", "seq": seq},
            });
            async move {
                let request = client.post(url.as_str()).bearer_auth(TOKEN);
                let request = request.header("content-type", "application/json");
                request.body(event.to_string()).send().await
            }
        })
        .buffer_unordered(IN_FLIGHT);
    futures_util::pin_mut!(answers);
    while let Some(answer) = answers.next().await {
        let status = answer?.status();
        anyhow::ensure!(status.as_u16() == 202, "POST /v1/events answered {status}");
    }
    Ok(n as f64 / started.elapsed().as_secs_f64())
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values.get(values.len() / 2).copied().unwrap_or(0.0)
}
