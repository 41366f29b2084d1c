//! [`Fleet`]: one namespace's deployment for a test, a benchmark scenario or a fault
//! scenario: the settings of every command ([`WorkerEnv`]), the `hookfleet` binary run with
//! them, its workers and their log files, its endpoints, and tear-down.

use std::path::{Path, PathBuf};
use std::process::{Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use hookfleet_core::{Endpoint, EventFilter};
use hookfleet_producer::Publisher;
use hookfleet_store::EndpointStore;
use tokio::process::Command;

use crate::{Error, Result, WorkerEnv, WorkerProcess, teardown};

/// How long one CLI command may run before it counts as hung.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(30);

#[derive(Debug)]
pub struct Fleet {
    env: WorkerEnv,
    /// The `hookfleet` binary every command runs.
    binary: PathBuf,
    /// Where worker logs go, one file per worker named by namespace.
    log_dir: PathBuf,
    /// For the workers' probes; its timeout bounds each request.
    http: reqwest::Client,
    /// Numbers worker log files.
    workers: AtomicUsize,
}

impl Fleet {
    pub fn new(
        binary: impl Into<PathBuf>,
        log_dir: impl Into<PathBuf>,
        env: WorkerEnv,
    ) -> Result<Self> {
        let log_dir = log_dir.into();
        std::fs::create_dir_all(&log_dir)?;
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(2))
            .no_proxy()
            .build()?;
        Ok(Self {
            env,
            binary: binary.into(),
            log_dir,
            http,
            workers: AtomicUsize::new(0),
        })
    }

    pub fn namespace(&self) -> &str {
        self.env.namespace()
    }

    pub fn env(&self) -> &WorkerEnv {
        &self.env
    }

    /// Sets one variable of every command run from now on.
    pub fn set(&mut self, key: &str, value: &str) {
        self.env = self.env.clone().set(key, value);
    }

    /// `hookfleet <args>` with the fleet's settings and then `extra`, no stdin, killed if
    /// dropped. Hermetic: no `HOOKFLEET_*` variable leaks in from the caller's shell.
    pub fn command(&self, extra: &[(&str, &str)], args: &[&str]) -> Command {
        command(&self.binary, &self.env, extra, args)
    }

    /// Runs `hookfleet <args>` to completion, bounded by [`COMMAND_TIMEOUT`].
    pub async fn run(&self, extra: &[(&str, &str)], args: &[&str]) -> Result<Output> {
        let mut command = self.command(extra, args);
        let output = command
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .output();
        match tokio::time::timeout(COMMAND_TIMEOUT, output).await {
            Ok(output) => Ok(output?),
            // Dropping the future kills the child (`kill_on_drop`).
            Err(_) => Err(Error::CommandTimedOut {
                args: args.join(" "),
                timeout: COMMAND_TIMEOUT,
            }),
        }
    }

    /// Runs a command that must succeed; returns its stdout.
    pub async fn run_ok(&self, args: &[&str]) -> Result<String> {
        let output = self.run(&[], args).await?;
        if !output.status.success() {
            return Err(Error::CommandFailed {
                args: args.join(" "),
                status: output.status,
                stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
            });
        }
        Ok(String::from_utf8_lossy(&output.stdout).into_owned())
    }

    /// Starts `hookfleet worker` (with `extra` settings for this one) on a free metrics port
    /// and waits until `/readyz` answers 200.
    pub async fn spawn_worker(&self, extra: &[(&str, &str)]) -> Result<WorkerProcess> {
        let env = self.env.clone().metrics_on_free_port()?;
        let addr = env
            .get("HOOKFLEET_METRICS_ADDR")
            .unwrap_or_default()
            .to_owned();
        let n = self.workers.fetch_add(1, Ordering::Relaxed);
        let log_path = (self.log_dir).join(format!("{}-worker-{n}.log", self.namespace()));
        let command = command(&self.binary, &env, extra, &["worker"]);
        WorkerProcess::spawn(command, &addr, log_path, self.http.clone()).await
    }

    /// Starts `hookfleet api` (with `extra` settings) on a free port of 127.0.0.1 and waits
    /// until its `/readyz` answers 200. The process handle is the workers' type: the two share
    /// their probes and their stop and kill.
    pub async fn spawn_api(&self, extra: &[(&str, &str)]) -> Result<WorkerProcess> {
        let addr = format!("127.0.0.1:{}", crate::free_port()?);
        let n = self.workers.fetch_add(1, Ordering::Relaxed);
        let log_path = (self.log_dir).join(format!("{}-api-{n}.log", self.namespace()));
        let mut env: Vec<(&str, &str)> = vec![("HOOKFLEET_API_ADDR", addr.as_str())];
        env.extend_from_slice(extra);
        let command = command(&self.binary, &self.env, &env, &["api"]);
        WorkerProcess::spawn(command, &addr, log_path, self.http.clone()).await
    }

    /// Declares the namespace's exchanges and queues (`hookfleet topology`), so that events
    /// can be published before any worker runs.
    pub async fn declare(&self) -> Result<()> {
        self.run_ok(&["topology"]).await.map(drop)
    }

    /// A publisher of this namespace on a connection of its own.
    pub async fn publisher(&self) -> Result<Publisher> {
        Ok(Publisher::connect(self.env.amqp_url(), self.namespace().parse()?).await?)
    }

    pub fn store(&self) -> Result<EndpointStore> {
        let redis = hookfleet_store::connect(self.env.redis_url())?;
        Ok(EndpointStore::new(redis, &self.namespace().parse()?))
    }

    /// Writes an endpoint of `tenant` for `events` at `url` straight into Redis.
    pub async fn add_endpoint(&self, tenant: &str, url: &str, events: &[&str]) -> Result<Endpoint> {
        self.add_endpoint_with(tenant, url, events, |_| {}).await
    }

    /// [`Fleet::add_endpoint`], with the endpoint as `set` leaves it (its controls, say).
    pub async fn add_endpoint_with(
        &self,
        tenant: &str,
        url: &str,
        events: &[&str],
        set: impl FnOnce(&mut Endpoint),
    ) -> Result<Endpoint> {
        let events = EventFilter::parse_list(&events.join(","))?;
        let mut endpoint = Endpoint::new(tenant.parse()?, url, events, None, String::new())?;
        set(&mut endpoint);
        self.store()?.insert(&endpoint).await?;
        Ok(endpoint)
    }

    /// `hookfleet dead-letters list`: one JSON object per dead letter, oldest first.
    pub async fn dead_letters(&self) -> Result<Vec<serde_json::Value>> {
        let stdout = self
            .run_ok(&["dead-letters", "list", "--limit", "10000"])
            .await?;
        (stdout.lines().filter(|l| !l.trim().is_empty()))
            .map(|l| Ok(serde_json::from_str(l)?))
            .collect()
    }

    /// Deletes the namespace's queues, exchanges (and `extra_queues`) and Redis keys; see
    /// [`teardown`]. Stop the workers first.
    pub async fn teardown(&self, extra_queues: &[String]) {
        teardown(&self.env, extra_queues).await;
    }

    /// A run's end: stops `workers` (SIGTERM, bounded), then removes the namespace.
    pub async fn finish(self, workers: impl IntoIterator<Item = WorkerProcess>) {
        for worker in workers {
            if let Err(error) = worker.stop().await {
                eprintln!("{error}");
            }
        }
        self.teardown(&[]).await;
    }
}

fn command(binary: &Path, env: &WorkerEnv, extra: &[(&str, &str)], args: &[&str]) -> Command {
    let mut command = Command::new(binary);
    for (key, _) in std::env::vars_os() {
        if key.to_string_lossy().starts_with("HOOKFLEET_") {
            command.env_remove(key);
        }
    }
    (command.envs(env.vars()).envs(extra.iter().copied()))
        .args(args)
        .stdin(Stdio::null())
        .kill_on_drop(true);
    command
}
