//! Errors of talking to RabbitMQ.

/// What can go wrong talking to RabbitMQ.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot reach RabbitMQ: {0}")]
    Connect(#[source] lapin::Error),
    #[error("no RabbitMQ URL given (HOOKFLEET_AMQP_URL is empty)")]
    NoBrokerUrl,
    #[error("RabbitMQ error: {0}")]
    Amqp(#[from] lapin::Error),
    #[error(
        "exchange {exchange} does not exist: is the event type in HOOKFLEET_EVENT_TYPES and was `hookfleet topology` run?"
    )]
    NotDeclared { exchange: String },
    #[error("exchange {exchange} has no queue bound: the message was returned unroutable")]
    Unroutable { exchange: String },
    #[error("RabbitMQ refused the message (nack) on exchange {exchange}")]
    Nacked { exchange: String },
    #[error("the body is {size} bytes; the limit is {limit} bytes")]
    TooLarge { size: usize, limit: usize },
    #[error(transparent)]
    Invalid(#[from] hookfleet_core::Error),
    #[error("gave up publishing to {exchange} after {elapsed:?}: {last}")]
    GaveUp {
        exchange: String,
        elapsed: std::time::Duration,
        last: Box<Error>,
    },
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// Whether a retry on a fresh channel may succeed: connection trouble, not a wrong name.
    pub fn is_transient(&self) -> bool {
        match self {
            Error::Connect(_) | Error::Amqp(_) | Error::Nacked { .. } => true,
            Error::GaveUp { last, .. } => last.is_transient(),
            _ => false,
        }
    }
}
