//! The `no_responders` check: a passive `queue_declare` tells whether a destination queue
//! exists and how many consumers it has. Answers are cached briefly, the negative ones too,
//! so a client naming unknown destinations costs itself, not the broker or others. Also the
//! existence check of a gather's exchange (passive `exchange_declare`, never cached), of a
//! resumed session's reply queue and lease, and the delete of a spent lease.
//!
//! A failed passive declare (404) closes its AMQP channel, so probes use channels of their
//! own: a small pool, each reopened on its next probe. A name always probes on the same
//! channel (by a hash of it): probes of one destination run one after the other, so the
//! second finds the first's answer cached and a socket's requests keep their order, while a
//! slow or failing probe holds one channel, not every session's first request.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use lapin::options::{ExchangeDeclareOptions, QueueDeclareOptions};
use lapin::protocol::{AMQPErrorKind, AMQPSoftError};
use lapin::types::FieldTable;
use lapin::{Channel, Connection, ErrorKind, ExchangeKind};

use crate::error::BridgeError;
use crate::stats::BrokerCounters;

/// How long an answer (consumers, none, no such queue) is trusted.
const CACHE_TTL: Duration = Duration::from_secs(1);
/// Cache entries kept before expired ones are swept; past twice this, all are dropped.
const CACHE_SWEEP_AT: usize = 1024;
/// Probe channels.
const PROBE_CHANNELS: usize = 4;

/// What a probe found for a destination.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Seen {
    Consumed,
    NoConsumers,
    Missing,
}

/// The probe channels and the cache of recent answers.
pub struct Probe {
    channels: Vec<tokio::sync::Mutex<Option<Channel>>>,
    seen: Mutex<HashMap<String, (Instant, Seen)>>,
    counters: BrokerCounters,
}

impl Probe {
    /// No channel yet (each opens on first use) and an empty cache; hits and misses are
    /// counted in `counters`.
    pub fn new(counters: BrokerCounters) -> Self {
        Self {
            channels: (0..PROBE_CHANNELS)
                .map(|_| tokio::sync::Mutex::new(None))
                .collect(),
            seen: Mutex::new(HashMap::new()),
            counters,
        }
    }

    fn cached(&self, dest: &str) -> Option<Seen> {
        let cache = self.seen.lock().ok()?;
        let seen = cache
            .get(dest)
            .filter(|(t, _)| t.elapsed() < CACHE_TTL)
            .map(|(_, seen)| *seen);
        if seen.is_some() {
            self.counters.probe_hits.inc();
        }
        seen
    }

    fn remember(&self, dest: &str, seen: Seen) {
        if let Ok(mut cache) = self.seen.lock() {
            if cache.len() >= CACHE_SWEEP_AT {
                cache.retain(|_, (t, _)| t.elapsed() < CACHE_TTL);
                if cache.len() >= 2 * CACHE_SWEEP_AT {
                    cache.clear(); // a flood of fresh names: bounded memory first
                }
            }
            cache.insert(dest.to_owned(), (Instant::now(), seen));
        }
    }

    fn answer(dest: &str, seen: Seen) -> Result<(), BridgeError> {
        match seen {
            Seen::Consumed => Ok(()),
            Seen::NoConsumers => Err(BridgeError::NoResponders(dest.to_owned())),
            Seen::Missing => Err(BridgeError::NoRoute(dest.to_owned())),
        }
    }

    /// The channel slot `name` probes on.
    fn slot(&self, name: &str) -> &tokio::sync::Mutex<Option<Channel>> {
        let h = name.bytes().fold(0usize, |h, b| {
            h.wrapping_mul(31).wrapping_add(usize::from(b))
        });
        &self.channels[h % self.channels.len()]
    }

    /// `Ok` when `dest` exists and has a consumer; `no_route` when it does not exist;
    /// `no_responders` when nobody consumes it.
    pub async fn check(&self, conn: &Connection, dest: &str) -> Result<(), BridgeError> {
        if let Some(seen) = self.cached(dest) {
            return Self::answer(dest, seen);
        }
        let mut slot = self.slot(dest).lock().await;
        if let Some(seen) = self.cached(dest) {
            return Self::answer(dest, seen);
        }
        self.counters.probe_misses.inc();
        let seen = match Self::passive(&mut slot, conn, dest).await? {
            Some(q) if q.consumer_count() > 0 => Seen::Consumed,
            Some(_) => Seen::NoConsumers,
            None => Seen::Missing,
        };
        self.remember(dest, seen);
        Self::answer(dest, seen)
    }

    /// A passive declare of the queue `name` on the probe channel; `None` when it does not
    /// exist (the 404 closed the channel; the next probe opens another).
    async fn passive(
        slot: &mut Option<Channel>,
        conn: &Connection,
        name: &str,
    ) -> Result<Option<lapin::Queue>, BridgeError> {
        let channel = Self::channel(slot, conn).await?;
        let opts = QueueDeclareOptions {
            passive: true,
            ..QueueDeclareOptions::default()
        };
        match channel
            .queue_declare(name.into(), opts, FieldTable::default())
            .await
        {
            Ok(q) => Ok(Some(q)),
            Err(e) => {
                *slot = None;
                if is_not_found(&e) {
                    Ok(None)
                } else {
                    Err(e.into())
                }
            }
        }
    }
}

impl Probe {
    /// Whether the queue `name` exists (a passive declare; a reply queue of a session).
    pub async fn queue_exists(&self, conn: &Connection, name: &str) -> Result<bool, BridgeError> {
        let mut slot = self.slot(name).lock().await;
        Ok(Self::passive(&mut slot, conn, name).await?.is_some())
    }

    /// Deletes the queue `name` on the probe channel (a channel error there costs no session).
    pub async fn delete_queue(&self, conn: &Connection, name: &str) -> Result<(), BridgeError> {
        let mut slot = self.slot(name).lock().await;
        let channel = Self::channel(&mut slot, conn).await?;
        match channel
            .queue_delete(name.into(), lapin::options::QueueDeleteOptions::default())
            .await
        {
            Ok(_) => Ok(()),
            Err(e) => {
                *slot = None;
                Err(e.into())
            }
        }
    }

    /// `Ok` when the exchange `name` exists; `no_route` when it does not. Not cached: an
    /// exchange deleted after a cached answer would make the publish close the shared
    /// publish channel, and gathers are rare.
    pub async fn check_exchange(&self, conn: &Connection, name: &str) -> Result<(), BridgeError> {
        let mut slot = self.slot(name).lock().await;
        let channel = Self::channel(&mut slot, conn).await?;
        let opts = ExchangeDeclareOptions {
            passive: true,
            ..ExchangeDeclareOptions::default()
        };
        let table = FieldTable::default();
        match channel
            .exchange_declare(name.into(), ExchangeKind::Fanout, opts, table)
            .await
        {
            Ok(()) => Ok(()),
            Err(e) => {
                *slot = None;
                if is_not_found(&e) {
                    Err(BridgeError::NoExchange(name.to_owned()))
                } else {
                    Err(e.into())
                }
            }
        }
    }

    /// The probe channel, (re)opened when missing or closed by a failed passive declare.
    async fn channel(
        slot: &mut Option<Channel>,
        conn: &Connection,
    ) -> Result<Channel, BridgeError> {
        if let Some(c) = slot.as_ref()
            && c.status().connected()
        {
            return Ok(c.clone());
        }
        let c = conn.create_channel().await?;
        *slot = Some(c.clone());
        Ok(c)
    }
}

fn is_not_found(e: &lapin::Error) -> bool {
    matches!(e.kind(), ErrorKind::ProtocolError(err)
        if *err.kind() == AMQPErrorKind::Soft(AMQPSoftError::NOTFOUND))
}
