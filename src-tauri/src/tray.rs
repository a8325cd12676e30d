//! The tray icon and its menu. The icon's look and the first menu line say the state
//! (on Linux the tray host may not show tooltips, so the words are in the menu too); the
//! second line says what protects the machine (the service, or the personal mode).

use crate::shell::{Shell, now_ms, today_start_ms};
use crate::tray_status::{count_since, protection};
use crate::views::{View, WindowContext};
use std::sync::Mutex;
use tauri::image::Image;
use tauri::menu::{Menu, MenuEvent, MenuItem, PredefinedMenuItem};
use tauri::tray::{TrayIcon, TrayIconBuilder};
use tauri::{AppHandle, Manager};
use warden_api::local::RuntimeMode;

const TRAY_ID: &str = "warden";

/// Menu item ids.
mod item {
    pub const STATUS: &str = "status";
    pub const PROTECTION: &str = "protection";
    pub const CATALOG: &str = "catalog";
    pub const ACTIVITY: &str = "activity";
    pub const REQUEST: &str = "request-exception";
    pub const ASSISTANT: &str = "open-assistant";
    pub const SYNC: &str = "sync-now";
    pub const ABOUT: &str = "about";
    pub const QUIT: &str = "quit";
}

/// The menu items whose text changes.
pub struct TrayHandles {
    tray: TrayIcon,
    status: MenuItem<tauri::Wry>,
    activity: MenuItem<tauri::Wry>,
    shown: Mutex<Option<crate::tray_status::TrayStatus>>,
}

impl std::fmt::Debug for TrayHandles {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TrayHandles").field("shown", &self.shown).finish_non_exhaustive()
    }
}

fn activity_text(count: usize) -> String {
    format!("Recent activity ({count} today)")
}

/// Creates the tray icon. Menu entries follow the policy (assistant name, Quit).
pub fn create(app: &AppHandle) -> tauri::Result<()> {
    let shell = app.state::<Shell>();
    let policy = shell.policy();
    let look = shell.look(now_ms());
    let today = count_since(shell.events().iter(), today_start_ms());
    let status = MenuItem::with_id(app, item::STATUS, &look.words, false, None::<&str>)?;
    let protected_by = MenuItem::with_id(app, item::PROTECTION, protection(shell.mode()), false, None::<&str>)?;
    let activity = MenuItem::with_id(app, item::ACTIVITY, activity_text(today), true, None::<&str>)?;
    let assistant_name = policy.policy.assistant.as_ref().map(|a| a.name.clone());
    let catalog = MenuItem::with_id(app, item::CATALOG, "Approved AI tools…", true, None::<&str>)?;
    let request = MenuItem::with_id(app, item::REQUEST, "Request an exception…", true, None::<&str>)?;
    let assistant = MenuItem::with_id(
        app,
        item::ASSISTANT,
        format!("Open {}", assistant_name.as_deref().unwrap_or("assistant")),
        assistant_name.is_some(),
        None::<&str>,
    )?;
    let sync = MenuItem::with_id(app, item::SYNC, "Sync now", true, None::<&str>)?;
    let about = MenuItem::with_id(app, item::ABOUT, "About Warden", true, None::<&str>)?;
    let separator = PredefinedMenuItem::separator(app)?;
    let separator2 = PredefinedMenuItem::separator(app)?;
    let menu = Menu::with_items(
        app,
        &[&status, &protected_by, &separator, &catalog, &activity, &request, &assistant, &separator2, &sync, &about],
    )?;
    // Quitting a client of the service stops nothing, so it is always offered; quitting the
    // personal mode stops enforcement, so only when the policy allows it.
    match shell.mode() {
        RuntimeMode::Service => menu.append(&MenuItem::with_id(
            app,
            item::QUIT,
            "Quit tray (the service keeps protecting)",
            true,
            None::<&str>,
        )?)?,
        RuntimeMode::Personal if policy.policy.tray.allow_quit => {
            menu.append(&MenuItem::with_id(app, item::QUIT, "Quit Warden", true, None::<&str>)?)?
        }
        RuntimeMode::Personal => {}
    }
    let tray = TrayIconBuilder::with_id(TRAY_ID)
        .icon(Image::from_bytes(look.status.icon_png())?)
        .tooltip(&look.words)
        .menu(&menu)
        .show_menu_on_left_click(true)
        .on_menu_event(on_menu)
        .build(app)?;
    app.manage(TrayHandles { tray, status, activity, shown: Mutex::new(Some(look.status)) });
    Ok(())
}

/// Brings the icon, tooltip and menu texts up to date.
pub fn refresh(app: &AppHandle) -> tauri::Result<()> {
    let shell = app.state::<Shell>();
    let Some(handles) = app.try_state::<TrayHandles>() else { return Ok(()) };
    let look = shell.look(now_ms());
    let today = count_since(shell.events().iter(), today_start_ms());
    let mut shown = crate::shell::lock(&handles.shown);
    if *shown != Some(look.status) {
        handles.tray.set_icon(Some(Image::from_bytes(look.status.icon_png())?))?;
        *shown = Some(look.status);
    }
    handles.tray.set_tooltip(Some(&look.words))?;
    handles.status.set_text(&look.words)?;
    handles.activity.set_text(activity_text(today))?;
    Ok(())
}

fn on_menu(app: &AppHandle, event: MenuEvent) {
    let result = match event.id.as_ref() {
        item::CATALOG => crate::windows::open(app, View::Catalog, WindowContext::default()).map_err(|e| e.to_string()),
        item::ACTIVITY => {
            crate::windows::open(app, View::Activity, WindowContext::default()).map_err(|e| e.to_string())
        }
        item::REQUEST => {
            crate::windows::open(app, View::Exceptions, WindowContext::default()).map_err(|e| e.to_string())
        }
        item::ABOUT => crate::windows::open(app, View::About, WindowContext::default()).map_err(|e| e.to_string()),
        item::ASSISTANT => app.state::<Shell>().open_assistant(app, None).map_err(|e| e.to_string()),
        item::SYNC => {
            crate::sync_now(app);
            Ok(())
        }
        item::QUIT => {
            app.exit(0);
            Ok(())
        }
        _ => Ok(()),
    };
    if let Err(problem) = result {
        eprintln!("warden-tray: menu {:?}: {problem}", event.id.as_ref());
    }
}
