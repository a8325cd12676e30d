//! `warden enroll --code CODE` (or, before the server has accounts, `--server URL --secret S`):
//! trades a one-time enrollment code for this device's id and token; the token goes to the OS
//! keyring only (or the system service's root-only state).

use crate::connected::{runtime, state_dir};
use anyhow::{Context, Result};
use clap::Args;
use std::path::PathBuf;
use warden_client::{EnrollCredential, EnrollOptions, TOKEN_ENV};

#[derive(Debug, Args)]
pub struct EnrollArgs {
    /// The enrollment code made on the console (or set WARDEN_ENROLLMENT_CODE): it names the
    /// server, the person the device belongs to, and the CA to pin.
    #[arg(long, env = "WARDEN_ENROLLMENT_CODE", hide_env_values = true, conflicts_with = "secret")]
    code: Option<String>,
    /// The governance server, e.g. http://127.0.0.1:8470 (with --code: overrides the code's).
    #[arg(long, value_name = "URL", required_unless_present = "code")]
    server: Option<String>,
    /// The organisation's enroll secret (or set WARDEN_ENROLL_SECRET): only while the server has
    /// no accounts; then devices enroll with codes.
    #[arg(long, env = "WARDEN_ENROLL_SECRET", hide_env_values = true, required_unless_present = "code")]
    secret: Option<String>,
    /// The device's owner account (e.g. dev@corp.example; default: the code's person, else the
    /// login name). Exception requests are filed as this account, and the local user enrolling
    /// is bound to it: their launches are attributed to it and covered by its exceptions.
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

/// The server, the credential and the owner the arguments give (the code supplies what they
/// leave out).
fn credential(args: &EnrollArgs) -> Result<(String, EnrollCredential, Option<String>)> {
    match (&args.code, &args.secret, &args.server) {
        (Some(text), _, server) => {
            let code = warden_api::EnrollmentCode::decode(text).context("--code")?;
            let server = server.clone().unwrap_or_else(|| code.server.clone());
            let user = args.user.clone().or_else(|| Some(code.user.clone()));
            Ok((server, EnrollCredential::Code(code), user))
        }
        (None, Some(secret), Some(server)) => {
            Ok((server.clone(), EnrollCredential::Secret(secret.clone()), args.user.clone()))
        }
        _ => anyhow::bail!("give --code CODE (from the console), or --server URL with --secret SECRET"),
    }
}

pub fn run(socket: Option<&std::path::Path>, args: EnrollArgs) -> Result<()> {
    if args.state_dir.is_none()
        && let Some(service) = crate::service::system_service(socket)?
    {
        return enroll_service(&service, args);
    }
    let state = state_dir(args.state_dir.as_deref());
    let (server, credential, user) = credential(&args)?;
    let options = EnrollOptions {
        server: server.clone(),
        credential,
        user: user.unwrap_or_else(login_name),
        local_users: local_user().into_iter().collect(),
        hostname: host_name(),
        allow_token_without_keyring: args.print_token,
        token_storage: warden_client::TokenStorage::Keyring,
    };
    let enrolled = runtime()?
        .block_on(warden_client::enroll(&state, &options))
        .with_context(|| format!("enrolling with {server}"))?;
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
            "the Warden service manages this device, and only root enrolls it: `sudo warden enroll --code CODE`"
        );
    }
    let (server, _, code_user) = credential(&args)?;
    let local_users = if args.local_users.is_empty() {
        std::env::var("SUDO_USER").ok().filter(|u| !u.is_empty() && u != "root").into_iter().collect()
    } else {
        args.local_users
    };
    let owner =
        code_user.or_else(|| local_users.first().cloned()).context("--user OWNER: the device's owner account")?;
    let request = warden_api::local::LocalEnroll {
        server: server.clone(),
        secret: args.secret.unwrap_or_default(),
        code: args.code,
        owner,
        local_users,
    };
    let device = service.call(service.client.enroll(&request)).with_context(|| format!("enrolling with {server}"))?;
    println!("Enrolled with {} as device {} (owner {})", device.server, device.device_id, device.owner);
    for login in &device.local_users {
        println!("Local user {login} is bound to {}", device.owner);
    }
    println!("Device token: kept by the Warden service in its root-only state");
    Ok(())
}
