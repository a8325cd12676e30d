//! The server side of the local API (`warden_api::local`): HTTP/1.1 + JSON on a Unix socket,
//! each caller known by the kernel (`SO_PEERCRED`), never by what a message says.
//!
//! Each connection is served on its own task with a deadline for its request header, so a
//! client that connects and sends nothing (or trickles bytes) is dropped; a uid holds at most
//! [`MAX_CONNECTIONS_PER_UID`] connections at once and the runtime [`MAX_CONNECTIONS`], so one
//! user's flood cannot starve another user or root; bodies over `MAX_LOCAL_BODY` are refused
//! unread. None of these stops the service or another client.

use crate::runtime::Runtime;
use axum::extract::{FromRequest, Query, Request, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Extension, Json, Router};
use bytes::Bytes;
use hyper_util::rt::{TokioIo, TokioTimer};
use serde::de::DeserializeOwned;
use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::net::UnixListener;
use tokio::sync::{broadcast, mpsc};
use warden_api::ExceptionRequestCreate;
use warden_api::local::{
    Caller, Hello, LOCAL_API_VERSION, LiveEvent, LocalEnroll, LocalError, LocalErrorCode, MAX_LOCAL_BODY,
};

/// Open connections one uid may hold (live subscriptions count).
pub const MAX_CONNECTIONS_PER_UID: usize = 16;
/// Open connections in all.
pub const MAX_CONNECTIONS: usize = 256;
/// How long a client has to send a whole request header.
pub const HEADER_DEADLINE: Duration = Duration::from_secs(5);
/// How often an idle live stream carries a keep-alive line.
pub const KEEP_ALIVE: Duration = Duration::from_secs(15);

/// The caller of one connection, from `SO_PEERCRED`.
#[derive(Debug, Clone, Copy)]
struct PeerUid(u32);

/// An error answer: the stable code decides the HTTP status.
struct Failure(LocalError);

impl From<LocalError> for Failure {
    fn from(error: LocalError) -> Failure {
        Failure(error)
    }
}

impl IntoResponse for Failure {
    fn into_response(self) -> Response {
        let status = match self.0.code {
            LocalErrorCode::BadRequest => StatusCode::BAD_REQUEST,
            LocalErrorCode::TooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            LocalErrorCode::Forbidden => StatusCode::FORBIDDEN,
            LocalErrorCode::NotFound => StatusCode::NOT_FOUND,
            LocalErrorCode::NotEnrolled => StatusCode::CONFLICT,
            LocalErrorCode::Server => StatusCode::BAD_GATEWAY,
            LocalErrorCode::Internal => StatusCode::INTERNAL_SERVER_ERROR,
            LocalErrorCode::NoGateway => StatusCode::SERVICE_UNAVAILABLE,
        };
        (status, Json(self.0)).into_response()
    }
}

/// A JSON body read with the size limit, whose every rejection is a [`LocalError`].
struct Body<T>(T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for Body<T> {
    type Rejection = Failure;

    async fn from_request(request: Request, state: &S) -> Result<Body<T>, Failure> {
        let bytes = Bytes::from_request(request, state).await.map_err(|rejection| {
            if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
                LocalError::new(LocalErrorCode::TooLarge, format!("the body is larger than {MAX_LOCAL_BODY} bytes"))
            } else {
                LocalError::new(LocalErrorCode::BadRequest, rejection.body_text())
            }
        })?;
        serde_json::from_slice(&bytes)
            .map(Body)
            .map_err(|e| Failure(LocalError::new(LocalErrorCode::BadRequest, format!("the body: {e}"))))
    }
}

type Shared = Arc<Runtime>;

fn caller(runtime: &Runtime, peer: PeerUid) -> Caller {
    runtime.caller(peer.0)
}

async fn hello(State(runtime): State<Shared>, Extension(peer): Extension<PeerUid>) -> Json<Hello> {
    Json(Hello {
        api_versions: vec![LOCAL_API_VERSION],
        runtime_version: env!("CARGO_PKG_VERSION").into(),
        mode: runtime.mode(),
        caller: caller(&runtime, peer),
    })
}

async fn status(State(runtime): State<Shared>, Extension(peer): Extension<PeerUid>) -> Response {
    let caller = caller(&runtime, peer);
    // Counting reads the store: off the async workers.
    match tokio::task::spawn_blocking(move || runtime.status(&caller)).await {
        Ok(status) => Json(status).into_response(),
        Err(e) => Failure(LocalError::new(LocalErrorCode::Internal, e.to_string())).into_response(),
    }
}

async fn policy(State(runtime): State<Shared>) -> Response {
    Json(runtime.policy()).into_response()
}

#[derive(Debug, serde::Deserialize)]
struct EventsQuery {
    limit: Option<usize>,
}

async fn events(
    State(runtime): State<Shared>,
    Extension(peer): Extension<PeerUid>,
    query: Result<Query<EventsQuery>, axum::extract::rejection::QueryRejection>,
) -> Response {
    let limit = match query {
        Ok(Query(q)) => q.limit.unwrap_or(100).min(5000),
        Err(e) => return Failure(LocalError::new(LocalErrorCode::BadRequest, e.body_text())).into_response(),
    };
    let caller = caller(&runtime, peer);
    match tokio::task::spawn_blocking(move || runtime.own_events(&caller, limit)).await {
        Ok(list) => Json(list).into_response(),
        Err(e) => Failure(LocalError::new(LocalErrorCode::Internal, e.to_string())).into_response(),
    }
}

/// The live stream: one JSON document per line; launches only the caller may see.
async fn live(State(runtime): State<Shared>, Extension(peer): Extension<PeerUid>) -> Response {
    let caller = caller(&runtime, peer);
    let mut events = runtime.subscribe();
    let (lines, body) = mpsc::channel::<Bytes>(64);
    tokio::spawn(async move {
        loop {
            let next = tokio::time::timeout(KEEP_ALIVE, events.recv()).await;
            let event = match next {
                Err(_) => LiveEvent::KeepAlive,
                Ok(Ok(event)) if !Runtime::may_see_live(&caller, &event) => continue,
                Ok(Ok(event)) => event,
                Ok(Err(broadcast::error::RecvError::Lagged(_))) => continue,
                Ok(Err(broadcast::error::RecvError::Closed)) => return,
            };
            let Ok(mut line) = serde_json::to_vec(&event) else { continue };
            line.push(b'\n');
            // A client that stops reading fills the channel: it is dropped, never waited on.
            if lines.try_send(Bytes::from(line)).is_err() {
                return;
            }
        }
    });
    Response::builder()
        .header("content-type", "application/x-ndjson")
        .body(axum::body::Body::new(LineBody(body)))
        .unwrap_or_else(|_| StatusCode::INTERNAL_SERVER_ERROR.into_response())
}

/// A response body fed line by line from a channel.
struct LineBody(mpsc::Receiver<Bytes>);

impl http_body::Body for LineBody {
    type Data = Bytes;
    type Error = std::convert::Infallible;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<Bytes>, Self::Error>>> {
        self.0.poll_recv(cx).map(|line| line.map(|bytes| Ok(http_body::Frame::data(bytes))))
    }
}

async fn my_requests(State(runtime): State<Shared>, Extension(peer): Extension<PeerUid>) -> Result<Response, Failure> {
    let caller = caller(&runtime, peer);
    Ok(Json(runtime.requests(&caller).await?).into_response())
}

async fn file_request(
    State(runtime): State<Shared>,
    Extension(peer): Extension<PeerUid>,
    Body(request): Body<ExceptionRequestCreate>,
) -> Result<Response, Failure> {
    let caller = caller(&runtime, peer);
    Ok((StatusCode::CREATED, Json(runtime.file_request(&caller, request).await?)).into_response())
}

async fn sync(State(runtime): State<Shared>) -> Result<Response, Failure> {
    Ok((StatusCode::ACCEPTED, Json(runtime.sync_now()?)).into_response())
}

async fn enroll(
    State(runtime): State<Shared>,
    Extension(peer): Extension<PeerUid>,
    Body(request): Body<LocalEnroll>,
) -> Result<Response, Failure> {
    if peer.0 != 0 {
        return Err(LocalError::new(LocalErrorCode::Forbidden, "only root enrolls this device").into());
    }
    Ok(Json(runtime.enroll(request, host_name()).await?).into_response())
}

/// The caller's own way into the hosted masking gateway (their token is made on first ask).
async fn gateway(State(runtime): State<Shared>, Extension(peer): Extension<PeerUid>) -> Result<Response, Failure> {
    let caller = caller(&runtime, peer);
    // Making a token writes the root-only token file: off the async workers.
    let access = tokio::task::spawn_blocking(move || runtime.gateway_access(&caller))
        .await
        .map_err(|e| Failure(LocalError::new(LocalErrorCode::Internal, e.to_string())))??;
    Ok(Json(access).into_response())
}

async fn not_found() -> Failure {
    Failure(LocalError::new(
        LocalErrorCode::NotFound,
        format!("no such route in local API version {LOCAL_API_VERSION} (see GET /v1/hello)"),
    ))
}

fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_owned())
        .ok()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "unknown-host".into())
}

/// The routes, with the runtime as state (the caller arrives per connection).
fn router(runtime: Shared) -> Router {
    Router::new()
        .route("/v1/hello", get(hello))
        .route("/v1/status", get(status))
        .route("/v1/policy", get(policy))
        .route("/v1/events", get(events))
        .route("/v1/events/live", get(live))
        .route("/v1/exception-requests", get(my_requests).post(file_request))
        .route("/v1/sync", post(sync))
        .route("/v1/enroll", post(enroll))
        .route("/v1/gateway", get(gateway))
        .fallback(not_found)
        .layer(axum::extract::DefaultBodyLimit::max(MAX_LOCAL_BODY))
        .with_state(runtime)
}

/// Binds the socket at `path`: its folder is created (mode `folder_mode`) when missing, a
/// stale socket file is replaced, and the socket is made connectable by every local user
/// (`0666`: who may do what is decided per request from `SO_PEERCRED`) or only by the owner
/// (`0600`, the personal runtime).
pub fn bind(path: &Path, everyone: bool) -> std::io::Result<UnixListener> {
    use std::os::unix::fs::PermissionsExt;
    if let Some(folder) = path.parent()
        && !folder.exists()
    {
        std::fs::create_dir_all(folder)?;
        std::fs::set_permissions(folder, std::fs::Permissions::from_mode(if everyone { 0o755 } else { 0o700 }))?;
    }
    if std::fs::symlink_metadata(path).is_ok() {
        if std::os::unix::net::UnixStream::connect(path).is_ok() {
            return Err(std::io::Error::new(
                std::io::ErrorKind::AddrInUse,
                format!("another Warden runtime already answers on {}", path.display()),
            ));
        }
        // A socket left by a previous run that crashed; bind would fail with EADDRINUSE.
        std::fs::remove_file(path)?;
    }
    let listener = UnixListener::bind(path)?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(if everyone { 0o666 } else { 0o600 }))?;
    Ok(listener)
}

/// Serves the local API on `listener` until `shutdown` resolves.
pub async fn serve(runtime: Arc<Runtime>, listener: UnixListener, shutdown: impl std::future::Future<Output = ()>) {
    let app = router(runtime);
    let open: Arc<Mutex<HashMap<u32, usize>>> = Arc::default();
    tokio::pin!(shutdown);
    let mut connections = tokio::task::JoinSet::new();
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            () = &mut shutdown => break,
            Some(_) = connections.join_next(), if !connections.is_empty() => continue,
        };
        let Ok((stream, _)) = accepted else {
            // EMFILE and the like: pause instead of spinning.
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        };
        let Ok(credentials) = stream.peer_cred() else { continue };
        let uid = credentials.uid();
        {
            let mut open = open.lock().unwrap_or_else(|p| p.into_inner());
            let total: usize = open.values().sum();
            let mine = open.entry(uid).or_insert(0);
            if *mine >= MAX_CONNECTIONS_PER_UID || total >= MAX_CONNECTIONS {
                // Dropped unanswered: the caller has too many connections open already.
                continue;
            }
            *mine += 1;
        }
        let app = app.clone().layer(Extension(PeerUid(uid)));
        let open = open.clone();
        connections.spawn(async move {
            let service = hyper_util::service::TowerToHyperService::new(app);
            let connection = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(HEADER_DEADLINE)
                .serve_connection(TokioIo::new(stream), service);
            let _ = connection.await;
            let mut open = open.lock().unwrap_or_else(|p| p.into_inner());
            if let Some(count) = open.get_mut(&uid) {
                *count = count.saturating_sub(1);
            }
        });
    }
    connections.abort_all();
}
