//! Reply queues declared and consumed ahead of demand, so a new session's first request takes
//! a ready queue instead of waiting for a `queue.declare` and a `basic.consume` behind every
//! other session that arrived with it: plain sessions' (`--reply-queue-pool`, exclusive,
//! `ferry.reply.pool-…`) and resumable sessions' (`--resumable-queue-pool`, durable with the
//! grace period's `x-expires`, `ferry.reply.<session id>`: the session takes the id with the
//! queue, so a resume finds it by the id as always).
//!
//! A pool belongs to one pair of broker links: the manager (`super::connect`) runs its
//! refill while the links live and empties it when they are lost (plain queues are exclusive
//! to the consume connection, so they go with it; resumable ones expire).

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::Notify;
use tracing::{debug, warn};

use super::Links;
use super::replies::{REPLY_QUEUE_PREFIX, ReplySub};

/// Pause after a failed declare before the refill tries again.
const RETRY: Duration = Duration::from_secs(1);
/// Longest one pooled queue's declare and consume may take.
const DECLARE_LIMIT: Duration = Duration::from_secs(5);

/// Ready reply queues, each already consumed.
pub struct ReplyPool {
    ready: Mutex<Vec<ReplySub>>,
    /// How many the refill keeps ready (0: no pool).
    size: usize,
    /// Zero: plain sessions' queues; otherwise resumable sessions', which outlive their last
    /// consumer by this long.
    grace: Duration,
    /// A queue was taken: the refill declares another.
    taken: Notify,
}

impl ReplyPool {
    /// An empty pool the refill keeps at `size`: of plain sessions' queues when `grace` is
    /// zero, of resumable sessions' otherwise.
    pub fn new(size: usize, grace: Duration) -> Self {
        Self {
            ready: Mutex::new(Vec::with_capacity(size.min(1024))),
            size,
            grace,
            taken: Notify::new(),
        }
    }

    /// A ready queue for a new session, if the pool has one.
    pub fn take(&self) -> Option<ReplySub> {
        if self.size == 0 {
            return None;
        }
        let sub = self.lock().pop();
        self.taken.notify_one();
        sub.filter(ReplySub::is_live)
    }

    /// A ready queue for a new resumable session and the session id it is named for.
    pub fn take_session(&self) -> Option<(String, ReplySub)> {
        let sub = self.take()?;
        let id = sub.queue().strip_prefix(REPLY_QUEUE_PREFIX)?.to_owned();
        Some((id, sub))
    }

    /// Queues ready now.
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    /// True when no queue is ready.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Drops every ready queue (the links are lost; each holds them, so this ends the cycle).
    pub fn clear(&self) {
        self.lock().clear();
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<ReplySub>> {
        self.ready
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// Keeps the pool `which` of `links` full, one declare at a time, until dropped (by the
/// manager, when the links are lost or the bridge stops).
pub async fn refill(links: Arc<Links>, which: fn(&Links) -> &ReplyPool) {
    let pool = which(&links);
    if pool.size == 0 {
        return std::future::pending().await;
    }
    let grace = pool.grace;
    loop {
        while pool.len() < pool.size {
            let name = if grace.is_zero() {
                format!("pool-{}", uuid::Uuid::new_v4().simple())
            } else {
                crate::resume::new_session_id()
            };
            match ReplySub::open(links.clone(), &name, grace, None, DECLARE_LIMIT).await {
                Ok(sub) => pool.lock().push(sub),
                Err(e) => {
                    warn!(error = %e, resumable = !grace.is_zero(), "cannot declare a pooled reply queue; retrying");
                    tokio::time::sleep(RETRY).await;
                }
            }
        }
        debug!(
            ready = pool.size,
            resumable = !grace.is_zero(),
            "reply queue pool full"
        );
        pool.taken.notified().await;
    }
}
