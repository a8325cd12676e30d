//! The system service's configuration, `/etc/warden/warden.toml` (root-owned; the package
//! installs a commented default). Every key is optional: a missing file means the embedded
//! defaults (the embedded policy, no server) when it is the default path, and an error when the
//! path was given explicitly.
//!
//! ```toml
//! state_dir = "/var/lib/warden"        # root-only (0700): policy cache, events, device token
//! socket = "/run/warden/warden.sock"   # the local API
//! gate = ["/", "/home"]                # the filesystems holding these paths; default: every local one; [] = no gate
//!
//! [server]                             # enroll at start when not enrolled yet
//! url = "https://warden.corp.example"
//! enroll_secret_file = "/etc/warden/enroll-secret"
//! owner = "dev@corp.example"           # the device's owner account
//! local_users = ["dev"]                # local logins bound to it
//!
//! [policy]
//! file = "/etc/warden/policy.toml"     # used only while the device is not enrolled
//!
//! [gateway]                            # the masking gateway for every local user (on by default)
//! listen = "127.0.0.1:8788"            # loopback only
//! upstream = "https://assistant.internal.example/v1"   # default: the policy's assistant.api_url
//! upstream_key_file = "/etc/warden/gateway-upstream-key"  # root-only: the model API's key
//! [network]                            # the eBPF connect/sendmsg hooks
//! enabled = true                       # false: launches only
//! cgroup = "/sys/fs/cgroup/unified"    # default: the cgroup v2 mount (every process of the machine)
//! resolve_seconds = 30                 # how often governed names are resolved again
//! ```

use serde::Deserialize;
use std::path::{Path, PathBuf};

/// Where the package puts the configuration.
pub const DEFAULT_CONFIG: &str = "/etc/warden/warden.toml";
/// The service's state directory unless configured.
pub const DEFAULT_STATE_DIR: &str = "/var/lib/warden";

/// A parsed configuration.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServiceConfig {
    pub state_dir: Option<PathBuf>,
    pub socket: Option<PathBuf>,
    /// Mount points whose filesystems the pre-exec gate covers; `None`: the agent's default.
    pub gate: Option<Vec<PathBuf>>,
    #[serde(default)]
    pub server: Option<ServerSection>,
    #[serde(default)]
    pub policy: Option<PolicySection>,
    #[serde(default)]
    pub gateway: Option<GatewaySection>,
    #[serde(default)]
    pub network: Option<NetworkSection>,
}

/// `[gateway]`: the masking gateway the service hosts. Without the section it is hosted on
/// [`crate::gateway::DEFAULT_GATEWAY_LISTEN`] whenever the policy names an upstream.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GatewaySection {
    /// `false`: no gateway.
    #[serde(default = "yes")]
    pub enabled: bool,
    /// A loopback address and port (`127.0.0.1:8788`; port 0: any free port).
    pub listen: Option<std::net::SocketAddr>,
    /// The model API's base URL (`…/v1`); default: the policy's `assistant.api_url`.
    pub upstream: Option<String>,
    /// A root-only file holding the model API's key (never the key itself in this world-readable file).
    pub upstream_key_file: Option<PathBuf>,
}

/// `[network]`: the network layer.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NetworkSection {
    #[serde(default = "yes")]
    pub enabled: bool,
    /// The cgroup v2 folder the hooks attach to (default: the cgroup v2 mount).
    pub cgroup: Option<PathBuf>,
    /// How often governed names are resolved again, in seconds (default 30).
    pub resolve_seconds: Option<u64>,
    /// `auto` (default: eBPF, else nftables, else launches only) or `nftables` (skip eBPF, e.g.
    /// where loading BPF programs is not allowed).
    #[serde(default)]
    pub layer: crate::network::LayerChoice,
}

fn yes() -> bool {
    true
}

/// `[server]`: enrollment at start.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerSection {
    pub url: String,
    /// A root-only file holding the enroll secret (never the secret itself in this file, which
    /// is world-readable).
    pub enroll_secret_file: PathBuf,
    pub owner: String,
    #[serde(default)]
    pub local_users: Vec<String>,
}

/// `[policy]`: a local policy for a device that is not enrolled.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicySection {
    pub file: PathBuf,
}

/// Reading the configuration failed.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read the configuration {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("{path}:{line}:{column}: {message}")]
    Parse { path: PathBuf, line: usize, column: usize, message: String },
    #[error("{path}: [gateway] {message}")]
    Gateway { path: PathBuf, message: String },
}

impl ServiceConfig {
    /// Reads `path`; a missing file is the default configuration only when `explicit` is false.
    pub fn load(path: &Path, explicit: bool) -> Result<ServiceConfig, ConfigError> {
        match std::fs::read_to_string(path) {
            Ok(text) => ServiceConfig::parse(path, &text),
            Err(error) if error.kind() == std::io::ErrorKind::NotFound && !explicit => Ok(ServiceConfig::default()),
            Err(source) => Err(ConfigError::Read { path: path.to_path_buf(), source }),
        }
    }

    /// Parses the text of `path`; errors name the line and column.
    pub fn parse(path: &Path, text: &str) -> Result<ServiceConfig, ConfigError> {
        toml::from_str(text).map_err(|error| {
            let (line, column) = error
                .span()
                .map(|span| {
                    let before = &text[..span.start.min(text.len())];
                    let line = before.matches('\n').count() + 1;
                    let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
                    (line, column)
                })
                .unwrap_or((1, 1));
            ConfigError::Parse { path: path.to_path_buf(), line, column, message: error.message().to_owned() }
        })
    }
}

impl ServiceConfig {
    /// How the service hosts the masking gateway: `None` when `[gateway] enabled = false`. The
    /// upstream key is read here, from its root-only file.
    pub fn gateway_settings(&self, path: &Path) -> Result<Option<crate::GatewaySettings>, ConfigError> {
        let error = |message: String| ConfigError::Gateway { path: path.to_path_buf(), message };
        let mut settings = crate::GatewaySettings::default();
        let Some(section) = &self.gateway else { return Ok(Some(settings)) };
        if !section.enabled {
            return Ok(None);
        }
        if let Some(listen) = section.listen {
            if !listen.ip().is_loopback() {
                return Err(error(format!(
                    "listen = {listen}: not a loopback address (the gateway serves this machine's users only)"
                )));
            }
            settings.listen = listen;
        }
        if let Some(upstream) = &section.upstream {
            if !(upstream.starts_with("http://") || upstream.starts_with("https://")) {
                return Err(error(format!("upstream = {upstream:?}: must start with http:// or https://")));
            }
            settings.upstream = Some(upstream.clone());
        }
        if let Some(file) = &section.upstream_key_file {
            use std::os::unix::fs::PermissionsExt;
            let read = |e: std::io::Error| error(format!("upstream_key_file {}: {e}", file.display()));
            let mode = std::fs::metadata(file).map_err(read)?.permissions().mode();
            if mode & 0o077 != 0 {
                return Err(error(format!(
                    "upstream_key_file {} is readable by others (mode {:o}): `chmod 600` it",
                    file.display(),
                    mode & 0o777
                )));
            }
            let key = std::fs::read_to_string(file).map_err(read)?.trim().to_owned();
            settings.upstream_key = Some(key).filter(|k| !k.is_empty());
        }
        Ok(Some(settings))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_documented_example_parses() {
        let text = include_str!("config.rs")
            .lines()
            .skip_while(|l| !l.starts_with("//! ```toml"))
            .skip(1) // the opening fence itself
            .take_while(|l| !l.starts_with("//! ```"))
            .map(|l| l.trim_start_matches("//!").trim_start())
            .collect::<Vec<_>>()
            .join("\n");
        let config = ServiceConfig::parse(Path::new("warden.toml"), &text).unwrap();
        assert_eq!(config.server.unwrap().local_users, vec!["dev".to_owned()]);
        assert_eq!(config.gate.as_ref().unwrap().len(), 2);
        assert_eq!(config.gateway.as_ref().unwrap().upstream.as_deref(), Some("https://assistant.internal.example/v1"));
        let network = config.network.as_ref().unwrap();
        assert!(network.enabled);
        assert_eq!(network.resolve_seconds, Some(30));
    }

    #[test]
    fn gateway_settings_default_on_loopback_and_refuse_what_is_unsafe() {
        use std::os::unix::fs::PermissionsExt;
        let path = Path::new("w.toml");
        let settings = ServiceConfig::default().gateway_settings(path).unwrap().unwrap();
        assert_eq!(settings.listen.to_string(), crate::gateway::DEFAULT_GATEWAY_LISTEN);
        let off = ServiceConfig::parse(path, "[gateway]\nenabled = false\n").unwrap();
        assert!(off.gateway_settings(path).unwrap().is_none());

        let dir = tempfile::tempdir().unwrap();
        let key = dir.path().join("key");
        std::fs::write(&key, "sk-upstream\n").unwrap();
        std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).unwrap();
        let text =
            format!("[gateway]\nlisten = \"127.0.0.1:0\"\nupstream_key_file = {:?}\n", key.display().to_string());
        let settings = ServiceConfig::parse(path, &text).unwrap().gateway_settings(path).unwrap().unwrap();
        assert_eq!(settings.upstream_key.as_deref(), Some("sk-upstream"));
        assert!(!format!("{settings:?}").contains("sk-upstream"), "Debug never prints the key");

        std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).unwrap();
        let bad = [
            (text.clone(), "readable by others"),
            ("[gateway]\nlisten = \"0.0.0.0:8788\"\n".to_owned(), "not a loopback address"),
            ("[gateway]\nupstream = \"ftp://x\"\n".to_owned(), "must start with http"),
            ("[gateway]\nupstream_key_file = \"/nonexistent/key\"\n".to_owned(), "No such file"),
        ];
        for (text, words) in bad {
            let error = ServiceConfig::parse(path, &text).unwrap().gateway_settings(path).unwrap_err().to_string();
            assert!(error.contains(words) && error.contains("[gateway]"), "{text:?}: {error}");
        }
    }

    #[test]
    fn errors_name_line_and_column() {
        let cases = [
            ("socket = 3\n", 1, "invalid type"),
            ("state_dir = \"/x\"\nsecret = \"s\"\n", 2, "unknown field `secret`"),
            ("[server]\nurl = \"http://x\"\nowner = \"a\"\n", 1, "missing field `enroll_secret_file`"),
        ];
        for (text, line, words) in cases {
            let error = ServiceConfig::parse(Path::new("w.toml"), text).unwrap_err();
            let ConfigError::Parse { line: got, message, .. } = &error else { panic!("{error}") };
            assert_eq!(*got, line, "{text:?}: {error}");
            assert!(message.contains(words), "{text:?}: {message}");
        }
    }

    #[test]
    fn a_missing_default_file_is_the_default_but_an_explicit_one_is_an_error() {
        let missing = Path::new("/nonexistent/warden.toml");
        assert_eq!(ServiceConfig::load(missing, false).unwrap(), ServiceConfig::default());
        assert!(matches!(ServiceConfig::load(missing, true), Err(ConfigError::Read { .. })));
    }
}
