//! Bridge-wide counters (pending requests, dropped replies, sessions) for tests and metrics.

use std::sync::atomic::{AtomicU64, Ordering};

/// Live counters shared by every session. Cheap to update; read with [`Stats::snapshot`].
#[derive(Debug, Default)]
pub struct Stats {
    pub(crate) pending: AtomicU64,
    pub(crate) dropped_replies: AtomicU64,
    pub(crate) sessions: AtomicU64,
    pub(crate) sessions_total: AtomicU64,
    pub(crate) requests_total: AtomicU64,
    pub(crate) replies_total: AtomicU64,
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
        }
    }

    pub(crate) fn inc(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn dec(counter: &AtomicU64, by: u64) {
        counter.fetch_sub(by, Ordering::Relaxed);
    }
}
