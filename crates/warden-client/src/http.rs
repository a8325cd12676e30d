//! Every HTTP call a device makes to the governance server, typed with `warden-api`.

use crate::error::ClientError;
use crate::token::DeviceToken;
use reqwest::StatusCode;
use reqwest::header::{ETAG, IF_NONE_MATCH};
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::time::Duration;
use warden_api::{
    API_PREFIX, DeviceInfo, EnrollRequest, EnrollResponse, EventBatch, EventBatchReceipt, ExceptionList,
    ExceptionRecord, ExceptionRequestCreate, PolicyEnvelope, WaitResponse,
};

/// How long an ordinary call may take before it counts as a failure.
const CALL_TIMEOUT: Duration = Duration::from_secs(20);

/// What a policy fetch found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PolicyFetch {
    /// `304`: the policy with the ETag we sent is still the active one.
    NotModified,
    /// A (not yet verified) envelope.
    Changed(Box<PolicyEnvelope>),
}

/// A connection to one server, as one device (or, before enrollment, anonymously).
#[derive(Debug, Clone)]
pub struct ServerApi {
    base: String,
    http: reqwest::Client,
    token: Option<DeviceToken>,
}

/// Normalises a server URL: scheme required, no trailing slash.
pub fn normalize_server_url(url: &str) -> Result<String, ClientError> {
    let trimmed = url.trim().trim_end_matches('/');
    let ok = (trimmed.starts_with("http://") || trimmed.starts_with("https://"))
        && reqwest::Url::parse(trimmed).is_ok_and(|u| u.host_str().is_some());
    if ok { Ok(trimmed.to_owned()) } else { Err(ClientError::BadServerUrl { url: url.to_owned() }) }
}

impl ServerApi {
    pub fn new(server: &str, token: Option<DeviceToken>) -> Result<ServerApi, ClientError> {
        let base = normalize_server_url(server)?;
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(5))
            .user_agent(concat!("warden/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|source| ClientError::Unreachable { server: base.clone(), source })?;
        Ok(ServerApi { base, http, token })
    }

    pub fn server(&self) -> &str {
        &self.base
    }

    fn url(&self, path: &str) -> String {
        format!("{}{API_PREFIX}{path}", self.base)
    }

    fn request(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        let builder = self.http.request(method, self.url(path)).timeout(CALL_TIMEOUT);
        match &self.token {
            Some(token) => builder.bearer_auth(token.expose()),
            None => builder,
        }
    }

    fn unreachable(&self, source: reqwest::Error) -> ClientError {
        ClientError::Unreachable { server: self.base.clone(), source }
    }

    async fn send<T: DeserializeOwned>(&self, builder: reqwest::RequestBuilder) -> Result<T, ClientError> {
        let response = builder.send().await.map_err(|e| self.unreachable(e))?;
        let status = response.status();
        let body = response.text().await.map_err(|e| self.unreachable(e))?;
        if !status.is_success() {
            return Err(ClientError::from_api(status.as_u16(), &body));
        }
        serde_json::from_str(&body).map_err(|e| ClientError::BadAnswer(e.to_string()))
    }

    async fn post<B: Serialize, T: DeserializeOwned>(&self, path: &str, body: &B) -> Result<T, ClientError> {
        self.send(self.request(reqwest::Method::POST, path).json(body)).await
    }

    /// `GET /health`: whether the server answers at all.
    pub async fn health(&self) -> Result<(), ClientError> {
        self.send::<serde_json::Value>(self.request(reqwest::Method::GET, "/health")).await.map(|_| ())
    }

    /// `POST /enroll`.
    pub async fn enroll(&self, request: &EnrollRequest) -> Result<EnrollResponse, ClientError> {
        self.post("/enroll", request).await
    }

    /// `GET /device/me`.
    pub async fn me(&self) -> Result<DeviceInfo, ClientError> {
        self.send(self.request(reqwest::Method::GET, "/device/me")).await
    }

    /// `GET /device/policy` with `If-None-Match`.
    pub async fn fetch_policy(&self, etag: Option<&str>) -> Result<PolicyFetch, ClientError> {
        let mut builder = self.request(reqwest::Method::GET, "/device/policy");
        if let Some(etag) = etag {
            builder = builder.header(IF_NONE_MATCH, etag);
        }
        let response = builder.send().await.map_err(|e| self.unreachable(e))?;
        let status = response.status();
        if status == StatusCode::NOT_MODIFIED {
            return Ok(PolicyFetch::NotModified);
        }
        let header_etag = response.headers().get(ETAG).and_then(|v| v.to_str().ok()).map(str::to_owned);
        let body = response.text().await.map_err(|e| self.unreachable(e))?;
        if !status.is_success() {
            return Err(ClientError::from_api(status.as_u16(), &body));
        }
        let mut envelope: PolicyEnvelope = serde_json::from_str(&body)
            .map_err(|e| ClientError::PolicyRejected(format!("unreadable envelope: {e}")))?;
        if envelope.etag.is_empty() {
            envelope.etag = header_etag.unwrap_or_default();
        }
        Ok(PolicyFetch::Changed(Box::new(envelope)))
    }

    /// `POST /device/events`.
    pub async fn upload_events(&self, batch: &EventBatch) -> Result<EventBatchReceipt, ClientError> {
        self.post("/device/events", batch).await
    }

    /// `POST /device/exceptions` (idempotent by `client_id`).
    pub async fn file_exception(&self, request: &ExceptionRequestCreate) -> Result<ExceptionRecord, ClientError> {
        self.post("/device/exceptions", request).await
    }

    /// `GET /device/exceptions`: this device's requests and the exceptions in force.
    pub async fn exceptions(&self) -> Result<ExceptionList, ClientError> {
        self.send(self.request(reqwest::Method::GET, "/device/exceptions")).await
    }

    /// `POST /device/exceptions/{id}/withdraw`.
    pub async fn withdraw(&self, id: &str) -> Result<ExceptionRecord, ClientError> {
        self.post(&format!("/device/exceptions/{id}/withdraw"), &serde_json::json!({})).await
    }

    /// `GET /device/wait`: returns at the first change after `since`, or empty after `timeout_seconds`.
    pub async fn wait(&self, since: i64, timeout_seconds: u64) -> Result<WaitResponse, ClientError> {
        let builder = self
            .http
            .get(self.url("/device/wait"))
            .query(&[("since", since.to_string()), ("timeout", timeout_seconds.to_string())])
            // The server holds the call open up to `timeout_seconds`; allow for that plus slack.
            .timeout(Duration::from_secs(timeout_seconds + 15));
        let builder = match &self.token {
            Some(token) => builder.bearer_auth(token.expose()),
            None => builder,
        };
        self.send(builder).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_urls_need_a_scheme_and_a_host() {
        assert_eq!(normalize_server_url("http://127.0.0.1:8470/").unwrap(), "http://127.0.0.1:8470");
        assert_eq!(normalize_server_url(" https://warden.example.com ").unwrap(), "https://warden.example.com");
        for bad in ["127.0.0.1:8470", "ftp://x", "http://", ""] {
            assert!(normalize_server_url(bad).is_err(), "{bad}");
        }
    }
}
