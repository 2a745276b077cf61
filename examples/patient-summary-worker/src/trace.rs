//! Continues the caller's trace (W3C Trace Context): a request's `traceparent` header names
//! the bridge's span; this job is a child span of it, and its replies carry a `traceparent`
//! naming the job's span, so a tracing backend shows the job under the bridge's request.

use lapin::types::{AMQPValue, FieldTable, LongString};

/// The job's place in the caller's trace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Trace {
    /// 32 hex digits.
    pub trace_id: String,
    /// This job's span: 16 hex digits.
    pub span_id: String,
    /// The trace flags, 2 hex digits.
    flags: String,
}

impl Trace {
    /// The job's span when the request carries a well-formed version-00 `traceparent`.
    pub fn from_headers(headers: Option<&FieldTable>) -> Option<Self> {
        let value = match headers?.inner().get("traceparent")? {
            AMQPValue::LongString(s) => std::str::from_utf8(s.as_bytes()).ok()?,
            AMQPValue::ShortString(s) => s.as_str(),
            _ => return None,
        };
        let mut parts = value.split('-');
        let (version, trace_id, parent, flags) =
            (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
        let hex = |s: &str, n: usize| {
            s.len() == n
                && s.bytes()
                    .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        };
        let ok = version == "00"
            && parts.next().is_none()
            && hex(trace_id, 32)
            && hex(parent, 16)
            && hex(flags, 2)
            && trace_id.bytes().any(|b| b != b'0');
        ok.then(|| Self {
            trace_id: trace_id.to_owned(),
            span_id: format!("{:016x}", rand::random::<u64>().max(1)),
            flags: flags.to_owned(),
        })
    }

    /// Adds `traceparent` (the job's span) to a reply's headers.
    pub fn stamp(&self, headers: &mut FieldTable) {
        let value = format!("00-{}-{}-{}", self.trace_id, self.span_id, self.flags);
        headers.insert(
            "traceparent".into(),
            AMQPValue::LongString(LongString::from(value)),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_child_of_the_bridges_span() {
        let mut h = FieldTable::default();
        let bridge = "00-4bf92f3577b34da6a3ce929d0e0e4736-0102030405060708-01";
        h.insert(
            "traceparent".into(),
            AMQPValue::LongString(LongString::from(bridge)),
        );
        let t = Trace::from_headers(Some(&h)).unwrap();
        assert_eq!(t.trace_id, "4bf92f3577b34da6a3ce929d0e0e4736");
        assert_ne!(t.span_id, "0102030405060708");
        let mut reply = FieldTable::default();
        t.stamp(&mut reply);
        let Some(AMQPValue::LongString(s)) = reply.inner().get("traceparent") else {
            panic!("stamped");
        };
        let s = std::str::from_utf8(s.as_bytes()).unwrap();
        assert!(s.starts_with("00-4bf92f3577b34da6a3ce929d0e0e4736-") && s.ends_with("-01"));
        assert_eq!(Trace::from_headers(None), None);
        let mut bad = FieldTable::default();
        bad.insert(
            "traceparent".into(),
            AMQPValue::LongString("00-x-y-01".into()),
        );
        assert_eq!(Trace::from_headers(Some(&bad)), None);
    }
}
