//! Errors of the worker. Every one of them means "this message is not handled yet": the
//! message goes back to the queue, nothing is dropped.

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Store(#[from] hookfleet_store::Error),
    #[error(transparent)]
    Broker(#[from] hookfleet_amqp::Error),
    #[error("RabbitMQ error: {0}")]
    Amqp(#[from] lapin::Error),
    #[error("cannot build the HTTP client: {0}")]
    Http(#[from] reqwest::Error),
    #[error("cannot serve metrics on {addr}: {source}")]
    Bind {
        addr: std::net::SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("the broker cancelled the consumer of {0}")]
    ConsumerCancelled(String),
    #[error("no progress for {0:?} while holding messages")]
    Stalled(std::time::Duration),
    #[error("the bundle of deferrals was not published: {0}")]
    Bundle(String),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
