//! The local API between the Warden runtime (the `wardend` system service, or the personal
//! runtime a developer runs as themselves) and its clients on the same machine (the `warden`
//! CLI, the tray app): HTTP/1.1 with JSON bodies over a Unix socket.
//!
//! Versioned from the first message: every route starts with [`LOCAL_PREFIX`] (`/v1`), and
//! `GET /v1/hello` names the versions the runtime speaks. The caller is whoever the kernel says
//! is on the other end of the socket (`SO_PEERCRED`): no message carries a uid or a user name
//! the runtime believes. Any user reads their own status, the catalog and policy, their own
//! launch events (also live), files exception requests as themselves and asks for a sync; only
//! root changes anything else (enrollment).
//!
//! Routes (all JSON; errors are [`LocalError`] with a stable [`LocalErrorCode`]):
//!
//! | route | who | body → answer |
//! |---|---|---|
//! | `GET /v1/hello` | anyone | → [`Hello`] |
//! | `GET /v1/status` | anyone | → [`RuntimeStatus`] (counts are the caller's) |
//! | `GET /v1/policy` | anyone | → [`PolicyInForce`] |
//! | `GET /v1/events?limit=N` | anyone | → `Vec<LaunchEvent>`, newest first, the caller's own (root: all) |
//! | `GET /v1/events/live` | anyone | → a stream of [`LiveEvent`]s, one JSON document per line |
//! | `GET /v1/exception-requests` | bound users | → [`MyRequests`] |
//! | `POST /v1/exception-requests` | bound users | [`ExceptionRequestCreate`] → [`FiledRequest`] |
//! | `POST /v1/sync` | anyone | → [`SyncState`] (the sync runs in the background) |
//! | `POST /v1/enroll` | root | [`LocalEnroll`] → [`EnrolledDevice`] |
//! | `GET /v1/gateway` | anyone | → [`GatewayAccess`]: the masking gateway's address and the caller's own token |

use crate::event::{LaunchEvent, MaskingEvent};
use crate::exception::{ExceptionRecord, ExceptionRequestCreate};
use crate::notice::{ExceptionEnd, Rescan, SessionStop};
use serde::{Deserialize, Serialize};
use warden_policy::{Mode, Policy};

/// The local API version this build speaks.
pub const LOCAL_API_VERSION: u32 = 1;

/// The path prefix of every local route.
pub const LOCAL_PREFIX: &str = "/v1";

/// Where the system service listens unless configured otherwise.
pub const DEFAULT_SOCKET: &str = "/run/warden/warden.sock";

/// The environment variable naming the socket a client should use.
pub const SOCKET_ENV: &str = "WARDEN_SOCKET";

/// The largest request body the runtime reads, in bytes; a larger one is refused
/// (`too-large`) without being read.
pub const MAX_LOCAL_BODY: usize = 64 * 1024;

/// Which runtime answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "kebab-case")]
pub enum RuntimeMode {
    /// `wardend`, running as root: the developer cannot switch it off or rewrite its state.
    Service,
    /// The same runtime run by a developer as themselves (trying Warden out): it enforces, but
    /// its owner can stop it or edit its files. Not tamper-proof.
    Personal,
}

/// Who the runtime believes is calling: taken from the socket, never from a message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Caller {
    pub uid: u32,
    /// The login name of `uid` on this machine, when it has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub login: Option<String>,
    /// The account the enrollment binds `uid` to (`dev@corp.example`); `None` when the uid is
    /// not bound (it may then not file exception requests).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub account: Option<String>,
}

/// `GET /v1/hello`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hello {
    /// The local API versions this runtime speaks.
    pub api_versions: Vec<u32>,
    /// The runtime's build (`CARGO_PKG_VERSION`).
    pub runtime_version: String,
    pub mode: RuntimeMode,
    pub caller: Caller,
}

/// The device's enrollment as clients see it (never the token).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EnrolledDevice {
    pub server: String,
    pub device_id: String,
    /// The owner account the device was enrolled for.
    pub owner: String,
    /// The local logins bound to that account.
    #[serde(default)]
    pub local_users: Vec<String>,
}

/// The server sync as last seen.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SyncState {
    /// Seconds since the epoch of the last sync with no failed phase.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_success: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub policy_version: Option<i64>,
    pub active_exceptions: usize,
    pub syncs: u64,
    /// The sync period in seconds (a policy older than two periods is "unconfirmed").
    pub interval_seconds: u64,
}

/// `GET /v1/status`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RuntimeStatus {
    pub mode: RuntimeMode,
    /// The runtime's process id.
    pub pid: u32,
    /// When it started, milliseconds since the epoch.
    pub started_at_ms: i64,
    /// The exec event source (`proc-connector`, `poll`).
    pub source: String,
    /// What the fanotify pre-exec gate covers (empty: no gate).
    #[serde(default)]
    pub gate_mounts: Vec<String>,
    /// Why a better source was not used, when it was not.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fallback_reason: Option<String>,
    /// Enforce or monitor, as in force now.
    pub enforcement: Mode,
    pub policy_name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub policy_version: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enrolled: Option<EnrolledDevice>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sync: Option<SyncState>,
    /// The caller's own launches since midnight UTC (root: everyone's).
    pub events_today: u64,
    pub blocked_today: u64,
    pub warned_today: u64,
    /// Exec notices the kernel dropped because the agent was too slow (each gap is followed by
    /// a rescan of the running processes).
    pub lost_notices: u64,
    /// Events that could not be written to the store.
    pub unrecorded_events: u64,
    /// Rescans of every running process since the runtime started (its start counts).
    #[serde(default)]
    pub rescans: u64,
    /// The latest rescan: why, when, how many processes, how long.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_rescan: Option<Rescan>,
    /// The vendors' managed files the service writes from the policy, and whether each matches
    /// it now (empty in the personal mode, which writes none).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub managed_files: Vec<ManagedFileState>,
    /// The masking gateway the runtime hosts, when it hosts one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gateway: Option<GatewayState>,
    /// The network layer: which one is active and what it governs (absent from runtimes that
    /// predate it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub network: Option<NetworkStatus>,
}

/// One vendor file the service keeps (`warden status`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ManagedFileState {
    /// Whose file: `claude-code`, `codex`, `gemini-cli`, `qwen-code`, `vs-code`, `chromium`, …
    pub vendor: String,
    /// The system path the vendor reads (`/etc/codex/requirements.toml`).
    pub path: String,
    /// Where it is on this machine (the system path under the service's `--root`).
    pub location: String,
    /// `drop-in` (Warden's own file beside the admin's) or `owned` (the admin's copy is kept
    /// and put back when the policy no longer needs the file).
    pub ownership: String,
    /// Whether the file on disk is exactly what the policy says.
    pub matches: bool,
    /// What it applies, per tool.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub controls: Vec<AppliedControl>,
}

/// One control a managed file applies to one tool (`claude-code`, `bypass mode disabled`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AppliedControl {
    /// Catalog id of the tool.
    pub tool: String,
    /// The control, for people.
    pub control: String,
}

/// Every control the `files` apply to tool `id`, once each, in file order: what the tray's
/// catalog shows beside the tool.
pub fn controls_of_tool(files: &[ManagedFileState], id: &str) -> Vec<String> {
    let mut found: Vec<String> = Vec::new();
    for applied in files.iter().flat_map(|f| &f.controls).filter(|a| a.tool == id) {
        if !found.contains(&applied.control) {
            found.push(applied.control.clone());
        }
    }
    found
}

/// The masking gateway a runtime hosts (in `GET /v1/status`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GatewayState {
    /// The base URL clients use, `/v1` included (`http://127.0.0.1:8788/v1`).
    pub url: String,
    /// Where it forwards: the sanctioned assistant's model API.
    pub upstream: String,
    /// The assistant's name from the policy, when it names one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub assistant: Option<String>,
    /// Why it does not serve, when it does not (no upstream in the policy, the port is taken).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// The caller's requests through it in the last 24 hours (root: everyone's).
    pub requests_24h: u64,
    /// Findings masked in those requests.
    pub masked_24h: u64,
    /// Placeholders kept masked in shell or network tool calls in those requests.
    pub kept_masked_24h: u64,
    /// The caller's latest request through it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last: Option<MaskingEvent>,
}

/// `GET /v1/gateway`: how the caller's own client reaches the masking gateway. The token is the
/// caller's alone (one per uid, made by the runtime, never another user's); clients send it as
/// their API key (`OPENAI_API_KEY`, `ANTHROPIC_API_KEY`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GatewayAccess {
    /// The OpenAI-compatible base URL, `/v1` included (`http://127.0.0.1:8788/v1`).
    pub openai_base_url: String,
    /// The Anthropic base URL (`http://127.0.0.1:8788`).
    pub anthropic_base_url: String,
    pub token: String,
}

impl GatewayAccess {
    /// The environment a sanctioned client runs with to go through the gateway (OpenAI-compatible
    /// clients such as Qwen Code, and Anthropic clients).
    pub fn client_env(&self) -> [(&'static str, &str); 4] {
        [
            ("OPENAI_BASE_URL", &self.openai_base_url),
            ("OPENAI_API_KEY", &self.token),
            ("ANTHROPIC_BASE_URL", &self.anthropic_base_url),
            ("ANTHROPIC_API_KEY", &self.token),
        ]
    }
}

/// Which network layer governs connections.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum NetworkLayer {
    /// The eBPF connect/sendmsg hooks are attached: governed destinations are refused per
    /// process, before a byte leaves.
    Ebpf,
    /// The hooks could not load (or the configuration chose it): the nftables fallback refuses
    /// governed destinations for every process in the namespace, without per-connection events.
    Fallback,
    /// No network enforcement: only launches are governed (the reason says why).
    LaunchOnly,
}

impl NetworkLayer {
    /// How status lines name it: `eBPF`, `fallback`, `launch only`.
    pub fn label(self) -> &'static str {
        match self {
            NetworkLayer::Ebpf => "eBPF",
            NetworkLayer::Fallback => "fallback",
            NetworkLayer::LaunchOnly => "launch only",
        }
    }
}

/// `RuntimeStatus::network`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NetworkStatus {
    pub layer: NetworkLayer,
    /// For people: what is attached where, or why not.
    pub detail: String,
    /// The cgroup v2 folder the hooks are attached to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cgroup: Option<String>,
    /// Governed and sanctioned names resolved (of all names), and address ranges in the kernel.
    pub names_resolved: u64,
    pub names: u64,
    pub ranges: u64,
    /// Addresses learned from the DNS answers processes received (a governed name's address the
    /// service's own lookups did not return), each in force until its TTL passes.
    #[serde(default)]
    pub learned: u64,
    /// Names whose last lookup failed (their last good addresses stay in force).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub unresolved: Vec<String>,
    /// Processes open now through approved exceptions (launch trees).
    pub open_processes: u64,
    /// HTTP(S) proxies in use (the policy's `[network] proxies` and the service's environment):
    /// through a proxy, `connect()` sees only the proxy, so destinations behind it are not seen.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub proxies: Vec<String>,
}

/// `GET /v1/policy`: the policy the runtime enforces now.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PolicyInForce {
    pub policy: Policy,
    /// The server's version of it, when it came from a server.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
}

/// One line of `GET /v1/events/live`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "kebab-case")]
pub enum LiveEvent {
    /// A launch the caller may see, just decided.
    Launch { event: LaunchEvent },
    /// The sync state changed (new policy, new exceptions, the server lost or back): clients
    /// re-read what they show.
    Sync { sync: SyncState },
    /// Sent every few seconds when nothing else is, so a client notices a dead runtime.
    KeepAlive,
    /// A running launch's exception expired or was revoked: the pop-up ("… will be stopped in 5
    /// minutes"). To root and to the launch's person.
    ExceptionEnded { ended: ExceptionEnd },
    /// A session whose exception ended was stopped after its grace period. To root and to the
    /// launch's person.
    SessionStopped { stopped: SessionStop },
    /// After a gap (lost exec notices, a pause of the runtime, its start) every running process
    /// was decided again. To root only: a machine's incident.
    Rescan { rescan: Rescan },
    /// A request went through the masking gateway (counts, never values). To root and to the
    /// request's person.
    Masking { masking: MaskingEvent },
    /// A connection to a governed destination (refused, warned, or let through by an exception).
    /// To root and to the process's person.
    Connect { event: crate::ConnectEvent },
}

/// `GET /v1/exception-requests`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MyRequests {
    /// `true` when `requests` comes from the server just now, `false` when it is the last
    /// list the sync fetched (the server is unreachable).
    pub live: bool,
    pub requests: Vec<ExceptionRecord>,
    /// Filed here, not yet accepted by the server.
    pub queued: Vec<QueuedRequest>,
}

/// A request waiting in the device's outbox.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct QueuedRequest {
    pub id: String,
    pub created_ms: i64,
    pub request: ExceptionRequestCreate,
}

/// `POST /v1/exception-requests`: what happened to a filed request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FiledRequest {
    /// The outbox id (the server's record id once sent).
    pub id: String,
    /// `true` when the server accepted it during the call; otherwise it stays queued durably
    /// and goes out at the next sync.
    pub sent: bool,
    /// Why it was not sent, when it was not.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

/// `POST /v1/enroll` (root only): enroll this device with a governance server.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LocalEnroll {
    /// The server's base URL; empty with a code: the code's.
    #[serde(default)]
    pub server: String,
    /// The enroll secret (empty with a code). Sent over the root-only request, never logged.
    #[serde(default)]
    pub secret: String,
    /// An enrollment code's text ([`crate::EnrollmentCode::encode`]): the device belongs to the
    /// code's person, and the code's CA is pinned.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code: Option<String>,
    /// The owner account (`dev@corp.example`); empty with a code: the code's person.
    #[serde(default)]
    pub owner: String,
    /// Local logins bound to the owner account.
    #[serde(default)]
    pub local_users: Vec<String>,
}

/// Stable error codes of the local API.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum LocalErrorCode {
    /// The body is not the JSON the route takes.
    BadRequest,
    /// The body is larger than [`MAX_LOCAL_BODY`].
    TooLarge,
    /// The caller may not do this (not root; not bound to the device's owner).
    Forbidden,
    NotFound,
    /// The device is not enrolled with a server.
    NotEnrolled,
    /// The governance server refused or could not be reached.
    Server,
    /// Something failed inside the runtime.
    Internal,
    /// The runtime hosts no masking gateway (or it cannot serve: the message says why).
    NoGateway,
}

/// The body of every local API error.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[error("{message} ({code:?})")]
pub struct LocalError {
    pub code: LocalErrorCode,
    pub message: String,
}

impl LocalError {
    pub fn new(code: LocalErrorCode, message: impl Into<String>) -> LocalError {
        LocalError { code, message: message.into() }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn live_events_are_tagged_by_type() {
        let line = serde_json::to_string(&LiveEvent::KeepAlive).unwrap();
        assert_eq!(line, r#"{"type":"keep-alive"}"#);
        let sync = LiveEvent::Sync { sync: SyncState { interval_seconds: 60, ..SyncState::default() } };
        let back: LiveEvent = serde_json::from_str(&serde_json::to_string(&sync).unwrap()).unwrap();
        assert_eq!(back, sync);
    }

    #[test]
    fn enroll_refuses_unknown_fields() {
        let error = serde_json::from_str::<LocalEnroll>(r#"{"server":"http://x","secret":"s","owner":"a","uid":0}"#)
            .unwrap_err();
        assert!(error.to_string().contains("unknown field `uid`"), "{error}");
    }

    #[test]
    fn error_codes_are_stable_words() {
        let error = LocalError::new(LocalErrorCode::NotEnrolled, "enroll first");
        assert_eq!(
            serde_json::to_value(&error).unwrap(),
            serde_json::json!({"code": "not-enrolled", "message": "enroll first"})
        );
    }
}
