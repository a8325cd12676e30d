//! Types that cross the wire between devices and the governance server.
//!
//! Serde types plus the signed-policy format: no HTTP, no storage, no clock. The server
//! (`warden-server`) and the device side (agent, client, tray) both speak in these types,
//! so they cannot drift apart. Every route is listed in `warden-server`'s OpenAPI file.

mod batch;
mod enroll;
mod error;
mod event;
mod exception;
pub mod local;
mod policy;
mod push;
mod signing;

pub use batch::{EventBatch, EventBatchReceipt, EventPage, EventQuery, MAX_EVENTS_PER_BATCH, StoredEvent};
pub use enroll::{DeviceInfo, EnrollRequest, EnrollResponse};
pub use error::{ApiError, ErrorLocation};
pub use event::{LaunchEvent, Outcome};
pub use exception::{
    AuditEntry, Decision, ExceptionList, ExceptionRecord, ExceptionRequestCreate, ExceptionState,
    MIN_JUSTIFICATION_CHARS, PendingView, check_justification,
};
pub use policy::{PolicyEnvelope, PolicyUpload, PolicyVersion};
pub use push::{Change, ChangeKind, WaitResponse};
pub use signing::{PolicySigningKey, SignatureError, signed_message, verify_envelope};

/// The path prefix of every API route.
pub const API_PREFIX: &str = "/api/v1";
