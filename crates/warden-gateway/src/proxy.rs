//! The reverse proxy: authenticates the local client, masks each request, forwards it to the upstream
//! model API with the gateway's own credential, and restores placeholders in the answer (whole or
//! streamed). Fails closed: a request it cannot read is refused, and nothing is sent upstream.

use crate::mask::{MaskCounts, mask_request};
use crate::restore::{RestoreReport, restore_value};
use crate::rules::Detector;
use crate::stream::{Api, SseRestorer};
use crate::token::ClientTokens;
use crate::vault::Vaults;
use axum::Router;
use axum::body::Body;
use axum::extract::{ConnectInfo, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, Request, Response, StatusCode, header};
use bytes::Bytes;
use serde_json::{Value, json};
use std::convert::Infallible;
use std::fmt;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

/// Everything the gateway needs, parsed once by the caller.
#[derive(Clone)]
pub struct GatewayConfig {
    /// The upstream API's base, standing in for the gateway's `/v1`: `/v1/chat/completions` goes to
    /// `{upstream}/chat/completions` (e.g. `https://assistant.internal.example/v1`).
    pub upstream: String,
    /// The gateway's credential for the upstream, sent as `Authorization: Bearer` (OpenAI paths) or
    /// `x-api-key` (Anthropic paths). Never shown to the client.
    pub upstream_key: Option<String>,
    /// The tokens local clients present (`Authorization: Bearer` or `x-api-key`), each naming whom
    /// the request is for.
    pub clients: ClientTokens,
    /// Larger request bodies are refused with 413.
    pub max_body_bytes: usize,
    /// A conversation's placeholders are forgotten after this long without a request.
    pub idle: Duration,
    pub detector: Arc<Detector>,
    /// Called once per forwarded request, after its response ended (counts only, never values).
    pub on_report: Option<ReportSink>,
}

impl fmt::Debug for GatewayConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The two credentials are never printed.
        f.debug_struct("GatewayConfig")
            .field("upstream", &self.upstream)
            .field("upstream_key", &self.upstream_key.as_ref().map(|_| "<redacted>"))
            .field("clients", &self.clients)
            .field("max_body_bytes", &self.max_body_bytes)
            .field("idle", &self.idle)
            .finish_non_exhaustive()
    }
}

/// Receives each request's [`RequestReport`] (the CLI logs it).
pub type ReportSink = Arc<dyn Fn(&RequestReport) + Send + Sync>;

/// What one request went through: counts per rule, never values.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct RequestReport {
    /// Whom the request was for: the client its token names.
    pub client: String,
    /// The request path (`/v1/chat/completions`).
    pub path: String,
    /// The upstream's status code (0: never reached).
    pub status: u16,
    /// Findings masked in the request, per rule.
    pub masked: MaskCounts,
    /// Placeholders restored in the response.
    pub restored: u32,
    /// Placeholders kept masked in tool calls that do not write files: (tool, placeholder).
    pub kept_masked: Vec<(String, String)>,
}

/// Default request limit: 32 MiB (a long conversation with file contents stays well under it).
pub const DEFAULT_MAX_BODY_BYTES: usize = 32 * 1024 * 1024;

/// Headers that name a conversation, in order of preference; without one, the connection does.
const SESSION_HEADERS: &[&str] =
    &["x-session-id", "session_id", "x-claude-code-session-id", "conversation_id", "x-conversation-id"];

/// Request headers passed to the upstream (besides `anthropic-*`); everything else (the client's
/// credential, `accept-encoding` that would make the answer unreadable, hop-by-hop headers) stays.
const FORWARDED_REQUEST_HEADERS: &[&str] = &["content-type", "accept", "user-agent", "openai-beta"];

/// Response headers passed back (besides `anthropic-*`, `openai-*`, `x-ratelimit-*`). The gateway asks
/// for no compression; should an upstream compress anyway, the body cannot be read, passes unchanged
/// (placeholders and all), and `content-encoding` lets the client decode it.
const FORWARDED_RESPONSE_HEADERS: &[&str] =
    &["content-type", "content-encoding", "x-request-id", "request-id", "retry-after", "cache-control"];

#[derive(Debug)]
struct Shared {
    config: GatewayConfig,
    vaults: Vaults,
    http: reqwest::Client,
}

/// The gateway's routes. Serve it with `into_make_service_with_connect_info::<SocketAddr>()` (the
/// connection names a conversation when the client sends no session header).
pub fn app(config: GatewayConfig) -> Router {
    let http = reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(10))
        .build()
        .expect("reqwest's TLS backend initialises");
    let idle = config.idle;
    let shared = Arc::new(Shared { config, vaults: Vaults::new(idle), http });
    Router::new()
        .route("/warden/health", axum::routing::get(|| async { axum::Json(json!({"gateway": "up"})) }))
        .fallback(handle)
        .with_state(shared)
}

/// Serves the gateway on `listener` until `shutdown` resolves.
pub async fn serve(
    listener: tokio::net::TcpListener,
    config: GatewayConfig,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    use axum::serve::ListenerExt;
    // Without TCP_NODELAY a small streamed event waits for the client's delayed ACK (~40 ms).
    let listener = listener.tap_io(|stream| {
        let _ = stream.set_nodelay(true);
    });
    axum::serve(listener, app(config).into_make_service_with_connect_info::<SocketAddr>())
        .with_graceful_shutdown(shutdown)
        .await
}

async fn handle(
    State(shared): State<Arc<Shared>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    request: Request<Body>,
) -> Response<Body> {
    let path = request.uri().path().to_owned();
    let anthropic = path.starts_with("/v1/messages");
    let refuse = |status: StatusCode, message: &str| error_response(status, anthropic, message);
    let Some(client) = client_of(request.headers(), &shared.config.clients) else {
        return refuse(StatusCode::UNAUTHORIZED, "warden gateway: missing or wrong gateway token");
    };
    let api = match (request.method(), path.as_str()) {
        (&Method::GET, "/v1/models") => None,
        (&Method::GET, p) if p.starts_with("/v1/models/") => None,
        (&Method::POST, "/v1/chat/completions") => Some(Api::ChatCompletions),
        (&Method::POST, "/v1/responses") => Some(Api::Responses),
        (&Method::POST, "/v1/messages" | "/v1/messages/count_tokens") => Some(Api::Messages),
        _ => {
            // Unknown routes could carry anything: never forwarded.
            return refuse(
                StatusCode::NOT_FOUND,
                &format!("warden gateway does not forward {} {path}", request.method()),
            );
        }
    };
    // Conversations are the client's own: another client naming the same session id never shares
    // its placeholders (and so never learns which value one stands for).
    let conversation = SESSION_HEADERS
        .iter()
        .find_map(|name| request.headers().get(*name).and_then(|v| v.to_str().ok()).map(|v| format!("session:{v}")))
        .unwrap_or_else(|| format!("connection:{peer}"));
    let conversation = format!("{client}\n{conversation}");
    let vault = shared.vaults.get(&conversation, Instant::now());
    let (parts, body) = request.into_parts();
    let mut report = RequestReport { client, path: path.clone(), ..RequestReport::default() };

    let body = match api {
        None => None,
        Some(_) => {
            let limit = shared.config.max_body_bytes;
            let declared =
                parts.headers.get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()?.parse::<usize>().ok());
            if declared.is_some_and(|length| length > limit) {
                return refuse(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    &format!("warden gateway: request larger than {limit} bytes"),
                );
            }
            let Ok(bytes) = axum::body::to_bytes(body, limit).await else {
                return refuse(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    &format!("warden gateway: request larger than {limit} bytes"),
                );
            };
            let mut value: Value = match serde_json::from_slice(&bytes) {
                Ok(value @ Value::Object(_)) => value,
                Ok(_) => {
                    return refuse(StatusCode::BAD_REQUEST, "warden gateway: the request body must be a JSON object");
                }
                Err(e) => {
                    return refuse(
                        StatusCode::BAD_REQUEST,
                        &format!("warden gateway: the request body is not JSON ({e}); nothing was sent"),
                    );
                }
            };
            let mut vault = vault.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
            mask_request(&shared.config.detector, &mut vault, &mut value, &mut report.masked);
            Some(value.to_string())
        }
    };

    let suffix = path.strip_prefix("/v1").unwrap_or(&path);
    let query = parts.uri.query().map(|q| format!("?{q}")).unwrap_or_default();
    let url = format!("{}{suffix}{query}", shared.config.upstream.trim_end_matches('/'));
    let mut upstream = shared.http.request(parts.method.clone(), &url);
    for (name, value) in &parts.headers {
        let name_str = name.as_str();
        if FORWARDED_REQUEST_HEADERS.contains(&name_str) || name_str.starts_with("anthropic-") {
            upstream = upstream.header(name.clone(), value.clone());
        }
    }
    if let Some(key) = &shared.config.upstream_key {
        upstream = if anthropic { upstream.header("x-api-key", key) } else { upstream.bearer_auth(key) };
    }
    if let Some(body) = body {
        upstream = upstream.header(header::CONTENT_TYPE, "application/json").body(body);
    }
    let mut answer = match upstream.send().await {
        Ok(answer) => answer,
        Err(e) => {
            if let Some(on_report) = &shared.config.on_report {
                on_report(&report);
            }
            let message =
                format!("warden gateway: the upstream {} did not answer: {}", shared.config.upstream, without_url(&e));
            return refuse(StatusCode::BAD_GATEWAY, &message);
        }
    };
    report.status = answer.status().as_u16();
    let mut response = Response::builder().status(answer.status());
    for (name, value) in answer.headers() {
        let n = name.as_str();
        if FORWARDED_RESPONSE_HEADERS.contains(&n)
            || n.starts_with("anthropic-")
            || n.starts_with("openai-")
            || n.starts_with("x-ratelimit-")
        {
            response = response.header(name.clone(), value.clone());
        }
    }
    let streamed = answer
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("text/event-stream"));
    let (sender, receiver) = tokio::sync::mpsc::channel::<Bytes>(16);
    let restoring = answer.status().is_success() && api.is_some();
    let on_report = shared.config.on_report.clone();
    let detector = Arc::clone(&shared.config.detector);
    if streamed {
        let mut restorer = restoring.then(|| SseRestorer::new(api.unwrap_or(Api::ChatCompletions), detector, vault));
        tokio::spawn(async move {
            while let Ok(Some(chunk)) = answer.chunk().await {
                let out = match &mut restorer {
                    Some(restorer) => Bytes::from(restorer.feed(&chunk)),
                    None => chunk,
                };
                if !out.is_empty() && sender.send(out).await.is_err() {
                    break;
                }
            }
            if let Some(restorer) = &mut restorer {
                let rest = restorer.finish();
                if !rest.is_empty() {
                    let _ = sender.send(Bytes::from(rest)).await;
                }
                add_restore(&mut report, restorer.report());
            }
            if let Some(on_report) = on_report {
                on_report(&report);
            }
        });
    } else {
        tokio::spawn(async move {
            let mut whole = Vec::new();
            while let Ok(Some(chunk)) = answer.chunk().await {
                whole.extend_from_slice(&chunk);
            }
            let mut out = Bytes::from(whole);
            if restoring && let Ok(mut value) = serde_json::from_slice::<Value>(&out) {
                let mut restored = RestoreReport::default();
                let changed = {
                    let vault = vault.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
                    restore_value(&detector, &vault, &mut value, &mut restored)
                };
                if changed {
                    out = Bytes::from(value.to_string());
                }
                add_restore(&mut report, &restored);
            }
            let _ = sender.send(out).await;
            if let Some(on_report) = on_report {
                on_report(&report);
            }
        });
    }
    response.body(Body::new(ChannelBody { receiver })).unwrap_or_else(|_| {
        error_response(StatusCode::BAD_GATEWAY, anthropic, "warden gateway: the upstream sent invalid headers")
    })
}

fn add_restore(report: &mut RequestReport, restore: &RestoreReport) {
    report.restored += restore.restored;
    report.kept_masked.extend(restore.kept.iter().cloned());
}

/// reqwest's errors print the URL; the message keeps only the cause.
fn without_url(error: &reqwest::Error) -> String {
    let mut cause: &dyn std::error::Error = error;
    while let Some(next) = cause.source() {
        cause = next;
    }
    cause.to_string()
}

/// The client whose token the request carries, sent as OpenAI clients send a key (`Authorization:
/// Bearer`) or as Anthropic clients do (`x-api-key`).
fn client_of(headers: &HeaderMap, clients: &ClientTokens) -> Option<String> {
    let bearer =
        headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()).and_then(|v| v.strip_prefix("Bearer "));
    let api_key = headers.get(HeaderName::from_static("x-api-key")).and_then(|v| v.to_str().ok());
    [bearer, api_key].into_iter().flatten().find_map(|given| clients.client_of(given))
}

/// An error in the shape the client's SDK reads: Anthropic's `{"type":"error","error":{…}}` or
/// OpenAI's `{"error":{…}}`.
fn error_response(status: StatusCode, anthropic: bool, message: &str) -> Response<Body> {
    let kind = match status {
        StatusCode::UNAUTHORIZED => "authentication_error",
        StatusCode::PAYLOAD_TOO_LARGE => "request_too_large",
        StatusCode::NOT_FOUND => "not_found_error",
        StatusCode::BAD_GATEWAY => "api_error",
        _ => "invalid_request_error",
    };
    let body = if anthropic {
        json!({"type": "error", "error": {"type": kind, "message": message}})
    } else {
        json!({"error": {"type": kind, "message": message, "code": null}})
    };
    let mut response = Response::new(Body::from(body.to_string()));
    *response.status_mut() = status;
    response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response
}

/// A response body fed by the task reading the upstream.
#[derive(Debug)]
struct ChannelBody {
    receiver: tokio::sync::mpsc::Receiver<Bytes>,
}

impl http_body::Body for ChannelBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Bytes>, Infallible>>> {
        self.receiver.poll_recv(cx).map(|chunk| chunk.map(|bytes| Ok(http_body::Frame::data(bytes))))
    }
}
