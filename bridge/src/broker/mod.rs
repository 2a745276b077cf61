//! The broker connection manager: separate publish and consume connections, (re)connected
//! with exponential backoff and jitter, published to sessions through a `watch` channel.
//!
//! `None` in the watch means "no broker": new requests fail with `broker_unavailable` at once.

pub mod epoch;
pub mod lease;
pub mod probe;
pub mod publish;
pub mod replies;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use futures_util::StreamExt;
use lapin::options::{BasicQosOptions, ConfirmSelectOptions, ExchangeDeclareOptions};
use lapin::types::FieldTable;
use lapin::{Channel, Connection, ConnectionProperties, Event, ExchangeKind};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use crate::error::BridgeError;
use probe::Probe;

/// How many channels share the consumers of the per-session reply queues.
const CONSUME_CHANNELS: usize = 4;
/// Unacknowledged replies per session before the broker holds further ones back.
const REPLY_PREFETCH: u16 = 128;
/// First retry delay after a failed connect; doubles up to [`MAX_BACKOFF`].
const MIN_BACKOFF: Duration = Duration::from_millis(200);
/// Longest retry delay.
const MAX_BACKOFF: Duration = Duration::from_secs(10);
/// Longest closing a connection may take.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(2);
/// Longest one connection attempt (both connections, their channels, the declares) may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

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
}

impl Links {
    /// The consume channel for a session (spread by a hash of its id), opened again (with
    /// its prefetch) if a channel error closed it.
    pub(crate) async fn consume_channel(&self, session: &str) -> Result<Channel, lapin::Error> {
        let h = session.bytes().fold(0usize, |h, b| {
            h.wrapping_mul(31).wrapping_add(usize::from(b))
        });
        let mut slot = self.consume[h % self.consume.len()].lock().await;
        if !slot.status().connected() && self.consume_conn.status().connected() {
            warn!("a consume channel failed; opening another (the connection stays)");
            *slot = consume_channel(&self.consume_conn).await?;
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

    /// Marks these links broken so the manager reconnects.
    pub(crate) fn mark_lost(&self, why: &str) {
        if !self.lost.is_cancelled() {
            warn!(reason = why, "broker link failed; reconnecting");
            self.lost.cancel();
        }
    }

    /// Closes both connections. Bounded: on a connection that just died, lapin's close can
    /// wait forever, and the manager must get on with reconnecting.
    async fn close(&self) {
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
    counts: Arc<Counts>,
}

/// What the manager has done, for `/metrics`.
#[derive(Default)]
struct Counts {
    connects: AtomicU64,
    restarts: AtomicU64,
}

impl Broker {
    /// Starts the manager task; it runs until `stop` is cancelled (then closes the links).
    /// `instance` ends the AMQP connection names (`ferry-bridge publish <instance>`), so an
    /// operator can tell bridges apart in the broker's connection list.
    /// `cancel_exchange` (empty: none) is declared on every connect for cancel notices.
    /// `ca` (PEM) is trusted for an `amqps://` URL besides the system's roots.
    pub fn start(
        url: String,
        ca: Option<String>,
        instance: String,
        cancel_exchange: String,
        stop: CancellationToken,
    ) -> (Self, tokio::task::JoinHandle<()>) {
        let (tx, rx) = watch::channel(None);
        let names = Names {
            url,
            ca,
            instance,
            cancel_exchange,
        };
        let counts = Arc::new(Counts::default());
        let task = tokio::spawn(manage(names, tx, counts.clone(), stop));
        (Self { rx, counts }, task)
    }

    /// The broker's state for `/metrics`.
    pub fn health(&self) -> crate::stats::BrokerHealth {
        crate::stats::BrokerHealth {
            connected: self.ready(),
            connects: self.counts.connects.load(Ordering::Relaxed),
            restarts: self.counts.restarts.load(Ordering::Relaxed),
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
        self.counts.restarts.load(Ordering::Relaxed)
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

/// What the manager connects to and declares.
struct Names {
    url: String,
    ca: Option<String>,
    instance: String,
    cancel_exchange: String,
}

async fn manage(
    names: Names,
    tx: watch::Sender<Option<Arc<Links>>>,
    counts: Arc<Counts>,
    stop: CancellationToken,
) {
    let mut backoff = MIN_BACKOFF;
    let (mut restarts, mut connected_before) = (0, false);
    loop {
        // A broker that accepts TCP but never finishes the AMQP handshake (one still booting,
        // or overloaded) must not stall the manager: bound the attempt, then back off.
        let attempt = tokio::time::timeout(CONNECT_TIMEOUT, connect(&names));
        let links = tokio::select! {
            _ = stop.cancelled() => return,
            r = attempt => r.unwrap_or_else(|_| {
                Err(BridgeError::BrokerUnavailable("connecting to the broker timed out".into()))
            }),
        };
        let (mut links, mut events) = match links {
            Ok(l) => l,
            Err(e) => {
                let delay = jitter(backoff);
                warn!(error = %e, retry_in = ?delay, "cannot connect to the broker; retrying");
                tokio::select! {
                    _ = stop.cancelled() => return,
                    _ = tokio::time::sleep(delay) => {}
                }
                backoff = (backoff * 2).min(MAX_BACKOFF);
                continue;
            }
        };
        backoff = MIN_BACKOFF;
        let hold = epoch::Marker::hold(&links.publish_conn, &names.instance);
        let kept = match tokio::time::timeout(CLOSE_TIMEOUT, hold).await {
            Ok(Ok((marker, kept))) => {
                links.marker = Some(marker);
                kept
            }
            Ok(Err(e)) => {
                warn!(error = %e, "cannot check the broker's restart marker; assuming a restart");
                false
            }
            Err(_) => {
                warn!("checking the broker's restart marker timed out; assuming a restart");
                false
            }
        };
        if connected_before && !kept {
            restarts += 1;
            counts.restarts.store(restarts, Ordering::Relaxed);
            warn!("the broker restarted: replies it held in reply queues are gone");
        }
        counts.connects.fetch_add(1, Ordering::Relaxed);
        connected_before = true;
        links.restarts = restarts;
        info!("connected to the broker");
        let links = Arc::new(links);
        tx.send_replace(Some(links.clone()));
        loop {
            tokio::select! {
                _ = stop.cancelled() => {
                    tx.send_replace(None);
                    if let Some(marker) = &links.marker {
                        let _ = tokio::time::timeout(CLOSE_TIMEOUT, marker.remove()).await;
                    }
                    links.close().await;
                    return;
                }
                _ = links.lost.cancelled() => break,
                ev = events.next() => match ev {
                    // Channel errors (e.g. a probe's 404) arrive here too; only a
                    // connection that is no longer connected means the links are gone.
                    Some(Event::Error(e)) if links.connected() => {
                        debug!(error = %e, "broker channel error");
                    }
                    Some(Event::Error(e)) => {
                        links.mark_lost(&e.to_string());
                        break;
                    }
                    Some(Event::ConnectionBlocked(why)) => warn!(reason = why, "broker blocked publishing"),
                    Some(Event::ConnectionUnblocked) => info!("broker unblocked publishing"),
                    Some(_) => {}
                    None => {
                        links.mark_lost("event stream ended");
                        break;
                    }
                }
            }
        }
        tx.send_replace(None);
        links.close().await;
        warn!("broker connection lost; reconnecting");
    }
}

type EventStream = futures_util::stream::BoxStream<'static, Event>;

async fn connect(names: &Names) -> Result<(Links, EventStream), BridgeError> {
    let (url, instance) = (names.url.as_str(), names.instance.as_str());
    let props = |role: &str| {
        ConnectionProperties::default()
            .with_connection_name(format!("ferry-bridge {role} {instance}").into())
    };
    let open = |role| {
        let tls = lapin::tcp::OwnedTLSConfig {
            identity: None,
            cert_chain: names.ca.clone(),
        };
        async move {
            let runtime = lapin::runtime::default_runtime()?;
            Connection::connect_with_config(url, props(role), tls, runtime).await
        }
    };
    let publish_conn = open("publish").await?;
    let consume_conn = open("consume").await?;
    let publish = publish_channel(&publish_conn).await?;
    let mut consume = Vec::with_capacity(CONSUME_CHANNELS);
    for _ in 0..CONSUME_CHANNELS {
        consume.push(tokio::sync::Mutex::new(
            consume_channel(&consume_conn).await?,
        ));
    }
    let cancel_exchange = declare_cancel_exchange(&publish_conn, &names.cancel_exchange).await;
    let events = futures_util::stream::select(
        publish_conn.events_listener(),
        consume_conn.events_listener(),
    )
    .boxed();
    Ok((
        Links {
            publish_conn,
            consume_conn,
            publish: std::sync::RwLock::new(Arc::new(publish)),
            publish_reopen: tokio::sync::Mutex::new(()),
            consume,
            probe: Probe::default(),
            cancel_exchange,
            lost: CancellationToken::new(),
            restarts: 0,
            marker: None,
        },
        events,
    ))
}

/// A channel in confirm mode, for publishing.
async fn publish_channel(conn: &Connection) -> Result<Channel, lapin::Error> {
    let ch = conn.create_channel().await?;
    ch.confirm_select(ConfirmSelectOptions::default()).await?;
    Ok(ch)
}

/// A consume channel with the per-consumer prefetch.
async fn consume_channel(conn: &Connection) -> Result<Channel, lapin::Error> {
    let ch = conn.create_channel().await?;
    // RabbitMQ applies a non-global prefetch per consumer: each session's reply queue may
    // have this many replies in flight to the bridge; the rest wait in the broker until the
    // session has written earlier ones to its socket.
    ch.basic_qos(REPLY_PREFETCH, BasicQosOptions { global: false })
        .await?;
    Ok(ch)
}

/// Declares the cancel-notice exchange (topic, durable; what `docs/protocol.md` tells
/// workers to declare too) on a channel of its own, so a conflicting existing exchange only
/// turns notices off (logged) instead of breaking the publish channel.
async fn declare_cancel_exchange(conn: &Connection, name: &str) -> Option<Arc<str>> {
    if name.is_empty() {
        return None;
    }
    let declared = async {
        let ch = conn.create_channel().await?;
        let opts = ExchangeDeclareOptions {
            durable: true,
            ..ExchangeDeclareOptions::default()
        };
        ch.exchange_declare(
            name.into(),
            ExchangeKind::Topic,
            opts,
            FieldTable::default(),
        )
        .await?;
        let _ = ch.close(200, "declared".into()).await;
        Ok::<_, lapin::Error>(())
    };
    match declared.await {
        Ok(()) => Some(name.into()),
        Err(e) => {
            warn!(exchange = name, error = %e, "cannot declare the cancel exchange; cancel notices are off");
            None
        }
    }
}

/// `d` scaled by a random factor in 0.75..1.25.
fn jitter(d: Duration) -> Duration {
    d.mul_f64(rand::random_range(0.75..1.25))
}
