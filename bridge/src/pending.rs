//! One session's pending requests: id → entry, each with a deadline timer.
//!
//! Every exit path removes the entry (reply, error reply, publish failure, timeout, cancel,
//! socket close); dropping the map removes what is left, and the bridge-wide pending counter
//! follows every insert and removal, so it returns to zero whatever happened.

use std::collections::HashMap;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio_util::time::{DelayQueue, delay_queue};

use crate::error::BridgeError;
use crate::stats::Stats;

/// A pending request.
#[derive(Debug)]
pub struct Entry {
    /// Distinguishes this request from an earlier one that used the same id.
    pub seq: u64,
    /// The timeout the request got (after clamping), for the error message.
    pub timeout: Duration,
    timer: delay_queue::Key,
}

/// The pending map of one session.
#[derive(Debug)]
pub struct Pending {
    entries: HashMap<Box<str>, Entry>,
    timers: DelayQueue<Box<str>>,
    stats: Arc<Stats>,
    next_seq: u64,
}

impl Pending {
    /// An empty map that reports to `stats`.
    pub fn new(stats: Arc<Stats>) -> Self {
        Self {
            entries: HashMap::new(),
            timers: DelayQueue::new(),
            stats,
            next_seq: 0,
        }
    }

    /// Adds a request that expires after `timeout`; an id already pending is refused.
    pub fn insert(&mut self, id: &str, timeout: Duration) -> Result<u64, BridgeError> {
        if self.entries.contains_key(id) {
            return Err(BridgeError::DuplicateId(id.to_owned()));
        }
        self.next_seq += 1;
        let seq = self.next_seq;
        let timer = self.timers.insert(id.into(), timeout);
        self.entries.insert(
            id.into(),
            Entry {
                seq,
                timeout,
                timer,
            },
        );
        Stats::inc(&self.stats.pending);
        Ok(seq)
    }

    /// Removes a request (reply, error, cancel).
    pub fn remove(&mut self, id: &str) -> Option<Entry> {
        let entry = self.entries.remove(id)?;
        self.timers.remove(&entry.timer);
        Stats::dec(&self.stats.pending, 1);
        Some(entry)
    }

    /// Removes a request only if it is the one numbered `seq` (not a later one with its id).
    pub fn remove_seq(&mut self, id: &str, seq: u64) -> Option<Entry> {
        match self.entries.get(id) {
            Some(e) if e.seq == seq => self.remove(id),
            _ => None,
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

    /// The next request whose deadline passed, removed from the map. `Ready(None)` when the
    /// map is empty (a `select!` branch then waits for the next loop turn).
    pub fn poll_expired(&mut self, cx: &mut Context<'_>) -> Poll<Option<(Box<str>, Entry)>> {
        loop {
            match self.timers.poll_expired(cx) {
                Poll::Ready(Some(expired)) => {
                    let id = expired.into_inner();
                    if let Some(entry) = self.entries.remove(&id) {
                        Stats::dec(&self.stats.pending, 1);
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

    /// Removes and returns every pending id.
    pub fn drain(&mut self) -> Vec<Box<str>> {
        let ids: Vec<Box<str>> = self.entries.drain().map(|(id, _)| id).collect();
        self.timers.clear();
        Stats::dec(&self.stats.pending, ids.len() as u64);
        ids
    }
}

impl Drop for Pending {
    fn drop(&mut self) {
        Stats::dec(&self.stats.pending, self.entries.len() as u64);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pending() -> (Arc<Stats>, Pending) {
        let stats = Arc::new(Stats::default());
        let p = Pending::new(stats.clone());
        (stats, p)
    }

    #[tokio::test(start_paused = true)]
    async fn duplicate_ids_are_refused() {
        let (_, mut p) = pending();
        p.insert("a", Duration::from_secs(5)).unwrap();
        assert!(matches!(
            p.insert("a", Duration::from_secs(5)),
            Err(BridgeError::DuplicateId(_))
        ));
    }

    #[tokio::test(start_paused = true)]
    async fn map_is_empty_after_mixed_outcomes() {
        let (stats, mut p) = pending();
        let a = p.insert("reply", Duration::from_secs(5)).unwrap();
        p.insert("cancel", Duration::from_secs(5)).unwrap();
        p.insert("timeout", Duration::from_millis(10)).unwrap();
        let old = p.insert("failed", Duration::from_secs(5)).unwrap();
        assert_eq!(stats.snapshot().pending, 4);

        assert!(p.remove_seq("reply", a).is_some());
        assert!(p.remove("cancel").is_some());
        assert!(p.remove("cancel").is_none());
        let (id, _) = p.next_expired().await.unwrap();
        assert_eq!(&*id, "timeout");
        // A stale publish result for an id that was reused does not remove the new request.
        p.remove("failed").unwrap();
        let new = p.insert("failed", Duration::from_secs(5)).unwrap();
        assert!(p.remove_seq("failed", old).is_none());
        assert!(p.remove_seq("failed", new).is_some());
        assert!(p.is_empty());
        assert_eq!(stats.snapshot().pending, 0);
        assert!(p.next_expired().await.is_none());
    }

    #[tokio::test(start_paused = true)]
    async fn dropping_or_draining_releases_the_count() {
        let (stats, mut p) = pending();
        p.insert("x", Duration::from_secs(5)).unwrap();
        p.insert("y", Duration::from_secs(5)).unwrap();
        assert_eq!(p.drain().len(), 2);
        p.insert("z", Duration::from_secs(5)).unwrap();
        assert_eq!(stats.snapshot().pending, 1);
        drop(p);
        assert_eq!(stats.snapshot().pending, 0);
    }
}
