//! The client's states, events and transitions, without I/O: [`Machine::handle`] takes one
//! [`Event`] and returns the [`Effect`]s (frames to send, promises to settle, timers to arm)
//! the host then performs.
//!
//! Nothing here touches JS. What a caller waits with is the host's own type ([`Host`]), the
//! time comes with each event, and randomness stays with the host (request ids, reconnect
//! jitter), so every transition runs natively in `cargo test` (`tests.rs`). The wasm glue
//! (`host.rs`) feeds socket, timer and API events in and performs the effects once the machine
//! is released, so app code a callback runs may call the client again.
//!
//! - `call`: a request or gather from the app: checked, encoded, sent or queued.
//! - `frames`: what the bridge sends (REPLY, ERROR, PROGRESS, PART, DONE, ACCEPTED).
//! - `resume`: the session across sockets: HELLO, WELCOME, drops, reconnects, ACKs, and the
//!   snapshot a persisted client keeps across page reloads.

use alloc::string::String;
use alloc::vec::Vec;

use ferry_protocol::{ErrorCode, Limits};

use crate::error::Failure;
use crate::pending::{Pending, TimerAction, TimerPlan};

mod call;
mod frames;
mod resume;
#[cfg(test)]
mod tests;

pub use call::Outgoing;
pub(crate) use call::millis;
pub use resume::{Restored, Snapshot, SnapshotEntry};

/// Extra time the client waits past a request's timeout for the bridge's own `timeout`.
pub const GRACE_MS: u64 = 500;
/// How long `close()` waits for the socket's close event.
pub const CLOSE_WAIT_MS: u64 = 3_000;
/// Default time for the socket to open and the bridge to answer HELLO.
pub const CONNECT_TIMEOUT_MS: u64 = 10_000;
/// Heartbeats missed before the socket counts as dead (half-open).
pub const MISSED_HEARTBEATS: u64 = 3;

/// The host's types, opaque to the machine.
pub trait Host {
    /// What a request's caller waits with (the promise's functions, the abort listener).
    type Call;
    /// A request's progress callback, or a gather's part callback.
    type Progress: Clone;
    /// What the app attached to a request (`meta`), kept in the snapshot.
    type Meta: Clone;
    /// What waits for the first WELCOME (`ready`).
    type Ready;
    /// What waits for the socket's close event (`close()`).
    type Closing;
}

/// How the client reconnects (`initial_ms == 0`: it does not).
#[derive(Clone, Copy, Debug, Default)]
pub struct Policy {
    /// First backoff ceiling.
    pub initial_ms: u32,
    /// Largest backoff ceiling.
    pub max_ms: u32,
    /// Attempts before giving up (0: no limit while requests can still be answered).
    pub attempts: u32,
    /// Requests that may wait for the socket while reconnecting (0: they reject at once).
    pub max_queued: u32,
    /// Time for a socket to open and the bridge to answer HELLO.
    pub connect_timeout_ms: u32,
    /// Keep the session in the page's storage (the host hears of every change).
    pub persist: bool,
}

/// Where the connection is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum State {
    /// The first socket is opening, or waits for WELCOME.
    Connecting,
    /// WELCOME came; requests go out.
    Open,
    /// The socket dropped; a new one is being opened to resume the session.
    Reconnecting,
    /// The connection is over; the code is what new requests reject with.
    Ended(ErrorCode),
}

/// A received body, borrowed from its frame, for the host to decode by content type.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Body<'a> {
    /// The bytes.
    pub bytes: &'a [u8],
    /// Its content type, if the frame had one.
    pub content_type: Option<&'a str>,
}

/// Something that happened: the socket, a timer, the runtime or the app.
pub enum Event<'a, H: Host> {
    /// The socket opened; `token` is the access token for HELLO.
    Opened {
        /// From `connect`'s `token` option.
        token: Option<String>,
    },
    /// A binary message from the bridge.
    Frame(&'a [u8]),
    /// A final frame a restored request kept until the app reattached it.
    Stored(&'a [u8]),
    /// What the socket's `error` event said (quoted when the socket then closes).
    SocketError(String),
    /// The socket closed.
    Closed {
        /// The close code.
        code: u16,
        /// The close reason.
        reason: &'a str,
    },
    /// The timer fired, the page woke up, or the client started: run what fell due.
    Timer,
    /// The reconnect timer fired.
    Retry,
    /// Opening the next socket threw.
    ReconnectFailed,
    /// The ACKs noted since the last flush are due (once per microtask).
    FlushAcks,
    /// The runtime went online (`true`) or offline (`false`).
    Network(bool),
    /// A request or a gather from the app.
    Request(Outgoing<'a, H>),
    /// A caller's `AbortSignal` fired.
    Abort(&'a str),
    /// The app takes over a request restored after a page reload.
    Reattach {
        /// The restored request's id.
        id: &'a str,
        /// What its caller waits with.
        call: H::Call,
        /// Its progress callback.
        progress: Option<H::Progress>,
    },
    /// The app closes the client; `socket_closed`: there is no close event to wait for.
    Close {
        /// Settles once the socket closed.
        closing: H::Closing,
        /// The socket is already closed.
        socket_closed: bool,
    },
}

/// What the host does, in order, once the machine is released.
pub enum Effect<'a, H: Host> {
    /// Send these bytes (one encoded frame) on the socket.
    Send(Vec<u8>),
    /// Resolve a request with its reply.
    Reply {
        /// The caller.
        call: H::Call,
        /// The request's id.
        id: &'a str,
        /// The reply.
        body: Body<'a>,
    },
    /// Resolve a gather with its number of parts (`None`: its window closed first).
    Done {
        /// The caller.
        call: H::Call,
        /// DONE's count.
        count: Option<u32>,
    },
    /// Reject a request.
    Reject {
        /// The caller.
        call: H::Call,
        /// Why.
        failure: Failure,
    },
    /// A progress message for a request.
    Progress {
        /// The request's callback.
        callback: H::Progress,
        /// The message.
        body: Body<'a>,
    },
    /// One part of a gather.
    Part {
        /// The gather's callback.
        callback: H::Progress,
        /// The gather's id.
        id: &'a str,
        /// Who replied.
        replier: Option<&'a str>,
        /// The part (or a worker error's details).
        body: Body<'a>,
        /// A worker's error: its code and message.
        remote: Option<(&'a str, &'a str)>,
    },
    /// The handshake is done: resolve `ready`.
    Ready(H::Ready),
    /// The handshake failed: reject `ready`.
    NotReady {
        /// What waited.
        ready: H::Ready,
        /// Why.
        failure: Failure,
    },
    /// The socket closed (or `close()` waited long enough): resolve `close()`.
    Closed(H::Closing),
    /// Re-arm or clear the one timer.
    Timer(TimerAction),
    /// Arm the reconnect timer with a random delay in `[0, ceiling_ms)` (full jitter),
    /// clearing any armed one.
    ArmRetry {
        /// The backoff ceiling.
        ceiling_ms: u64,
    },
    /// Clear the reconnect timer.
    StopRetry,
    /// Open a socket to the next bridge; feed [`Event::ReconnectFailed`] if that throws.
    Reconnect,
    /// Close the socket with a close handshake (if not closing already).
    CloseSocket {
        /// The close code.
        code: u16,
        /// The close reason.
        reason: &'static str,
    },
    /// Close the socket without waiting for a dead peer's handshake.
    AbandonSocket,
    /// Stop listening to the socket's events.
    Detach,
    /// Feed [`Event::FlushAcks`] from a microtask.
    QueueAcks,
    /// What a persisted client keeps in storage changed.
    Changed,
    /// The connection is now `open` or `reconnecting`.
    State(&'static str),
    /// The connection is over.
    Ended(Failure),
    /// Feed these bytes back as [`Event::Stored`] (a restored request's kept reply).
    Redeliver(Vec<u8>),
}

/// A request awaiting its reply.
pub(crate) struct RequestSlot<H: Host> {
    pub(crate) call: H::Call,
    /// Where it goes (a resume re-attaches it there).
    pub(crate) destination: String,
    /// The encoded frame while it waits for a socket (made while reconnecting).
    pub(crate) unsent: Option<Vec<u8>>,
    /// On a resumable session, the encoded frame as sent, until the bridge says the broker
    /// took it (ACCEPTED, or a PROGRESS): a resume sends it again instead of attaching it,
    /// since the bridge it went to may have died before publishing it.
    pub(crate) sent: Option<Vec<u8>>,
    pub(crate) meta: H::Meta,
    pub(crate) progress: Option<H::Progress>,
    /// With an idle timeout: each progress moves the deadline to now + this (+ grace).
    pub(crate) idle_ms: Option<u32>,
    /// A gather: `progress` gets its parts, DONE (or the window's end) resolves it.
    pub(crate) gather: bool,
}

/// A request restored from storage after a page reload, not yet reattached.
pub(crate) struct Parked<M> {
    pub(crate) destination: String,
    pub(crate) idle_ms: Option<u32>,
    pub(crate) meta: M,
    /// Its final frame, kept until the app reattaches it.
    pub(crate) reply: Option<Vec<u8>>,
    /// The session could not be resumed: reattaching rejects with `session_expired`.
    pub(crate) expired: bool,
}

/// What waits in the pending map: only requests; the handshake, a reconnect attempt, the
/// watchdog and `close()` have typed deadlines of their own.
pub(crate) enum Slot<H: Host> {
    Request(RequestSlot<H>),
    Parked(Parked<H::Meta>),
}

/// The client's whole state.
pub struct Machine<H: Host> {
    pub(crate) state: State,
    pub(crate) policy: Policy,
    pub(crate) pending: Pending<Slot<H>>,
    /// `ready` and when the handshake times out (until the first WELCOME).
    pub(crate) handshake: Option<(u64, H::Ready)>,
    /// When a reconnect attempt without WELCOME is given up.
    pub(crate) attempt_due: Option<u64>,
    /// When the watchdog is due (it may run later if the page was frozen or throttled).
    pub(crate) watch_due: Option<u64>,
    /// `close()` waiting for the close event, and until when.
    pub(crate) closing: Option<(u64, H::Closing)>,
    pub(crate) timer: TimerPlan,
    /// Reconnect attempts since the socket was last open.
    pub(crate) attempt: u32,
    /// The session id and resume token of a resumable session.
    pub(crate) resume: Option<(String, String)>,
    /// Final replies to ACK (sent in one frame from a microtask).
    pub(crate) acks: Vec<String>,
    /// The bridge's heartbeat interval (0: it sends none) and when a frame last came.
    pub(crate) heartbeat_ms: u32,
    pub(crate) last_seen: u64,
    /// The runtime said it is offline: no reconnect attempt until it is online.
    pub(crate) offline: bool,
    pub(crate) limits: Option<Limits>,
    pub(crate) session: Option<String>,
    pub(crate) default_timeout_ms: Option<u32>,
    /// A connection-level ERROR the bridge sent, quoted when the socket then closes.
    pub(crate) bridge_error: Option<String>,
    /// What the runtime said in the socket's `error` event.
    pub(crate) socket_error: Option<String>,
    /// What a persisted client keeps changed since the host last heard.
    pub(crate) dirty: bool,
}

type Out<'a, H> = Vec<Effect<'a, H>>;

impl<H: Host> Machine<H> {
    /// A client whose first socket is opening; `ready` settles at WELCOME or fails after
    /// the connect timeout. Feed [`Event::Timer`] to arm the timer.
    pub fn new(policy: Policy, default_timeout_ms: Option<u32>, now: u64, ready: H::Ready) -> Self {
        Self {
            state: State::Connecting,
            policy,
            pending: Pending::default(),
            handshake: Some((now + u64::from(policy.connect_timeout_ms), ready)),
            attempt_due: None,
            watch_due: None,
            closing: None,
            timer: TimerPlan::default(),
            attempt: 0,
            resume: None,
            acks: Vec::new(),
            heartbeat_ms: 0,
            last_seen: now,
            offline: false,
            limits: None,
            session: None,
            default_timeout_ms,
            bridge_error: None,
            socket_error: None,
            dirty: false,
        }
    }

    /// Where the connection is.
    pub fn state(&self) -> State {
        self.state
    }

    /// The session id the bridge assigned (after WELCOME).
    pub fn session(&self) -> Option<&str> {
        self.session.as_deref()
    }

    /// Requests awaiting a reply (restored ones included).
    pub fn awaited(&self) -> usize {
        self.pending.len()
    }

    /// Handles one event at time `now` (milliseconds since the epoch).
    pub fn handle<'a>(&mut self, now: u64, event: Event<'a, H>) -> Vec<Effect<'a, H>> {
        let mut out = Vec::new();
        match event {
            Event::Opened { token } => self.on_open(now, token.as_deref(), &mut out),
            Event::Frame(raw) => {
                self.last_seen = now;
                self.on_frame(now, raw, &mut out);
            }
            Event::Stored(raw) => self.on_frame(now, raw, &mut out),
            Event::SocketError(said) => self.socket_error = Some(said),
            Event::Closed { code, reason } => self.on_close(now, code, reason, &mut out),
            Event::Timer => self.on_timer(now, &mut out),
            Event::Retry => self.on_retry(now, &mut out),
            Event::ReconnectFailed => self.on_reconnect_failed(now, &mut out),
            Event::FlushAcks => self.flush_acks(&mut out),
            Event::Network(online) => self.network(now, online, &mut out),
            Event::Request(call) => self.start(now, call, &mut out),
            Event::Abort(id) => self.on_abort(id, &mut out),
            Event::Reattach { id, call, progress } => {
                self.reattach(id, call, progress, &mut out);
            }
            Event::Close {
                closing,
                socket_closed,
            } => self.close(now, closing, socket_closed, &mut out),
        }
        self.rearm(now, &mut out);
        out
    }

    /// Settles everything (the host is going away): what is pending rejects with `closed`.
    pub fn shutdown(&mut self, message: &'static str) -> Vec<Effect<'static, H>> {
        let mut out = Vec::new();
        self.state = State::Ended(ErrorCode::Closed);
        self.settle_all(&Failure::new(ErrorCode::Closed, message), &mut out);
        out
    }

    /// The one timer follows the earliest deadline; a persisted client's host hears of
    /// every change.
    fn rearm(&mut self, now: u64, out: &mut Out<'_, H>) {
        if core::mem::take(&mut self.dirty) && self.policy.persist {
            out.push(Effect::Changed);
        }
        let mut next = self.pending.next_deadline();
        let timers = [
            self.handshake.as_ref().map(|h| h.0),
            self.attempt_due,
            self.watch_due,
            self.closing.as_ref().map(|c| c.0),
        ];
        for t in timers.into_iter().flatten() {
            next = Some(next.map_or(t, |n| n.min(t)));
        }
        match self.timer.plan(next, now) {
            TimerAction::Keep => {}
            action => out.push(Effect::Timer(action)),
        }
    }

    /// Arms the watchdog for a few heartbeats after the last frame (if the bridge beats).
    pub(crate) fn watch(&mut self) {
        self.watch_at(self.last_seen + MISSED_HEARTBEATS * u64::from(self.heartbeat_ms));
    }

    /// Arms the watchdog for `deadline` (if the bridge beats).
    pub(crate) fn watch_at(&mut self, deadline: u64) {
        self.watch_due = (self.heartbeat_ms != 0).then_some(deadline);
    }

    fn on_timer(&mut self, now: u64, out: &mut Out<'_, H>) {
        self.timer.fired();
        let mut silent = false;
        if let Some(due) = self.watch_due.filter(|d| *d <= now) {
            self.watch_due = None;
            if matches!(self.state, State::Open) {
                // Silent for a few heartbeats: the socket is half-open (dead without a close).
                let beat = u64::from(self.heartbeat_ms);
                if now.saturating_sub(self.last_seen) < MISSED_HEARTBEATS * beat {
                    self.watch();
                } else if now.saturating_sub(due) > beat {
                    // The timer ran late: the page was frozen or throttled, and what the
                    // bridge sent meanwhile may still be queued. One more heartbeat for it.
                    self.watch_at(now + beat);
                } else {
                    silent = true;
                }
            }
        }
        // A reconnect attempt without WELCOME in time: drop it, try the next.
        if self.attempt_due.is_some_and(|d| d <= now) {
            self.attempt_due = None;
            silent = true;
        }
        let mut handshake_timed_out = false;
        if self.handshake.as_ref().is_some_and(|h| h.0 <= now)
            && let Some((_, ready)) = self.handshake.take()
        {
            handshake_timed_out = true;
            let failure = Failure::new(ErrorCode::Timeout, HANDSHAKE_LATE);
            out.push(Effect::NotReady { ready, failure });
        }
        if self.closing.as_ref().is_some_and(|c| c.0 <= now)
            && let Some((_, closing)) = self.closing.take()
        {
            out.push(Effect::Closed(closing));
        }
        let expired = self.pending.take_expired(now);
        if !expired.is_empty() {
            self.dirty = true;
        }
        for (id, slot) in &expired {
            match slot {
                Slot::Request(r) if r.unsent.is_none() => {
                    out.push(Effect::Send(cancel_frame(id)));
                }
                Slot::Parked(p) if p.reply.is_some() => self.ack(id, out),
                _ => {}
            }
        }
        let late = Failure::new(ErrorCode::Timeout, "no reply before the request's timeout");
        for (id, slot) in expired {
            match slot {
                // A gather's window closing is its normal end (the bridge's DONE was late).
                Slot::Request(r) if r.gather => out.push(Effect::Done {
                    call: r.call,
                    count: None,
                }),
                slot => settle(id, slot, &late, out),
            }
        }
        if silent {
            // Don't wait for a close handshake the dead peer will never answer.
            out.push(Effect::AbandonSocket);
            let msg = "the bridge went silent (no heartbeat, or no WELCOME in time)";
            if !self.dropped(1006, msg, out) {
                self.end(ErrorCode::Disconnected, msg.into(), out);
            }
        }
        if handshake_timed_out && matches!(self.state, State::Connecting) {
            self.end(ErrorCode::Timeout, HANDSHAKE_LATE.into(), out);
        }
    }

    fn on_abort(&mut self, id: &str, out: &mut Out<'_, H>) {
        if let Some(slot) = self.pending.remove(id) {
            self.dirty = true;
            out.push(Effect::Send(cancel_frame(id)));
            let f = Failure::new(ErrorCode::Cancelled, "the request was aborted");
            settle(id.into(), slot, &f, out);
        }
    }

    fn close(&mut self, now: u64, closing: H::Closing, socket_closed: bool, out: &mut Out<'_, H>) {
        if matches!(self.state, State::Ended(_)) {
            out.push(Effect::Closed(closing));
            return;
        }
        self.state = State::Ended(ErrorCode::Closed);
        out.push(Effect::StopRetry);
        let failure = Failure::new(ErrorCode::Closed, "the client was closed");
        self.settle_all(&failure, out);
        out.push(Effect::Ended(failure));
        if socket_closed {
            out.push(Effect::Detach);
            out.push(Effect::Closed(closing));
        } else {
            out.push(Effect::CloseSocket {
                code: 1000,
                reason: "client closed",
            });
            self.closing = Some((now + CLOSE_WAIT_MS, closing));
        }
    }

    /// The connection is over: reject everything pending with `code`, detach, and tell the
    /// host (once: if `close()` already ended it, this only settles what waits for the close).
    pub(crate) fn end(&mut self, code: ErrorCode, message: String, out: &mut Out<'_, H>) {
        let first = !matches!(self.state, State::Ended(_));
        if first {
            self.state = State::Ended(code);
        }
        out.push(Effect::Detach);
        out.push(Effect::StopRetry);
        if first {
            out.push(Effect::CloseSocket {
                code: 1000,
                reason: "",
            });
        }
        let failure = Failure::new(code, message);
        self.settle_all(&failure, out);
        if first {
            out.push(Effect::Ended(failure));
        }
    }

    /// Settles the handshake, every request and a waiting `close()`; clears the timers.
    fn settle_all(&mut self, failure: &Failure, out: &mut Out<'_, H>) {
        if let Some((_, ready)) = self.handshake.take() {
            let failure = failure.clone();
            out.push(Effect::NotReady { ready, failure });
        }
        self.attempt_due = None;
        self.watch_due = None;
        if let Some((_, closing)) = self.closing.take() {
            out.push(Effect::Closed(closing));
        }
        let drained = self.pending.drain();
        if !drained.is_empty() {
            self.dirty = true;
        }
        for (id, slot) in drained {
            settle(id, slot, failure, out);
        }
    }

    /// Takes the slot a final frame ends and notes the ACK the bridge waits for (also when
    /// no slot is left: a redelivered reply).
    pub(crate) fn take(&mut self, id: &str, out: &mut Out<'_, H>) -> Option<Slot<H>> {
        let slot = self.pending.remove(id);
        if slot.is_some() {
            self.dirty = true;
        }
        self.ack(id, out);
        slot
    }
}

/// Message of a handshake that did not complete before the connect timeout.
const HANDSHAKE_LATE: &str = "the bridge did not complete the handshake in time";

/// A CANCEL frame for `id`.
pub(crate) fn cancel_frame(id: &str) -> Vec<u8> {
    ferry_protocol::Frame::Cancel(ferry_protocol::Cancel { id }).encode()
}

/// Rejects what a request owed with `failure` (and its id); a parked one owes nothing yet.
pub(crate) fn settle<H: Host>(id: String, slot: Slot<H>, failure: &Failure, out: &mut Out<'_, H>) {
    if let Slot::Request(r) = slot {
        let failure = Failure {
            id: Some(id),
            ..failure.clone()
        };
        out.push(Effect::Reject {
            call: r.call,
            failure,
        });
    }
}
