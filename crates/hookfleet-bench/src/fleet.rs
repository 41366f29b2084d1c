//! The fleet under test: fresh namespaces, real `hookfleet worker` processes (the release
//! binary next to this one), and removing everything a namespace left in RabbitMQ and Redis.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use hookfleet_producer::{Broker, QueueType, Topology};
use hookfleet_store::redis;
use lapin::options::QueueDeleteOptions;
use tokio::process::{Child, Command};

use crate::{AMQP_URL, EVENT_TYPE, REDIS_URL};

/// The retry schedule the workers run with, spelled out so clean-up knows the tier names.
const RETRY_DELAYS: &str = "30s,2m,8m";
const RETRY_DELAYS_MS: [u64; 3] = [30_000, 120_000, 480_000];
/// How long a worker may take to answer `/readyz` with 200.
const READY_TIMEOUT: Duration = Duration::from_secs(30);
/// How long clean-up retries a service that is down (e.g. restarted by someone else).
const CLEANUP_PATIENCE: Duration = Duration::from_secs(30);
/// How long a worker may take to exit after SIGTERM before it is killed.
const STOP_TIMEOUT: Duration = Duration::from_secs(10);

/// A fresh namespace, `bench_<12 hex>`.
pub fn fresh_namespace() -> String {
    format!("bench_{:012x}", rand::random::<u64>() & 0xffff_ffff_ffff)
}

/// The `hookfleet` release binary: next to this executable, built if missing.
pub fn worker_binary() -> anyhow::Result<PathBuf> {
    let exe = std::env::current_exe().context("cannot find the bench's own executable")?;
    let dir = exe.parent().context("the executable has no directory")?;
    let binary = dir.join("hookfleet");
    if binary.exists() {
        return Ok(binary);
    }
    eprintln!(
        "{} is missing: running `cargo build --release --bin hookfleet`",
        binary.display()
    );
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let status = std::process::Command::new(std::env::var("CARGO").unwrap_or("cargo".into()))
        .args(["build", "--release", "--bin", "hookfleet"])
        .current_dir(root)
        .status()
        .context("cannot run cargo")?;
    if !status.success() || !binary.exists() {
        bail!(
            "could not build {}: run `cargo build --release` first",
            binary.display()
        );
    }
    Ok(binary)
}

/// A running `hookfleet worker`; killed if dropped while running.
#[derive(Debug)]
pub struct Worker {
    child: Child,
    pub pid: u32,
    /// `http://<HOOKFLEET_METRICS_ADDR>`.
    base_url: String,
    pub log_path: PathBuf,
}

impl Worker {
    /// Starts a worker for `namespace` and waits until `/readyz` answers 200.
    pub async fn spawn(
        binary: &Path,
        namespace: &str,
        concurrency: usize,
        log_path: PathBuf,
        http: &reqwest::Client,
    ) -> anyhow::Result<Self> {
        let port = std::net::TcpListener::bind("127.0.0.1:0")?
            .local_addr()?
            .port();
        let log = std::fs::File::create(&log_path)
            .with_context(|| format!("cannot create {}", log_path.display()))?;
        let mut command = Command::new(binary);
        // No HOOKFLEET_* setting leaks in from the caller's shell.
        for (key, _) in std::env::vars_os() {
            if key.to_string_lossy().starts_with("HOOKFLEET_") {
                command.env_remove(key);
            }
        }
        let child = command
            .arg("worker")
            .env("HOOKFLEET_NAMESPACE", namespace)
            .env("HOOKFLEET_AMQP_URL", AMQP_URL)
            .env("HOOKFLEET_REDIS_URL", REDIS_URL)
            .env("HOOKFLEET_ALLOW_PRIVATE_TARGETS", "true")
            .env("HOOKFLEET_METRICS_ADDR", format!("127.0.0.1:{port}"))
            .env("HOOKFLEET_CONCURRENCY", concurrency.to_string())
            .env("HOOKFLEET_EVENT_TYPES", EVENT_TYPE)
            .env("HOOKFLEET_QUEUE_TYPE", "quorum")
            .env("HOOKFLEET_RETRY_DELAYS", RETRY_DELAYS)
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("cannot start {}", binary.display()))?;
        let pid = child.id().context("the worker exited at once")?;
        let mut worker = Self {
            child,
            pid,
            base_url: format!("http://127.0.0.1:{port}"),
            log_path,
        };
        worker.wait_ready(http).await?;
        Ok(worker)
    }

    async fn wait_ready(&mut self, http: &reqwest::Client) -> anyhow::Result<()> {
        let started = Instant::now();
        while started.elapsed() < READY_TIMEOUT {
            if let Some(status) = self.child.try_wait()? {
                bail!(
                    "worker exited with {status} before ready; see {}",
                    self.log_path.display()
                );
            }
            let ready = http.get(format!("{}/readyz", self.base_url)).send().await;
            if ready.is_ok_and(|r| r.status().is_success()) {
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        bail!(
            "worker not ready after {READY_TIMEOUT:?}; see {}",
            self.log_path.display()
        )
    }

    /// Whether the process is still running.
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// The `/metrics` page, if the worker answers.
    pub async fn metrics(&self, http: &reqwest::Client) -> Option<String> {
        let response = http
            .get(format!("{}/metrics", self.base_url))
            .send()
            .await
            .ok()?;
        response.text().await.ok()
    }

    /// SIGTERM, then SIGKILL if it has not exited within [`STOP_TIMEOUT`].
    pub async fn stop(mut self) {
        let _ = std::process::Command::new("kill")
            .args(["-TERM", &self.pid.to_string()])
            .status();
        if tokio::time::timeout(STOP_TIMEOUT, self.child.wait())
            .await
            .is_err()
        {
            eprintln!("worker {} ignored SIGTERM; killing it", self.pid);
            let _ = self.child.kill().await;
        }
    }
}

/// The sum of every series of metric `name` whose labels include `label` (Prometheus text).
pub fn metric_sum(text: &str, name: &str, label: &str) -> f64 {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| {
            let (series, value) = l.rsplit_once(' ')?;
            let metric = series.split('{').next()?;
            (metric == name && series.contains(label)).then(|| value.parse::<f64>().ok())?
        })
        .sum()
}

/// Redis's `run_id` (new at every restart): this machine's Redis keeps nothing on disk, so a
/// restart during a scenario wipes its endpoints and the numbers mean nothing.
pub async fn redis_run_id() -> Option<String> {
    let client = redis::Client::open(REDIS_URL).ok()?;
    let mut connection = client.get_multiplexed_async_connection().await.ok()?;
    let info: String = redis::cmd("INFO")
        .arg("server")
        .query_async(&mut connection)
        .await
        .ok()?;
    info.lines()
        .find_map(|l| l.strip_prefix("run_id:"))
        .map(|id| id.trim().to_owned())
}

/// Deletes the namespace's queues and exchanges (`extra_queues` too) and its Redis keys.
/// A service that is down is retried for up to [`CLEANUP_PATIENCE`]; failures are printed,
/// not returned, so clean-up never hides a result.
pub async fn cleanup(namespace: &str, extra_queues: &[String]) {
    let started = Instant::now();
    loop {
        let attempt = tokio::time::timeout(
            Duration::from_secs(20),
            remove_amqp(namespace, extra_queues),
        );
        let error = match attempt.await {
            Ok(Ok(())) => break,
            Ok(Err(error)) => error.to_string(),
            Err(_) => "timed out".to_owned(),
        };
        if started.elapsed() >= CLEANUP_PATIENCE {
            eprintln!("cleanup of {namespace} in RabbitMQ failed: {error}");
            break;
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    let started = Instant::now();
    loop {
        let attempt = tokio::time::timeout(Duration::from_secs(60), remove_redis(namespace));
        let error = match attempt.await {
            Ok(Ok(())) => break,
            Ok(Err(error)) => error.to_string(),
            Err(_) => "timed out".to_owned(),
        };
        if started.elapsed() >= CLEANUP_PATIENCE {
            eprintln!("cleanup of {namespace} in Redis failed: {error}");
            break;
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

async fn remove_amqp(ns: &str, extra_queues: &[String]) -> anyhow::Result<()> {
    let broker = Broker::connect(AMQP_URL).await?;
    let topology = Topology {
        namespace: ns.parse()?,
        queue_type: QueueType::Quorum,
        event_types: vec![EVENT_TYPE.parse()?],
        retry_delays: RETRY_DELAYS_MS
            .iter()
            .map(|ms| Duration::from_millis(*ms))
            .collect(),
    };
    topology.delete(&broker).await?;
    for queue in extra_queues {
        // A channel each: a failed delete closes it.
        let channel = broker.channel().await?;
        let _ = channel
            .queue_delete(queue.as_str().into(), QueueDeleteOptions::default())
            .await;
    }
    broker.close().await;
    Ok(())
}

/// Every Redis key of the namespace: endpoints and de-duplication marks.
async fn remove_redis(namespace: &str) -> anyhow::Result<()> {
    let redis = hookfleet_store::connect(REDIS_URL)?;
    hookfleet_store::purge(&redis, namespace).await?;
    Ok(())
}
