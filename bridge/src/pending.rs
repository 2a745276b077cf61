//! One session's pending requests: id → entry, each with a deadline timer.
//!
//! Every exit path removes the entry (reply, error reply, publish failure, timeout, cancel,
//! socket close); dropping the map removes what is left, and the bridge-wide pending counter
//! follows every insert and removal, so it returns to zero whatever happened.

use std::collections::HashMap;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::time::Instant;
use tokio_util::time::{DelayQueue, delay_queue};

use crate::error::BridgeError;
use crate::span::{Ended, Span};
use crate::stats::{Outcome, Stats};

/// What kind of call a pending entry is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A request: one final reply ends it.
    Request,
    /// A gather: every final reply is a part; it ends at its window or after `max` parts.
    Gather {
        /// Stop after this many parts.
        max: Option<u32>,
        /// Parts forwarded so far.
        count: u32,
    },
}

/// A pending request.
#[derive(Debug)]
pub struct Entry {
    /// Request or gather.
    pub kind: Kind,
    /// Distinguishes this request from an earlier one that used the same id.
    pub seq: u64,
    /// The timeout the request got (after clamping), for the error message.
    pub timeout: Duration,
    /// Where the request was published (the routing key of its cancel notice).
    pub destination: Box<str>,
    /// The allowlist entry that let it through: the `destination` label of its metrics.
    pub label: Arc<str>,
    /// When it was accepted (or attached by a resume).
    pub started: Instant,
    /// Its span, when the request carried a `traceparent`.
    pub span: Option<Span>,
    /// The request body's size (for the span's record).
    pub bytes: usize,
    /// With progress messages: each one moves the deadline to now + this (if later).
    idle: Option<Duration>,
    /// Its publish is still running (see [`Pending::publishing`]).
    publishing: bool,
    deadline: Instant,
    timer: delay_queue::Key,
}

impl Entry {
    /// Its trace id (32 hex digits), when it is traced: for log lines.
    pub fn trace_id(&self) -> Option<String> {
        self.span.as_ref().map(Span::trace_id)
    }
}

/// The pending map of one session.
#[derive(Debug)]
pub struct Pending {
    entries: HashMap<Box<str>, Entry>,
    /// Created on the first insert and dropped when the map empties: a timer wheel costs
    /// several KiB, and an idle socket should cost next to nothing.
    timers: Option<DelayQueue<Box<str>>>,
    stats: Arc<Stats>,
    /// The session's id, for the spans' records.
    session: Arc<str>,
    next_seq: u64,
    /// Entries whose publish is still running.
    publishing: usize,
}

impl Pending {
    /// An empty map of the session `session` that reports to `stats`.
    pub fn new(stats: Arc<Stats>, session: &str) -> Self {
        Self {
            entries: HashMap::new(),
            timers: None,
            stats,
            session: session.into(),
            next_seq: 0,
            publishing: 0,
        }
    }

    /// Adds a request that expires after `timeout` (or, while progress keeps coming, `idle`
    /// after the last progress message); an id already pending is refused.
    pub fn insert(
        &mut self,
        id: &str,
        to: (&str, Arc<str>),
        timeout: Duration,
        idle: Option<Duration>,
    ) -> Result<u64, BridgeError> {
        self.insert_kind(id, to, timeout, idle, Kind::Request)
    }

    /// Adds an entry of `kind` (see [`Pending::insert`]); `to` is the destination and the
    /// allowlist entry that let it through.
    pub fn insert_kind(
        &mut self,
        id: &str,
        (destination, label): (&str, Arc<str>),
        timeout: Duration,
        idle: Option<Duration>,
        kind: Kind,
    ) -> Result<u64, BridgeError> {
        if self.entries.contains_key(id) {
            return Err(BridgeError::DuplicateId(id.to_owned()));
        }
        self.next_seq += 1;
        let seq = self.next_seq;
        let timer = self
            .timers
            .get_or_insert_with(DelayQueue::new)
            .insert(id.into(), timeout);
        self.entries.insert(
            id.into(),
            Entry {
                kind,
                seq,
                timeout,
                destination: destination.into(),
                label,
                started: Instant::now(),
                span: None,
                bytes: 0,
                idle,
                publishing: true,
                deadline: Instant::now() + timeout,
                timer,
            },
        );
        self.publishing += 1;
        self.stats.pending.inc();
        Ok(seq)
    }

    /// Removes a request that ended with `outcome` (reply, error, cancel).
    pub fn remove(&mut self, id: &str, outcome: Outcome) -> Option<Entry> {
        let mut entry = self.entries.remove(id)?;
        if let Some(t) = self.timers.as_mut() {
            t.remove(&entry.timer);
        }
        self.removed(id, &mut entry, outcome);
        Some(entry)
    }

    /// Gives the request `id` its span and body size (a traced request).
    pub fn traced(&mut self, id: &str, span: Span, bytes: usize) {
        if let Some(e) = self.entries.get_mut(id) {
            e.span = Some(span);
            e.bytes = bytes;
        }
    }

    /// The bookkeeping of every removal: the pending gauge, the latency histogram, the span.
    fn removed(&mut self, id: &str, entry: &mut Entry, outcome: Outcome) {
        self.stats.pending.dec();
        self.ended(id, entry, outcome);
        if entry.publishing {
            self.publishing -= 1;
        }
        self.shrink_if_idle();
    }

    /// The publish of the request numbered `seq` ended well (it stays pending for its reply).
    pub fn published(&mut self, id: &str, seq: u64) {
        if let Some(e) = self.entries.get_mut(id)
            && e.seq == seq
            && e.publishing
        {
            e.publishing = false;
            self.publishing -= 1;
        }
    }

    /// How many pending entries still have their publish running. A session's in-flight
    /// count is its entries plus the publishes whose entry is already gone (a CANCEL or a
    /// reply before the confirm): `len() + running publishes - publishing()`.
    pub fn publishing(&self) -> usize {
        self.publishing
    }

    /// After a burst, give the memory back once nothing is pending (an idle socket should
    /// cost little).
    fn shrink_if_idle(&mut self) {
        if self.entries.is_empty() {
            self.timers = None;
            if self.entries.capacity() > 64 {
                self.entries = HashMap::new();
            }
        }
    }

    /// A progress message arrived: with an idle timeout, push the deadline to now + idle
    /// if that is later.
    pub fn touch(&mut self, id: &str) {
        let Some(entry) = self.entries.get_mut(id) else {
            return;
        };
        let Some(idle) = entry.idle else {
            return;
        };
        let new = Instant::now() + idle;
        if new > entry.deadline {
            entry.deadline = new;
            if let Some(t) = self.timers.as_mut() {
                t.reset(&entry.timer, idle);
            }
        }
    }

    /// Removes a request only if it is the one numbered `seq` (not a later one with its id).
    pub fn remove_seq(&mut self, id: &str, seq: u64, outcome: Outcome) -> Option<Entry> {
        match self.entries.get(id) {
            Some(e) if e.seq == seq => self.remove(id, outcome),
            _ => None,
        }
    }

    /// The kind of the pending entry `id`.
    pub fn kind(&self, id: &str) -> Option<Kind> {
        self.entries.get(id).map(|e| e.kind)
    }

    /// Counts one part of the gather `id`; true when that was its last (`max` reached).
    pub fn count_part(&mut self, id: &str) -> bool {
        match self.entries.get_mut(id).map(|e| &mut e.kind) {
            Some(Kind::Gather { max, count }) => {
                *count += 1;
                max.is_some_and(|m| *count >= m)
            }
            _ => false,
        }
    }

    /// True when `id` is pending.
    pub fn contains(&self, id: &str) -> bool {
        self.entries.contains_key(id)
    }

    /// Number of pending requests.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// True when nothing is pending.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The next request whose deadline passed (a gather's window closed: its normal end),
    /// removed from the map. `Ready(None)` when the
    /// map is empty (a `select!` branch then waits for the next loop turn).
    pub fn poll_expired(&mut self, cx: &mut Context<'_>) -> Poll<Option<(Box<str>, Entry)>> {
        loop {
            let Some(timers) = self.timers.as_mut() else {
                return Poll::Ready(None);
            };
            match timers.poll_expired(cx) {
                Poll::Ready(Some(expired)) => {
                    let id = expired.into_inner();
                    if let Some(mut entry) = self.entries.remove(&id) {
                        let outcome = match entry.kind {
                            Kind::Request => Outcome::Error(ferry_protocol::ErrorCode::Timeout),
                            Kind::Gather { .. } => Outcome::Ok,
                        };
                        self.removed(&id, &mut entry, outcome);
                        return Poll::Ready(Some((id, entry)));
                    }
                }
                Poll::Ready(None) => return Poll::Ready(None),
                Poll::Pending => return Poll::Pending,
            }
        }
    }

    /// Waits for the next expired request (see [`Pending::poll_expired`]).
    pub async fn next_expired(&mut self) -> Option<(Box<str>, Entry)> {
        std::future::poll_fn(|cx| self.poll_expired(cx)).await
    }

    /// Removes and returns every pending request, all ending with `outcome`.
    pub fn drain(&mut self, outcome: Outcome) -> Vec<(Box<str>, Entry)> {
        let all: Vec<_> = self.entries.drain().collect();
        self.timers = None;
        self.publishing = 0;
        self.stats.pending.sub(all.len() as i64);
        let mut all = all;
        for (id, entry) in &mut all {
            self.ended(id, entry, outcome);
        }
        all
    }

    fn ended(&self, id: &str, entry: &mut Entry, outcome: Outcome) {
        let took = entry.started.elapsed();
        self.stats.call_done(&entry.label, outcome, took);
        if let (Some(span), Some(outcome)) = (&mut entry.span, outcome.label()) {
            span.end(Ended {
                session: &self.session,
                id,
                destination: &entry.destination,
                outcome,
                request_bytes: entry.bytes,
                took,
            });
        }
    }
}

impl Drop for Pending {
    fn drop(&mut self) {
        self.stats.pending.sub(self.entries.len() as i64);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ferry_protocol::ErrorCode;

    fn q() -> (&'static str, Arc<str>) {
        ("q", "q".into())
    }

    fn pending() -> (Arc<Stats>, Pending) {
        let stats = Arc::new(Stats::default());
        let p = Pending::new(stats.clone(), "s");
        (stats, p)
    }

    #[tokio::test(start_paused = true)]
    async fn publishes_are_counted_until_they_end_whatever_happens_to_their_entry() {
        let (_, mut p) = pending();
        let a = p.insert("a", q(), Duration::from_secs(5), None).unwrap();
        let b = p.insert("b", q(), Duration::from_secs(5), None).unwrap();
        p.insert("c", q(), Duration::from_secs(5), None).unwrap();
        assert_eq!(p.publishing(), 3);
        p.published("a", a); // confirmed: pending for its reply, no longer publishing
        assert_eq!((p.len(), p.publishing()), (3, 2));
        p.published("a", a);
        assert_eq!(p.publishing(), 2, "counted once");
        // A CANCEL while b's publish runs: the entry goes, the publish still counts, as
        // `in flight = len + running publishes - publishing` says (3 running here).
        p.remove("b", Outcome::Ok);
        assert_eq!((p.len(), p.publishing()), (2, 1));
        assert_eq!(p.len() + 3 - p.publishing(), 4, "a, c and the cancelled b");
        p.published("b", b); // b's publish ends with no entry left: nothing to change
        assert_eq!(p.publishing(), 1);
        p.drain(Outcome::Ok);
        assert_eq!(p.publishing(), 0);
    }

    #[tokio::test(start_paused = true)]
    async fn duplicate_ids_are_refused() {
        let (_, mut p) = pending();
        p.insert("a", q(), Duration::from_secs(5), None).unwrap();
        assert!(matches!(
            p.insert("a", q(), Duration::from_secs(5), None),
            Err(BridgeError::DuplicateId(_))
        ));
    }

    #[tokio::test(start_paused = true)]
    async fn map_is_empty_after_mixed_outcomes() {
        let (stats, mut p) = pending();
        let a = p
            .insert("reply", q(), Duration::from_secs(5), None)
            .unwrap();
        p.insert("cancel", q(), Duration::from_secs(5), None)
            .unwrap();
        p.insert("timeout", q(), Duration::from_millis(10), None)
            .unwrap();
        let old = p
            .insert("failed", q(), Duration::from_secs(5), None)
            .unwrap();
        assert_eq!(stats.snapshot().pending, 4);

        assert!(p.remove_seq("reply", a, Outcome::Ok).is_some());
        let cancelled = Outcome::Error(ErrorCode::Cancelled);
        assert!(p.remove("cancel", cancelled).is_some());
        assert!(p.remove("cancel", cancelled).is_none());
        let (id, _) = p.next_expired().await.unwrap();
        assert_eq!(&*id, "timeout");
        // A stale publish result for an id that was reused does not remove the new request.
        p.remove("failed", Outcome::NotOver).unwrap();
        let new = p
            .insert("failed", q(), Duration::from_secs(5), None)
            .unwrap();
        let no_route = Outcome::Error(ErrorCode::NoRoute);
        assert!(p.remove_seq("failed", old, no_route).is_none());
        assert!(p.remove_seq("failed", new, no_route).is_some());
        assert!(p.is_empty());
        assert_eq!(stats.snapshot().pending, 0);
        assert!(p.next_expired().await.is_none());
        // Each call that ended is in the latency histogram once, under its outcome.
        let text = stats.prometheus(Default::default(), 0);
        for outcome in ["ok", "cancelled", "timeout", "no_route"] {
            let line = format!(
                "ferry_request_duration_seconds_count{{destination=\"q\",outcome=\"{outcome}\"}} 1\n"
            );
            assert!(text.contains(&line), "{line:?} in\n{text}");
        }
        assert_eq!(
            text.matches("ferry_request_duration_seconds_count").count(),
            4
        );
    }

    #[tokio::test(start_paused = true)]
    async fn progress_extends_only_idle_requests() {
        let (_, mut p) = pending();
        let ms = Duration::from_millis;
        p.insert("idle", q(), ms(100), Some(ms(100))).unwrap();
        p.insert("fixed", q(), ms(150), None).unwrap();
        tokio::time::advance(ms(80)).await;
        p.touch("idle"); // deadline now 180 ms
        p.touch("fixed"); // no effect
        p.touch("unknown");
        let (first, _) = p.next_expired().await.unwrap();
        assert_eq!(&*first, "fixed");
        let (second, _) = p.next_expired().await.unwrap();
        assert_eq!(&*second, "idle");
    }

    #[tokio::test(start_paused = true)]
    async fn dropping_or_draining_releases_the_count() {
        let (stats, mut p) = pending();
        p.insert("x", q(), Duration::from_secs(5), None).unwrap();
        p.insert("y", q(), Duration::from_secs(5), None).unwrap();
        assert_eq!(p.drain(Outcome::Ok).len(), 2);
        p.insert("z", q(), Duration::from_secs(5), None).unwrap();
        assert_eq!(stats.snapshot().pending, 1);
        drop(p);
        assert_eq!(stats.snapshot().pending, 0);
    }
}
