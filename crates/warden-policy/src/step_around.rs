//! Launches that step around the vendor controls Warden writes (`controls.rs`): a system
//! settings file redirected by environment (`QWEN_CODE_SYSTEM_SETTINGS_PATH=…`), an API base
//! URL pointing outside the sanctioned destinations (`OPENAI_BASE_URL`, `--openai-base-url`,
//! `ANTHROPIC_BASE_URL`, `codex -c openai_base_url=…`), the sanctioned client signed in to its
//! vendor's public cloud (`qwen --auth-type qwen-oauth`), an `--mcp-config` naming a server the
//! policy forbids. Read with the tool's own option grammar (`risky.rs`), so an option's value
//! or a prompt is never taken for one of these.
//!
//! The catalog says per tool what can be stepped around (`[tool.controls]`); the policy says
//! what is sanctioned (`[assistant] api_url`/`gateway_url`, `[mcp]`).

use crate::catalog::Tool;
use crate::facts::{ENV_MARKERS, ProcessFacts};
use crate::mcp::McpServer;
use crate::origin::Origin;
use crate::policy::Policy;
use crate::risky::{Reading, ToolOptions};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// `[tool.controls]` in the catalog: how a launch of the tool can step around its controls.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ToolControls {
    /// Settings (`[[tool.setting]]` names) whose value is the base URL of the model API the
    /// tool sends code to.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub endpoint: Vec<String>,
    /// Setting name → values that sign the tool in to its vendor's public cloud; a step around
    /// only for the sanctioned assistant's client (which must talk to the company's endpoint).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub public_auth: BTreeMap<String, Vec<String>>,
    /// Environment variables that make the tool read another file instead of the system
    /// settings Warden writes.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub settings_env: Vec<String>,
}

impl ToolControls {
    pub(crate) fn check(&self, options: &ToolOptions) -> Result<(), String> {
        for name in self.endpoint.iter().chain(self.public_auth.keys()) {
            if !options.has_setting(name) {
                return Err(format!("[tool.controls] names an unknown setting {name:?}"));
            }
        }
        if let Some(name) = self.settings_env.iter().find(|n| !ENV_MARKERS.contains(&n.as_str())) {
            return Err(format!("environment variable {name:?} is not collected from processes (see ENV_MARKERS)"));
        }
        Ok(())
    }
}

/// A launch that steps around a control: how it was written and what it steps around.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct StepAround {
    /// As written: `OPENAI_BASE_URL=https://api.openai.com/v1`, `--auth-type qwen-oauth`.
    pub spelling: String,
    /// What was stepped around, for the reason: `the sanctioned destinations (…)`.
    pub control: String,
}

/// The first control this launch of `tool` steps around, if any.
pub(crate) fn step_around(
    policy: &Policy,
    tool: &Tool,
    options: &ToolOptions,
    reading: &Reading,
    facts: &ProcessFacts,
) -> Option<StepAround> {
    let controls = tool.controls.as_ref();
    let writes_files = !policy.controls.as_ref().is_some_and(|c| c.off);
    if writes_files && let Some(controls) = controls {
        for name in &controls.settings_env {
            if let Some(value) = facts.env.get(name).filter(|v| !v.is_empty()) {
                return Some(StepAround {
                    spelling: format!("{name}={value}"),
                    control: format!("the system settings Warden manages for {}", tool.name),
                });
            }
        }
    }
    let assistant = policy.is_assistant(&tool.id);
    let destinations = policy.sanctioned_destinations();
    if let Some(controls) = controls
        && !destinations.is_empty()
    {
        for setting in &controls.endpoint {
            for set in options.setting_values(reading, setting) {
                let stepped = match &set.value {
                    None => true, // a settings file that could not be read: unknown, fail closed
                    Some(url) => !policy.is_sanctioned_url(url) && (assistant || !is_vendor_host(tool, url)),
                };
                if stepped {
                    return Some(StepAround {
                        spelling: set.spelling,
                        control: format!(
                            "the sanctioned destinations ({}): its API base URL points elsewhere",
                            destinations.join(", ")
                        ),
                    });
                }
            }
        }
        if assistant {
            for (setting, public) in &controls.public_auth {
                let found = options.setting_values(reading, setting).into_iter().find(|set| {
                    set.value.as_ref().is_none_or(|v| public.iter().any(|p| p.eq_ignore_ascii_case(v.trim())))
                });
                if let Some(set) = found {
                    return Some(StepAround {
                        spelling: set.spelling,
                        control: format!(
                            "the company endpoint the sanctioned assistant must use ({}): this sign-in sends code to the vendor's public cloud",
                            destinations.join(", ")
                        ),
                    });
                }
            }
        }
    }
    if let Some(mcp) = policy.mcp.as_ref().filter(|m| !m.is_empty()) {
        for config in &reading.mcp_configs {
            let Some(document) = &config.document else {
                return Some(StepAround {
                    spelling: config.spelling.clone(),
                    control: "the policy's MCP server list: the MCP configuration could not be read".into(),
                });
            };
            for server in McpServer::all_in(document) {
                if let Err(reason) = mcp.permits(&server) {
                    return Some(StepAround {
                        spelling: config.spelling.clone(),
                        control: format!("the policy's MCP server list: {reason}"),
                    });
                }
            }
        }
    }
    None
}

/// Whether `url` is one of the tool's own vendor hosts (`hosts` in the catalog): pointing a tool
/// at its own vendor steps around nothing Warden set.
fn is_vendor_host(tool: &Tool, url: &str) -> bool {
    let Some(origin) = Origin::of(url) else { return false };
    tool.hosts.iter().any(|host| {
        let host = host.to_ascii_lowercase();
        match host.rsplit_once(':') {
            Some((name, port)) => origin.host == name && port.parse() == Ok(origin.port),
            None => origin.host == host,
        }
    })
}
