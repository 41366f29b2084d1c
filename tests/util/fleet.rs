//! [`Fleet`]: one test's namespace and the settings the real `hookfleet` binary runs with;
//! [`Worker`]: a running `hookfleet worker` child process, its probes and its metrics.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::{ExitStatus, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use deadpool_redis::redis;
use lapin::options::{
    BasicPublishOptions, ConfirmSelectOptions, ExchangeDeleteOptions, QueueDeleteOptions,
};
use lapin::types::{AMQPValue, FieldTable, LongString};
use lapin::{BasicProperties, Confirmation, Connection, ConnectionProperties};
use serde_json::Value;
use tokio::process::{Child, Command};

use super::{WAIT, free_port, metric_value, random_hex};

const BIN: &str = env!("CARGO_BIN_EXE_hookfleet");
const AMQP_URL: &str = "amqp://guest:guest@127.0.0.1:5672/%2f";
const REDIS_URL: &str = "redis://127.0.0.1:6379";
/// The contract's default catalog (§1): cleaned up even when a test narrowed the list.
const DEFAULT_EVENT_TYPES: &str = "log.blocked,log.pending_approval,log.failed,\
    approval.approved,approval.rejected,webhook.test";
/// How long one CLI command may run before the test fails instead of hanging.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a worker may take to answer `/readyz` with 200.
const READY_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a worker may take to exit after SIGTERM (contract §7: delivery timeout + 2 s).
const STOP_TIMEOUT: Duration = Duration::from_secs(15);

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

    /// Publishes `body` as any AMQP client would (contract §1), waiting for the confirm.
    pub async fn publish_raw(&self, event_type: &str, tenant: &str, id: &str, body: &[u8]) {
        let connection = Connection::connect(AMQP_URL, ConnectionProperties::default())
            .await
            .unwrap();
        let channel = connection.create_channel().await.unwrap();
        channel
            .confirm_select(ConfirmSelectOptions::default())
            .await
            .unwrap();
        let mut headers = FieldTable::default();
        headers.insert(
            "tenant".into(),
            AMQPValue::LongString(LongString::from(tenant)),
        );
        let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap();
        let properties = BasicProperties::default()
            .with_message_id(id.into())
            .with_type(event_type.into())
            .with_timestamp(now.as_secs())
            .with_content_type("application/json".into())
            .with_delivery_mode(2)
            .with_headers(headers);
        let exchange = format!("{}.events.{event_type}", self.namespace);
        let options = BasicPublishOptions {
            mandatory: true,
            ..Default::default()
        };
        let confirmation = channel
            .basic_publish(
                exchange.as_str().into(),
                "".into(),
                options,
                body,
                properties,
            )
            .await
            .unwrap()
            .await
            .unwrap();
        assert!(
            matches!(confirmation, Confirmation::Ack(None)),
            "publish to {exchange} not confirmed: {confirmation:?}"
        );
        connection.close(200, "published".into()).await.unwrap();
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
        let worker = Worker {
            child,
            base_url: format!("http://{addr}"),
            log_path,
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(2))
                .build()
                .unwrap(),
        };
        worker.wait_ready().await
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
    async fn wait_ready(mut self) -> Self {
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

/// Everything a namespace owns in RabbitMQ (names of contract §1 and §3).
#[derive(Debug)]
struct Names {
    namespace: String,
    event_types: Vec<String>,
    delays_ms: Vec<u128>,
}

async fn remove_namespace(names: Names) {
    if let Err(error) = remove_amqp(&names).await {
        eprintln!("cleanup of {} in RabbitMQ failed: {error}", names.namespace);
    }
    if let Err(error) = remove_redis(&names.namespace).await {
        eprintln!("cleanup of {} in Redis failed: {error}", names.namespace);
    }
}

async fn remove_amqp(names: &Names) -> Result<(), lapin::Error> {
    let ns = &names.namespace;
    let tiers = names
        .delays_ms
        .iter()
        .map(|ms| format!("{ns}.delay.{ms}ms"));
    let queues: Vec<String> = (names.event_types.iter())
        .map(|t| format!("{ns}.work.{t}"))
        .chain(tiers.clone())
        .chain([format!("{ns}.dead")])
        .collect();
    let exchanges: Vec<String> = (names.event_types.iter())
        .map(|t| format!("{ns}.events.{t}"))
        .chain(tiers)
        .chain([format!("{ns}.retry"), format!("{ns}.dead")])
        .collect();
    let connection = Connection::connect(AMQP_URL, ConnectionProperties::default()).await?;
    let mut channel = connection.create_channel().await?;
    for queue in &queues {
        let deleted = channel
            .queue_delete(queue.as_str().into(), QueueDeleteOptions::default())
            .await;
        if deleted.is_err() {
            // An error closes the channel; the next name needs a fresh one.
            channel = connection.create_channel().await?;
        }
    }
    for exchange in &exchanges {
        let deleted = channel
            .exchange_delete(exchange.as_str().into(), ExchangeDeleteOptions::default())
            .await;
        if deleted.is_err() {
            channel = connection.create_channel().await?;
        }
    }
    connection.close(200, "cleaned up".into()).await
}

async fn remove_redis(namespace: &str) -> redis::RedisResult<()> {
    let client = redis::Client::open(REDIS_URL)?;
    let mut connection = client.get_multiplexed_async_connection().await?;
    let pattern = format!("*{namespace}:*");
    let mut cursor: u64 = 0;
    // Bounded: 1 000 rounds of up to 1 000 keys each is far beyond any test's data.
    for _ in 0..1_000 {
        let (next, keys): (u64, Vec<String>) = redis::cmd("SCAN")
            .arg(cursor)
            .arg("MATCH")
            .arg(&pattern)
            .arg("COUNT")
            .arg(1_000)
            .query_async(&mut connection)
            .await?;
        if !keys.is_empty() {
            redis::cmd("DEL")
                .arg(&keys)
                .query_async::<()>(&mut connection)
                .await?;
        }
        if next == 0 {
            break;
        }
        cursor = next;
    }
    Ok(())
}
