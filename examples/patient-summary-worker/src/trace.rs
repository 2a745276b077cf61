//! Continues the caller's trace (W3C Trace Context): a request's `traceparent` header names
//! the bridge's span; this job runs in a child span of it (exported over OTLP with
//! `--otlp-endpoint`, through OpenTelemetry's global tracer provider), and its replies carry
//! a `traceparent` naming the job's span.

use lapin::types::{AMQPValue, FieldTable, LongString};
use opentelemetry::trace::{
    Span as _, SpanBuilder, SpanContext, SpanId, SpanKind, Status, TraceContextExt as _,
    TraceFlags, TraceId, TraceState, Tracer as _,
};
use opentelemetry::{Context, KeyValue, global};
use opentelemetry_otlp::{Protocol, SpanExporter, WithExportConfig as _};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::runtime::Tokio;
use opentelemetry_sdk::trace::SdkTracerProvider;
use opentelemetry_sdk::trace::span_processor_with_async_runtime::BatchSpanProcessor;

/// The service name spans are exported under.
pub const SERVICE: &str = "patient-summary-worker";

/// Installs the global tracer provider exporting to an OTLP/HTTP collector at `endpoint`
/// (`http://collector:4318`); call within the runtime. Shut the provider down on exit.
pub fn export_to(endpoint: &str) -> Result<SdkTracerProvider, String> {
    let base = endpoint.trim_end_matches('/');
    let exporter = SpanExporter::builder()
        .with_http()
        .with_protocol(Protocol::HttpJson)
        .with_endpoint(format!("{base}/v1/traces"))
        .build()
        .map_err(|e| format!("--otlp-endpoint {endpoint:?}: {e}"))?;
    let provider = SdkTracerProvider::builder()
        .with_span_processor(BatchSpanProcessor::builder(exporter, Tokio).build())
        .with_resource(Resource::builder_empty().with_service_name(SERVICE).build())
        .build();
    global::set_tracer_provider(provider.clone());
    Ok(provider)
}

/// The job's span in the caller's trace.
pub struct Trace {
    /// 32 hex digits.
    pub trace_id: String,
    /// The `traceparent` this job's messages carry (the job's span).
    pub traceparent: String,
    span: global::BoxedSpan,
}

impl std::fmt::Debug for Trace {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Trace")
            .field("traceparent", &self.traceparent)
            .finish_non_exhaustive()
    }
}

impl Trace {
    /// The job's span when the request carries a well-formed version-00 `traceparent`.
    pub fn start(headers: Option<&FieldTable>, queue: &str, correlation_id: &str) -> Option<Self> {
        let value = match headers?.inner().get("traceparent")? {
            AMQPValue::LongString(s) => std::str::from_utf8(s.as_bytes()).ok()?,
            AMQPValue::ShortString(s) => s.as_str(),
            _ => return None,
        };
        let mut parts = value.split('-');
        let (version, trace, parent, flags) =
            (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
        if version != "00" || parts.next().is_some() || trace.len() != 32 || parent.len() != 16 {
            return None;
        }
        let trace_id = TraceId::from_hex(trace)
            .ok()
            .filter(|t| *t != TraceId::INVALID)?;
        let parent_id = SpanId::from_hex(parent)
            .ok()
            .filter(|s| *s != SpanId::INVALID)?;
        let flags = u8::from_str_radix(flags, 16).ok()?;
        let remote = SpanContext::new(
            trace_id,
            parent_id,
            TraceFlags::new(flags),
            true,
            TraceState::default(),
        );
        let builder = SpanBuilder::from_name("patient summary")
            .with_kind(SpanKind::Consumer)
            .with_attributes([
                KeyValue::new("messaging.system", "rabbitmq"),
                KeyValue::new("messaging.operation.type", "process"),
                KeyValue::new("messaging.destination.name", queue.to_owned()),
                KeyValue::new(
                    "messaging.message.conversation_id",
                    correlation_id.to_owned(),
                ),
            ]);
        let span = global::tracer(SERVICE)
            .build_with_context(builder, &Context::new().with_remote_span_context(remote));
        // Without an exporter the global tracer is a no-op that echoes the parent: then the
        // job's span gets an id of its own all the same.
        let own = span.span_context().span_id();
        let span_id = if own != SpanId::INVALID && own != parent_id {
            own
        } else {
            SpanId::from(rand::random::<u64>().max(1))
        };
        Some(Self {
            trace_id: trace.to_owned(),
            traceparent: format!("00-{trace}-{span_id}-{flags:02x}"),
            span,
        })
    }

    /// Adds `traceparent` (the job's span) to a message's headers.
    pub fn stamp(traceparent: Option<&str>, headers: &mut FieldTable) {
        if let Some(value) = traceparent {
            headers.insert(
                "traceparent".into(),
                AMQPValue::LongString(LongString::from(value)),
            );
        }
    }

    /// Ends the job's span with how it went (`replied`, `rejected`, an error code, ...).
    pub fn end(mut self, outcome: &str, ok: bool) {
        self.span
            .set_attribute(KeyValue::new("ferry.outcome", outcome.to_owned()));
        if !ok {
            self.span.set_status(Status::error(outcome.to_owned()));
        }
        self.span.end();
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
        let t = Trace::start(Some(&h), "q", "c-1").unwrap();
        assert_eq!(t.trace_id, "4bf92f3577b34da6a3ce929d0e0e4736");
        assert!(
            t.traceparent
                .starts_with("00-4bf92f3577b34da6a3ce929d0e0e4736-")
        );
        assert!(t.traceparent.ends_with("-01"));
        assert!(
            !t.traceparent.contains("0102030405060708"),
            "a span of its own"
        );
        let mut reply = FieldTable::default();
        Trace::stamp(Some(&t.traceparent), &mut reply);
        assert!(reply.inner().contains_key("traceparent"));
        t.end("replied", true);
        assert!(Trace::start(None, "q", "c").is_none());
        let mut bad = FieldTable::default();
        bad.insert(
            "traceparent".into(),
            AMQPValue::LongString("00-x-y-01".into()),
        );
        assert!(Trace::start(Some(&bad), "q", "c").is_none());
    }
}
