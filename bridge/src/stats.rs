//! Bridge-wide counters (pending requests, dropped replies, sessions) for tests and metrics.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};

use ferry_protocol::ErrorCode;

/// The broker manager's part of `/metrics`.
#[derive(Debug, Clone, Default)]
pub struct BrokerHealth {
    /// Both connections are up.
    pub connected: bool,
    /// The node connected to (`host:port`), if any.
    pub node: Option<std::sync::Arc<str>>,
    /// Connections made (the first and every reconnect).
    pub connects: u64,
    /// Restarts seen on reconnecting.
    pub restarts: u64,
    /// Connections made to another node than the one before.
    pub failovers: u64,
    /// Plain sessions' reply queues ready in the pool (`--reply-queue-pool`).
    pub reply_pool_ready: u64,
}

/// Live counters shared by every session. Cheap to update; read with [`Stats::snapshot`].
#[derive(Debug, Default)]
pub struct Stats {
    pub(crate) pending: AtomicU64,
    pub(crate) dropped_replies: AtomicU64,
    pub(crate) sessions: AtomicU64,
    pub(crate) sessions_total: AtomicU64,
    pub(crate) requests_total: AtomicU64,
    pub(crate) replies_total: AtomicU64,
    pub(crate) cancel_notices: AtomicU64,
    pub(crate) sessions_detached: AtomicU64,
    pub(crate) sessions_resumed_total: AtomicU64,
    pub(crate) sessions_expired_total: AtomicU64,
    pub(crate) connections_refused_total: AtomicU64,
    pub(crate) cancel_notices_dropped: AtomicU64,
    /// ERROR frames sent, by code (index in [`ErrorCode::ALL`]; the last slot: unknown).
    pub(crate) errors: [AtomicU64; ErrorCode::ALL.len() + 1],
}

/// A point-in-time copy of [`Stats`].
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

impl Stats {
    /// Reads every counter.
    pub fn snapshot(&self) -> StatsSnapshot {
        StatsSnapshot {
            pending: self.pending.load(Ordering::Relaxed),
            dropped_replies: self.dropped_replies.load(Ordering::Relaxed),
            sessions: self.sessions.load(Ordering::Relaxed),
            sessions_total: self.sessions_total.load(Ordering::Relaxed),
            requests_total: self.requests_total.load(Ordering::Relaxed),
            replies_total: self.replies_total.load(Ordering::Relaxed),
            cancel_notices: self.cancel_notices.load(Ordering::Relaxed),
            sessions_detached: self.sessions_detached.load(Ordering::Relaxed),
            sessions_resumed_total: self.sessions_resumed_total.load(Ordering::Relaxed),
            sessions_expired_total: self.sessions_expired_total.load(Ordering::Relaxed),
            connections_refused_total: self.connections_refused_total.load(Ordering::Relaxed),
            cancel_notices_dropped: self.cancel_notices_dropped.load(Ordering::Relaxed),
        }
    }

    /// Counts one ERROR frame with `code`.
    pub(crate) fn error(&self, code: ErrorCode) {
        let i = ErrorCode::ALL
            .iter()
            .position(|c| *c == code)
            .unwrap_or(ErrorCode::ALL.len());
        Self::inc(&self.errors[i]);
    }

    /// The counters in the Prometheus text exposition format (served at `/metrics`).
    pub fn prometheus(&self, broker: BrokerHealth) -> String {
        let s = self.snapshot();
        let mut out = String::with_capacity(2048);
        let mut metric = |name: &str, kind: &str, help: &str, value: u64| {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {value}"
            );
        };
        metric(
            "ferry_pending_requests",
            "gauge",
            "Requests awaiting a reply.",
            s.pending,
        );
        metric("ferry_sessions", "gauge", "Open sessions.", s.sessions);
        metric(
            "ferry_sessions_total",
            "counter",
            "Sessions opened.",
            s.sessions_total,
        );
        metric(
            "ferry_sessions_detached",
            "gauge",
            "Sessions whose socket dropped, waiting in their grace period to be resumed.",
            s.sessions_detached,
        );
        metric(
            "ferry_sessions_resumed_total",
            "counter",
            "Sessions resumed by a reconnecting client.",
            s.sessions_resumed_total,
        );
        metric(
            "ferry_sessions_expired_total",
            "counter",
            "Resumes refused because the session was gone.",
            s.sessions_expired_total,
        );
        metric(
            "ferry_requests_total",
            "counter",
            "Requests accepted.",
            s.requests_total,
        );
        metric(
            "ferry_replies_total",
            "counter",
            "Final replies delivered.",
            s.replies_total,
        );
        metric(
            "ferry_cancel_notices_total",
            "counter",
            "Cancel notices published to workers.",
            s.cancel_notices,
        );
        metric(
            "ferry_cancel_notices_dropped_total",
            "counter",
            "Cancel notices skipped because the session had too many in flight.",
            s.cancel_notices_dropped,
        );
        metric(
            "ferry_connections_refused_total",
            "counter",
            "Connections and sockets refused by a connection limit or the per-address rate.",
            s.connections_refused_total,
        );
        metric(
            "ferry_dropped_replies_total",
            "counter",
            "Replies that matched no pending request.",
            s.dropped_replies,
        );
        metric(
            "ferry_broker_connected",
            "gauge",
            "1 when the broker connections are up.",
            u64::from(broker.connected),
        );
        metric(
            "ferry_broker_connects_total",
            "counter",
            "Broker connections made: the first and every reconnect.",
            broker.connects,
        );
        metric(
            "ferry_broker_restarts_total",
            "counter",
            "Broker restarts seen on reconnecting (the restart marker was gone).",
            broker.restarts,
        );
        metric(
            "ferry_broker_failovers_total",
            "counter",
            "Broker connections made to another node than the one before.",
            broker.failovers,
        );
        metric(
            "ferry_reply_queue_pool_ready",
            "gauge",
            "Reply queues declared ahead of demand and ready for new plain sessions.",
            broker.reply_pool_ready,
        );
        if let Some(node) = &broker.node {
            let node = node.replace('\\', "\\\\").replace('"', "\\\"");
            let _ = writeln!(
                out,
                "# HELP ferry_broker_node The broker node connected to.\n# TYPE ferry_broker_node gauge\nferry_broker_node{{node=\"{node}\"}} 1"
            );
        }
        let _ = writeln!(
            out,
            "# HELP ferry_errors_total ERROR frames sent, by code.\n# TYPE ferry_errors_total counter"
        );
        let names = ErrorCode::ALL.iter().map(|c| c.as_str()).chain(["unknown"]);
        for (name, n) in names.zip(&self.errors) {
            let _ = writeln!(
                out,
                "ferry_errors_total{{code=\"{name}\"}} {}",
                n.load(Ordering::Relaxed)
            );
        }
        out
    }

    pub(crate) fn inc(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn dec(counter: &AtomicU64, by: u64) {
        counter.fetch_sub(by, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prometheus_text() {
        let stats = Stats::default();
        stats.error(ErrorCode::Timeout);
        Stats::inc(&stats.sessions);
        let broker = BrokerHealth {
            connected: true,
            node: Some("127.0.0.1:5682".into()),
            connects: 2,
            restarts: 1,
            failovers: 1,
            reply_pool_ready: 3,
        };
        let text = stats.prometheus(broker);
        assert!(text.contains("ferry_sessions 1\n"));
        assert!(text.contains("ferry_errors_total{code=\"timeout\"} 1\n"));
        assert!(text.contains("ferry_broker_connected 1\n"));
        assert!(text.contains("ferry_reply_queue_pool_ready 3\n"));
        assert!(text.contains("ferry_broker_connects_total 2\n"));
        assert!(text.contains("ferry_broker_restarts_total 1\n"));
        assert!(text.contains("ferry_broker_failovers_total 1\n"));
        assert!(text.contains("ferry_broker_node{node=\"127.0.0.1:5682\"} 1\n"));
    }
}
