//! What an operation can fail with; each front door maps these to its own form (an exit code
//! and a line, or an HTTP status and `{"error": …}`).

use serde::Serialize;

/// One wrong field of a request, and what is wrong with it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct FieldError {
    /// The field's name as sent, e.g. `url` or `events`.
    pub field: String,
    pub message: String,
    /// Where in the field's JSON value the fault is (RFC 6901), for a value checked against
    /// a JSON Schema: e.g. `/agent/team` in `data`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pointer: Option<String>,
}

impl FieldError {
    pub fn new(field: &str, message: impl Into<String>) -> Self {
        Self {
            field: field.to_owned(),
            message: message.into(),
            pointer: None,
        }
    }

    /// A fault at `pointer` inside the field's value.
    pub fn at(field: &str, pointer: String, message: impl Into<String>) -> Self {
        Self {
            pointer: Some(pointer),
            ..Self::new(field, message)
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Absent, or not the caller's to see (the two are not told apart).
    #[error("{0} not found")]
    NotFound(String),
    /// Every wrong field of the request.
    #[error("invalid request: {}", describe(.0))]
    Invalid(Vec<FieldError>),
    /// The tenant already has `HOOKFLEET_MAX_ENDPOINTS_PER_TENANT` endpoints.
    #[error(
        "tenant {tenant} already has {max} endpoints, the most allowed (HOOKFLEET_MAX_ENDPOINTS_PER_TENANT)"
    )]
    EndpointLimit { tenant: String, max: u32 },
    /// A query value that is not one this API gave out (a cursor, an attempt id).
    #[error("{0}")]
    BadQuery(String),
    /// The caller may see the thing but not do this to it.
    #[error("{0}")]
    Forbidden(String),
    /// Other writes to the same record kept winning the race.
    #[error("{0}")]
    Conflict(String),
    /// The tenant's budget for this call is spent until `retry_after` has passed.
    #[error("{what}; try again in {}s", retry_after.as_secs().max(1))]
    RateLimited {
        what: String,
        retry_after: std::time::Duration,
    },
    /// What was asked for is no longer kept (a payload past its retention).
    #[error("{0}")]
    Gone(String),
    /// Redis or RabbitMQ did not answer, or refused. The text is for the operator's log, never
    /// for an API caller.
    #[error("{0}")]
    Unavailable(String),
}

fn describe(fields: &[FieldError]) -> String {
    let parts: Vec<String> = fields
        .iter()
        .map(|f| format!("{}: {}", f.field, f.message))
        .collect();
    parts.join("; ")
}

impl From<hookfleet_store::Error> for Error {
    fn from(e: hookfleet_store::Error) -> Self {
        match e {
            hookfleet_store::Error::NotFound(id) => Error::NotFound(format!("endpoint {id}")),
            e @ hookfleet_store::Error::Conflict(_) => Error::Conflict(e.to_string()),
            other => Error::Unavailable(other.to_string()),
        }
    }
}

impl From<hookfleet_amqp::Error> for Error {
    fn from(e: hookfleet_amqp::Error) -> Self {
        Error::Unavailable(format!("RabbitMQ: {e}"))
    }
}

impl From<hookfleet_worker::Error> for Error {
    fn from(e: hookfleet_worker::Error) -> Self {
        Error::Unavailable(e.to_string())
    }
}

impl Error {
    /// One wrong field.
    pub fn field(field: &str, message: impl Into<String>) -> Self {
        Error::Invalid(vec![FieldError::new(field, message)])
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
