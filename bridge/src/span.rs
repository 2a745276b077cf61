//! A request's span in its caller's trace (W3C Trace Context): started when a traced REQUEST
//! is accepted, ended when it leaves the pending map.
//!
//! A REQUEST with a `traceparent` header starts a span of the bridge (the caller's span as
//! parent); the worker receives a `traceparent` naming the bridge's span, so its own span is
//! a child of it. When the request ends (reply, error, timeout, cancel, socket gone) the
//! span is recorded as one `debug` event of target `ferry_bridge::span` (ids, session,
//! correlation id, destination, outcome, request bytes, duration) and, with
//! `--otlp-endpoint`, exported ([`crate::otlp`]).

use std::time::Duration;

use ferry_protocol::trace::{TRACEPARENT, TraceParent, to_hex};
use opentelemetry::trace::{
    Span as _, SpanBuilder, SpanContext, SpanId, SpanKind, Status, TraceContextExt as _,
    TraceFlags, TraceId, TraceState, Tracer as _,
};
use opentelemetry::{Context, KeyValue};
use opentelemetry_sdk::trace::SdkTracer;

/// The bridge's span of one request.
#[derive(Debug)]
pub struct Span {
    /// The caller's context (trace id, its span, flags).
    pub parent: TraceParent,
    /// The bridge's span id.
    pub id: [u8; 8],
    /// The span being recorded for export (with `--otlp-endpoint`).
    otel: Option<Box<opentelemetry_sdk::trace::Span>>,
}

/// What a span is about, when it starts.
#[derive(Debug, Clone, Copy)]
pub struct Started<'a> {
    /// The session.
    pub session: &'a str,
    /// The correlation id.
    pub id: &'a str,
    /// Where it is published.
    pub destination: &'a str,
    /// The request body's size.
    pub bytes: usize,
}

impl Span {
    /// Starts a span when the (validated) headers carry a `traceparent`; with a tracer, one
    /// that will be exported.
    pub fn start(
        headers: &[(&str, &str)],
        tracer: Option<&SdkTracer>,
        what: Started<'_>,
    ) -> Option<Self> {
        let value = headers.iter().find(|(n, _)| *n == TRACEPARENT)?.1;
        let parent = TraceParent::parse(value)?;
        let Some(tracer) = tracer else {
            let mut id: [u8; 8] = rand::random();
            if id == [0; 8] {
                id[7] = 1; // an all-zero span id is invalid
            }
            return Some(Self {
                parent,
                id,
                otel: None,
            });
        };
        let remote = SpanContext::new(
            TraceId::from_bytes(parent.trace_id),
            SpanId::from_bytes(parent.parent_id),
            TraceFlags::new(parent.flags),
            true,
            TraceState::default(),
        );
        let cx = Context::new().with_remote_span_context(remote);
        let builder = SpanBuilder::from_name("ferry request")
            .with_kind(SpanKind::Producer)
            .with_attributes([
                KeyValue::new("messaging.system", "rabbitmq"),
                KeyValue::new("messaging.operation.type", "send"),
                KeyValue::new("messaging.destination.name", what.destination.to_owned()),
                KeyValue::new("messaging.message.conversation_id", what.id.to_owned()),
                KeyValue::new("messaging.message.body.size", what.bytes as i64),
                KeyValue::new("ferry.session", what.session.to_owned()),
            ]);
        let span = tracer.build_with_context(builder, &cx);
        let id = span.span_context().span_id().to_bytes();
        Some(Self {
            parent,
            id,
            otel: Some(Box::new(span)),
        })
    }

    /// The `traceparent` the worker gets: the bridge's span as its parent.
    pub fn traceparent(&self) -> String {
        self.parent.child(self.id)
    }

    /// The trace id, 32 hex digits (for log lines).
    pub fn trace_id(&self) -> String {
        self.parent.trace_id_hex()
    }

    /// Records the ended span (and ends the exported one).
    pub fn end(&mut self, what: Ended<'_>) {
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
        if let Some(mut span) = self.otel.take() {
            span.set_attribute(KeyValue::new("ferry.outcome", what.outcome.to_owned()));
            if what.outcome != "ok" {
                span.set_status(Status::error(what.outcome.to_owned()));
            }
            span.end();
        }
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
        let what = Started {
            session: "s",
            id: "a",
            destination: "q",
            bytes: 2,
        };
        let span = Span::start(&[("x-tenant", "a"), ("traceparent", caller)], None, what).unwrap();
        let sent = span.traceparent();
        let child = TraceParent::parse(&sent).unwrap();
        assert_eq!(child.trace_id, span.parent.trace_id);
        assert_eq!(child.parent_id, span.id);
        assert_ne!(child.parent_id, span.parent.parent_id);
        assert_eq!(child.flags, 1);
        assert_eq!(span.trace_id(), "4bf92f3577b34da6a3ce929d0e0e4736");
        assert!(Span::start(&[("x-tenant", "a")], None, what).is_none());
    }
}
