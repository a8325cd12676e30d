//! An enrolled device: enrollment, one full sync (requests out, decisions and policy in, events
//! out), and the checks a fetched policy must pass before it may replace the last good one.

use crate::error::ClientError;
use crate::http::{PolicyFetch, ServerApi, normalize_server_url};
use crate::state::{CachedPolicy, Enrollment, LocalUser, StateDir, write_json_atomically};
use crate::token::{self, DeviceToken, TokenSource, TokenStorage};
use serde::{Deserialize, Serialize};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;
use warden_api::{
    EnrollRequest, EventBatch, ExceptionList, ExceptionRecord, ExceptionRequestCreate, PolicyEnvelope,
    check_justification, verify_envelope,
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

/// What to enroll with.
#[derive(Debug, Clone)]
pub struct EnrollOptions {
    pub server: String,
    pub secret: String,
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
    let api = ServerApi::new(&server, None)?;
    let answer = api
        .enroll(&EnrollRequest {
            secret: options.secret.clone(),
            hostname: options.hostname.clone(),
            user: options.user.clone(),
            platform: std::env::consts::OS.into(),
            agent_version: env!("CARGO_PKG_VERSION").into(),
        })
        .await?;
    let enrollment = Enrollment {
        server: server.clone(),
        device_id: answer.device_id.clone(),
        user: options.user.clone(),
        local_users: options.local_users.clone(),
        hostname: options.hostname.clone(),
        policy_public_key: answer.policy_public_key.clone(),
        enrolled_at: now_seconds(),
    };
    let token = DeviceToken::new(answer.device_token);
    let token_for_environment = match token::save_to(&options.token_storage, &enrollment, &token) {
        Ok(()) => None,
        Err(_) if options.allow_token_without_keyring => Some(token.clone()),
        Err(error) => return Err(error.into()),
    };
    // A re-enrollment must not keep the previous server's policy: its key is no longer pinned.
    let _ = std::fs::remove_file(state.policy_file());
    let _ = std::fs::remove_file(state.root().join(EXCEPTIONS_FILE));
    state.save_enrollment(&enrollment)?;
    let store = Arc::new(Store::open(state.events_db())?);
    let device = Device {
        state: state.clone(),
        enrollment: enrollment.clone(),
        api: ServerApi::new(&server, Some(token))?,
        token_source: match options.token_storage {
            TokenStorage::Keyring => TokenSource::Keyring,
            TokenStorage::File(_) => TokenSource::File,
        },
        store,
    };
    let policy_version = match device.sync_policy().await {
        Ok(PolicySync::Updated { version } | PolicySync::Unchanged { version }) => Some(version),
        _ => None,
    };
    Ok(Enrolled { enrollment, token_for_environment, policy_version })
}

/// The device's cached exception list (what to enforce while offline).
const EXCEPTIONS_FILE: &str = "exceptions.json";

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CachedExceptions {
    pub fetched_at: i64,
    pub list: Option<ExceptionList>,
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

/// What one full sync did.
#[derive(Debug, Default)]
pub struct SyncReport {
    pub requests_filed: usize,
    pub requests_refused: usize,
    pub events_uploaded: usize,
    pub duplicates: usize,
    pub policy: Option<PolicySync>,
    pub exceptions: Option<ExceptionList>,
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
    enrollment: Enrollment,
    api: ServerApi,
    token_source: TokenSource,
    store: Arc<Store>,
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
        let api = ServerApi::new(&enrollment.server, Some(token))?;
        Ok(Device { state, enrollment, api, token_source, store })
    }

    /// Opens the enrolled device with a token the caller supplies (the environment
    /// fallback; load tools and benchmarks).
    pub fn open_with_token(state: StateDir, store: Arc<Store>, token: DeviceToken) -> Result<Device, ClientError> {
        let enrollment = state.load_enrollment()?.ok_or(ClientError::NotEnrolled)?;
        let api = ServerApi::new(&enrollment.server, Some(token))?;
        Ok(Device { state, enrollment, api, token_source: TokenSource::Environment, store })
    }

    pub fn enrollment(&self) -> &Enrollment {
        &self.enrollment
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

    /// Uploads every pending event, in batches. Returns (stored, duplicates).
    pub async fn upload_events(&self) -> Result<(usize, usize), ClientError> {
        let mut stored = 0;
        let mut duplicates = 0;
        loop {
            let events = self.store.pending(UPLOAD_BATCH)?;
            if events.is_empty() {
                return Ok((stored, duplicates));
            }
            let ids: Vec<String> = events.iter().map(|e| e.id.clone()).collect();
            let receipt = self.api.upload_events(&EventBatch { events }).await?;
            // Only after the server acknowledged: a crash before this line resends the batch,
            // and the server's idempotence by event id absorbs the retry.
            self.store.mark_uploaded(&ids)?;
            stored += receipt.stored;
            duplicates += receipt.duplicates;
        }
    }

    /// Fetches the policy (If-None-Match) and, if it passes every check, caches it.
    pub async fn sync_policy(&self) -> Result<PolicySync, ClientError> {
        let cached = self.state.load_policy()?;
        let etag = cached.as_ref().map(|c| c.envelope.etag.clone());
        match self.api.fetch_policy(etag.as_deref()).await {
            Ok(PolicyFetch::NotModified) => {
                let mut cached = cached.ok_or_else(|| ClientError::BadAnswer("304 without a cached policy".into()))?;
                cached.confirmed_at = now_seconds();
                let version = cached.envelope.version;
                self.state.save_policy(&cached)?;
                Ok(PolicySync::Unchanged { version })
            }
            Ok(PolicyFetch::Changed(envelope)) => self.apply_envelope(*envelope),
            Err(ClientError::PolicyRejected(reason)) => {
                self.store.record_incident("policy-malformed", &reason)?;
                Ok(PolicySync::Rejected { reason })
            }
            Err(error) => Err(error),
        }
    }

    /// Checks a signed policy against the pinned key and the policy core, and caches it if it
    /// passes. A rejected one is recorded as an incident; the last good policy stays.
    pub fn apply_envelope(&self, envelope: PolicyEnvelope) -> Result<PolicySync, ClientError> {
        let cached = self.state.load_policy()?;
        match check_envelope(&envelope, &self.enrollment.policy_public_key, cached.as_ref()) {
            Ok(_) => {
                let version = envelope.version;
                let now = now_seconds();
                self.state.save_policy(&CachedPolicy { envelope, fetched_at: now, confirmed_at: now })?;
                let unchanged = cached.is_some_and(|c| c.envelope.version == version);
                Ok(if unchanged { PolicySync::Unchanged { version } } else { PolicySync::Updated { version } })
            }
            Err((kind, reason)) => {
                self.store.record_incident(kind, &reason)?;
                Ok(PolicySync::Rejected { reason })
            }
        }
    }

    /// Fetches this device's requests and active exceptions, and caches them for offline use.
    pub async fn sync_exceptions(&self) -> Result<ExceptionList, ClientError> {
        let list = self.api.exceptions().await?;
        let cached = CachedExceptions { fetched_at: now_seconds(), list: Some(list.clone()) };
        write_json_atomically(&self.state.root().join(EXCEPTIONS_FILE), &cached)?;
        Ok(list)
    }

    /// One full sync: requests out, decisions and policy in, events out. Each phase runs even
    /// if an earlier one failed; failures are in the report.
    pub async fn sync_once(&self, outbox_limit: u64) -> SyncReport {
        let mut report = SyncReport::default();
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

/// The last good policy and its version, and the active exceptions last fetched.
pub type CachedRules = (Option<(Policy, i64)>, Vec<Exception>);

/// The policy and exceptions last known good, from the state directory alone (offline).
pub fn cached_rules(state: &StateDir) -> Result<CachedRules, ClientError> {
    let policy = match state.load_policy()? {
        Some(cached) => Policy::from_json(&format!("policy v{}", cached.envelope.version), &cached.envelope.policy)
            .ok()
            .map(|p| (p, cached.envelope.version)),
        None => None,
    };
    Ok((policy, cached_exceptions(state)?))
}

/// The active exceptions last fetched.
pub fn cached_exceptions(state: &StateDir) -> Result<Vec<Exception>, ClientError> {
    let path = state.root().join(EXCEPTIONS_FILE);
    let text = match std::fs::read_to_string(&path) {
        Ok(text) => text,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(source) => return Err(ClientError::StateFile { path, source }),
    };
    let cached: CachedExceptions =
        serde_json::from_str(&text).map_err(|source| ClientError::StateFileFormat { path, source })?;
    Ok(cached.list.map(|l| l.active).unwrap_or_default())
}

/// The cached requests list (for `warden requests` offline).
pub fn cached_requests(state: &StateDir) -> Result<Option<(i64, Vec<ExceptionRecord>)>, ClientError> {
    let path = state.root().join(EXCEPTIONS_FILE);
    match std::fs::read_to_string(&path) {
        Ok(text) => {
            let cached: CachedExceptions =
                serde_json::from_str(&text).map_err(|source| ClientError::StateFileFormat { path, source })?;
            Ok(cached.list.map(|l| (cached.fetched_at, l.requests)))
        }
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(ClientError::StateFile { path, source }),
    }
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

/// The checks a fetched policy must pass: signed by the pinned key, parseable by the core, and
/// not older than the one in force (a replayed old policy cannot roll back a newer one).
/// On failure: (incident kind, reason).
pub fn check_envelope(
    envelope: &PolicyEnvelope,
    pinned_key: &str,
    cached: Option<&CachedPolicy>,
) -> Result<Policy, (&'static str, String)> {
    verify_envelope(envelope, pinned_key)
        .map_err(|e| ("policy-signature", format!("policy v{} rejected: {e}", envelope.version)))?;
    let policy = Policy::from_json(&format!("policy v{}", envelope.version), &envelope.policy)
        .map_err(|e| ("policy-malformed", format!("policy v{} rejected: {e}", envelope.version)))?;
    if let Some(cached) = cached
        && envelope.version < cached.envelope.version
    {
        return Err((
            "policy-rollback",
            format!("policy v{} rejected: older than v{} in force", envelope.version, cached.envelope.version),
        ));
    }
    Ok(policy)
}

#[cfg(test)]
mod tests {
    use super::*;
    use warden_api::PolicySigningKey;

    fn signed(key: &PolicySigningKey, version: i64, policy: &str) -> PolicyEnvelope {
        PolicyEnvelope {
            version,
            etag: format!("\"{version}\""),
            policy: policy.into(),
            signature: key.sign(version, policy),
            public_key: key.public_key(),
            created_at: 0,
        }
    }

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

    #[test]
    fn only_a_signed_parseable_newer_policy_passes() {
        let key = PolicySigningKey::from_secret([1; 32]);
        let impostor = PolicySigningKey::from_secret([2; 32]);
        let json = Policy::embedded().to_json();
        let good = signed(&key, 3, &json);
        assert!(check_envelope(&good, &key.public_key(), None).is_ok());

        let cases: [(PolicyEnvelope, &str); 4] = [
            (signed(&impostor, 3, &json), "policy-signature"),
            (PolicyEnvelope { policy: json.replace("block", "allow"), ..good.clone() }, "policy-signature"),
            (signed(&key, 4, "{\"mode\": 7}"), "policy-malformed"),
            (signed(&key, 2, &json), "policy-rollback"),
        ];
        let cached = CachedPolicy { envelope: good.clone(), fetched_at: 0, confirmed_at: 0 };
        for (envelope, kind) in cases {
            let error = check_envelope(&envelope, &key.public_key(), Some(&cached)).unwrap_err();
            assert_eq!(error.0, kind, "{}", error.1);
        }
    }
}
