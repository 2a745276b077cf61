//! `--otlp-endpoint`: exports the bridge's request spans ([`crate::span`]) over OTLP/HTTP
//! (JSON) with the `opentelemetry-otlp` crate, in batches, from a task on the bridge's runtime.
//!
//! The endpoint is a collector's base URL (`http://collector:4318`); spans go to its
//! `/v1/traces`. A collector that is down costs dropped spans (the batch queue is bounded),
//! never a request.

use opentelemetry::trace::TracerProvider as _;
use opentelemetry_otlp::{Protocol, SpanExporter, WithExportConfig as _};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::runtime::Tokio;
use opentelemetry_sdk::trace::span_processor_with_async_runtime::BatchSpanProcessor;
use opentelemetry_sdk::trace::{SdkTracer, SdkTracerProvider};

/// The tracer spans are made with, and the provider that exports them.
#[derive(Debug)]
pub struct Otlp {
    provider: SdkTracerProvider,
    /// Makes the bridge's spans.
    pub tracer: SdkTracer,
}

/// `endpoint` as the URL spans are posted to.
pub fn traces_url(endpoint: &str) -> Result<String, String> {
    let base = endpoint.trim().trim_end_matches('/');
    if !base.starts_with("http://") {
        return Err(format!(
            "--otlp-endpoint {endpoint:?}: expected http://HOST:PORT (a collector's OTLP/HTTP port, usually 4318)"
        ));
    }
    Ok(if base.ends_with("/v1/traces") {
        base.to_owned()
    } else {
        format!("{base}/v1/traces")
    })
}

impl Otlp {
    /// Starts the exporter (call within the runtime) for `service` (`service.name`).
    pub fn start(endpoint: &str, service: &'static str) -> Result<Self, String> {
        let url = traces_url(endpoint)?;
        let exporter = SpanExporter::builder()
            .with_http()
            .with_protocol(Protocol::HttpJson)
            .with_endpoint(url)
            .build()
            .map_err(|e| format!("--otlp-endpoint {endpoint:?}: {e}"))?;
        let provider = SdkTracerProvider::builder()
            .with_span_processor(BatchSpanProcessor::builder(exporter, Tokio).build())
            .with_resource(Resource::builder_empty().with_service_name(service).build())
            .build();
        let tracer = provider.tracer(service);
        Ok(Self { provider, tracer })
    }

    /// Exports what is still queued, then stops (off the runtime's workers: it blocks).
    pub async fn shutdown(&self) {
        let provider = self.provider.clone();
        let _ = tokio::task::spawn_blocking(move || provider.shutdown()).await;
    }
}

#[cfg(test)]
mod tests {
    use super::traces_url;

    #[test]
    fn endpoint_is_a_base_url_or_the_traces_url() {
        assert_eq!(
            traces_url("http://c:4318").unwrap(),
            "http://c:4318/v1/traces"
        );
        assert_eq!(
            traces_url("http://c:4318/").unwrap(),
            "http://c:4318/v1/traces"
        );
        assert_eq!(
            traces_url("http://c:4318/v1/traces").unwrap(),
            "http://c:4318/v1/traces"
        );
        assert!(
            traces_url("https://c:4318")
                .unwrap_err()
                .contains("http://HOST:PORT")
        );
        assert!(traces_url("c:4318").is_err());
    }
}
