//! The scenarios of one run, in order: the baselines, the pipeline with one and two workers,
//! fan-out 10, many other tenants, the paced run at half the fan-out-1 rate, then isolation:
//! slow receivers, a dead and a 503 endpoint under a steady load (short and long; the dead
//! tenant has an unordered and an ordered endpoint, both never answering), a
//! rate-limited endpoint beside a healthy one, and a backlog with and without a dead endpoint,
//! with the endpoint controls in use, and with a message history (those drains in reverse
//! order every other round).

use std::time::Duration;

use crate::load::Mix;
use crate::pipeline::{self, Spec};
use crate::report::{Outcome, name};
use crate::{Bench, bare, baseline, endpoints, fleet, load};

/// The most events a backlog scenario (and the bare loop) queues.
pub const BACKLOG: u64 = 30_000;

/// Runs every scenario `--only` allows; each reports what it got, even when it fails.
/// `round` counts from 1: even rounds run the backlog drains in reverse order.
pub async fn run_all(bench: &Bench, round: u32) -> Vec<Outcome> {
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
        let env = fleet::env(s);
        bench.track(&env);
        let namespace = env.namespace();
        outcomes.push(finished(baseline::broker(s, namespace, &events).await));
        hookfleet_testkit::teardown(&env, &[baseline::queue_name(namespace)]).await;
    }
    if s.wants(name::HTTP) {
        let url = bench.receiver.url("/baseline");
        outcomes.push(finished(baseline::http(s, &url, &events).await));
    }

    let n = s.events;
    let many_tenants = Spec {
        other_endpoints: s.other_endpoints,
        ..Spec::simple(name::MANY_TENANTS, n, 1, 1)
    };
    let skewed = Spec {
        busy_pct: 90,
        ..Spec::simple(name::SKEWED, n, 1, 1)
    };
    for spec in [
        Spec::simple(name::FANOUT1, n, 1, 1),
        skewed,
        Spec::simple(name::FANOUT1_2W, n, 1, 2),
        Spec::simple(name::FANOUT10, (n / 10).max(1), 10, 1),
        many_tenants,
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
        let mut paced = Spec::simple(name::PACED, count, 1, 1);
        paced.pace = Some(rate);
        outcomes.push(finished(pipeline::run(bench, &paced).await));
    }
    let clustered = Spec {
        cluster: true,
        ..Spec::simple(name::FANOUT1_CLUSTER, n, 1, 1)
    };
    if s.wants(clustered.name) {
        outcomes.push(finished(pipeline::run(bench, &clustered).await));
    }
    if s.wants(name::PACED_CLUSTER) && max_rate > 0.0 && s.paced_seconds > 0 {
        // The single node's rate, so that the two paced runs compare.
        let rate = max_rate / 2.0;
        let count = ((rate * s.paced_seconds as f64) as u64).clamp(1, n);
        let mut paced = Spec::simple(name::PACED_CLUSTER, count, 1, 1);
        paced.pace = Some(rate);
        paced.cluster = true;
        outcomes.push(finished(pipeline::run(bench, &paced).await));
    }
    let mut isolation = isolation(s);
    // The drains are compared with backlog-clean, which would otherwise always run first of
    // them: every other round reverses them, so that no drain keeps the same neighbours (the
    // tear-down of the one before it, or PostgreSQL's flushing after the history's).
    let drains = isolation.iter().position(|s| s.name == name::BACKLOG_CLEAN);
    if let Some(drains) = drains.filter(|_| round.is_multiple_of(2)) {
        isolation[drains..].reverse();
    }
    for spec in isolation {
        if s.wants(spec.name) {
            outcomes.push(finished(pipeline::run(bench, &spec).await));
        }
        // The bare loop drains the clean backlog's count right after it, to compare.
        if spec.name == name::BACKLOG_CLEAN && s.wants(name::BARE) {
            outcomes.push(finished(bare::drain(bench, spec.events, &events).await));
        }
    }
    outcomes
}

/// Real receivers are slow and some are down: one worker, default settings.
fn isolation(s: &crate::Settings) -> [Spec; 8] {
    let secs = s.isolation_seconds;
    let faulty = Mix {
        healthy_tenants: 1,
        dead_pct: 10,
        failing_pct: 10,
        limited_pct: 0,
    };
    let paced = |name, rate: f64, secs: u64| Spec {
        pace: Some(rate),
        ..Spec::simple(name, (rate * secs as f64) as u64, 1, 1)
    };
    // Receivers answering in 200 ms, 1 500 events/s spread over 10 tenants (150/s each, so
    // each endpoint stays under its in-flight cap): about 300 deliveries in flight.
    let slow = Spec {
        mix: Mix {
            healthy_tenants: 10,
            ..Mix::default()
        },
        reply_after: Duration::from_millis(200),
        ..paced(name::SLOW, 1_500.0, secs)
    };
    let backlog = s.events.min(BACKLOG);
    [
        slow,
        Spec {
            mix: faulty,
            ..paced(name::DEAD_SHORT, 500.0, secs)
        },
        Spec {
            mix: faulty,
            ..paced(name::DEAD_LONG, 500.0, secs * 6)
        },
        // An endpoint held to 10/s, sent 50/s, beside a healthy one at 1 000/s: its turns and
        // deferrals must not delay the healthy one.
        Spec {
            mix: Mix {
                healthy_tenants: 1,
                limited_pct: 5,
                ..Mix::default()
            },
            ..paced(name::RATE_LIMITED, 1_050.0, secs)
        },
        Spec {
            prefill: true,
            ..Spec::simple(name::BACKLOG_CLEAN, backlog, 1, 1)
        },
        // The same with headers and a filter on the endpoint: what they cost when used.
        Spec {
            prefill: true,
            controls: true,
            ..Spec::simple(name::BACKLOG_CONTROLS, backlog, 1, 1)
        },
        // The same with the message history on: recording must not slow the drain.
        Spec {
            prefill: true,
            history: true,
            ..Spec::simple(name::BACKLOG_HISTORY, backlog, 1, 1)
        },
        Spec {
            prefill: true,
            mix: Mix {
                failing_pct: 0,
                ..faulty
            },
            ..Spec::simple(name::BACKLOG_DEAD, backlog, 1, 1)
        },
    ]
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
