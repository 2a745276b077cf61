//! A session's replies: its reply queue (declared on first use) with the deliveries held on
//! its consumer ([`ReplyQueue`]), and each delivery routed to the pending request it answers
//! (or dropped and counted), then acknowledged or held.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use ferry_protocol::ErrorCode;
use lapin::types::DeliveryTag;
use tracing::{debug, warn};

use super::{Flow, Session};
use crate::amqp_props::{ReplyKind, reply_kind, worker_time};
use crate::broker::port::{Replies, Reply, Route};
use crate::error::BridgeError;
use crate::frames::{Relay, reply_frame};
use crate::pending::Kind;
use crate::stats::Outcome;

/// The session's reply queue as it consumes it: the consumer (none before the first request
/// declares the queue), the final replies held on it until the client ACKs them, and what
/// must happen once the broker is back. Held deliveries are tags on the current consumer's
/// channel: they are cleared whenever that consumer ends or is replaced, so a tag is never
/// settled on another channel (it would settle another delivery, or close a channel other
/// sessions share).
pub(super) struct ReplyQueue {
    sub: Option<Box<dyn Replies>>,
    /// Final replies sent but not yet ACKed by the client (resumable sessions only): their
    /// deliveries stay unacknowledged, so a lost frame is redelivered after a resume.
    held: HashMap<Box<str>, DeliveryTag>,
    /// The consumer of this resumable session ended with the broker connection (at this
    /// count of broker restarts); its queue is consumed again when the broker is back,
    /// unless it restarted meanwhile ([`Session::rebind`]).
    pub(super) rebind: Option<u64>,
    /// The queue is durable on a node that is down: the socket ends (1012) so the client's
    /// resume opens a new session.
    pub(super) stranded: bool,
}

/// What becomes of the replies held when a session lets go of its consumer.
pub(super) enum Settle {
    /// The session is over: acknowledged (its queue goes next).
    Ack,
    /// The session waits to be resumed: back to the queue for the next consumer.
    Requeue,
}

impl ReplyQueue {
    pub(super) fn new(sub: Option<Box<dyn Replies>>) -> Self {
        Self {
            sub,
            held: HashMap::new(),
            rebind: None,
            stranded: false,
        }
    }

    /// The queue's name, once declared (a cancel notice's `reply_to`).
    pub(super) fn name(&self) -> Option<&str> {
        self.sub.as_ref().map(|s| s.queue())
    }

    /// Starts holding the lease `name` on the consumer, unless it holds one or one is on its
    /// way (a resumable session's queue from the pool holds none until its first request).
    fn start_lease(&mut self, name: &str, grace: Duration) {
        if let Some(sub) = &mut self.sub {
            sub.start_lease(name, grace);
        }
    }

    /// False while the consumer's lease is on its way: the session's ACCEPTED frames wait.
    pub(super) fn lease_ready(&mut self) -> bool {
        self.sub.as_mut().is_none_or(|s| s.lease_ready())
    }

    /// The queue's name while its consumer's broker links are up.
    fn live_name(&self) -> Option<&str> {
        self.sub.as_ref().filter(|s| s.is_live()).map(|s| s.queue())
    }

    /// A new consumer replaces the old one; what was held on the old one is the broker's.
    pub(super) fn replace(&mut self, sub: Box<dyn Replies>) {
        self.held.clear();
        self.sub = Some(sub);
    }

    /// The consumer ended (its channel is gone, the broker requeued what it held): the count
    /// of broker restarts it started at.
    fn ended(&mut self) -> u64 {
        self.held.clear();
        self.sub.take().map_or(0, |s| s.restarts())
    }

    /// Lets go of the consumer (what it held is settled first: [`ReplyQueue::settle_held`]).
    pub(super) fn take(&mut self) -> Option<Box<dyn Replies>> {
        self.sub.take()
    }

    /// The next delivery; pending while there is no consumer.
    pub(super) async fn next(&mut self) -> Option<Reply> {
        match &mut self.sub {
            Some(s) => std::future::poll_fn(|cx| s.poll_next(cx)).await,
            None => std::future::pending().await,
        }
    }

    /// Acknowledges a delivery of the current consumer (the one it came from).
    fn ack(&self, d: &Reply) {
        if let Some(sub) = &self.sub {
            sub.ack(d.tag);
        }
    }

    /// Holds the final reply to `id` until the client ACKs it; false when one is held for
    /// it already (a duplicate: the caller acknowledges it now).
    pub(super) fn hold(&mut self, id: &str, d: &Reply) -> bool {
        if self.held.contains_key(id) {
            return false;
        }
        self.held.insert(id.into(), d.tag);
        true
    }

    /// The client received the final reply to `id`: acknowledged to RabbitMQ.
    pub(super) fn ack_held(&mut self, id: &str) {
        if let Some(tag) = self.held.remove(id)
            && let Some(sub) = &self.sub
        {
            sub.ack(tag);
        }
    }

    /// How many final replies are held.
    pub(super) fn held(&self) -> usize {
        self.held.len()
    }

    /// Settles every held reply as `how` says.
    pub(super) fn settle_held(&mut self, how: Settle) {
        let Some(sub) = &self.sub else {
            return self.held.clear();
        };
        for (_, tag) in self.held.drain() {
            match how {
                Settle::Ack => sub.ack(tag),
                Settle::Requeue => sub.requeue(tag),
            }
        }
    }
}

impl Session {
    /// The reply queue name, declaring and consuming it on first use (or after a reconnect),
    /// or taking a declared one from the pool. A declare may take up to `budget`.
    pub(super) async fn reply_queue(
        &mut self,
        route: &Arc<dyn Route>,
        budget: Duration,
    ) -> Result<String, BridgeError> {
        if self.replies.rebind.is_some()
            && let Some(links) = self.shared.broker.current()
        {
            // Before a new request declares the queue again: find out whether the old one
            // (and the replies it held for what is pending) survived the broker's outage.
            Box::pin(self.rebind(links)).await;
        }
        let grace = self.shared.config.session_grace;
        if let Some(name) = self.replies.live_name() {
            let name = name.to_owned();
            // A resumable session whose queue came from the pool starts holding its token's
            // lease with its first request, which is published meanwhile; its ACCEPTED frames
            // wait for the lease (`flush_accepted`), so a resume before then opens a new
            // session and the client sends the request again there.
            if let Some(r) = &self.resume {
                self.replies.start_lease(&r.lease, grace);
            }
            return Ok(name);
        }
        // A resumable session's queue is named for the session, which a resume looks up; a
        // plain one may come from the pool.
        let resumable = self.resume.as_ref().map(|r| (r.lease.as_str(), grace));
        let opened = route.clone().replies(&self.id, resumable, budget).await;
        let sub = match opened {
            Ok(sub) => sub,
            Err(e) => {
                // A durable queue whose node is down (a cluster node lost) cannot be declared
                // again until that node is back: the session moves to a new one instead.
                if self.resume.is_some() && e.to_string().contains("NOT_FOUND") {
                    warn!(session = %self.id, "the session's reply queue is on a node that is down; ending the socket so the client starts a new session");
                    self.replies.stranded = true;
                }
                return Err(e);
            }
        };
        let name = sub.queue().to_owned();
        self.replies.replace(sub);
        Ok(name)
    }

    pub(super) async fn on_reply(&mut self, delivery: Option<Reply>) -> Flow {
        let Some(d) = delivery else {
            // The consumer ended: the broker connection died or the queue was deleted.
            let restarts = self.replies.ended();
            if self.resume.is_some() && !self.pending.is_empty() {
                // The queue (durable) outlives the connection; the replies wait in it.
                warn!(session = %self.id, "reply consumer ended; consuming again once the broker is back");
                self.replies.rebind = Some(restarts);
                return Flow::Continue;
            }
            warn!(session = %self.id, "reply consumer ended; failing pending requests");
            let why = "the broker connection was lost";
            self.fail_all(ErrorCode::BrokerUnavailable, why, None).await;
            return Flow::Continue;
        };
        let id = d
            .properties
            .correlation_id()
            .as_ref()
            .map(|c| c.as_str())
            .unwrap_or("");
        let max = self.shared.config.max_reply_bytes;
        if d.data.len() > max as usize {
            // Never relayed: it would pin its size in this socket's buffers. The request
            // learns why; a gather's part or a progress message is dropped.
            self.shared.stats.dropped_replies.inc();
            let too_large = Outcome::Error(ErrorCode::TooLarge);
            if self.pending.kind(id) == Some(Kind::Request)
                && !matches!(reply_kind(&d.properties), ReplyKind::Progress)
                && let Some(entry) = self.pending.remove(id, too_large)
            {
                let (size, dest) = (d.data.len(), &entry.destination);
                warn!(session = %self.id, id, destination = %dest, trace_id = entry.trace_id(), size, "reply over --max-reply-bytes dropped");
                self.send_error(Some(id), &BridgeError::ReplyTooLarge { size, max })
                    .await;
            }
            self.replies.ack(&d);
            return Flow::Continue;
        }
        if let Some(Kind::Gather { .. }) = self.pending.kind(id) {
            self.on_part(id, &d).await;
        } else if self.pending.contains(id) {
            let is_final = match reply_frame(id, &d.properties, &d.data) {
                Relay::Final { frame, ended } => {
                    let outcome = ended.map_or(Outcome::Ok, Outcome::Error);
                    let stats = &self.shared.stats;
                    if let Some(code) = ended {
                        stats.error(code);
                    }
                    if let Some(entry) = self.pending.remove(id, outcome)
                        && let Some(worker) = worker_time(&d.properties)
                    {
                        stats.worker_time(&entry.label, entry.started.elapsed(), worker);
                    }
                    stats.replies_total.inc();
                    self.out.send(frame).await;
                    true
                }
                Relay::Progress(frame) => {
                    self.pending.touch(id);
                    self.out.send(frame).await;
                    false
                }
            };
            // A resumable session's client ACKs it; until then it stays in RabbitMQ.
            if is_final && self.resume.is_some() && self.replies.hold(id, &d) {
                return Flow::Continue;
            }
        } else {
            self.shared.stats.dropped_replies.inc();
            debug!(session = %self.id, id, "reply for no pending request dropped");
        }
        self.replies.ack(&d);
        Flow::Continue
    }
}
