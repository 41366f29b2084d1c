//! The local clusters of `scripts/cluster` (a 3-node RabbitMQ cluster, a Redis Cluster of 3
//! masters and 3 replicas): starting them, and losing one node. Synchronous, like
//! [`crate::services`], so that it also works from `Drop`.

use std::process::{Command, Stdio};
use std::time::Duration;

use anyhow::{Context, bail};

use crate::services::wait_for;

const SCRIPT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../scripts/cluster");

pub use hookfleet_testkit::cluster::Clusters;

/// Starts both clusters (or repairs them) and waits until they answer.
pub fn start() -> anyhow::Result<Clusters> {
    Ok(hookfleet_testkit::cluster::start()?)
}

/// The RabbitMQ node that leads quorum queue `queue` now.
pub fn queue_leader(node: &str, queue: &str) -> anyhow::Result<String> {
    let args = [
        "-n",
        node,
        "list_queues",
        "-q",
        "--no-table-headers",
        "name",
        "leader",
    ];
    let out = output("rabbitmqctl", &args, Duration::from_secs(30))?;
    (out.lines())
        .filter_map(|l| l.split_once('\t'))
        .find(|(name, _)| name.trim() == queue)
        .map(|(_, leader)| leader.trim().to_owned())
        .with_context(|| format!("no leader of {queue} in: {out}"))
}

/// `rabbitmqctl -n node stop_app`: the node stays in the cluster, its connections close.
pub fn stop_rabbit(node: &str) -> anyhow::Result<()> {
    output(
        "rabbitmqctl",
        &["-n", node, "stop_app"],
        Duration::from_secs(60),
    )
    .map(drop)
}

/// Starts `node`'s app again and waits until it accepts AMQP connections.
pub fn start_rabbit(node: &str) -> anyhow::Result<()> {
    output(SCRIPT, &["start-rabbit", node], Duration::from_secs(200)).map(drop)
}

/// The port of the Redis master that serves `key`'s slot now.
pub fn redis_master_of(key: &str) -> anyhow::Result<u16> {
    let port = any_redis()?;
    let slot: u16 = redis_cli(port, &["cluster", "keyslot", key])?
        .trim()
        .parse()?;
    let nodes = redis_cli(port, &["cluster", "nodes"])?;
    for line in nodes.lines() {
        let fields: Vec<&str> = line.split_whitespace().collect();
        let (Some(addr), Some(flags)) = (fields.get(1), fields.get(2)) else {
            continue;
        };
        if !flags.contains("master") || flags.contains("fail") {
            continue;
        }
        let serves = fields.iter().skip(8).any(|range| {
            let (from, to) = range.split_once('-').unwrap_or((range, range));
            matches!((from.parse::<u16>(), to.parse::<u16>()), (Ok(a), Ok(b)) if a <= slot && slot <= b)
        });
        if serves {
            let port = addr.split(['@']).next().and_then(|a| a.rsplit(':').next());
            return port
                .context("a node address without a port")?
                .parse()
                .map_err(Into::into);
        }
    }
    bail!("no master serves slot {slot}: {nodes}")
}

/// `redis-cli -p port shutdown nosave`: the node exits at once, forgetting its data.
pub fn stop_redis(port: u16) -> anyhow::Result<()> {
    // The connection closes under the command, so its exit status says nothing.
    let _ = redis_cli(port, &["shutdown", "nosave"]);
    wait_for("the Redis node to stop", Duration::from_secs(10), || {
        redis_cli(port, &["ping"]).is_err()
    })
}

/// Waits until another master than `lost` serves `key`'s slot and the cluster, seen from a
/// node that is up, says `cluster_state:ok` (right after a crash it still does, until the
/// other nodes agree that the master failed).
pub fn wait_failover(key: &str, lost: u16, limit: Duration) -> anyhow::Result<()> {
    wait_for("a replica to take over", limit, || {
        let moved = redis_master_of(key).is_ok_and(|p| p != lost);
        moved
            && any_redis()
                .and_then(|p| redis_cli(p, &["cluster", "info"]))
                .is_ok_and(|info| info.contains("cluster_state:ok"))
    })
}

/// Starts Redis node `port` again with its command line; it rejoins as a replica.
pub fn start_redis(port: u16) -> anyhow::Result<()> {
    output(
        SCRIPT,
        &["start-redis", &port.to_string()],
        Duration::from_secs(60),
    )
    .map(drop)
}

/// A node of the Redis Cluster that answers.
fn any_redis() -> anyhow::Result<u16> {
    (7001..=7006)
        .find(|p| redis_cli(*p, &["ping"]).is_ok_and(|o| o.trim() == "PONG"))
        .context("no node of the Redis Cluster answers")
}

fn redis_cli(port: u16, args: &[&str]) -> anyhow::Result<String> {
    let port = port.to_string();
    let mut all = vec!["-h", "127.0.0.1", "-p", &port];
    all.extend_from_slice(args);
    output("redis-cli", &all, Duration::from_secs(10))
}

/// Runs `program args` with a time limit; its stdout when it exited 0.
fn output(program: &str, args: &[&str], limit: Duration) -> anyhow::Result<String> {
    let out = Command::new("timeout")
        .arg(limit.as_secs().max(1).to_string())
        .arg(program)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("cannot run {program}"))?;
    if !out.status.success() {
        bail!(
            "{program} {} failed ({}): {}",
            args.join(" "),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}
