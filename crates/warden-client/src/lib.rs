//! The device side of the governance server: enrollment, the device token in the OS keyring,
//! signed-policy sync with a pinned key, the durable outbox's upload, exception requests, and
//! the long-poll that makes an approval take effect at once.
//!
//! - [`state`]: the state directory's enrollment file, written atomically.
//! - [`cache`]: what the server signed (policy, exception list), verified on every load; a
//!   file that fails is kept aside, reported as an incident, and the last verified copy used.
//! - [`token`]: the device token, only in the OS keyring (or `WARDEN_DEVICE_TOKEN`).
//! - [`http`]: every HTTP call (reqwest), typed with `warden-api`.
//! - [`device`]: enrollment and one full sync; the checks a fetched policy must pass.
//! - [`local`]: the client of the local API (the runtime's Unix socket), for the CLI and the tray.
//! - [`sync`]: the loop (start, schedule, on demand, on push) feeding an [`Enforcement`].
//!
//! This crate is the only one that uses `reqwest` and `keyring`.

pub mod cache;
pub mod device;
pub mod error;
pub mod http;
mod incident;
pub mod local;
pub mod personal_gateway;
pub mod state;
pub mod sync;
pub mod token;

pub use cache::{CachedExceptions, CachedPolicy, VerifiedExceptions, cached_requests, check_policy};
pub use device::{
    CachedRules, DEFAULT_OUTBOX_LIMIT, Device, EnrollCredential, EnrollOptions, Enrolled, ExceptionsSync, PolicySync,
    SyncReport, TOKEN_ROTATION_SECONDS, cached_rules, canonical_scope, enroll, queue_request,
};
pub use error::ClientError;
pub use http::{PolicyFetch, ServerApi};
pub use incident::{HeldIncidents, IncidentSink, report_incident};
pub use local::{LocalClient, LocalClientError, PERSONAL_SOCKET_NAME, personal_socket, service_socket};
pub use state::{Enrollment, LocalUser, StateDir};
pub use sync::{
    Enforcement, INVENTORY_REPORT_EVERY, INVENTORY_RESCAN, InventoryScanner, SyncLoop, SyncOptions, SyncStatus,
    SyncTrigger,
};
pub use token::{DeviceToken, TOKEN_ENV, TokenError, TokenSource, TokenStorage};
