//! One connection to RabbitMQ, shared by publishers and consumers, re-opened when it drops.
//!
//! lapin's own auto-recovery replays topology and consumers, but a worker must also know that
//! its in-flight acks are void and its readiness changed; an explicit "open a new connection on
//! the next use" keeps that logic in one visible place.

use std::sync::Arc;
use std::time::Duration;

use lapin::{Channel, Connection, ConnectionProperties};
use tokio::sync::Mutex;

use crate::{Error, Result};

/// How long a polite close may take before the connection is simply dropped.
const CLOSE_PATIENCE: Duration = Duration::from_millis(500);

/// A handle to the broker at one URL; cheap to clone.
#[derive(Clone)]
pub struct Broker {
    url: Arc<str>,
    connection: Arc<Mutex<Option<Connection>>>,
}

impl std::fmt::Debug for Broker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The URL carries the password: never print it.
        f.debug_struct("Broker").finish_non_exhaustive()
    }
}

impl Broker {
    /// Connects now, so that a wrong URL or a stopped broker is reported at start.
    pub async fn connect(url: &str) -> Result<Self> {
        let broker = Self {
            url: url.into(),
            connection: Arc::default(),
        };
        broker.channel().await?;
        Ok(broker)
    }

    /// A handle that connects on first use: for tools that may not need the broker at all.
    pub fn lazy(url: &str) -> Self {
        Self {
            url: url.into(),
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
        let conn = Connection::connect(
            &self.url,
            ConnectionProperties::default().with_connection_name("hookfleet".into()),
        )
        .await
        .map_err(Error::Connect)?;
        let channel = conn.create_channel().await.map_err(Error::Connect)?;
        *slot = Some(conn);
        Ok(channel)
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

#[cfg(test)]
mod tests {
    use super::*;

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
