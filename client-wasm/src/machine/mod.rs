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
//! - `events`: the events fed in and the effects handed back.
//! - `call`: a request or gather from the app: checked, encoded, sent or queued.
//! - `frames`: what the bridge sends (REPLY, ERROR, PROGRESS, PART, DONE, ACCEPTED).
//! - `timers`: the one timer, the heartbeat watchdog, and what each deadline does.
//! - `resume`: the session across sockets: HELLO, WELCOME, drops, reconnects, ACKs, and the
//!   snapshot a persisted client keeps across page reloads.

use alloc::string::String;
use alloc::vec::Vec;

use ferry_protocol::{ErrorCode, Limits};

use crate::error::Failure;
use crate::pending::{Pending, TimerPlan};

mod call;
mod events;
mod frames;
mod resume;
#[cfg(test)]
mod tests;
mod timers;

pub use call::Outgoing;
pub(crate) use call::millis;
pub use events::{Body, Effect, Event};
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
