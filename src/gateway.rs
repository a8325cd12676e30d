//! `warden gateway`: runs the masking gateway on a loopback port for the current user, in front of the
//! sanctioned assistant's model API (`--upstream`, else the policy's `assistant.api_url`); with
//! `--print-env`, prints how a client reaches the gateway that serves this user (the system service's,
//! which hosts one for every user, else this user's own).

use anyhow::{Context, Result, bail};
use clap::Args;
use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use warden_api::local::GatewayAccess;
use warden_api::{Event, MaskingEvent};
use warden_client::personal_gateway::{self, GatewayNote};
use warden_gateway::{ClientTokens, DEFAULT_MAX_BODY_BYTES, Detector, GatewayConfig, RequestReport};
use warden_policy::Policy;

#[derive(Debug, Args)]
pub struct GatewayArgs {
    /// Loopback address to listen on (a non-loopback address is refused).
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:8788")]
    listen: SocketAddr,
    /// The model API's base URL standing in for the gateway's `/v1` (e.g. https://assistant.internal.example/v1);
    /// default: the policy's `assistant.api_url`.
    #[arg(long, value_name = "URL")]
    upstream: Option<String>,
    /// The environment variable holding the upstream's API key (never shown to the client).
    #[arg(long, value_name = "NAME", default_value = "WARDEN_GATEWAY_UPSTREAM_KEY")]
    upstream_key_env: String,
    /// Larger request bodies are refused with 413.
    #[arg(long, value_name = "BYTES", default_value_t = DEFAULT_MAX_BODY_BYTES)]
    max_body_bytes: usize,
    /// A conversation's placeholders are forgotten after this long without a request.
    #[arg(long, value_name = "DURATION", default_value = "30m", value_parser = humantime::parse_duration)]
    idle: Duration,
    /// Where the token, the status file and the event log live (default: $WARDEN_STATE_DIR,
    /// $XDG_STATE_HOME/warden or ~/.local/state/warden).
    #[arg(long, value_name = "DIR")]
    state_dir: Option<PathBuf>,
    /// Print, as shell `export` lines, the environment a sanctioned client (Qwen Code, any OpenAI- or
    /// Anthropic-compatible client) needs to go through the gateway that serves you — the system
    /// service's, else your own running `warden gateway` — and exit: `eval "$(warden gateway --print-env)"`.
    #[arg(long)]
    print_env: bool,
}

pub fn run(policy: &Policy, socket: Option<&Path>, args: GatewayArgs) -> Result<()> {
    if args.print_env {
        let access = access(socket, args.state_dir.as_deref())?;
        for (name, value) in access.client_env() {
            println!("export {name}={}", shell_quote(value));
        }
        return Ok(());
    }
    if !args.listen.ip().is_loopback() {
        bail!("--listen {} is not a loopback address: the gateway serves only this machine's user", args.listen);
    }
    let upstream_given = args.upstream.is_some();
    let upstream = match args.upstream.or_else(|| policy.assistant.as_ref().and_then(|a| a.api_url.clone())) {
        Some(url) if url.starts_with("http://") || url.starts_with("https://") => url,
        Some(url) => bail!("--upstream {url:?} must start with http:// or https://"),
        None => bail!("no upstream: pass --upstream URL or set assistant.api_url in the policy"),
    };
    let state = crate::connected::state_dir(args.state_dir.as_deref());
    let state_dir = state.root().to_path_buf();
    let token_path = personal_gateway::token_path(&state);
    let client_token = warden_gateway::token::load_or_create(&token_path)
        .with_context(|| format!("reading or creating the gateway token {}", token_path.display()))?;
    let detector = Detector::new(policy.masking.as_ref()).context("compiling the masking rules")?;
    // Counts per request go to the local event log (never values), written on a thread of their own:
    // an fsynced SQLite commit must not hold up the proxy's runtime.
    let state = crate::connected::state_dir(Some(&state_dir));
    let store = warden_store::Store::open(state.events_db())
        .with_context(|| format!("opening the event log {}", state.events_db().display()))?;
    let (records, queue) = std::sync::mpsc::channel::<Event>();
    std::thread::spawn(move || {
        for record in queue {
            if let Err(error) = store.append(&record) {
                // Accounting, not a gate: a full disk must not stop the developer's requests.
                eprintln!("warden gateway: recording counts: {error}");
            }
        }
    });
    // Counted as the person the personal runtime names this user's launches (the login).
    let user = crate::enroll::login_name();
    let destination =
        policy.assistant.as_ref().filter(|_| !upstream_given).map_or(upstream.clone(), |a| a.name.clone());
    let on_report = move |report: &RequestReport| {
        eprintln!("{}", describe(report));
        let event = MaskingEvent {
            id: warden_agent::new_event_id(),
            at_ms: crate::now_ms(),
            user: Some(user.clone()),
            path: report.path.clone(),
            status: report.status,
            destination: destination.clone(),
            masked: report.masked.by_rule.clone(),
            restored: report.restored,
            kept_masked_in: report.kept_masked.iter().map(|(tool, _)| tool.clone()).collect(),
        };
        let _ = records.send(Event::Masking(event));
    };
    let config = GatewayConfig {
        upstream: upstream.clone(),
        upstream_key: std::env::var(&args.upstream_key_env).ok().filter(|k| !k.is_empty()),
        clients: ClientTokens::single(client_token, "you"),
        max_body_bytes: args.max_body_bytes,
        idle: args.idle,
        detector: Arc::new(detector),
        on_report: Some(Arc::new(on_report)),
    };
    let runtime = tokio::runtime::Runtime::new().context("starting the async runtime")?;
    runtime.block_on(async {
        let listener = tokio::net::TcpListener::bind(args.listen)
            .await
            .with_context(|| format!("listening on {}", args.listen))?;
        let listen = listener.local_addr()?;
        let note = GatewayNote { pid: std::process::id(), listen, upstream: upstream.clone() };
        let status_path = personal_gateway::note_path(&state);
        std::fs::write(&status_path, serde_json::to_string(&note)?)
            .with_context(|| format!("writing {}", status_path.display()))?;
        println!("warden gateway: http://{listen}/v1 → {upstream}");
        println!("  OpenAI-compatible clients (Qwen Code):");
        println!("    OPENAI_BASE_URL=http://{listen}/v1 OPENAI_API_KEY=$(cat {})", token_path.display());
        println!(
            "  Anthropic clients: ANTHROPIC_BASE_URL=http://{listen} ANTHROPIC_API_KEY=$(cat {})",
            token_path.display()
        );
        let _ = std::io::stdout().flush();
        let served = warden_gateway::serve(listener, config, async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await;
        let _ = std::fs::remove_file(&status_path);
        served.context("serving the gateway")
    })
}

/// One line for the terminal: `POST /v1/chat/completions → 200: masked 3 (private-key 1, …)`.
fn describe(report: &RequestReport) -> String {
    let mut line = format!("{} → {}", report.path, report.status);
    let total = report.masked.total();
    if total > 0 {
        let rules: Vec<String> = report.masked.by_rule.iter().map(|(rule, n)| format!("{rule} {n}")).collect();
        line.push_str(&format!(": masked {total} ({})", rules.join(", ")));
    }
    if report.restored > 0 {
        line.push_str(&format!(", restored {}", report.restored));
    }
    for (tool, placeholder) in &report.kept_masked {
        line.push_str(&format!(", kept {placeholder} masked in a call to {tool}"));
    }
    line
}

/// How this user's client reaches a gateway: the system service's (their own token, over the local
/// API), else the one `warden gateway` runs for them (the token in their state directory).
fn access(socket: Option<&Path>, state_dir: Option<&Path>) -> Result<GatewayAccess> {
    if state_dir.is_none()
        && let Some(service) = crate::service::system_service(socket)?
    {
        return service.call(service.client.gateway()).context("asking the Warden service for its gateway");
    }
    let state = crate::connected::state_dir(state_dir);
    personal_gateway::access(&state).with_context(
        || "no masking gateway serves you: the Warden service hosts none here, and `warden gateway` is not running",
    )
}

/// `value` quoted for a POSIX shell.
fn shell_quote(value: &str) -> String {
    format!("'{}'", value.replace('\'', "'\\''"))
}
