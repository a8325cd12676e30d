//! Real AI tools for the content-identity and vendor-controls tests, cached under
//! `~/.cache/warden-tools/real/<package>-<version>`: two published versions each of Claude
//! Code's Bun-compiled binary and of Codex's Rust binary, and Gemini CLI's bundle (run with the
//! cached Node 22), from the npm registry (during setup, never inside a test). Idempotent: a
//! pinned version already there is not fetched again.

use crate::gateway_tools::npm_install;
use anyhow::{Context, Result};
use std::path::PathBuf;

/// `(npm package, version)`: the tests find each under `real/<dir>-<version>`.
pub const REAL_TOOLS: &[(&str, &str, &str)] = &[
    ("claude", "@anthropic-ai/claude-code-linux-x64", "2.1.300"),
    ("claude", "@anthropic-ai/claude-code-linux-x64", "2.1.332"),
    ("codex", "@openai/codex", "0.169.0-linux-x64"),
    ("codex", "@openai/codex", "0.171.0-linux-x64"),
    ("gemini", "@google/gemini-cli", "0.61.0"),
];

pub fn setup() -> Result<()> {
    let home = std::env::var_os("HOME").context("HOME is not set")?;
    let cache = PathBuf::from(home).join(".cache/warden-tools/real");
    for (dir, package, version) in REAL_TOOLS {
        npm_install(cache.join(format!("{dir}-{version}")), package, version)?;
    }
    Ok(())
}
