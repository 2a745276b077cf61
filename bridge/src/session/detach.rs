//! Resumable sessions: the requests a resuming client re-attaches, final replies held until
//! the client's ACK, and the detach when the socket drops: held replies go back to the
//! reply queue, the consumer is cancelled, and the session waits in RabbitMQ for its grace
//! period. Cancel notices for what was pending are published only if nobody resumed it; if
//! the broker restarts meanwhile, a note for each goes into the queue, so the client that
//! resumes learns the replies may be lost instead of waiting out their timeouts.

use std::time::Duration;

use ferry_protocol::headers::CancelReason;
use futures_util::StreamExt;
use lapin::message::Delivery;
use tracing::{debug, info};

use super::notices::counted;
use super::{End, Session};
use crate::broker::publish::{self, CancelNotice};
use crate::hello::Attached;
use crate::pending::Kind;
use crate::stats::Outcome;

/// Extra wait past the grace period before checking whether the reply queue expired (the
/// broker deletes expired queues on a timer of its own).
const EXPIRY_MARGIN: Duration = Duration::from_secs(5);

impl Session {
    /// Re-creates the pending entries of a resumed session from HELLO's `attach`.
    pub(super) fn attach(&mut self, requests: Vec<Attached>) {
        let max = self.shared.config.max_timeout;
        for a in requests {
            let timeout = Duration::from_millis(u64::from(a.timeout_ms)).min(max);
            let idle = a
                .idle_timeout_ms
                .map(|ms| Duration::from_millis(u64::from(ms)).min(max));
            let Some(label) = self.shared.allow.entry(&a.destination).cloned() else {
                continue; // `hello::attached` kept only allowed destinations
            };
            if self
                .pending
                .insert(&a.id, (&a.destination, label), timeout, idle)
                .is_err()
            {
                debug!(session = %self.id, id = %a.id, "attach of a duplicate id ignored");
            } else {
                self.resent.insert(a.id.as_str().into());
            }
        }
    }

    /// Keeps the delivery of a final reply unacknowledged until the client ACKs it; false
    /// (ack it now) for a session that does not resume.
    pub(super) fn hold(&mut self, id: &str, d: &Delivery) -> bool {
        if !self.resumable || self.held.contains_key(id) {
            return false;
        }
        self.held.insert(id.into(), d.delivery_tag);
        true
    }

    /// The client received these final replies: acknowledge them to RabbitMQ.
    pub(super) fn on_ack(&mut self, ids: &[&str]) {
        for id in ids {
            if let Some(tag) = self.held.remove(*id)
                && let Some(sub) = &self.reply
            {
                sub.ack_held(tag);
            }
        }
    }

    /// The socket is gone but the session is not over: give the replies back to RabbitMQ
    /// and wait there. Publishes still in flight finish in a clean-up task; cancel notices
    /// for the pending requests wait for the end of the grace period and go out only if
    /// the session's reply queue expired by then (nobody resumed it, here or elsewhere).
    pub(super) async fn detach(mut self) {
        let requests: Vec<(Box<str>, Box<str>)> = self
            .pending
            .drain(Outcome::NotOver)
            .into_iter()
            .filter(|(_, e)| e.kind == Kind::Request)
            .map(|(id, e)| (id, e.destination))
            .collect();
        info!(
            session = %self.id,
            pending = requests.len(),
            held = self.held.len(),
            how = ?self.end,
            "session detached"
        );
        if let Some(sub) = &self.reply {
            for (_, tag) in self.held.drain() {
                sub.requeue(tag);
            }
        }
        let mut publishes = std::mem::take(&mut self.publishes);
        let mut notices = std::mem::take(&mut self.notices);
        let reply = self.reply.take();
        let shared = self.shared.clone();
        let reply_to = reply.as_ref().map(|r| r.queue().to_owned());
        let watch = self.end == End::Dropped && !requests.is_empty();
        let (id, claim) = (self.id.clone(), self.claim);
        let restarts = shared.broker.restarts();
        if watch {
            shared.stats.sessions_detached.inc();
        } else {
            shared.holders.release(&id, &claim);
        }
        // The grace period runs from now, not from when the clean-up below is done.
        let expiry = tokio::time::Instant::now() + shared.config.session_grace + EXPIRY_MARGIN;
        let tracker = shared.tracker.clone();
        tracker.spawn(async move {
            if let Some(sub) = reply {
                sub.detach().await;
            }
            while publishes.next().await.is_some() {}
            while notices.next().await.is_some() {}
            let Some(reply_to) = reply_to.filter(|_| watch) else {
                return;
            };
            let resumed_here = claim.superseded.clone();
            let mut noted = false;
            loop {
                tokio::select! {
                    // First: a resume here just as the broker came back still gets the notes.
                    biased;
                    links = shared.broker.restarted_after(restarts), if !noted => {
                        noted = true;
                        info!(session = %id, requests = requests.len(), "broker restarted while the session was detached");
                        for (request, _) in &requests {
                            publish::lost_note(&links, &reply_to, request).await;
                        }
                    }
                    _ = shared.shutdown.cancelled() => break,
                    _ = resumed_here.cancelled() => break,
                    _ = tokio::time::sleep_until(expiry) => {
                        expired_notices(&shared, &id, &reply_to, requests).await;
                        break;
                    }
                }
            }
            shared.stats.sessions_detached.dec();
            shared.holders.release(&id, &claim);
        });
    }
}

/// At the end of a grace period: if the reply queue is gone, nobody resumed the session and
/// nobody awaits its requests; tell the workers.
async fn expired_notices(
    shared: &crate::Shared,
    session: &str,
    reply_to: &str,
    requests: Vec<(Box<str>, Box<str>)>,
) {
    let Some(links) = shared.broker.current() else {
        return;
    };
    let exists = links.probe.queue_exists(links.consume_conn(), reply_to);
    if !matches!(exists.await, Ok(false)) {
        return; // resumed elsewhere, not yet deleted, or the broker is away: no notices
    }
    info!(session, requests = requests.len(), "session expired");
    for (id, destination) in requests {
        if !counted(&links, &shared.stats) {
            return;
        }
        let notice = CancelNotice {
            destination,
            id,
            reply_to: reply_to.to_owned(),
            session: session.to_owned(),
            reason: CancelReason::Disconnected,
        };
        publish::cancel_notice(&links, &notice).await;
    }
}
