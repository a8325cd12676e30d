//! An enrolled device: enrollment, and one full sync (requests out, decisions and policy in,
//! events out). What the server signed is checked and cached by `crate::cache`.

use crate::cache::{self, Accepted, CachedExceptions, CachedPolicy};
use crate::error::ClientError;
use crate::http::{PolicyFetch, ServerApi, normalize_server_url};
use crate::incident::{IncidentSink, report_incident};
use crate::state::{Enrollment, LocalUser, StateDir};
use crate::token::{self, DeviceToken, TokenSource, TokenStorage};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;
use warden_api::{
    EnrollRequest, EventBatch, ExceptionRecord, ExceptionRequestCreate, Heartbeat, ListRejected, PolicyEnvelope,
    check_justification, policy_etag,
};
use warden_policy::{Exception, Policy, check_scope};
use warden_store::Store;

/// Events per upload call (well under the server's `MAX_EVENTS_PER_BATCH`).
pub const UPLOAD_BATCH: usize = 500;

/// The default outbox bound: pending events kept while the server is unreachable.
pub const DEFAULT_OUTBOX_LIMIT: u64 = 100_000;

/// Seconds since the epoch: the client is an edge that reads the clock.
pub fn now_seconds() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs() as i64)
}

/// How often a device trades its token for a fresh one (30 days), in seconds.
pub const TOKEN_ROTATION_SECONDS: i64 = 30 * 24 * 3600;

/// What proves the device may enroll.
#[derive(Clone)]
pub enum EnrollCredential {
    /// The organisation's shared enroll secret (only while the server has no accounts).
    Secret(String),
    /// A one-time code made on the console for one person; it also carries the CA to pin.
    Code(warden_api::EnrollmentCode),
}

impl std::fmt::Debug for EnrollCredential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            EnrollCredential::Secret(_) => f.write_str("Secret(<redacted>)"),
            EnrollCredential::Code(code) => write!(f, "Code(for {}, <redacted>)", code.user),
        }
    }
}

/// What to enroll with.
#[derive(Debug, Clone)]
pub struct EnrollOptions {
    /// The server's base URL (with a code: the code's, unless the caller overrides it).
    pub server: String,
    pub credential: EnrollCredential,
    /// The device's owner account (`dev@corp.example`, or a login name).
    pub user: String,
    /// The local users bound to `user`: the one enrolling, or those the service's
    /// configuration names (empty where the OS has no numeric uids).
    pub local_users: Vec<LocalUser>,
    pub hostname: String,
    /// When the keyring cannot take the token, hand it back instead of refusing.
    pub allow_token_without_keyring: bool,
    /// Where the token goes: the OS keyring (a developer's runtime) or a root-only file (the
    /// system service).
    pub token_storage: TokenStorage,
}

/// What enrollment did.
#[derive(Debug)]
pub struct Enrolled {
    pub enrollment: Enrollment,
    /// `Some` only when the keyring was unusable and the caller allowed handing it back.
    pub token_for_environment: Option<DeviceToken>,
    /// The policy fetched and verified right after enrolling.
    pub policy_version: Option<i64>,
}

/// Enrolls this device and stores the token in the OS keyring.
pub async fn enroll(state: &StateDir, options: &EnrollOptions) -> Result<Enrolled, ClientError> {
    let server = normalize_server_url(&options.server)?;
    let (secret, code, server_ca) = match &options.credential {
        EnrollCredential::Secret(secret) => (secret.clone(), None, None),
        EnrollCredential::Code(code) => (String::new(), Some(code.code.clone()), code.server_ca.clone()),
    };
    // The pin applies from the first byte: the enrollment itself goes only to the code's server.
    let api = ServerApi::new(&server, None, server_ca.as_deref())?;
    let answer = api
        .enroll(&EnrollRequest {
            secret,
            code,
            hostname: options.hostname.clone(),
            user: options.user.clone(),
            platform: std::env::consts::OS.into(),
            agent_version: env!("CARGO_PKG_VERSION").into(),
        })
        .await?;
    let enrolled_at = now_seconds();
    let enrollment = Enrollment {
        server: server.clone(),
        device_id: answer.device_id.clone(),
        // The server's record decides whose device this is (an older server does not say).
        user: if answer.user.is_empty() { options.user.clone() } else { answer.user.clone() },
        local_users: options.local_users.clone(),
        hostname: options.hostname.clone(),
        policy_public_key: answer.policy_public_key.clone(),
        enrolled_at,
        server_ca,
        token_rotated_at: None,
    };
    let token = DeviceToken::new(answer.device_token);
    let token_for_environment = match token::save_to(&options.token_storage, &enrollment, &token) {
        Ok(()) => None,
        Err(_) if options.allow_token_without_keyring => Some(token.clone()),
        Err(error) => return Err(error.into()),
    };
    // A re-enrollment must not keep the previous server's policy: its key is no longer pinned.
    cache::forget(state)?;
    state.save_enrollment(&enrollment)?;
    let store = Arc::new(Store::open(state.events_db())?);
    let device = Device {
        state: state.clone(),
        enrollment: RwLock::new(enrollment.clone()),
        api: ServerApi::new(&server, Some(token), enrollment.server_ca.as_deref())?,
        token_source: match options.token_storage {
            TokenStorage::Keyring => TokenSource::Keyring,
            TokenStorage::File(_) => TokenSource::File,
        },
        token_storage: Some(options.token_storage.clone()),
        store,
        server_interval: AtomicU64::new(0),
    };
    let policy_version = match device.sync_policy().await {
        Ok(PolicySync::Updated { version } | PolicySync::Unchanged { version }) => Some(version),
        _ => None,
    };
    Ok(Enrolled { enrollment, token_for_environment, policy_version })
}

/// What a policy sync did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PolicySync {
    Unchanged {
        version: i64,
    },
    Updated {
        version: i64,
    },
    /// The fetched policy failed a check; the last good one stays.
    Rejected {
        reason: String,
    },
}

/// What an exception sync brought: the verified list, and the requests for display.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExceptionsSync {
    /// This device's requests as the server answered (display only; not signed).
    pub requests: Vec<ExceptionRecord>,
    /// The exceptions to enforce, from the list that verified.
    pub exceptions: Vec<Exception>,
    /// The list's sequence number.
    pub sequence: i64,
}

/// What one full sync did.
#[derive(Debug, Default)]
pub struct SyncReport {
    pub requests_filed: usize,
    pub requests_refused: usize,
    pub events_uploaded: usize,
    pub duplicates: usize,
    pub policy: Option<PolicySync>,
    /// The verified exception list, when the fetch brought one that passed.
    pub exceptions: Option<ExceptionsSync>,
    /// Phases that failed (and will be retried).
    pub errors: Vec<String>,
}

impl SyncReport {
    pub fn ok(&self) -> bool {
        self.errors.is_empty()
    }
}

/// An enrolled device with its token, server connection and outbox.
#[derive(Debug)]
pub struct Device {
    state: StateDir,
    /// Behind a lock: a signing-key rotation moves the pinned key while the device runs.
    enrollment: RwLock<Enrollment>,
    api: ServerApi,
    token_source: TokenSource,
    /// Where a rotated token is saved (`None`: it came from the environment and cannot rotate).
    token_storage: Option<TokenStorage>,
    store: Arc<Store>,
    /// The sync interval the server's last receipt named, in seconds (0: not known yet).
    server_interval: AtomicU64,
}

impl Device {
    /// Opens the enrolled device in `state`, its token from the keyring (or environment).
    pub fn open(state: StateDir, store: Arc<Store>) -> Result<Device, ClientError> {
        Device::open_from(state, store, &TokenStorage::Keyring)
    }

    /// Opens the enrolled device in `state`, its token from `storage`.
    pub fn open_from(state: StateDir, store: Arc<Store>, storage: &TokenStorage) -> Result<Device, ClientError> {
        let enrollment = state.load_enrollment()?.ok_or(ClientError::NotEnrolled)?;
        let (token, token_source) = token::load_from(storage, &enrollment)?;
        let api = ServerApi::new(&enrollment.server, Some(token), enrollment.server_ca.as_deref())?;
        // A token from the environment stays what the environment says.
        let token_storage = (token_source != TokenSource::Environment).then(|| storage.clone());
        Ok(Device {
            state,
            enrollment: RwLock::new(enrollment),
            api,
            token_source,
            token_storage,
            store,
            server_interval: AtomicU64::new(0),
        })
    }

    /// Opens the enrolled device with a token the caller supplies (the environment
    /// fallback; load tools and benchmarks).
    pub fn open_with_token(state: StateDir, store: Arc<Store>, token: DeviceToken) -> Result<Device, ClientError> {
        let enrollment = state.load_enrollment()?.ok_or(ClientError::NotEnrolled)?;
        let api = ServerApi::new(&enrollment.server, Some(token), enrollment.server_ca.as_deref())?;
        Ok(Device {
            state,
            enrollment: RwLock::new(enrollment),
            api,
            token_source: TokenSource::Environment,
            token_storage: None,
            store,
            server_interval: AtomicU64::new(0),
        })
    }

    /// The enrollment as it stands (its pinned key moves with a signing-key rotation).
    pub fn enrollment(&self) -> Enrollment {
        self.enrollment.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    pub fn api(&self) -> &ServerApi {
        &self.api
    }

    pub fn store(&self) -> &Arc<Store> {
        &self.store
    }

    pub fn token_source(&self) -> TokenSource {
        self.token_source
    }

    pub fn state(&self) -> &StateDir {
        &self.state
    }

    /// Queues an exception request durably (checked first, so a bad one is refused now, not
    /// later). Returns its client id; [`Device::send_requests`] delivers it.
    pub fn queue_request(&self, request: &ExceptionRequestCreate) -> Result<String, ClientError> {
        queue_request(&self.store, request)
    }

    /// Sends queued exception requests. Returns (filed, refused by the server).
    pub async fn send_requests(&self) -> Result<(usize, usize), ClientError> {
        let mut filed = 0;
        let mut refused = 0;
        for queued in self.store.pending_exception_requests(100)? {
            let mut request: ExceptionRequestCreate = match serde_json::from_str(&queued.body) {
                Ok(request) => request,
                Err(error) => {
                    self.store.record_incident("request-unreadable", &format!("{}: {error}", queued.id))?;
                    self.store.mark_exception_requests_uploaded(std::slice::from_ref(&queued.id))?;
                    refused += 1;
                    continue;
                }
            };
            request.client_id.get_or_insert_with(|| queued.id.clone());
            match self.api.file_exception(&request).await {
                Ok(_) => filed += 1,
                Err(error) if error.is_transient() => return Err(error),
                Err(error) => {
                    // A definite "no" (e.g. duration over the policy's limit): keep the reason where
                    // `warden status` shows it; sending it again would only be refused again.
                    self.store
                        .record_incident("request-refused", &format!("{} ({}): {error}", request.tool, queued.id))?;
                    refused += 1;
                }
            }
            self.store.mark_exception_requests_uploaded(std::slice::from_ref(&queued.id))?;
        }
        Ok((filed, refused))
    }

    /// The sync interval the server asked for in its last receipt (`None` before the first
    /// upload, or from a server older than the setting): a device heard from less often than
    /// every two of these is flagged silent, so the sync loop never waits longer.
    pub fn server_sync_interval(&self) -> Option<Duration> {
        Some(self.server_interval.load(Ordering::Relaxed)).filter(|&s| s > 0).map(Duration::from_secs)
    }

    /// Uploads every pending event (of every kind), in batches. The first batch carries the
    /// heartbeat and is sent even when nothing is pending, so the server hears from the device
    /// every sync and can flag it silent when it stops. Returns (stored, duplicates).
    pub async fn upload_events(&self) -> Result<(usize, usize), ClientError> {
        let mut stored = 0;
        let mut duplicates = 0;
        let at_ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |since| since.as_millis() as i64);
        let mut heartbeat = Some(Heartbeat { at_ms, version: env!("CARGO_PKG_VERSION").to_owned() });
        loop {
            let events = self.store.pending(UPLOAD_BATCH)?;
            if events.is_empty() && heartbeat.is_none() {
                return Ok((stored, duplicates));
            }
            let ids: Vec<String> = events.iter().map(|e| e.id().to_owned()).collect();
            let receipt = self.api.upload_events(&EventBatch { events, heartbeat: heartbeat.take() }).await?;
            // Only after the server acknowledged: a crash before this line resends the batch,
            // and the server's idempotence by event id absorbs the retry.
            self.store.mark_uploaded(&ids)?;
            self.server_interval.store(receipt.sync_interval_seconds, Ordering::Relaxed);
            stored += receipt.stored;
            duplicates += receipt.duplicates;
        }
    }

    /// Sends an inventory report (it replaces the server's copy of this device's last one).
    pub async fn upload_inventory(&self, report: &warden_api::InventoryReport) -> Result<bool, ClientError> {
        Ok(self.api.put_inventory(report).await?.changed)
    }

    /// The cached policy, verified now against the pinned key (a failing file is moved aside
    /// and reported; the last verified copy stays in force).
    pub fn cached_policy(&self) -> Result<Option<CachedPolicy>, ClientError> {
        cache::load_policy(&self.state, &self.enrollment(), self.store.as_ref())
    }

    /// The cached rules, verified now; see [`cached_rules`].
    pub fn cached_rules(&self) -> Result<CachedRules, ClientError> {
        rules(&self.state, &self.enrollment(), self.store.as_ref())
    }

    /// Fetches the policy and, if it passes every check, caches it. `If-None-Match` carries the
    /// ETag of the verified cache, computed from its signed content, and only when a cache
    /// verifies: a `304` can only confirm a policy this device checked.
    pub async fn sync_policy(&self) -> Result<PolicySync, ClientError> {
        let cached = self.cached_policy()?;
        let etag = cached.as_ref().map(|c| policy_etag(c.envelope.version, &c.envelope.policy));
        match self.api.fetch_policy(etag.as_deref()).await {
            Ok(PolicyFetch::NotModified) => {
                let mut cached = cached.ok_or_else(|| ClientError::BadAnswer("304 without a cached policy".into()))?;
                cached.confirmed_at = now_seconds();
                let version = cached.envelope.version;
                cache::confirm_policy(&self.state, &cached)?;
                Ok(PolicySync::Unchanged { version })
            }
            Ok(PolicyFetch::Changed(envelope)) => {
                if envelope.public_key != self.enrollment().policy_public_key {
                    // When it cannot move the pin, the envelope is checked (and refused) as is.
                    let _ = self.follow_key_rotation().await;
                }
                self.apply_envelope(*envelope)
            }
            Err(ClientError::PolicyRejected(reason)) => {
                report_incident(&self.store, "policy-malformed", &reason)?;
                Ok(PolicySync::Rejected { reason })
            }
            Err(error) => Err(error),
        }
    }

    /// Checks a signed policy against the pinned key and the policy core, and caches it if it
    /// passes. A rejected one is reported as an incident; the last good policy stays.
    pub fn apply_envelope(&self, envelope: PolicyEnvelope) -> Result<PolicySync, ClientError> {
        let version = envelope.version;
        let now = now_seconds();
        let fetched = CachedPolicy { envelope, fetched_at: now, confirmed_at: now };
        match cache::accept_policy(&self.state, &self.enrollment(), self.store.as_ref(), fetched)? {
            Ok(Some(previous)) if previous == version => Ok(PolicySync::Unchanged { version }),
            Ok(_) => Ok(PolicySync::Updated { version }),
            Err((kind, reason)) => {
                report_incident(&self.store, kind, &reason)?;
                Ok(PolicySync::Rejected { reason })
            }
        }
    }

    /// Fetches this device's requests and its signed exception list; caches the list if it
    /// verifies (pinned key, this device, a sequence not lower than the highest accepted, not
    /// expired). A list that fails is reported as an `exceptions-rejected` incident and the
    /// last verified list stays in force.
    pub async fn sync_exceptions(&self) -> Result<ExceptionsSync, ClientError> {
        let answer = self.api.exceptions().await?;
        let fetched = CachedExceptions { fetched_at: now_seconds(), requests: answer.requests, signed: answer.signed };
        let mut accepted = cache::accept_exceptions(
            &self.state,
            &self.enrollment(),
            self.store.as_ref(),
            fetched.clone(),
            now_seconds(),
        )?;
        // Signed by another key: the server may have rotated it. Only a verified chain of
        // announcements from the pinned key moves the pin; then the list is checked again.
        // A server that cannot say (unreachable, older) moves nothing: the list stays refused.
        if matches!(&accepted, Accepted::Refused(ListRejected::Signature(_)))
            && self.follow_key_rotation().await.unwrap_or(false)
        {
            accepted =
                cache::accept_exceptions(&self.state, &self.enrollment(), self.store.as_ref(), fetched, now_seconds())?;
        }
        match accepted {
            Accepted::Cached(verified) => Ok(ExceptionsSync {
                requests: verified.cached.requests,
                exceptions: verified.exceptions,
                sequence: verified.sequence,
            }),
            Accepted::Refused(rejected) => {
                let reason =
                    format!("the exception list from the server was refused: {rejected} ({})", rejected.code());
                report_incident(&self.store, "exceptions-rejected", &reason)?;
                Err(ClientError::ExceptionsRejected(reason))
            }
        }
    }

    /// Follows the server's signing-key rotations from the pinned key (`GET /device/signing-keys`,
    /// each announcement verified by the key before it); when that leads to a new key, pins it in
    /// `enrollment.json` and drops the caches the retired key signed (the sync refetches them).
    /// Returns whether the pin moved. A broken chain is refused (a `key-rotation-rejected`
    /// incident) and the pin stays.
    pub async fn follow_key_rotation(&self) -> Result<bool, ClientError> {
        let keys = self.api.signing_keys().await?;
        let pinned = self.enrollment().policy_public_key;
        let next = match warden_api::follow_rotations(&pinned, &keys.rotations) {
            Ok(next) => next,
            Err(error) => {
                let reason = format!("the server's signing-key rotation does not verify: {error}; the pin stays");
                report_incident(&self.store, "key-rotation-rejected", &reason)?;
                return Ok(false);
            }
        };
        if next == pinned {
            return Ok(false);
        }
        self.change_enrollment(|enrollment| enrollment.policy_public_key = next)?;
        cache::forget(&self.state)?;
        Ok(true)
    }

    /// Trades the device token for a fresh one: the server issues it, it is saved where the
    /// token is kept, and only then used (its first use retires the old one on the server). A
    /// failure anywhere leaves the old token working. Returns `false` for a token from the
    /// environment, which cannot be replaced from here.
    pub async fn rotate_token(&self) -> Result<bool, ClientError> {
        let Some(storage) = &self.token_storage else { return Ok(false) };
        let answer = self.api.rotate_token().await?;
        let token = DeviceToken::new(answer.device_token);
        token::save_to(storage, &self.enrollment(), &token)?;
        self.api.set_token(token);
        // Recorded for the next start; the token itself is already safe in its storage.
        let now = now_seconds();
        self.change_enrollment(|enrollment| enrollment.token_rotated_at = Some(now))?;
        // The first call with the new token makes it the only one.
        self.api.me().await?;
        Ok(true)
    }

    /// Changes `enrollment.json` (as stored: another process may have written it) and this
    /// device's copy alike.
    fn change_enrollment(&self, change: impl FnOnce(&mut Enrollment)) -> Result<(), ClientError> {
        let mut enrollment = self.state.load_enrollment()?.unwrap_or_else(|| self.enrollment());
        change(&mut enrollment);
        self.state.save_enrollment(&enrollment)?;
        *self.enrollment.write().unwrap_or_else(|p| p.into_inner()) = enrollment;
        Ok(())
    }

    /// Whether the token is older than [`TOKEN_ROTATION_SECONDS`] at `now`.
    pub fn token_due(&self, now: i64) -> bool {
        let enrollment = self.enrollment();
        let issued = enrollment.token_rotated_at.unwrap_or(enrollment.enrolled_at);
        self.token_storage.is_some() && now - issued >= TOKEN_ROTATION_SECONDS
    }

    /// One full sync: requests out, decisions and policy in, events out (and, every
    /// [`TOKEN_ROTATION_SECONDS`], a fresh device token first). Each phase runs even if an
    /// earlier one failed; failures are in the report.
    pub async fn sync_once(&self, outbox_limit: u64) -> SyncReport {
        let mut report = SyncReport::default();
        if self.token_due(now_seconds())
            && let Err(error) = self.rotate_token().await
        {
            report.errors.push(format!("rotating the device token: {error}"));
        }
        match self.send_requests().await {
            Ok((filed, refused)) => {
                report.requests_filed = filed;
                report.requests_refused = refused;
            }
            Err(error) => report.errors.push(format!("sending exception requests: {error}")),
        }
        match self.sync_exceptions().await {
            Ok(list) => report.exceptions = Some(list),
            Err(error) => report.errors.push(format!("fetching exceptions: {error}")),
        }
        match self.sync_policy().await {
            Ok(policy) => report.policy = Some(policy),
            Err(error) => report.errors.push(format!("fetching the policy: {error}")),
        }
        if let Err(error) = self.store.bound_outbox(outbox_limit) {
            report.errors.push(format!("bounding the outbox: {error}"));
        }
        match self.upload_events().await {
            Ok((stored, duplicates)) => {
                report.events_uploaded = stored;
                report.duplicates = duplicates;
            }
            Err(error) => report.errors.push(format!("uploading events: {error}")),
        }
        report
    }

    /// Uploads pending events, retrying transient failures with exponential backoff
    /// (`first`, doubling, at most `attempts` tries).
    pub async fn upload_events_with_retry(
        &self,
        attempts: u32,
        first: Duration,
    ) -> Result<(usize, usize), ClientError> {
        let mut delay = first;
        let mut attempt = 1;
        loop {
            match self.upload_events().await {
                Err(error) if error.is_transient() && attempt < attempts => {
                    tokio::time::sleep(delay).await;
                    delay = (delay * 2).min(Duration::from_secs(60));
                    attempt += 1;
                }
                result => return result,
            }
        }
    }
}

/// The last good policy and its version, and the exceptions in force.
pub type CachedRules = (Option<(Policy, i64)>, Vec<Exception>);

/// The policy and exceptions last verified, from the state directory alone (offline): both
/// caches are verified now against the enrollment's pinned key; a file that fails is moved
/// aside and reported to `incidents` (the store), and the last verified copy is used. Not enrolled: nothing
/// (no key to verify with).
pub fn cached_rules(state: &StateDir, incidents: &dyn IncidentSink) -> Result<CachedRules, ClientError> {
    match state.load_enrollment()? {
        Some(enrollment) => rules(state, &enrollment, incidents),
        None => Ok((None, Vec::new())),
    }
}

fn rules(state: &StateDir, enrollment: &Enrollment, incidents: &dyn IncidentSink) -> Result<CachedRules, ClientError> {
    let policy = cache::load_policy(state, enrollment, incidents)?.and_then(|cached| {
        Policy::from_json(&format!("policy v{}", cached.envelope.version), &cached.envelope.policy)
            .ok()
            .map(|policy| (policy, cached.envelope.version))
    });
    let exceptions = cache::load_exceptions(state, enrollment, incidents)?.map(|v| v.exceptions).unwrap_or_default();
    Ok((policy, exceptions))
}

/// Checks a request and puts it in the durable outbox. Returns its client id.
pub fn queue_request(store: &Store, request: &ExceptionRequestCreate) -> Result<String, ClientError> {
    if let Err(reason) = check_justification(&request.justification) {
        return Err(ClientError::Rejected {
            status: 400,
            code: "invalid_field".into(),
            message: reason,
            field: Some("justification".into()),
        });
    }
    if let Some(scope) = &request.scope
        && let Err(reason) = check_scope(scope)
    {
        return Err(ClientError::Rejected {
            status: 400,
            code: "invalid_field".into(),
            message: reason.to_string(),
            field: Some("scope".into()),
        });
    }
    if request.duration_seconds == 0 {
        return Err(ClientError::Rejected {
            status: 400,
            code: "invalid_field".into(),
            message: "the duration must be more than zero".into(),
            field: Some("duration_seconds".into()),
        });
    }
    let id = request.client_id.clone().unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
    let body = ExceptionRequestCreate { client_id: Some(id.clone()), ..request.clone() };
    store.queue_exception_request(&id, &serde_json::to_string(&body).expect("requests serialize"))?;
    Ok(id)
}

/// The scope a developer typed (`../vendor-sdk`, `.`, a symlink, an absolute path), as the
/// canonical absolute directory path an exception is stored and compared as: resolved
/// against `cwd` (the caller's working directory) with `..` and every symlink resolved by the
/// file system (`std::fs::canonicalize`), the way the kernel reports a launch's working
/// directory. Errors: the folder does not exist or is not a directory, its path is not UTF-8,
/// or the result fails [`check_scope`].
pub fn canonical_scope(cwd: &Path, typed: &Path) -> Result<String, ClientError> {
    let shown = typed.display().to_string();
    let bad = |reason: String| ClientError::BadScope { scope: shown.clone(), reason };
    if typed.as_os_str().is_empty() {
        return Err(bad("give a directory, or no scope for everywhere".into()));
    }
    let joined = cwd.join(typed);
    let resolved = std::fs::canonicalize(&joined).map_err(|error| match error.kind() {
        std::io::ErrorKind::NotFound => bad(format!("no such directory ({})", joined.display())),
        _ => bad(format!("cannot resolve {}: {error}", joined.display())),
    })?;
    if !resolved.is_dir() {
        return Err(bad(format!("{} is not a directory", resolved.display())));
    }
    let text = resolved.to_str().ok_or_else(|| bad("the path is not valid UTF-8".into()))?;
    // Windows answers in its verbatim form (`\\?\C:\src`, `\\?\UNC\server\share`).
    let text = match text.strip_prefix(r"\\?\") {
        Some(rest) => match rest.strip_prefix(r"UNC\") {
            Some(unc) => format!(r"\\{unc}"),
            None => rest.to_owned(),
        },
        None => text.to_owned(),
    };
    check_scope(&text).map_err(|reason| bad(reason.to_string()))?;
    Ok(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scopes_are_resolved_against_the_file_system() {
        let dir = tempfile::tempdir().unwrap();
        let root = std::fs::canonicalize(dir.path()).unwrap();
        let (work, vendor) = (root.join("work"), root.join("vendor-sdk"));
        std::fs::create_dir_all(&work).unwrap();
        std::fs::create_dir_all(&vendor).unwrap();
        std::fs::write(root.join("file"), "").unwrap();
        #[cfg(unix)]
        std::os::unix::fs::symlink(&vendor, root.join("link")).unwrap();
        let vendor_text = vendor.to_str().unwrap().to_owned();
        let mut cases: Vec<(&str, Option<&str>)> = vec![
            ("../vendor-sdk", Some(&vendor_text)),
            ("../vendor-sdk/", Some(&vendor_text)),
            ("./../work/../vendor-sdk", Some(&vendor_text)),
            ("../missing", None),
            ("../file", None),
            ("", None),
        ];
        #[cfg(unix)]
        cases.push(("../link", Some(&vendor_text)));
        for (typed, expected) in cases {
            let got = canonical_scope(&work, Path::new(typed));
            match expected {
                Some(want) => assert_eq!(got.unwrap(), want, "{typed:?}"),
                None => assert!(matches!(got, Err(ClientError::BadScope { .. })), "{typed:?}: {got:?}"),
            }
        }
        let missing = canonical_scope(&work, Path::new("../missing")).unwrap_err().to_string();
        assert!(missing.contains("no such directory"), "{missing}");
    }

    #[test]
    fn a_queued_request_must_have_a_canonical_scope() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path().join("events.db")).unwrap();
        let request = |scope: &str| ExceptionRequestCreate {
            tool: "claude-code".into(),
            justification: "Pairing with the vendor on their SDK this week".into(),
            scope: Some(scope.into()),
            duration_seconds: 3600,
            client_id: None,
        };
        for scope in ["../vendor-sdk", "/src/../etc", "/src/app/"] {
            let error = queue_request(&store, &request(scope)).unwrap_err();
            assert!(matches!(&error, ClientError::Rejected { field: Some(f), .. } if f == "scope"), "{scope}: {error}");
        }
        assert!(store.pending_exception_requests(10).unwrap().is_empty(), "nothing refused was queued");
        queue_request(&store, &request("/src/app")).unwrap();
        assert_eq!(store.pending_exception_requests(10).unwrap().len(), 1);
    }
}
