//! Shows pop-ups through the OS's own notification service (notify-rust; D-Bus
//! `org.freedesktop.Notifications` on Linux) and hands the developer's choice back.

use crate::popup::{Popup, PopupChoice, PopupKind};
use notify_rust::{Notification, Timeout, Urgency};

/// Why a pop-up could not be shown.
#[derive(Debug, thiserror::Error)]
pub enum PopupError {
    #[error("the notification service refused the pop-up: {0}")]
    Notify(#[from] notify_rust::error::Error),
    #[error("cannot start the thread that waits for the pop-up's action: {0}")]
    Thread(std::io::Error),
}

/// Shows a pop-up, then waits on its own thread for the developer's choice. `on_choice`
/// runs on that thread; closing the pop-up without choosing calls nothing.
pub fn show(popup: &Popup, on_choice: impl FnOnce(PopupChoice) + Send + 'static) -> Result<u32, PopupError> {
    let mut notification = Notification::new();
    notification.appname("Warden").summary(&popup.title).body(&popup.body).icon(match popup.kind {
        PopupKind::Block => "dialog-error",
        PopupKind::Warn => "dialog-warning",
    });
    for (key, label) in &popup.actions {
        notification.action(key, label);
    }
    // A block stays until the developer reacts; a warning may time out (the tool runs on).
    match popup.kind {
        PopupKind::Block => notification.urgency(Urgency::Critical).timeout(Timeout::Never),
        PopupKind::Warn => notification.urgency(Urgency::Normal).timeout(Timeout::Milliseconds(20_000)),
    };
    let handle = notification.show()?;
    let id = handle.id();
    std::thread::Builder::new()
        .name(format!("popup-{id}"))
        .spawn(move || {
            handle.wait_for_action(|key| {
                if let Some(choice) = PopupChoice::from_key(key) {
                    on_choice(choice);
                }
            })
        })
        .map_err(PopupError::Thread)?;
    Ok(id)
}

/// A plain informational pop-up without actions (Sync now's result).
pub fn inform(title: &str, body: &str) -> Result<(), notify_rust::error::Error> {
    Notification::new().appname("Warden").summary(title).body(body).timeout(Timeout::Milliseconds(8000)).show()?;
    Ok(())
}
