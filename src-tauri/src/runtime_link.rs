//! Which Warden runtime this tray is a client of, and the personal runtime when it runs one.
//!
//! The system service's socket comes first (`--socket PATH`, else `$WARDEN_SOCKET`, else
//! `/run/warden/warden.sock` when it exists): when it answers, the tray runs no agent at all
//! and quitting it changes nothing about enforcement. Without a service (a developer trying
//! Warden on their own machine) the tray starts the same `warden_service::Runtime` in-process,
//! as the user (`RuntimeMode::Personal`, not tamper-proof), serves the local API on the
//! personal socket (`<state dir>/warden.sock`), and talks to it through that socket like any
//! other client: the rest of the tray has one code path, the [`LocalClient`].

use anyhow::{Context, Result, bail};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};
use warden_agent::AgentConfig;
use warden_api::local::{Hello, RuntimeMode};
use warden_client::{LocalClient, LocalClientError, StateDir};
use warden_policy::Policy;
use warden_service::{Runtime, RuntimeConfig};

/// Where to look for a runtime, from the command line.
#[derive(Debug, Clone, Default)]
pub struct LinkOptions {
    /// `--socket`: the service's socket; it must answer.
    pub socket: Option<PathBuf>,
    /// `--state-dir`: the personal runtime's state (never the service's).
    pub state_dir: Option<PathBuf>,
    /// `--policy` / `$WARDEN_POLICY`: a local policy for the personal runtime.
    pub policy_file: Option<PathBuf>,
}

/// The runtime the tray talks to.
pub struct Link {
    pub client: LocalClient,
    pub hello: Hello,
    /// The personal state directory, in personal mode (where a `warden gateway` the developer runs
    /// leaves its note and token).
    pub personal_state: Option<StateDir>,
    personal: Option<Personal>,
}

impl std::fmt::Debug for Link {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Link")
            .field("socket", &self.client.socket())
            .field("mode", &self.hello.mode)
            .field("personal", &self.personal.is_some())
            .finish()
    }
}

/// The personal runtime this tray runs, and how to stop it.
struct Personal {
    runtime: Arc<Runtime>,
    socket: PathBuf,
    stop: Mutex<Option<tokio::sync::oneshot::Sender<()>>>,
    served: Mutex<Option<tokio::task::JoinHandle<()>>>,
    policy_file: Option<PathBuf>,
    /// Why the policy file last failed to load (the last good policy stays in force).
    policy_problem: RwLock<Option<String>>,
}

/// How long a named socket (`--socket`, `$WARDEN_SOCKET`) may take to answer at start (the
/// service may be starting at the same time as the session).
const NAMED_SOCKET_PATIENCE: Duration = Duration::from_secs(10);

/// Finds the service or starts the personal runtime. Runs inside the async runtime.
pub async fn connect(options: &LinkOptions) -> Result<Link> {
    if let Some((socket, named)) = warden_client::service_socket(options.socket.as_deref()) {
        let patience = if named { NAMED_SOCKET_PATIENCE } else { Duration::ZERO };
        match hello(&socket, patience).await? {
            Some((client, hello)) => return Ok(Link { client, hello, personal_state: None, personal: None }),
            None if named => bail!("no Warden runtime answers on {} (is wardend running?)", socket.display()),
            None => {}
        }
    }
    personal(options).await
}

/// `hello` on `socket`, retried for up to `patience` while nothing answers. `Ok(None)`: nothing
/// answers; an error: something answers that this tray cannot talk to.
async fn hello(socket: &Path, patience: Duration) -> Result<Option<(LocalClient, Hello)>> {
    let client = LocalClient::new(socket).map_err(|e| anyhow::anyhow!("{e}"))?;
    let deadline = Instant::now() + patience;
    loop {
        match client.hello().await {
            Ok(hello) => return Ok(Some((client, hello))),
            Err(LocalClientError::Unreachable { .. }) if Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            Err(LocalClientError::Unreachable { .. }) => return Ok(None),
            Err(error) => return Err(anyhow::anyhow!("{error}")),
        }
    }
}

/// The personal mode: the runtime as this user, its local API on the personal socket. A
/// personal runtime that already answers there (`warden watch`) is used instead of a second.
async fn personal(options: &LinkOptions) -> Result<Link> {
    let state = options.state_dir.clone().map_or_else(StateDir::from_env, StateDir::new);
    std::fs::create_dir_all(state.root()).with_context(|| format!("creating {}", state.root().display()))?;
    let socket = warden_client::personal_socket(&state);
    if let Some((client, hello)) = hello(&socket, Duration::ZERO).await? {
        eprintln!("warden-tray: using the personal runtime already answering on {}", socket.display());
        return Ok(Link { client, hello, personal_state: Some(state), personal: None });
    }
    let (policy, version, problem) = match &options.policy_file {
        Some(file) => match load_policy_file(file) {
            Ok((policy, version)) => (policy, Some(version), None),
            Err(problem) => (Policy::embedded(), None, Some(problem)),
        },
        None => (Policy::embedded(), None, None),
    };
    if let Some(problem) = &problem {
        eprintln!("warden-tray: policy not loaded, using the embedded default: {problem}");
    }
    let mut agent = AgentConfig::new(state.root().to_path_buf(), policy);
    agent.policy_version = version;
    // The pre-exec gate marks whole filesystems: the system service's job, not a session's.
    agent.gate = None;
    let config = RuntimeConfig {
        mode: RuntimeMode::Personal,
        agent,
        token_storage: warden_client::TokenStorage::Keyring,
        sync: warden_client::SyncOptions::default(),
        policy_overridden: options.policy_file.is_some(),
        monitor_forced: false,
        controls: None,
        gateway: None,
    };
    let runtime = Runtime::start(config).await.context("starting the personal runtime")?;
    let listener = warden_service::local_api::bind(&socket, false)
        .with_context(|| format!("listening on {}", socket.display()))?;
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let served = tokio::spawn(warden_service::local_api::serve(runtime.clone(), listener, async {
        let _ = stopped.await;
    }));
    eprintln!(
        "warden-tray: personal mode: Warden runs inside this tray as you and is not tamper-proof; local API on {}",
        socket.display()
    );
    let personal = Personal {
        runtime,
        socket: socket.clone(),
        stop: Mutex::new(Some(stop)),
        served: Mutex::new(Some(served)),
        policy_file: options.policy_file.clone(),
        policy_problem: RwLock::new(problem),
    };
    let Some((client, hello)) = hello(&socket, Duration::from_secs(5)).await? else {
        bail!("the personal runtime does not answer on {}", socket.display());
    };
    Ok(Link { client, hello, personal_state: Some(state), personal: Some(personal) })
}

/// A policy file: the policy and a version naming its modification time, or the problem as
/// `file:line:column: what`.
fn load_policy_file(file: &Path) -> Result<(Policy, String), String> {
    let shown = file.display().to_string();
    let text = std::fs::read_to_string(file).map_err(|e| format!("{shown}: {e}"))?;
    let policy = Policy::parse(&shown, &text).map_err(|e| e.to_string())?;
    let modified = std::fs::metadata(file)
        .and_then(|m| m.modified())
        .ok()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_secs());
    Ok((policy, format!("file@{modified}")))
}

/// What *Sync now* did to a personal runtime's policy file.
#[derive(Debug, PartialEq, Eq)]
pub enum Reloaded {
    /// The file loaded; the runtime enforces it now.
    Loaded { name: String, file: String },
    /// It did not; the last good policy stays in force.
    Kept { problem: String },
}

impl Link {
    /// Why the personal runtime's policy file did not load, when it did not.
    pub fn policy_problem(&self) -> Option<String> {
        let personal = self.personal.as_ref()?;
        personal.policy_problem.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Re-reads the personal runtime's policy file into its agent. `None` when this tray runs
    /// no personal runtime with a policy file (the service, or a server, owns the policy).
    pub fn reload_policy_file(&self) -> Option<Reloaded> {
        let personal = self.personal.as_ref()?;
        let file = personal.policy_file.as_ref()?;
        let (reloaded, problem) = match load_policy_file(file) {
            Ok((policy, version)) => {
                let name = policy.name.clone();
                personal.runtime.agent().set_policy(policy, Some(version));
                (Reloaded::Loaded { name, file: file.display().to_string() }, None)
            }
            Err(problem) => (Reloaded::Kept { problem: problem.clone() }, Some(problem)),
        };
        *personal.policy_problem.write().unwrap_or_else(|p| p.into_inner()) = problem;
        Some(reloaded)
    }

    /// Stops the personal runtime (its socket removed); with the service, does nothing: the
    /// tray going away never touches enforcement.
    pub async fn close(&self) {
        let Some(personal) = &self.personal else { return };
        if let Some(stop) = personal.stop.lock().unwrap_or_else(|p| p.into_inner()).take() {
            let _ = stop.send(());
        }
        let served = personal.served.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(served) = served {
            let _ = served.await;
        }
        let _ = std::fs::remove_file(&personal.socket);
        personal.runtime.clone().shutdown("the tray quit").await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_policy_file_loads_or_says_where_it_is_wrong() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("policy.toml");
        let good = warden_policy::EMBEDDED_POLICY.replace("Default policy: internal assistant only", "Team policy");
        std::fs::write(&file, &good).unwrap();
        let (policy, version) = load_policy_file(&file).unwrap();
        assert_eq!(policy.name, "Team policy");
        assert!(version.starts_with("file@"), "{version}");
        std::fs::write(&file, "name = \"x\"\ndefault_action = \"explode\"\n").unwrap();
        let problem = load_policy_file(&file).unwrap_err();
        assert!(problem.contains("policy.toml:2:"), "{problem}");
        let missing = load_policy_file(&dir.path().join("none.toml")).unwrap_err();
        assert!(missing.contains("none.toml"), "{missing}");
    }
}
