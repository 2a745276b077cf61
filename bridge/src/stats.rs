//! Bridge-wide metrics (the `prometheus` crate, one registry per bridge): counters and
//! gauges the sessions update, latency histograms, and the `/metrics` text.
//!
//! Every metric is listed, with its labels, in docs/operations.md.

use std::time::Duration;

use ferry_protocol::ErrorCode;
use prometheus::{
    Encoder, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts,
    Registry, TextEncoder,
};

/// The broker manager's state at a scrape.
#[derive(Debug, Clone, Default)]
pub struct BrokerHealth {
    /// Both connections are up.
    pub connected: bool,
    /// The node connected to (`host:port`), if any.
    pub node: Option<std::sync::Arc<str>>,
    /// Plain sessions' reply queues ready in the pool (`--reply-queue-pool`).
    pub reply_pool_ready: u64,
    /// Resumable sessions' reply queues ready in the pool (`--resumable-queue-pool`).
    pub resumable_pool_ready: u64,
}

/// What the broker manager and its probe count.
#[derive(Clone)]
pub struct BrokerCounters {
    /// Connections made (the first and every reconnect).
    pub connects: IntCounter,
    /// Restarts seen on reconnecting.
    pub restarts: IntCounter,
    /// Connections made to another node than the one before.
    pub failovers: IntCounter,
    /// Destination checks answered from the probe's cache.
    pub probe_hits: IntCounter,
    /// Destination checks that asked the broker.
    pub probe_misses: IntCounter,
}

/// How a call (request or gather) ended, for the latency histogram's `outcome` label.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// A final reply (or a gather's DONE).
    Ok,
    /// Ended with this code (`remote` for a worker's error reply).
    Error(ErrorCode),
    /// Not over (not recorded): a resumable session detached and may still deliver the
    /// reply, or the client sent the request again after a resume.
    NotOver,
}

impl Outcome {
    /// `ok` or the code; `None` for a call that is not over.
    pub fn label(self) -> Option<&'static str> {
        match self {
            Self::Ok => Some("ok"),
            Self::Error(code) => Some(code.as_str()),
            Self::NotOver => None,
        }
    }
}

/// Request latency buckets (seconds): from a millisecond to the ten minutes a report may take.
const CALL_BUCKETS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
    120.0, 300.0, 600.0,
];
/// Publish-confirm buckets (seconds).
const CONFIRM_BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
];

/// Live metrics shared by every session. Cheap to update; read with [`Stats::snapshot`] or
/// [`Stats::prometheus`].
pub struct Stats {
    registry: Registry,
    pub(crate) pending: IntGauge,
    pub(crate) dropped_replies: IntCounter,
    pub(crate) sessions: IntGauge,
    pub(crate) sessions_total: IntCounter,
    pub(crate) requests_total: IntCounter,
    pub(crate) replies_total: IntCounter,
    pub(crate) cancel_notices: IntCounter,
    pub(crate) sessions_detached: IntGauge,
    pub(crate) sessions_resumed_total: IntCounter,
    pub(crate) sessions_expired_total: IntCounter,
    pub(crate) connections_refused_total: IntCounter,
    pub(crate) cancel_notices_dropped: IntCounter,
    pub(crate) bytes_received: IntCounter,
    pub(crate) bytes_sent: IntCounter,
    pub(crate) connections: IntGauge,
    errors: IntCounterVec,
    calls: HistogramVec,
    confirms: HistogramVec,
    queue_wait: HistogramVec,
    worker: HistogramVec,
    broker_connected: IntGauge,
    broker_node: IntGaugeVec,
    pool_ready: IntGauge,
    resumable_pool_ready: IntGauge,
    /// Handed to the broker manager.
    pub(crate) broker: BrokerCounters,
}

impl std::fmt::Debug for Stats {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Stats")
            .field("now", &self.snapshot())
            .finish()
    }
}

/// A point-in-time copy of the counters tests look at.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StatsSnapshot {
    /// Requests pending right now, over all sessions.
    pub pending: u64,
    /// Replies that matched no pending request (unknown, timed out, cancelled) and were dropped.
    pub dropped_replies: u64,
    /// Open sessions right now.
    pub sessions: u64,
    /// Sessions opened since start.
    pub sessions_total: u64,
    /// Requests accepted since start.
    pub requests_total: u64,
    /// Final replies delivered since start.
    pub replies_total: u64,
    /// Cancel notices published to workers since start.
    pub cancel_notices: u64,
    /// Sessions whose socket dropped and that wait (in their grace period) to be resumed.
    pub sessions_detached: u64,
    /// Sessions resumed by a new socket (on this bridge).
    pub sessions_resumed_total: u64,
    /// Resumes refused because the session was gone (grace period over, broker restarted).
    pub sessions_expired_total: u64,
    /// Connections and sockets refused by a limit (`--max-connections`, per address).
    pub connections_refused_total: u64,
    /// Cancel notices not published because the session had too many in flight.
    pub cancel_notices_dropped: u64,
}

impl Default for Stats {
    fn default() -> Self {
        Self::new()
    }
}

/// Registers what `make` builds; names and help texts are constants, so a failure is a bug
/// caught by the first test that builds a bridge.
fn reg<C: prometheus::core::Collector + Clone + 'static>(
    registry: &Registry,
    made: prometheus::Result<C>,
) -> C {
    #[allow(clippy::expect_used)]
    let metric = made.expect("metric definitions are constants");
    #[allow(clippy::expect_used)]
    registry
        .register(Box::new(metric.clone()))
        .expect("metric names are unique");
    metric
}

impl Stats {
    /// The counters a broker manager ([`crate::broker::Settings`]) counts into.
    pub fn broker_counters(&self) -> BrokerCounters {
        self.broker.clone()
    }

    /// Every metric at zero, in a registry of its own.
    pub fn new() -> Self {
        let r = Registry::new();
        let counter = |name: &str, help: &str| reg(&r, IntCounter::new(name, help));
        let gauge = |name: &str, help: &str| reg(&r, IntGauge::new(name, help));
        let histogram = |name: &str, help: &str, buckets: &[f64], labels: &[&str]| {
            let opts = HistogramOpts::new(name, help).buckets(buckets.to_vec());
            reg(&r, HistogramVec::new(opts, labels))
        };
        let errors = reg(
            &r,
            IntCounterVec::new(
                Opts::new("ferry_errors_total", "ERROR frames sent, by code."),
                &["code"],
            ),
        );
        for code in ErrorCode::ALL {
            errors.with_label_values(&[code.as_str()]).inc_by(0);
        }
        Self {
            pending: gauge("ferry_pending_requests", "Requests awaiting a reply."),
            dropped_replies: counter(
                "ferry_dropped_replies_total",
                "Replies that matched no pending request (late, cancelled, unknown) or were too large.",
            ),
            sessions: gauge("ferry_sessions", "Open sessions (one per socket)."),
            sessions_total: counter("ferry_sessions_total", "Sessions opened."),
            requests_total: counter("ferry_requests_total", "Requests and gathers accepted."),
            replies_total: counter(
                "ferry_replies_total",
                "Final replies and gather parts delivered.",
            ),
            cancel_notices: counter(
                "ferry_cancel_notices_total",
                "Cancel notices published to workers.",
            ),
            sessions_detached: gauge(
                "ferry_sessions_detached",
                "Sessions whose socket dropped, waiting in their grace period to be resumed.",
            ),
            sessions_resumed_total: counter(
                "ferry_sessions_resumed_total",
                "Sessions resumed by a reconnecting client.",
            ),
            sessions_expired_total: counter(
                "ferry_sessions_expired_total",
                "Resumes refused because the session was gone.",
            ),
            connections_refused_total: counter(
                "ferry_connections_refused_total",
                "Connections and sockets refused by a connection limit or the per-address rate.",
            ),
            cancel_notices_dropped: counter(
                "ferry_cancel_notices_dropped_total",
                "Cancel notices skipped because the session had too many in flight.",
            ),
            bytes_received: counter(
                "ferry_received_bytes_total",
                "Bytes of frames received from clients.",
            ),
            bytes_sent: counter("ferry_sent_bytes_total", "Bytes of frames sent to clients."),
            connections: gauge(
                "ferry_connections",
                "Open TCP connections held against --max-connections (both listeners).",
            ),
            errors,
            calls: histogram(
                "ferry_request_duration_seconds",
                "Request (or gather) to final reply, error or cancel, in the bridge; by allowlist entry and outcome (ok or an error code).",
                CALL_BUCKETS,
                &["destination", "outcome"],
            ),
            confirms: histogram(
                "ferry_publish_confirm_seconds",
                "Publish to the broker's confirm (including the destination check), by allowlist entry.",
                CONFIRM_BUCKETS,
                &["destination"],
            ),
            queue_wait: histogram(
                "ferry_queue_wait_seconds",
                "Request to reply minus the worker's own time (x-ferry-worker-ms on the reply): time in the queue and in transit.",
                CALL_BUCKETS,
                &["destination"],
            ),
            worker: histogram(
                "ferry_worker_duration_seconds",
                "The worker's own time on a request, as its reply reports it (x-ferry-worker-ms).",
                CALL_BUCKETS,
                &["destination"],
            ),
            broker_connected: gauge(
                "ferry_broker_connected",
                "1 when the broker connections are up.",
            ),
            broker_node: reg(
                &r,
                IntGaugeVec::new(
                    Opts::new("ferry_broker_node", "The broker node connected to."),
                    &["node"],
                ),
            ),
            pool_ready: gauge(
                "ferry_reply_queue_pool_ready",
                "Reply queues declared ahead of demand and ready for new plain sessions.",
            ),
            resumable_pool_ready: gauge(
                "ferry_resumable_queue_pool_ready",
                "Reply queues declared ahead of demand and ready for new resumable sessions.",
            ),
            broker: BrokerCounters {
                connects: counter(
                    "ferry_broker_connects_total",
                    "Broker connections made: the first and every reconnect.",
                ),
                restarts: counter(
                    "ferry_broker_restarts_total",
                    "Broker restarts seen on reconnecting (the restart marker was gone).",
                ),
                failovers: counter(
                    "ferry_broker_failovers_total",
                    "Broker connections made to another node than the one before.",
                ),
                probe_hits: counter(
                    "ferry_probe_cache_hits_total",
                    "Destination checks answered from the probe cache.",
                ),
                probe_misses: counter(
                    "ferry_probe_cache_misses_total",
                    "Destination checks that asked the broker.",
                ),
            },
            registry: r,
        }
    }

    /// Reads the counters tests look at.
    pub fn snapshot(&self) -> StatsSnapshot {
        let g = |m: &IntGauge| m.get().max(0) as u64;
        StatsSnapshot {
            pending: g(&self.pending),
            dropped_replies: self.dropped_replies.get(),
            sessions: g(&self.sessions),
            sessions_total: self.sessions_total.get(),
            requests_total: self.requests_total.get(),
            replies_total: self.replies_total.get(),
            cancel_notices: self.cancel_notices.get(),
            sessions_detached: g(&self.sessions_detached),
            sessions_resumed_total: self.sessions_resumed_total.get(),
            sessions_expired_total: self.sessions_expired_total.get(),
            connections_refused_total: self.connections_refused_total.get(),
            cancel_notices_dropped: self.cancel_notices_dropped.get(),
        }
    }

    /// Counts one ERROR frame with `code`.
    pub(crate) fn error(&self, code: ErrorCode) {
        self.errors.with_label_values(&[code.as_str()]).inc();
    }

    /// A call to `destination` (its allowlist entry) ended after `took`.
    pub(crate) fn call_done(&self, destination: &str, outcome: Outcome, took: Duration) {
        if let Some(outcome) = outcome.label() {
            self.calls
                .with_label_values(&[destination, outcome])
                .observe(took.as_secs_f64());
        }
    }

    /// A publish to `destination` was confirmed after `took`.
    pub(crate) fn confirmed(&self, destination: &str, took: Duration) {
        self.confirms
            .with_label_values(&[destination])
            .observe(took.as_secs_f64());
    }

    /// A reply said the worker spent `worker` of the `total` since the request.
    pub(crate) fn worker_time(&self, destination: &str, total: Duration, worker: Duration) {
        self.worker
            .with_label_values(&[destination])
            .observe(worker.as_secs_f64());
        self.queue_wait
            .with_label_values(&[destination])
            .observe(total.saturating_sub(worker).as_secs_f64());
    }

    /// Every metric in the Prometheus text exposition format (served at `/metrics`), with
    /// the broker's state and the open connections as of now.
    pub fn prometheus(&self, broker: BrokerHealth, connections: u64) -> String {
        self.broker_connected.set(i64::from(broker.connected));
        self.pool_ready
            .set(i64::try_from(broker.reply_pool_ready).unwrap_or(i64::MAX));
        self.resumable_pool_ready
            .set(i64::try_from(broker.resumable_pool_ready).unwrap_or(i64::MAX));
        self.connections
            .set(i64::try_from(connections).unwrap_or(i64::MAX));
        self.broker_node.reset();
        if let Some(node) = &broker.node {
            self.broker_node.with_label_values(&[node]).set(1);
        }
        let mut out = Vec::with_capacity(8192);
        // Encoding only fails on a metric family without metrics, which a registry never
        // gathers; an empty page would show it.
        let _ = TextEncoder::new().encode(&self.registry.gather(), &mut out);
        String::from_utf8(out).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prometheus_text() {
        let stats = Stats::default();
        stats.error(ErrorCode::Timeout);
        stats.sessions.inc();
        stats.broker.connects.inc_by(2);
        stats.broker.restarts.inc();
        stats.call_done(
            "reports.*",
            Outcome::Error(ErrorCode::Timeout),
            Duration::from_millis(30),
        );
        stats.call_done("x", Outcome::NotOver, Duration::from_millis(30));
        stats.worker_time("echo", Duration::from_millis(50), Duration::from_millis(20));
        let broker = BrokerHealth {
            connected: true,
            node: Some("127.0.0.1:5682".into()),
            reply_pool_ready: 3,
            resumable_pool_ready: 5,
        };
        let text = stats.prometheus(broker, 4);
        for line in [
            "ferry_sessions 1\n",
            "ferry_errors_total{code=\"timeout\"} 1\n",
            "ferry_errors_total{code=\"no_route\"} 0\n",
            "ferry_broker_connected 1\n",
            "ferry_reply_queue_pool_ready 3\n",
            "ferry_resumable_queue_pool_ready 5\n",
            "ferry_connections 4\n",
            "ferry_broker_connects_total 2\n",
            "ferry_broker_restarts_total 1\n",
            "ferry_broker_node{node=\"127.0.0.1:5682\"} 1\n",
            "ferry_request_duration_seconds_bucket{destination=\"reports.*\",outcome=\"timeout\",le=\"0.05\"} 1\n",
            "ferry_request_duration_seconds_count{destination=\"reports.*\",outcome=\"timeout\"} 1\n",
            "ferry_queue_wait_seconds_bucket{destination=\"echo\",le=\"0.025\"} 0\n",
            "ferry_queue_wait_seconds_bucket{destination=\"echo\",le=\"0.05\"} 1\n",
            "ferry_worker_duration_seconds_count{destination=\"echo\"} 1\n",
        ] {
            assert!(text.contains(line), "missing {line:?} in\n{text}");
        }
        assert!(
            !text.contains("destination=\"x\""),
            "a detached call is not over"
        );
    }
}
