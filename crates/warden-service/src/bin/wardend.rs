//! `wardend`, the Warden system service: runs as root in the foreground (made for systemd),
//! enforces the policy on every process of the machine, syncs with the governance server, and
//! serves the local API the `warden` CLI and the tray use.

use anyhow::{Context, Result, bail};
use clap::Parser;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use warden_api::local::{DEFAULT_SOCKET, LocalEnroll};
use warden_service::config::{DEFAULT_CONFIG, DEFAULT_STATE_DIR, ServiceConfig};
use warden_service::{Runtime, RuntimeConfig, RuntimeMode};

/// Warden's system service.
#[derive(Debug, Parser)]
#[command(name = "wardend", version, about)]
struct Args {
    /// The configuration file (default /etc/warden/warden.toml; missing is fine only there).
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// The root-only state directory (overrides the configuration).
    #[arg(long, value_name = "DIR")]
    state_dir: Option<PathBuf>,
    /// The local API's socket (overrides the configuration).
    #[arg(long, value_name = "PATH")]
    socket: Option<PathBuf>,
    /// A mount point whose filesystem the pre-exec gate covers (repeatable; overrides the
    /// configuration's `gate`).
    #[arg(long, value_name = "DIR")]
    gate_mount: Vec<PathBuf>,
    /// No pre-exec gate: the process connector alone (launches are killed right after exec).
    #[arg(long, conflicts_with = "gate_mount")]
    no_gate: bool,
    /// The cgroup v2 folder the network hooks attach to (overrides `[network] cgroup`; default:
    /// the cgroup v2 mount, i.e. the whole machine).
    #[arg(long, value_name = "DIR")]
    network_cgroup: Option<PathBuf>,
    /// No network layer: launches only.
    #[arg(long, conflicts_with = "network_cgroup")]
    no_network: bool,
    /// `auto` (eBPF, else nftables, else launches only) or `nftables` (skip eBPF); overrides
    /// `[network] layer`.
    #[arg(long, value_name = "LAYER", value_parser = ["auto", "nftables"])]
    network_layer: Option<String>,
    /// Put every vendor file the service writes under DIR (`DIR/etc/claude-code/…` instead of
    /// `/etc/claude-code/…`): tests and trials write into a scratch tree, never the machine's /etc.
    #[arg(long, value_name = "DIR", env = "WARDEN_ROOT", default_value = "/")]
    root: PathBuf,
    /// Write no vendor files at all (the policy's `[controls] off` does the same from the server).
    #[arg(long)]
    no_controls: bool,
}

fn main() -> Result<()> {
    let args = Args::parse();
    if !warden_monitor::running_as_root() {
        bail!(
            "wardend is the system service and runs as root (systemd starts it: `systemctl start warden`). \
             To try Warden as yourself, run `warden watch`."
        );
    }
    warden_monitor::harden_service_process().map_err(anyhow::Error::msg).context("hardening the service process")?;
    let config_path = args.config.clone().unwrap_or_else(|| PathBuf::from(DEFAULT_CONFIG));
    let config = ServiceConfig::load(&config_path, args.config.is_some())?;
    let state_dir = args.state_dir.clone().or(config.state_dir.clone()).unwrap_or_else(|| DEFAULT_STATE_DIR.into());
    let socket = args.socket.clone().or(config.socket.clone()).unwrap_or_else(|| DEFAULT_SOCKET.into());
    private_folder(&state_dir)?;

    let (policy, policy_overridden) = match config.policy.as_ref().map(|p| &p.file) {
        Some(file) => {
            let text = std::fs::read_to_string(file).with_context(|| format!("reading {}", file.display()))?;
            let policy =
                warden_policy::Policy::parse(&file.display().to_string(), &text).map_err(|e| anyhow::anyhow!("{e}"))?;
            (policy, true)
        }
        None => (warden_policy::Policy::embedded(), false),
    };
    let mut agent = warden_agent::AgentConfig::new(state_dir.clone(), policy);
    // Default: every local filesystem, and each one mounted later (the agent's default).
    if args.no_gate {
        agent.gate = None;
    } else if !args.gate_mount.is_empty() {
        agent.gate = warden_agent::GateScope::listed(args.gate_mount.clone());
    } else if let Some(gate) = &config.gate {
        agent.gate = warden_agent::GateScope::listed(gate.clone());
    }
    let gateway = config.gateway_settings(&config_path)?;
    let runtime_config = RuntimeConfig {
        mode: RuntimeMode::Service,
        agent,
        token_storage: warden_client::TokenStorage::File(state_dir.join("device-token")),
        sync: warden_client::SyncOptions::default(),
        // A local policy from root's configuration stands only until the device is enrolled.
        policy_overridden: policy_overridden && !state_dir.join("enrollment.json").exists(),
        monitor_forced: false,
        controls: (!args.no_controls).then(|| warden_service::controls::ControlsOptions {
            root: args.root.clone(),
            state_dir: state_dir.clone(),
            watch: true,
        }),
        gateway,
    };
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("starting the async runtime")?
        .block_on(run(runtime_config, socket, config, args))
}

async fn run(config: RuntimeConfig, socket: PathBuf, service: ServiceConfig, args: Args) -> Result<()> {
    let runtime = Runtime::start(config).await.context("starting the runtime")?;
    let network = service.network.clone();
    if !args.no_network && network.as_ref().is_none_or(|n| n.enabled) {
        let config = warden_service::network::NetworkConfig {
            cgroup: args.network_cgroup.clone().or_else(|| network.as_ref().and_then(|n| n.cgroup.clone())),
            resolve_interval: std::time::Duration::from_secs(
                network.as_ref().and_then(|n| n.resolve_seconds).unwrap_or(30).max(1),
            ),
            layer: match args.network_layer.as_deref() {
                Some("nftables") => warden_service::network::LayerChoice::Nftables,
                Some(_) => warden_service::network::LayerChoice::Auto,
                None => network.as_ref().map(|n| n.layer).unwrap_or_default(),
            },
        };
        let status = runtime.start_network(&config);
        eprintln!("wardend: network: {}: {}", status.layer.label(), status.detail);
    } else {
        eprintln!("wardend: network: launch only (switched off)");
    }
    let status = runtime.agent().status();
    for refusal in &status.gate_refusals {
        eprintln!("wardend: note: not gated: {refusal}");
    }
    if let Some(keeper) = runtime.controls() {
        let files = keeper.status();
        let kept: Vec<&str> = files.iter().map(|f| f.location.as_str()).collect();
        eprintln!("wardend: keeping {} vendor files: {}", kept.len(), kept.join(", "));
    }
    eprintln!(
        "wardend: enforcing with {}{}; gate: {}; local API on {}",
        status.source,
        status.fallback_reason.as_deref().map(|r| format!(" ({r})")).unwrap_or_default(),
        if status.gate_marks.is_empty() {
            "off".into()
        } else {
            status.gate_marks.iter().map(ToString::to_string).collect::<Vec<_>>().join(", ")
        },
        socket.display()
    );
    if let Some(server) = service.server.clone()
        && runtime.state().load_enrollment().ok().flatten().is_none()
    {
        tokio::spawn(enroll_from_config(runtime.clone(), server));
    }
    let listener =
        warden_service::local_api::bind(&socket, true).with_context(|| format!("listening on {}", socket.display()))?;
    let (signalled, signal) = tokio::sync::oneshot::channel();
    let stop = async move {
        let _ = signalled.send(warden_service::termination_signal().await);
    };
    warden_service::local_api::serve(runtime.clone(), listener, stop).await;
    let reason = signal.await.map_or_else(|_| "the local API ended".to_owned(), |name| format!("signal {name}"));
    eprintln!("wardend: stopping ({reason})");
    let _ = std::fs::remove_file(&socket);
    runtime.shutdown(&reason).await;
    Ok(())
}

/// Enrolls with the configured server, retrying while it cannot be reached.
async fn enroll_from_config(runtime: std::sync::Arc<Runtime>, server: warden_service::config::ServerSection) {
    let secret = match std::fs::read_to_string(&server.enroll_secret_file) {
        Ok(secret) => secret.trim().to_owned(),
        Err(e) => {
            eprintln!("wardend: not enrolling: reading {}: {e}", server.enroll_secret_file.display());
            return;
        }
    };
    let request = LocalEnroll {
        server: server.url.clone(),
        secret,
        code: None,
        owner: server.owner,
        local_users: server.local_users,
    };
    let mut pause = std::time::Duration::from_secs(2);
    loop {
        let hostname = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default().trim().to_owned();
        match runtime.enroll(request.clone(), hostname).await {
            Ok(device) => {
                eprintln!(
                    "wardend: enrolled with {} as device {} for {}",
                    device.server, device.device_id, device.owner
                );
                return;
            }
            Err(error) => eprintln!("wardend: enrolling with {} failed (retrying): {}", server.url, error.message),
        }
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(std::time::Duration::from_secs(300));
    }
}

/// Creates `dir` root-only (0700), or makes an existing one so: the policy cache, the event
/// log and the device token are root's alone.
fn private_folder(dir: &Path) -> Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
        .with_context(|| format!("making {} root-only", dir.display()))
}
