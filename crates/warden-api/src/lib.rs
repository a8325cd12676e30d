//! Types that cross the wire between devices and the governance server.
//!
//! Serde types plus the signed formats (policy, per-device exception list, signing-key
//! rotations): no HTTP, no
//! storage, no clock (a device passes its time in). The server
//! (`warden-server`) and the device side (agent, client, tray) both speak in these types,
//! so they cannot drift apart. Every route is listed in `warden-server`'s OpenAPI file.

mod batch;
mod enroll;
mod error;
mod event;
mod exception;
mod fleet;
mod inventory;
mod key_rotation;
pub mod local;
pub mod notice;
mod policy;
mod push;
mod signed_exceptions;
mod signing;

pub use batch::{
    EventBatch, EventBatchReceipt, EventCount, EventCounts, EventPage, EventQuery, Heartbeat, MAX_EVENTS_PER_BATCH,
    StoredEvent,
};
pub use enroll::{
    DeviceInfo, DeviceList, ENROLLMENT_CODE_PREFIX, EnrollRequest, EnrollResponse, EnrollmentCode,
    EnrollmentCodeCreate, EnrollmentCodeError, EnrollmentCodeIssued, ServiceState, ServiceStatus, TokenRotation,
};
pub use error::{ApiError, ErrorLocation};
pub use event::{
    ConnectEvent, ConnectOutcome, ControlDriftEvent, DriftChange, Event, EventDecodeError, EventKind,
    ExceptionEndedEvent, IncidentEvent, KindError, LaunchEvent, MaskingEvent, Outcome, ServiceStartEvent,
    ServiceStopEvent, SessionOutcome, UncleanEnd,
};
pub use exception::{
    AuditEntry, Decision, ExceptionList, ExceptionRecord, ExceptionRequestCreate, ExceptionState,
    MIN_JUSTIFICATION_CHARS, PendingView, check_justification,
};
pub use fleet::{
    AdoptionPoint, Alert, AlertList, DailyLaunches, ExceptionReport, FleetDevices, Overview, Tally, ToolFootprint,
    ToolOnDevice, ToolSummaries, ToolSummary, Verdict, VerdictTotal, VersionCount,
};
pub use inventory::{
    ConfiguredMcpServer, DeviceInventory, InstalledTool, InventoryChange, InventoryHistory, InventoryList,
    InventoryReceipt, InventoryReport, MAX_INVENTORY_ITEMS,
};
pub use key_rotation::{KeyRotation, SigningKeys, follow_rotations, rotation_message};
pub use policy::{PolicyEnvelope, PolicyUpload, PolicyVersion};
pub use push::{Change, ChangeKind, WaitResponse};
pub use signed_exceptions::{
    EXCEPTION_LIST_VALIDITY_SECONDS, EXCEPTIONS_DOMAIN, ExceptionsEnvelope, ListExpectation, ListRejected,
    SignedExceptions, exceptions_message, verify_exceptions,
};
pub use signing::{PolicySigningKey, SignatureError, policy_etag, sha256_hex, signed_message, verify_envelope};

/// The path prefix of every API route.
pub const API_PREFIX: &str = "/api/v1";
