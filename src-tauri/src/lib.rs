//! Warden's tray app (Tauri v2 shell): the tray icon and menu, pop-ups with actions, and
//! the catalog, activity, exception and about windows.
//!
//! The tray decides and enforces nothing: it is a client of the Warden runtime's local API
//! (`runtime_link`): the system service (`wardend`) when its socket answers, else a personal
//! runtime it starts in-process and reaches through the same socket API. One state (`shell`),
//! filled by one task from the runtime's live stream (`inbox`); the windows' commands
//! (`commands`) read it and call the runtime.

mod assistant;
mod autostart;
mod commands;
mod desktop_notification;
mod expiry_notice;
mod inbox;
mod missed_blocks;
mod my_requests;
mod popup;
mod repository;
mod request_form;
mod runtime_link;
mod shell;
mod tray;
mod tray_status;
#[cfg(test)]
mod ui_fixtures;
mod views;
mod windows;

use anyhow::{Context, Result, bail};
use popup::{PopupChoice, PopupKind, popup_for};
use runtime_link::{LinkOptions, Reloaded};
use shell::{Shell, ShellConfig, lock, now_ms};
use std::path::PathBuf;
use tauri::{AppHandle, Manager, RunEvent};
use views::{View, WindowContext};
use warden_api::LaunchEvent;

pub use popup::action_key;

/// Command-line options (also what a second launch forwards to the first).
#[derive(Debug, Clone, Default)]
struct Options {
    open: Option<String>,
    socket: Option<PathBuf>,
    policy: Option<PathBuf>,
    state_dir: Option<PathBuf>,
    popup_window_ms: Option<i64>,
    install_autostart: bool,
}

fn parse_options(args: &[String]) -> Result<Options> {
    let mut options = Options::default();
    let mut args = args.iter();
    while let Some(arg) = args.next() {
        let mut value = |name: &str| args.next().cloned().with_context(|| format!("{name} needs a value"));
        match arg.as_str() {
            "--open" => options.open = Some(value("--open")?),
            "--socket" => options.socket = Some(value("--socket")?.into()),
            "--policy" => options.policy = Some(value("--policy")?.into()),
            "--state-dir" => options.state_dir = Some(value("--state-dir")?.into()),
            "--popup-window-ms" => {
                options.popup_window_ms = Some(value("--popup-window-ms")?.parse().context("--popup-window-ms")?)
            }
            "--install-autostart" => options.install_autostart = true,
            "-h" | "--help" => {
                println!(
                    "warden-tray [--open catalog|activity|exceptions|about] [--socket PATH] [--policy FILE]\n            [--state-dir DIR] [--popup-window-ms N] [--install-autostart]\n\n\
                     With the Warden service answering (--socket, $WARDEN_SOCKET, else /run/warden/warden.sock)\n\
                     the tray is its client; otherwise it runs Warden itself as you (personal mode, not\n\
                     tamper-proof; --policy and --state-dir apply to it)."
                );
                std::process::exit(0);
            }
            other => bail!("unknown option {other:?} (see --help)"),
        }
    }
    if let Some(view) = &options.open
        && View::parse(view).is_none()
    {
        bail!("--open {view:?}: expected catalog, activity, exceptions or about");
    }
    Ok(options)
}

/// Starts the tray app; returns when it quits.
pub fn run() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let options = parse_options(&args)?;
    let exe = std::env::current_exe().context("locating this program")?;
    if options.install_autostart {
        match autostart::install(&exe).context("writing the autostart entry")? {
            Some(path) => println!("warden-tray: starts at login ({})", path.display()),
            None => println!("warden-tray: autostart entry already present"),
        }
        return Ok(());
    }
    let link_options = LinkOptions {
        socket: options.socket.clone(),
        state_dir: options.state_dir.clone().or_else(|| std::env::var_os("WARDEN_STATE_DIR").map(PathBuf::from)),
        policy_file: options.policy.clone().or_else(|| std::env::var_os("WARDEN_POLICY").map(PathBuf::from)),
    };
    let config =
        ShellConfig { popup_window_ms: options.popup_window_ms.unwrap_or(30_000), open_at_start: options.open.clone() };
    if autostart::is_installed_binary(&exe)
        && let Err(e) = autostart::install(&exe)
    {
        eprintln!("warden-tray: could not register autostart: {e}");
    }

    let app = tauri::Builder::default()
        // First, so a second launch is caught before anything else starts.
        .plugin(tauri_plugin_single_instance::init(|app, argv, _cwd| second_launch(app, &argv)))
        .plugin(tauri_plugin_opener::init())
        .invoke_handler(tauri::generate_handler![
            commands::catalog_view,
            commands::recent_activity,
            commands::masking_line,
            commands::window_context,
            commands::exception_form,
            commands::exception_requests,
            commands::submit_exception,
            commands::open_view,
            commands::open_assistant,
            commands::about,
        ])
        .setup(move |app| {
            // Here, after the single-instance check: a second launch must never start a
            // second personal runtime, even for a moment.
            let link = tauri::async_runtime::block_on(runtime_link::connect(&link_options))?;
            eprintln!("warden-tray: {} ({})", tray_status::protection(link.hello.mode), link.client.socket().display());
            let shell = Shell::new(config, link);
            tauri::async_runtime::block_on(inbox::prime(&shell));
            app.manage(shell);
            let started = std::time::Instant::now();
            tray::create(app.handle())?;
            eprintln!("warden-tray: tray icon ready after {} ms", started.elapsed().as_millis());
            inbox::start(app.handle().clone());
            let open_at_start = app.state::<Shell>().config.open_at_start.clone();
            if let Some(view) = open_at_start.as_deref().and_then(View::parse) {
                windows::open(app.handle(), view, WindowContext::default())?;
            }
            Ok(())
        })
        .build(tauri::generate_context!())
        .context("building the tray app")?;
    app.run(|app, event| match event {
        // Closing the last window leaves the tray running; only Quit (or a signal) ends it.
        RunEvent::ExitRequested { code: None, api, .. } => api.prevent_exit(),
        // A personal runtime stops with its tray; the service never does.
        RunEvent::Exit => {
            if let Some(shell) = app.try_state::<Shell>() {
                tauri::async_runtime::block_on(shell.link.close());
            }
        }
        _ => {}
    });
    Ok(())
}

/// A second `warden-tray` start: focus the first instance's window (or open the one asked for).
fn second_launch(app: &AppHandle, argv: &[String]) {
    let view = parse_options(argv.get(1..).unwrap_or_default())
        .ok()
        .and_then(|o| o.open)
        .and_then(|v| View::parse(&v))
        .unwrap_or(View::Catalog);
    if let Err(e) = windows::open(app, view, WindowContext::default()) {
        eprintln!("warden-tray: second launch: {e}");
    }
}

/// Shows the pop-up for a launch event if it needs one and the gate lets it through.
pub(crate) fn show_popup(app: &AppHandle, event: &LaunchEvent) {
    let shell = app.state::<Shell>();
    let policy = shell.policy();
    let name = views::tool_name(&policy.catalog, event.tool.as_deref());
    // An exception with conditions: the developer hears the terms once per launch tree (the
    // gate's window, keyed by the exception).
    if let Some((title, body)) = expiry_notice::conditions_notice(event, &shell.granted()) {
        let key = format!("conditions:{}", event.exception.as_deref().unwrap_or_default());
        if lock(&shell.gate).admit(&key, PopupKind::Warn, now_ms()) {
            inbox::inform(&title, &body);
        }
        return;
    }
    let Some(popup) = popup_for(event, &name, &policy.policy) else { return };
    let tool = event.tool.clone().unwrap_or_default();
    if !lock(&shell.gate).admit(&tool, popup.kind, now_ms()) {
        return;
    }
    let handle = app.clone();
    let chosen = event.clone();
    match desktop_notification::show(&popup, move |choice| on_choice(&handle, &chosen, choice)) {
        Ok(id) => eprintln!(
            "warden-tray: pop-up {id} shown for event {} ({}) {} ms after launch",
            event.id,
            tool,
            now_ms() - event.at_ms
        ),
        Err(e) => eprintln!("warden-tray: cannot show a pop-up for {}: {e}", event.id),
    }
}

/// The pop-up for a connection the service refused or warned about: one per process and
/// destination (`popup::connect_gate_key`); its actions are those of a launch's pop-up.
pub(crate) fn show_connect_popup(app: &AppHandle, event: &warden_api::ConnectEvent) {
    let shell = app.state::<Shell>();
    let policy = shell.policy();
    let name = event.tool.as_deref().map(|id| views::tool_name(&policy.catalog, Some(id)));
    let Some(shown) = popup::connect_popup_for(event, name.as_deref(), &policy.policy) else { return };
    if !lock(&shell.gate).admit(&popup::connect_gate_key(event), shown.kind, now_ms()) {
        return;
    }
    // The actions act on a launch-shaped record of this connection (its tool and id).
    let record = LaunchEvent {
        id: event.id.clone(),
        at_ms: event.at_ms,
        pid: event.pid,
        user: event.user.clone(),
        exe: event.exe.clone().unwrap_or_default(),
        argv: Vec::new(),
        cwd: None,
        tool: event.tool.clone(),
        action: event.action,
        outcome: warden_api::Outcome::Denied,
        rule: event.rule.clone(),
        reason: event.reason.clone(),
        exception: None,
        policy_version: None,
        source: "network".into(),
    };
    let handle = app.clone();
    match desktop_notification::show(&shown, move |choice| on_choice(&handle, &record, choice)) {
        Ok(id) => eprintln!("warden-tray: pop-up {id} shown for connection {} to {}", event.id, event.host),
        Err(e) => eprintln!("warden-tray: cannot show a pop-up for {}: {e}", event.id),
    }
}

/// What a pop-up's action does.
fn on_choice(app: &AppHandle, event: &LaunchEvent, choice: PopupChoice) {
    eprintln!("warden-tray: pop-up action {choice:?} for event {}", event.id);
    let result = match choice {
        PopupChoice::OpenAssistant => {
            app.state::<Shell>().open_assistant(app, event.cwd.as_deref()).map_err(|e| e.to_string())
        }
        PopupChoice::RequestException => {
            let repository = event
                .cwd
                .as_deref()
                .and_then(|cwd| repository::repository_root(std::path::Path::new(cwd)))
                .map(|p| p.display().to_string());
            let context = WindowContext { event: Some(event.id.clone()), tool: event.tool.clone(), repository };
            windows::open(app, View::Exceptions, context).map_err(|e| e.to_string())
        }
        PopupChoice::Details => {
            let context = WindowContext { event: Some(event.id.clone()), ..WindowContext::default() };
            windows::open(app, View::Activity, context).map_err(|e| e.to_string())
        }
        PopupChoice::SilenceForADay => {
            if let Some(tool) = &event.tool {
                lock(&app.state::<Shell>().gate).silence(tool, now_ms());
            }
            Ok(())
        }
    };
    if let Err(problem) = result {
        eprintln!("warden-tray: pop-up action {choice:?}: {problem}");
    }
}

/// *Sync now*: a personal runtime's policy file is read again; otherwise the runtime is asked
/// to sync with its server. Says what happened in a pop-up.
pub(crate) fn sync_now(app: &AppHandle) {
    let app = app.clone();
    tauri::async_runtime::spawn(async move {
        let shell = app.state::<Shell>();
        let (title, body) = match shell.link.reload_policy_file() {
            Some(Reloaded::Loaded { name, file }) => ("Policy up to date".to_owned(), format!("{name} ({file})")),
            Some(Reloaded::Kept { problem }) => {
                ("Policy not updated".to_owned(), format!("The last good policy stays in force. {problem}"))
            }
            None => match shell.link.client.sync_now().await {
                Ok(_) => ("Syncing".to_owned(), "Warden is syncing policy and exceptions with its server.".to_owned()),
                Err(error) if error.code() == Some(warden_api::local::LocalErrorCode::NotEnrolled) => (
                    "Nothing to sync".to_owned(),
                    "This device is not enrolled with a governance server; Warden enforces the policy it has."
                        .to_owned(),
                ),
                Err(error) => ("Sync failed".to_owned(), error.to_string()),
            },
        };
        if let Err(e) = tray::refresh(&app) {
            eprintln!("warden-tray: tray refresh: {e}");
        }
        if let Err(e) = desktop_notification::inform(&title, &body) {
            eprintln!("warden-tray: {title}: {body} ({e})");
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_parse_and_reject_nonsense() {
        let args = |s: &str| s.split_whitespace().map(str::to_owned).collect::<Vec<_>>();
        let options =
            parse_options(&args("--open activity --socket /s.sock --policy /p.toml --popup-window-ms 0")).unwrap();
        assert_eq!(options.open.as_deref(), Some("activity"));
        assert_eq!(options.socket, Some(PathBuf::from("/s.sock")));
        assert_eq!(options.policy, Some(PathBuf::from("/p.toml")));
        assert_eq!(options.popup_window_ms, Some(0));
        for bad in ["--open nowhere", "--policy", "--socket", "--frobnicate", "--popup-window-ms soon"] {
            assert!(parse_options(&args(bad)).is_err(), "{bad}");
        }
    }
}
