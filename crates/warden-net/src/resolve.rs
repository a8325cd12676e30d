//! Governed names to addresses, through the system resolver.
//!
//! `getaddrinfo` (via `tokio::net::lookup_host`) is the resolver every other program on the
//! machine uses, so `/etc/hosts`, nsswitch and the configured DNS servers apply exactly as they do
//! for the tools being governed. It reports no TTL, so names are resolved again every
//! [`Resolver::interval`] (30 s by default): an address that changes is followed within that time.
//! A name that fails to resolve keeps its last good addresses (a DNS outage must not open what
//! was closed), and a name never resolved has none: the service starts without any network.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::time::Duration;

/// Addresses per name, the last good answer of each.
pub type Resolved = BTreeMap<String, Vec<IpAddr>>;

/// Resolves a set of names, keeping the last good answer of each.
#[derive(Debug, Clone)]
pub struct Resolver {
    /// How often the service resolves again.
    pub interval: Duration,
    /// How long one name may take.
    pub timeout: Duration,
    last_good: Resolved,
    failures: BTreeMap<String, String>,
}

impl Default for Resolver {
    fn default() -> Self {
        Resolver::new(Duration::from_secs(30))
    }
}

impl Resolver {
    pub fn new(interval: Duration) -> Resolver {
        Resolver { interval, timeout: Duration::from_secs(3), last_good: Resolved::new(), failures: BTreeMap::new() }
    }

    /// Resolves every name (concurrently) and returns the addresses now known for each; `true`
    /// when anything changed since the last call. Names no longer asked for are forgotten.
    pub async fn refresh(&mut self, names: &[String]) -> bool {
        let lookups = names.iter().map(|name| {
            let name = name.clone();
            let timeout = self.timeout;
            tokio::spawn(async move {
                let answer = tokio::time::timeout(timeout, tokio::net::lookup_host((name.clone(), 0))).await;
                let result = match answer {
                    Ok(Ok(addrs)) => {
                        let mut list: Vec<IpAddr> = addrs.map(|a| a.ip().to_canonical()).collect();
                        list.sort();
                        list.dedup();
                        if list.is_empty() { Err("no addresses".to_owned()) } else { Ok(list) }
                    }
                    Ok(Err(e)) => Err(e.to_string()),
                    Err(_) => Err(format!("no answer within {timeout:?}")),
                };
                (name, result)
            })
        });
        let mut changed = false;
        let mut next = Resolved::new();
        let mut failures = BTreeMap::new();
        for lookup in lookups.collect::<Vec<_>>() {
            let Ok((name, result)) = lookup.await else { continue };
            match result {
                Ok(list) => {
                    changed |= self.last_good.get(&name) != Some(&list);
                    next.insert(name, list);
                }
                Err(error) => {
                    if let Some(old) = self.last_good.get(&name) {
                        next.insert(name.clone(), old.clone());
                    }
                    failures.insert(name, error);
                }
            }
        }
        changed |= next.len() != self.last_good.len();
        self.last_good = next;
        self.failures = failures;
        changed
    }

    /// The addresses known now (last good answer of each name).
    pub fn resolved(&self) -> &Resolved {
        &self.last_good
    }

    /// Names whose last lookup failed, with the error (their last good addresses stay in force).
    pub fn failures(&self) -> &BTreeMap<String, String> {
        &self.failures
    }

    /// The names whose addresses hold `address` (for naming a connection the kernel saw; several
    /// names may share one address), in name order.
    pub fn names_of(&self, address: IpAddr) -> Vec<&str> {
        let address = address.to_canonical();
        self.last_good.iter().filter(|(_, list)| list.contains(&address)).map(|(name, _)| name.as_str()).collect()
    }
}
