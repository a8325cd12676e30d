//! Warden's policy core: what a process launch *is* and what should happen to it.
//!
//! This crate is pure: it does no I/O, reads no clock and has no async. Callers pass
//! in the facts of a launch and the current time, and get back a [`Verdict`]. Every
//! other Warden crate (the OS monitor, the server, the client, the tray app) builds on
//! these types; this crate depends on none of them.
//!
//! The decision order (precedence) is documented once, on [`evaluate`].

mod catalog;
mod content;
mod controls;
mod evaluate;
mod exception;
mod facts;
mod launch;
mod masking;
mod mcp;
mod network;
mod origin;
mod path;
mod policy;
mod privacy;
mod risky;
mod source;
mod step_around;

pub use catalog::{
    Catalog, CatalogError, CommandRule, CompileProblem, EMBEDDED_CATALOG, ExecutableRule, Hosting, Identification,
    Tool, ToolKind, ToolSpec,
};
pub use content::{ContentFacts, ContentMatch, ContentMatcher, is_native_executable};
pub use controls::{Applied, MANAGED_PATHS, ManagedFile, Ownership, Vendor, render as render_controls};
pub use evaluate::{Rule, ToolStatus, Verdict, evaluate, tool_status};
pub use exception::{
    Exception, GuardrailError, Guardrails, MAX_GUARDRAIL_MCP_SERVERS, MAX_SCOPE_BYTES, ScopeError, check_guardrails,
    check_scope,
};
pub use facts::{Accounts, AncestorFacts, ENV_MARKERS, ProcessFacts, SettingsFile};
pub use launch::{
    ScriptArgument, interpreter_script, is_dynamic_loader, is_python_interpreter, preloaded_files, program_file,
};
pub use masking::{Masking, MaskingRule};
pub use mcp::{
    FoundMcpServer, McpConfigFormat, McpPolicy, McpServer, McpServerDefinition, McpServerMatch, parse_mcp_config,
};
pub use network::{
    Cidr, ConnectDecision, ConnectFacts, ConnectRule, Destination, DestinationRule, DestinationSource, Destinations,
    GovernedRange, HostPattern, NameRule, NetworkPolicy, decide_connect, url_host,
};
pub use origin::Origin;
pub use path::{normalize_path, path_has_prefix};
pub use policy::{
    Action, Assistant, BinaryRule, Controls, DEFAULT_EXCEPTION_GRACE, EMBEDDED_POLICY, Enforcement, ExceptionLimits,
    FlagRule, Mode, Policy, PolicyError, Privacy, ToolRule, TrayPolicy,
};
pub use privacy::{REDACTED, shareable_argv};
pub use risky::{ArgParser, MAX_SETTINGS_FILE_BYTES, OptionGrammar, Repeat, RiskySpec, SettingSpec};
pub use source::{SourceError, SourceLocation};
pub use step_around::ToolControls;

/// Seconds since the Unix epoch (UTC). The core never reads a clock: callers pass "now".
pub type Timestamp = i64;
