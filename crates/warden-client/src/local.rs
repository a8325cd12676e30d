//! The client side of the local API (`warden_api::local`): how the `warden` CLI and the tray
//! talk to the Warden runtime (`wardend`, or a personal runtime) over its Unix socket.
//!
//! The system service's socket is found by [`service_socket`]: an explicit path, else
//! [`SOCKET_ENV`], else [`DEFAULT_SOCKET`] (`/run/warden/warden.sock`) when it exists; without a
//! service, a personal runtime answers on [`personal_socket`] in its state directory. The runtime
//! knows the caller from the socket itself, so nothing here says who is asking.

use crate::state::StateDir;
use reqwest::{Method, StatusCode};
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::path::{Path, PathBuf};
use std::time::Duration;
use warden_api::local::{
    DEFAULT_SOCKET, EnrolledDevice, FiledRequest, GatewayAccess, Hello, LOCAL_API_VERSION, LOCAL_PREFIX, LiveEvent,
    LocalEnroll, LocalError, LocalErrorCode, MyRequests, PolicyInForce, RuntimeStatus, SOCKET_ENV, SyncState,
};
use warden_api::{ExceptionRequestCreate, LaunchEvent};

/// The socket of the personal runtime keeping its state in `state` (`<state dir>/warden.sock`:
/// the developer's own folder, so two personal runtimes with different state never collide).
pub fn personal_socket(state: &StateDir) -> PathBuf {
    state.root().join(PERSONAL_SOCKET_NAME)
}

/// The file name of a personal runtime's socket inside its state directory.
pub const PERSONAL_SOCKET_NAME: &str = "warden.sock";

/// The system service's socket a client should try: `explicit` (`--socket`), else
/// `$WARDEN_SOCKET` — both *named*, so the flag is `true` and not answering is an error —, else
/// the default path when it exists (flag `false`: a stale file means no service). `None`: no
/// service is configured here, so the caller uses the personal runtime.
pub fn service_socket(explicit: Option<&Path>) -> Option<(PathBuf, bool)> {
    if let Some(path) = explicit {
        return Some((path.to_path_buf(), true));
    }
    if let Some(path) = std::env::var_os(SOCKET_ENV).filter(|p| !p.is_empty()) {
        return Some((PathBuf::from(path), true));
    }
    let default = PathBuf::from(DEFAULT_SOCKET);
    default.exists().then_some((default, false))
}

/// Why a local call failed.
#[derive(Debug, thiserror::Error)]
pub enum LocalClientError {
    /// Nothing listens on the socket (no service, no personal runtime).
    #[error("no Warden runtime answers on {socket}: {detail}")]
    Unreachable { socket: PathBuf, detail: String },
    /// The runtime answered with an error.
    #[error("{}", .0.message)]
    Refused(LocalError),
    /// The runtime answered something this client does not understand (another version).
    #[error("unexpected answer from the Warden runtime on {socket}: {detail}")]
    Protocol { socket: PathBuf, detail: String },
}

impl LocalClientError {
    /// The runtime's stable code, when it answered with one.
    pub fn code(&self) -> Option<LocalErrorCode> {
        match self {
            LocalClientError::Refused(error) => Some(error.code),
            _ => None,
        }
    }
}

/// A client of one runtime's socket. Cheap to clone.
#[derive(Debug, Clone)]
pub struct LocalClient {
    socket: PathBuf,
    http: reqwest::Client,
}

impl LocalClient {
    /// A client for `socket` (no connection is made yet).
    pub fn new(socket: impl Into<PathBuf>) -> Result<LocalClient, LocalClientError> {
        let socket = socket.into();
        let http = reqwest::Client::builder()
            .unix_socket(socket.clone())
            .connect_timeout(Duration::from_secs(2))
            // The runtime drops a connection that sends no request for 5 s (its header
            // deadline, which also bounds keep-alive), so a pooled one may be dead when reused;
            // a connect on a Unix socket costs microseconds, so every request gets its own.
            .pool_max_idle_per_host(0)
            .build()
            .map_err(|e| LocalClientError::Protocol { socket: socket.clone(), detail: e.to_string() })?;
        Ok(LocalClient { socket, http })
    }

    pub fn socket(&self) -> &Path {
        &self.socket
    }

    fn url(&self, route: &str) -> String {
        // The host is never resolved: every connection goes to the socket.
        format!("http://warden.local{LOCAL_PREFIX}{route}")
    }

    async fn call<B: Serialize, T: DeserializeOwned>(
        &self,
        method: Method,
        route: &str,
        body: Option<&B>,
        timeout: Duration,
    ) -> Result<T, LocalClientError> {
        let mut request = self.http.request(method, self.url(route)).timeout(timeout);
        if let Some(body) = body {
            request = request.json(body);
        }
        let response = request.send().await.map_err(|e| self.unreachable(e))?;
        let status = response.status();
        let bytes = response.bytes().await.map_err(|e| self.protocol(e))?;
        if status.is_success() {
            return serde_json::from_slice(&bytes).map_err(|e| self.protocol(e));
        }
        match serde_json::from_slice::<LocalError>(&bytes) {
            Ok(error) => Err(LocalClientError::Refused(error)),
            Err(_) => Err(self.protocol(format!("HTTP {status}: {}", String::from_utf8_lossy(&bytes)))),
        }
    }

    fn unreachable(&self, error: reqwest::Error) -> LocalClientError {
        let mut detail = error.to_string();
        let mut source = std::error::Error::source(&error);
        while let Some(inner) = source {
            detail = inner.to_string();
            source = inner.source();
        }
        LocalClientError::Unreachable { socket: self.socket.clone(), detail }
    }

    fn protocol(&self, error: impl ToString) -> LocalClientError {
        LocalClientError::Protocol { socket: self.socket.clone(), detail: error.to_string() }
    }

    async fn get<T: DeserializeOwned>(&self, route: &str) -> Result<T, LocalClientError> {
        self.call::<(), T>(Method::GET, route, None, Duration::from_secs(10)).await
    }

    /// Who answers, and who it thinks we are. Refuses a runtime that does not speak this
    /// client's API version.
    pub async fn hello(&self) -> Result<Hello, LocalClientError> {
        let hello: Hello = self.get("/hello").await?;
        if !hello.api_versions.contains(&LOCAL_API_VERSION) {
            return Err(self.protocol(format!(
                "the runtime speaks local API versions {:?}, this client {LOCAL_API_VERSION}",
                hello.api_versions
            )));
        }
        Ok(hello)
    }

    pub async fn status(&self) -> Result<RuntimeStatus, LocalClientError> {
        self.get("/status").await
    }

    pub async fn policy(&self) -> Result<PolicyInForce, LocalClientError> {
        self.get("/policy").await
    }

    /// The caller's own launch events, newest first.
    pub async fn events(&self, limit: usize) -> Result<Vec<LaunchEvent>, LocalClientError> {
        self.get(&format!("/events?limit={limit}")).await
    }

    pub async fn requests(&self) -> Result<MyRequests, LocalClientError> {
        self.call::<(), MyRequests>(Method::GET, "/exception-requests", None, Duration::from_secs(30)).await
    }

    /// Files an exception request as the caller (the runtime takes the person from the socket).
    pub async fn file_request(&self, request: &ExceptionRequestCreate) -> Result<FiledRequest, LocalClientError> {
        self.call(Method::POST, "/exception-requests", Some(request), Duration::from_secs(30)).await
    }

    /// Asks for a sync now; answers at once with the state before it.
    pub async fn sync_now(&self) -> Result<SyncState, LocalClientError> {
        self.call::<(), SyncState>(Method::POST, "/sync", None, Duration::from_secs(10)).await
    }

    /// How the caller's own client reaches the masking gateway the runtime hosts (their token).
    pub async fn gateway(&self) -> Result<GatewayAccess, LocalClientError> {
        self.get("/gateway").await
    }

    /// Enrolls the device (root only).
    pub async fn enroll(&self, enroll: &LocalEnroll) -> Result<EnrolledDevice, LocalClientError> {
        self.call(Method::POST, "/enroll", Some(enroll), Duration::from_secs(60)).await
    }

    /// Subscribes to live events: returns a receiver fed until the runtime goes away (then
    /// the channel closes).
    pub async fn live(&self) -> Result<tokio::sync::mpsc::Receiver<LiveEvent>, LocalClientError> {
        let response = self.http.get(self.url("/events/live")).send().await.map_err(|e| self.unreachable(e))?;
        if response.status() != StatusCode::OK {
            let bytes = response.bytes().await.unwrap_or_default();
            return Err(match serde_json::from_slice::<LocalError>(&bytes) {
                Ok(error) => LocalClientError::Refused(error),
                Err(_) => self.protocol(String::from_utf8_lossy(&bytes)),
            });
        }
        let (sender, receiver) = tokio::sync::mpsc::channel(256);
        tokio::spawn(forward_lines(response, sender));
        Ok(receiver)
    }
}

/// Cuts the live stream into lines and forwards each event; a line that does not parse (a
/// newer runtime's event type) is skipped, never fatal.
async fn forward_lines(mut response: reqwest::Response, sender: tokio::sync::mpsc::Sender<LiveEvent>) {
    let mut pending: Vec<u8> = Vec::new();
    while let Ok(Some(chunk)) = response.chunk().await {
        pending.extend_from_slice(&chunk);
        while let Some(end) = pending.iter().position(|b| *b == b'\n') {
            let line: Vec<u8> = pending.drain(..=end).collect();
            if let Ok(event) = serde_json::from_slice::<LiveEvent>(&line)
                && sender.send(event).await.is_err()
            {
                return;
            }
        }
        // A line longer than anything the runtime sends is garbage: drop it.
        if pending.len() > 4 * 1024 * 1024 {
            pending.clear();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_named_socket_is_the_service_and_must_answer() {
        assert_eq!(service_socket(Some(Path::new("/tmp/x.sock"))), Some((PathBuf::from("/tmp/x.sock"), true)));
        assert_eq!(personal_socket(&StateDir::new(Path::new("/tmp/state"))), PathBuf::from("/tmp/state/warden.sock"));
    }
}
