//! What each scenario measured ([`Outcome`]), the markdown tables (results, then the issue's
//! targets beside the measured values with pass/fail) and the JSON lines of `--json`.

use serde::Serialize;

/// Scenario names, shared by the runner and the targets that compare them.
pub mod name {
    pub const BROKER: &str = "broker-baseline";
    pub const HTTP: &str = "http-baseline";
    pub const FANOUT1: &str = "fanout1-1w";
    pub const FANOUT1_2W: &str = "fanout1-2w";
    pub const FANOUT10: &str = "fanout10-1w";
    pub const MANY_TENANTS: &str = "many-tenants-1w";
    pub const PACED: &str = "paced-50pct-1w";
    /// The two above against `scripts/cluster` (3 RabbitMQ nodes, a Redis Cluster): only
    /// when named in `--only`.
    pub const FANOUT1_CLUSTER: &str = "fanout1-1w-cluster";
    pub const PACED_CLUSTER: &str = "paced-50pct-1w-cluster";
    pub const SLOW: &str = "slow-200ms-1500ps";
    pub const DEAD_SHORT: &str = "dead-10pct-503-10pct-short";
    pub const DEAD_LONG: &str = "dead-10pct-503-10pct-long";
    pub const BACKLOG_CLEAN: &str = "backlog-clean";
    /// The clean backlog with a message history in the local PostgreSQL.
    pub const BACKLOG_HISTORY: &str = "backlog-clean-history";
    pub const BACKLOG_DEAD: &str = "backlog-dead-10pct";
    pub const BACKLOG_CONTROLS: &str = "backlog-clean-controls";
    pub const RATE_LIMITED: &str = "rate-limited-10ps-beside-1000ps";
    pub const BARE: &str = "bare-loop";
    pub const SKEWED: &str = "skewed-90pct-1w";
}

/// End-to-end lag (receiver's clock minus publish time), in milliseconds.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Lag {
    pub p50: f64,
    pub p99: f64,
    pub max: f64,
}

impl Lag {
    /// Percentiles of lags in micros; `None` when there are none.
    pub fn of(mut lags_us: Vec<u64>) -> Option<Self> {
        if lags_us.is_empty() {
            return None;
        }
        lags_us.sort_unstable();
        let at = |q: f64| {
            let i = ((lags_us.len() as f64 * q).ceil() as usize).clamp(1, lags_us.len()) - 1;
            lags_us[i] as f64 / 1000.0
        };
        Some(Self {
            p50: at(0.50),
            p99: at(0.99),
            max: at(1.0),
        })
    }
}

/// CPU seconds used while a scenario ran, per process group.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct CpuSplit {
    pub workers: f64,
    pub rabbitmq: f64,
    pub redis: f64,
    pub postgres: f64,
    /// This process: publisher and receiver.
    pub bench: f64,
    /// Everything else on the machine (other processes, kernel): interference.
    pub other: f64,
}

/// One scenario's result. For the baselines, `delivered` counts messages or requests done.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Outcome {
    pub scenario: String,
    /// Which round of `--repeat` (none when there is one).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub round: Option<u32>,
    pub workers: usize,
    /// Endpoints of the bench tenant that each event goes to.
    pub fanout: usize,
    /// Endpoints of other tenants registered in the namespace.
    pub other_endpoints: u64,
    /// Events (or messages, or requests) sent.
    pub sent: u64,
    pub expected: u64,
    pub delivered: u64,
    pub duplicates: u64,
    pub seconds: f64,
    /// Deliveries (messages round trip, requests) per second.
    pub rate: f64,
    /// Broker baseline: publish-only and drain-only rates.
    pub publish_rate: Option<f64>,
    pub drain_rate: Option<f64>,
    /// Paced scenario: the publish rate asked for.
    pub target_rate: Option<f64>,
    pub lag_ms: Option<Lag>,
    pub worker_cpu_ms_per_1k: Option<f64>,
    pub worker_peak_rss_mib: Option<f64>,
    pub cpu_seconds: Option<CpuSplit>,
    /// Worker metrics: `hookfleet_deliveries_total{result="delivered"}` summed.
    pub metric_delivered: Option<f64>,
    /// Worker metrics: `hookfleet_consumer_restarts_total` summed. Non-zero means the broker
    /// connection was lost during the run.
    pub consumer_restarts: f64,
    /// With a message history: `hookfleet_history_dropped_total` summed, and the attempts
    /// PostgreSQL holds once the workers stopped (they flush as they stop).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub history_dropped: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub history_attempts: Option<u64>,
    /// What happened to the services during the run (broker connection lost, Redis
    /// restarted): when set, the numbers say nothing about hookfleet.
    pub disturbed: Option<String>,
    pub signatures_checked: u64,
    pub bad_signatures: u64,
    pub timed_out: bool,
    pub error: Option<String>,
}

impl Outcome {
    pub fn new(scenario: &str) -> Self {
        Self {
            scenario: scenario.to_owned(),
            ..Self::default()
        }
    }

    /// Lost events, a bad signature, or an error.
    pub fn failed(&self) -> bool {
        self.delivered < self.expected || self.bad_signatures > 0 || self.error.is_some()
    }
}

fn opt(v: Option<f64>, digits: usize) -> String {
    v.map_or("—".to_owned(), |v| format!("{v:.digits$}"))
}

/// The results table.
pub fn results_table(outcomes: &[Outcome]) -> String {
    let mut out = String::from(
        "| scenario | workers | endpoints (own + others) | delivered / expected | dups | seconds | rate /s | lag p50 / p99 / max ms | worker CPU ms / 1k | worker peak RSS MiB | CPU s worker / rabbit / redis / postgres / bench / other | status |\n\
         |---|---|---|---|---|---|---|---|---|---|---|---|\n",
    );
    for o in outcomes {
        let lag = o.lag_ms.map_or("—".to_owned(), |l| {
            format!("{:.1} / {:.1} / {:.1}", l.p50, l.p99, l.max)
        });
        let cpu = o.cpu_seconds.map_or("—".to_owned(), |c| {
            format!(
                "{:.1} / {:.1} / {:.1} / {:.1} / {:.1} / {:.1}",
                c.workers, c.rabbitmq, c.redis, c.postgres, c.bench, c.other
            )
        });
        let mut rate = format!("{:.0}", o.rate);
        if let (Some(p), Some(d)) = (o.publish_rate, o.drain_rate) {
            rate = format!("{rate} (publish {p:.0}, drain {d:.0})");
        }
        if let Some(t) = o.target_rate {
            rate = format!("{rate} (paced at {t:.0})");
        }
        let mut status = match (&o.error, o.timed_out, o.failed()) {
            (Some(e), _, _) => format!("FAILED: {e}"),
            (None, true, _) => "TIMED OUT".to_owned(),
            (None, false, true) => "LOST EVENTS".to_owned(),
            _ => "ok".to_owned(),
        };
        if let Some(why) = &o.disturbed {
            status += &format!(" — DISTURBED: {why}");
        }
        out += &format!(
            "| {} | {} | {} + {} | {} / {} | {} | {:.2} | {} | {} | {} | {} | {} | {} |\n",
            match o.round {
                Some(round) => format!("{} (round {round})", o.scenario),
                None => o.scenario.clone(),
            },
            o.workers,
            o.fanout,
            o.other_endpoints,
            o.delivered,
            o.expected,
            o.duplicates,
            o.seconds,
            rate,
            lag,
            opt(o.worker_cpu_ms_per_1k, 1),
            opt(o.worker_peak_rss_mib, 1),
            cpu,
            status,
        );
    }
    out
}

/// One row of the targets table: what, the target, the measured value, and pass/fail.
struct Check {
    what: String,
    target: &'static str,
    measured: Option<f64>,
    unit: &'static str,
    pass: fn(f64) -> bool,
    /// How the rounds' values make the one judged.
    over_rounds: Over,
}

/// The value judged over rounds: the median, or the highest for a peak.
#[derive(Debug, Clone, Copy)]
enum Over {
    Median,
    Highest,
}

impl Over {
    fn of(self, values: &[f64]) -> Option<f64> {
        match self {
            Self::Median => median(values),
            Self::Highest => values.iter().copied().reduce(f64::max),
        }
    }

    fn name(self) -> &'static str {
        match self {
            Self::Median => "median",
            Self::Highest => "highest",
        }
    }
}

/// The targets beside the measured values. With more than one round (`--repeat`),
/// each target's measured value is the median of its rounds' (the highest, for a peak), and
/// every round's is listed: on a shared machine one pair of runs can be 15 % apart from the
/// next.
pub fn targets_table(rounds: &[Vec<Outcome>]) -> String {
    let per_round: Vec<Vec<Check>> = rounds.iter().map(|o| checks(o)).collect();
    let Some(first) = per_round.first() else {
        return String::new();
    };
    let mut out = String::from("| target | wanted | measured | pass/fail |\n|---|---|---|---|\n");
    for (i, c) in first.iter().enumerate() {
        let values: Vec<f64> = (per_round.iter())
            .filter_map(|checks| checks[i].measured)
            .filter(|v| v.is_finite())
            .collect();
        let (measured, verdict) = match c.over_rounds.of(&values) {
            Some(v) => {
                let verdict = if c.target == "(reported)" {
                    "—"
                } else if (c.pass)(v) {
                    "pass"
                } else {
                    "FAIL"
                };
                let mut measured = format!("{}{}", number(v), c.unit);
                if values.len() > 1 {
                    let each: Vec<String> = values.iter().map(|v| number(*v)).collect();
                    let (how, n) = (c.over_rounds.name(), values.len());
                    let interval = (matches!(c.over_rounds, Over::Median))
                        .then(|| median_interval(&values))
                        .flatten()
                        .map(|(low, high)| format!(", 95 % CI {}–{}", number(low), number(high)))
                        .unwrap_or_default();
                    measured += &format!(" ({how} of {n}{interval}: {})", each.join(", "));
                }
                (measured, verdict)
            }
            None => ("—".to_owned(), "n/a"),
        };
        out += &format!("| {} | {} | {measured} | {verdict} |\n", c.what, c.target);
    }
    out
}

fn number(v: f64) -> String {
    let digits = if v >= 100.0 { 0 } else { 2 };
    format!("{v:.digits$}")
}

/// The middle value (the mean of the two middle ones for an even count).
fn median(values: &[f64]) -> Option<f64> {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let n = sorted.len();
    match n {
        0 => None,
        _ if n % 2 == 1 => Some(sorted[n / 2]),
        _ => Some((sorted[n / 2 - 1] + sorted[n / 2]) / 2.0),
    }
}

/// A 95 % confidence interval for the median the rounds are drawn from, from their order
/// alone (rounds on a shared machine do not spread normally): the k-th lowest and k-th
/// highest value, for the largest k with P(Binomial(n, ½) < k) ≤ 2.5 %. `None` under six
/// rounds, where even the lowest and highest cover less than 95 %. When it straddles a
/// target, more rounds of the same build cannot be told from noise yet.
fn median_interval(values: &[f64]) -> Option<(f64, f64)> {
    let n = values.len();
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    // P(X = k) for X ~ Binomial(n, ½), from k = 0 up; past about 1 000 rounds 2^-n underflows.
    let mut p = 0.5f64.powi(i32::try_from(n).ok()?);
    let (mut below, mut k) = (0.0, 0);
    while p > 0.0 && k < n / 2 && below + p <= 0.025 {
        below += p;
        k += 1;
        p *= (n - k + 1) as f64 / k as f64;
    }
    (k >= 1).then(|| (sorted[k - 1], sorted[n - k]))
}

/// Every target, measured on one round's outcomes.
fn checks(outcomes: &[Outcome]) -> Vec<Check> {
    let find = |n: &str| outcomes.iter().find(|o| o.scenario == n && o.rate > 0.0);
    let rate = |n: &str| find(n).map(|o| o.rate);
    let ratio = |a: Option<f64>, b: Option<f64>| Some(a? / b?);
    let one = rate(name::FANOUT1);
    let broker = rate(name::BROKER);
    let slowest_baseline = match (broker, rate(name::HTTP)) {
        (Some(b), Some(h)) => Some(b.min(h)),
        _ => None,
    };
    let paced = find(name::PACED).and_then(|o| o.lag_ms);
    let peak_rss = outcomes
        .iter()
        .filter_map(|o| o.worker_peak_rss_mib)
        .reduce(f64::max);
    let checks = [
        Check {
            what: format!("{} deliveries/s", name::FANOUT1),
            target: "≥ 15 000",
            measured: one,
            unit: "/s",
            pass: |v| v >= 15_000.0,
            over_rounds: Over::Median,
        },
        Check {
            what: format!("{} ÷ broker round trip", name::FANOUT1),
            target: "≥ 0.75",
            measured: ratio(one, broker),
            unit: "",
            pass: |v| v >= 0.75,
            over_rounds: Over::Median,
        },
        Check {
            what: format!("ratio: {} ÷ min(broker round trip, HTTP)", name::FANOUT1),
            target: "(reported)",
            measured: ratio(one, slowest_baseline),
            unit: "",
            pass: |_| true,
            over_rounds: Over::Median,
        },
        Check {
            what: format!("{} ÷ {}", name::FANOUT1_2W, name::FANOUT1),
            target: "≥ 1 (0.95: noise)",
            measured: ratio(rate(name::FANOUT1_2W), one),
            unit: "",
            pass: |v| v >= 0.95,
            over_rounds: Over::Median,
        },
        Check {
            what: format!("{} lag p50", name::PACED),
            target: "≤ 10 ms",
            measured: paced.map(|l| l.p50),
            unit: " ms",
            pass: |v| v <= 10.0,
            over_rounds: Over::Median,
        },
        Check {
            what: format!("{} lag p99", name::PACED),
            target: "≤ 50 ms",
            measured: paced.map(|l| l.p99),
            unit: " ms",
            pass: |v| v <= 50.0,
            over_rounds: Over::Median,
        },
        Check {
            what: format!("{} worker CPU per 1 000 deliveries", name::FANOUT1),
            target: "≤ 50 ms",
            measured: find(name::FANOUT1).and_then(|o| o.worker_cpu_ms_per_1k),
            unit: " ms",
            pass: |v| v <= 50.0,
            over_rounds: Over::Median,
        },
        Check {
            what: "worker peak RSS (any scenario)".to_owned(),
            target: "≤ 64 MiB",
            measured: peak_rss,
            unit: " MiB",
            pass: |v| v <= 64.0,
            over_rounds: Over::Highest,
        },
        Check {
            what: format!(
                "{} ÷ {} (endpoint deliveries/s)",
                name::FANOUT10,
                name::FANOUT1
            ),
            target: "≥ 2",
            measured: ratio(rate(name::FANOUT10), one),
            unit: "",
            pass: |v| v >= 2.0,
            over_rounds: Over::Median,
        },
        Check {
            what: format!("{} ÷ {}", name::MANY_TENANTS, name::FANOUT1),
            target: "≥ 0.95",
            measured: ratio(rate(name::MANY_TENANTS), one),
            unit: "",
            pass: |v| v >= 0.95,
            over_rounds: Over::Median,
        },
    ];
    // Healthy lag p99 of the slow and dead-endpoint scenarios: at most 100 ms each.
    let p99_at_most_100ms = |n: &'static str, what: &str| Check {
        what: format!("{n} {what} lag p99"),
        target: "≤ 100 ms",
        measured: find(n).and_then(|o| o.lag_ms).map(|l| l.p99),
        unit: " ms",
        pass: |v| v <= 100.0,
        over_rounds: Over::Median,
    };
    let cpu = |n: &str| find(n).and_then(|o| o.worker_cpu_ms_per_1k);
    let lean = [
        Check {
            what: format!(
                "{} ÷ {} (drain, deliveries/s)",
                name::BACKLOG_CLEAN,
                name::BARE
            ),
            target: "≥ 0.75 (aim 0.9)",
            measured: ratio(rate(name::BACKLOG_CLEAN), rate(name::BARE)),
            unit: "",
            pass: |v| v >= 0.75,
            over_rounds: Over::Median,
        },
        Check {
            what: format!(
                "{} ÷ {} (CPU per delivery)",
                name::BACKLOG_CLEAN,
                name::BARE
            ),
            target: "≤ 1.3 (aim 1.0)",
            measured: ratio(cpu(name::BACKLOG_CLEAN), cpu(name::BARE)),
            unit: "",
            pass: |v| v <= 1.3,
            over_rounds: Over::Median,
        },
        Check {
            what: format!("{} ÷ {}", name::SKEWED, name::FANOUT1),
            target: "(reported)",
            measured: ratio(rate(name::SKEWED), one),
            unit: "",
            pass: |_| true,
            over_rounds: Over::Median,
        },
    ];
    let isolation = [
        p99_at_most_100ms(name::SLOW, "arrival (all delivered)"),
        p99_at_most_100ms(name::DEAD_SHORT, "healthy"),
        p99_at_most_100ms(name::DEAD_LONG, "healthy"),
        p99_at_most_100ms(name::RATE_LIMITED, "healthy"),
        Check {
            what: format!("{} ÷ {}", name::BACKLOG_CONTROLS, name::BACKLOG_CLEAN),
            target: "(reported)",
            measured: ratio(rate(name::BACKLOG_CONTROLS), rate(name::BACKLOG_CLEAN)),
            unit: "",
            pass: |_| true,
            over_rounds: Over::Median,
        },
        Check {
            what: format!("{} ÷ {}", name::BACKLOG_HISTORY, name::BACKLOG_CLEAN),
            target: "≥ 0.9",
            measured: ratio(rate(name::BACKLOG_HISTORY), rate(name::BACKLOG_CLEAN)),
            unit: "",
            pass: |v| v >= 0.9,
            over_rounds: Over::Median,
        },
        Check {
            what: format!("{}: history records dropped", name::BACKLOG_HISTORY),
            target: "0",
            measured: find(name::BACKLOG_HISTORY).and_then(|o| {
                // A record missing from PostgreSQL counts as dropped, counted or not.
                let missing = (o.expected as f64 - o.history_attempts? as f64).max(0.0);
                Some(o.history_dropped?.max(missing))
            }),
            unit: "",
            pass: |v| v == 0.0,
            over_rounds: Over::Highest,
        },
        Check {
            what: format!(
                "{} ÷ {} (healthy deliveries/s)",
                name::BACKLOG_DEAD,
                name::BACKLOG_CLEAN
            ),
            target: "≥ 0.9",
            measured: ratio(rate(name::BACKLOG_DEAD), rate(name::BACKLOG_CLEAN)),
            unit: "",
            pass: |v| v >= 0.9,
            over_rounds: Over::Median,
        },
    ];
    checks.into_iter().chain(lean).chain(isolation).collect()
}

pub fn json_lines(outcomes: &[Outcome]) -> String {
    outcomes
        .iter()
        .filter_map(|o| serde_json::to_string(o).ok())
        .map(|line| line + "\n")
        .collect()
}

/// Each clustered scenario beside its single-node twin of the same run, as ratios.
pub fn cluster_table(outcomes: &[Outcome]) -> Option<String> {
    let pairs = [
        (name::FANOUT1, name::FANOUT1_CLUSTER),
        (name::PACED, name::PACED_CLUSTER),
    ];
    let find = |n: &str| outcomes.iter().find(|o| o.scenario == n && !o.failed());
    let mut out = String::from(
        "| scenario | single node | 3-node cluster | cluster ÷ single |\n|---|---:|---:|---:|\n",
    );
    let mut any = false;
    for (single, clustered) in pairs {
        let (Some(a), Some(b)) = (find(single), find(clustered)) else {
            continue;
        };
        any = true;
        let ratio = |x: Option<f64>, y: Option<f64>| match (x, y) {
            (Some(x), Some(y)) if x > 0.0 => format!("{:.2}×", y / x),
            _ => "—".to_owned(),
        };
        let p99 = |o: &Outcome| o.lag_ms.as_ref().map(|l| l.p99);
        out.push_str(&format!(
            "| {single}: deliveries/s | {:.0} | {:.0} | {} |\n",
            a.rate,
            b.rate,
            ratio(Some(a.rate), Some(b.rate))
        ));
        out.push_str(&format!(
            "| {single}: worker CPU ms per 1k | {} | {} | {} |\n",
            opt(a.worker_cpu_ms_per_1k, 0),
            opt(b.worker_cpu_ms_per_1k, 0),
            ratio(a.worker_cpu_ms_per_1k, b.worker_cpu_ms_per_1k)
        ));
        out.push_str(&format!(
            "| {single}: arrival lag p99 ms | {} | {} | {} |\n",
            opt(p99(a), 1),
            opt(p99(b), 1),
            ratio(p99(a), p99(b))
        ));
    }
    any.then_some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn backlog_round(clean: f64, dead: f64) -> Vec<Outcome> {
        let mut c = Outcome::new(name::BACKLOG_CLEAN);
        c.rate = clean;
        let mut d = Outcome::new(name::BACKLOG_DEAD);
        d.rate = dead;
        vec![c, d]
    }

    fn backlog_row(table: &str) -> &str {
        (table.lines())
            .find(|l| l.starts_with(&format!("| {} ÷", name::BACKLOG_DEAD)))
            .expect("a backlog row")
    }

    #[test]
    fn a_target_is_judged_on_the_median_of_its_rounds() {
        // One round fails, the other two pass: the median (0.95) passes.
        let rounds = [
            backlog_round(1000.0, 800.0),
            backlog_round(1000.0, 950.0),
            backlog_round(1000.0, 1000.0),
        ];
        let row = backlog_row(&targets_table(&rounds)).to_owned();
        assert!(
            row.contains("| 0.95 (median of 3: 0.80, 0.95, 1.00) | pass |"),
            "{row}"
        );
        // Two of three fail: so does the median.
        let rounds = [
            backlog_round(1000.0, 800.0),
            backlog_round(1000.0, 850.0),
            backlog_round(1000.0, 1000.0),
        ];
        let row = backlog_row(&targets_table(&rounds)).to_owned();
        assert!(row.contains("| 0.85 (median of 3:"), "{row}");
        assert!(row.ends_with("| FAIL |"), "{row}");
    }

    #[test]
    fn a_median_of_six_rounds_or_more_has_its_confidence_interval() {
        assert_eq!(median_interval(&[1.0, 2.0, 3.0, 4.0, 5.0]), None);
        // Six: only the lowest and highest cover 95 % (96.9 %).
        let six = [0.9, 0.7, 1.1, 0.8, 1.0, 0.95];
        assert_eq!(median_interval(&six), Some((0.7, 1.1)));
        // Sixty: the 22nd lowest and the 22nd highest.
        let sixty: Vec<f64> = (1..=60).map(f64::from).collect();
        assert_eq!(median_interval(&sixty), Some((22.0, 39.0)));
        let rounds: Vec<_> = (six.iter())
            .map(|dead| backlog_round(1000.0, 1000.0 * dead))
            .collect();
        let row = backlog_row(&targets_table(&rounds)).to_owned();
        assert!(
            row.contains("| 0.93 (median of 6, 95 % CI 0.70–1.10: 0.90,"),
            "{row}"
        );
    }

    #[test]
    fn a_peak_is_judged_on_its_highest_round() {
        let round = |mib| {
            let mut o = Outcome::new(name::FANOUT1);
            o.worker_peak_rss_mib = Some(mib);
            vec![o]
        };
        let table = targets_table(&[round(40.0), round(70.0), round(50.0)]);
        let row = (table.lines())
            .find(|l| l.starts_with("| worker peak RSS"))
            .expect("an RSS row");
        assert!(
            row.ends_with("| 70.00 MiB (highest of 3: 40.00, 70.00, 50.00) | FAIL |"),
            "{row}"
        );
    }

    #[test]
    fn one_round_reads_as_before() {
        let row = backlog_row(&targets_table(&[backlog_round(1000.0, 920.0)])).to_owned();
        assert!(row.ends_with("| 0.92 | pass |"), "{row}");
        assert_eq!(median(&[]), None);
        assert_eq!(median(&[3.0, 1.0, 2.0, 10.0]), Some(2.5));
    }
}
