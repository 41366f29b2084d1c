//! The local clusters of `scripts/cluster`: a 3-node RabbitMQ cluster and a Redis Cluster on
//! ports of their own, for the fault scenarios and the benchmark.

use std::process::{Command, Stdio};

use crate::{Error, Result};

const SCRIPT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../scripts/cluster");

/// What `scripts/cluster` prints: the settings that point hookfleet at both clusters.
#[derive(Debug, Clone)]
pub struct Clusters {
    pub amqp_url: String,
    pub redis_url: String,
    /// The RabbitMQ node names, for `rabbitmqctl -n`.
    pub rabbit_nodes: Vec<String>,
}

/// Starts both clusters (or repairs them) and waits until they answer (synchronous, bounded
/// by the script's own waits).
pub fn start() -> Result<Clusters> {
    let out = (Command::new(SCRIPT).arg("start"))
        .stdin(Stdio::null())
        .stderr(Stdio::inherit())
        .output()
        .map_err(|e| Error::Start(SCRIPT.into(), e))?;
    if !out.status.success() {
        return Err(Error::Setup(format!(
            "scripts/cluster start failed ({})",
            out.status
        )));
    }
    let out = String::from_utf8_lossy(&out.stdout);
    let value = |name: &str| {
        (out.lines())
            .find_map(|l| l.strip_prefix(&format!("export {name}=")))
            .map(|v| v.trim_matches('\'').trim_matches('"').to_owned())
            .ok_or_else(|| Error::Setup(format!("scripts/cluster printed no {name}")))
    };
    Ok(Clusters {
        amqp_url: value("HOOKFLEET_AMQP_URL")?,
        redis_url: value("HOOKFLEET_REDIS_URL")?,
        rabbit_nodes: (value("HOOKFLEET_RABBIT_NODES")?.split(','))
            .map(str::to_owned)
            .collect(),
    })
}
