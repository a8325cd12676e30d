//! The OpenAPI description, hand-maintained next to the routes and checked against them by tests.

use axum::http::{HeaderValue, header};
use axum::response::IntoResponse;

pub const OPENAPI_JSON: &str = include_str!("../openapi.json");

/// `GET /api/v1/openapi.json`
pub async fn serve() -> impl IntoResponse {
    ([(header::CONTENT_TYPE, HeaderValue::from_static("application/json"))], OPENAPI_JSON)
}
