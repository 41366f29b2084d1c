//! The scenarios of one run, in order: the baselines, the pipeline with one and two workers,
//! fan-out 10, many other tenants, and the paced run at half the fan-out-1 rate.

use crate::pipeline::{self, Spec};
use crate::report::{Outcome, name};
use crate::{Bench, baseline, endpoints, fleet, load};

/// Runs every scenario `--only` allows; each reports what it got, even when it fails.
pub async fn run_all(bench: &Bench) -> Vec<Outcome> {
    let s = &bench.settings;
    let mut outcomes = Vec::new();
    let events = match load::Events::new(endpoints::TENANT, s.payload_bytes) {
        Ok(events) => events,
        Err(error) => {
            let mut failed = Outcome::new("setup");
            failed.error = Some(format!("{error:#}"));
            return vec![failed];
        }
    };

    if s.wants(name::BROKER) {
        let env = fleet::env(s.concurrency);
        bench.track(&env);
        let namespace = env.namespace();
        outcomes.push(finished(baseline::broker(s, namespace, &events).await));
        hookfleet_testkit::teardown(&env, &[baseline::queue_name(namespace)]).await;
    }
    if s.wants(name::HTTP) {
        let url = bench.receiver.url("/baseline");
        outcomes.push(finished(baseline::http(s, &url, &events).await));
    }

    let spec = |name, events, fanout, workers, other_endpoints| Spec {
        name,
        events,
        fanout,
        workers,
        other_endpoints,
        pace: None,
    };
    let n = s.events;
    for spec in [
        spec(name::FANOUT1, n, 1, 1, 0),
        spec(name::FANOUT1_2W, n, 1, 2, 0),
        spec(name::FANOUT10, (n / 10).max(1), 10, 1, 0),
        spec(name::MANY_TENANTS, n, 1, 1, s.other_endpoints),
    ] {
        if s.wants(spec.name) {
            outcomes.push(finished(pipeline::run(bench, &spec).await));
        }
    }

    // Half of the measured fan-out-1 maximum, for a bounded time (and never more than N).
    let max_rate = outcomes
        .iter()
        .find(|o| o.scenario == name::FANOUT1)
        .map_or(0.0, |o| o.rate);
    if s.wants(name::PACED) && max_rate > 0.0 && s.paced_seconds > 0 {
        let rate = max_rate / 2.0;
        let count = ((rate * s.paced_seconds as f64) as u64).clamp(1, n);
        let mut paced = spec(name::PACED, count, 1, 1, 0);
        paced.pace = Some(rate);
        outcomes.push(finished(pipeline::run(bench, &paced).await));
    }
    outcomes
}

/// Prints a one-line summary of a finished scenario to stderr and passes it on.
fn finished(outcome: Outcome) -> Outcome {
    eprintln!(
        "[{}] done: {}/{} in {:.2}s, {:.0}/s{}",
        outcome.scenario,
        outcome.delivered,
        outcome.expected,
        outcome.seconds,
        outcome.rate,
        outcome
            .error
            .as_deref()
            .map_or(String::new(), |e| format!(", error: {e}"))
    );
    outcome
}
