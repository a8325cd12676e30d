//! The decision: `evaluate(policy, catalog, exceptions, facts, now) -> Verdict`.

use crate::Timestamp;
use crate::catalog::{Catalog, Tool};
use crate::controls::pinned_endpoint;
use crate::exception::{Exception, Guardrails};
use crate::facts::ProcessFacts;
use crate::mcp::McpServer;
use crate::policy::{Action, Assistant, Mode, Policy};
use crate::risky::{Reading, ToolOptions, tool_arguments_start};
use crate::step_around::step_around;
use serde::{Deserialize, Serialize};
use std::fmt;
use std::time::{Duration, UNIX_EPOCH};

/// The rule that decided a verdict.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum Rule {
    /// The launch is not a tool the catalog knows.
    NotAnAiTool,
    /// The tool is the sanctioned assistant's own client.
    SanctionedAssistant,
    /// The policy's entry for this tool.
    Tool { id: String },
    /// The policy's default action for tools it does not list.
    Default,
    /// An approved exception.
    Exception { id: String },
    /// A risky launch flag raised the action.
    RiskyFlag { flag: String },
    /// The admin's rule for the program file's SHA-256 (`[[binaries]]`).
    Binary { sha256: String },
    /// A local MCP server the policy denies (`[mcp] deny`, by command), started by the AI tool
    /// the verdict names; `server` is the entry as written (`npx -y @evil/mcp`).
    McpServer { server: String },
    /// An exception covers the launch but a condition its approver attached
    /// ([`crate::Guardrails`]) is broken: decided as if there were no exception.
    /// `condition` is `through-gateway`, `no-risky-modes` or `mcp-servers`.
    Guardrail { id: String, condition: String },
}

impl fmt::Display for Rule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Rule::NotAnAiTool => f.write_str("not-an-ai-tool"),
            Rule::SanctionedAssistant => f.write_str("sanctioned-assistant"),
            Rule::Tool { id } => write!(f, "tool:{id}"),
            Rule::Default => f.write_str("default"),
            Rule::Exception { id } => write!(f, "exception:{id}"),
            Rule::RiskyFlag { flag } => write!(f, "risky-flag:{flag}"),
            Rule::Binary { sha256 } => write!(f, "binary:{sha256}"),
            Rule::Guardrail { id, condition } => write!(f, "guardrail:{id}:{condition}"),
            Rule::McpServer { server } => write!(f, "mcp-server:{server}"),
        }
    }
}

/// What should happen to a launch, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Verdict {
    /// Catalog id of the tool, or `None` for anything else.
    pub tool: Option<String>,
    /// The tool's display name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_name: Option<String>,
    pub action: Action,
    pub rule: Rule,
    /// One sentence for the developer.
    pub reason: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub link: Option<String>,
    /// The sanctioned assistant, offered on every warning and block.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub assistant: Option<Assistant>,
    /// The exception that allowed the launch, if one did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exception: Option<String>,
    /// Monitor mode: report `action`, but never enforce it.
    pub monitor: bool,
    /// Why the launch was recognised as the tool.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub evidence: Option<String>,
    /// An ancestor already is the same tool (a relaunch, a wrapper's child, an Electron
    /// helper): this process belongs to that launch rather than starting a new one.
    #[serde(default)]
    pub continues_launch: bool,
}

impl Verdict {
    /// Whether enforcement should stop this launch.
    pub fn must_block(&self) -> bool {
        self.action == Action::Block && !self.monitor
    }
}

/// What the policy says about a tool before looking at any particular launch: the
/// status shown in catalogs (steps 2 and 3 of [`evaluate`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ToolStatus {
    pub action: Action,
    pub rule: Rule,
    pub reason: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub link: Option<String>,
}

/// The policy's standing decision for a tool (no exceptions, no flags).
pub fn tool_status(policy: &Policy, tool: &Tool) -> ToolStatus {
    if policy.is_assistant(&tool.id) {
        let name = policy.assistant.as_ref().map_or(tool.name.as_str(), |a| a.name.as_str());
        let reason = format!("{} is the client of the sanctioned assistant ({name})", tool.name);
        return ToolStatus { action: Action::Allow, rule: Rule::SanctionedAssistant, reason, link: None };
    }
    if let Some(entry) = policy.tool_rule(&tool.id) {
        let reason = if entry.message.is_empty() {
            format!("{} is set to {} by policy", tool.name, entry.action)
        } else {
            entry.message.clone()
        };
        return ToolStatus {
            action: entry.action,
            rule: Rule::Tool { id: tool.id.clone() },
            reason,
            link: entry.link.clone(),
        };
    }
    let reason = if policy.default_message.is_empty() {
        format!("{} is not on the approved list", tool.name)
    } else {
        policy.default_message.clone()
    };
    ToolStatus { action: policy.default_action, rule: Rule::Default, reason, link: policy.default_link.clone() }
}

/// Decides what happens to a launch. This is the one place precedence is defined:
///
/// 0. A program file whose SHA-256 (`ProcessFacts::content`, found by the edge) an admin rule
///    names (`[[binaries]]`) is decided by that rule alone (`binary:SHA256`): `allow` lets it
///    run (a false positive, an in-house program; no risky mode raises it), `block` or `warn`
///    applies whatever the file is called or where it sits, and no exception, assistant status
///    or risky mode changes it. The launch is reported as the rule's tool (else, for an allow
///    rule without one, as no AI tool). Only monitor mode (6) still applies.
/// 1. A launch the catalog does not recognise is **allowed** (`not-an-ai-tool`) — unless it is
///    a local MCP server the policy denies (`[mcp] deny` by command), started by an AI tool (an
///    ancestor the catalog knows): then it gets `[mcp] action` (default block) as a launch of
///    that tool (`mcp-server:COMMAND`). No exception covers it.
/// 2. The sanctioned assistant's own client is **allowed** (`sanctioned-assistant`).
/// 3. Otherwise the policy's entry for the tool decides (`tool:ID`), or, for a tool the
///    policy does not list, its default action (`default`).
/// 4. An exception that covers the person ([`ProcessFacts::person`]), the tool, the working directory and `now`
///    turns a warn or block into **allow** (`exception:ID`) — if the launch meets the guardrails
///    its approver attached (through the company gateway, no risky modes, only these MCP
///    servers). A launch that breaks them keeps its action, with the rule
///    `guardrail:ID:CONDITION` and a reason naming the condition and what broke it.
/// 5. Risky modes (`--dangerously-skip-permissions`, `-y`, `--approval-mode=yolo`,
///    `-s danger-full-access -a never`, …, read with the tool's own option grammar from the
///    catalog) can only *raise* the action, and apply after exceptions and to the assistant
///    too: an exception for a tool is not an exception for running it without its safety
///    checks (`risky-flag:SPELLING`).
///    A launch that steps around the vendor controls Warden writes (a redirected system
///    settings file, an API base URL outside the policy's sanctioned destinations, the
///    sanctioned client signed in to a public cloud, an `--mcp-config` naming a server the
///    policy forbids; see `step_around.rs`) counts as a risky mode of its tool: the strongest
///    `catalog_modes` rule covering the tool applies, and the reason names the control.
/// 6. In monitor mode the verdict is the same but marked `monitor`: nothing is enforced.
///
/// `now` is seconds since the epoch; the core never reads a clock.
pub fn evaluate(
    policy: &Policy,
    catalog: &Catalog,
    exceptions: &[Exception],
    facts: &ProcessFacts,
    now: Timestamp,
) -> Verdict {
    let monitor = policy.mode == Mode::Monitor;
    if let Some(binary) = facts.content.as_ref().and_then(|c| c.sha256.as_deref()).and_then(|h| policy.binary_rule(h)) {
        return binary_verdict(policy, catalog, binary, facts, monitor);
    }
    let Some(found) = catalog.identify(facts) else {
        if let Some(verdict) = mcp_server_verdict(policy, catalog, facts, monitor) {
            return verdict;
        }
        return Verdict {
            tool: None,
            tool_name: None,
            action: Action::Allow,
            rule: Rule::NotAnAiTool,
            reason: "not a recognised AI coding tool".to_owned(),
            link: None,
            assistant: None,
            exception: None,
            monitor,
            evidence: None,
            continues_launch: false,
        };
    };
    let tool = found.tool;
    let ToolStatus { mut action, mut rule, mut reason, mut link } = tool_status(policy, tool);

    let mut launch = LazyReading { options: catalog.tool_options(&tool.id), facts, reading: None };

    let mut exception_id = None;
    // Only a warn or block needs an exception; an allowed launch skips the search.
    let mut broken = None;
    let covering = (action > Action::Allow)
        .then(|| {
            exceptions.iter().filter(|e| e.covers(&tool.id, facts.person(), facts.cwd.as_deref(), now)).find(|e| {
                match broken_guardrail(policy, tool, &mut launch, &e.guardrails) {
                    None => true,
                    Some(found) => {
                        broken.get_or_insert((*e, found));
                        false
                    }
                }
            })
        })
        .flatten();
    if let Some(exception) = covering {
        action = Action::Allow;
        rule = Rule::Exception { id: exception.id.clone() };
        reason = format!("allowed by exception {} until {}", exception.id, rfc3339(exception.expires_at));
        if !exception.guardrails.is_empty() {
            reason = format!("{reason} ({})", exception.guardrails.describe());
        }
        exception_id = Some(exception.id.clone());
    } else if let Some((exception, found)) = broken {
        rule = Rule::Guardrail { id: exception.id.clone(), condition: found.condition.to_owned() };
        reason = format!(
            "exception {} allows {} {}; this launch {}",
            exception.id,
            tool.name,
            exception.guardrails.describe(),
            found.detail
        );
    }

    for flag_rule in &policy.risky_flags {
        if flag_rule.action <= action || !(flag_rule.tools.is_empty() || flag_rule.tools.contains(&tool.id)) {
            continue;
        }
        let Some((options, reading)) = launch.get() else { continue };
        let literal = reading.seen.iter().find(|seen| seen.on && flag_rule.flags.contains(&seen.name));
        let (flag, mode) = match literal {
            Some(seen) => (seen.name.clone(), None),
            None => {
                let wanted = |mode: &str| {
                    flag_rule.catalog_modes
                        || options.mode_spellings(mode).any(|s| flag_rule.flags.iter().any(|f| f == s))
                };
                match options.risky_mode(reading, wanted) {
                    Some(found) => (found.spelling, Some(found.mode)),
                    None => continue,
                }
            }
        };
        action = flag_rule.action;
        exception_id = None;
        reason = match (flag_rule.message.is_empty(), mode) {
            (false, _) => flag_rule.message.clone(),
            (true, Some(mode)) => format!("{} in {mode} mode ({flag}) is not allowed", tool.name),
            (true, None) => format!("{} with {flag} is not allowed", tool.name),
        };
        rule = Rule::RiskyFlag { flag };
        link = link.or_else(|| policy.default_link.clone());
    }

    // Step-arounds of the vendor controls Warden writes count as risky modes of the tool: the
    // strongest `catalog_modes` rule covering it applies, with a reason naming the control.
    let rule_for_modes = policy
        .risky_flags
        .iter()
        .filter(|r| r.catalog_modes && (r.tools.is_empty() || r.tools.contains(&tool.id)))
        .max_by_key(|r| r.action);
    if let Some(flag_rule) = rule_for_modes.filter(|r| r.action > action)
        && let Some((options, reading)) = launch.get()
        && let Some(found) = step_around(policy, tool, options, reading, facts)
    {
        action = flag_rule.action;
        exception_id = None;
        reason = format!("{} steps around {} ({})", tool.name, found.control, found.spelling);
        if !flag_rule.message.is_empty() {
            reason = format!("{reason}. {}", flag_rule.message);
        }
        rule = Rule::RiskyFlag { flag: found.spelling };
        link = link.or_else(|| policy.default_link.clone());
    }

    let continues_launch = facts.ancestors.iter().any(|ancestor| {
        catalog
            .identify_program(&ancestor.exe, &ancestor.argv, ancestor.script.as_deref(), facts.cwd.as_deref())
            .is_some_and(|a| a.tool.id == tool.id)
    });

    Verdict {
        tool: Some(tool.id.clone()),
        tool_name: Some(tool.name.clone()),
        action,
        rule,
        reason,
        link,
        assistant: if action > Action::Allow { policy.assistant.clone() } else { None },
        exception: exception_id,
        monitor,
        evidence: Some(found.evidence),
        continues_launch,
    }
}

/// A launch read with its tool's option grammar at most once, and only when a rule needs it.
struct LazyReading<'a> {
    options: Option<&'a ToolOptions>,
    facts: &'a ProcessFacts,
    reading: Option<Reading>,
}

impl<'a> LazyReading<'a> {
    /// The grammar and the reading; `None` for a tool the catalog gives no grammar.
    fn get(&mut self) -> Option<(&'a ToolOptions, &Reading)> {
        let options = self.options?;
        let facts = self.facts;
        let reading = self
            .reading
            .get_or_insert_with(|| options.read(facts, tool_arguments_start(facts.interpreter_name(), &facts.argv)));
        Some((options, reading))
    }
}

/// A guardrail a launch breaks: which, and how (`its API base URL is …`).
struct BrokenGuardrail {
    condition: &'static str,
    detail: String,
}

/// The first of `guardrails` this launch of `tool` breaks, if any.
fn broken_guardrail(
    policy: &Policy,
    tool: &Tool,
    launch: &mut LazyReading<'_>,
    guardrails: &Guardrails,
) -> Option<BrokenGuardrail> {
    if guardrails.is_empty() {
        return None;
    }
    let broken = |condition, detail: String| Some(BrokenGuardrail { condition, detail });
    let Some((options, reading)) = launch.get() else {
        // Without a grammar nothing about the launch can be shown to meet the conditions.
        return broken("through-gateway", "cannot be checked: the catalog has no option grammar for it".into());
    };
    if guardrails.through_gateway {
        let endpoints = tool.controls.as_ref().map(|c| c.endpoint.as_slice()).unwrap_or_default();
        let values: Vec<_> = endpoints.iter().flat_map(|name| options.setting_values(reading, name)).collect();
        if let Some(off) = values.iter().find(|v| v.value.as_deref().is_none_or(|url| !policy.is_sanctioned_url(url))) {
            return broken("through-gateway", format!("points elsewhere ({})", off.spelling));
        }
        if values.is_empty() && pinned_endpoint(policy, &tool.id).is_none() {
            let how = if endpoints.is_empty() { "cannot be pointed at it".to_owned() } else { endpoints.join(" or ") };
            return broken("through-gateway", format!("does not set its API base URL to it ({how})"));
        }
    }
    if guardrails.no_risky_modes
        && let Some(found) = options.risky_mode(reading, |_| true)
    {
        return broken("no-risky-modes", format!("runs in {} mode ({})", found.mode, found.spelling));
    }
    if let Some(allowed) = &guardrails.mcp_servers {
        for config in &reading.mcp_configs {
            let Some(document) = &config.document else {
                return broken(
                    "mcp-servers",
                    format!("names an MCP configuration that could not be read ({})", config.spelling),
                );
            };
            if let Some(server) = McpServer::all_in(document).into_iter().find(|s| !allowed.contains(&s.name)) {
                return broken("mcp-servers", format!("adds MCP server {:?} ({})", server.name, config.spelling));
            }
        }
    }
    None
}

/// Step 1's exception: a denied MCP server an AI tool started.
fn mcp_server_verdict(policy: &Policy, catalog: &Catalog, facts: &ProcessFacts, monitor: bool) -> Option<Verdict> {
    let mcp = policy.mcp.as_ref()?;
    let entry = mcp.denied_process(&facts.argv)?;
    let client = facts.ancestors.iter().find_map(|ancestor| {
        catalog.identify_program(&ancestor.exe, &ancestor.argv, ancestor.script.as_deref(), facts.cwd.as_deref())
    })?;
    let client = client.tool;
    let server = entry.describe();
    let action = mcp.process_action();
    Some(Verdict {
        tool: Some(client.id.clone()),
        tool_name: Some(client.name.clone()),
        action,
        rule: Rule::McpServer { server: server.clone() },
        reason: format!("{} started MCP server `{server}`, which the policy denies", client.name),
        link: policy.default_link.clone(),
        assistant: policy.assistant.clone(),
        exception: None,
        monitor,
        evidence: Some(format!("command line {:?} started by {}", facts.argv.join(" "), client.name)),
        continues_launch: false,
    })
}

/// Step 0 of [`evaluate`]: the admin's rule for this very file.
fn binary_verdict(
    policy: &Policy,
    catalog: &Catalog,
    binary: &crate::policy::BinaryRule,
    facts: &ProcessFacts,
    monitor: bool,
) -> Verdict {
    let tool = binary.tool.as_deref().and_then(|id| catalog.tool(id));
    let short = &binary.sha256[..12];
    let reason = match (binary.message.is_empty(), tool) {
        (false, _) => binary.message.clone(),
        (true, Some(tool)) => {
            format!("this build of {} is set to {} by policy (SHA-256 {short}…)", tool.name, binary.action)
        }
        (true, None) => format!("this program file is set to {} by policy (SHA-256 {short}…)", binary.action),
    };
    let continues_launch = tool.is_some_and(|tool| {
        facts.ancestors.iter().any(|ancestor| {
            catalog
                .identify_program(&ancestor.exe, &ancestor.argv, ancestor.script.as_deref(), facts.cwd.as_deref())
                .is_some_and(|a| a.tool.id == tool.id)
        })
    });
    Verdict {
        tool: tool.map(|t| t.id.clone()),
        tool_name: tool.map(|t| t.name.clone()),
        action: binary.action,
        rule: Rule::Binary { sha256: binary.sha256.clone() },
        reason,
        link: if binary.action > Action::Allow { policy.default_link.clone() } else { None },
        assistant: if binary.action > Action::Allow { policy.assistant.clone() } else { None },
        exception: None,
        monitor,
        evidence: Some(format!("program file SHA-256 {}", binary.sha256)),
        continues_launch,
    }
}

fn rfc3339(at: Timestamp) -> String {
    // humantime formats years 1970..=9999 only; an exception "until the end of time" reads as 9999.
    const LAST_FORMATTABLE: Timestamp = 253_402_300_799; // 9999-12-31T23:59:59Z
    let seconds = at.clamp(0, LAST_FORMATTABLE) as u64;
    humantime::format_rfc3339_seconds(UNIX_EPOCH + Duration::from_secs(seconds)).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_outside_humantimes_range_are_clamped_not_panicked_on() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(-5), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(i64::MAX), "9999-12-31T23:59:59Z");
    }
}
