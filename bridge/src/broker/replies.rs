//! The per-session reply queue `ferry.reply.<session>`: declared on the session's first
//! request, consumed (with acks and a prefetch, so a slow socket leaves replies in the broker
//! rather than in bridge memory) by the bridge holding the session, deleted when the session
//! ends. A resumable session's queue outlives its socket: the consumer is cancelled and
//! unacknowledged replies go back to the queue ([`ReplySub::detach`]), and `x-expires` (the
//! grace period) deletes it unless a client resumes it ([`ReplySub::resume`]) on any bridge.
//! Consumers are not exclusive, so a resume never waits for a half-open old one to go.
//! How the queue is declared is [`super::declare`]'s, how it is consumed `super::subscribe`'s.

use std::sync::Arc;
use std::time::Duration;

use futures_util::{FutureExt, StreamExt};
use lapin::options::{BasicAckOptions, BasicCancelOptions, BasicNackOptions, QueueDeleteOptions};
use lapin::types::DeliveryTag;
use lapin::{Channel, Consumer};
use tracing::debug;

use super::Links;
use super::lease::Lease;
use super::subscribe::{Late, consume, failed};
use crate::error::BridgeError;

/// Prefix of every reply queue name.
pub const REPLY_QUEUE_PREFIX: &str = "ferry.reply.";
/// Longest a declare/consume/delete may take.
const OP_TIMEOUT: Duration = Duration::from_secs(5);
/// Longest a resume's checks and consume may take before the client hears
/// `broker_unavailable` and tries again: inside the npm client's 10 s wait for WELCOME (a
/// WELCOME it no longer waits for would carry the only copy of the session's next token), and
/// as long as that allows, since every refused resume is done again (a storm of 4,000 resumes
/// at once with 5 s: 2,300 to 6,200 refused and p99 13–21 s; with 8 s: none and 9.9 s).
const RESUME_LIMIT: Duration = Duration::from_secs(8);

/// A session's live reply queue and its consumer, and a resumable session's lease.
pub struct ReplySub {
    pub(super) queue: String,
    pub(super) channel: Channel,
    pub(super) consumer: Consumer,
    pub(super) links: Arc<Links>,
    pub(super) lease: Option<Lease>,
    /// A lease being declared and held in the background ([`ReplySub::start_lease`]).
    pub(super) lease_task: Option<LeaseTask>,
}

/// The background declare and hold of a pooled session's lease, on [`Links::tasks`].
pub(super) type LeaseTask = tokio::task::JoinHandle<Result<Lease, BridgeError>>;

/// What a resume found.
pub enum Resumed {
    /// The token was current and the queue is there: consumed, with the next token's lease.
    Yes(Box<ReplySub>),
    /// No lease for this user, session and token: not this caller's (or not a current token).
    NotYours,
    /// The token was current but the reply queue is gone: the session has expired.
    Expired,
}

impl ReplySub {
    /// Declares and consumes the reply queue of `session`; `grace` (zero: the session does
    /// not resume) is how long the queue outlives its last consumer. A resumable session
    /// holds its `lease` too. `limit` bounds the whole (a request's own timeout when one
    /// waits for it: after a burst of new sessions the declares queue up in the broker, and
    /// a request should wait for its queue as long as it would for its reply).
    pub async fn open(
        links: Arc<Links>,
        session: &str,
        grace: Duration,
        lease: Option<&str>,
        limit: Duration,
    ) -> Result<Self, BridgeError> {
        let queue = format!("{REPLY_QUEUE_PREFIX}{session}");
        consume(
            links,
            session,
            queue,
            lease,
            grace,
            (limit, Late::Timeout(limit)),
        )
        .await
    }

    /// Takes over a resumable session: `old` must be the lease of the token presented, and
    /// the reply queue must exist; then the queue is consumed, the lease `next` (of the
    /// token WELCOME hands out) is held and `old` is deleted, so the old token is spent.
    /// Checks and consume together take `RESUME_LIMIT` at most.
    pub async fn resume(
        links: Arc<Links>,
        session: &str,
        grace: Duration,
        old: &str,
        next: &str,
    ) -> Result<Resumed, BridgeError> {
        let queue = format!("{REPLY_QUEUE_PREFIX}{session}");
        let deadline = tokio::time::Instant::now() + RESUME_LIMIT;
        let late = |_| BridgeError::BrokerUnavailable("resume checks timed out".into());
        let exists = links.probe.queue_exists(links.consume_conn(), &queue);
        if !tokio::time::timeout_at(deadline, exists)
            .await
            .map_err(late)??
        {
            return Ok(Resumed::Expired);
        }
        let current = Lease::exists(&links, old);
        if !tokio::time::timeout_at(deadline, current)
            .await
            .map_err(late)??
        {
            return Ok(Resumed::NotYours);
        }
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        let limit = (left, Late::Unavailable);
        let sub = consume(links.clone(), session, queue, Some(next), grace, limit).await?;
        Lease::delete(&links, old).await;
        Ok(Resumed::Yes(Box::new(sub)))
    }

    /// Consumes the reply queue of a session being resumed (holding `lease`); `None` when the
    /// queue is gone (the grace period passed, or the broker restarted): the session has
    /// expired.
    ///
    /// The existence check is passive, on the probe channel (a 404 closes the channel it
    /// happens on). The queue may still go before the consume (its session's other socket
    /// closing it, which a client controls), and a `basic.consume` of a missing queue would
    /// close a consume channel other sessions share: so the consume declares the queue again
    /// first, as [`ReplySub::open`] does, which cannot fail for a missing queue. A queue
    /// deleted in that instant comes back empty, and only that session's requests wait.
    pub async fn rebind(
        links: Arc<Links>,
        session: &str,
        grace: Duration,
        lease: Option<&str>,
    ) -> Result<Option<Self>, BridgeError> {
        let queue = format!("{REPLY_QUEUE_PREFIX}{session}");
        if !links
            .probe
            .queue_exists(links.consume_conn(), &queue)
            .await?
        {
            return Ok(None);
        }
        let limit = (OP_TIMEOUT, Late::Unavailable);
        consume(links, session, queue, lease, grace, limit)
            .await
            .map(Some)
    }

    /// The queue name workers reply to.
    pub fn queue(&self) -> &str {
        &self.queue
    }

    /// True once this queue's consumer holds a lease: at once for a resumable session's
    /// queue, except one from the pool, whose lease [`ReplySub::start_lease`] declares in the
    /// background. A lease held meanwhile is taken up here.
    pub fn lease_ready(&mut self) -> bool {
        if self.lease.is_some() {
            return true;
        }
        let Some(task) = self.lease_task.as_mut() else {
            return false;
        };
        let Some(done) = task.now_or_never() else {
            return false;
        };
        self.lease_task = None;
        match done {
            Ok(Ok(lease)) => {
                self.lease = Some(lease);
                true
            }
            // The next request starts it again.
            Ok(Err(e)) => {
                tracing::warn!(queue = %self.queue, error = %e, "lease declare failed");
                false
            }
            Err(_) => false,
        }
    }

    /// Starts declaring the lease `name` and holding it on this queue's consume channel, in
    /// the background (a resumable session whose queue came from the pool, on its first
    /// request: the request is published meanwhile, and its ACCEPTED waits for the lease).
    /// Nothing when a lease is held or on its way.
    pub fn start_lease(&mut self, name: &str, grace: Duration) {
        if self.lease_ready() || self.lease_task.is_some() {
            return;
        }
        let (links, channel, name) = (self.links.clone(), self.channel.clone(), name.to_owned());
        self.lease_task = Some(self.links.tasks.spawn(async move {
            let steps = async {
                let declare = links.declare_channel(&name).await?;
                Lease::declare(&declare, &name, grace, links.reply_queue_type).await?;
                Lease::consume(&channel, &name).await
            };
            match tokio::time::timeout(OP_TIMEOUT, steps).await {
                Ok(held) => held.map_err(|e| failed(&links, e)),
                Err(_) => Err(Late::Unavailable.error("lease declare timed out")),
            }
        }));
    }

    /// Waits (bounded) for a lease still on its way, so that detaching releases it and
    /// closing deletes it; past the bound, the task does so itself when it ends.
    async fn settle_lease_task(&mut self, delete: bool) {
        let Some(task) = self.lease_task.take() else {
            return;
        };
        let mut task = Box::pin(task);
        match tokio::time::timeout(OP_TIMEOUT, &mut task).await {
            Ok(Ok(Ok(lease))) => self.lease = Some(lease),
            Ok(_) => {}
            Err(_) => {
                let links = self.links.clone();
                self.links.tasks.spawn(async move {
                    if let Ok(Ok(lease)) = task.await {
                        if delete {
                            Lease::delete(&links, lease.name()).await;
                        }
                        lease.release().await;
                    }
                });
            }
        }
    }

    /// The id of the consume channel the replies arrive on (logs and tests).
    pub fn channel_id(&self) -> u16 {
        self.channel.id()
    }

    /// Broker restarts seen when this consumer started ([`Links::restarts`]).
    pub fn restarts(&self) -> u64 {
        self.links.restarts
    }

    /// True while the broker links this queue lives on are up.
    pub fn is_live(&self) -> bool {
        !self.links.lost.is_cancelled()
    }

    /// Acknowledges a reply this consumer delivered (`tag` on its channel), once it was
    /// handled (forwarded or dropped) or, held, once the client ACKed it; without waiting.
    ///
    /// The `basic.ack` goes straight to the consume channel, which queues it to lapin's I/O
    /// thread on the future's first poll; `Acker::ack` would hand it to lapin's internal RPC
    /// task first, which spawns a task to do the same: two more wake-ups per reply. Awaiting
    /// the rest would only wait for the I/O thread to write it. A failed ack means the channel
    /// is gone, which the consumer stream reports by ending. (If acks stopped reaching the
    /// broker, a session would stall after `REPLY_PREFETCH` replies: the 1,000-request tests
    /// would hang.)
    pub fn ack(&self, tag: DeliveryTag) {
        let ack = self.channel.basic_ack(tag, BasicAckOptions::default());
        if let Some(Err(e)) = ack.now_or_never() {
            tracing::debug!(error = %e, "reply ack failed");
        }
    }

    /// Gives a held reply back to the queue: the session's next consumer gets it again.
    pub fn requeue(&self, tag: DeliveryTag) {
        let opts = BasicNackOptions {
            requeue: true,
            multiple: false,
        };
        if let Some(Err(e)) = self.channel.basic_nack(tag, opts).now_or_never() {
            tracing::debug!(error = %e, "reply requeue failed");
        }
    }

    /// Stops consuming but keeps the queue (the session may be resumed): cancels the
    /// consumer, then gives back every delivery that reached this bridge after the last
    /// one the session read. The queue's `x-expires` starts counting.
    pub async fn detach(mut self) {
        if !self.is_live() {
            return;
        }
        self.settle_lease_task(false).await;
        let tag = self.consumer.tag();
        let cancel = self
            .channel
            .basic_cancel(tag.as_str().into(), BasicCancelOptions::default());
        if !matches!(tokio::time::timeout(OP_TIMEOUT, cancel).await, Ok(Ok(()))) {
            // Its cancel-ok may still come; until then what arrives goes back, below.
            tracing::warn!(queue = %self.queue, "reply consumer cancel failed");
        }
        if let Some(lease) = &self.lease {
            let _ = tokio::time::timeout(OP_TIMEOUT, lease.release()).await;
        }
        self.give_back_buffered().await;
        debug!(queue = %self.queue, "reply queue detached");
    }

    /// After a cancel: gives what lapin buffered for this consumer back to the queue. After
    /// cancel-ok nothing more is delivered (the stream ends). A delivery left unsettled would
    /// stay unacknowledged on a channel other sessions share, owned by no consumer, until
    /// that channel closed.
    async fn give_back_buffered(&mut self) {
        let drain = async {
            while let Some(Ok(d)) = self.consumer.next().await {
                self.requeue(d.delivery_tag);
            }
        };
        let _ = tokio::time::timeout(OP_TIMEOUT, drain).await;
    }

    /// Ends the session's queue. A plain session's exclusive queue is deleted. A resumable
    /// one's lease is deleted (the session can no longer be resumed) and its consumer
    /// cancelled, but the queue itself is left to its `x-expires`: deleting it could race a
    /// resume of the same session that declared it and is about to consume it, and that
    /// consume would then fail with a channel error on a channel other sessions share.
    /// Errors are logged only.
    pub async fn close(mut self) {
        if !self.is_live() {
            return;
        }
        self.settle_lease_task(true).await;
        if let Some(lease) = self.lease.take() {
            let _ =
                tokio::time::timeout(OP_TIMEOUT, Lease::delete(&self.links, lease.name())).await;
            let tag = self.consumer.tag();
            let cancel = self
                .channel
                .basic_cancel(tag.as_str().into(), BasicCancelOptions::default());
            let _ = tokio::time::timeout(OP_TIMEOUT, cancel).await;
            let _ = tokio::time::timeout(OP_TIMEOUT, lease.release()).await;
            // Back to the queue, which expires with them (or serves a resume racing this).
            self.give_back_buffered().await;
            return tracing::debug!(queue = %self.queue, "session closed; its queue expires");
        }
        let del = async {
            let channel = self.links.declare_channel(&self.queue).await?;
            channel
                .queue_delete(self.queue.as_str().into(), QueueDeleteOptions::default())
                .await
        };
        match tokio::time::timeout(OP_TIMEOUT, del).await {
            Ok(Ok(_)) => tracing::debug!(queue = %self.queue, "reply queue deleted"),
            Ok(Err(e)) => {
                tracing::warn!(queue = %self.queue, error = %e, "reply queue delete failed")
            }
            Err(_) => tracing::warn!(queue = %self.queue, "reply queue delete timed out"),
        }
    }
}
