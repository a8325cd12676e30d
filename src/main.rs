//! `warden`: the command line. Checks launches against the policy, shows the catalog and
//! the policy, and (in later modules) watches processes and talks to the server.

mod catalog_view;
mod check;
mod connected;
mod enroll;
mod gateway;
mod inventory;
mod policy_cmd;
mod requests;
mod service;
mod status;
mod sync_cmd;
mod watch;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use warden_policy::Policy;

/// Warden governs AI coding tools on this machine: it recognises them when they start and
/// allows, warns about or blocks them as the organisation's policy says.
#[derive(Debug, Parser)]
#[command(name = "warden", version, about)]
struct Cli {
    /// Policy file (TOML, or JSON wire form) to use instead of the embedded default.
    #[arg(long, global = true, value_name = "FILE")]
    policy: Option<PathBuf>,
    /// The Warden runtime's local API socket (default: $WARDEN_SOCKET, else the system
    /// service's /run/warden/warden.sock when it exists).
    #[arg(long, global = true, value_name = "PATH")]
    socket: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Decide what the policy does with a launch (described, live by PID, or a batch).
    Check(check::CheckArgs),
    /// Every known AI tool and its status under the current policy.
    Catalog {
        /// One JSON document instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Validate or show a policy.
    #[command(subcommand)]
    Policy(policy_cmd::PolicyCommand),
    /// Watch program starts: decide, warn about or stop AI tools, and print each launch.
    Watch(watch::WatchArgs),
    /// List the AI tools installed on this machine (extensions, packages, folders).
    Inventory(inventory::InventoryArgs),
    /// Enroll this device with a governance server (token goes to the OS keyring).
    Enroll(enroll::EnrollArgs),
    /// Ask for an exception: use a blocked tool for a while, maybe only in one repository.
    Request(requests::RequestArgs),
    /// This device's exception requests and their status.
    Requests(requests::RequestsArgs),
    /// Server, device, policy version and age, outbox, connectivity, monitor mode and source.
    Status(status::StatusArgs),
    /// Sync with the server now: send requests and events, fetch decisions and policy.
    Sync(sync_cmd::SyncArgs),
    /// Run the masking gateway: a local model-API proxy that masks secrets before prompts leave.
    Gateway(gateway::GatewayArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(code) => code,
        Err(error) => {
            // A closed pipe (`warden catalog | head`) is a normal way to stop reading.
            if error.chain().any(|e| {
                e.downcast_ref::<std::io::Error>().is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
            }) {
                return ExitCode::SUCCESS;
            }
            eprintln!("warden: {error:#}");
            ExitCode::from(2)
        }
    }
}

fn run(cli: Cli) -> Result<ExitCode> {
    let policy = load_policy(cli.policy.as_deref())?;
    match cli.command {
        Command::Check(args) => check::run(&policy, args),
        Command::Catalog { json } => catalog_view::run(&policy, json).map(|()| ExitCode::SUCCESS),
        Command::Policy(command) => policy_cmd::run(&policy, command),
        Command::Watch(args) => {
            watch::run(policy, cli.policy.is_some(), cli.socket.as_deref(), args).map(|()| ExitCode::SUCCESS)
        }
        Command::Inventory(args) => inventory::run(&policy, args).map(|()| ExitCode::SUCCESS),
        Command::Enroll(args) => enroll::run(cli.socket.as_deref(), args).map(|()| ExitCode::SUCCESS),
        Command::Request(args) => {
            requests::run_request(&policy, cli.socket.as_deref(), args).map(|()| ExitCode::SUCCESS)
        }
        Command::Requests(args) => requests::run_requests(cli.socket.as_deref(), args).map(|()| ExitCode::SUCCESS),
        Command::Status(args) => status::run(cli.socket.as_deref(), args).map(|()| ExitCode::SUCCESS),
        Command::Sync(args) => sync_cmd::run(cli.socket.as_deref(), args).map(|()| ExitCode::SUCCESS),
        Command::Gateway(args) => gateway::run(&policy, cli.socket.as_deref(), args).map(|()| ExitCode::SUCCESS),
    }
}

/// The policy in force: `--policy FILE`, or the embedded default.
fn load_policy(path: Option<&Path>) -> Result<Policy> {
    match path {
        None => Ok(Policy::embedded()),
        Some(path) => read_policy(path),
    }
}

/// Reads and checks a policy file; errors say `FILE:LINE:COLUMN: what`.
fn read_policy(path: &Path) -> Result<Policy> {
    let text = std::fs::read_to_string(path).with_context(|| format!("reading policy {}", path.display()))?;
    Ok(Policy::parse(&path.display().to_string(), &text)?)
}

/// Seconds since the epoch: the CLI is the edge that reads the clock for the core.
fn now() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs() as i64)
}

/// Milliseconds since the epoch (event times).
fn now_ms() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64)
}
