//! [`WorkerProcess`]: one running `hookfleet worker` child process, started by
//! [`crate::Fleet::spawn_worker`] with a log file and a known metrics port, awaited until
//! `/readyz` answers 200, and stopped, killed or frozen with signals.

use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::time::{Duration, Instant};

use tokio::process::{Child, Command};

use crate::{Error, Result, metric_sum};

/// How long a worker may take to answer `/readyz` with 200 after it starts.
const READY_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a worker may take to exit after SIGTERM before it is killed.
const STOP_TIMEOUT: Duration = Duration::from_secs(15);
/// How often readiness and metrics are polled.
const POLL: Duration = Duration::from_millis(25);

/// A running `hookfleet worker`; killed if dropped while running.
#[derive(Debug)]
pub struct WorkerProcess {
    child: Child,
    pid: u32,
    /// `http://<HOOKFLEET_METRICS_ADDR>`.
    base_url: String,
    /// Its stdout and stderr, quoted in every error about it.
    log_path: PathBuf,
    /// For `/readyz` and `/metrics`; its timeout bounds each request.
    http: reqwest::Client,
}

impl WorkerProcess {
    /// Starts `command` (a `hookfleet worker` serving its probes on `addr`) logging to
    /// `log_path`, and waits until `/readyz` answers 200.
    pub(crate) async fn spawn(
        mut command: Command,
        addr: &str,
        log_path: PathBuf,
        http: reqwest::Client,
    ) -> Result<Self> {
        let log = std::fs::File::create(&log_path)?;
        let program = PathBuf::from(command.as_std().get_program());
        let child = (command
            .stdout(log.try_clone()?)
            .stderr(log)
            .stdin(Stdio::null()))
        .spawn()
        .map_err(|e| Error::Start(program, e))?;
        let mut worker = Self {
            pid: child.id().unwrap_or_default(),
            child,
            base_url: format!("http://{addr}"),
            log_path,
            http,
        };
        worker.wait_ready(READY_TIMEOUT).await?;
        Ok(worker)
    }

    /// Waits until `/readyz` answers 200 (again, e.g. after a consumer restart).
    pub async fn wait_ready(&mut self, timeout: Duration) -> Result<()> {
        let started = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait()? {
                let log = self.log_path.clone();
                return Err(Error::ExitedBeforeReady { status, log });
            }
            if self.ready().await == Some(200) {
                return Ok(());
            }
            if started.elapsed() >= timeout {
                let log = self.log_path.clone();
                return Err(Error::NotReady { timeout, log });
            }
            tokio::time::sleep(POLL).await;
        }
    }

    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// Where its stdout and stderr go.
    /// `http://<address it serves on>`.
    pub fn base_url(&self) -> &str {
        &self.base_url
    }

    pub fn log_path(&self) -> &Path {
        &self.log_path
    }

    /// Everything the worker wrote so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log_path).unwrap_or_default()
    }

    /// GET `path` on the metrics address: `(status, body)`, or `None` if nothing answered.
    pub async fn get(&self, path: &str) -> Option<(u16, String)> {
        let url = format!("{}{path}", self.base_url);
        let response = self.http.get(url).send().await.ok()?;
        let status = response.status().as_u16();
        Some((status, response.text().await.ok()?))
    }

    /// The status `/readyz` answers, if anything answers.
    pub async fn ready(&self) -> Option<u16> {
        self.get("/readyz").await.map(|(status, _)| status)
    }

    /// The `/metrics` page, if the worker serves it.
    pub async fn metrics(&self) -> Option<String> {
        self.get("/metrics")
            .await
            .and_then(|(s, text)| (s == 200).then_some(text))
    }

    /// Metric `name` summed over the series with all of `labels` (see [`metric_sum`]).
    pub async fn metric(&self, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        Some(metric_sum(&self.metrics().await?, name, labels))
    }

    /// Waits until [`WorkerProcess::metric`] reaches `at_least`.
    pub async fn wait_for_metric(
        &self,
        name: &str,
        labels: &[(&str, &str)],
        at_least: f64,
        timeout: Duration,
    ) -> Result<()> {
        let started = Instant::now();
        loop {
            let value = self.metric(name, labels).await;
            if value.is_some_and(|v| v >= at_least) {
                return Ok(());
            }
            if started.elapsed() >= timeout {
                let what = format!("{name}{labels:?} >= {at_least} (last {value:?})");
                let log = self.log_path.clone();
                return Err(Error::MetricTimeout { what, log });
            }
            tokio::time::sleep(POLL).await;
        }
    }

    /// Whether the process is still running.
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// SIGKILL: a crash, nothing finished or handed back politely.
    pub async fn kill(mut self) {
        let _ = self.child.kill().await;
    }

    /// SIGSTOP / SIGCONT: freezes the process without closing anything.
    pub fn freeze(&self, frozen: bool) {
        self.signal(if frozen { "-STOP" } else { "-CONT" });
    }

    /// SIGTERM (after SIGCONT, in case it is frozen) and waits for the exit; a worker still
    /// running after [`STOP_TIMEOUT`] is killed and reported.
    pub async fn stop(mut self) -> Result<ExitStatus> {
        self.freeze(false);
        self.signal("-TERM");
        match tokio::time::timeout(STOP_TIMEOUT, self.child.wait()).await {
            Ok(status) => Ok(status?),
            Err(_) => {
                let _ = self.child.kill().await;
                let (pid, log) = (self.pid, self.log_path.clone());
                Err(Error::IgnoredSigterm { pid, log })
            }
        }
    }

    /// `kill <signal> <pid>`: the standard library only sends SIGKILL, and this crate
    /// forbids the `unsafe` a direct `libc::kill` would need.
    fn signal(&self, signal: &str) {
        let _ = std::process::Command::new("kill")
            .args([signal, &self.pid.to_string()])
            .status();
    }
}
