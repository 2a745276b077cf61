//! The `no_responders` check: a passive `queue_declare` tells whether a destination queue
//! exists and how many consumers it has. Positive answers are cached briefly. Also the
//! existence check of a gather's exchange (passive `exchange_declare`, never cached), and of
//! a resumed session's reply queue.
//!
//! A failed passive declare (404) closes its AMQP channel, so probes use a dedicated channel
//! that is reopened on the next probe.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use lapin::options::{ExchangeDeclareOptions, QueueDeclareOptions};
use lapin::protocol::{AMQPErrorKind, AMQPSoftError};
use lapin::types::FieldTable;
use lapin::{Channel, Connection, ErrorKind, ExchangeKind};

use crate::error::BridgeError;

/// How long "this queue has consumers" is trusted.
const CACHE_TTL: Duration = Duration::from_secs(1);
/// Cache entries kept before expired ones are swept.
const CACHE_SWEEP_AT: usize = 1024;

/// The probe channel and the cache of destinations recently seen with consumers.
#[derive(Default)]
pub struct Probe {
    channel: tokio::sync::Mutex<Option<Channel>>,
    has_consumers: Mutex<HashMap<String, Instant>>,
}

impl Probe {
    fn cached(&self, dest: &str) -> bool {
        let Ok(cache) = self.has_consumers.lock() else {
            return false;
        };
        cache.get(dest).is_some_and(|t| t.elapsed() < CACHE_TTL)
    }

    fn remember(&self, dest: &str) {
        if let Ok(mut cache) = self.has_consumers.lock() {
            if cache.len() >= CACHE_SWEEP_AT {
                cache.retain(|_, t| t.elapsed() < CACHE_TTL);
            }
            cache.insert(dest.to_owned(), Instant::now());
        }
    }

    /// `Ok` when `dest` exists and has a consumer; `no_route` when it does not exist;
    /// `no_responders` when nobody consumes it.
    pub async fn check(&self, conn: &Connection, dest: &str) -> Result<(), BridgeError> {
        if self.cached(dest) {
            return Ok(());
        }
        let mut slot = self.channel.lock().await;
        if self.cached(dest) {
            return Ok(());
        }
        match Self::passive(&mut slot, conn, dest).await? {
            Some(q) if q.consumer_count() > 0 => {
                self.remember(dest);
                Ok(())
            }
            Some(_) => Err(BridgeError::NoResponders(dest.to_owned())),
            None => Err(BridgeError::NoRoute(dest.to_owned())),
        }
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
        let mut slot = self.channel.lock().await;
        Ok(Self::passive(&mut slot, conn, name).await?.is_some())
    }

    /// Deletes the queue `name` on the probe channel (a channel error there costs no session).
    pub async fn delete_queue(&self, conn: &Connection, name: &str) -> Result<(), BridgeError> {
        let mut slot = self.channel.lock().await;
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
        let mut slot = self.channel.lock().await;
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
