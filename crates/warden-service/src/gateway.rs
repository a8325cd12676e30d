//! The masking gateway hosted by the runtime (`wardend`): one loopback listener serving every
//! local user, each through a token of their own that the local API hands out (the kernel names
//! the caller there, so nobody gets another's token), in front of the sanctioned assistant's model
//! API. Each request becomes a `masking` event of the person it was for; the upstream key stays in
//! root's hands.
//!
//! The upstream is the configuration's `[gateway] upstream`, else the policy's `assistant.api_url`;
//! a policy that changes either (or its `[masking]` identifiers) restarts the listener with the
//! new rules. A policy that names no upstream leaves the gateway down, and the status says why.

use std::collections::BTreeMap;
use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::oneshot;
use warden_gateway::{ClientTokens, Detector, GatewayConfig, ReportSink};
use warden_policy::Policy;

/// Where the gateway listens unless configured: the port `warden gateway` uses too.
pub const DEFAULT_GATEWAY_LISTEN: &str = "127.0.0.1:8788";

/// The file in the state directory holding each uid's token (root-only, 0600).
pub const GATEWAY_TOKENS_FILE: &str = "gateway-tokens.json";

/// How the runtime hosts the gateway (from `[gateway]` in the service's configuration).
#[derive(Clone)]
pub struct GatewaySettings {
    /// A loopback address (checked when the configuration is read).
    pub listen: SocketAddr,
    /// The model API's base URL (ending in `/v1`); `None`: the policy's `assistant.api_url`.
    pub upstream: Option<String>,
    /// The gateway's credential for the upstream (read from a root-only file); never shown to clients.
    pub upstream_key: Option<String>,
    /// Larger request bodies are refused with 413.
    pub max_body_bytes: usize,
    /// A conversation's placeholders are forgotten after this long without a request.
    pub idle: Duration,
}

impl std::fmt::Debug for GatewaySettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GatewaySettings")
            .field("listen", &self.listen)
            .field("upstream", &self.upstream)
            .field("upstream_key", &self.upstream_key.as_ref().map(|_| "<redacted>"))
            .finish_non_exhaustive()
    }
}

impl Default for GatewaySettings {
    fn default() -> GatewaySettings {
        GatewaySettings {
            listen: DEFAULT_GATEWAY_LISTEN.parse().expect("the default address parses"),
            upstream: None,
            upstream_key: None,
            max_body_bytes: warden_gateway::DEFAULT_MAX_BODY_BYTES,
            idle: Duration::from_secs(30 * 60),
        }
    }
}

/// What the gateway serves now.
#[derive(Debug, Clone, Default)]
pub(crate) struct Serving {
    /// The rules it was started with: (upstream, the policy's masking section as JSON).
    rules: Option<(Option<String>, String)>,
    /// The address it listens on (the configured one, or the port the kernel chose for `:0`).
    pub listen: Option<SocketAddr>,
    pub upstream: Option<String>,
    /// Why it is down, when it is.
    pub error: Option<String>,
}

struct Running {
    stop: oneshot::Sender<()>,
    done: tokio::task::JoinHandle<()>,
}

/// The gateway as the runtime holds it.
pub(crate) struct HostedGateway {
    settings: GatewaySettings,
    clients: ClientTokens,
    tokens_path: PathBuf,
    /// uid → token, as saved in [`GATEWAY_TOKENS_FILE`].
    tokens: Mutex<BTreeMap<u32, String>>,
    serving: Mutex<Serving>,
    running: tokio::sync::Mutex<Option<Running>>,
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl HostedGateway {
    /// The gateway of the runtime whose state directory is `state_root`, with the tokens it handed
    /// out before (a file others can read, or one that cannot be parsed, is set aside: its users get
    /// new tokens).
    pub(crate) fn new(settings: GatewaySettings, state_root: &Path) -> HostedGateway {
        let tokens_path = state_root.join(GATEWAY_TOKENS_FILE);
        let tokens = read_tokens(&tokens_path).unwrap_or_else(|problem| {
            eprintln!("warden: gateway tokens: {problem}; every user gets a new token");
            BTreeMap::new()
        });
        let clients = ClientTokens::default();
        for (uid, token) in &tokens {
            clients.insert(token.clone(), uid.to_string());
        }
        HostedGateway {
            settings,
            clients,
            tokens_path,
            tokens: Mutex::new(tokens),
            serving: Mutex::new(Serving::default()),
            running: tokio::sync::Mutex::new(None),
        }
    }

    pub(crate) fn serving(&self) -> Serving {
        lock(&self.serving).clone()
    }

    /// The token of `uid`: the one handed out before, or a new one saved first (so a restart of the
    /// service keeps every client's configuration working).
    pub(crate) fn token_for(&self, uid: u32) -> std::io::Result<String> {
        let mut tokens = lock(&self.tokens);
        if let Some(token) = tokens.get(&uid) {
            return Ok(token.clone());
        }
        let token = warden_gateway::token::new_token()?;
        let mut next = tokens.clone();
        next.insert(uid, token.clone());
        write_private(&self.tokens_path, &serde_json::to_vec_pretty(&next).expect("a map of strings serializes"))?;
        *tokens = next;
        self.clients.insert(token.clone(), uid.to_string());
        Ok(token)
    }

    /// Serves with `policy`'s upstream and masking rules: nothing happens when they are what it
    /// serves already; otherwise the listener is stopped (requests under way finish) and started
    /// again with the new rules. `on_report` receives each request's counts (its `client` is the uid).
    pub(crate) async fn apply(&self, policy: &Policy, on_report: ReportSink) {
        let upstream =
            self.settings.upstream.clone().or_else(|| policy.assistant.as_ref().and_then(|a| a.api_url.clone()));
        let masking = serde_json::to_string(&policy.masking).expect("the policy serializes");
        let rules = (upstream.clone(), masking);
        let mut running = self.running.lock().await;
        if lock(&self.serving).rules.as_ref() == Some(&rules) {
            return;
        }
        if let Some(previous) = running.take() {
            let _ = previous.stop.send(());
            let _ = previous.done.await;
        }
        let mut serving = Serving { rules: Some(rules), upstream: upstream.clone(), ..Serving::default() };
        match self.start(upstream, policy, on_report).await {
            Ok((listen, started)) => {
                serving.listen = Some(listen);
                *running = Some(started);
            }
            Err(error) => {
                eprintln!("warden: the masking gateway is down: {error}");
                serving.error = Some(error);
            }
        }
        *lock(&self.serving) = serving;
    }

    async fn start(
        &self,
        upstream: Option<String>,
        policy: &Policy,
        on_report: ReportSink,
    ) -> Result<(SocketAddr, Running), String> {
        let upstream = match upstream {
            Some(url) if url.starts_with("http://") || url.starts_with("https://") => url,
            Some(url) => return Err(format!("the upstream {url:?} must start with http:// or https://")),
            None => {
                return Err(
                    "no upstream: the policy's [assistant] names no api_url (nor does [gateway] upstream)".into()
                );
            }
        };
        let detector = Detector::new(policy.masking.as_ref()).map_err(|e| format!("the masking rules: {e}"))?;
        let listener = bind_retrying(self.settings.listen).await?;
        let listen = listener.local_addr().map_err(|e| e.to_string())?;
        let config = GatewayConfig {
            upstream,
            upstream_key: self.settings.upstream_key.clone(),
            clients: self.clients.clone(),
            max_body_bytes: self.settings.max_body_bytes,
            idle: self.settings.idle,
            detector: Arc::new(detector),
            on_report: Some(on_report),
        };
        let (stop, stopped) = oneshot::channel::<()>();
        let done = tokio::spawn(async move {
            let shutdown = async move {
                let _ = stopped.await;
            };
            if let Err(error) = warden_gateway::serve(listener, config, shutdown).await {
                eprintln!("warden: the masking gateway stopped: {error}");
            }
        });
        Ok((listen, Running { stop, done }))
    }

    /// Stops serving (the runtime's shutdown).
    pub(crate) async fn stop(&self) {
        if let Some(running) = self.running.lock().await.take() {
            let _ = running.stop.send(());
            let _ = running.done.await;
        }
    }
}

/// Binds `listen`, retrying for a moment while the port is still held (the listener just stopped
/// on a policy change lets go of it as its last connection closes).
async fn bind_retrying(listen: SocketAddr) -> Result<tokio::net::TcpListener, String> {
    let mut tries = 0;
    loop {
        match tokio::net::TcpListener::bind(listen).await {
            Ok(listener) => return Ok(listener),
            Err(error) if error.kind() == std::io::ErrorKind::AddrInUse && tries < 20 => {
                tries += 1;
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(error) => return Err(format!("cannot listen on {listen}: {error}")),
        }
    }
}

fn read_tokens(path: &Path) -> Result<BTreeMap<u32, String>, String> {
    use std::os::unix::fs::PermissionsExt;
    let text = match std::fs::read(path) {
        Ok(text) => text,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(BTreeMap::new()),
        Err(error) => return Err(format!("reading {}: {error}", path.display())),
    };
    let mode = std::fs::metadata(path).map_err(|e| e.to_string())?.permissions().mode();
    let aside = || {
        let _ = std::fs::rename(path, path.with_extension(format!("json.rejected-{}", std::process::id())));
    };
    if mode & 0o077 != 0 {
        aside();
        return Err(format!("{} was readable by others (mode {:o}): set aside", path.display(), mode & 0o777));
    }
    serde_json::from_slice(&text).map_err(|error| {
        aside();
        format!("{} is not a token list ({error}): set aside", path.display())
    })
}

/// Writes `bytes` to `path` readable by its owner alone, atomically (a crash leaves the old file).
fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    let temporary = path.with_extension("json.new");
    let _ = std::fs::remove_file(&temporary);
    let mut file = std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(&temporary)?;
    file.write_all(bytes)?;
    file.sync_all()?;
    std::fs::rename(&temporary, path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_per_uid_kept_across_restarts_and_never_trusted_when_others_can_read_them() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let gateway = HostedGateway::new(GatewaySettings::default(), dir.path());
        let alice = gateway.token_for(1000).unwrap();
        let bob = gateway.token_for(1001).unwrap();
        assert_ne!(alice, bob);
        assert_eq!(gateway.token_for(1000).unwrap(), alice, "asked again: the same token");
        assert_eq!(gateway.clients.client_of(&bob).as_deref(), Some("1001"));
        let file = dir.path().join(GATEWAY_TOKENS_FILE);
        assert_eq!(std::fs::metadata(&file).unwrap().permissions().mode() & 0o777, 0o600);

        let restarted = HostedGateway::new(GatewaySettings::default(), dir.path());
        assert_eq!(restarted.token_for(1000).unwrap(), alice, "a restart keeps each client's token");
        assert_eq!(restarted.clients.client_of(&alice).as_deref(), Some("1000"));

        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).unwrap();
        let distrusted = HostedGateway::new(GatewaySettings::default(), dir.path());
        assert_eq!(distrusted.clients.client_of(&alice), None, "a list others could read is not used");
        assert_ne!(distrusted.token_for(1000).unwrap(), alice);

        std::fs::write(&file, "not json").unwrap();
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)).unwrap();
        let unreadable = HostedGateway::new(GatewaySettings::default(), dir.path());
        assert!(unreadable.token_for(1000).unwrap().starts_with("wgw_"));
    }
}
