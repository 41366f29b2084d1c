//! Stopping and starting this machine's RabbitMQ and Redis (the Debian packages), and
//! [`Restore`], the guard that starts them again whatever happens to a scenario.
//!
//! Everything here is synchronous (`std::process`), so that it also works from `Drop` while a
//! test panics. The start-up commands are those of `scripts/services.sh`.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

/// The exact command that starts this machine's Redis (no persistence: a restart loses
/// every key; production Redis runs with `appendonly yes`, see the README).
const REDIS_START: &[&str] = &[
    "--daemonize",
    "yes",
    "--bind",
    "127.0.0.1",
    "-::1",
    "--port",
    "6379",
    "--save",
    "",
    "--appendonly",
    "no",
    "--dir",
    "/var/lib/redis",
    "--logfile",
    "/var/log/redis/ci.log",
];

/// Runs `program args` with a time limit; true when it exited 0.
fn run(program: &str, args: &[&str], limit: Duration) -> bool {
    let mut child = match Command::new("timeout")
        .arg(limit.as_secs().max(1).to_string())
        .arg(program)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
    {
        Ok(child) => child,
        Err(_) => return false,
    };
    child.wait().is_ok_and(|s| s.success())
}

pub fn redis_answers() -> bool {
    let output = Command::new("timeout")
        .args(["5", "redis-cli", "-h", "127.0.0.1", "-p", "6379", "ping"])
        .stdin(Stdio::null())
        .output();
    output.is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "PONG")
}

/// Whether the broker accepts AMQP connections (a node whose app is stopped still answers
/// `rabbitmq-diagnostics ping`, so this opens a real connection).
pub fn rabbitmq_accepts() -> bool {
    std::net::TcpStream::connect_timeout(&([127, 0, 0, 1], 5672).into(), Duration::from_millis(500))
        .is_ok()
}

/// `redis-cli shutdown nosave`: Redis exits at once and forgets everything.
pub fn stop_redis() -> anyhow::Result<()> {
    // The connection closes under the command, so its exit status says nothing.
    run(
        "redis-cli",
        &["-h", "127.0.0.1", "-p", "6379", "shutdown", "nosave"],
        Duration::from_secs(10),
    );
    wait_for("Redis to stop", Duration::from_secs(10), || {
        !redis_answers()
    })
}

/// Starts Redis with this machine's command line and waits until it answers.
pub fn start_redis() -> anyhow::Result<()> {
    let _ = std::fs::create_dir_all("/var/lib/redis");
    let _ = std::fs::create_dir_all("/var/log/redis");
    if !redis_answers() && !run("redis-server", REDIS_START, Duration::from_secs(10)) {
        bail!("redis-server did not start");
    }
    wait_for("Redis to answer", Duration::from_secs(10), redis_answers)
}

/// `rabbitmqctl stop_app`: the node stays up, every connection is closed, nothing is accepted.
pub fn stop_rabbitmq_app() -> anyhow::Result<()> {
    if !run("rabbitmqctl", &["stop_app"], Duration::from_secs(60)) {
        bail!("rabbitmqctl stop_app failed");
    }
    wait_for("RabbitMQ to refuse", Duration::from_secs(10), || {
        !rabbitmq_accepts()
    })
}

/// `rabbitmqctl start_app`, then waits until the node accepts connections.
pub fn start_rabbitmq_app() -> anyhow::Result<()> {
    if !run("rabbitmqctl", &["start_app"], Duration::from_secs(120)) {
        bail!("rabbitmqctl start_app failed");
    }
    wait_for(
        "RabbitMQ to accept",
        Duration::from_secs(60),
        rabbitmq_accepts,
    )
}

/// What `scripts/services.sh`'s `ensure_services` does: whatever state the last scenario left,
/// RabbitMQ and Redis answer afterwards (or this says why not).
pub fn ensure() -> anyhow::Result<()> {
    if !redis_answers() {
        eprintln!("chaos: Redis does not answer; starting it");
        start_redis().context("starting Redis")?;
    }
    if !rabbitmq_accepts() {
        eprintln!("chaos: RabbitMQ does not accept connections; starting it");
        if !run("rabbitmqctl", &["start_app"], Duration::from_secs(60)) {
            // The node itself may be down, not just its app.
            run("rabbitmq-server", &["-detached"], Duration::from_secs(30));
            run("rabbitmqctl", &["await_startup"], Duration::from_secs(120));
            run("rabbitmqctl", &["start_app"], Duration::from_secs(60));
        }
        wait_for(
            "RabbitMQ to accept",
            Duration::from_secs(60),
            rabbitmq_accepts,
        )?;
    }
    Ok(())
}

fn wait_for(
    what: &str,
    limit: Duration,
    mut condition: impl FnMut() -> bool,
) -> anyhow::Result<()> {
    let started = Instant::now();
    while !condition() {
        if started.elapsed() > limit {
            bail!("timed out after {limit:?} waiting for {what}");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    Ok(())
}

/// Starts RabbitMQ and Redis again when dropped, synchronously, even during a panic: a
/// scenario that stops a service holds one for as long as the service may be down.
#[derive(Debug, Default)]
pub struct Restore(());

impl Restore {
    /// Checks the services are up now (a previous scenario may have died mid-fault), and
    /// returns the guard.
    pub fn new() -> anyhow::Result<Self> {
        ensure()?;
        Ok(Self(()))
    }
}

impl Drop for Restore {
    fn drop(&mut self) {
        if let Err(error) = ensure() {
            eprintln!("chaos: could not restore the services: {error:#}");
        }
    }
}
