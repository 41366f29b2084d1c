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
    /// A stable, machine-readable code: `unauthorized`, `not_found`, `validation_failed`,
    /// `invalid_json`, `unsupported_media_type`, `payload_too_large`, `invalid_query`,
    /// `endpoint_limit`, `unavailable`.
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
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
            fields: Vec::new(),
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
            Error::Unavailable(_) => {
                tracing::error!(message = "A request failed on a backing service.", error = %message);
                Self::new(StatusCode::SERVICE_UNAVAILABLE, "unavailable", message)
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
        response
    }
}

pub type ApiResult<T> = Result<T, ApiError>;
