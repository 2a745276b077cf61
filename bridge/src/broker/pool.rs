//! Reply queues of plain sessions declared and consumed ahead of demand (`--reply-queue-pool`),
//! so a new session's first request takes a ready queue instead of waiting for a
//! `queue.declare` and a `basic.consume` behind every other session that arrived with it.
//!
//! The pool belongs to one pair of broker links: the manager ([`super::connect`]) runs its
//! refill while the links live and empties it when they are lost (the queues are exclusive
//! to the consume connection, so they go with it).

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::Notify;
use tracing::{debug, warn};

use super::Links;
use super::replies::ReplySub;

/// Pause after a failed declare before the refill tries again.
const RETRY: Duration = Duration::from_secs(1);
/// Longest one pooled queue's declare and consume may take.
const DECLARE_LIMIT: Duration = Duration::from_secs(5);

/// Ready reply queues, each already consumed.
pub struct ReplyPool {
    ready: Mutex<Vec<ReplySub>>,
    /// How many the refill keeps ready (0: no pool).
    size: usize,
    /// A queue was taken: the refill declares another.
    taken: Notify,
}

impl ReplyPool {
    /// An empty pool the refill keeps at `size`.
    pub fn new(size: usize) -> Self {
        Self {
            ready: Mutex::new(Vec::with_capacity(size)),
            size,
            taken: Notify::new(),
        }
    }

    /// A ready queue for a new plain session, if the pool has one.
    pub fn take(&self) -> Option<ReplySub> {
        if self.size == 0 {
            return None;
        }
        let sub = self.lock().pop();
        self.taken.notify_one();
        sub.filter(ReplySub::is_live)
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

/// Keeps `links`' pool full, one declare at a time, until dropped (by the manager, when the
/// links are lost or the bridge stops).
pub async fn refill(links: Arc<Links>) {
    let pool = &links.pool;
    if pool.size == 0 {
        return std::future::pending().await;
    }
    loop {
        while pool.len() < pool.size {
            let name = format!("pool-{}", uuid::Uuid::new_v4().simple());
            match ReplySub::open(links.clone(), &name, Duration::ZERO, None, DECLARE_LIMIT).await {
                Ok(sub) => pool.lock().push(sub),
                Err(e) => {
                    warn!(error = %e, "cannot declare a pooled reply queue; retrying");
                    tokio::time::sleep(RETRY).await;
                }
            }
        }
        debug!(ready = pool.size, "reply queue pool full");
        pool.taken.notified().await;
    }
}
