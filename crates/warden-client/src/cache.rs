//! The device's caches of what the server signed — the policy and this device's exception
//! list — checked against the pinned key on every load, not only on download.
//!
//! Each cache is two files in the state directory, both written only after verification:
//! the cache (`policy.json`, `exceptions.json`) and beside it the last verified copy
//! (`policy.verified.json`, `exceptions.verified.json`). A load checks the copy, then the cache
//! (also: not older than the copy, so an old signed file put back is a rollback, not a policy).
//! A file that fails is moved aside as `NAME.rejected-<ms>` (evidence: never deleted) and
//! reported as an `incident` event, which the next sync uploads; the other file, if it
//! verifies, stays in force and rewrites the failed one. The cache is written before the copy,
//! so a crash between the two leaves a cache newer than its copy, which loads.
//!
//! Loads and saves hold an exclusive lock on `cache.lock`, so a `warden sync` beside a running
//! agent cannot interleave its files with the agent's.

use crate::error::ClientError;
use crate::incident::IncidentSink;
use crate::state::{Enrollment, StateDir, read_json, write_json_atomically};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use warden_api::{
    ExceptionRecord, ExceptionsEnvelope, ListExpectation, ListRejected, PolicyEnvelope, verify_envelope,
    verify_exceptions,
};
use warden_policy::{Exception, Policy};

/// The policy cache's file name.
pub const POLICY_FILE: &str = "policy.json";
/// The exception list cache's file name.
pub const EXCEPTIONS_FILE: &str = "exceptions.json";
/// The incident code of a cached policy that fails verification at load.
pub const POLICY_INCIDENT: &str = "policy-cache-unverified";
/// The incident code of a cached exception list that fails verification at load.
pub const EXCEPTIONS_INCIDENT: &str = "exceptions-unverified";

/// The last good signed policy, as received, and when it was fetched.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CachedPolicy {
    pub envelope: PolicyEnvelope,
    /// Seconds since the epoch of the fetch that delivered it.
    pub fetched_at: i64,
    /// Seconds since the epoch of the last time the server confirmed it (200 or 304).
    pub confirmed_at: i64,
}

/// This device's last accepted exception list, as received.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CachedExceptions {
    /// Seconds since the epoch of the fetch that delivered it.
    pub fetched_at: i64,
    /// The server's list of this device's requests: for display only (not signed, never
    /// enforced).
    pub requests: Vec<ExceptionRecord>,
    /// The signed list: the only source of exceptions the device enforces.
    pub signed: ExceptionsEnvelope,
}

/// A cached exception list that verified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedExceptions {
    pub cached: CachedExceptions,
    /// Its sequence number: the highest this device accepted.
    pub sequence: i64,
    /// What to enforce: the list's exceptions, or none once the list expired.
    pub exceptions: Vec<Exception>,
    /// The list's `valid_until` has passed: it grants nothing until the next sync.
    pub expired: bool,
}

/// A signed thing the device caches.
trait Signed: Serialize + DeserializeOwned {
    /// The incident code when a cached copy fails.
    const INCIDENT: &'static str;
    /// What the file holds, for incident details ("policy v3", "exception list 42").
    fn describe(&self) -> String;
    /// Verifies it against the enrollment, not older than `highest`; returns its order (the
    /// policy's version, the list's sequence).
    fn verify(&self, enrollment: &Enrollment, highest: Option<i64>, now: i64) -> Result<i64, String>;
}

impl Signed for CachedPolicy {
    const INCIDENT: &'static str = POLICY_INCIDENT;

    fn describe(&self) -> String {
        format!("policy v{}", self.envelope.version)
    }

    fn verify(&self, enrollment: &Enrollment, highest: Option<i64>, _now: i64) -> Result<i64, String> {
        check_policy(&self.envelope, &enrollment.policy_public_key, highest)
            .map(|_| self.envelope.version)
            .map_err(|(kind, reason)| format!("{reason} ({kind})"))
    }
}

impl Signed for CachedExceptions {
    const INCIDENT: &'static str = EXCEPTIONS_INCIDENT;

    fn describe(&self) -> String {
        "an exception list".into()
    }

    fn verify(&self, enrollment: &Enrollment, highest: Option<i64>, now: i64) -> Result<i64, String> {
        let expect = ListExpectation { device_id: &enrollment.device_id, highest_sequence: highest, now };
        match verify_exceptions(&self.signed, &enrollment.policy_public_key, expect) {
            Ok(list) => Ok(list.sequence),
            // Expired is checked last: the list is genuine, only stale (offline too long).
            Err(ListRejected::Expired { sequence, .. }) => Ok(sequence),
            Err(rejected) => Err(format!("{} ({})", rejected, rejected.code())),
        }
    }
}

/// The checks a signed policy must pass: signed by the pinned key, parseable by the core, and
/// not older than `highest` (the version in force: a replayed old policy cannot roll back a
/// newer one). On failure: (incident kind, reason).
pub fn check_policy(
    envelope: &PolicyEnvelope,
    pinned_key: &str,
    highest: Option<i64>,
) -> Result<Policy, (&'static str, String)> {
    verify_envelope(envelope, pinned_key)
        .map_err(|e| ("policy-signature", format!("policy v{} rejected: {e}", envelope.version)))?;
    let policy = Policy::from_json(&format!("policy v{}", envelope.version), &envelope.policy)
        .map_err(|e| ("policy-malformed", format!("policy v{} rejected: {e}", envelope.version)))?;
    if let Some(highest) = highest
        && envelope.version < highest
    {
        return Err((
            "policy-rollback",
            format!("policy v{} rejected: older than v{highest} in force", envelope.version),
        ));
    }
    Ok(policy)
}

/// The verified cached policy (`None`: none cached, or none that verifies), or an I/O error.
/// Failures are moved aside and reported to `incidents`.
pub fn load_policy(
    state: &StateDir,
    enrollment: &Enrollment,
    incidents: &dyn IncidentSink,
) -> Result<Option<CachedPolicy>, ClientError> {
    let _lock = CacheLock::take(state)?;
    Ok(load_verified::<CachedPolicy>(state, POLICY_FILE, enrollment, incidents, now_seconds())?
        .map(|(cached, _)| cached))
}

/// The verified cached exception list, or `None`; see [`load_policy`].
pub fn load_exceptions(
    state: &StateDir,
    enrollment: &Enrollment,
    incidents: &dyn IncidentSink,
) -> Result<Option<VerifiedExceptions>, ClientError> {
    let _lock = CacheLock::take(state)?;
    load_exceptions_locked(state, enrollment, incidents, now_seconds())
}

fn load_exceptions_locked(
    state: &StateDir,
    enrollment: &Enrollment,
    incidents: &dyn IncidentSink,
    now: i64,
) -> Result<Option<VerifiedExceptions>, ClientError> {
    let Some((cached, sequence)) =
        load_verified::<CachedExceptions>(state, EXCEPTIONS_FILE, enrollment, incidents, now)?
    else {
        return Ok(None);
    };
    let expect = ListExpectation { device_id: &enrollment.device_id, highest_sequence: None, now };
    let (exceptions, expired) = match verify_exceptions(&cached.signed, &enrollment.policy_public_key, expect) {
        Ok(list) => (list.exceptions, false),
        Err(_) => (Vec::new(), true),
    };
    Ok(Some(VerifiedExceptions { cached, sequence, exceptions, expired }))
}

/// Records that the server confirmed the verified policy `cached` (a `304` for its ETag).
pub(crate) fn confirm_policy(state: &StateDir, cached: &CachedPolicy) -> Result<(), ClientError> {
    let _lock = CacheLock::take(state)?;
    save_both(state, POLICY_FILE, cached)
}

/// Checks a fetched policy ([`check_policy`], not older than the verified one in force, read
/// under the lock) and caches it if it passes. Returns the version it replaced, if any, or
/// the refusal (incident kind, reason) with nothing cached changed.
pub(crate) fn accept_policy(
    state: &StateDir,
    enrollment: &Enrollment,
    incidents: &dyn IncidentSink,
    fetched: CachedPolicy,
) -> Result<Result<Option<i64>, (&'static str, String)>, ClientError> {
    let _lock = CacheLock::take(state)?;
    let in_force = load_verified::<CachedPolicy>(state, POLICY_FILE, enrollment, incidents, now_seconds())?
        .map(|(_, version)| version);
    if let Err(refusal) = check_policy(&fetched.envelope, &enrollment.policy_public_key, in_force) {
        return Ok(Err(refusal));
    }
    save_both(state, POLICY_FILE, &fetched)?;
    Ok(Ok(in_force))
}

/// What accepting a fetched exception list did.
#[derive(Debug)]
pub(crate) enum Accepted {
    /// Verified, newer or equal to the highest accepted, cached.
    Cached(VerifiedExceptions),
    /// Refused; nothing cached changed.
    Refused(ListRejected),
}

/// Verifies a fetched list against the pinned key, this device and the highest sequence
/// accepted so far (read under the lock), and caches it if it passes.
pub(crate) fn accept_exceptions(
    state: &StateDir,
    enrollment: &Enrollment,
    incidents: &dyn IncidentSink,
    fetched: CachedExceptions,
    now: i64,
) -> Result<Accepted, ClientError> {
    let _lock = CacheLock::take(state)?;
    let highest = load_exceptions_locked(state, enrollment, incidents, now)?.map(|verified| verified.sequence);
    let expect = ListExpectation { device_id: &enrollment.device_id, highest_sequence: highest, now };
    match verify_exceptions(&fetched.signed, &enrollment.policy_public_key, expect) {
        Ok(list) => {
            save_both(state, EXCEPTIONS_FILE, &fetched)?;
            Ok(Accepted::Cached(VerifiedExceptions {
                cached: fetched,
                sequence: list.sequence,
                exceptions: list.exceptions,
                expired: false,
            }))
        }
        Err(rejected) => Ok(Accepted::Refused(rejected)),
    }
}

/// Removes both files of both caches (a re-enrollment: the old server's key is no longer pinned).
pub(crate) fn forget(state: &StateDir) -> Result<(), ClientError> {
    let _lock = CacheLock::take(state)?;
    for name in [POLICY_FILE, EXCEPTIONS_FILE] {
        for path in [state.root().join(name), verified_copy(state, name)] {
            match std::fs::remove_file(&path) {
                Ok(()) => {}
                Err(error) if error.kind() == std::io::ErrorKind::NotFound => {}
                Err(source) => return Err(ClientError::StateFile { path, source }),
            }
        }
    }
    Ok(())
}

/// The requests of the last accepted list, for display (not verified: nothing is enforced
/// from them), and when they were fetched.
pub fn cached_requests(state: &StateDir) -> Result<Option<(i64, Vec<ExceptionRecord>)>, ClientError> {
    Ok(read_json::<CachedExceptions>(&state.root().join(EXCEPTIONS_FILE))?.map(|c| (c.fetched_at, c.requests)))
}

/// `policy.json` → `policy.verified.json`.
fn verified_copy(state: &StateDir, name: &str) -> PathBuf {
    let stem = name.strip_suffix(".json").unwrap_or(name);
    state.root().join(format!("{stem}.verified.json"))
}

fn save_both<T: Serialize>(state: &StateDir, name: &str, value: &T) -> Result<(), ClientError> {
    write_json_atomically(&state.root().join(name), value)?;
    write_json_atomically(&verified_copy(state, name), value)
}

/// What reading one of the two files found.
enum Read<T> {
    Absent,
    Verified(T, i64),
    Refused,
}

/// The load algorithm both caches share (see the module docs). Returns the file in force and
/// its order.
fn load_verified<T: Signed>(
    state: &StateDir,
    name: &str,
    enrollment: &Enrollment,
    incidents: &dyn IncidentSink,
    now: i64,
) -> Result<Option<(T, i64)>, ClientError> {
    let cache_path = state.root().join(name);
    let copy_path = verified_copy(state, name);
    let copy = read_checked::<T>(&copy_path, enrollment, None, incidents, now, "")?;
    let highest = match &copy {
        Read::Verified(_, order) => Some(*order),
        _ => None,
    };
    let fallback = match &copy {
        Read::Verified(value, _) => format!("; {} from {} stays in force", value.describe(), file_name(&copy_path)),
        _ => "; no verified copy is left".into(),
    };
    let cache = read_checked::<T>(&cache_path, enrollment, highest, incidents, now, &fallback)?;
    Ok(match (cache, copy) {
        (Read::Verified(value, order), copy) => {
            if !matches!(copy, Read::Verified(_, copied) if copied == order) {
                // A crash between the two writes, or a copy that failed: the copy catches up.
                write_json_atomically(&copy_path, &value)?;
            }
            Some((value, order))
        }
        (_, Read::Verified(value, order)) => {
            write_json_atomically(&cache_path, &value)?;
            Some((value, order))
        }
        (_, _) => None,
    })
}

/// Reads one file and verifies it; a file that does not parse or verify is moved aside and
/// reported (`consequence` completes the incident's detail).
fn read_checked<T: Signed>(
    path: &Path,
    enrollment: &Enrollment,
    highest: Option<i64>,
    incidents: &dyn IncidentSink,
    now: i64,
    consequence: &str,
) -> Result<Read<T>, ClientError> {
    let reason = match read_json::<T>(path) {
        Ok(None) => return Ok(Read::Absent),
        Ok(Some(value)) => match value.verify(enrollment, highest, now) {
            Ok(order) => return Ok(Read::Verified(value, order)),
            Err(reason) => format!("{}: {reason}", value.describe()),
        },
        Err(ClientError::StateFileFormat { source, .. }) => format!("not readable: {source}"),
        Err(error) => return Err(error),
    };
    let aside = path.with_file_name(format!("{}.rejected-{}", file_name(path), now_millis()));
    std::fs::rename(path, &aside).map_err(|source| ClientError::StateFile { path: path.to_path_buf(), source })?;
    let detail =
        format!("{} failed verification ({reason}); kept as {}{consequence}", file_name(path), file_name(&aside));
    incidents.report(T::INCIDENT, &detail)?;
    Ok(Read::Refused)
}

fn file_name(path: &Path) -> String {
    path.file_name().map_or_else(String::new, |n| n.to_string_lossy().into_owned())
}

fn now_seconds() -> i64 {
    now_millis() / 1000
}

fn now_millis() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64)
}

/// An exclusive lock on `cache.lock` in the state directory, released on drop.
struct CacheLock(std::fs::File);

impl CacheLock {
    fn take(state: &StateDir) -> Result<CacheLock, ClientError> {
        let path = state.root().join("cache.lock");
        let io = |source| ClientError::StateFile { path: path.clone(), source };
        std::fs::create_dir_all(state.root()).map_err(io)?;
        let file = std::fs::OpenOptions::new().create(true).truncate(false).write(true).open(&path).map_err(io)?;
        file.lock().map_err(io)?;
        Ok(CacheLock(file))
    }
}

impl Drop for CacheLock {
    fn drop(&mut self) {
        let _ = self.0.unlock();
    }
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
    fn only_a_signed_parseable_newer_policy_passes() {
        let key = PolicySigningKey::from_secret([1; 32]);
        let impostor = PolicySigningKey::from_secret([2; 32]);
        let json = Policy::embedded().to_json();
        let good = signed(&key, 3, &json);
        assert!(check_policy(&good, &key.public_key(), None).is_ok());
        assert!(check_policy(&good, &key.public_key(), Some(3)).is_ok(), "the version in force itself");

        let cases: [(PolicyEnvelope, &str); 4] = [
            (signed(&impostor, 3, &json), "policy-signature"),
            (PolicyEnvelope { policy: json.replace("block", "allow"), ..good.clone() }, "policy-signature"),
            (signed(&key, 4, "{\"mode\": 7}"), "policy-malformed"),
            (signed(&key, 2, &json), "policy-rollback"),
        ];
        for (envelope, kind) in cases {
            let error = check_policy(&envelope, &key.public_key(), Some(3)).unwrap_err();
            assert_eq!(error.0, kind, "{}", error.1);
        }
    }
}
