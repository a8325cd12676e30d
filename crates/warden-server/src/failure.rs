//! Failed requests: a status and the JSON error body (`warden_api::ApiError`) naming the field.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use warden_api::{ApiError, ErrorLocation};
use warden_policy::SourceError;

/// Every handler's error type.
#[derive(Debug)]
pub struct Failure {
    pub status: StatusCode,
    // Boxed: handlers return `Result<_, Failure>` everywhere, and the error side stays small.
    pub body: Box<ApiError>,
    /// Seconds the client should wait before trying again (`Retry-After`, with a 429).
    pub retry_after: Option<u64>,
}

impl Failure {
    pub fn new(status: StatusCode, code: &str, message: impl Into<String>) -> Failure {
        Failure {
            status,
            body: Box::new(ApiError { code: code.into(), message: message.into(), field: None, location: None }),
            retry_after: None,
        }
    }

    /// Too many requests (429): try again in `seconds`.
    pub fn too_many(code: &str, message: impl Into<String>, seconds: u64) -> Failure {
        let mut failure = Failure::new(StatusCode::TOO_MANY_REQUESTS, code, message);
        failure.retry_after = Some(seconds.max(1));
        failure
    }

    /// Input that parsed but is not acceptable (422), naming the field.
    pub fn invalid(field: &str, message: impl Into<String>) -> Failure {
        Failure::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid_field", message).field(field)
    }

    /// Input that did not parse (400), naming the field.
    pub fn malformed(field: &str, message: impl Into<String>) -> Failure {
        Failure::new(StatusCode::BAD_REQUEST, "malformed", message).field(field)
    }

    pub fn unauthorized(code: &str, message: impl Into<String>) -> Failure {
        Failure::new(StatusCode::UNAUTHORIZED, code, message).field("authorization")
    }

    pub fn not_found(what: &str) -> Failure {
        Failure::new(StatusCode::NOT_FOUND, "not_found", format!("no such {what}"))
    }

    pub fn field(mut self, field: &str) -> Failure {
        self.body.field = Some(field.to_owned());
        self
    }

    /// A policy file that does not check, with its line and column.
    pub fn policy(error: &SourceError) -> Failure {
        let mut failure = Failure::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid_policy", error.to_string());
        failure.body.field = Some("source".into());
        failure.body.location = Some(ErrorLocation {
            file: error.location.file.clone(),
            line: error.location.line,
            column: error.location.column,
        });
        failure
    }

    /// Something broke on our side: logged in full, answered without internals.
    pub fn internal(error: impl std::fmt::Display) -> Failure {
        eprintln!("warden-server: internal error: {error}");
        Failure::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", "internal server error (see the server log)")
    }
}

impl From<sqlx::Error> for Failure {
    fn from(error: sqlx::Error) -> Failure {
        if let sqlx::Error::PoolTimedOut = error {
            return Failure::new(StatusCode::SERVICE_UNAVAILABLE, "busy", "the database is busy; retry shortly");
        }
        Failure::internal(error)
    }
}

impl IntoResponse for Failure {
    fn into_response(self) -> Response {
        let mut response = (self.status, Json(*self.body)).into_response();
        if self.status == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert("www-authenticate", axum::http::HeaderValue::from_static("Bearer"));
        }
        if let Some(seconds) = self.retry_after {
            response.headers_mut().insert(axum::http::header::RETRY_AFTER, axum::http::HeaderValue::from(seconds));
        }
        response
    }
}

pub type Answer<T> = Result<T, Failure>;
