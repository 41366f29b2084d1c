//! Errors of the Redis store.

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("invalid Redis settings: {0}")]
    Config(String),
    #[error("Redis error: {0}")]
    Redis(#[from] redis::RedisError),
    #[error("endpoint {0} not found")]
    NotFound(String),
    /// The tenant already has this many endpoints, the most allowed.
    #[error("the tenant already has {0} endpoints, the most allowed")]
    Limit(u32),
    /// Another write kept winning the race for this record.
    #[error("endpoint {0} was changed by another request at the same time; try again")]
    Conflict(String),
    #[error("endpoint record {id} cannot be read: {reason}")]
    Sealed { id: String, reason: &'static str },
    #[error("endpoint record {id} is corrupt: {source}")]
    Corrupt {
        id: String,
        #[source]
        source: serde_json::Error,
    },
    #[error("the description of event type {name} is corrupt: {source}")]
    CorruptType {
        name: String,
        #[source]
        source: serde_json::Error,
    },
    #[error("an ordered endpoint's queue held an entry that cannot be read (dropped): {0}")]
    CorruptOrdered(String),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
