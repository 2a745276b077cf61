//! Destination allowlists: exact queue names, `prefix.*` patterns, and `*` for everything;
//! and the gather list, whose entries may also bound the routing key (`exchange/key`).
//! The entry that lets a destination through is its `destination` label in the metrics, so
//! their cardinality is bounded by the configuration, never by what clients send.

use std::sync::Arc;

/// A compiled list of destination patterns.
#[derive(Debug, Clone, Default)]
pub struct Allowlist {
    exact: Vec<Arc<str>>,
    /// `prefix*` patterns, kept whole (they are the metrics' labels).
    prefixes: Vec<Arc<str>>,
    any: Option<Arc<str>>,
}

impl Allowlist {
    /// Compiles patterns; empty entries and surrounding whitespace are ignored.
    pub fn new<S: AsRef<str>>(patterns: &[S]) -> Self {
        let mut list = Self::default();
        for p in patterns.iter().map(|p| p.as_ref().trim()) {
            if p.is_empty() {
                continue;
            }
            if p == "*" {
                list.any = Some(p.into());
            } else if p.ends_with('*') {
                // `reports.*` matches `reports.daily` (and `reports.` itself is not a queue a
                // client can name usefully); the dot stays part of the prefix.
                list.prefixes.push(p.into());
            } else {
                list.exact.push(p.into());
            }
        }
        list
    }

    /// True when `dest` matches a pattern.
    pub fn allows(&self, dest: &str) -> bool {
        self.entry(dest).is_some()
    }

    /// The pattern `dest` matches: an exact name first, then a prefix, then `*`.
    pub fn entry(&self, dest: &str) -> Option<&Arc<str>> {
        self.exact
            .iter()
            .find(|e| ***e == *dest)
            .or_else(|| {
                self.prefixes.iter().find(|p| {
                    let prefix = &p[..p.len() - 1];
                    dest.len() > prefix.len() && dest.starts_with(prefix)
                })
            })
            .or(self.any.as_ref())
    }

    /// True when no pattern is configured.
    pub fn is_empty(&self) -> bool {
        self.any.is_none() && self.exact.is_empty() && self.prefixes.is_empty()
    }
}

/// The exchanges clients may gather from: `exchange` (any routing key) or `exchange/key`,
/// where each side is a pattern as in [`Allowlist`] (`reports.*/daily.*`, `presence/*`).
#[derive(Debug, Clone, Default)]
pub struct ExchangeList {
    /// Exchange patterns, routing-key patterns, and the entry as written.
    rules: Vec<(Allowlist, Option<Allowlist>, Arc<str>)>,
}

impl ExchangeList {
    /// Compiles `exchange[/key]` patterns; empty entries are ignored.
    pub fn new<S: AsRef<str>>(patterns: &[S]) -> Self {
        let rules = patterns
            .iter()
            .map(|p| p.as_ref().trim())
            .filter(|p| !p.is_empty())
            .map(|p| match p.split_once('/') {
                Some((exchange, key)) => (
                    Allowlist::new(&[exchange]),
                    Some(Allowlist::new(&[key])),
                    p.into(),
                ),
                None => (Allowlist::new(&[p]), None, p.into()),
            })
            .collect();
        Self { rules }
    }

    /// True when a rule allows `exchange` with routing key `key`.
    pub fn allows(&self, exchange: &str, key: &str) -> bool {
        self.entry(exchange, key).is_some()
    }

    /// The first rule that allows `exchange` with `key`, as written.
    pub fn entry(&self, exchange: &str, key: &str) -> Option<&Arc<str>> {
        self.rules
            .iter()
            .find(|(e, k, _)| e.allows(exchange) && k.as_ref().is_none_or(|k| k.allows(key)))
            .map(|(_, _, entry)| entry)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exchanges_with_and_without_routing_key_patterns() {
        let l = ExchangeList::new(&["presence", "reports.*/daily.*", "audit/eu"]);
        assert!(l.allows("presence", "anything"));
        assert!(l.allows("reports.x", "daily.summary"));
        assert!(!l.allows("reports.x", "monthly.summary"));
        assert!(l.allows("audit", "eu"));
        assert!(!l.allows("audit", "us"));
        assert!(!l.allows("other", ""));
        assert_eq!(
            l.entry("reports.x", "daily.a").map(|e| &**e),
            Some("reports.*/daily.*")
        );
        assert!(!ExchangeList::new::<&str>(&[]).allows("presence", ""));
    }

    #[test]
    fn exact_prefix_and_any() {
        let a = Allowlist::new(&["patient_summary", "reports.*", " "]);
        assert!(a.allows("patient_summary"));
        assert!(!a.allows("patient_summary2"));
        assert!(a.allows("reports.daily"));
        assert!(!a.allows("reports."));
        assert!(!a.allows("reportsX"));
        assert!(!a.allows("other"));
        assert_eq!(a.entry("reports.daily").map(|e| &**e), Some("reports.*"));
        assert_eq!(
            a.entry("patient_summary").map(|e| &**e),
            Some("patient_summary")
        );
        let both = Allowlist::new(&["*", "a.*", "a.b"]);
        assert_eq!(both.entry("a.b").map(|e| &**e), Some("a.b"), "exact first");
        assert_eq!(both.entry("a.c").map(|e| &**e), Some("a.*"));
        assert_eq!(both.entry("z").map(|e| &**e), Some("*"));
        assert!(Allowlist::new(&["*"]).allows("anything"));
        assert!(Allowlist::new::<&str>(&[]).is_empty());
        assert!(!Allowlist::new::<&str>(&[]).allows("x"));
    }
}
