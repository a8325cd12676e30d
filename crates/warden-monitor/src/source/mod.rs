//! Exec event sources: how Warden learns that a program started.
//!
//! One trait, several implementations, picked at start-up ([`open`]):
//! - `proc-connector` (Linux): the kernel's netlink process connector, exec events only;
//!   event-driven, works unprivileged on current kernels.
//! - `poll` (everywhere): a `sysinfo` poller, the fallback on macOS, Windows, and Linux
//!   kernels that refuse the connector. It misses short runs and sees launches late.
//!
//! The privileged pre-exec gate (fanotify) is not a source: it decides *before* the exec
//! and runs beside the connector, which still covers interpreter launches (see `gate`).

#[cfg(target_os = "linux")]
mod connector;
mod poll;

#[cfg(target_os = "linux")]
pub use connector::{ProcConnector, dropped_notices};
pub use poll::Poller;

use std::time::Duration;
use warden_policy::ProcessFacts;

/// One program start, as a source saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExecNotice {
    /// The process (thread-group) id that executed a new program.
    pub pid: u32,
    /// When the kernel ran the exec, in CLOCK_MONOTONIC nanoseconds, if the source knows.
    pub kernel_ns: Option<u64>,
    /// Facts the source already gathered (the poller has them); `None` means "read them
    /// from the OS now".
    pub facts: Option<ProcessFacts>,
}

/// A source failed.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    #[error("{source_name} is not available: {message}")]
    Unavailable { source_name: &'static str, message: String },
    #[error("{source_name} failed: {error}")]
    Io { source_name: &'static str, error: std::io::Error },
}

/// A stream of exec notices.
pub trait EventSource: Send {
    /// Stable name, recorded in every event (`proc-connector`, `poll`).
    fn name(&self) -> &'static str;
    /// Waits at most `timeout` for program starts and appends them to `out`.
    fn wait(&mut self, timeout: Duration, out: &mut Vec<ExecNotice>) -> Result<(), SourceError>;
    /// Exec notices the source knows it lost (kernel buffer overruns).
    fn lost(&self) -> u64 {
        0
    }
}

/// Which source to use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SourceChoice {
    /// The best available: the pre-exec gate plus the connector as root, the connector
    /// as a user, the poller where neither works.
    Auto,
    /// The netlink process connector (Linux).
    ProcConnector,
    /// The fanotify pre-exec gate (Linux, root), with the connector beside it.
    Fanotify,
    /// Polling with `sysinfo` every `interval`.
    Poll { interval: Duration },
}

impl SourceChoice {
    /// Parses the CLI spelling: `auto`, `proc-connector`, `fanotify`, `poll` or `poll:500ms`.
    pub fn parse(text: &str) -> Option<SourceChoice> {
        match text {
            "auto" => Some(SourceChoice::Auto),
            "proc-connector" => Some(SourceChoice::ProcConnector),
            "fanotify" => Some(SourceChoice::Fanotify),
            "poll" => Some(SourceChoice::Poll { interval: Duration::from_millis(500) }),
            _ => {
                let millis = text.strip_prefix("poll:")?.strip_suffix("ms")?.parse().ok()?;
                Some(SourceChoice::Poll { interval: Duration::from_millis(millis) })
            }
        }
    }
}

/// Default poll period of the fallback: 2 Hz.
pub const DEFAULT_POLL_INTERVAL: Duration = Duration::from_millis(500);

/// Opens the connector, checking that it really delivers events (some kernels accept
/// the subscription but send nothing to unprivileged listeners).
#[cfg(target_os = "linux")]
pub fn open_connector() -> Result<ProcConnector, SourceError> {
    let mut connector = ProcConnector::open()?;
    connector.self_test()?;
    Ok(connector)
}

/// Opens the best event source for `choice` (the gate is handled by the caller).
/// Returns the source and, for `Auto`, why the fallback was taken.
pub fn open(choice: &SourceChoice) -> Result<(Box<dyn EventSource>, Option<String>), SourceError> {
    match choice {
        SourceChoice::Poll { interval } => Ok((Box::new(Poller::new(*interval)?), None)),
        #[cfg(target_os = "linux")]
        SourceChoice::ProcConnector | SourceChoice::Fanotify => Ok((Box::new(open_connector()?), None)),
        #[cfg(target_os = "linux")]
        SourceChoice::Auto => match open_connector() {
            Ok(connector) => Ok((Box::new(connector), None)),
            Err(error) => Ok((Box::new(Poller::new(DEFAULT_POLL_INTERVAL)?), Some(error.to_string()))),
        },
        #[cfg(not(target_os = "linux"))]
        SourceChoice::ProcConnector | SourceChoice::Fanotify => Err(SourceError::Unavailable {
            source_name: "proc-connector",
            message: "the process connector and fanotify exist only on Linux".into(),
        }),
        #[cfg(not(target_os = "linux"))]
        SourceChoice::Auto => {
            Ok((Box::new(Poller::new(DEFAULT_POLL_INTERVAL)?), Some("no event-driven source on this OS yet".into())))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_cli_spellings() {
        assert_eq!(SourceChoice::parse("auto"), Some(SourceChoice::Auto));
        assert_eq!(SourceChoice::parse("proc-connector"), Some(SourceChoice::ProcConnector));
        assert_eq!(
            SourceChoice::parse("poll:100ms"),
            Some(SourceChoice::Poll { interval: Duration::from_millis(100) })
        );
        assert_eq!(SourceChoice::parse("poll"), Some(SourceChoice::Poll { interval: DEFAULT_POLL_INTERVAL }));
        assert_eq!(SourceChoice::parse("ebpf"), None);
    }
}
