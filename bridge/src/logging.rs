//! The bridge's log output: `--log-format text|json` on stderr, filtered by `RUST_LOG`.
//!
//! A line may carry session ids, correlation ids, destinations, trace ids, sizes, codes and
//! causes; never a body, an access token or a resume token, at any level (a test runs the
//! binary at `trace` and searches its output for them). The AMQP client and the WebSocket
//! codec log message contents at `trace`, so their crates are capped at `debug` whatever
//! `RUST_LOG` asks.

use tracing_subscriber::EnvFilter;
use tracing_subscriber::filter::Directive;

/// `--log-format`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum LogFormat {
    /// One human-readable line per event.
    #[default]
    Text,
    /// One JSON object per line: `timestamp`, `level`, `target`, `message` and the event's
    /// fields at the top level.
    Json,
}

/// `RUST_LOG` (default `info,lapin=warn`), with the `WIRE_CRATES` capped at `debug`.
pub fn filter() -> EnvFilter {
    let env = std::env::var("RUST_LOG").unwrap_or_default();
    let mut filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info,lapin=warn"));
    for krate in WIRE_CRATES {
        if effective_level(&env, krate).as_deref() == Some("trace")
            && let Ok(d) = format!("{krate}=debug").parse::<Directive>()
        {
            filter = filter.add_directive(d);
        }
    }
    filter
}

/// The crates whose `trace` output shows message contents: the AMQP client's, the
/// WebSocket codec's (every frame's payload in hex) and the HTTP server's.
const WIRE_CRATES: [&str; 7] = [
    "lapin",
    "amq_protocol",
    "amq_protocol_codec",
    "amq_protocol_types",
    "tungstenite",
    "tokio_tungstenite",
    "hyper",
];

/// The level `directives` (as in `RUST_LOG`) give the target `krate`: its own directive,
/// else the bare level, lower-cased.
fn effective_level(directives: &str, krate: &str) -> Option<String> {
    let mut bare = None;
    for d in directives.split(',').map(str::trim) {
        match d.split_once('=') {
            Some((target, level)) if target.trim() == krate => {
                return Some(level.trim().to_ascii_lowercase());
            }
            None if !d.is_empty() && !d.contains(['[', ':']) => {
                bare = Some(d.to_ascii_lowercase());
            }
            _ => {}
        }
    }
    bare
}

/// Installs the global subscriber (once, from `main`).
pub fn init(format: LogFormat) {
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter())
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().flatten_event(true).init(),
    }
}

#[cfg(test)]
mod tests {
    use super::effective_level;

    #[test]
    fn amqp_crates_at_trace_only_when_asked_for_trace() {
        let level = |env: &str| effective_level(env, "lapin");
        assert_eq!(level("trace").as_deref(), Some("trace"));
        assert_eq!(level("info,lapin=TRACE").as_deref(), Some("trace"));
        assert_eq!(level("trace,lapin=warn").as_deref(), Some("warn"));
        assert_eq!(level("ferry_bridge=trace").as_deref(), None);
        assert_eq!(level("").as_deref(), None);
    }
}
