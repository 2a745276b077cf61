//! Destination allowlists: exact queue names, `prefix.*` patterns, and `*` for everything.

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

#[cfg(test)]
mod tests {
    use super::*;

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
