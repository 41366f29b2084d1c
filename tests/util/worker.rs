//! [`Worker`]: a running `hookfleet worker` child process, its probes, metrics, log and
//! shutdown.

use std::path::PathBuf;
use std::process::ExitStatus;
use std::time::{Duration, Instant};

use tokio::process::Child;

use super::{WAIT, metric_value};

/// How long a worker may take to answer `/readyz` with 200.
const READY_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a worker may take to exit after SIGTERM (docs/contract.md §7: delivery timeout + 2 s).
const STOP_TIMEOUT: Duration = Duration::from_secs(15);

/// A running `hookfleet worker`; killed if dropped while running (`kill_on_drop`).
#[derive(Debug)]
pub struct Worker {
    child: Child,
    /// `http://<HOOKFLEET_METRICS_ADDR>`.
    base_url: String,
    /// Where the worker's stdout and stderr go.
    log_path: PathBuf,
    http: reqwest::Client,
}

impl Worker {
    /// Wraps a just-spawned `hookfleet worker` serving its probes on `addr`.
    pub(super) fn new(child: Child, addr: &str, log_path: PathBuf) -> Self {
        Self {
            child,
            base_url: format!("http://{addr}"),
            log_path,
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(2))
                .build()
                .unwrap(),
        }
    }

    /// Waits (bounded) until `/readyz` answers 200; panics with the worker's log otherwise.
    pub(super) async fn wait_ready(mut self) -> Self {
        let started = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                panic!(
                    "worker exited with {status} before ready; log:\n{}",
                    self.log()
                );
            }
            if self
                .get("/readyz")
                .await
                .is_some_and(|(status, _)| status == 200)
            {
                return self;
            }
            assert!(
                started.elapsed() < READY_TIMEOUT,
                "worker not ready after {READY_TIMEOUT:?}; log:\n{}",
                self.log()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// GET `path` on the metrics address: `(status, body)`, or `None` if nothing answered.
    pub async fn get(&self, path: &str) -> Option<(u16, String)> {
        let response = self
            .http
            .get(format!("{}{path}", self.base_url))
            .send()
            .await
            .ok()?;
        let status = response.status().as_u16();
        Some((status, response.text().await.ok()?))
    }

    /// The `/metrics` page.
    pub async fn metrics(&self) -> String {
        match self.get("/metrics").await {
            Some((200, text)) => text,
            other => panic!("GET /metrics: {other:?}; log:\n{}", self.log()),
        }
    }

    /// Waits until metric `name` (summed over series with `labels`) reaches `at_least`.
    pub async fn wait_for_metric(&self, name: &str, labels: &[(&str, &str)], at_least: f64) {
        let started = Instant::now();
        loop {
            let text = self.metrics().await;
            if metric_value(&text, name, labels) >= at_least {
                return;
            }
            assert!(
                started.elapsed() < WAIT,
                "timed out waiting for {name}{labels:?} >= {at_least}; metrics:\n{text}"
            );
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    /// Everything the worker wrote so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log_path).unwrap_or_default()
    }

    /// Sends SIGTERM and waits (bounded) for the worker to exit; returns its exit status.
    pub async fn stop(mut self) -> ExitStatus {
        let pid = self.child.id().expect("the worker is still running");
        let sent = std::process::Command::new("kill")
            .args(["-TERM", &pid.to_string()])
            .status()
            .unwrap();
        assert!(sent.success(), "kill -TERM {pid} failed");
        match tokio::time::timeout(STOP_TIMEOUT, self.child.wait()).await {
            Ok(status) => status.unwrap(),
            Err(_) => panic!(
                "worker did not exit within {STOP_TIMEOUT:?} of SIGTERM; log:\n{}",
                self.log()
            ),
        }
    }

    /// SIGKILL: the worker gets no chance to finish anything (a crash).
    pub async fn kill(mut self) {
        self.child.kill().await.unwrap();
    }
}
