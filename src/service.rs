//! The CLI as a client of the system service (`wardend`): when one answers on its socket
//! (`--socket`, `$WARDEN_SOCKET`, else `/run/warden/warden.sock`), `status`, `request`,
//! `requests`, `sync`, `enroll` and `watch` ask it instead of touching any state of their own
//! (its state is root's). Without a service they act on the developer's personal state, as the
//! personal runtime (`warden watch`) does.

use anyhow::{Context, Result, bail};
use std::path::Path;
use std::time::Duration;
use warden_api::local::{Hello, RuntimeMode};
use warden_client::{LocalClient, LocalClientError};

/// A connection to a runtime that answered `hello`.
#[derive(Debug)]
pub struct Connected {
    pub client: LocalClient,
    pub hello: Hello,
    pub runtime: tokio::runtime::Runtime,
}

impl Connected {
    /// Runs one call to completion.
    pub fn call<T>(&self, call: impl std::future::Future<Output = Result<T, LocalClientError>>) -> Result<T> {
        self.runtime.block_on(call).map_err(|e| anyhow::anyhow!("{e}"))
    }
}

/// Connects to the runtime on `socket` (any mode); `None` when nothing answers.
pub fn connect_to(socket: &Path) -> Result<Option<Connected>> {
    let runtime =
        tokio::runtime::Builder::new_current_thread().enable_all().build().context("starting the async runtime")?;
    let client = LocalClient::new(socket).map_err(|e| anyhow::anyhow!("{e}"))?;
    let hello = runtime.block_on(async { tokio::time::timeout(Duration::from_secs(5), client.hello()).await });
    match hello {
        Ok(Ok(hello)) => Ok(Some(Connected { client, hello, runtime })),
        Ok(Err(LocalClientError::Unreachable { .. })) => Ok(None),
        Ok(Err(error)) => Err(anyhow::anyhow!("{error}")),
        Err(_) => bail!("the Warden runtime on {} did not answer within 5 s", socket.display()),
    }
}

/// The system service, when one is configured and answers. A socket named explicitly
/// (`--socket`, `$WARDEN_SOCKET`) that does not answer is an error, never a silent fallback.
pub fn system_service(explicit: Option<&Path>) -> Result<Option<Connected>> {
    let Some((socket, named)) = warden_client::service_socket(explicit) else { return Ok(None) };
    match connect_to(&socket)? {
        Some(connected) => Ok(Some(connected)),
        None if named => bail!("no Warden runtime answers on {} (is wardend running?)", socket.display()),
        None => Ok(None),
    }
}

/// Words for the runtime's mode.
pub fn mode_words(mode: RuntimeMode) -> &'static str {
    match mode {
        RuntimeMode::Service => "the Warden service (wardend, root): you cannot switch it off",
        RuntimeMode::Personal => "a personal runtime run by its user: not tamper-proof",
    }
}
