//! The one error body every failing API call returns.

use serde::{Deserialize, Serialize};

/// `{"code": "invalid_field", "message": "…", "field": "justification"}`.
///
/// `code` is stable and meant for programs; `message` is for people; `field` names the input
/// that was wrong (a JSON path such as `events[3].action`, a query parameter or a header).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ApiError {
    pub code: String,
    pub message: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
    /// For policy uploads: where in the uploaded file the problem is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub location: Option<ErrorLocation>,
}

/// A 1-based line and column in an uploaded file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ErrorLocation {
    pub file: String,
    pub line: usize,
    pub column: usize,
}
