//! Types that cross the wire between devices and the governance server.
//!
//! Serde only: no HTTP, no storage. The server (`warden-server`) and the device side
//! (agent, client, tray) both speak in these types, so they cannot drift apart.

mod event;

pub use event::{LaunchEvent, Outcome};
