//! [`Redis`]: the one handle to Redis, a single server or a Redis Cluster.
//!
//! `HOOKFLEET_REDIS_URL` names one server (`redis://host:6379`), or, comma-separated, two or
//! more seed nodes of a Redis Cluster (`redis://a:7001,redis://b:7002`): the client learns the
//! rest of the cluster from them and follows its slots as they move or fail over. Every
//! operation hookfleet sends touches one hash slot (see [`crate::keys`]), so the same code runs
//! on both.

use std::time::Duration;

use redis::aio::{ConnectionLike, ConnectionManager, ConnectionManagerConfig};
use redis::cluster::{ClusterClient, ClusterConfig};
use redis::cluster_async::ClusterConnection;
use redis::{Cmd, Pipeline, RedisFuture, Value};

use crate::{Error, Result};

/// How long connecting, and each answer, may take before the command fails instead of hanging.
const TIMEOUT: Duration = Duration::from_secs(2);
/// The longest a cluster command may take with its retries, redirections and reconnections,
/// e.g. while a replica is promoted after its master died.
const CLUSTER_OVERALL: Duration = Duration::from_secs(15);

/// A handle to Redis, cheap to clone and shared by every task.
///
/// Either way it multiplexes: commands from concurrent deliveries are pipelined into the same
/// writes and reads (one connection per node of a cluster), which costs both hookfleet and
/// Redis far fewer system calls per command than a pool used one command at a time. It
/// reconnects by itself after an error.
#[derive(Clone)]
pub enum Redis {
    Single(ConnectionManager),
    Cluster(ClusterConnection),
}

impl std::fmt::Debug for Redis {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Single(_) => "Redis::Single",
            Self::Cluster(_) => "Redis::Cluster",
        })
    }
}

impl Redis {
    pub fn is_cluster(&self) -> bool {
        matches!(self, Self::Cluster(_))
    }
}

impl ConnectionLike for Redis {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            Self::Single(c) => c.req_packed_command(cmd),
            Self::Cluster(c) => c.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        cmd: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            Self::Single(c) => c.req_packed_commands(cmd, offset, count),
            Self::Cluster(c) => c.req_packed_commands(cmd, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Self::Single(c) => c.get_db(),
            Self::Cluster(c) => c.get_db(),
        }
    }
}

/// The URLs of `HOOKFLEET_REDIS_URL`: one server, or the seeds of a cluster.
pub fn split_urls(urls: &str) -> Vec<&str> {
    (urls.split(',').map(str::trim))
        .filter(|u| !u.is_empty())
        .collect()
}

/// A handle to Redis at `urls` (see the module). The connection opens on first use (in the
/// background, for a cluster), so this only fails on a malformed URL; [`ping`] checks that
/// Redis answers. Call it inside the Tokio runtime.
pub fn connect(urls: &str) -> Result<Redis> {
    let seeds = split_urls(urls);
    match seeds.as_slice() {
        [] => Err(Error::Config("no Redis URL".into())),
        [url] => {
            let client = redis::Client::open(*url).map_err(|e| Error::Config(e.to_string()))?;
            let config = ConnectionManagerConfig::new()
                .set_connection_timeout(Some(TIMEOUT))
                .set_response_timeout(Some(TIMEOUT))
                .set_number_of_retries(2)
                .set_max_delay(Duration::from_millis(500));
            ConnectionManager::new_lazy_with_config(client, config)
                .map(Redis::Single)
                .map_err(Error::Redis)
        }
        seeds => {
            let client = ClusterClient::builder(seeds.to_vec())
                .overall_response_timeout(Some(CLUSTER_OVERALL))
                .build()
                .map_err(|e| Error::Config(e.to_string()))?;
            let config = ClusterConfig::new()
                .set_connection_timeout(TIMEOUT)
                .set_response_timeout(TIMEOUT);
            Ok(Redis::Cluster(
                client.get_pending_async_connection_with_config(config),
            ))
        }
    }
}

/// Whether Redis answers (every master, on a cluster), for start-up checks and readiness.
pub async fn ping(redis: &Redis) -> Result<()> {
    let _: String = redis::cmd("PING").query_async(&mut redis.clone()).await?;
    Ok(())
}
