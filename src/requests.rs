//! `warden request` files an exception request (durably queued first, then sent);
//! `warden requests` lists this device's requests with their status.

use crate::connected::{open_device, runtime, state_dir};
use anyhow::{Context, Result, bail};
use clap::Args;
use std::path::PathBuf;
use warden_api::{ExceptionRecord, ExceptionRequestCreate, ExceptionState};
use warden_policy::Policy;

#[derive(Debug, Args)]
pub struct RequestArgs {
    /// Catalog id of the tool (see `warden catalog`).
    #[arg(long)]
    tool: String,
    /// Why you need it: a sentence an approver can judge (at least 20 characters).
    #[arg(long)]
    reason: String,
    /// Limit the exception to this directory (a repository), which must exist; relative paths,
    /// `..` and symlinks are resolved to its canonical path. Default: everywhere.
    #[arg(long, value_name = "DIR")]
    scope: Option<PathBuf>,
    /// How long, e.g. 8h, 2d, 30m (at most the policy's limit).
    #[arg(long, default_value = "8h")]
    duration: String,
    /// Where the device keeps its state.
    #[arg(long, value_name = "DIR")]
    state_dir: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct RequestsArgs {
    /// One JSON document instead of a table.
    #[arg(long)]
    json: bool,
    /// Where the device keeps its state.
    #[arg(long, value_name = "DIR")]
    state_dir: Option<PathBuf>,
}

/// The policy in force on this device: the cached signed one (verified) when enrolled, else
/// `fallback`.
fn policy_in_force(device: &warden_client::Device, fallback: &Policy) -> Policy {
    match device.cached_rules() {
        Ok((Some((policy, _)), _)) => policy,
        _ => fallback.clone(),
    }
}

pub fn run_request(fallback_policy: &Policy, socket: Option<&std::path::Path>, args: RequestArgs) -> Result<()> {
    let duration = humantime::parse_duration(&args.duration)
        .with_context(|| format!("--duration {:?}: use e.g. 30m, 8h, 2d", args.duration))?;
    // Stored and compared as the canonical path: `..` and symlinks resolved here, against
    // this shell's directory, as the kernel resolves a launch's working directory.
    let scope = match &args.scope {
        Some(dir) => {
            let cwd = std::env::current_dir().context("reading the current directory to resolve --scope")?;
            Some(warden_client::canonical_scope(&cwd, dir).context("--scope")?)
        }
        None => None,
    };
    let request = ExceptionRequestCreate {
        tool: args.tool.clone(),
        justification: args.reason.trim().to_owned(),
        scope,
        duration_seconds: duration.as_secs(),
        client_id: None,
    };
    if args.state_dir.is_none()
        && let Some(service) = crate::service::system_service(socket)?
    {
        // Filed as whoever runs this command: the service takes the person from the socket.
        let filed = service.call(service.client.file_request(&request))?;
        match (filed.sent, filed.detail) {
            (true, _) => println!(
                "Request {} for {} sent; an approver will decide. `warden requests` shows its status.",
                filed.id, args.tool
            ),
            (false, detail) => println!(
                "Request {} for {} queued by the Warden service{}.",
                filed.id,
                args.tool,
                detail.map(|d| format!(": {d}")).unwrap_or_default()
            ),
        }
        return Ok(());
    }
    let state = state_dir(args.state_dir.as_deref());
    let device = open_device(&state)?;
    let policy = policy_in_force(&device, fallback_policy);
    if policy.catalog().tool(&args.tool).is_none() {
        bail!("unknown tool id {:?}: see `warden catalog` for the ids", args.tool);
    }
    let limit = policy.exceptions.max_duration;
    if duration.as_secs() > limit {
        bail!(
            "--duration {} is longer than the policy allows ({})",
            args.duration,
            humantime::format_duration(std::time::Duration::from_secs(limit))
        );
    }
    let id = device.queue_request(&request)?;
    println!("Request {id} for {} queued (durably, in {}).", args.tool, state.events_db().display());
    let runtime = runtime()?;
    match runtime.block_on(device.send_requests()) {
        Ok((filed, 0)) if filed > 0 => {
            println!(
                "Sent to {}; an approver will decide. `warden requests` shows its status.",
                device.enrollment().server
            )
        }
        Ok((_, refused)) if refused > 0 => {
            let reason = device.store().incidents(1)?.into_iter().next().map(|i| i.detail).unwrap_or_default();
            bail!("the server refused the request: {reason}");
        }
        Ok(_) => println!("Already sent."),
        Err(error) => println!("Not sent yet ({error}); it stays queued and goes out at the next sync."),
    }
    Ok(())
}

fn describe(record: &ExceptionRecord) -> String {
    let when = |t: i64| {
        humantime::format_rfc3339_seconds(std::time::UNIX_EPOCH + std::time::Duration::from_secs(t.max(0) as u64))
    };
    match record.state {
        ExceptionState::Pending => "pending".into(),
        ExceptionState::Approved => match record.expires_at {
            Some(t) => format!("approved until {}", when(t)),
            None => "approved".into(),
        },
        ExceptionState::Denied => {
            format!(
                "denied by {}: {}",
                record.decided_by.as_deref().unwrap_or("?"),
                record.comment.as_deref().unwrap_or("")
            )
        }
        ExceptionState::Expired => "expired".into(),
        ExceptionState::Revoked => format!("revoked: {}", record.comment.as_deref().unwrap_or("")),
        ExceptionState::Withdrawn => "withdrawn".into(),
    }
}

pub fn run_requests(socket: Option<&std::path::Path>, args: RequestsArgs) -> Result<()> {
    let (records, live, queued) = if args.state_dir.is_none()
        && let Some(service) = crate::service::system_service(socket)?
    {
        let mine = service.call(service.client.requests())?;
        let queued: Vec<(String, ExceptionRequestCreate)> =
            mine.queued.into_iter().map(|q| (q.id, q.request)).collect();
        (mine.requests, mine.live, queued)
    } else {
        let state = state_dir(args.state_dir.as_deref());
        let device = open_device(&state)?;
        let queued = device
            .store()
            .pending_exception_requests(1000)?
            .into_iter()
            .filter_map(|q| serde_json::from_str::<ExceptionRequestCreate>(&q.body).ok().map(|r| (q.id, r)))
            .collect();
        match runtime()?.block_on(device.sync_exceptions()) {
            Ok(list) => (list.requests, true, queued),
            Err(error) => {
                eprintln!("warden: server unreachable ({error}); showing the last known list");
                (warden_client::cached_requests(&state)?.map(|(_, r)| r).unwrap_or_default(), false, queued)
            }
        }
    };
    if args.json {
        let queued: Vec<&ExceptionRequestCreate> = queued.iter().map(|(_, r)| r).collect();
        let value = serde_json::json!({ "live": live, "requests": records, "queued": queued });
        println!("{}", serde_json::to_string_pretty(&value)?);
        return Ok(());
    }
    if records.is_empty() && queued.is_empty() {
        println!("No exception requests from this device. File one with `warden request --tool ID --reason \"…\"`.");
        return Ok(());
    }
    for (id, request) in &queued {
        println!("{:<38} {:<14} queued, not sent yet", id, request.tool);
    }
    for record in &records {
        let scope = record.scope.as_deref().unwrap_or("everywhere");
        println!("{:<38} {:<14} {}  [{scope}]", record.id, record.tool, describe(record));
    }
    Ok(())
}
