//! The one error type of the core: a value that does not meet the contract.

/// A value rejected at the edge, with the rule it broke.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    #[error("invalid event id {0:?}: must be 1-255 printable ASCII characters without spaces")]
    EventId(String),
    #[error("invalid event type {0:?}: must be 1-64 characters of a-z 0-9 . _ -")]
    EventType(String),
    #[error("invalid tenant {0:?}: must be 1-255 printable ASCII characters without spaces")]
    Tenant(String),
    #[error("invalid endpoint id {0:?}")]
    EndpointId(String),
    #[error("invalid secret: {0}")]
    Secret(&'static str),
    #[error("invalid url {url:?}: {reason}")]
    Url { url: String, reason: String },
    #[error("invalid events list: {0}")]
    Events(String),
    #[error("invalid namespace {0:?}: must be 1-64 characters of A-Z a-z 0-9 _ -")]
    Namespace(String),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
