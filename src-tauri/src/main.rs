//! `warden-tray`: starts Warden's tray app.

// No console window on Windows release builds.
#![cfg_attr(not(debug_assertions), windows_subsystem = "windows")]

fn main() -> anyhow::Result<()> {
    warden_tray::run()
}
