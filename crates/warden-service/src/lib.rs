//! Warden's runtime, built once, and the system service around it.
//!
//! - `runtime`: the agent plus the server sync (`Runtime`), for the system service
//!   (`wardend`, root) and for the personal mode (`warden watch`, the tray without a service).
//! - `local_api`: the local API on a Unix socket (`warden_api::local`), callers known by
//!   `SO_PEERCRED`.
//! - `gateway`: the masking gateway the service hosts for every local user (tokens per uid).
//! - `network`: the network layer (eBPF hooks from `warden-net`, kept in step with the rules;
//!   `connect` events attributed to their process).
//! - `config`: `/etc/warden/warden.toml`.
//! - `controls`: the vendors' managed files, written from the policy and kept (root only).
//!
//! The binary `wardend` (src/bin/wardend.rs) is the service: root, foreground, made for systemd.

pub mod config;
pub mod controls;
pub mod gateway;
pub mod local_api;
pub mod network;
pub mod runtime;

pub use config::{ConfigError, ServiceConfig};
pub use gateway::GatewaySettings;
pub use runtime::{Runtime, RuntimeConfig, RuntimeError};
pub use warden_api::local::RuntimeMode;

/// Resolves on SIGINT or SIGTERM (how systemd, a terminal and test harnesses stop the runtime).
pub async fn terminated() {
    termination_signal().await;
}

/// Resolves on SIGINT or SIGTERM with the signal's name (`SIGTERM`), for the stop event.
pub async fn termination_signal() -> &'static str {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut interrupt), Ok(mut terminate)) = (signal(SignalKind::interrupt()), signal(SignalKind::terminate()))
    else {
        return std::future::pending().await;
    };
    tokio::select! {
        _ = interrupt.recv() => "SIGINT",
        _ = terminate.recv() => "SIGTERM",
    }
}
