//! One connection to RabbitMQ, shared by publishers and consumers, re-opened when it drops.
//!
//! The URL may name several nodes of one cluster, comma-separated. A connection goes to one
//! of them, starting from a random one so that a fleet spreads over the nodes, and a
//! reconnection tries each in turn, so losing the node a process was on costs one reconnect.
//!
//! lapin's own auto-recovery replays topology and consumers, but a worker must also know that
//! its in-flight acks are void and its readiness changed; an explicit "open a new connection on
//! the next use" keeps that logic in one visible place.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use lapin::{Channel, Connection, ConnectionProperties};
use tokio::sync::Mutex;

use crate::{Error, Result};

/// How long a polite close may take before the connection is simply dropped.
const CLOSE_PATIENCE: Duration = Duration::from_millis(500);

/// A handle to the broker (one node, or the nodes of one cluster); cheap to clone.
#[derive(Clone)]
pub struct Broker {
    nodes: Nodes,
    connection: Arc<Mutex<Option<Connection>>>,
}

/// The URLs of a broker's nodes, and which one to try first.
#[derive(Clone)]
struct Nodes {
    urls: Arc<[String]>,
    /// The node of the last connection (or the random first pick).
    current: Arc<AtomicUsize>,
}

impl Nodes {
    fn new(list: &str) -> Self {
        let urls: Arc<[String]> = split_urls(list).into();
        let first = rand::random_range(0..urls.len().max(1));
        Self {
            urls,
            current: Arc::new(AtomicUsize::new(first)),
        }
    }

    /// The URLs in the order to try them: the current node first, then the next ones.
    fn in_turn(&self) -> impl Iterator<Item = (usize, &str)> {
        let start = self.current.load(Ordering::Relaxed);
        let n = self.urls.len();
        (0..n).map(move |i| {
            let index = (start + i) % n;
            (index, self.urls[index].as_str())
        })
    }
}

/// The URLs of a comma-separated list, trimmed, empty ones dropped.
pub fn split_urls(list: &str) -> Vec<String> {
    list.split(',')
        .map(str::trim)
        .filter(|u| !u.is_empty())
        .map(str::to_owned)
        .collect()
}

impl std::fmt::Debug for Broker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The URL carries the password: never print it.
        f.debug_struct("Broker").finish_non_exhaustive()
    }
}

impl Broker {
    /// Connects now, so that a wrong URL or a stopped broker is reported at start. `url` may
    /// list the nodes of one cluster, comma-separated.
    pub async fn connect(url: &str) -> Result<Self> {
        let broker = Self::lazy(url);
        broker.channel().await?;
        Ok(broker)
    }

    /// A handle that connects on first use: for tools that may not need the broker at all.
    pub fn lazy(url: &str) -> Self {
        Self {
            nodes: Nodes::new(url),
            connection: Arc::default(),
        }
    }

    /// Connects with backoff until it succeeds or `give_up_after` has passed.
    pub async fn connect_patiently(url: &str, give_up_after: Duration) -> Result<Self> {
        let started = tokio::time::Instant::now();
        let mut backoff = Backoff::default();
        loop {
            match Self::connect(url).await {
                Ok(broker) => return Ok(broker),
                Err(e) if started.elapsed() >= give_up_after => return Err(e),
                Err(e) => {
                    tracing::warn!(message = "RabbitMQ not reachable yet; retrying.", error = %e);
                    backoff.wait().await;
                }
            }
        }
    }

    /// A new channel, on a new connection if the old one is gone.
    pub async fn channel(&self) -> Result<Channel> {
        let mut slot = self.connection.lock().await;
        if let Some(conn) = slot.as_ref()
            && conn.status().connected()
        {
            match conn.create_channel().await {
                Ok(channel) => return Ok(channel),
                Err(e) => {
                    tracing::warn!(message = "Cannot open a channel; reconnecting.", error = %e)
                }
            }
        }
        let mut last_error = None;
        for (index, url) in self.nodes.in_turn() {
            let properties =
                ConnectionProperties::default().with_connection_name("hookfleet".into());
            let opened = match Connection::connect(url, properties).await {
                Ok(conn) => conn.create_channel().await.map(|channel| (conn, channel)),
                Err(e) => Err(e),
            };
            match opened {
                Ok((conn, channel)) => {
                    self.nodes.current.store(index, Ordering::Relaxed);
                    *slot = Some(conn);
                    return Ok(channel);
                }
                Err(e) => {
                    if self.nodes.urls.len() > 1 {
                        let node = hookfleet_core::target::redact_url(url);
                        tracing::warn!(message = "RabbitMQ node unreachable; trying the next.", %node, error = %e);
                    }
                    last_error = Some(e);
                }
            }
        }
        Err(match last_error {
            Some(e) => Error::Connect(e),
            None => Error::NoBrokerUrl,
        })
    }

    /// Closes the connection politely; in-flight unacked messages return to their queues.
    ///
    /// Bounded by [`CLOSE_PATIENCE`]: seen under load, a channel the broker closes while lapin
    /// closes it too puts the connection in an error state where the close never completes.
    /// Dropping the connection then has the same effect for the broker (unacked messages
    /// return), and a stopping worker keeps its exit deadline.
    pub async fn close(&self) {
        if let Some(conn) = self.connection.lock().await.take() {
            let close = conn.close(200, "bye".into());
            if tokio::time::timeout(CLOSE_PATIENCE, close).await.is_err() {
                tracing::warn!(
                    message = "RabbitMQ did not confirm the close; dropping the connection."
                );
            }
        }
    }
}

/// Exponential backoff with jitter, from 100 ms to 5 s, so a fleet of workers does not
/// reconnect in lockstep after a broker restart.
#[derive(Debug)]
pub struct Backoff {
    next: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Self {
            next: Duration::from_millis(100),
        }
    }
}

impl Backoff {
    pub async fn wait(&mut self) {
        let jitter = rand::random_range(0.5..1.5);
        tokio::time::sleep(self.next.mul_f64(jitter)).await;
        self.next = (self.next * 2).min(Duration::from_secs(5));
    }

    pub fn reset(&mut self) {
        *self = Self::default();
    }
}

/// A consumer of `queue` on `channel` (acks by hand, the broker names it): how every
/// hookfleet consumer subscribes.
pub async fn consume(channel: &Channel, queue: &str) -> Result<lapin::Consumer> {
    let options = lapin::options::BasicConsumeOptions::default();
    let args = lapin::types::FieldTable::default();
    Ok(channel
        .basic_consume(queue.into(), "".into(), options, args)
        .await?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn several_nodes_are_tried_in_turn_from_the_current_one() {
        assert_eq!(
            split_urls(" amqp://a , ,amqp://b,"),
            ["amqp://a", "amqp://b"]
        );
        let nodes = Nodes::new("amqp://a,amqp://b,amqp://c");
        nodes.current.store(1, Ordering::Relaxed);
        let order: Vec<&str> = nodes.in_turn().map(|(_, url)| url).collect();
        assert_eq!(order, ["amqp://b", "amqp://c", "amqp://a"]);
        assert_eq!(Nodes::new("amqp://only").in_turn().count(), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn backoff_doubles_with_jitter_up_to_five_seconds_and_resets() {
        let mut backoff = Backoff::default();
        let mut base = Duration::from_millis(100);
        for _ in 0..10 {
            let started = tokio::time::Instant::now();
            backoff.wait().await;
            let waited = started.elapsed();
            assert!(
                waited >= base.mul_f64(0.5) && waited <= base.mul_f64(1.5),
                "{waited:?} for {base:?}"
            );
            base = (base * 2).min(Duration::from_secs(5));
        }
        backoff.reset();
        let started = tokio::time::Instant::now();
        backoff.wait().await;
        assert!(started.elapsed() <= Duration::from_millis(150));
    }
}
