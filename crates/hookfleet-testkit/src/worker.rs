//! One running `hookfleet worker` child process: started with exactly the settings its caller
//! chose, a free metrics port and a log file, awaited until `/readyz` answers 200, and stopped,
//! killed or frozen with signals.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use tokio::process::{Child, Command};

use crate::{Error, Result};

/// How long a worker may take to answer `/readyz` with 200.
const READY_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a worker may take to exit after SIGTERM before it is killed.
const STOP_TIMEOUT: Duration = Duration::from_secs(10);
/// How often readiness is polled while starting.
const READY_POLL: Duration = Duration::from_millis(50);

/// How to start `hookfleet` processes; the same for every worker of a run.
#[derive(Debug, Clone, Copy)]
pub struct Launch<'a> {
    /// The `hookfleet` binary.
    pub binary: &'a Path,
    /// Every setting the process gets (`HOOKFLEET_*`, `RUST_LOG`). The caller's own
    /// `HOOKFLEET_*` variables are removed first, so none leaks in from a shell.
    pub env: &'a [(String, String)],
    /// For `/readyz` and `/metrics`; its timeout bounds each request.
    pub http: &'a reqwest::Client,
    /// Put before every message printed about the process (`"chaos: "`); may be empty.
    pub label: &'a str,
}

impl Launch<'_> {
    /// `hookfleet <args>` with [`Launch::env`], no stdin, killed if dropped.
    pub fn command(&self, args: &[&str]) -> Command {
        let mut command = Command::new(self.binary);
        for (key, _) in std::env::vars_os() {
            if key.to_string_lossy().starts_with("HOOKFLEET_") {
                command.env_remove(key);
            }
        }
        command
            .args(args)
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .kill_on_drop(true);
        command
    }
}

/// A running `hookfleet worker`; killed if dropped while running.
#[derive(Debug)]
pub struct WorkerProcess {
    child: Child,
    pid: u32,
    /// `http://<HOOKFLEET_METRICS_ADDR>`.
    base_url: String,
    /// Its stdout and stderr, named in every error about it.
    log_path: PathBuf,
    http: reqwest::Client,
    /// [`Launch::label`], for the message printed when it ignores SIGTERM.
    label: String,
}

impl WorkerProcess {
    /// Starts `hookfleet worker` logging to `log_path` and waits until `/readyz` answers 200.
    pub async fn spawn(launch: &Launch<'_>, log_path: PathBuf) -> Result<Self> {
        let port = std::net::TcpListener::bind("127.0.0.1:0")?
            .local_addr()?
            .port();
        let log =
            std::fs::File::create(&log_path).map_err(|e| Error::CreateLog(log_path.clone(), e))?;
        let child = launch
            .command(&["worker"])
            .env("HOOKFLEET_METRICS_ADDR", format!("127.0.0.1:{port}"))
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .map_err(|e| Error::Start(launch.binary.to_owned(), e))?;
        let pid = child.id().ok_or(Error::ExitedAtOnce)?;
        let mut worker = Self {
            child,
            pid,
            base_url: format!("http://127.0.0.1:{port}"),
            log_path,
            http: launch.http.clone(),
            label: launch.label.to_owned(),
        };
        worker.wait_ready().await?;
        Ok(worker)
    }

    async fn wait_ready(&mut self) -> Result<()> {
        let started = Instant::now();
        while started.elapsed() < READY_TIMEOUT {
            if let Some(status) = self.child.try_wait()? {
                let log = self.log_path.clone();
                return Err(Error::ExitedBeforeReady { status, log });
            }
            if self.ready().await == Some(200) {
                return Ok(());
            }
            tokio::time::sleep(READY_POLL).await;
        }
        let log = self.log_path.clone();
        Err(Error::NotReady {
            timeout: READY_TIMEOUT,
            log,
        })
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// Where its stdout and stderr go.
    pub fn log_path(&self) -> &Path {
        &self.log_path
    }

    /// The status `/readyz` answers, if anything answers.
    pub async fn ready(&self) -> Option<u16> {
        let response = self.get("readyz").await?;
        Some(response.status().as_u16())
    }

    /// The `/metrics` page, if the worker answers.
    pub async fn metrics(&self) -> Option<String> {
        self.get("metrics").await?.text().await.ok()
    }

    async fn get(&self, path: &str) -> Option<reqwest::Response> {
        let url = format!("{}/{path}", self.base_url);
        self.http.get(url).send().await.ok()
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

    /// SIGTERM (after SIGCONT, in case it is frozen), then SIGKILL if it has not exited within
    /// [`STOP_TIMEOUT`]; true when it exited on its own and successfully.
    pub async fn stop(mut self) -> bool {
        self.freeze(false);
        self.signal("-TERM");
        match tokio::time::timeout(STOP_TIMEOUT, self.child.wait()).await {
            Ok(status) => status.is_ok_and(|s| s.success()),
            Err(_) => {
                eprintln!(
                    "{}worker {} ignored SIGTERM; killing it (log {})",
                    self.label,
                    self.pid,
                    self.log_path.display()
                );
                let _ = self.child.kill().await;
                false
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
