//! What can go wrong talking to the server, the keyring and the state files.

use std::path::PathBuf;
use warden_api::ApiError;

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("this device is not enrolled: run `warden enroll --code CODE` with a code from the console")]
    NotEnrolled,
    #[error("the server's CA certificate carried for pinning is not usable: {0}")]
    BadServerCa(String),
    #[error(transparent)]
    EnrollmentCode(#[from] warden_api::EnrollmentCodeError),
    #[error("the server URL {url:?} is not an http:// or https:// URL")]
    BadServerUrl { url: String },
    #[error("cannot reach the server {server}: {source}")]
    Unreachable { server: String, source: reqwest::Error },
    #[error("the server answered {status} ({code}): {message}{}", field.as_ref().map(|f| format!(" [field {f}]")).unwrap_or_default())]
    Rejected { status: u16, code: String, message: String, field: Option<String> },
    #[error("the server's answer could not be read: {0}")]
    BadAnswer(String),
    #[error("the server {server} asked this device to wait {seconds} s more (429 Retry-After); nothing was sent")]
    HeldOff { server: String, seconds: u64 },
    #[error(transparent)]
    Token(#[from] crate::token::TokenError),
    #[error("cannot read or write {path}: {source}")]
    StateFile { path: PathBuf, source: std::io::Error },
    #[error("{path} is not valid: {source}")]
    StateFileFormat { path: PathBuf, source: serde_json::Error },
    #[error(transparent)]
    Store(#[from] warden_store::StoreError),
    #[error("scope {scope:?}: {reason}")]
    BadScope { scope: String, reason: String },
    #[error("the policy from the server was rejected: {0}")]
    PolicyRejected(String),
    #[error("{0}")]
    ExceptionsRejected(String),
}

impl ClientError {
    /// Whether trying again later may succeed (server down, overloaded, or a network error).
    pub fn is_transient(&self) -> bool {
        match self {
            ClientError::Unreachable { .. } | ClientError::HeldOff { .. } => true,
            ClientError::Rejected { status, .. } => *status >= 500 || *status == 429 || *status == 408,
            _ => false,
        }
    }

    pub(crate) fn from_api(status: u16, body: &str) -> ClientError {
        match serde_json::from_str::<ApiError>(body) {
            Ok(api) => ClientError::Rejected { status, code: api.code, message: api.message, field: api.field },
            Err(_) => ClientError::Rejected {
                status,
                code: "http".into(),
                message: body.chars().take(200).collect(),
                field: None,
            },
        }
    }
}
