//! `warden enroll --server URL --secret S`: trades the organisation's enroll secret for this
//! device's id and token; the token goes to the OS keyring only.

use crate::connected::{runtime, state_dir};
use anyhow::{Context, Result};
use clap::Args;
use std::path::PathBuf;
use warden_client::{EnrollOptions, TOKEN_ENV};

#[derive(Debug, Args)]
pub struct EnrollArgs {
    /// The governance server, e.g. http://127.0.0.1:8470.
    #[arg(long, value_name = "URL")]
    server: String,
    /// The organisation's enroll secret (or set WARDEN_ENROLL_SECRET).
    #[arg(long, env = "WARDEN_ENROLL_SECRET", hide_env_values = true)]
    secret: String,
    /// The device's owner account (e.g. dev@corp.example; default: the login name). Exception
    /// requests are filed as this account, and the local user enrolling is bound to it: their
    /// launches are attributed to it and covered by its exceptions.
    #[arg(long)]
    user: Option<String>,
    /// Where the device keeps its state (default: $WARDEN_STATE_DIR, $XDG_STATE_HOME/warden or ~/.local/state/warden).
    #[arg(long, value_name = "DIR")]
    state_dir: Option<PathBuf>,
    /// Only where no OS keyring can exist: print the device token once on stdout, to be
    /// supplied in WARDEN_DEVICE_TOKEN, instead of refusing.
    #[arg(long)]
    print_token: bool,
    /// With the system service: a local login bound to the owner account (repeatable; default:
    /// the user who ran sudo, `$SUDO_USER`).
    #[arg(long = "local-user", value_name = "LOGIN")]
    local_users: Vec<String>,
}

/// The login name, as the monitor names the owner of a launch (by uid), so approved
/// exceptions match; off Linux `$USER` / `$USERNAME`, else `unknown`.
pub fn login_name() -> String {
    warden_monitor::facts::current_user()
        .or_else(|| {
            ["USER", "USERNAME", "LOGNAME"].iter().find_map(|name| std::env::var(name).ok().filter(|v| !v.is_empty()))
        })
        .unwrap_or_else(|| "unknown".into())
}

/// The local user running this command, as the monitor attributes launches (by uid); `None`
/// where the monitor reads no numeric uids.
pub fn local_user() -> Option<warden_client::LocalUser> {
    let uid = warden_monitor::facts::current_uid()?;
    Some(warden_client::LocalUser { uid, login: login_name() })
}

/// The machine's host name.
pub fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty())
        .or_else(|| ["HOSTNAME", "COMPUTERNAME"].iter().find_map(|n| std::env::var(n).ok().filter(|v| !v.is_empty())))
        .unwrap_or_else(|| "unknown-host".into())
}

pub fn run(socket: Option<&std::path::Path>, args: EnrollArgs) -> Result<()> {
    if args.state_dir.is_none()
        && let Some(service) = crate::service::system_service(socket)?
    {
        return enroll_service(&service, args);
    }
    let state = state_dir(args.state_dir.as_deref());
    let options = EnrollOptions {
        server: args.server.clone(),
        secret: args.secret,
        user: args.user.unwrap_or_else(login_name),
        local_users: local_user().into_iter().collect(),
        hostname: host_name(),
        allow_token_without_keyring: args.print_token,
        token_storage: warden_client::TokenStorage::Keyring,
    };
    let enrolled = runtime()?
        .block_on(warden_client::enroll(&state, &options))
        .with_context(|| format!("enrolling with {}", args.server))?;
    let e = &enrolled.enrollment;
    println!("Enrolled with {} as device {} (user {}, host {})", e.server, e.device_id, e.user, e.hostname);
    for local in &e.local_users {
        println!("Local user {} (uid {}) is bound to {}", local.login, local.uid, e.user);
    }
    match &enrolled.token_for_environment {
        None => println!("Device token: stored in the OS keyring"),
        Some(token) => {
            eprintln!("warden: no OS keyring is available; the token is printed once below. Supply it as {TOKEN_ENV}.");
            println!("{TOKEN_ENV}={}", token.expose());
        }
    }
    match enrolled.policy_version {
        Some(version) => println!("Policy: version {version} fetched, signature verified against the pinned key"),
        None => println!("Policy: not fetched yet (the next `warden sync` will)"),
    }
    println!("State: {}", state.root().display());
    Ok(())
}

/// Enrolls the device through the system service (root only: the service refuses anyone else).
/// The token stays in the service's root-only state; nothing is written here.
fn enroll_service(service: &crate::service::Connected, args: EnrollArgs) -> Result<()> {
    if service.hello.caller.uid != 0 {
        anyhow::bail!(
            "the Warden service manages this device, and only root enrolls it: \
             `sudo warden enroll --server {} --user OWNER …`",
            args.server
        );
    }
    let local_users = if args.local_users.is_empty() {
        std::env::var("SUDO_USER").ok().filter(|u| !u.is_empty() && u != "root").into_iter().collect()
    } else {
        args.local_users
    };
    let owner =
        args.user.or_else(|| local_users.first().cloned()).context("--user OWNER: the device's owner account")?;
    let request =
        warden_api::local::LocalEnroll { server: args.server.clone(), secret: args.secret, owner, local_users };
    let device =
        service.call(service.client.enroll(&request)).with_context(|| format!("enrolling with {}", args.server))?;
    println!("Enrolled with {} as device {} (owner {})", device.server, device.device_id, device.owner);
    for login in &device.local_users {
        println!("Local user {login} is bound to {}", device.owner);
    }
    println!("Device token: kept by the Warden service in its root-only state");
    Ok(())
}
