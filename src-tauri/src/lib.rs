//! Warden's tray app (Tauri v2 shell): the tray icon and menu, pop-ups with actions, and
//! the catalog, activity, exception and about windows.
//!
//! The shell decides nothing about launches itself: the embedded agent (`agent_link`)
//! evaluates and enforces with the core crates and hands each launch event here, which
//! turns it into an icon state, a pop-up and a row in the activity window.

mod agent_link;
mod assistant;
mod autostart;
mod commands;
mod desktop_notification;
mod exception_queue;
mod expiry_notice;
mod my_requests;
mod popup;
mod repository;
mod request_form;
mod server_link;
mod shell;
mod tray;
mod tray_status;
#[cfg(test)]
mod ui_fixtures;
mod views;
mod windows;

use anyhow::{Context, Result, bail};
use popup::{PopupChoice, popup_for};
use shell::{PolicyInForce, Shell, ShellConfig, lock, now_ms};
use std::path::PathBuf;
use tauri::{AppHandle, Emitter, Manager, RunEvent};
use warden_api::LaunchEvent;
use windows::{View, WindowContext};

pub use popup::action_key;

/// Command-line options (also what a second launch forwards to the first).
#[derive(Debug, Clone, Default)]
struct Options {
    open: Option<String>,
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
            "--policy" => options.policy = Some(value("--policy")?.into()),
            "--state-dir" => options.state_dir = Some(value("--state-dir")?.into()),
            "--popup-window-ms" => {
                options.popup_window_ms = Some(value("--popup-window-ms")?.parse().context("--popup-window-ms")?)
            }
            "--install-autostart" => options.install_autostart = true,
            "-h" | "--help" => {
                println!(
                    "warden-tray [--open catalog|activity|exceptions|about] [--policy FILE] [--state-dir DIR]\n            [--popup-window-ms N] [--install-autostart]"
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

fn default_state_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("XDG_STATE_HOME").map(PathBuf::from).filter(|p| p.is_absolute()) {
        return dir.join("warden");
    }
    std::env::var_os("HOME").map_or_else(|| PathBuf::from(".warden"), |h| PathBuf::from(h).join(".local/state/warden"))
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
    let state_dir = options
        .state_dir
        .clone()
        .or_else(|| std::env::var_os("WARDEN_STATE_DIR").map(PathBuf::from))
        .unwrap_or_else(default_state_dir);
    std::fs::create_dir_all(&state_dir).with_context(|| format!("creating {}", state_dir.display()))?;
    let policy_file = options.policy.clone().or_else(|| std::env::var_os("WARDEN_POLICY").map(PathBuf::from));
    let policy = match &policy_file {
        Some(file) => PolicyInForce::load(file, None),
        None => PolicyInForce::embedded(),
    };
    if let tray_status::PolicyFreshness::OutOfDate { problem } = &policy.freshness {
        eprintln!("warden-tray: policy not loaded, using the embedded default: {problem}");
    }
    let queue = exception_queue::ExceptionQueue::open(&state_dir).context("opening the exception request queue")?;
    let config = ShellConfig {
        state_dir,
        policy_file,
        popup_window_ms: options.popup_window_ms.unwrap_or(30_000),
        open_at_start: options.open.clone(),
    };
    if autostart::is_installed_binary(&exe)
        && let Err(e) = autostart::install(&exe)
    {
        eprintln!("warden-tray: could not register autostart: {e}");
    }

    let app = tauri::Builder::default()
        // First, so a second launch is caught before anything else starts.
        .plugin(tauri_plugin_single_instance::init(|app, argv, _cwd| second_launch(app, &argv)))
        .plugin(tauri_plugin_opener::init())
        .manage(Shell::new(config, policy, queue))
        .invoke_handler(tauri::generate_handler![
            commands::catalog_view,
            commands::recent_activity,
            commands::window_context,
            commands::exception_form,
            commands::exception_requests,
            commands::submit_exception,
            commands::open_view,
            commands::open_assistant,
            commands::about,
        ])
        .setup(|app| {
            let started = std::time::Instant::now();
            tray::create(app.handle())?;
            eprintln!("warden-tray: tray icon ready after {} ms", started.elapsed().as_millis());
            agent_link::start(app.handle().clone());
            let open_at_start = app.state::<Shell>().config.open_at_start.clone();
            if let Some(view) = open_at_start.as_deref().and_then(View::parse) {
                windows::open(app.handle(), view, WindowContext::default())?;
            }
            Ok(())
        })
        .build(tauri::generate_context!())
        .context("building the tray app")?;
    app.run(|_app, event| {
        // Closing the last window leaves the tray running; only Quit (or a signal) ends it.
        if let RunEvent::ExitRequested { code: None, api, .. } = event {
            api.prevent_exit();
        }
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

/// A launch event from the agent: record it, update the tray, tell open windows, and
/// show a pop-up if the gate lets one through.
pub(crate) fn on_launch(app: &AppHandle, event: LaunchEvent) {
    let shell = app.state::<Shell>();
    if !shell.record(event.clone()) {
        return;
    }
    if let Err(e) = tray::refresh(app) {
        eprintln!("warden-tray: tray refresh: {e}");
    }
    let _ = app.emit(commands::ACTIVITY_EVENT, &event.id);
    let policy = shell.policy();
    let name = views::tool_name(&policy.catalog, event.tool.as_deref());
    let Some(popup) = popup_for(&event, &name, &policy.policy) else { return };
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

/// What a pop-up's action does.
fn on_choice(app: &AppHandle, event: &LaunchEvent, choice: PopupChoice) {
    eprintln!("warden-tray: pop-up action {choice:?} for event {}", event.id);
    let result = match choice {
        PopupChoice::OpenAssistant => {
            let policy = app.state::<Shell>().policy();
            assistant::open(app, policy.policy.assistant.as_ref(), event.cwd.as_deref()).map_err(|e| e.to_string())
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

/// Sync now: re-reads the policy (from its file until the server client exists) and
/// says what happened.
pub(crate) fn sync_now(app: &AppHandle) {
    // Enrolled: the server sync loop does the work (src/server_link.rs).
    if let Some(server) = server_link::sync_now(app) {
        if let Err(e) = desktop_notification::inform("Syncing", &format!("Syncing policy and exceptions with {server}"))
        {
            eprintln!("warden-tray: syncing with {server} ({e})");
        }
        return;
    }
    let shell = app.state::<Shell>();
    let (title, body) = match &shell.config.policy_file {
        Some(file) => {
            let reloaded = PolicyInForce::load(file, Some(&shell.policy()));
            let words = match &reloaded.freshness {
                tray_status::PolicyFreshness::Current => {
                    ("Policy up to date".to_owned(), format!("{} ({})", reloaded.policy.name, reloaded.source))
                }
                tray_status::PolicyFreshness::OutOfDate { problem } => {
                    ("Policy not updated".to_owned(), format!("The last good policy stays in force. {problem}"))
                }
            };
            agent_link::policy_changed(app, &reloaded);
            shell.set_policy(reloaded);
            words
        }
        None => (
            "Nothing to sync".to_owned(),
            "No governance server is configured; Warden uses its embedded policy.".to_owned(),
        ),
    };
    if let Err(e) = tray::refresh(app) {
        eprintln!("warden-tray: tray refresh: {e}");
    }
    if let Err(e) = desktop_notification::inform(&title, &body) {
        eprintln!("warden-tray: {title}: {body} ({e})");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_parse_and_reject_nonsense() {
        let args = |s: &str| s.split_whitespace().map(str::to_owned).collect::<Vec<_>>();
        let options = parse_options(&args("--open activity --policy /p.toml --popup-window-ms 0")).unwrap();
        assert_eq!(options.open.as_deref(), Some("activity"));
        assert_eq!(options.policy, Some(PathBuf::from("/p.toml")));
        assert_eq!(options.popup_window_ms, Some(0));
        for bad in ["--open nowhere", "--policy", "--frobnicate", "--popup-window-ms soon"] {
            assert!(parse_options(&args(bad)).is_err(), "{bad}");
        }
    }
}
