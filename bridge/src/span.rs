//! A request's span in its caller's trace (W3C Trace Context), and its record when it ends.
//!
//! A REQUEST with a `traceparent` header starts a span of the bridge (a fresh span id, the
//! caller's span as parent); the worker receives a `traceparent` naming the bridge's span,
//! so its own span is a child of it. When the request ends (reply, error, timeout, cancel,
//! socket gone) the span is recorded as one `debug` event of target `ferry_bridge::span`
//! with its ids, session, correlation id, destination, outcome, request bytes and duration.

use std::time::Duration;

use ferry_protocol::trace::{TRACEPARENT, TraceParent, to_hex};

/// The bridge's span of one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Span {
    /// The caller's context (trace id, its span, flags).
    pub parent: TraceParent,
    /// The bridge's span id.
    pub id: [u8; 8],
}

impl Span {
    /// Starts a span when the (validated) headers carry a `traceparent`.
    pub fn start(headers: &[(&str, &str)]) -> Option<Self> {
        let value = headers.iter().find(|(n, _)| *n == TRACEPARENT)?.1;
        let parent = TraceParent::parse(value)?;
        let mut id: [u8; 8] = rand::random();
        if id == [0; 8] {
            id[7] = 1; // an all-zero span id is invalid
        }
        Some(Self { parent, id })
    }

    /// The `traceparent` the worker gets: the bridge's span as its parent.
    pub fn traceparent(&self) -> String {
        self.parent.child(self.id)
    }

    /// The trace id, 32 hex digits (for log lines).
    pub fn trace_id(&self) -> String {
        self.parent.trace_id_hex()
    }

    /// Records the ended span.
    pub fn record(&self, what: Ended<'_>) {
        tracing::debug!(
            target: "ferry_bridge::span",
            trace_id = %self.trace_id(),
            span_id = %to_hex(&self.id),
            parent_id = %to_hex(&self.parent.parent_id),
            session = what.session,
            id = what.id,
            destination = what.destination,
            outcome = what.outcome,
            request_bytes = what.request_bytes,
            duration_us = u64::try_from(what.took.as_micros()).unwrap_or(u64::MAX),
            "request span ended"
        );
    }
}

/// What a span's record says about how its request ended.
#[derive(Debug, Clone, Copy)]
pub struct Ended<'a> {
    /// The session.
    pub session: &'a str,
    /// The correlation id.
    pub id: &'a str,
    /// Where it was published.
    pub destination: &'a str,
    /// `ok` or the error code.
    pub outcome: &'a str,
    /// The request body's size.
    pub request_bytes: usize,
    /// From acceptance to the end.
    pub took: Duration,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_worker_gets_the_bridges_span_as_parent() {
        let caller = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        let span = Span::start(&[("x-tenant", "a"), ("traceparent", caller)]).unwrap();
        let sent = span.traceparent();
        let child = TraceParent::parse(&sent).unwrap();
        assert_eq!(child.trace_id, span.parent.trace_id);
        assert_eq!(child.parent_id, span.id);
        assert_ne!(child.parent_id, span.parent.parent_id);
        assert_eq!(child.flags, 1);
        assert_eq!(span.trace_id(), "4bf92f3577b34da6a3ce929d0e0e4736");
        assert!(Span::start(&[("x-tenant", "a")]).is_none());
    }
}
