//! Cancel notices: hears which requests nobody awaits any more and stops their jobs.
//!
//! The convention (`docs/protocol.md` §1, "Cancellation"): the bridge publishes a notice to
//! the topic exchange `ferry.cancel` (durable) with the request's queue as routing key and
//! the request's `correlation_id` and `reply_to`, which together name one request. A worker
//! binds a private queue to the exchange with its own queue name as the binding key.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use futures_util::StreamExt;
use lapin::{BasicProperties, Connection, Consumer, ExchangeKind};
use tokio_util::sync::CancellationToken;

use crate::subscribe::subscribe;

/// The exchange the bridge publishes cancel notices to by default.
pub const DEFAULT_EXCHANGE: &str = "ferry.cancel";

/// A request's identity: (`reply_to`, `correlation_id`).
type Key = (String, String);

/// The jobs running on this connection, by request identity.
#[derive(Debug, Default)]
pub struct Running {
    jobs: Mutex<HashMap<Key, (u64, CancellationToken)>>,
    next: AtomicU64,
}

/// A job's cancel token; dropping it (the job ended) forgets the job.
#[derive(Debug)]
pub struct Registration {
    running: Arc<Running>,
    key: Option<(Key, u64)>,
    /// Cancelled when a notice names this job's request.
    pub token: CancellationToken,
}

impl Running {
    /// Registers a job for the request with these properties (one without `reply_to` or
    /// `correlation_id` cannot be named by a notice and gets a token that never fires).
    pub fn register(self: &Arc<Self>, props: &BasicProperties) -> Registration {
        let token = CancellationToken::new();
        let key = key_of(props).map(|key| {
            let n = self.next.fetch_add(1, Ordering::Relaxed);
            self.lock().insert(key.clone(), (n, token.clone()));
            (key, n)
        });
        Registration {
            running: self.clone(),
            key,
            token,
        }
    }

    /// Cancels the job a notice with these properties names; false when none runs here.
    pub fn cancel(&self, props: &BasicProperties) -> bool {
        let Some(key) = key_of(props) else {
            return false;
        };
        match self.lock().get(&key) {
            Some((_, token)) => {
                token.cancel();
                true
            }
            None => false,
        }
    }

    /// Number of jobs running.
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    /// True when no job runs.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<Key, (u64, CancellationToken)>> {
        self.jobs.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Drop for Registration {
    fn drop(&mut self) {
        if let Some((key, n)) = self.key.take() {
            let mut jobs = self.running.lock();
            // A redelivered request with the same identity may have replaced this entry.
            if jobs.get(&key).is_some_and(|(m, _)| *m == n) {
                jobs.remove(&key);
            }
        }
    }
}

fn key_of(props: &BasicProperties) -> Option<Key> {
    let reply_to = props.reply_to().as_ref()?.to_string();
    let id = props.correlation_id().as_ref()?.to_string();
    Some((reply_to, id))
}

/// Subscribes to the cancel notices for `queue`'s requests (topic exchange, the queue's name as
/// the binding key).
pub async fn listen(conn: &Connection, exchange: &str, queue: &str) -> lapin::Result<Consumer> {
    let (_channel, consumer) = subscribe(conn, exchange, ExchangeKind::Topic, queue).await?;
    Ok(consumer)
}

/// The next notice from `consumer`, or never when notices are off.
pub async fn next(
    consumer: &mut Option<Consumer>,
) -> Option<lapin::Result<lapin::message::Delivery>> {
    match consumer {
        Some(c) => c.next().await,
        None => std::future::pending().await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn props(reply_to: &str, id: &str) -> BasicProperties {
        BasicProperties::default()
            .with_reply_to(reply_to.into())
            .with_correlation_id(id.into())
    }

    #[test]
    fn notices_cancel_only_the_named_job_and_ended_jobs_are_forgotten() {
        let running = Arc::new(Running::default());
        let a = running.register(&props("ferry.reply.s1", "x"));
        let b = running.register(&props("ferry.reply.s2", "x"));
        assert!(running.cancel(&props("ferry.reply.s1", "x")));
        assert!(a.token.is_cancelled());
        assert!(!b.token.is_cancelled());
        assert!(!running.cancel(&props("ferry.reply.s3", "x")));
        drop(a);
        drop(b);
        assert!(running.is_empty());
        let anonymous = running.register(&BasicProperties::default());
        assert!(running.is_empty());
        drop(anonymous);
    }

    #[test]
    fn a_redelivery_with_the_same_identity_keeps_its_own_entry() {
        let running = Arc::new(Running::default());
        let first = running.register(&props("r", "x"));
        let second = running.register(&props("r", "x"));
        drop(first);
        assert_eq!(running.len(), 1);
        assert!(running.cancel(&props("r", "x")));
        assert!(second.token.is_cancelled());
    }
}
