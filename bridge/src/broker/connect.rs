//! The broker connection manager: connects to one node of the broker (a random one of the
//! `--amqp-url`s first), moves on to the next when it fails, with exponential backoff and
//! jitter once every node has failed in a row, and publishes the live links to sessions.

use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use lapin::options::{BasicQosOptions, ConfirmSelectOptions, ExchangeDeclareOptions};
use lapin::types::FieldTable;
use lapin::{Channel, Connection, ConnectionProperties, Event, ExchangeKind};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use super::probe::Probe;
use super::{CLOSE_TIMEOUT, Links, Settings, epoch};
use crate::config::ReplyQueueType;
use crate::error::BridgeError;

/// How many channels share the consumers of the per-session reply queues. The broker runs
/// each channel's declares and consumes one after another, so when thousands of sessions
/// declare or resume at once the channels are the queue they wait in: 32 against 4 halved a
/// 4,000-session storm's resume p99 and refused none (docs/benchmarks.md).
const CONSUME_CHANNELS: usize = 32;
/// Channels the reply queues and leases are declared (and plain sessions' queues deleted) on,
/// beside the consume channels: a durable declare holds its channel in the broker for
/// milliseconds, and on a consume channel every other session's replies on it would wait
/// behind it (and a declare that fails would close their consumers).
const DECLARE_CHANNELS: usize = 32;
/// Unacknowledged replies per session before the broker holds further ones back.
const REPLY_PREFETCH: u16 = 128;
/// Retry delay once every node has failed in a row; doubles up to [`MAX_BACKOFF`].
const MIN_BACKOFF: Duration = Duration::from_millis(200);
/// Longest retry delay.
const MAX_BACKOFF: Duration = Duration::from_secs(10);
/// Longest one connection attempt (both connections, their channels, the declares) may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// `host:port` of an AMQP URL, for logs and metrics: never its credentials or vhost.
pub fn node_name(url: &str) -> String {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let authority = rest.split(['/', '?']).next().unwrap_or_default();
    let host = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    host.chars().take(128).collect()
}

/// Runs until `stop`: connects, publishes the links, waits for them to fail, moves on.
pub(super) async fn manage(
    names: Settings,
    tx: watch::Sender<Option<Arc<Links>>>,
    stop: CancellationToken,
) {
    let nodes = names.urls.len().max(1);
    let mut backoff = MIN_BACKOFF;
    let (mut restarts, mut connected_before) = (0, false);
    // Bridges start on different nodes, so their load spreads over the cluster.
    let mut at = rand::random_range(0..nodes);
    let (mut failed_in_row, mut last_node) = (0usize, None);
    loop {
        let url = names.urls.get(at % nodes).map_or("", String::as_str);
        let node = node_name(url);
        // A broker that accepts TCP but never finishes the AMQP handshake (one still booting,
        // stalled or overloaded) must not stall the manager: bound the attempt, move on.
        let attempt = tokio::time::timeout(CONNECT_TIMEOUT, connect(&names, url, &node));
        let links = tokio::select! {
            _ = stop.cancelled() => return,
            r = attempt => r.unwrap_or_else(|_| {
                Err(BridgeError::BrokerUnavailable("connecting to the broker timed out".into()))
            }),
        };
        let (mut links, mut events) = match links {
            Ok(l) => l,
            Err(e) => {
                at += 1;
                failed_in_row += 1;
                if !failed_in_row.is_multiple_of(nodes) {
                    warn!(node, error = %e, "cannot connect to this broker node; trying the next");
                    continue;
                }
                let delay = jitter(backoff);
                warn!(node, error = %e, retry_in = ?delay, "cannot connect to the broker; retrying");
                tokio::select! {
                    _ = stop.cancelled() => return,
                    _ = tokio::time::sleep(delay) => {}
                }
                backoff = (backoff * 2).min(MAX_BACKOFF);
                continue;
            }
        };
        (backoff, failed_in_row) = (MIN_BACKOFF, 0);
        let kept = match names.reply_queue_type {
            // Quorum queues keep every reply through a restart: nothing is lost to notice.
            ReplyQueueType::Quorum => true,
            ReplyQueueType::Classic => hold_marker(&mut links, &names.instance).await,
        };
        if connected_before && !kept {
            restarts += 1;
            names.counters.restarts.inc();
            warn!("the broker restarted: replies it held in reply queues are gone");
        }
        names.counters.connects.inc();
        if last_node.is_some_and(|n| n != at % nodes) {
            names.counters.failovers.inc();
        }
        last_node = Some(at % nodes);
        connected_before = true;
        links.restarts = restarts;
        info!(node, "connected to the broker");
        let links = Arc::new(links);
        tx.send_replace(Some(links.clone()));
        let refill = futures_util::future::join(
            super::pool::refill(links.clone(), |l| &l.pool),
            super::pool::refill(links.clone(), |l| &l.resumable_pool),
        );
        tokio::pin!(refill);
        loop {
            tokio::select! {
                _ = &mut refill => {}
                _ = stop.cancelled() => {
                    tx.send_replace(None);
                    if let Some(marker) = &links.marker {
                        let _ = tokio::time::timeout(CLOSE_TIMEOUT, marker.remove()).await;
                    }
                    links.clear_pools();
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
        links.clear_pools();
        links.close().await;
        // The node may be gone: the next attempt goes to the next one.
        at += 1;
        warn!(node, "broker connection lost; reconnecting");
    }
}

type EventStream = futures_util::stream::BoxStream<'static, Event>;

/// Holds the restart marker on fresh links; false when the broker (the marker's node, on a
/// cluster) restarted since the last links, or when that cannot be told.
async fn hold_marker(links: &mut Links, instance: &str) -> bool {
    let hold = epoch::Marker::hold(&links.publish_conn, instance);
    match tokio::time::timeout(CLOSE_TIMEOUT, hold).await {
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
    }
}

/// Opens both connections to `url` and their channels.
async fn connect(
    names: &Settings,
    url: &str,
    node: &str,
) -> Result<(Links, EventStream), BridgeError> {
    let instance = names.instance.as_str();
    let open = |role| {
        open(
            url,
            format!("ferry-bridge {role} {instance}"),
            names.ca.clone(),
        )
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
    let mut declare = Vec::with_capacity(DECLARE_CHANNELS);
    for _ in 0..DECLARE_CHANNELS {
        declare.push(tokio::sync::Mutex::new(
            declare_channel(&consume_conn).await?,
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
            declare,
            probe: Probe::new(names.counters.clone()),
            cancel_exchange,
            lost: CancellationToken::new(),
            restarts: 0,
            marker: None,
            node: node.into(),
            reply_queue_type: names.reply_queue_type,
            pool: super::pool::ReplyPool::new(names.reply_pool, Duration::ZERO),
            resumable_pool: super::pool::ReplyPool::new(
                names.resumable_pool.0,
                names.resumable_pool.1,
            ),
            tasks: tokio_util::task::TaskTracker::new(),
        },
        events,
    ))
}

/// One AMQP connection named `name` (in the broker's connection list) to `url`, trusting the
/// PEM authorities `ca` besides the system's for `amqps://`.
pub async fn open(url: &str, name: String, ca: Option<String>) -> Result<Connection, lapin::Error> {
    let tls = lapin::tcp::OwnedTLSConfig {
        identity: None,
        cert_chain: ca,
    };
    let runtime = lapin::runtime::default_runtime()?;
    let props = ConnectionProperties::default().with_connection_name(name.into());
    Connection::connect_with_config(url, props, tls, runtime).await
}

/// A channel in confirm mode, for publishing.
pub(super) async fn publish_channel(conn: &Connection) -> Result<Channel, lapin::Error> {
    let ch = conn.create_channel().await?;
    ch.confirm_select(ConfirmSelectOptions::default()).await?;
    Ok(ch)
}

/// A channel for declares and deletes: no prefetch, no confirms, no consumers.
pub(super) async fn declare_channel(conn: &Connection) -> Result<Channel, lapin::Error> {
    conn.create_channel().await
}

/// A consume channel with the per-consumer prefetch.
pub(super) async fn consume_channel(conn: &Connection) -> Result<Channel, lapin::Error> {
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
    match declare_topic(conn, name, false).await {
        Ok(()) => Some(name.into()),
        Err(e) => {
            warn!(exchange = name, error = %e, "cannot declare the cancel exchange; cancel notices are off");
            None
        }
    }
}

/// Declares the durable topic exchange `name` on a channel of its own (or, `passive`, checks
/// that it exists: a missing one closes only that channel).
pub async fn declare_topic(
    conn: &Connection,
    name: &str,
    passive: bool,
) -> Result<(), lapin::Error> {
    let ch = conn.create_channel().await?;
    let opts = ExchangeDeclareOptions {
        passive,
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
    Ok(())
}

/// `d` scaled by a random factor in 0.75..1.25.
fn jitter(d: Duration) -> Duration {
    d.mul_f64(rand::random_range(0.75..1.25))
}
