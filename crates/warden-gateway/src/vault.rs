//! Placeholders per conversation: the same value gets the same `⟦SECRET_7⟧` within one conversation,
//! and a conversation's values are forgotten once it has been idle for a while.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Placeholder brackets: U+27E6 and U+27E7 (mathematical white square brackets), which code and prose
/// practically never contain, and which every tokenizer keeps as one or two tokens.
pub const OPEN: char = '⟦';
pub const CLOSE: char = '⟧';

/// The values of one conversation and their placeholders.
#[derive(Debug, Default)]
pub struct Vault {
    by_value: HashMap<String, String>,
    by_placeholder: HashMap<String, String>,
    next: u32,
}

impl Vault {
    /// The placeholder for `value` (`⟦HOST_3⟧` for label `HOST`), made on first sight.
    pub fn placeholder(&mut self, label: &str, value: &str) -> &str {
        if !self.by_value.contains_key(value) {
            self.next += 1;
            let placeholder = format!("{OPEN}{label}_{}{CLOSE}", self.next);
            self.by_placeholder.insert(placeholder.clone(), value.to_owned());
            self.by_value.insert(value.to_owned(), placeholder);
        }
        &self.by_value[value]
    }

    /// The original value of a placeholder (`⟦SECRET_7⟧`), if this conversation made it.
    pub fn value(&self, placeholder: &str) -> Option<&str> {
        self.by_placeholder.get(placeholder).map(String::as_str)
    }

    /// How many values this conversation has masked.
    pub fn len(&self) -> usize {
        self.by_value.len()
    }

    /// Whether nothing was masked yet.
    pub fn is_empty(&self) -> bool {
        self.by_value.is_empty()
    }
}

/// A conversation's vault and when it was last used.
type Entry = (Arc<Mutex<Vault>>, Instant);

/// Every live conversation's vault, keyed by the client's session header or its connection.
#[derive(Debug)]
pub struct Vaults {
    idle: Duration,
    entries: Mutex<HashMap<String, Entry>>,
}

impl Vaults {
    /// Vaults forgotten after `idle` without a request.
    pub fn new(idle: Duration) -> Vaults {
        Vaults { idle, entries: Mutex::new(HashMap::new()) }
    }

    /// The vault of conversation `key` at time `now`, created if new; forgets idle ones on the way.
    pub fn get(&self, key: &str, now: Instant) -> Arc<Mutex<Vault>> {
        let mut entries = self.entries.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        entries.retain(|_, (_, used)| now.saturating_duration_since(*used) < self.idle);
        let entry = entries.entry(key.to_owned()).or_insert_with(|| (Arc::default(), now));
        entry.1 = now;
        Arc::clone(&entry.0)
    }

    /// How many conversations are remembered.
    pub fn len(&self) -> usize {
        self.entries.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).len()
    }

    /// Whether no conversation is remembered.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_value_same_placeholder_and_idle_conversations_are_forgotten() {
        let vaults = Vaults::new(Duration::from_secs(60));
        let start = Instant::now();
        let first = vaults.get("a", start);
        let p1 = first.lock().unwrap().placeholder("SECRET", "hunter2hunter2").to_owned();
        let p2 = first.lock().unwrap().placeholder("SECRET", "hunter2hunter2").to_owned();
        let p3 = first.lock().unwrap().placeholder("HOST", "db.corp.example.com").to_owned();
        assert_eq!((p1.as_str(), p3.as_str()), ("⟦SECRET_1⟧", "⟦HOST_2⟧"));
        assert_eq!(p1, p2);
        assert_eq!(vaults.get("a", start + Duration::from_secs(59)).lock().unwrap().len(), 2);
        // After 60 s idle, conversation "a" is gone: a fresh vault.
        assert!(vaults.get("a", start + Duration::from_secs(119)).lock().unwrap().is_empty());
    }
}
