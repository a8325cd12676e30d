//! Network destinations: which host names and address ranges are governed, what happens to a
//! connection to each, and the one decision `decide_connect`.
//!
//! A destination comes from three places, strongest first: the sanctioned assistant
//! (`[assistant]` `url` and `api_url`: always open, one definition shared with the launch rules
//! and the gateway), the policy's own `[[network.destinations]]` (hosts and CIDRs with an action),
//! and the catalog's `hosts` of each tool (the action of the tool under the policy). The OS edge
//! resolves the names, puts the addresses in the kernel's maps and asks [`decide_connect`] what a
//! connection it saw means; this module reads no resolver and no clock.

use crate::Timestamp;
use crate::catalog::{Catalog, CompileProblem, Hosting};
use crate::exception::Exception;
use crate::policy::{Action, Policy};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

/// `[network]` in the policy: destinations beyond the catalog's, and the proxies in use.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NetworkPolicy {
    /// Extra or overriding destinations; the first entry naming a host or address wins over the
    /// catalog.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub destinations: Vec<DestinationRule>,
    /// HTTP(S) proxies developers' traffic goes through (`http://proxy.corp:3128`). A connection
    /// through a proxy shows only the proxy's address to `connect()`: the service reports this
    /// limit instead of pretending to see the destination.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub proxies: Vec<String>,
}

impl NetworkPolicy {
    /// Whether the policy says nothing about the network (then `[network]` is left out of the wire form).
    pub fn is_empty(&self) -> bool {
        self.destinations.is_empty() && self.proxies.is_empty()
    }
}

/// One `[[network.destinations]]` entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DestinationRule {
    /// Host names; `*.example.com` is every name under `example.com` (matched by name only: a
    /// wildcard cannot be resolved to addresses).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub hosts: Vec<String>,
    /// Address ranges (`203.0.113.0/24`, `2001:db8::/32`, or a single address).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub cidrs: Vec<String>,
    pub action: Action,
    /// The tool whose approved exceptions open these destinations (for its launches only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool: Option<String>,
    /// One sentence shown to the developer.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub message: String,
    /// The hosts' addresses are front ends shared with unrelated names (a CDN, a cloud's API front
    /// end): a connection to one is decided by the name the process resolved, so unrelated traffic
    /// to the same address keeps working. Applies to `hosts` only; `cidrs` are always governed.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub shared: bool,
}

/// A host name pattern: one name, or every name under a domain.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum HostPattern {
    Exact(String),
    /// `*.example.com`, stored as `example.com`: matches `a.example.com`, not `example.com`.
    Under(String),
}

impl HostPattern {
    /// Parses `name` or `*.domain` (lower-cased, a trailing dot dropped).
    pub fn parse(text: &str) -> Result<HostPattern, String> {
        let lower = text.trim_end_matches('.').to_ascii_lowercase();
        let (under, name) = match lower.strip_prefix("*.") {
            Some(rest) => (true, rest),
            None => (false, lower.as_str()),
        };
        let label_ok = |l: &str| {
            !l.is_empty()
                && l.len() <= 63
                && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
                && !l.starts_with('-')
                && !l.ends_with('-')
        };
        if name.is_empty() || name.len() > 253 || !name.split('.').all(label_ok) {
            return Err(format!(
                "host {text:?} must be a DNS name (letters, digits, '-', dots; `*.` only as a prefix)"
            ));
        }
        Ok(if under { HostPattern::Under(name.to_owned()) } else { HostPattern::Exact(name.to_owned()) })
    }

    /// Whether `host` (lower case, no trailing dot) is this name or lies under this domain.
    pub fn matches(&self, host: &str) -> bool {
        match self {
            HostPattern::Exact(name) => host == name,
            HostPattern::Under(domain) => {
                host.len() > domain.len() + 1 && host.ends_with(domain.as_str()) && {
                    let cut = host.len() - domain.len();
                    host.as_bytes()[cut - 1] == b'.'
                }
            }
        }
    }
}

impl fmt::Display for HostPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HostPattern::Exact(name) => f.write_str(name),
            HostPattern::Under(domain) => write!(f, "*.{domain}"),
        }
    }
}

/// An address range: a network address and a prefix length.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Cidr {
    /// The network address (host bits zero); IPv4-mapped IPv6 is stored as IPv4.
    pub address: IpAddr,
    pub prefix: u8,
}

impl Cidr {
    /// One address (/32 or /128).
    pub fn host(address: IpAddr) -> Cidr {
        let address = address.to_canonical();
        Cidr { address, prefix: if address.is_ipv4() { 32 } else { 128 } }
    }

    /// Whether `address` lies in this range (an IPv4-mapped IPv6 address counts as IPv4).
    pub fn contains(&self, address: IpAddr) -> bool {
        match (self.address, address.to_canonical()) {
            (IpAddr::V4(net), IpAddr::V4(a)) => mask(u32::from(a).into(), self.prefix, 32) == u32::from(net).into(),
            (IpAddr::V6(net), IpAddr::V6(a)) => mask(u128::from(a), self.prefix, 128) == u128::from(net),
            _ => false,
        }
    }
}

fn mask(value: u128, prefix: u8, bits: u8) -> u128 {
    if prefix == 0 {
        return 0;
    }
    let keep = u128::MAX << (bits - prefix.min(bits));
    value & (keep & if bits == 32 { u32::MAX as u128 } else { u128::MAX })
}

impl FromStr for Cidr {
    type Err = String;

    fn from_str(text: &str) -> Result<Cidr, String> {
        let bad = || format!("{text:?} is not an address range (write e.g. 203.0.113.0/24 or 2001:db8::/32)");
        let (addr, prefix) = match text.split_once('/') {
            Some((a, p)) => (a, Some(p.parse::<u8>().map_err(|_| bad())?)),
            None => (text, None),
        };
        let address: IpAddr = addr.parse().map_err(|_| bad())?;
        let address = address.to_canonical();
        let bits = if address.is_ipv4() { 32 } else { 128 };
        let prefix = prefix.unwrap_or(bits);
        if prefix > bits {
            return Err(bad());
        }
        let network = match address {
            IpAddr::V4(a) => IpAddr::V4((mask(u32::from(a).into(), prefix, 32) as u32).into()),
            IpAddr::V6(a) => IpAddr::V6(mask(u128::from(a), prefix, 128).into()),
        };
        if network != address {
            return Err(format!("{text:?} has host bits set (the network is {network}/{prefix})"));
        }
        Ok(Cidr { address, prefix })
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.address, self.prefix)
    }
}

/// Where a destination's entry comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum DestinationSource {
    /// The sanctioned assistant's `url` or `api_url`: always open.
    Assistant,
    /// The policy's `[[network.destinations]]`.
    Policy,
    /// A catalog tool's `hosts`.
    Catalog,
}

/// One governed (or sanctioned) destination, compiled.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Destination {
    pub hosts: Vec<HostPattern>,
    pub cidrs: Vec<Cidr>,
    pub action: Action,
    /// Tools whose exceptions open it (every catalog tool listing the host; the policy entry's
    /// `tool`).
    pub tools: Vec<String>,
    pub source: DestinationSource,
    pub message: String,
    /// Its hosts' addresses are shared front ends (see [`DestinationRule::shared`]).
    pub shared: bool,
}

/// One range the kernel holds ([`Destinations::ranges`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GovernedRange {
    pub cidr: Cidr,
    /// `allow` for the sanctioned assistant's addresses (held so that nothing learned later
    /// blocks them), else the strictest action of the destinations meeting here.
    pub action: Action,
    /// The tools whose destinations hold this range.
    pub tools: Vec<String>,
    /// Only shared front ends' names reached this address: decide by the name each process
    /// resolved. A policy CIDR, or one dedicated name among them, makes it `false`.
    pub shared: bool,
}

/// One governed or sanctioned name the kernel matches DNS answers against
/// ([`Destinations::name_rules`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NameRule {
    pub pattern: HostPattern,
    pub action: Action,
    pub shared: bool,
}

/// Every destination of a policy over a catalog, in decision order: sanctioned first, then the
/// policy's entries, then the catalog's hosts (one entry per host).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Destinations {
    pub entries: Vec<Destination>,
}

impl Destinations {
    /// Compiles the destinations of `policy` (checked) over `catalog` (the policy's catalog).
    ///
    /// A catalog host takes the strictest action of the tools listing it, each tool's action
    /// being its policy rule, else the policy's `default_action`; the sanctioned assistant's own
    /// client counts with `default_action`, since its catalog hosts are the vendor's public cloud
    /// (DashScope for Qwen Code), not the company's endpoint. Tools hosted locally are skipped.
    pub fn new(policy: &Policy, catalog: &Catalog) -> Destinations {
        let mut entries = Vec::new();
        if let Some(assistant) = &policy.assistant {
            let hosts: Vec<HostPattern> = [Some(&assistant.url), assistant.api_url.as_ref()]
                .into_iter()
                .flatten()
                .filter_map(|url| url_host(url))
                .filter_map(|host| HostPattern::parse(&host).ok())
                .collect();
            let cidrs = [Some(&assistant.url), assistant.api_url.as_ref()]
                .into_iter()
                .flatten()
                .filter_map(|url| url_host(url))
                .filter_map(|host| host.parse::<IpAddr>().ok().map(Cidr::host))
                .collect();
            entries.push(Destination {
                hosts,
                cidrs,
                action: Action::Allow,
                tools: assistant.tool.iter().cloned().collect(),
                source: DestinationSource::Assistant,
                message: format!("{} is the sanctioned assistant", assistant.name),
                shared: false,
            });
        }
        for rule in &policy.network.destinations {
            entries.push(Destination {
                // `check` parsed every entry already.
                hosts: rule.hosts.iter().filter_map(|h| HostPattern::parse(h).ok()).collect(),
                cidrs: rule.cidrs.iter().filter_map(|c| c.parse().ok()).collect(),
                action: rule.action,
                tools: rule.tool.iter().cloned().collect(),
                source: DestinationSource::Policy,
                message: rule.message.clone(),
                shared: rule.shared,
            });
        }
        // host → (strictest action, tools, message, shared by any tool's word)
        let mut by_host: BTreeMap<HostPattern, (Action, Vec<String>, String, bool)> = BTreeMap::new();
        for tool in catalog.tools() {
            if tool.hosting == Hosting::Local {
                continue;
            }
            let action = if policy.is_assistant(&tool.id) {
                policy.default_action
            } else {
                policy.tool_rule(&tool.id).map_or(policy.default_action, |r| r.action)
            };
            let message = policy
                .tool_rule(&tool.id)
                .map(|r| r.message.clone())
                .filter(|m| !m.is_empty())
                .unwrap_or_else(|| policy.default_message.clone());
            for text in &tool.hosts {
                let Ok(host) = HostPattern::parse(text) else { continue };
                let entry = by_host.entry(host).or_insert((Action::Allow, Vec::new(), String::new(), false));
                if action > entry.0 || entry.1.is_empty() {
                    entry.0 = entry.0.max(action);
                    entry.2 = message.clone();
                }
                entry.1.push(tool.id.clone());
                entry.3 |= tool.shared_hosts.contains(text);
            }
        }
        for (host, (action, tools, message, shared)) in by_host {
            entries.push(Destination {
                hosts: vec![host],
                cidrs: Vec::new(),
                action,
                tools,
                source: DestinationSource::Catalog,
                message,
                shared,
            });
        }
        Destinations { entries }
    }

    /// The exact names the edge must resolve to fill the kernel's maps (sanctioned ones too: their
    /// addresses are never blocked, even when a governed name shares them).
    pub fn names(&self) -> Vec<String> {
        let mut names: Vec<String> = self
            .entries
            .iter()
            .flat_map(|d| &d.hosts)
            .filter_map(|h| match h {
                HostPattern::Exact(name) if name.parse::<IpAddr>().is_err() => Some(name.clone()),
                _ => None,
            })
            .collect();
        names.sort();
        names.dedup();
        names
    }

    /// The first destination naming `host`, in decision order (sanctioned, policy, catalog; the
    /// catalog's exact names before its `*.` patterns), so a policy entry overrides the catalog.
    pub fn by_host(&self, host: &str) -> Option<&Destination> {
        let host = host.trim_end_matches('.').to_ascii_lowercase();
        self.entries.iter().find(|d| d.hosts.iter().any(|h| h.matches(&host)))
    }

    /// The first destination whose CIDRs hold `address` (the most specific range wins).
    pub fn by_address(&self, address: IpAddr) -> Option<&Destination> {
        self.entries
            .iter()
            .filter_map(|d| d.cidrs.iter().filter(|c| c.contains(address)).map(|c| c.prefix).max().map(|p| (d, p)))
            .max_by_key(|(d, prefix)| (d.source == DestinationSource::Assistant, *prefix))
            .map(|(d, _)| d)
    }

    /// What the kernel must hold: every range with its action, from the policy's CIDRs and the
    /// addresses `resolved` gives for each name (a name counts for the destination that decides it,
    /// [`Destinations::by_host`], so names under a `*.` pattern learned from DNS answers count too).
    /// The addresses of `allow` destinations (the sanctioned assistant, the policy's allow entries)
    /// are held as `allow`: they win where an allowed and a governed name share an address (the
    /// kernel sees only the address), and nothing learned later blocks them. Sorted, one entry per range, the strictest action
    /// where two meet; `shared` only where every name reaching the address is a shared front end's
    /// and no range governed for everyone holds it.
    pub fn ranges(&self, resolved: &BTreeMap<String, Vec<IpAddr>>) -> Vec<GovernedRange> {
        // (range, destination, reached by a shared name)
        let mut reached: Vec<(Cidr, &Destination, bool)> = Vec::new();
        for d in &self.entries {
            reached.extend(d.cidrs.iter().map(|c| (*c, d, false)));
        }
        for (name, list) in resolved {
            if let Some(d) = self.by_host(name) {
                reached.extend(list.iter().map(|a| (Cidr::host(*a), d, d.shared)));
            }
        }
        let sanctioned: Vec<Cidr> =
            reached.iter().filter(|(_, d, _)| d.action == Action::Allow).map(|(c, _, _)| *c).collect();
        let mut out: BTreeMap<Cidr, GovernedRange> = BTreeMap::new();
        for cidr in &sanctioned {
            out.insert(*cidr, GovernedRange { cidr: *cidr, action: Action::Allow, tools: Vec::new(), shared: false });
        }
        for (cidr, d, shared) in reached.iter().filter(|(_, d, _)| d.action != Action::Allow) {
            if sanctioned.iter().any(|s| s.prefix <= cidr.prefix && s.contains(cidr.address)) {
                continue;
            }
            let entry = out.entry(*cidr).or_insert(GovernedRange {
                cidr: *cidr,
                action: d.action,
                tools: Vec::new(),
                shared: true,
            });
            entry.action = entry.action.max(d.action);
            entry.shared &= *shared;
            entry.tools.extend(d.tools.iter().cloned());
            entry.tools.sort();
            entry.tools.dedup();
        }
        // A shared address inside a range governed for everyone (a policy CIDR) is governed too.
        let whole: Vec<Cidr> =
            out.values().filter(|r| !r.shared && r.action != Action::Allow).map(|r| r.cidr).collect();
        for range in out.values_mut().filter(|r| r.shared) {
            range.shared = !whole.iter().any(|w| w.prefix < range.cidr.prefix && w.contains(range.cidr.address));
        }
        out.into_values().collect()
    }

    /// The names the kernel matches DNS answers against: every host pattern with the action and
    /// sharing of the first destination naming it (decision order, as [`Destinations::by_host`]);
    /// `allow` names are included so that a sanctioned name under a governed `*.` domain stays
    /// unrelated traffic.
    pub fn name_rules(&self) -> Vec<NameRule> {
        let mut out: Vec<NameRule> = Vec::new();
        for d in &self.entries {
            for pattern in &d.hosts {
                if matches!(pattern, HostPattern::Exact(name) if name.parse::<IpAddr>().is_ok()) {
                    continue;
                }
                if out.iter().any(|r| &r.pattern == pattern) {
                    continue;
                }
                out.push(NameRule { pattern: pattern.clone(), action: d.action, shared: d.shared });
            }
        }
        out
    }
}

/// The host of an `http(s)://` URL (no port, no user info, lower case).
pub fn url_host(url: &str) -> Option<String> {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let authority = rest.split(['/', '?', '#']).next()?;
    let host_port = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    let host =
        if let Some(v6) = host_port.strip_prefix('[') { v6.split(']').next()? } else { host_port.split(':').next()? };
    (!host.is_empty()).then(|| host.to_ascii_lowercase())
}

/// A connection the edge saw, as the decision needs it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ConnectFacts {
    /// The name the destination is known by (the governed name whose addresses hold the address),
    /// if any.
    pub host: Option<String>,
    /// The address connected to.
    pub address: Option<IpAddr>,
    /// The catalog tool of the process's launch (itself or the launch it belongs to), if any.
    pub tool: Option<String>,
    /// The process's person: the account its uid is bound to, else its login name.
    pub person: Option<String>,
    /// The launch's working directory (for scoped exceptions).
    pub cwd: Option<String>,
}

/// Why a connection got its action.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum ConnectRule {
    /// No destination names this host or address.
    Ungoverned,
    /// The sanctioned assistant's endpoint (or a policy destination with `action = "allow"`).
    Sanctioned,
    /// An approved exception of the process's tool opens it.
    Exception { id: String },
    /// The destination's action (from the policy or the catalog).
    Destination,
}

/// What happens to one connection, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConnectDecision {
    pub action: Action,
    pub rule: ConnectRule,
    /// The governed name or range that matched (`api.anthropic.com`, `203.0.113.0/24`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub destination: Option<String>,
    /// The tools the destination belongs to.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tools: Vec<String>,
    /// Monitor mode: report, never block.
    pub monitor: bool,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub message: String,
}

impl ConnectDecision {
    /// Whether the connection must be refused.
    pub fn must_block(&self) -> bool {
        self.action == Action::Block && !self.monitor
    }
}

/// The one network decision. Order:
///
/// 1. The destination is found by name ([`Destinations::by_host`]), else by address (the
///    policy's CIDRs); none → `allow`, [`ConnectRule::Ungoverned`].
/// 2. A destination with action `allow` (the sanctioned assistant, always first) → `allow`,
///    [`ConnectRule::Sanctioned`].
/// 3. An exception that covers the process's own tool for its person (and cwd, when scoped) at
///    `now`, where that tool is one the destination belongs to → `allow`,
///    [`ConnectRule::Exception`]. An exception never opens a destination for another program of
///    the same person: the process must be (part of a launch of) that tool. An exception with
///    the `through_gateway` guardrail opens nothing: its tool talks to the gateway only.
/// 4. Otherwise the destination's action (`warn`: connect and report; `block`: refuse), with
///    `monitor` set in monitor mode (report what enforce would do, refuse nothing).
pub fn decide_connect(
    policy: &Policy,
    destinations: &Destinations,
    exceptions: &[Exception],
    facts: &ConnectFacts,
    now: Timestamp,
) -> ConnectDecision {
    let monitor = policy.mode == crate::Mode::Monitor;
    let found =
        facts.host.as_deref().and_then(|h| destinations.by_host(h).map(|d| (d, h.to_ascii_lowercase()))).or_else(
            || {
                let address = facts.address?;
                let d = destinations.by_address(address)?;
                let range = d.cidrs.iter().filter(|c| c.contains(address)).max_by_key(|c| c.prefix)?;
                Some((d, range.to_string()))
            },
        );
    let Some((destination, name)) = found else {
        return ConnectDecision {
            action: Action::Allow,
            rule: ConnectRule::Ungoverned,
            destination: None,
            tools: Vec::new(),
            monitor,
            message: String::new(),
        };
    };
    let decided = |action, rule| ConnectDecision {
        action,
        rule,
        destination: Some(name.clone()),
        tools: destination.tools.clone(),
        monitor,
        message: destination.message.clone(),
    };
    if destination.action == Action::Allow {
        return decided(Action::Allow, ConnectRule::Sanctioned);
    }
    if let Some(tool) = facts.tool.as_deref().filter(|t| destination.tools.iter().any(|d| d == t))
        && let Some(exception) =
            // An exception that allows the tool only through the company gateway does not open
            // the vendor's own hosts: its traffic goes to the gateway (a sanctioned destination).
            exceptions.iter().find(|e| {
                !e.guardrails.through_gateway && e.covers(tool, facts.person.as_deref(), facts.cwd.as_deref(), now)
            })
    {
        return decided(Action::Allow, ConnectRule::Exception { id: exception.id.clone() });
    }
    decided(destination.action, ConnectRule::Destination)
}

/// Checks `[network]` (called by `Policy::check`): hosts, CIDRs, tools and proxies.
pub(crate) fn check(network: &NetworkPolicy, catalog: &Catalog) -> Result<(), CompileProblem> {
    for rule in &network.destinations {
        if rule.hosts.is_empty() && rule.cidrs.is_empty() {
            return Err(CompileProblem {
                needle: "[[network.destinations]]".into(),
                message: "a network destination needs hosts or cidrs".into(),
            });
        }
        for host in &rule.hosts {
            HostPattern::parse(host).map_err(|message| CompileProblem { needle: host.clone(), message })?;
        }
        for cidr in &rule.cidrs {
            cidr.parse::<Cidr>().map_err(|message| CompileProblem { needle: cidr.clone(), message })?;
        }
        if let Some(tool) = &rule.tool
            && catalog.tool(tool).is_none()
        {
            return Err(CompileProblem {
                needle: tool.clone(),
                message: format!("unknown tool id {tool:?} (see `warden catalog`)"),
            });
        }
    }
    for proxy in &network.proxies {
        if url_host(proxy).is_none() || !(proxy.starts_with("http://") || proxy.starts_with("https://")) {
            return Err(CompileProblem {
                needle: proxy.clone(),
                message: format!("proxy {proxy:?} must be an http:// or https:// URL"),
            });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_patterns_match_names_and_names_under_a_domain() {
        let under = HostPattern::parse("*.githubcopilot.com").unwrap();
        assert!(under.matches("api.githubcopilot.com"));
        assert!(!under.matches("githubcopilot.com"));
        assert!(!under.matches("evilgithubcopilot.com"));
        assert!(HostPattern::parse("Api.Anthropic.COM.").unwrap().matches("api.anthropic.com"));
        for bad in ["", "a..b", "a b", "*.", "a.*.b", "-a.com", "a:443", "http://x"] {
            assert!(HostPattern::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn cidrs_parse_contain_and_fold_mapped_addresses() {
        let net: Cidr = "203.0.113.0/24".parse().unwrap();
        assert!(net.contains("203.0.113.9".parse().unwrap()));
        assert!(net.contains("::ffff:203.0.113.9".parse().unwrap()), "v4-mapped counts as IPv4");
        assert!(!net.contains("203.0.114.1".parse().unwrap()));
        let v6: Cidr = "2001:db8::/32".parse().unwrap();
        assert!(v6.contains("2001:db8:1::1".parse().unwrap()));
        assert!(!v6.contains("2001:db9::1".parse().unwrap()));
        assert_eq!("::ffff:10.0.0.1".parse::<Cidr>().unwrap().to_string(), "10.0.0.1/32");
        assert!("0.0.0.0/0".parse::<Cidr>().unwrap().contains("8.8.8.8".parse().unwrap()));
        assert!("203.0.113.1/24".parse::<Cidr>().unwrap_err().contains("host bits"));
        assert!("203.0.113.0/33".parse::<Cidr>().is_err());
        assert!("nope".parse::<Cidr>().is_err());
    }

    #[test]
    fn url_hosts() {
        assert_eq!(url_host("https://assistant.internal.example/v1").as_deref(), Some("assistant.internal.example"));
        assert_eq!(url_host("http://u:p@Host.example:8443/x?y").as_deref(), Some("host.example"));
        assert_eq!(url_host("http://[::1]:8788/v1").as_deref(), Some("::1"));
    }
}
