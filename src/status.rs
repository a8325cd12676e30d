//! `warden status`: enrolled server, device id, policy version and age, outbox depth,
//! connectivity, and the monitor's mode and source.

use crate::connected::{open_device, runtime, state_dir};
use anyhow::Result;
use clap::Args;
use serde_json::json;
use std::path::PathBuf;
use std::time::Duration;
use warden_client::Device;
use warden_policy::Mode;
use warden_store::Store;

#[derive(Debug, Args)]
pub struct StatusArgs {
    /// One JSON object instead of text.
    #[arg(long)]
    json: bool,
    /// Where the device keeps its state.
    #[arg(long, value_name = "DIR")]
    state_dir: Option<PathBuf>,
}

pub fn run(socket: Option<&std::path::Path>, args: StatusArgs) -> Result<()> {
    if args.state_dir.is_none()
        && let Some(service) = crate::service::system_service(socket)?
    {
        return show_service(&service, args.json);
    }
    let state = state_dir(args.state_dir.as_deref());
    let now = crate::now();
    let enrollment = state.load_enrollment()?;
    let store = Store::open(state.events_db())?;
    // Verified now, like every load: a rewritten cache is reported, and the last verified copy shown.
    let (policy, exceptions) = warden_client::cached_rules(&state, &store)?;
    let cached_policy = match &enrollment {
        Some(enrollment) => warden_client::cache::load_policy(&state, enrollment, &store)?,
        None => None,
    };
    let pending_events = store.pending_count()?;
    let pending_requests = store.pending_exception_request_count()?;
    let drops = store.outbox_drops()?;
    let incident = store.incidents(1)?.into_iter().next();

    let mut device_error = None;
    let device: Option<Device> = match &enrollment {
        Some(_) => match open_device(&state) {
            Ok(device) => Some(device),
            Err(error) => {
                device_error = Some(format!("{error:#}"));
                None
            }
        },
        None => None,
    };
    let connectivity = match &device {
        Some(device) => {
            let runtime = runtime()?;
            match runtime.block_on(async { tokio::time::timeout(Duration::from_secs(5), device.api().me()).await }) {
                Ok(Ok(_)) => "online".to_owned(),
                Ok(Err(error)) => format!("offline: {error}"),
                Err(_) => "offline: no answer within 5 s".to_owned(),
            }
        }
        None if enrollment.is_some() => "unknown (no device token)".to_owned(),
        None => "not enrolled".to_owned(),
    };
    // The personal runtime (`warden watch`) answers on its socket in the state directory.
    let agent = crate::service::connect_to(&warden_client::personal_socket(&state))
        .ok()
        .flatten()
        .and_then(|connected| connected.call(connected.client.status()).ok());
    let gateway = warden_client::personal_gateway::running(&state);
    let masking = store.masking_since((now - 24 * 3600) * 1000, None)?;
    let mode = match &policy {
        Some((policy, _)) => policy.mode,
        None => warden_policy::Policy::embedded().mode,
    };
    let mode_text = |mode: Mode| if mode == Mode::Monitor { "monitor" } else { "enforce" };

    let value = json!({
        "enrolled": enrollment.is_some(),
        "server": enrollment.as_ref().map(|e| e.server.clone()),
        "device_id": enrollment.as_ref().map(|e| e.device_id.clone()),
        "user": enrollment.as_ref().map(|e| e.user.clone()),
        "token": device.as_ref().map(|d| d.token_source().as_str()).or(device_error.as_deref()),
        "policy_version": cached_policy.as_ref().map(|c| c.envelope.version),
        "policy_name": policy.as_ref().map(|(p, _)| p.name.clone()),
        "policy_age_seconds": cached_policy.as_ref().map(|c| now - c.fetched_at),
        "policy_confirmed_seconds_ago": cached_policy.as_ref().map(|c| now - c.confirmed_at),
        "active_exceptions": exceptions.len(),
        "outbox": { "events": pending_events, "requests": pending_requests, "dropped": drops.total() },
        "connectivity": connectivity,
        "monitor": {
            "running": agent.is_some(),
            "pid": agent.as_ref().map(|a| a.pid),
            "source": agent.as_ref().map(|a| a.source.clone()),
            "mode": agent.as_ref().map_or_else(|| mode_text(mode).to_owned(), |a| a.enforcement.to_string()),
        },
        "gateway": {
            "running": gateway.is_some(),
            "listen": gateway.as_ref().map(|g| g.listen.to_string()),
            "upstream": gateway.as_ref().map(|g| g.upstream.clone()),
            "last_24h": {"requests": masking.requests, "masked": masking.masked, "kept_masked": masking.kept_masked},
        },
        "last_incident": incident.as_ref().map(|i| json!({"at_ms": i.at_ms, "kind": i.kind, "detail": i.detail})),
    });
    if args.json {
        println!("{}", serde_json::to_string_pretty(&value)?);
        return Ok(());
    }
    match &enrollment {
        Some(e) => {
            println!("Server:        {}", e.server);
            println!("Device:        {} (user {}, host {})", e.device_id, e.user, e.hostname);
        }
        None => println!("Server:        not enrolled (`warden enroll --code CODE`, a code from the console)"),
    }
    if let Some(error) = &device_error {
        println!("Device token:  PROBLEM: {error}");
    } else if let Some(device) = &device {
        println!("Device token:  {}", device.token_source().as_str());
    }
    match &cached_policy {
        Some(c) => println!(
            "Policy:        version {} ({}), fetched {} ago, confirmed {} ago",
            c.envelope.version,
            policy.as_ref().map_or("unreadable", |(p, _)| p.name.as_str()),
            humantime::format_duration(Duration::from_secs((now - c.fetched_at).max(0) as u64)),
            humantime::format_duration(Duration::from_secs((now - c.confirmed_at).max(0) as u64)),
        ),
        None => println!("Policy:        embedded default (no signed policy cached)"),
    }
    println!("Exceptions:    {} active", exceptions.len());
    println!(
        "Outbox:        {pending_events} events, {pending_requests} requests waiting; {} events dropped by the bound",
        drops.total()
    );
    println!("Connectivity:  {connectivity}");
    match &agent {
        Some(a) => println!(
            "Monitor:       running (pid {}), source {}, mode {} — personal, not tamper-proof",
            a.pid, a.source, a.enforcement
        ),
        None => println!("Monitor:       not running (mode under the policy: {})", mode_text(mode)),
    }
    match &gateway {
        Some(g) => println!("Gateway:       running (pid {}) on http://{}/v1 → {}", g.pid, g.listen, g.upstream),
        None => println!("Gateway:       not running (`warden gateway`)"),
    }
    if masking.requests > 0 {
        println!(
            "Masking:       {} secrets masked in {} requests in the last 24 h ({} kept masked in tool calls)",
            masking.masked, masking.requests, masking.kept_masked
        );
    }
    if let Some(i) = &incident {
        println!("Last incident: {} {}", i.kind, i.detail);
    }
    Ok(())
}

/// `warden status` against the system service: what it says, never its (root-only) files.
fn show_service(service: &crate::service::Connected, json: bool) -> Result<()> {
    let status = service.call(service.client.status())?;
    let caller = &service.hello.caller;
    if json {
        let value = json!({
            "service": {"mode": status.mode, "pid": status.pid, "started_at_ms": status.started_at_ms},
            "you": caller,
            "enrolled": status.enrolled.is_some(),
            "server": status.enrolled.as_ref().map(|e| e.server.clone()),
            "device_id": status.enrolled.as_ref().map(|e| e.device_id.clone()),
            "user": status.enrolled.as_ref().map(|e| e.owner.clone()),
            "policy_version": status.policy_version,
            "policy_name": status.policy_name,
            "sync": status.sync,
            "monitor": {
                "running": true,
                "pid": status.pid,
                "source": status.source,
                "gate": status.gate_mounts,
                "mode": status.enforcement.to_string(),
                "fallback_reason": status.fallback_reason,
                "lost_notices": status.lost_notices,
            },
            "today": {"events": status.events_today, "blocked": status.blocked_today, "warned": status.warned_today},
            "managed_files": status.managed_files,
            "gateway": status.gateway.as_ref().map(|g| json!({
                "running": g.error.is_none(),
                "url": g.url,
                "upstream": g.upstream,
                "error": g.error,
                "last_24h": {"requests": g.requests_24h, "masked": g.masked_24h, "kept_masked": g.kept_masked_24h},
                "last": g.last.as_ref().map(|m| json!({"at_ms": m.at_ms, "summary": m.summary()})),
            })),
            "network": status.network,
        });
        println!("{}", serde_json::to_string_pretty(&value)?);
        return Ok(());
    }
    println!("Protected by:  {} (pid {})", crate::service::mode_words(status.mode), status.pid);
    match &status.enrolled {
        Some(e) => println!("Server:        {} (device {}, owner {})", e.server, e.device_id, e.owner),
        None => {
            println!("Server:        not enrolled (root: `warden enroll --code CODE`)")
        }
    }
    println!(
        "You:           {} (uid {}){}",
        caller.login.as_deref().unwrap_or("?"),
        caller.uid,
        caller.account.as_deref().map(|a| format!(", bound to {a}")).unwrap_or_default()
    );
    println!(
        "Policy:        {} version {}, mode {}",
        status.policy_name,
        status.policy_version.as_deref().unwrap_or("embedded"),
        status.enforcement
    );
    if let Some(sync) = &status.sync {
        match &sync.last_error {
            Some(error) => println!("Sync:          failing: {error}"),
            None => println!("Sync:          ok, {} active exception(s)", sync.active_exceptions),
        }
    }
    let gate = if status.gate_mounts.is_empty() { "off".to_owned() } else { status.gate_mounts.join(", ") };
    println!("Monitor:       {} + gate {gate}", status.source);
    if let Some(network) = &status.network {
        println!("Network:       {}: {}", network.layer.label(), network.detail);
        if network.layer == warden_api::local::NetworkLayer::Ebpf {
            println!(
                "               {} of {} names resolved, {} address ranges governed ({} learned from DNS answers), {} \
                 process(es) open by exception{}",
                network.names_resolved,
                network.names,
                network.ranges,
                network.learned,
                network.open_processes,
                if network.unresolved.is_empty() {
                    String::new()
                } else {
                    format!("; not resolving now (last good kept): {}", network.unresolved.join(", "))
                }
            );
        }
        for proxy in &network.proxies {
            println!(
                "Proxy:         {proxy}: connections through it show only the proxy to the kernel; what goes through \
                 it is not seen here"
            );
        }
    }
    println!(
        "Today:         {} launches of yours, {} blocked, {} warned",
        status.events_today, status.blocked_today, status.warned_today
    );
    if !status.managed_files.is_empty() {
        let drifted = status.managed_files.iter().filter(|f| !f.matches).count();
        println!(
            "Vendor files:  {} kept{}",
            status.managed_files.len(),
            if drifted == 0 {
                ", all match the policy".to_owned()
            } else {
                format!(", {drifted} DIFFER (being restored)")
            }
        );
        for file in &status.managed_files {
            let state = if file.matches { "matches" } else { "DIFFERS" };
            println!("  {state:<8} {} ({}, {})", file.path, file.vendor, file.ownership);
            for applied in &file.controls {
                println!("           {}: {}", applied.tool, applied.control);
            }
        }
    }
    match &status.gateway {
        None => println!("Gateway:       not hosted by the service (`warden gateway` runs one for you)"),
        Some(g) => {
            match &g.error {
                Some(error) => println!("Gateway:       down: {error}"),
                None => println!(
                    "Gateway:       running on {} → {} (your client's settings: `warden gateway --print-env`)",
                    g.url, g.upstream
                ),
            }
            if g.requests_24h > 0 {
                println!(
                    "Masking:       {} secrets masked in {} of your requests in the last 24 h ({} kept masked in tool calls)",
                    g.masked_24h, g.requests_24h, g.kept_masked_24h
                );
            }
        }
    }
    Ok(())
}
