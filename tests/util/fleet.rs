//! [`Fleet`]: one test's namespace and the settings the real `hookfleet` binary runs with.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::{Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use serde_json::Value;
use tokio::process::Command;

use super::cleanup::{Names, remove_namespace};
use super::{AMQP_URL, REDIS_URL, RawPublisher, Worker, free_port, random_hex};

const BIN: &str = env!("CARGO_BIN_EXE_hookfleet");
/// The contract's default catalog (§1): cleaned up even when a test narrowed the list.
const DEFAULT_EVENT_TYPES: &str = "log.blocked,log.pending_approval,log.failed,\
    approval.approved,approval.rejected,webhook.test";
/// How long one CLI command may run before the test fails instead of hanging.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(30);

/// One test's deployment: a fresh namespace and the environment of every command it runs.
#[derive(Debug)]
pub struct Fleet {
    pub namespace: String,
    /// Environment variables passed to every command (builder-style overrides via [`Fleet::env`]).
    env: BTreeMap<String, String>,
    /// Numbers worker log files.
    workers: AtomicUsize,
    /// Whether [`Fleet::cleanup`] ran; if not, `Drop` removes the namespace (after a panic).
    cleaned: bool,
}

impl Fleet {
    pub fn new() -> Self {
        let namespace = format!("t_{}", random_hex(12));
        let env = [
            ("HOOKFLEET_NAMESPACE", namespace.as_str()),
            ("HOOKFLEET_AMQP_URL", AMQP_URL),
            ("HOOKFLEET_REDIS_URL", REDIS_URL),
            ("HOOKFLEET_ALLOW_PRIVATE_TARGETS", "true"),
            ("HOOKFLEET_RETRY_DELAYS", "200ms,400ms,800ms"),
            // Short, so that timeouts and shutdowns keep tests fast.
            ("HOOKFLEET_DELIVERY_TIMEOUT", "2s"),
            // Never the default 0.0.0.0:9464, even for a command that starts a worker by mistake.
            (
                "HOOKFLEET_METRICS_ADDR",
                &format!("127.0.0.1:{}", free_port()),
            ),
            ("RUST_LOG", "info"),
            // Plain text in the log files (https://no-color.org).
            ("NO_COLOR", "1"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
        Self {
            namespace,
            env,
            workers: AtomicUsize::new(0),
            cleaned: false,
        }
    }

    /// Sets one environment variable for every command of this fleet.
    pub fn env(mut self, key: &str, value: &str) -> Self {
        self.env.insert(key.to_owned(), value.to_owned());
        self
    }

    /// Runs `hookfleet <args>` to completion (bounded) and returns what it did.
    pub async fn run(&self, args: &[&str]) -> Output {
        self.run_with(&[], args).await
    }

    /// [`Fleet::run`] with extra environment variables for this command only.
    pub async fn run_with(&self, env: &[(&str, &str)], args: &[&str]) -> Output {
        let child = self
            .command(env, args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        match tokio::time::timeout(COMMAND_TIMEOUT, child.wait_with_output()).await {
            Ok(output) => output.unwrap(),
            // Dropping the future kills the child (`kill_on_drop`).
            Err(_) => panic!(
                "`hookfleet {}` did not finish within {COMMAND_TIMEOUT:?}",
                args.join(" ")
            ),
        }
    }

    /// Runs a command that must succeed; returns its stdout.
    pub async fn run_ok(&self, args: &[&str]) -> String {
        let output = self.run(args).await;
        assert!(
            output.status.success(),
            "`hookfleet {}` failed with {}: {}",
            args.join(" "),
            output.status,
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8(output.stdout).unwrap()
    }

    pub async fn topology(&self) {
        self.run_ok(&["topology"]).await;
    }

    /// `hookfleet endpoints add`; returns the endpoint as printed.
    pub async fn add_endpoint(&self, tenant: &str, url: &str, events: &[&str]) -> Value {
        let events = events.join(",");
        let args = [
            "endpoints",
            "add",
            "--tenant",
            tenant,
            "--url",
            url,
            "--events",
            &events,
        ];
        serde_json::from_str(self.run_ok(&args).await.trim()).unwrap()
    }

    /// `hookfleet publish`; returns the event id it printed.
    pub async fn publish(&self, event_type: &str, tenant: &str, data: &str) -> String {
        let args = [
            "publish", "--type", event_type, "--tenant", tenant, "--data", data,
        ];
        let id = self.run_ok(&args).await.trim().to_owned();
        assert!(
            !id.is_empty() && !id.contains('\n'),
            "publish printed {id:?}"
        );
        id
    }

    /// Publishes `body` as any AMQP client would (docs/contract.md §1), waiting for the confirm.
    pub async fn publish_raw(&self, event_type: &str, tenant: &str, id: &str, body: &[u8]) {
        let publisher = RawPublisher::connect(&self.namespace, event_type).await;
        publisher.publish(id, Some(tenant), body).await;
    }

    /// Starts `hookfleet worker` and waits until `/readyz` answers 200.
    pub async fn spawn_worker(&self) -> Worker {
        self.spawn_worker_with(&[]).await
    }

    /// [`Fleet::spawn_worker`] with extra environment variables for this worker only.
    pub async fn spawn_worker_with(&self, env: &[(&str, &str)]) -> Worker {
        let addr = format!("127.0.0.1:{}", free_port());
        let n = self.workers.fetch_add(1, Ordering::Relaxed);
        let log_path = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
            .join(format!("{}-worker-{n}.log", self.namespace));
        let log = std::fs::File::create(&log_path).unwrap();
        // Printed, so that a failing test's output says where to look.
        eprintln!(
            "worker {n} of {}: log {}",
            self.namespace,
            log_path.display()
        );
        let mut env = env.to_vec();
        env.insert(0, ("HOOKFLEET_METRICS_ADDR", &addr));
        let child = self
            .command(&env, &["worker"])
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap();
        Worker::new(child, &addr, log_path).wait_ready().await
    }

    /// Deletes the namespace's queues, exchanges and Redis keys. Stop workers first.
    pub async fn cleanup(mut self) {
        self.cleaned = true;
        remove_namespace(self.names()).await;
    }

    fn command(&self, env: &[(&str, &str)], args: &[&str]) -> Command {
        let mut command = Command::new(BIN);
        // Hermetic: no HOOKFLEET_* setting leaks in from the developer's shell.
        for (key, _) in std::env::vars_os() {
            if key.to_string_lossy().starts_with("HOOKFLEET_") {
                command.env_remove(key);
            }
        }
        command
            .envs(&self.env)
            .envs(env.iter().copied())
            .args(args)
            .kill_on_drop(true);
        command
    }

    fn names(&self) -> Names {
        let setting = |key: &str| self.env.get(key).map(String::as_str).unwrap_or("");
        let mut event_types: Vec<String> = DEFAULT_EVENT_TYPES
            .split(',')
            .chain(setting("HOOKFLEET_EVENT_TYPES").split(','))
            .map(|t| t.trim().to_owned())
            .filter(|t| !t.is_empty())
            .collect();
        event_types.sort();
        event_types.dedup();
        let delays_ms = setting("HOOKFLEET_RETRY_DELAYS")
            .split(',')
            .filter_map(|d| humantime::parse_duration(d.trim()).ok())
            .map(|d| d.as_millis())
            .collect();
        Names {
            namespace: self.namespace.clone(),
            event_types,
            delays_ms,
        }
    }
}

impl Drop for Fleet {
    /// A test that panicked never reached `cleanup`: remove its namespace anyway, on a thread
    /// of its own because `Drop` cannot await.
    fn drop(&mut self) {
        if self.cleaned {
            return;
        }
        let names = self.names();
        let cleaner = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            runtime.block_on(async {
                let bounded =
                    tokio::time::timeout(Duration::from_secs(10), remove_namespace(names));
                let _ = bounded.await;
            });
        });
        let _ = cleaner.join();
    }
}
