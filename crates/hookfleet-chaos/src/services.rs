//! Stopping and starting this machine's RabbitMQ, Redis and PostgreSQL (the Debian packages), and
//! [`Restore`], the guard that starts them again whatever happens to a scenario.
//!
//! Everything here is synchronous (`std::process`), so that it also works from `Drop` while a
//! test panics. How the services start is `scripts/services.sh`'s, in one place for the shell
//! scripts and for this.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::bail;

/// Runs one function of `scripts/services.sh`; true when it succeeded within `limit`.
fn script(function: &str, limit: Duration) -> bool {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../scripts/services.sh");
    run("bash", &["-c", &format!(". '{path}' && {function}")], limit)
}

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
    shutdown_redis("nosave", Duration::from_secs(10))
}

/// `redis-cli shutdown save`: Redis writes its data to disk and exits, as a Redis with
/// persistence keeps it; [`start_redis`] then loads it, and [`forget_redis_dump`] removes the
/// file so that no later start finds it.
pub fn stop_redis_saving() -> anyhow::Result<()> {
    shutdown_redis("save", Duration::from_secs(30))
}

fn shutdown_redis(mode: &str, limit: Duration) -> anyhow::Result<()> {
    // The connection closes under the command, so its exit status says nothing.
    let args = ["-h", "127.0.0.1", "-p", "6379", "shutdown", mode];
    run("redis-cli", &args, limit);
    wait_for("Redis to stop", limit, || !redis_answers())
}

/// Removes the file [`stop_redis_saving`] wrote, once Redis has loaded it: this machine's
/// Redis is meant to start empty.
pub fn forget_redis_dump() -> anyhow::Result<()> {
    let config = |name: &str| -> anyhow::Result<String> {
        let output = Command::new("redis-cli")
            .args(["-h", "127.0.0.1", "-p", "6379", "config", "get", name])
            .output()?;
        let text = String::from_utf8_lossy(&output.stdout).into_owned();
        let value = text.lines().nth(1).map(str::trim).unwrap_or_default();
        anyhow::ensure!(!value.is_empty(), "redis-cli config get {name}: {text:?}");
        Ok(value.to_owned())
    };
    let path = std::path::Path::new(&config("dir")?).join(config("dbfilename")?);
    match std::fs::remove_file(&path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e.into()),
        _ => Ok(()),
    }
}

/// Starts Redis with this machine's command line and waits until it answers.
pub fn start_redis() -> anyhow::Result<()> {
    if !redis_answers() && !script("start_redis", Duration::from_secs(20)) {
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

/// `scripts/services.sh`'s `ensure_services`: whatever state the last scenario left,
/// RabbitMQ and Redis answer afterwards (or this says why not).
/// Whether PostgreSQL (the message history's) accepts connections.
pub fn postgres_accepts() -> bool {
    std::net::TcpStream::connect_timeout(&([127, 0, 0, 1], 5432).into(), Duration::from_millis(500))
        .is_ok()
}

/// Stops this machine's PostgreSQL (`pg_ctlcluster … stop`, fast mode: sessions are cut).
pub fn stop_postgres() -> anyhow::Result<()> {
    script("stop_postgres", Duration::from_secs(30));
    wait_for("PostgreSQL to stop", Duration::from_secs(30), || {
        !postgres_accepts()
    })
}

pub fn start_postgres() -> anyhow::Result<()> {
    script("start_postgres", Duration::from_secs(60));
    wait_for(
        "PostgreSQL to accept",
        Duration::from_secs(60),
        postgres_accepts,
    )
}

pub fn ensure() -> anyhow::Result<()> {
    if redis_answers() && rabbitmq_accepts() && postgres_accepts() {
        return Ok(());
    }
    eprintln!("chaos: RabbitMQ, Redis or PostgreSQL is not up; starting it");
    if !script("ensure_services", Duration::from_secs(300)) {
        bail!("`. scripts/services.sh && ensure_services` failed: run it to see why");
    }
    wait_for("Redis to answer", Duration::from_secs(10), redis_answers)?;
    wait_for(
        "PostgreSQL to accept",
        Duration::from_secs(60),
        postgres_accepts,
    )?;
    wait_for(
        "RabbitMQ to accept",
        Duration::from_secs(60),
        rabbitmq_accepts,
    )
}

/// Polls `condition` every 100 ms until it holds, or fails after `limit` naming `what`.
pub(crate) fn wait_for(
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
