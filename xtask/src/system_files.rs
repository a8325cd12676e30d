//! The guard that no test writes the machine's own vendor controls: every test that runs `wardend`
//! must give it a scratch `--root` (or `--no-controls`), because a file left in `/etc/qwen-code` or
//! `/etc/codex` silently changes how the real tools behave in every later test (and for the person
//! using the machine).

use anyhow::{Result, bail};
use std::path::PathBuf;
use warden_policy::MANAGED_PATHS;

/// The content (or absence) of every path `wardend` may write, taken before the tests run.
pub struct Snapshot(Vec<(PathBuf, Option<Vec<u8>>)>);

impl Snapshot {
    pub fn take() -> Snapshot {
        Snapshot(MANAGED_PATHS.iter().map(|(_, path, _)| (PathBuf::from(path), std::fs::read(path).ok())).collect())
    }

    /// Fails naming each path a test changed, after putting it back as it was (so one careless
    /// test does not break the next run too).
    pub fn verify_and_restore(&self) -> Result<()> {
        let mut changed = Vec::new();
        for (path, before) in &self.0 {
            let now = std::fs::read(path).ok();
            if &now == before {
                continue;
            }
            changed.push(path.display().to_string());
            let restored = match before {
                Some(content) => std::fs::write(path, content),
                None => std::fs::remove_file(path),
            };
            if let Err(error) = restored {
                eprintln!("xtask: could not restore {}: {error}", path.display());
            }
        }
        if !changed.is_empty() {
            bail!(
                "a test wrote the machine's own vendor controls (restored now): {}; every `wardend` a test \
                 starts needs a scratch `--root DIR` or `--no-controls`",
                changed.join(", ")
            );
        }
        Ok(())
    }
}
