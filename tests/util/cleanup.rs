//! Removing everything a test's namespace created: its queues and exchanges in RabbitMQ and
//! its keys in Redis, so that test runs leave the shared broker and store as they found them.

use lapin::options::{ExchangeDeleteOptions, QueueDeleteOptions};
use lapin::{Connection, ConnectionProperties};

use super::{AMQP_URL, REDIS_URL};

/// Everything a namespace owns in RabbitMQ (names of contract §1 and §3).
#[derive(Debug)]
pub(super) struct Names {
    pub namespace: String,
    pub event_types: Vec<String>,
    pub delays_ms: Vec<u128>,
}

/// Deletes the namespace's queues, exchanges and Redis keys; reports (does not panic on)
/// failures, because it also runs from `Drop` after a test already failed.
pub(super) async fn remove_namespace(names: Names) {
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
