//! Request extractors whose rejections are JSON errors that name the offending field.

use crate::failure::Failure;
use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::StatusCode;
use axum::http::request::Parts;
use serde::de::DeserializeOwned;

/// A JSON body, parsed with the path of the first bad field (`events[3].action`).
#[derive(Debug)]
pub struct JsonBody<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for JsonBody<T> {
    type Rejection = Failure;

    async fn from_request(request: Request, state: &S) -> Result<Self, Failure> {
        let bytes = Bytes::from_request(request, state).await.map_err(|rejection| {
            if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
                Failure::new(StatusCode::PAYLOAD_TOO_LARGE, "body_too_large", "request body is too large").field("body")
            } else {
                Failure::malformed("body", rejection.body_text())
            }
        })?;
        parse_json(&bytes).map(JsonBody)
    }
}

/// Parses JSON, naming the field that failed.
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, Failure> {
    let deserializer = &mut serde_json::Deserializer::from_slice(bytes);
    serde_path_to_error::deserialize(deserializer).map_err(|error| {
        let path = error.path().to_string();
        let field = if path == "." || path.is_empty() { "body".to_owned() } else { path };
        let inner = error.into_inner();
        Failure::malformed(&field, format!("invalid JSON body at {field}: {inner}"))
    })
}

/// Query parameters, naming the parameter that failed.
#[derive(Debug)]
pub struct QueryParams<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequestParts<S> for QueryParams<T> {
    type Rejection = Failure;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Failure> {
        let query = parts.uri.query().unwrap_or("");
        // `format` belongs to the answer, not the filter: [`crate::export::Format`] reads it.
        let filter = form_urlencoded::Serializer::new(String::new())
            .extend_pairs(
                form_urlencoded::parse(query.as_bytes()).filter(|(name, _)| name != crate::export::FORMAT_PARAM),
            )
            .finish();
        let deserializer = serde_urlencoded::Deserializer::new(form_urlencoded::parse(filter.as_bytes()));
        serde_path_to_error::deserialize(deserializer).map(QueryParams).map_err(|error| {
            let path = error.path().to_string();
            let field = if path == "." { "query".to_owned() } else { path };
            let inner = error.into_inner();
            Failure::malformed(&field, format!("invalid query parameter {field}: {inner}"))
        })
    }
}

/// A list's `limit` parameter: `default` when absent, else 1–1000 (422 naming `limit`).
pub fn page_limit(limit: Option<u32>, default: u32) -> Result<i64, Failure> {
    let limit = i64::from(limit.unwrap_or(default));
    if !(1..=1000).contains(&limit) {
        return Err(Failure::invalid("limit", "limit must be between 1 and 1000"));
    }
    Ok(limit)
}

/// The query of a route that takes no filters: any parameter but `format` is refused (400), so a
/// misspelt filter is never silently ignored.
#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NoFilters {}
