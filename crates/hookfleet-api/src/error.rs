//! Every error answer: `{"error": {"code", "message", "fields"?}}` with a fitting 4xx or 5xx
//! (docs/contract.md §5).

use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use hookfleet_admin::FieldError;
use serde::Serialize;
use utoipa::ToSchema;

/// The body of every error answer.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorDetail {
    /// A stable, machine-readable code: `unauthorized`, `forbidden`, `not_found`,
    /// `validation_failed`, `invalid_json`, `unsupported_media_type`, `payload_too_large`,
    /// `invalid_query`, `endpoint_limit`, `conflict`, `rate_limited`, `request_timeout`,
    /// `unavailable`.
    pub code: String,
    pub message: String,
    /// With `validation_failed`: each wrong field and what is wrong with it.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub fields: Vec<FieldError>,
}

/// An error on its way to becoming an answer.
#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
    pub fields: Vec<FieldError>,
    /// With 429: when to try again (`Retry-After`).
    pub retry_after: Option<std::time::Duration>,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
            fields: Vec::new(),
            retry_after: None,
        }
    }

    pub fn unauthorized(message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "unauthorized", message)
    }

    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found", message)
    }

    /// One wrong field.
    pub fn field(field: &str, message: impl Into<String>) -> Self {
        hookfleet_admin::Error::field(field, message).into()
    }
}

impl From<hookfleet_admin::Error> for ApiError {
    fn from(e: hookfleet_admin::Error) -> Self {
        use hookfleet_admin::Error;
        let message = e.to_string();
        match e {
            Error::NotFound(_) => Self::not_found(message),
            Error::Invalid(fields) => Self {
                fields,
                ..Self::new(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "validation_failed",
                    "the request has invalid fields",
                )
            },
            Error::EndpointLimit { .. } => {
                Self::new(StatusCode::CONFLICT, "endpoint_limit", message)
            }
            Error::BadQuery(_) => Self::new(StatusCode::BAD_REQUEST, "invalid_query", message),
            Error::Forbidden(_) => Self::new(StatusCode::FORBIDDEN, "forbidden", message),
            Error::Conflict(_) => Self::new(StatusCode::CONFLICT, "conflict", message),
            Error::Gone(_) => Self::new(StatusCode::GONE, "gone", message),
            Error::RateLimited { retry_after, .. } => Self {
                retry_after: Some(retry_after),
                ..Self::new(StatusCode::TOO_MANY_REQUESTS, "rate_limited", message)
            },
            Error::Unavailable(_) => {
                // The backing service's own words (addresses, key names) are the operator's.
                tracing::error!(message = "A request failed on a backing service.", error = %message);
                Self::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "unavailable",
                    "a backing service is unavailable; try again shortly",
                )
            }
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = ErrorBody {
            error: ErrorDetail {
                code: self.code.to_owned(),
                message: self.message,
                fields: self.fields,
            },
        };
        let mut response = (self.status, axum::Json(body)).into_response();
        if self.status == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                header::HeaderValue::from_static("Bearer"),
            );
        }
        if let Some(wait) = self.retry_after {
            // Whole seconds, rounded up: a client that waits exactly this is in the next window.
            let seconds = wait.as_millis().div_ceil(1000).max(1);
            response.headers_mut().insert(
                header::RETRY_AFTER,
                header::HeaderValue::from(seconds as u64),
            );
        }
        response
    }
}

pub type ApiResult<T> = Result<T, ApiError>;

#[cfg(test)]
mod tests {
    use super::*;

    /// A backing service's own words (addresses, key names, Redis errors) are logged for the
    /// operator, never answered.
    #[test]
    fn an_outage_is_answered_without_the_backends_words() {
        let error = hookfleet_admin::Error::Unavailable(
            "Redis error: ERR invalid stream ID at 10.0.0.7:6379".into(),
        );
        let answer = ApiError::from(error);
        assert_eq!(answer.status, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(answer.code, "unavailable");
        for leak in ["Redis", "ERR", "10.0.0.7"] {
            assert!(!answer.message.contains(leak), "{}", answer.message);
        }
    }
}
