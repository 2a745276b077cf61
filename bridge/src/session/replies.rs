//! A session's replies: its reply queue (declared on first use), and each delivery routed to
//! the pending request it answers (or dropped and counted), then acknowledged or held.

use std::sync::Arc;
use std::time::Duration;

use ferry_protocol::ErrorCode;
use lapin::message::Delivery;
use tracing::{debug, warn};

use super::{Flow, Session};
use crate::amqp_props::{ReplyKind, reply_kind, worker_time};
use crate::broker::{Links, replies::ReplySub};
use crate::error::BridgeError;
use crate::frames::{Relay, reply_frame};
use crate::pending::Kind;
use crate::stats::Outcome;

impl Session {
    /// The reply queue name, declaring and consuming it on first use (or after a reconnect),
    /// or taking a declared one from the pool. A declare may take up to `budget`.
    pub(super) async fn reply_queue(
        &mut self,
        links: &Arc<Links>,
        budget: Duration,
    ) -> Result<String, BridgeError> {
        if self.rebind.is_some() {
            // Before a new request declares the queue again: find out whether the old one
            // (and the replies it held for what is pending) survived the broker's outage.
            self.rebind(links.clone()).await;
        }
        if let Some(sub) = &self.reply
            && sub.is_live()
        {
            return Ok(sub.queue().to_owned());
        }
        let grace = if self.resumable {
            self.shared.config.session_grace
        } else {
            Duration::ZERO
        };
        let lease = self.lease.as_deref().filter(|_| self.resumable);
        let pooled = if self.resumable {
            None // its queue is named for the session, which a resume looks up
        } else {
            links.pool.take()
        };
        let opened = match pooled {
            Some(sub) => Ok(sub),
            None => ReplySub::open(links.clone(), &self.id, grace, lease, budget).await,
        };
        let sub = match opened {
            Ok(sub) => sub,
            Err(e) => {
                // A durable queue whose node is down (a cluster node lost) cannot be declared
                // again until that node is back: the session moves to a new one instead.
                if self.resumable && e.to_string().contains("NOT_FOUND") {
                    warn!(session = %self.id, "the session's reply queue is on a node that is down; ending the socket so the client starts a new session");
                    self.stranded = true;
                }
                return Err(e);
            }
        };
        let name = sub.queue().to_owned();
        // Held replies are delivery tags on the consumer being replaced (its links are lost
        // and the broker requeued them): settled on the new channel, a tag would ack another
        // delivery or close a channel other sessions share.
        self.held.clear();
        self.reply = Some(sub);
        Ok(name)
    }

    pub(super) async fn on_reply(&mut self, delivery: Option<Delivery>) -> Flow {
        let Some(d) = delivery else {
            // The consumer ended: the broker connection died or the queue was deleted.
            let restarts = self.reply.take().map_or(0, |sub| sub.restarts());
            self.held.clear(); // their channel is gone; the broker requeued them
            if self.resumable && !self.pending.is_empty() {
                // The queue (durable) outlives the connection; the replies wait in it.
                warn!(session = %self.id, "reply consumer ended; consuming again once the broker is back");
                self.rebind = Some(restarts);
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
            self.ack(&d);
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
            if is_final && self.hold(id, &d) {
                return Flow::Continue;
            }
        } else {
            self.shared.stats.dropped_replies.inc();
            debug!(session = %self.id, id, "reply for no pending request dropped");
        }
        self.ack(&d);
        Flow::Continue
    }

    /// Acknowledges a delivery of the current reply consumer (the one it came from).
    fn ack(&self, d: &Delivery) {
        if let Some(sub) = &self.reply {
            sub.ack(d);
        }
    }
}
