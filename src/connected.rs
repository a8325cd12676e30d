//! The CLI's access to the developer's personal state (no system service): the state
//! directory, the enrolled device and a runtime for one command's HTTP calls. The agent and the
//! sync loop run in `warden_service::Runtime` (src/watch.rs).

use anyhow::{Context, Result};
use std::path::Path;
use std::sync::Arc;
use warden_client::{Device, StateDir};
use warden_store::Store;

/// The state directory the device and the agent share: `--state-dir`, else the default.
pub fn state_dir(explicit: Option<&Path>) -> StateDir {
    match explicit {
        Some(dir) => StateDir::new(dir),
        None => StateDir::from_env(),
    }
}

/// A runtime for one command's HTTP calls.
pub fn runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread().enable_all().build().context("starting the async runtime")
}

/// Opens the enrolled device (token from the keyring) and its outbox.
pub fn open_device(state: &StateDir) -> Result<Device> {
    let store =
        Arc::new(Store::open(state.events_db()).with_context(|| format!("opening {}", state.events_db().display()))?);
    Ok(Device::open(state.clone(), store)?)
}
