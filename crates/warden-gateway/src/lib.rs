//! Warden's masking gateway: a local reverse proxy for the OpenAI-compatible API (`/v1/chat/completions`,
//! `/v1/responses`, `/v1/models`) and the Anthropic Messages API (`/v1/messages`,
//! `/v1/messages/count_tokens`) that masks secrets and company identifiers before a prompt leaves the
//! machine, and restores them where the answer comes back to the developer.
//!
//! - [`rules`]: the rule set (`rules.toml` + the policy's `[masking]`) compiled into a [`Detector`].
//! - [`vault`]: stable placeholders (`⟦SECRET_7⟧`) per conversation, forgotten when idle.
//! - [`mask`]: masking a request body. [`restore`]: restoring a response. [`stream`]: the same for
//!   server-sent events, across chunk boundaries.
//! - [`proxy`]: the HTTP side (axum in, reqwest out), the client token, fail-closed errors.
//!
//! This is the only crate that knows the masking rules and the proxy.

pub mod mask;
pub mod proxy;
pub mod restore;
pub mod rules;
pub mod stream;
pub mod token;
pub mod vault;

pub use mask::{MaskCounts, mask_request, mask_text};
pub use proxy::{DEFAULT_MAX_BODY_BYTES, GatewayConfig, ReportSink, RequestReport, app, serve};
pub use restore::{RestoreReport, TextKind, restore_str, restore_value};
pub use rules::{Detector, Finding, RulesError};
pub use stream::{Api, SseRestorer};
pub use token::ClientTokens;
pub use vault::{Vault, Vaults};
