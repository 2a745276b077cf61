//! One WebSocket connection after its HELLO ([`hello`]): a loop over socket
//! frames, reply deliveries, deadlines, publish outcomes and shutdown. One task per
//! connection; the writer runs in [`crate::outbound`].
//!
//! What the client sends is read in `inbound`; requests, gathers, replies, ACCEPTED notes,
//! tokens and resumes each have a module of their own.
//!
//! A resumable session outlives its socket: the socket halves are split in [`run`] (the
//! writer's to [`Outbound`], the reader's to `serve`), the session state lives in
//! `Session`, and `resume` hands it back to RabbitMQ when the socket drops.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use ferry_protocol::ErrorCode;
use ferry_protocol::headers::CancelReason;
use futures_util::stream::FuturesUnordered;
use futures_util::{Stream, StreamExt};
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::{Error as WsError, Message};
use tracing::{debug, info};

use crate::Shared;
use crate::auth::Identity;
use crate::auth::rpc::Peer;
use crate::error::BridgeError;
use crate::frames::{done_frame, error_frame};
use crate::limits::Bucket;
use crate::outbound::Outbound;
use crate::pending::{Entry, Kind, Pending};
use crate::resume::Claim;
use crate::stats::Outcome;
use auth::Caller;
use replies::{ReplyQueue, Settle};

mod accepted;
mod auth;
mod gather;
pub mod hello;
mod inbound;
mod notices;
mod replies;
mod request;
pub(crate) mod resume;
#[cfg(test)]
mod tests;

type PublishOutcome = (Box<str>, u64, Result<(), BridgeError>);
type PublishFuture = Pin<Box<dyn Future<Output = PublishOutcome> + Send>>;
type NoticeFuture = Pin<Box<dyn Future<Output = ()> + Send>>;

/// Runs one socket from the first frame to the close.
///
/// An idle session is this future and its writer's, so it is kept small: the socket is split
/// before it starts (an `async fn` would keep the unsplit socket in it for good), and the
/// opening, the end and the handling of each event are boxed, so the session holds only what
/// it waits on in between.
pub fn run<S>(shared: Arc<Shared>, ws: S, peer: Peer) -> impl Future<Output = ()> + Send
where
    S: Stream<Item = Result<Message, WsError>>
        + futures_util::Sink<Message, Error = WsError>
        + Unpin
        + Send
        + 'static,
{
    let (sink, stream) = ws.split();
    let cfg = &shared.config;
    let out = Outbound::spawn(
        sink,
        cfg.ping_interval,
        cfg.max_outbound_bytes,
        &shared.tracker,
        shared.stats.bytes_sent.clone(),
    );
    serve(shared, stream, out, peer)
}

/// The session on a split socket: HELLO, the loop, the end.
async fn serve<St>(shared: Arc<Shared>, mut stream: St, out: Outbound, peer: Peer)
where
    St: Stream<Item = Result<Message, WsError>> + Unpin + Send,
{
    let Some(opened) = Box::pin(hello::hello(&shared, &mut stream, &out, &peer)).await else {
        return;
    };
    let cfg = &shared.config;
    let requests = Bucket::new(cfg.request_rate, cfg.request_burst);
    shared.stats.sessions.inc();
    shared.stats.sessions_total.inc();
    let resume = opened.lease.map(resume::Resumable::new);
    let mut session = Session {
        pending: Pending::new(shared.stats.clone(), &opened.id),
        shared,
        id: opened.id,
        out,
        replies: ReplyQueue::new(opened.reply),
        publishes: FuturesUnordered::new(),
        notices: FuturesUnordered::new(),
        draining: false,
        claim: opened.claim,
        end: End::Dropped,
        caller: Caller {
            identity: opened.identity,
            requests,
            peer,
        },
        resume,
    };
    session.attach(opened.attach);
    session.run(&mut stream).await;
    Box::pin(session.finish()).await;
}

/// How the socket of a session ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum End {
    /// The client closed it with 1000 (`client.close()`): the session is over.
    Closed,
    /// It dropped, failed or stopped answering pings: a resumable session waits.
    Dropped,
    /// Another socket resumed the session on this bridge.
    Superseded,
    /// The bridge is shutting down: a resumable session waits for another bridge.
    Draining,
}

/// What the loop does after handling an event.
pub(crate) enum Flow {
    Continue,
    Stop,
}

/// One session on this socket, split by what each part owns: the loop's own state here; who
/// calls in [`Caller`] ([`auth`]); the reply queue and the deliveries held on its consumer in
/// [`ReplyQueue`] ([`replies`]); what only a resumable session has in [`resume::Resumable`].
struct Session {
    shared: Arc<Shared>,
    id: String,
    out: Outbound,
    /// Requests and gathers awaiting their replies.
    pending: Pending,
    publishes: FuturesUnordered<PublishFuture>,
    /// Cancel notices being published (each bounded by its own timeout).
    notices: FuturesUnordered<NoticeFuture>,
    draining: bool,
    /// This bridge's hold on the session; cancelled when a resume here takes it over.
    claim: Claim,
    end: End,
    /// Who is calling, and at what rate.
    caller: Caller,
    /// The reply queue as this session consumes it.
    replies: ReplyQueue,
    /// `Some` when the client ACKs final replies and may resume this session.
    resume: Option<resume::Resumable>,
}

impl Session {
    async fn run<St>(&mut self, stream: &mut St)
    where
        St: Stream<Item = Result<Message, WsError>> + Unpin,
    {
        let shutdown = self.shared.shutdown.clone();
        let broker = self.shared.broker.clone();
        let drain = tokio::time::sleep(Duration::MAX / 4);
        tokio::pin!(drain);
        let expiry = tokio::time::sleep(self.caller.token_lifetime());
        tokio::pin!(expiry);
        let accept_tick = tokio::time::sleep(Duration::MAX / 4);
        tokio::pin!(accept_tick);
        loop {
            if self.draining && self.pending.is_empty() {
                self.out
                    .close(CloseCode::Away, "bridge shutting down")
                    .await;
                return;
            }
            let flow = tokio::select! {
                _ = self.out.dead.cancelled() => Flow::Stop,
                _ = self.claim.superseded.cancelled() => {
                    self.end = End::Superseded;
                    let why = "session resumed by another connection";
                    self.out.close(CloseCode::from(ferry_protocol::CLOSE_TAKEN_OVER), why).await;
                    Flow::Stop
                }
                _ = shutdown.cancelled(), if !self.draining && self.resume.is_some() => {
                    // Nothing is lost: the replies wait in RabbitMQ for the client to resume
                    // the session on another bridge (or on this one, restarted).
                    self.end = End::Draining;
                    Box::pin(self.hand_over()).await;
                    Flow::Stop
                }
                _ = shutdown.cancelled(), if !self.draining && self.resume.is_none() => {
                    self.draining = true;
                    let deadline = tokio::time::Instant::now() + self.shared.config.drain_timeout;
                    drain.as_mut().reset(deadline);
                    Flow::Continue
                }
                _ = &mut drain, if self.draining => {
                    Box::pin(self.drained()).await;
                    Flow::Stop
                }
                _ = &mut expiry => {
                    if let Some(left) = self.caller.identity.as_ref().and_then(Identity::expires_in)
                        && !left.is_zero()
                    {
                        // Renewed meanwhile (AUTH): wait for the new expiry.
                        expiry.as_mut().reset(tokio::time::Instant::now() + left);
                        Flow::Continue
                    } else {
                        Box::pin(self.expired()).await;
                        Flow::Stop
                    }
                }
                msg = stream.next() => Box::pin(self.on_socket(msg)).await,
                links = broker.links(), if self.replies.rebind.is_some() => {
                    Box::pin(self.rebind(links)).await;
                    Flow::Continue
                }
                delivery = self.replies.next() => Box::pin(self.on_reply(delivery)).await,
                Some((id, entry)) = self.pending.next_expired() => {
                    Box::pin(self.on_deadline(id, entry)).await;
                    Flow::Continue
                }
                Some(()) = self.notices.next() => Flow::Continue,
                _ = &mut accept_tick, if self.resume.as_ref().is_some_and(|r| !r.accepted.is_empty()) => {
                    if !self.flush_accepted().await {
                        // The lease is on its way: look again after another delay.
                        let at = tokio::time::Instant::now() + accepted::ACCEPT_DELAY;
                        accept_tick.as_mut().reset(at);
                    }
                    Flow::Continue
                }
                Some((id, seq, result)) = self.publishes.next() => {
                    if self.on_published(id, seq, result).await {
                        let at = tokio::time::Instant::now() + accepted::ACCEPT_DELAY;
                        accept_tick.as_mut().reset(at);
                    }
                    Flow::Continue
                }
            };
            if let Flow::Stop = flow {
                return;
            }
            if self.replies.stranded {
                // Its resume finds the queue unavailable and opens a new session (the
                // requests of this one fail with `session_expired` at the client).
                self.end = End::Draining;
                let why = "the session's reply queue is on a broker node that is down; resume";
                self.out.close(CloseCode::Restart, why).await;
                return;
            }
        }
    }

    /// The bridge is shutting down under a resumable session: what the broker took is
    /// reported (ACCEPTED) first, so the resume sends again only what it may not have.
    async fn hand_over(&mut self) {
        self.settle_publishes().await;
        let _ = self.flush_accepted().await;
        let why = "bridge restarting; resume the session";
        self.out.close(CloseCode::Restart, why).await;
    }

    /// The drain timeout passed with requests still pending: they fail.
    async fn drained(&mut self) {
        let why = "the bridge shut down before the reply came";
        let reason = Some(CancelReason::ShuttingDown);
        self.fail_all(ErrorCode::ShuttingDown, why, reason).await;
        self.out
            .close(CloseCode::Away, "bridge shutting down")
            .await;
    }

    /// A request's or gather's deadline passed: a gather is DONE, a request fails with
    /// `timeout` and its workers are told.
    async fn on_deadline(&mut self, id: Box<str>, entry: Entry) {
        if let Kind::Gather { count, .. } = entry.kind {
            self.out.send(done_frame(&id, count)).await;
            return;
        }
        let ms = entry.timeout.as_millis() as u64;
        debug!(session = %self.id, id = %id, destination = %entry.destination, trace_id = entry.trace_id(), "request timed out");
        self.send_error(Some(&id), &BridgeError::Timeout(ms)).await;
        self.notify(id, entry, CancelReason::Timeout);
    }

    /// Fails every pending request with `code`; with a `reason`, tells the workers too.
    async fn fail_all(&mut self, code: ErrorCode, message: &str, reason: Option<CancelReason>) {
        for (id, entry) in self.pending.drain(Outcome::Error(code)) {
            self.shared.stats.error(code);
            self.out.send(error_frame(Some(&id), code, message)).await;
            if let Some(reason) = reason {
                self.notify(id, entry, reason);
            }
        }
    }

    async fn send_error(&mut self, id: Option<&str>, e: &BridgeError) {
        self.shared.stats.error(e.code());
        self.out
            .send(error_frame(id, e.code(), &e.wire_message()))
            .await;
    }

    /// Releases everything the session holds: pending entries (workers get a cancel notice
    /// for each), notices still being published, the reply queue. A resumable session whose
    /// socket did not close normally is detached instead ([`resume`]).
    async fn finish(mut self) {
        self.shared.stats.sessions.dec();
        if self.resume.is_some() && self.end != End::Closed {
            return self.detach().await;
        }
        self.shared.holders.release(&self.id, &self.claim);
        self.replies.settle_held(Settle::Ack); // the session is over; its queue goes next
        let pending = self.pending.len();
        info!(session = %self.id, pending, "session closed");
        for (id, entry) in self.pending.drain(Outcome::Error(ErrorCode::Disconnected)) {
            self.notify(id, entry, CancelReason::Disconnected);
        }
        let mut notices = std::mem::take(&mut self.notices);
        let reply = self.replies.take();
        if notices.is_empty() && reply.is_none() {
            return;
        }
        self.shared.tracker.spawn(async move {
            while notices.next().await.is_some() {}
            if let Some(sub) = reply {
                sub.close().await;
            }
        });
    }
}
