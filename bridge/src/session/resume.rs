//! A resumable session across sockets, in one place: taken over by a resuming HELLO
//! ([`take_over`]: the token's lease, the reply queue, the requests the client re-attaches),
//! its final replies held until the client's ACK, its reply queue consumed again after a
//! broker outage ([`Session::rebind`]), and the detach when the socket drops: held replies go
//! back to the reply queue, the consumer is cancelled, and the session waits in RabbitMQ for
//! its grace period. Cancel notices for what was pending are published only if nobody resumed
//! it; if the broker restarts meanwhile, a note for each goes into the queue, so the client
//! that resumes learns the replies may be lost instead of waiting out their timeouts. (The
//! token and lease names are [`crate::resume`]'s; the AMQP side is [`crate::broker::replies`]
//! and [`crate::broker::lease`].)

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use ferry_protocol::headers::CancelReason;
use ferry_protocol::{ErrorCode, Hello, validate};
use futures_util::StreamExt;
use tracing::{debug, info};

use super::hello::{Attached, Opened};
use super::replies::Settle;
use super::{End, Session};
use crate::Shared;
use crate::auth::Identity;
use crate::broker::publish::{self, CancelNotice};
use crate::broker::replies::{ReplySub, Resumed};
use crate::broker::{Links, port};
use crate::error::BridgeError;
use crate::pending::Kind;
use crate::resume;
use crate::stats::Outcome;

/// Extra wait past the grace period before checking whether the reply queue expired (the
/// broker deletes expired queues on a timer of its own).
const EXPIRY_MARGIN: Duration = Duration::from_secs(5);

/// What only a resumable session has (`Session::resume` is `None` for a plain one).
pub(super) struct Resumable {
    /// The lease queue of the resume token WELCOME handed out (held with the reply queue).
    pub(super) lease: String,
    /// Ids attached by the resume that a REQUEST may send again (once each).
    pub(super) resent: HashSet<Box<str>>,
    /// Confirmed requests to report in the next ACCEPTED frame ([`super::accepted`]).
    pub(super) accepted: Vec<Box<str>>,
}

impl Resumable {
    pub(super) fn new(lease: String) -> Self {
        Self {
            lease,
            resent: HashSet::new(),
            accepted: Vec::new(),
        }
    }
}

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
                continue; // `attached` kept only allowed destinations
            };
            if self
                .pending
                .insert(&a.id, (&a.destination, label), timeout, idle)
                .is_err()
            {
                debug!(session = %self.id, id = %a.id, "attach of a duplicate id ignored");
            } else if let Some(r) = &mut self.resume {
                r.resent.insert(a.id.as_str().into());
            }
        }
    }

    /// The client received these final replies: acknowledge them to RabbitMQ.
    pub(super) fn on_ack(&mut self, ids: &[&str]) {
        for id in ids {
            self.replies.ack_held(id);
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
            held = self.replies.held(),
            how = ?self.end,
            "session detached"
        );
        self.replies.settle_held(Settle::Requeue);
        let mut publishes = std::mem::take(&mut self.publishes);
        let mut notices = std::mem::take(&mut self.notices);
        let reply = self.replies.take();
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

    /// The broker is back after the reply consumer of a resumable session ended: consume its
    /// queue again if the broker kept it and its replies (the connection was lost); if the
    /// broker restarted since (its transient replies are gone even where the durable queue
    /// survived) or the queue is gone, fail what is pending.
    pub(super) async fn rebind(&mut self, links: Arc<Links>) {
        let Some(restarts) = self.replies.rebind.take() else {
            return;
        };
        if links.restarts > restarts {
            let why = "the broker restarted; the replies it held are lost";
            self.fail_all(ErrorCode::BrokerUnavailable, why, None).await;
            return;
        }
        let grace = self.shared.config.session_grace;
        let lease = self.resume.as_ref().map(|r| r.lease.as_str());
        let why = match ReplySub::rebind(links, &self.id, grace, lease).await {
            Ok(Some(sub)) => {
                debug!(session = %self.id, "reply queue consumed again");
                self.replies.replace(port::boxed(sub));
                return;
            }
            Ok(None) => "the session's reply queue is gone; the replies it held are lost",
            Err(_) => "the broker connection was lost",
        };
        self.fail_all(ErrorCode::BrokerUnavailable, why, None).await;
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
    if links.cancel_exchange.is_none() {
        return;
    }
    for (id, destination) in requests {
        shared.stats.cancel_notices.inc();
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

/// Takes over the session a resuming HELLO names, if its token is this user's current one
/// and its reply queue is still there: `Some((opened, next token))`, `identity` moved into
/// it. `None` (open a new session) when the session expired or the token is not current;
/// `Err` when the broker cannot be asked now (the client tries again).
pub(crate) async fn take_over(
    shared: &Arc<Shared>,
    h: &Hello<'_>,
    identity: &mut Option<Identity>,
    client: &str,
) -> Result<Option<(Opened, String)>, BridgeError> {
    let user = identity.as_ref().map_or("", |i| i.user.as_str()).to_owned();
    let user = user.as_str();
    let (Some(id), Some(token)) = (h.resume, h.resume_token) else {
        return Ok(None);
    };
    if validate::id(id).is_err() {
        return Ok(None);
    }
    // The lease of (user, session, token) proves the token is this user's current one;
    // resuming spends it: WELCOME carries the next.
    let links = shared
        .broker
        .current()
        .ok_or_else(|| BridgeError::BrokerUnavailable("not connected".into()))?;
    let old = resume::lease_queue(user, id, token);
    let next = resume::new_token();
    let lease = resume::lease_queue(user, id, &next);
    let grace = shared.config.session_grace;
    match ReplySub::resume(links, id, grace, &old, &lease).await? {
        Resumed::Yes(sub) => {
            // A holder of this session on this bridge (a socket not yet known dead, or
            // one in its grace period) lets go now.
            let claim = shared.holders.claim(id);
            shared.stats.sessions_resumed_total.inc();
            let attach = attached(shared, h, identity.as_ref());
            info!(
                session = id,
                client,
                requests = attach.len(),
                "session resumed"
            );
            let opened = Opened {
                id: id.to_owned(),
                reply: Some(port::boxed(*sub)),
                attach,
                claim,
                identity: identity.take(),
                lease: Some(lease),
            };
            return Ok(Some((opened, next)));
        }
        Resumed::Expired => {
            shared.stats.sessions_expired_total.inc();
            info!(
                session = id,
                client, "session to resume has expired; opening a new one"
            );
        }
        Resumed::NotYours => debug!(
            client,
            user, "resume with a token that is not current for this user; opening a new one"
        ),
    }
    Ok(None)
}

/// HELLO's `attach` list, kept where id and destination are valid and the caller may still
/// call the destination (it names the routing key of the request's cancel notice), at most
/// `--max-inflight` of them.
fn attached(shared: &Shared, h: &Hello<'_>, identity: Option<&Identity>) -> Vec<Attached> {
    let may_call = |d: &str| shared.allow.allows(d) && identity.is_none_or(|i| i.allows(d));
    h.attach
        .iter()
        .filter(|a| {
            validate::id(a.id).is_ok()
                && validate::destination(a.destination).is_ok()
                && may_call(a.destination)
        })
        .take(shared.config.max_inflight as usize)
        .map(|a| Attached {
            id: a.id.to_owned(),
            destination: a.destination.to_owned(),
            timeout_ms: a.timeout_ms.max(1),
            idle_timeout_ms: a.idle_timeout_ms,
        })
        .collect()
}
