//! The app's windows: one per view, opened from the tray menu, from pop-up actions and
//! from a second launch, and focused (not duplicated) when already open.

use crate::shell::Shell;
use serde::{Deserialize, Serialize};
use tauri::{AppHandle, Emitter, Manager, WebviewUrl, WebviewWindowBuilder};

/// The windows Warden has. Each window's label is its view name, which is also what
/// its capability file grants commands to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum View {
    Catalog,
    Activity,
    Exceptions,
    About,
}

impl View {
    pub fn label(self) -> &'static str {
        match self {
            View::Catalog => "catalog",
            View::Activity => "activity",
            View::Exceptions => "exceptions",
            View::About => "about",
        }
    }

    pub fn parse(name: &str) -> Option<View> {
        [View::Catalog, View::Activity, View::Exceptions, View::About].into_iter().find(|v| v.label() == name)
    }

    fn title(self) -> &'static str {
        match self {
            View::Catalog => "Warden: approved AI tools",
            View::Activity => "Warden: recent activity",
            View::Exceptions => "Warden: exception requests",
            View::About => "About Warden",
        }
    }

    fn size(self) -> (f64, f64) {
        match self {
            View::About => (520.0, 420.0),
            _ => (960.0, 680.0),
        }
    }
}

/// What a window should show first: the event a pop-up's Details is about, or the
/// tool and repository a Request exception is pre-filled with.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WindowContext {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub repository: Option<String>,
}

/// Event a window receives when it is already open and asked to show something new.
pub const CONTEXT_EVENT: &str = "warden://context";

/// Opens (or brings forward) a view's window with the given context.
pub fn open(app: &AppHandle, view: View, context: WindowContext) -> tauri::Result<()> {
    let shell = app.state::<Shell>();
    shell.set_context(view.label(), context.clone());
    if let Some(window) = app.get_webview_window(view.label()) {
        window.unminimize()?;
        window.show()?;
        window.set_focus()?;
        app.emit_to(view.label(), CONTEXT_EVENT, context)?;
        return Ok(());
    }
    let (width, height) = view.size();
    let page = format!("{}.html", view.label());
    WebviewWindowBuilder::new(app, view.label(), WebviewUrl::App(page.into()))
        .title(view.title())
        .inner_size(width, height)
        .min_inner_size(420.0, 320.0)
        .focused(true)
        .build()?;
    Ok(())
}
