//! `warden policy validate FILE` and `warden policy show`.

use anyhow::Result;
use clap::Subcommand;
use std::path::PathBuf;
use std::process::ExitCode;
use warden_policy::Policy;

#[derive(Debug, Subcommand)]
pub enum PolicyCommand {
    /// Check a policy file; errors name the file, line and column.
    Validate {
        /// The policy file (TOML, or `.json` wire form).
        file: PathBuf,
    },
    /// Print the policy in force (`--policy FILE`, or the embedded default).
    Show {
        /// The JSON wire form instead of the TOML source.
        #[arg(long)]
        json: bool,
    },
}

pub fn run(policy: &Policy, command: PolicyCommand) -> Result<ExitCode> {
    match command {
        PolicyCommand::Validate { file } => {
            let checked = crate::read_policy(&file)?;
            println!(
                "{}: valid policy {:?} ({} mode, {} tool rules, {} risky-flag rules)",
                file.display(),
                checked.name,
                checked.mode,
                checked.tools.len(),
                checked.risky_flags.len()
            );
        }
        PolicyCommand::Show { json } => {
            if json {
                println!("{}", serde_json::to_string_pretty(policy)?);
            } else {
                print!("{}", policy.to_toml());
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
