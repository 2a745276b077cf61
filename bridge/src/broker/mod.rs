//! The broker as sessions see it: the live links (separate publish and consume connections
//! to one node, and their channels), published by the manager (`connect`) through a `watch`
//! channel.
//!
//! `None` in the watch means "no broker": new requests fail with `broker_unavailable` at once.

mod connect;
pub mod declare;
pub mod epoch;
#[cfg(test)]
pub(crate) mod fake;
pub mod lease;
pub mod pool;
pub mod port;
pub mod probe;
pub mod publish;
pub mod replies;
mod subscribe;

use std::sync::Arc;
use std::time::Duration;

use lapin::{Channel, Connection};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tracing::{debug, warn};

use connect::{consume_channel, declare_channel, publish_channel};
pub use connect::{declare_topic, node_name, open};
use probe::Probe;

use crate::config::ReplyQueueType;
use crate::stats::BrokerCounters;

/// Longest closing a connection may take.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(2);

/// One live pair of broker connections and their channels.
pub struct Links {
    publish_conn: Connection,
    consume_conn: Connection,
    /// Confirm-mode channel every request is published on; replaced alone when a channel
    /// error closes it ([`Links::publish_failed`]).
    publish: std::sync::RwLock<Arc<Channel>>,
    /// Held while the publish channel is being replaced.
    publish_reopen: tokio::sync::Mutex<()>,
    /// The shared consume channels; one that fails (a channel error, its connection alive)
    /// is replaced on its next use, and only its own consumers ended with it.
    consume: Vec<tokio::sync::Mutex<Channel>>,
    /// The channels reply queues and leases are declared on (on the consume connection, so a
    /// plain session's exclusive queue belongs to it), replaced the same way.
    declare: Vec<tokio::sync::Mutex<Channel>>,
    pub(crate) probe: Probe,
    /// The exchange cancel notices go to; `None` when turned off or not declarable.
    pub(crate) cancel_exchange: Option<Arc<str>>,
    /// Cancelled when either connection (or a shared channel) fails.
    pub lost: CancellationToken,
    /// Broker restarts this bridge has seen up to these links ([`epoch`]): a session whose
    /// reply consumer ended at a lower count lost the replies its queue held.
    pub restarts: u64,
    /// The restart marker this bridge consumes while connected.
    marker: Option<epoch::Marker>,
    /// The node these links are connected to (`host:port`, no credentials).
    pub(crate) node: Arc<str>,
    /// The queue type of resumable sessions' reply queues and leases.
    pub(crate) reply_queue_type: ReplyQueueType,
    /// Plain sessions' reply queues declared ahead of demand ([`pool`]).
    pub(crate) pool: pool::ReplyPool,
    /// Resumable sessions' reply queues declared ahead of demand, each named for the session
    /// id it hands out ([`pool`]).
    pub(crate) resumable_pool: pool::ReplyPool,
    /// Consumes whose caller stopped waiting, finishing so that what they opened is detached
    /// ([`replies::ReplySub`]); the manager closes it with the links.
    pub(crate) tasks: tokio_util::task::TaskTracker,
}

impl Links {
    /// The consume channel for a session (spread by a hash of its id), opened again (with
    /// its prefetch) if a channel error closed it.
    pub(crate) async fn consume_channel(&self, session: &str) -> Result<Channel, lapin::Error> {
        self.shared_channel(Pool::Consume, session).await
    }

    /// The channel to declare or delete the queue `name` on (spread by a hash of it), opened
    /// again if a channel error closed it.
    pub(crate) async fn declare_channel(&self, name: &str) -> Result<Channel, lapin::Error> {
        self.shared_channel(Pool::Declare, name).await
    }

    /// The channel of `pool` that `key` uses, replaced first if a channel error closed it
    /// while the connection lives.
    async fn shared_channel(&self, pool: Pool, key: &str) -> Result<Channel, lapin::Error> {
        let slots = match pool {
            Pool::Consume => &self.consume,
            Pool::Declare => &self.declare,
        };
        let mut slot = slots[slot_of(key, slots.len())].lock().await;
        if !slot.status().connected() && self.consume_conn.status().connected() {
            warn!(pool = ?pool, "a shared channel failed; opening another (the connection stays)");
            *slot = match pool {
                Pool::Consume => consume_channel(&self.consume_conn).await?,
                Pool::Declare => declare_channel(&self.consume_conn).await?,
            };
        }
        Ok(slot.clone())
    }

    /// The channel to publish on now (an `Arc`: one atomic increment per publish).
    pub(crate) fn publish_channel(&self) -> Arc<Channel> {
        match self.publish.read() {
            Ok(c) => c.clone(),
            Err(p) => p.into_inner().clone(),
        }
    }

    /// A publish on `failed` went wrong. A channel error (its connection alive) replaces
    /// that channel alone (publishes still waiting on it fail, nothing else); a dead
    /// connection reconnects everything.
    pub(crate) async fn publish_failed(&self, failed: &Channel) {
        if failed.status().connected() {
            return; // a failed publish on a live channel (a nack, a timeout): nothing to mend
        }
        if !self.publish_conn.status().connected() {
            return self.mark_lost("publish connection closed");
        }
        let _one = self.publish_reopen.lock().await;
        if self.publish_channel().id() != failed.id() {
            return; // already replaced
        }
        match publish_channel(&self.publish_conn).await {
            Ok(fresh) => {
                warn!("the publish channel failed; opening another (the connections stay)");
                if let Ok(mut slot) = self.publish.write() {
                    *slot = Arc::new(fresh);
                }
            }
            Err(e) => self.mark_lost(&format!("cannot reopen the publish channel: {e}")),
        }
    }

    /// The connection probes and reply queues use.
    pub(crate) fn consume_conn(&self) -> &Connection {
        &self.consume_conn
    }

    /// True while both connections are up.
    pub(crate) fn connected(&self) -> bool {
        self.publish_conn.status().connected() && self.consume_conn.status().connected()
    }

    /// Drops every pooled queue (the links are lost or closing). Plain sessions' go with the
    /// connection (exclusive); resumable sessions' expire after the grace period.
    pub(crate) fn clear_pools(&self) {
        self.pool.clear();
        self.resumable_pool.clear();
    }

    /// Marks these links broken so the manager reconnects.
    pub(crate) fn mark_lost(&self, why: &str) {
        if !self.lost.is_cancelled() {
            warn!(reason = why, "broker link failed; reconnecting");
            self.lost.cancel();
        }
    }

    /// Closes both connections. Bounded: on a connection that just died, lapin's close can
    /// wait forever, and the manager must get on with reconnecting.
    ///
    /// Late consumes ([`Links::tasks`]) get `CLOSE_TIMEOUT` to detach while the connections
    /// are up; whatever is left fails with them.
    async fn close(&self) {
        self.tasks.close();
        if tokio::time::timeout(CLOSE_TIMEOUT, self.tasks.wait())
            .await
            .is_err()
        {
            debug!(
                left = self.tasks.len(),
                "late consumes still running at close"
            );
        }
        for conn in [&self.publish_conn, &self.consume_conn] {
            let close = conn.close(200, "bridge stopping".into());
            if tokio::time::timeout(CLOSE_TIMEOUT, close).await.is_err() {
                debug!("broker connection close timed out");
            }
        }
    }
}

/// Sessions' handle on the broker.
#[derive(Clone)]
pub struct Broker {
    rx: watch::Receiver<Option<Arc<Links>>>,
    counts: BrokerCounters,
}

/// What the manager connects to and declares.
pub struct Settings {
    /// One AMQP URL per node, tried in turn from a random one.
    pub urls: Vec<String>,
    /// PEM authorities trusted for `amqps://` URLs besides the system's roots.
    pub ca: Option<String>,
    /// Ends the AMQP connection names (`ferry-bridge publish <instance>`), so an operator can
    /// tell bridges apart in the broker's connection list.
    pub instance: String,
    /// Declared on every connect for cancel notices (empty: none).
    pub cancel_exchange: String,
    /// The queue type of resumable sessions' reply queues and leases.
    pub reply_queue_type: ReplyQueueType,
    /// Plain sessions' reply queues kept declared ahead of demand (0: none).
    pub reply_pool: usize,
    /// Resumable sessions' reply queues kept declared ahead of demand, and the grace period
    /// they are declared with (0 of either: none).
    pub resumable_pool: (usize, std::time::Duration),
    /// What the manager and the probe count (the bridge's metrics).
    pub counters: BrokerCounters,
}

impl Broker {
    /// Starts the manager task; it runs until `stop` is cancelled (then closes the links).
    pub fn start(
        settings: Settings,
        stop: CancellationToken,
    ) -> (Self, tokio::task::JoinHandle<()>) {
        let (tx, rx) = watch::channel(None);
        let counts = settings.counters.clone();
        let task = tokio::spawn(connect::manage(settings, tx, stop));
        (Self { rx, counts }, task)
    }

    /// A handle on no broker at all (the session loop's unit tests, which reach a fake through
    /// [`port`]): never connected.
    #[cfg(test)]
    pub(crate) fn offline() -> Self {
        let (_, rx) = watch::channel(None);
        let counts = crate::stats::Stats::new().broker_counters();
        Self { rx, counts }
    }

    /// The broker's state for `/metrics`.
    pub fn health(&self) -> crate::stats::BrokerHealth {
        let current = self.current();
        crate::stats::BrokerHealth {
            connected: current.is_some(),
            reply_pool_ready: current.as_ref().map_or(0, |l| l.pool.len() as u64),
            resumable_pool_ready: current
                .as_ref()
                .map_or(0, |l| l.resumable_pool.len() as u64),
            node: current.map(|l| l.node.clone()),
        }
    }

    /// The current links, if the broker is connected.
    pub fn current(&self) -> Option<Arc<Links>> {
        live(&self.rx.borrow())
    }

    /// True when the broker is connected.
    pub fn ready(&self) -> bool {
        self.current().is_some()
    }

    /// The live links, waiting for them while the broker is away.
    pub async fn links(&self) -> Arc<Links> {
        let mut rx = self.rx.clone();
        loop {
            if let Some(links) = live(&rx.borrow_and_update()) {
                return links;
            }
            if rx.changed().await.is_err() {
                std::future::pending::<()>().await;
            }
        }
    }

    /// Broker restarts seen so far.
    pub fn restarts(&self) -> u64 {
        self.counts.restarts.get()
    }

    /// The live links once the manager has seen more than `seen` restarts.
    pub async fn restarted_after(&self, seen: u64) -> Arc<Links> {
        let mut rx = self.rx.clone();
        loop {
            if let Some(links) = live(&rx.borrow_and_update()).filter(|l| l.restarts > seen) {
                return links;
            }
            if rx.changed().await.is_err() {
                std::future::pending::<()>().await;
            }
        }
    }

    /// Waits until the broker is connected.
    pub async fn wait_ready(&self) {
        let mut rx = self.rx.clone();
        let _ = rx.wait_for(|l| l.is_some()).await;
    }
}

/// The links the manager published, unless they are already known to be lost.
fn live(published: &Option<Arc<Links>>) -> Option<Arc<Links>> {
    published
        .as_ref()
        .filter(|l| !l.lost.is_cancelled())
        .cloned()
}

/// The shared channels of the consume connection.
#[derive(Debug, Clone, Copy)]
enum Pool {
    /// Where the sessions' reply queues are consumed and acknowledged.
    Consume,
    /// Where reply queues and leases are declared, and plain sessions' queues deleted.
    Declare,
}

/// Which of `n` channel slots `key` uses (a hash of it).
fn slot_of(key: &str, n: usize) -> usize {
    let h = key.bytes().fold(0usize, |h, b| {
        h.wrapping_mul(31).wrapping_add(usize::from(b))
    });
    h % n
}
