//! Events: one record for everything that happens on a device ([`Event`], tagged by `kind`),
//! with a typed payload per kind. A launch ([`LaunchEvent`]) is one AI-tool start and what Warden
//! did about it; the service's start and stop, incidents, ended exceptions, drift of a managed
//! vendor file ([`ControlDriftEvent`]), the masking gateway's requests and connections to governed
//! destinations ([`ConnectEvent`]) are the others.

use crate::local::RuntimeMode;
use serde::de::Error as _;
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::{Map, Value};
use warden_policy::Action;

/// What enforcement actually did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "kebab-case")]
pub enum Outcome {
    /// Allowed to run.
    Allowed,
    /// Allowed to run, and the developer was warned.
    Warned,
    /// Stopped before its first instruction (pre-exec gate).
    Denied,
    /// Killed, with its process tree, right after it started.
    Killed,
    /// Monitor mode: enforce would have blocked it; it kept running.
    WouldBlock,
    /// Should have been blocked but Warden may not signal it (another user's process).
    NotPermitted,
    /// Should have been blocked but it had already exited.
    Exited,
}

/// One launch of an AI tool on a device. `id` is unique per event, so an upload that is
/// retried never creates a duplicate on the server.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct LaunchEvent {
    /// Globally unique id (UUID v4 text).
    pub id: String,
    /// When the launch happened, milliseconds since the Unix epoch.
    pub at_ms: i64,
    pub pid: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    pub exe: String,
    #[serde(default)]
    pub argv: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cwd: Option<String>,
    /// Catalog id of the tool.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool: Option<String>,
    /// The policy's decision.
    pub action: Action,
    /// What was actually done.
    pub outcome: Outcome,
    /// The rule that decided (`tool:claude-code`, `exception:…`).
    pub rule: String,
    pub reason: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exception: Option<String>,
    /// Version of the policy in force, when it came from a server.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub policy_version: Option<String>,
    /// Which event source saw the launch (`proc-connector`, `fanotify`, `poll`).
    pub source: String,
}

/// The runtime started on the device: the system service (`wardend`) or the personal mode.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ServiceStartEvent {
    /// Globally unique id (UUID v4 text).
    pub id: String,
    /// Milliseconds since the Unix epoch.
    pub at_ms: i64,
    /// Which runtime: `service` (root, tamper-resistant) or `personal` (run by a developer).
    pub mode: RuntimeMode,
    /// The runtime's version (`CARGO_PKG_VERSION`).
    pub version: String,
    pub pid: u32,
    /// How it enforces (`fanotify+proc-connector`, `proc-connector`, `poll`), when known at start.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    /// Set when the run before this one recorded a start and no stop: it ended uncleanly (a
    /// crash, `kill -9`, a power cut — or someone silencing it). Evidence, not a verdict.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unclean_end: Option<UncleanEnd>,
}

/// The run that ended without recording its stop, as its start event and the event log show it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct UncleanEnd {
    /// The id of that run's `service-start` event.
    pub start_id: String,
    /// When that run started, milliseconds since the Unix epoch.
    pub started_at_ms: i64,
    pub pid: u32,
    pub version: String,
    /// The newest event of any kind that run recorded (ms since the epoch): it ended after this.
    pub last_event_at_ms: i64,
}

/// The runtime stopped cleanly on the device (a crash or `kill -9` records nothing: the next
/// start says so in its [`UncleanEnd`], and meanwhile the server flags the device silent).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ServiceStopEvent {
    /// Globally unique id (UUID v4 text).
    pub id: String,
    /// Milliseconds since the Unix epoch.
    pub at_ms: i64,
    /// Which runtime: `service` or `personal`.
    pub mode: RuntimeMode,
    pub version: String,
    pub pid: u32,
    /// Why it stopped, for people: `signal SIGTERM`, `shutdown requested over the socket`.
    pub reason: String,
}

/// Something an admin should know happened on the device: a cache that failed verification, a
/// gap in the event stream and its rescan, a store moved aside after corruption.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct IncidentEvent {
    /// Globally unique id (UUID v4 text).
    pub id: String,
    /// Milliseconds since the Unix epoch.
    pub at_ms: i64,
    /// Stable kebab-case code: `policy-cache-unverified`, `exceptions-unverified`, `gap-rescan`,
    /// `store-recovered`, … (named `code`, not `kind`: `kind` is the event's tag).
    pub code: String,
    /// What happened, for people (which file, how many processes rescanned, …).
    pub detail: String,
}

/// What happens to a session whose exception ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "kebab-case")]
pub enum SessionOutcome {
    /// The developer was told; the session is stopped when the grace period ends.
    GracePeriod,
    /// Stopped (its process tree killed) at the end of the grace period.
    Stopped,
    /// It ended on its own before the grace period did.
    Exited,
    /// It should be stopped but Warden may not signal it (another user's process).
    NotPermitted,
}

/// A running session that an exception allowed lost that exception.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ExceptionEndedEvent {
    /// Globally unique id (UUID v4 text).
    pub id: String,
    /// Milliseconds since the Unix epoch.
    pub at_ms: i64,
    /// The exception's id (the server's request id).
    pub exception: String,
    /// Catalog id of the tool the session runs.
    pub tool: String,
    /// The session's person (bound account, else login).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    /// The session's root process.
    pub pid: u32,
    pub ended: crate::notice::EndReason,
    /// The grace period the policy gives, in seconds.
    pub grace_seconds: u64,
    pub outcome: SessionOutcome,
}

/// What happened to a managed vendor file (see [`ControlDriftEvent`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "kebab-case")]
pub enum DriftChange {
    /// Its content no longer matched the policy (edited, or replaced by a rename over it).
    Changed,
    /// It was gone (deleted, or its folder removed).
    Removed,
}

/// A vendor's managed file (Claude Code's managed settings, Codex's `requirements.toml`, a
/// browser policy, …) drifted from what the policy says, and the service put it back.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ControlDriftEvent {
    /// Globally unique id (UUID v4 text).
    pub id: String,
    /// Milliseconds since the Unix epoch.
    pub at_ms: i64,
    /// The system path (`/etc/claude-code/managed-settings.d/90-warden.json`).
    pub path: String,
    /// Whose file (`claude-code`, `codex`, `chromium`, …).
    pub vendor: String,
    pub change: DriftChange,
    /// Whether the policy's content is back in place.
    pub restored: bool,
    /// For people: what was found, or why restoring failed.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub detail: String,
}

/// One request through the masking gateway: what was masked before it left the machine, counted
/// per rule — never a value, never the prompt.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct MaskingEvent {
    /// Globally unique id (UUID v4 text).
    pub id: String,
    /// When the request's answer ended, milliseconds since the Unix epoch.
    pub at_ms: i64,
    /// The person whose client sent it (bound account, else login).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    /// The model API route (`/v1/chat/completions`, `/v1/messages`).
    pub path: String,
    /// The upstream's HTTP status (0: never reached).
    pub status: u16,
    /// Where the request went: the sanctioned assistant's name from the policy, else the upstream URL.
    pub destination: String,
    /// Findings masked in the request, per rule id (`aws-access-key-id` → 1).
    #[serde(default)]
    pub masked: std::collections::BTreeMap<String, u32>,
    /// Placeholders put back in the answer (text shown to the developer, file writes).
    #[serde(default)]
    pub restored: u32,
    /// Tools whose call arguments kept a placeholder masked (a shell or network call the model asked
    /// for): one entry per placeholder kept, the tool's name only.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub kept_masked_in: Vec<String>,
}

impl MaskingEvent {
    /// Findings masked, all rules together.
    pub fn masked_total(&self) -> u32 {
        self.masked.values().sum()
    }

    /// One line for people: `3 secrets masked in a request to Internal Assistant`.
    pub fn summary(&self) -> String {
        let total = self.masked_total();
        let mut line = match total {
            0 => format!("nothing masked in a request to {}", self.destination),
            1 => format!("1 secret masked in a request to {}", self.destination),
            n => format!("{n} secrets masked in a request to {}", self.destination),
        };
        if !self.kept_masked_in.is_empty() {
            let mut tools = self.kept_masked_in.clone();
            tools.dedup();
            line.push_str(&format!("; kept masked in a call to {}", tools.join(", ")));
        }
        line
    }
}

/// What the network layer did with a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "kebab-case")]
pub enum ConnectOutcome {
    /// Refused by the kernel (`connect()`/`sendmsg()` failed with EPERM) before a byte left.
    Blocked,
    /// Let through and reported (a `warn` destination).
    Warned,
    /// Monitor mode: enforce would have refused it; it went through.
    WouldBlock,
    /// A governed destination let through by an approved exception of the process's launch.
    Allowed,
}

/// A connection (TCP `connect()`, or a UDP datagram: QUIC, DNS) to a governed destination, as
/// the kernel hook saw it, attributed to its process.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ConnectEvent {
    /// Globally unique id (UUID v4 text).
    pub id: String,
    /// Milliseconds since the Unix epoch.
    pub at_ms: i64,
    /// The process (thread group id) that connected.
    pub pid: u32,
    pub uid: u32,
    /// The process's person (bound account, else login).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    /// The process's executable (`/proc/PID/exe`), when it could still be read.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exe: Option<String>,
    /// Catalog id of the process's tool (itself or the launch it belongs to), else none: a
    /// renamed tool or a script using a vendor SDK connects as "no tool".
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool: Option<String>,
    /// The governed name the address belongs to (`api.anthropic.com`), else the range
    /// (`203.0.113.0/24`) or the address itself.
    pub host: String,
    pub address: String,
    pub port: u16,
    /// `tcp` or `udp`.
    pub protocol: String,
    /// The policy's decision for the destination.
    pub action: Action,
    pub outcome: ConnectOutcome,
    /// Why: `destination`, `exception:<id>`, `sanctioned`, or `shared-unnamed` (a shared front end reached
    /// without a DNS answer the kernel could read: let through, not decided).
    pub rule: String,
    /// One sentence for the developer.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub reason: String,
    /// How many connections of this process to this destination this event stands for (repeats
    /// within a few seconds are folded into one event).
    #[serde(default = "one")]
    pub count: u32,
}

fn one() -> u32 {
    1
}

/// The kinds of [`Event`], as spelled in the `kind` tag, the store's and the server's `kind`
/// column, and the `kind` query filter.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "kebab-case")]
pub enum EventKind {
    Launch,
    ServiceStart,
    ServiceStop,
    Incident,
    ExceptionEnded,
    ControlDrift,
    Masking,
    Connect,
}

impl EventKind {
    /// Every kind, in declaration order.
    pub const ALL: [EventKind; 8] = [
        EventKind::Launch,
        EventKind::ServiceStart,
        EventKind::ServiceStop,
        EventKind::Incident,
        EventKind::ExceptionEnded,
        EventKind::ControlDrift,
        EventKind::Masking,
        EventKind::Connect,
    ];

    /// The tag text (`service-start`).
    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::Launch => "launch",
            EventKind::ServiceStart => "service-start",
            EventKind::ServiceStop => "service-stop",
            EventKind::Incident => "incident",
            EventKind::ExceptionEnded => "exception-ended",
            EventKind::ControlDrift => "control-drift",
            EventKind::Masking => "masking",
            EventKind::Connect => "connect",
        }
    }

    /// Reads the `kind` member out of an event object, removing it (what is left is the
    /// payload). An object without `kind` is a launch: devices from before kinds existed sent
    /// bare launch events, and their outboxes must still drain.
    pub fn take_from(object: &mut Map<String, Value>) -> Result<EventKind, KindError> {
        match object.remove("kind") {
            None => Ok(EventKind::Launch),
            Some(Value::String(text)) => text.parse(),
            Some(other) => Err(KindError::NotText(other.to_string())),
        }
    }
}

impl std::fmt::Display for EventKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for EventKind {
    type Err = KindError;
    fn from_str(text: &str) -> Result<EventKind, KindError> {
        EventKind::ALL.into_iter().find(|kind| kind.as_str() == text).ok_or_else(|| KindError::Unknown(text.to_owned()))
    }
}

/// A `kind` this version does not know.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KindError {
    #[error("unknown event kind {0:?}; known kinds: {known}", known = known_kinds())]
    Unknown(String),
    #[error("the event kind must be text, not {0}")]
    NotText(String),
}

fn known_kinds() -> String {
    EventKind::ALL.map(EventKind::as_str).join(", ")
}

/// A stored event that cannot be read back.
#[derive(Debug, thiserror::Error)]
pub enum EventDecodeError {
    #[error(transparent)]
    Kind(#[from] KindError),
    #[error("unreadable event payload: {0}")]
    Payload(#[from] serde_json::Error),
}

/// One record of anything that happened on a device, for the local log, the upload and the
/// server alike. On the wire it is the payload's JSON object plus `"kind": "<kind>"`; the store
/// and the server keep the kind in a column and the payload JSON ([`Event::payload_json`]) beside
/// it, so a new kind is a new variant here and needs no table or migration anywhere.
///
/// Reading: an object without `kind` is a launch (see [`EventKind::take_from`]); an unknown kind
/// is an error ([`KindError::Unknown`]), never silently dropped.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum Event {
    Launch(LaunchEvent),
    ServiceStart(ServiceStartEvent),
    ServiceStop(ServiceStopEvent),
    Incident(IncidentEvent),
    ExceptionEnded(ExceptionEndedEvent),
    ControlDrift(ControlDriftEvent),
    Masking(MaskingEvent),
    Connect(ConnectEvent),
}

impl Event {
    pub fn kind(&self) -> EventKind {
        match self {
            Event::Launch(_) => EventKind::Launch,
            Event::ServiceStart(_) => EventKind::ServiceStart,
            Event::ServiceStop(_) => EventKind::ServiceStop,
            Event::Incident(_) => EventKind::Incident,
            Event::ExceptionEnded(_) => EventKind::ExceptionEnded,
            Event::ControlDrift(_) => EventKind::ControlDrift,
            Event::Masking(_) => EventKind::Masking,
            Event::Connect(_) => EventKind::Connect,
        }
    }

    /// The event's unique id (UUID text).
    pub fn id(&self) -> &str {
        match self {
            Event::Launch(e) => &e.id,
            Event::ServiceStart(e) => &e.id,
            Event::ServiceStop(e) => &e.id,
            Event::Incident(e) => &e.id,
            Event::ExceptionEnded(e) => &e.id,
            Event::ControlDrift(e) => &e.id,
            Event::Masking(e) => &e.id,
            Event::Connect(e) => &e.id,
        }
    }

    /// When it happened, milliseconds since the Unix epoch (the device's clock).
    pub fn at_ms(&self) -> i64 {
        match self {
            Event::Launch(e) => e.at_ms,
            Event::ServiceStart(e) => e.at_ms,
            Event::ServiceStop(e) => e.at_ms,
            Event::Incident(e) => e.at_ms,
            Event::ExceptionEnded(e) => e.at_ms,
            Event::ControlDrift(e) => e.at_ms,
            Event::Masking(e) => e.at_ms,
            Event::Connect(e) => e.at_ms,
        }
    }

    /// The person it concerns, for kinds that concern one (launch, exception-ended, masking, connect).
    pub fn user(&self) -> Option<&str> {
        match self {
            Event::Launch(e) => e.user.as_deref(),
            Event::ExceptionEnded(e) => e.user.as_deref(),
            Event::Masking(e) => e.user.as_deref(),
            Event::Connect(e) => e.user.as_deref(),
            Event::ServiceStart(_) | Event::ServiceStop(_) | Event::Incident(_) | Event::ControlDrift(_) => None,
        }
    }

    /// The catalog tool it concerns, for kinds that concern one.
    pub fn tool(&self) -> Option<&str> {
        match self {
            Event::Launch(e) => e.tool.as_deref(),
            Event::ExceptionEnded(e) => Some(&e.tool),
            Event::Connect(e) => e.tool.as_deref(),
            Event::ServiceStart(_)
            | Event::ServiceStop(_)
            | Event::Incident(_)
            | Event::ControlDrift(_)
            | Event::Masking(_) => None,
        }
    }

    /// The launch, if this is one.
    pub fn as_launch(&self) -> Option<&LaunchEvent> {
        match self {
            Event::Launch(launch) => Some(launch),
            _ => None,
        }
    }

    /// The payload alone (the wire object without `kind`), as the store and the server keep it.
    pub fn payload_json(&self) -> String {
        let text = match self {
            Event::Launch(e) => serde_json::to_string(e),
            Event::ServiceStart(e) => serde_json::to_string(e),
            Event::ServiceStop(e) => serde_json::to_string(e),
            Event::Incident(e) => serde_json::to_string(e),
            Event::ExceptionEnded(e) => serde_json::to_string(e),
            Event::ControlDrift(e) => serde_json::to_string(e),
            Event::Masking(e) => serde_json::to_string(e),
            Event::Connect(e) => serde_json::to_string(e),
        };
        text.expect("event payloads are plain data and always serialize")
    }

    /// Reads the payload of a `kind` from any deserializer (the server passes one that tracks
    /// the path of a bad field).
    pub fn deserialize_payload<'de, D: Deserializer<'de>>(kind: EventKind, payload: D) -> Result<Event, D::Error> {
        Ok(match kind {
            EventKind::Launch => Event::Launch(LaunchEvent::deserialize(payload)?),
            EventKind::ServiceStart => Event::ServiceStart(ServiceStartEvent::deserialize(payload)?),
            EventKind::ServiceStop => Event::ServiceStop(ServiceStopEvent::deserialize(payload)?),
            EventKind::Incident => Event::Incident(IncidentEvent::deserialize(payload)?),
            EventKind::ExceptionEnded => Event::ExceptionEnded(ExceptionEndedEvent::deserialize(payload)?),
            EventKind::ControlDrift => Event::ControlDrift(ControlDriftEvent::deserialize(payload)?),
            EventKind::Masking => Event::Masking(MaskingEvent::deserialize(payload)?),
            EventKind::Connect => Event::Connect(ConnectEvent::deserialize(payload)?),
        })
    }

    /// Rebuilds an event from a stored (kind column, payload JSON) pair.
    pub fn from_parts(kind: &str, payload: &str) -> Result<Event, EventDecodeError> {
        let kind: EventKind = kind.parse()?;
        let mut deserializer = serde_json::Deserializer::from_str(payload);
        let event = Event::deserialize_payload(kind, &mut deserializer)?;
        deserializer.end()?;
        Ok(event)
    }
}

impl<'de> Deserialize<'de> for Event {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Event, D::Error> {
        let mut object = Map::deserialize(deserializer)?;
        let kind = EventKind::take_from(&mut object).map_err(D::Error::custom)?;
        Event::deserialize_payload(kind, Value::Object(object)).map_err(D::Error::custom)
    }
}

impl From<LaunchEvent> for Event {
    fn from(launch: LaunchEvent) -> Event {
        Event::Launch(launch)
    }
}
