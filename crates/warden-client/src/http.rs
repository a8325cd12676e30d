//! Every HTTP call a device makes to the governance server, typed with `warden-api`.

use crate::error::ClientError;
use crate::token::DeviceToken;
use reqwest::StatusCode;
use reqwest::header::{ETAG, IF_NONE_MATCH};
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use warden_api::{
    API_PREFIX, DeviceInfo, EnrollRequest, EnrollResponse, EventBatch, EventBatchReceipt, ExceptionList,
    ExceptionRecord, ExceptionRequestCreate, InventoryReceipt, InventoryReport, PolicyEnvelope, SigningKeys,
    TokenRotation, WaitResponse,
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
    /// Shared by clones, so a rotated token reaches the long-poll and the sync alike.
    token: Arc<std::sync::RwLock<Option<DeviceToken>>>,
    /// Set by a `429` with `Retry-After`: no call is sent before this moment (shared by clones).
    held_until: Arc<Mutex<Option<Instant>>>,
}

/// The longest `Retry-After` a device honours (a hostile or broken answer cannot silence it longer).
const MAX_RETRY_AFTER: Duration = Duration::from_secs(3600);

/// The certificates of a PEM text, at least one, each one reqwest can use.
fn pinned_certificates(pem: &str) -> Result<Vec<reqwest::Certificate>, ClientError> {
    let certificates =
        reqwest::Certificate::from_pem_bundle(pem.as_bytes()).map_err(|e| ClientError::BadServerCa(e.to_string()))?;
    if certificates.is_empty() {
        return Err(ClientError::BadServerCa("no PEM certificate in it".into()));
    }
    Ok(certificates)
}

/// Normalises a server URL: scheme required, no trailing slash.
pub fn normalize_server_url(url: &str) -> Result<String, ClientError> {
    let trimmed = url.trim().trim_end_matches('/');
    let ok = (trimmed.starts_with("http://") || trimmed.starts_with("https://"))
        && reqwest::Url::parse(trimmed).is_ok_and(|u| u.host_str().is_some());
    if ok { Ok(trimmed.to_owned()) } else { Err(ClientError::BadServerUrl { url: url.to_owned() }) }
}

impl ServerApi {
    /// A connection to `server`. With `server_ca` (PEM, from the enrollment code) the server's
    /// certificate must chain to one of those certificates and to nothing else — the system's
    /// roots do not count, so a certificate any public CA issued for the name is refused.
    pub fn new(server: &str, token: Option<DeviceToken>, server_ca: Option<&str>) -> Result<ServerApi, ClientError> {
        let base = normalize_server_url(server)?;
        let mut builder = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(5))
            .user_agent(concat!("warden/", env!("CARGO_PKG_VERSION")));
        if let Some(pem) = server_ca {
            let certificates = pinned_certificates(pem)?;
            builder = builder.tls_certs_only(certificates);
        }
        let http = builder.build().map_err(|source| ClientError::Unreachable { server: base.clone(), source })?;
        Ok(ServerApi { base, http, token: Arc::new(std::sync::RwLock::new(token)), held_until: Arc::default() })
    }

    /// Uses `token` from now on (a rotation), in this connection and every clone of it.
    pub fn set_token(&self, token: DeviceToken) {
        *self.token.write().unwrap_or_else(|p| p.into_inner()) = Some(token);
    }

    fn authorized(&self, builder: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
        match &*self.token.read().unwrap_or_else(|p| p.into_inner()) {
            Some(token) => builder.bearer_auth(token.expose()),
            None => builder,
        }
    }

    pub fn server(&self) -> &str {
        &self.base
    }

    fn url(&self, path: &str) -> String {
        format!("{}{API_PREFIX}{path}", self.base)
    }

    fn request(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        self.authorized(self.http.request(method, self.url(path)).timeout(CALL_TIMEOUT))
    }

    fn unreachable(&self, source: reqwest::Error) -> ClientError {
        ClientError::Unreachable { server: self.base.clone(), source }
    }

    /// Sends `builder` unless the server asked to be left alone until later; records a new
    /// `Retry-After` from a `429`. What a held-off call would have sent stays where it was (the
    /// outbox), so honouring the server loses nothing.
    async fn dispatch(&self, builder: reqwest::RequestBuilder) -> Result<reqwest::Response, ClientError> {
        let held = *self.held_until.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(until) = held
            && let Some(left) = until.checked_duration_since(Instant::now())
        {
            return Err(ClientError::HeldOff { server: self.base.clone(), seconds: left.as_secs().max(1) });
        }
        let response = builder.send().await.map_err(|e| self.unreachable(e))?;
        if response.status() == StatusCode::TOO_MANY_REQUESTS {
            let wait = response
                .headers()
                .get(reqwest::header::RETRY_AFTER)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.trim().parse::<u64>().ok())
                .map_or(Duration::from_secs(1), Duration::from_secs)
                .min(MAX_RETRY_AFTER);
            *self.held_until.lock().unwrap_or_else(|p| p.into_inner()) = Some(Instant::now() + wait);
        }
        Ok(response)
    }

    async fn send<T: DeserializeOwned>(&self, builder: reqwest::RequestBuilder) -> Result<T, ClientError> {
        let response = self.dispatch(builder).await?;
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

    /// `POST /device/token`: the device's next token (the current one works until it is used).
    pub async fn rotate_token(&self) -> Result<TokenRotation, ClientError> {
        self.post("/device/token", &serde_json::json!({})).await
    }

    /// `GET /device/signing-keys`: the server's signing key and its announced rotations.
    pub async fn signing_keys(&self) -> Result<SigningKeys, ClientError> {
        self.send(self.request(reqwest::Method::GET, "/device/signing-keys")).await
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
        let response = self.dispatch(builder).await?;
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

    /// `PUT /device/inventory`: replaces the device's last inventory report.
    pub async fn put_inventory(&self, report: &InventoryReport) -> Result<InventoryReceipt, ClientError> {
        self.send(self.request(reqwest::Method::PUT, "/device/inventory").json(report)).await
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
        self.send(self.authorized(builder)).await
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

    /// A server on loopback that answers every request `429` with `Retry-After: 2`; counts them.
    fn crowded_server() -> (String, std::sync::Arc<std::sync::atomic::AtomicUsize>) {
        use std::io::{Read, Write};
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let hits = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let count = hits.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { continue };
                let mut buffer = [0u8; 4096];
                let _ = stream.read(&mut buffer);
                count.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                let body = r#"{"code":"too_many_uploads","message":"slow down"}"#;
                let _ = write!(
                    stream,
                    "HTTP/1.1 429 Too Many Requests\r\nretry-after: 2\r\ncontent-type: application/json\r\n\
                     content-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
            }
        });
        (base, hits)
    }

    #[tokio::test]
    async fn a_429_holds_every_call_for_its_retry_after_and_sends_nothing_meanwhile() {
        let (base, hits) = crowded_server();
        let api = ServerApi::new(&base, None, None).unwrap();
        let first = api.health().await.unwrap_err();
        assert!(
            matches!(&first, ClientError::Rejected { status: 429, code, .. } if code == "too_many_uploads"),
            "{first}"
        );
        assert!(first.is_transient());
        // Held off: the next calls (any route, and a clone's) are not sent at all.
        let held = api.me().await.unwrap_err();
        assert!(matches!(held, ClientError::HeldOff { seconds: 1..=2, .. }), "{held}");
        assert!(held.is_transient());
        assert!(matches!(api.clone().fetch_policy(None).await, Err(ClientError::HeldOff { .. })));
        assert_eq!(hits.load(std::sync::atomic::Ordering::SeqCst), 1);
        // After the wait, calls go out again.
        tokio::time::sleep(Duration::from_millis(2100)).await;
        assert!(matches!(api.health().await, Err(ClientError::Rejected { status: 429, .. })));
        assert_eq!(hits.load(std::sync::atomic::Ordering::SeqCst), 2);
    }
}
