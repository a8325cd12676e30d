//! `warden sync`: one full sync now — queued requests out, decisions and policy in, events out.

use crate::connected::{open_device, runtime, state_dir};
use anyhow::{Result, bail};
use clap::Args;
use std::path::PathBuf;
use warden_client::{DEFAULT_OUTBOX_LIMIT, PolicySync, TOKEN_ENV};

#[derive(Debug, Args)]
pub struct SyncArgs {
    /// Where the device keeps its state.
    #[arg(long, value_name = "DIR")]
    state_dir: Option<PathBuf>,
    /// One JSON object instead of text.
    #[arg(long)]
    json: bool,
    /// Trade the device token for a fresh one first (it rotates every 30 days by itself; do it
    /// now after a suspected leak). The old token stops working at the new one's first use.
    #[arg(long)]
    rotate_token: bool,
}

pub fn run(socket: Option<&std::path::Path>, args: SyncArgs) -> Result<()> {
    if args.state_dir.is_none()
        && let Some(service) = crate::service::system_service(socket)?
    {
        // The service syncs in the background; this asks it to do so now.
        let sync = service.call(service.client.sync_now())?;
        if args.json {
            println!("{}", serde_json::json!({ "requested": true, "sync": sync }));
        } else {
            println!("Asked the Warden service to sync now (last success: {:?}).", sync.last_success);
        }
        return Ok(());
    }
    let state = state_dir(args.state_dir.as_deref());
    let device = open_device(&state)?;
    let runtime = runtime()?;
    if args.rotate_token {
        match runtime.block_on(device.rotate_token()) {
            Ok(true) => eprintln!("warden: the device token was replaced; the old one no longer works"),
            Ok(false) => {
                bail!("the device token comes from {TOKEN_ENV}: replace it there (enroll again for a new one)")
            }
            Err(error) => bail!("rotating the device token: {error}"),
        }
    }
    let report = runtime.block_on(device.sync_once(DEFAULT_OUTBOX_LIMIT));
    let policy = match &report.policy {
        Some(PolicySync::Updated { version }) => format!("updated to version {version}"),
        Some(PolicySync::Unchanged { version }) => format!("version {version}, unchanged"),
        Some(PolicySync::Rejected { reason }) => format!("REJECTED, last good kept: {reason}"),
        None => "not fetched".into(),
    };
    let active = report.exceptions.as_ref().map_or(0, |l| l.exceptions.len());
    if args.json {
        let value = serde_json::json!({
            "server": device.enrollment().server,
            "requests_filed": report.requests_filed,
            "requests_refused": report.requests_refused,
            "events_uploaded": report.events_uploaded,
            "duplicates": report.duplicates,
            "policy": policy,
            "active_exceptions": active,
            "errors": report.errors,
        });
        println!("{value}");
    } else {
        println!("Synced with {}", device.enrollment().server);
        println!("  exception requests sent: {} (refused: {})", report.requests_filed, report.requests_refused);
        println!("  events uploaded: {} (already there: {})", report.events_uploaded, report.duplicates);
        println!("  policy: {policy}");
        println!("  active exceptions: {active}");
    }
    if !report.ok() {
        bail!("sync incomplete (will retry): {}", report.errors.join("; "));
    }
    Ok(())
}
