//! Declares and consumes a session's reply queue, and holds its lease, without ever dropping
//! those steps half-way. Once `basic.consume` is sent the broker may deliver a waiting reply
//! at once; a consumer abandoned then (lapin cancels it) would keep that delivery
//! unacknowledged on a consume channel other sessions share until the channel closed, a reply
//! lost to its session (found in a reconnect storm). So past the caller's limit the caller
//! hears its [`Late`] error, and the steps finish on [`Links::tasks`] and then detach what they
//! opened: the reply goes back to the queue for the client's next try.

use std::sync::Arc;
use std::time::Duration;

use lapin::Channel;
use lapin::options::BasicConsumeOptions;
use lapin::types::FieldTable;
use tracing::debug;

use super::Links;
use super::declare;
use super::lease::Lease;
use super::replies::ReplySub;
use crate::error::BridgeError;

/// What the caller of a consume hears when its limit passes.
#[derive(Debug, Clone, Copy)]
pub(super) enum Late {
    /// A request waited for its queue as long as it would for its reply: `timeout`.
    Timeout(Duration),
    /// A resume or rebind: `broker_unavailable`, the client tries again.
    Unavailable,
}

impl Late {
    pub(super) fn error(self, what: &str) -> BridgeError {
        match self {
            Late::Timeout(limit) => BridgeError::Timeout(limit.as_millis() as u64),
            Late::Unavailable => BridgeError::BrokerUnavailable(what.into()),
        }
    }
}

/// Declares `queue` (the reply queue of `session`, as [`declare::reply_queue`] says for
/// `grace`), consumes it and holds the lease `lease`, if any, within `limit`; past it the
/// caller hears `late`'s error and the steps finish in the background, then detach.
pub(super) async fn consume(
    links: Arc<Links>,
    session: &str,
    queue: String,
    lease: Option<&str>,
    grace: Duration,
    (limit, late): (Duration, Late),
) -> Result<ReplySub, BridgeError> {
    let deadline = tokio::time::Instant::now() + limit;
    // No consumer exists before the channels are had: waiting for them may be dropped.
    let channels = async {
        let consume = links.consume_channel(session).await?;
        Ok::<_, lapin::Error>(Channels {
            declare: links.declare_channel(&queue).await?,
            consume,
        })
    };
    let channels = tokio::time::timeout_at(deadline, channels)
        .await
        .map_err(|_| late.error("consume channel timed out"))??;
    let lease = lease.map(str::to_owned);
    let mut steps = Box::pin(steps(links.clone(), channels, queue, lease, grace));
    match tokio::time::timeout_at(deadline, &mut steps).await {
        Ok(done) => done,
        Err(_) => {
            links.tasks.spawn(async move {
                if let Ok(sub) = steps.await {
                    debug!(queue = %sub.queue, "a consume finished after its caller gave up; detaching it");
                    sub.detach().await;
                }
            });
            Err(late.error("reply queue declare timed out"))
        }
    }
}

/// The two channels a session's queue is set up on.
struct Channels {
    /// Where the queue and lease are declared.
    declare: Channel,
    /// Where they are consumed (the session's replies arrive on it).
    consume: Channel,
}

/// The steps: declare the queue and the lease (at once, each on its declare channel),
/// consume the queue, hold the lease. A lease that cannot be held detaches the consumer just
/// made (its deliveries go back).
async fn steps(
    links: Arc<Links>,
    channels: Channels,
    queue: String,
    lease: Option<String>,
    grace: Duration,
) -> Result<ReplySub, BridgeError> {
    let Channels { declare, consume } = channels;
    let kind = links.reply_queue_type;
    let (opts, args) = declare::reply_queue(grace, kind);
    let queue_declared = declare.queue_declare(queue.as_str().into(), opts, args);
    let lease_declared = async {
        let Some(name) = &lease else {
            return Ok(());
        };
        let channel = links.declare_channel(name).await?;
        Lease::declare(&channel, name, grace, kind).await
    };
    let (declared, lease_declared) =
        futures_util::future::join(queue_declared, lease_declared).await;
    let consumed = match declared.and(lease_declared) {
        Ok(()) => {
            let opts = BasicConsumeOptions {
                no_ack: false,
                ..BasicConsumeOptions::default()
            };
            // Server-named: a resumed session's consumer may briefly share the channel with
            // the old one, and a reused tag would close the channel.
            consume
                .basic_consume(
                    queue.as_str().into(),
                    "".into(),
                    opts,
                    FieldTable::default(),
                )
                .await
        }
        Err(e) => Err(e),
    };
    let consumer = consumed.map_err(|e| failed(&links, e))?;
    let mut sub = ReplySub {
        queue,
        channel: consume,
        consumer,
        links,
        lease: None,
        lease_task: None,
    };
    if let Some(name) = lease {
        match Lease::consume(&sub.channel, &name).await {
            Ok(held) => sub.lease = Some(held),
            Err(e) => {
                let e = failed(&sub.links, e);
                sub.detach().await;
                return Err(e);
            }
        }
    }
    debug!(
        queue = %sub.queue,
        channel = sub.channel.id(),
        consumer = %sub.consumer.tag(),
        lease = sub.lease.as_ref().map(Lease::name),
        "reply queue consumed"
    );
    Ok(sub)
}

/// A step failed. A channel error (a queue declared elsewhere with other arguments) ends this
/// channel alone: it is replaced on its next use. Only a dead connection (which the manager
/// also hears of) reconnects everything.
pub(super) fn failed(links: &Links, e: lapin::Error) -> BridgeError {
    if !links.connected() {
        links.mark_lost("consume connection closed");
    }
    BridgeError::from(e)
}
