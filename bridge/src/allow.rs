//! Destination allowlists: exact queue names, `prefix.*` patterns, and `*` for everything;
//! and the gather list, whose entries may also bound the routing key (`exchange/key`).

/// A compiled list of destination patterns.
#[derive(Debug, Clone, Default)]
pub struct Allowlist {
    exact: Vec<String>,
    prefixes: Vec<String>,
    any: bool,
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
                list.any = true;
            } else if let Some(prefix) = p.strip_suffix('*') {
                // `reports.*` matches `reports.daily` (and `reports.` itself is not a queue a
                // client can name usefully); the dot stays part of the prefix.
                list.prefixes.push(prefix.to_owned());
            } else {
                list.exact.push(p.to_owned());
            }
        }
        list
    }

    /// True when `dest` matches a pattern.
    pub fn allows(&self, dest: &str) -> bool {
        self.any
            || self.exact.iter().any(|e| e == dest)
            || self
                .prefixes
                .iter()
                .any(|p| dest.len() > p.len() && dest.starts_with(p.as_str()))
    }

    /// True when no pattern is configured.
    pub fn is_empty(&self) -> bool {
        !self.any && self.exact.is_empty() && self.prefixes.is_empty()
    }
}

/// The exchanges clients may gather from: `exchange` (any routing key) or `exchange/key`,
/// where each side is a pattern as in [`Allowlist`] (`reports.*/daily.*`, `presence/*`).
#[derive(Debug, Clone, Default)]
pub struct ExchangeList {
    rules: Vec<(Allowlist, Option<Allowlist>)>,
}

impl ExchangeList {
    /// Compiles `exchange[/key]` patterns; empty entries are ignored.
    pub fn new<S: AsRef<str>>(patterns: &[S]) -> Self {
        let rules = patterns
            .iter()
            .map(|p| p.as_ref().trim())
            .filter(|p| !p.is_empty())
            .map(|p| match p.split_once('/') {
                Some((exchange, key)) => {
                    (Allowlist::new(&[exchange]), Some(Allowlist::new(&[key])))
                }
                None => (Allowlist::new(&[p]), None),
            })
            .collect();
        Self { rules }
    }

    /// True when a rule allows `exchange` with routing key `key`.
    pub fn allows(&self, exchange: &str, key: &str) -> bool {
        self.rules
            .iter()
            .any(|(e, k)| e.allows(exchange) && k.as_ref().is_none_or(|k| k.allows(key)))
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
        assert!(Allowlist::new(&["*"]).allows("anything"));
        assert!(Allowlist::new::<&str>(&[]).is_empty());
        assert!(!Allowlist::new::<&str>(&[]).allows("x"));
    }
}
