//! Removing everything a test's namespace created: its queues and exchanges in RabbitMQ and
//! its keys in Redis, so that test runs leave the shared broker and store as they found them.

use std::time::Duration;

use hookfleet_amqp::{Broker, QueueType, Topology};

use super::{AMQP_URL, REDIS_URL};

/// Everything a namespace owns in RabbitMQ (names of docs/contract.md §1 and §3).
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
    let purged = match hookfleet_store::connect(REDIS_URL) {
        Ok(redis) => hookfleet_store::purge(&redis, &names.namespace).await,
        Err(e) => Err(e),
    };
    if let Err(error) = purged {
        eprintln!("cleanup of {} in Redis failed: {error}", names.namespace);
    }
}

async fn remove_amqp(names: &Names) -> Result<(), Box<dyn std::error::Error>> {
    let topology = Topology::new(
        names.namespace.parse()?,
        QueueType::Quorum,
        (names.event_types.iter())
            .map(|t| t.parse())
            .collect::<Result<_, _>>()?,
        (names.delays_ms.iter())
            .map(|ms| Duration::from_millis(*ms as u64))
            .collect(),
    );
    let broker = Broker::connect(AMQP_URL).await?;
    topology.delete(&broker).await?;
    broker.close().await;
    Ok(())
}
