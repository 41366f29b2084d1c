//! `hookfleet-bench`: the end-to-end benchmark, against the local RabbitMQ
//! (127.0.0.1:5672) and Redis (127.0.0.1:6379).
//!
//! Build everything first (`cargo build --release`), then
//! `cargo run --release -p hookfleet-bench -- [--events N] [--repeat N] [--json] [--smoke]`. The workers
//! are the real `hookfleet` release binary found next to this executable (built with
//! `cargo build --release --bin hookfleet` when missing).
//!
//! In one run: the broker and HTTP baselines, then the pipeline with one and two workers,
//! fan-out 10, many other tenants' endpoints, and a paced run at half the fan-out-1 rate. A
//! markdown table of results and one of the targets go to stdout (then, with `--json`, one
//! JSON object per scenario); progress goes to stderr. The exit status is non-zero when any
//! scenario lost events or failed; targets never change it.
//!
//! The worker processes, their settings, the receiver, the publishing load and the clean-up
//! are the shared harness's (`hookfleet_testkit`).
//!
//! # Layout
//! - [`baseline`]: raw lapin and raw reqwest baselines.
//! - [`pipeline`]: one pipeline scenario, start to clean-up, and what the receiver got.
//! - [`load`]: the bench's events.
//! - [`endpoints`]: the bench tenant's endpoints and the other tenants'.
//! - [`marks`]: `--marks N`, what a de-duplication mark costs in Redis memory.
//! - [`api_publish`]: `--api-publish N`, what a JSON Schema costs `POST /v1/events`.
//! - [`ordered`]: `--ordered`, ordered endpoints' throughput, order under failures, and cost.
//! - [`fleet`]: the workers' binary and settings, and Redis's identity.
//! - [`procfs`]: CPU and memory from `/proc`.
//! - [`scenarios`]: the scenarios of a run, in order.
//! - [`report`]: the tables and JSON.
#![forbid(unsafe_code)]

mod api_publish;
mod bare;
mod baseline;
mod endpoints;
mod fleet;
mod history;
mod load;
mod marks;
mod ordered;
mod pipeline;
mod procfs;
mod report;
mod scenarios;

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Mutex;
use std::time::Duration;

use clap::Parser;
use hookfleet_testkit::{Receiver, WorkerEnv};

use report::name;

/// Only the local broker and Redis are ever targeted.
pub use hookfleet_testkit::{AMQP_URL, REDIS_URL};
/// The busy event type of every scenario.
pub const EVENT_TYPE: &str = "log.blocked";
/// The seed catalog the workers run with (their default), to which every endpoint subscribes.
pub const CATALOG: [&str; 5] = [
    "log.blocked",
    "log.pending_approval",
    "log.failed",
    "approval.approved",
    "approval.rejected",
];

/// Benchmark the hookfleet pipeline end to end. Run `cargo build --release` first.
#[derive(Debug, Parser)]
#[command(name = "hookfleet-bench")]
struct Args {
    /// Events per scenario (fan-out 10 publishes a tenth of them) [default: 50000; 500 with --smoke].
    #[arg(long)]
    events: Option<u64>,
    /// Also print one JSON object per scenario after the tables.
    #[arg(long)]
    json: bool,
    /// A tiny run for CI: 500 events, 1 000 other endpoints, a 2-second paced run.
    #[arg(long)]
    smoke: bool,
    /// Longest a scenario may run before it reports what it got, in seconds.
    #[arg(long, default_value_t = 120)]
    timeout: u64,
    /// The baselines' concurrency: the broker baseline's prefetch and the HTTP baseline's
    /// requests at once.
    #[arg(long, default_value_t = 64)]
    concurrency: usize,
    /// The workers' HOOKFLEET_MAX_INFLIGHT [default: the worker's own default].
    #[arg(long)]
    max_inflight: Option<usize>,
    /// The workers' HOOKFLEET_ATTEMPT_LOG_LEN (0 turns the attempt log off, to measure its
    /// cost) [default: the worker's own default].
    #[arg(long)]
    attempt_log_len: Option<usize>,
    /// Length of each fault-isolation scenario at its steady rate, in seconds; the long dead-
    /// endpoint run lasts six times this [default: 10; 2 with --smoke].
    #[arg(long)]
    isolation_seconds: Option<u64>,
    /// Endpoints of other tenants in the many-tenants scenario [default: 100000; 1000 with --smoke].
    #[arg(long)]
    other_endpoints: Option<u64>,
    /// Length of the paced scenario, in seconds [default: 20; 2 with --smoke].
    #[arg(long)]
    paced_seconds: Option<u64>,
    /// Run only these scenarios (comma-separated names as in the table; the paced one also
    /// runs fanout1-1w, whose rate it needs) [default: all but the clustered ones, which
    /// run only when named: fanout1-1w-cluster and paced-50pct-1w-cluster start
    /// scripts/cluster and repeat fanout1-1w and paced-50pct-1w on it].
    #[arg(long, value_delimiter = ',')]
    only: Vec<String>,
    /// Measure only what a de-duplication mark costs in Redis memory: insert this many marks
    /// (e.g. 1000000) in each layout on a private redis-server, print the table, and exit.
    #[arg(long)]
    marks: Option<u64>,
    /// Measure only the message history's reads: generate this many attempts (e.g.
    /// 10000000; a quarter as many events) in the local PostgreSQL, time the event list, the
    /// event by id and an endpoint's statistics, print the table, drop it all, and exit.
    #[arg(long)]
    history_reads: Option<u64>,
    /// Measure only what a JSON Schema on the event type costs `POST /v1/events`: publish
    /// this many events a round through one `hookfleet api`, without and with a schema, and
    /// print the table.
    #[arg(long)]
    api_publish: Option<u64>,
    /// Measure only ordered endpoints: one endpoint's in-order rate (10 ms receiver, then
    /// 20 % of requests failing), and the CPU of 1,000 ordered endpoints with a trickle of
    /// events against 1,000 unordered ones; print the table.
    #[arg(long)]
    ordered: bool,
    /// Run the chosen scenarios this many times over, one round after the other, and judge
    /// each target on the median of its rounds, the peak RSS on the highest (each round's
    /// value is listed beside it). Even rounds run the backlog drains in reverse order, so
    /// that backlog-clean, which the others are compared with, does not always run first.
    /// One pair of runs on a shared machine can be 15 % apart from the next: use 5 for a
    /// ratio worth quoting.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=20))]
    repeat: u32,
    /// Internal: run as the bare loop's child process (QUEUE,URL,COUNT,KEY_PREFIX).
    #[arg(long, hide = true)]
    bare_loop: Option<bare::Job>,
    /// The `hookfleet` binary the workers run [default: the one next to this executable].
    /// Point it at an older build to compare two workers in the same run.
    #[arg(long, env = "HOOKFLEET_BENCH_WORKER")]
    worker: Option<PathBuf>,
    /// Approximate size of each event body, in bytes.
    #[arg(long, default_value_t = 500)]
    payload_bytes: usize,
}

/// The settings every scenario reads.
#[derive(Debug, Clone)]
pub struct Settings {
    pub events: u64,
    pub timeout: Duration,
    pub concurrency: usize,
    pub max_inflight: Option<usize>,
    pub attempt_log_len: Option<usize>,
    pub isolation_seconds: u64,
    pub other_endpoints: u64,
    pub paced_seconds: u64,
    pub payload_bytes: usize,
    /// Scenario names to run; empty = all.
    pub only: Vec<String>,
}

impl Settings {
    /// Whether scenario `name` is to run.
    pub fn wants(&self, name: &str) -> bool {
        if name == report::name::FANOUT1_CLUSTER || name == report::name::PACED_CLUSTER {
            return self.only.iter().any(|n| n == name);
        }
        self.only.is_empty()
            || self.only.iter().any(|n| n == name)
            || (name == report::name::FANOUT1
                && (self.wants(report::name::PACED) || self.wants(report::name::PACED_CLUSTER)))
    }
}

/// What the scenarios share.
#[derive(Debug)]
pub struct Bench {
    pub settings: Settings,
    /// Endpoint `k` of the bench tenant is `/ep/<k>`; the HTTP baseline posts to `/baseline`.
    pub receiver: Receiver,
    pub worker_binary: PathBuf,
    /// Where worker logs go.
    pub log_dir: PathBuf,
    /// `scripts/cluster`'s clusters, when a clustered scenario is to run.
    pub clusters: Option<hookfleet_testkit::cluster::Clusters>,
    /// Every namespace created, so an interrupted run can still clean up.
    namespaces: Mutex<Vec<WorkerEnv>>,
}

impl Bench {
    pub fn track(&self, env: &WorkerEnv) {
        if let Ok(mut list) = self.namespaces.lock() {
            list.push(env.clone());
        }
    }
}

/// Unix time in microseconds.
pub fn unix_micros() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as u64)
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    match start(args).await {
        Ok(code) => code,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}

/// The binary and the log folder of a measurement that runs on its own (`--api-publish`,
/// `--ordered`).
fn standalone(args: &Args) -> anyhow::Result<(PathBuf, PathBuf)> {
    let binary = match &args.worker {
        Some(path) => path.clone(),
        None => fleet::worker_binary()?,
    };
    let log_dir = std::env::temp_dir().join(format!("hookfleet-bench-{}", std::process::id()));
    Ok((binary, log_dir))
}

async fn start(args: Args) -> anyhow::Result<ExitCode> {
    if let Some(job) = args.bare_loop {
        bare::child(job).await?;
        return Ok(ExitCode::SUCCESS);
    }
    if let Some(n) = args.marks {
        println!("{}", marks::run(n.max(1_000)).await?);
        return Ok(ExitCode::SUCCESS);
    }
    if let Some(n) = args.api_publish {
        let (binary, log_dir) = standalone(&args)?;
        println!("{}", api_publish::run(&binary, &log_dir, n.max(100)).await?);
        return Ok(ExitCode::SUCCESS);
    }
    if args.ordered {
        let (binary, log_dir) = standalone(&args)?;
        println!("{}", ordered::run(&binary, &log_dir).await?);
        return Ok(ExitCode::SUCCESS);
    }
    if let Some(n) = args.history_reads {
        println!("{}", history::reads(n.max(1_000)).await?);
        return Ok(ExitCode::SUCCESS);
    }
    let settings = Settings {
        events: args
            .events
            .unwrap_or(if args.smoke { 500 } else { 50_000 })
            .max(10),
        timeout: Duration::from_secs(args.timeout.max(1)),
        concurrency: args.concurrency.clamp(1, 10_000),
        max_inflight: args.max_inflight.map(|n| n.clamp(1, 65_535)),
        attempt_log_len: args.attempt_log_len,
        isolation_seconds: args
            .isolation_seconds
            .unwrap_or(if args.smoke { 2 } else { 10 }),
        other_endpoints: args
            .other_endpoints
            .unwrap_or(if args.smoke { 1_000 } else { 100_000 }),
        paced_seconds: args
            .paced_seconds
            .unwrap_or(if args.smoke { 2 } else { 20 }),
        payload_bytes: args.payload_bytes.clamp(100, 200 * 1024),
        only: args.only.clone(),
    };
    let known = [
        name::BROKER,
        name::HTTP,
        name::FANOUT1,
        name::FANOUT1_2W,
        name::FANOUT10,
        name::MANY_TENANTS,
        name::PACED,
        name::FANOUT1_CLUSTER,
        name::PACED_CLUSTER,
        name::SLOW,
        name::DEAD_SHORT,
        name::DEAD_LONG,
        name::RATE_LIMITED,
        name::BACKLOG_CLEAN,
        name::BACKLOG_CONTROLS,
        name::BACKLOG_DEAD,
        name::BACKLOG_HISTORY,
        name::BARE,
        name::SKEWED,
    ];
    if let Some(unknown) = settings.only.iter().find(|n| !known.contains(&n.as_str())) {
        anyhow::bail!("unknown scenario {unknown:?}: use {}", known.join(", "));
    }
    let log_dir = std::env::temp_dir().join(format!("hookfleet-bench-{}", std::process::id()));
    std::fs::create_dir_all(&log_dir)?;
    let clustered = [name::FANOUT1_CLUSTER, name::PACED_CLUSTER];
    let clusters = if clustered.iter().any(|n| settings.wants(n)) {
        eprintln!("starting scripts/cluster");
        Some(tokio::task::spawn_blocking(hookfleet_testkit::cluster::start).await??)
    } else {
        None
    };
    let bench = Bench {
        clusters,
        worker_binary: match args.worker {
            Some(path) => path,
            None => fleet::worker_binary()?,
        },
        receiver: Receiver::start().await?,
        log_dir,
        settings,
        namespaces: Mutex::default(),
    };
    eprintln!(
        "hookfleet-bench: {} events per scenario, worker {}, logs in {}",
        bench.settings.events,
        bench.worker_binary.display(),
        bench.log_dir.display()
    );
    // Other work on the machine skews every number: say so up front.
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    eprintln!(
        "load average (1/5/15 min): {}",
        load.split_whitespace()
            .take(3)
            .collect::<Vec<_>>()
            .join(" ")
    );
    let rounds = async {
        let mut rounds = Vec::new();
        for number in 1..=args.repeat {
            // Rounds are named only when there is more than one.
            let round = (args.repeat > 1).then_some(number);
            if let Some(round) = round {
                eprintln!("round {round} of {}", args.repeat);
            }
            let mut outcomes = scenarios::run_all(&bench, number).await;
            outcomes.iter_mut().for_each(|o| o.round = round);
            rounds.push(outcomes);
        }
        rounds
    };
    let rounds = tokio::select! {
        rounds = rounds => rounds,
        _ = tokio::signal::ctrl_c() => {
            eprintln!("interrupted: cleaning up");
            let namespaces = bench.namespaces.lock().map(|l| l.clone()).unwrap_or_default();
            for env in namespaces {
                let baseline = baseline::queue_name(env.namespace());
                hookfleet_testkit::teardown(&env, &[baseline]).await;
            }
            return Ok(ExitCode::from(130));
        }
    };
    let outcomes: Vec<report::Outcome> = rounds.iter().flatten().cloned().collect();
    println!("{}", report::results_table(&outcomes));
    println!("{}", report::targets_table(&rounds));
    if let Some(table) = report::cluster_table(&outcomes) {
        println!("{table}");
    }
    if args.json {
        print!("{}", report::json_lines(&outcomes));
    }
    let failed: Vec<&str> = outcomes
        .iter()
        .filter(|o| o.failed())
        .map(|o| o.scenario.as_str())
        .collect();
    if failed.is_empty() {
        Ok(ExitCode::SUCCESS)
    } else {
        eprintln!("lost events or failed: {}", failed.join(", "));
        Ok(ExitCode::FAILURE)
    }
}
