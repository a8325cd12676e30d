//! A minimal HTTP/1 JSON client over hyper, for the load client and the tests (the device side
//! has its own client crate; this one only needs to talk to a server on loopback).

use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper::{HeaderMap, Method, Request, StatusCode};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use serde_json::Value;

/// One answer: status, headers and the body as JSON (`Value::Null` when empty or not JSON).
#[derive(Debug, Clone)]
pub struct Reply {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Value,
    pub text: String,
}

/// A pooled keep-alive client for one server.
#[derive(Debug, Clone)]
pub struct JsonClient {
    base: String,
    client: Client<HttpConnector, Full<Bytes>>,
}

impl JsonClient {
    /// `base` like `http://127.0.0.1:8470`.
    pub fn new(base: &str) -> JsonClient {
        let client = Client::builder(TokioExecutor::new()).pool_max_idle_per_host(256).build_http();
        JsonClient { base: base.trim_end_matches('/').to_owned(), client }
    }

    pub fn base(&self) -> &str {
        &self.base
    }

    /// Sends a request; `body` is sent as JSON, `raw` as given (for malformed-input tests).
    pub async fn send(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<&Value>,
        extra_headers: &[(&str, &str)],
    ) -> Result<Reply, String> {
        let bytes = body.map(|b| Bytes::from(serde_json::to_vec(b).expect("JSON serializes"))).unwrap_or_default();
        self.send_raw(method, path, token, bytes, extra_headers).await
    }

    pub async fn send_raw(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Bytes,
        extra_headers: &[(&str, &str)],
    ) -> Result<Reply, String> {
        let mut request = Request::builder().method(method).uri(format!("{}{path}", self.base));
        if let Some(token) = token {
            request = request.header("authorization", format!("Bearer {token}"));
        }
        if !body.is_empty() {
            request = request.header("content-type", "application/json");
        }
        for (name, value) in extra_headers {
            request = request.header(*name, *value);
        }
        let request = request.body(Full::new(body)).map_err(|e| e.to_string())?;
        let response = self.client.request(request).await.map_err(|e| format!("{path}: {e}"))?;
        let status = response.status();
        let headers = response.headers().clone();
        let bytes = response.into_body().collect().await.map_err(|e| e.to_string())?.to_bytes();
        let text = String::from_utf8_lossy(&bytes).into_owned();
        let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        Ok(Reply { status, headers, body, text })
    }
}
