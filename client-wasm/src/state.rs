//! The client's state: the socket, its closures, the pending map's slots and the timer.
//!
//! `WasmClient` holds the only strong `Rc` to [`Inner`]; every closure given to JS holds a
//! `Weak`, so there is no cycle and dropping the client (`free()` or GC) closes the socket,
//! detaches the handlers and rejects what is pending. No closure is ever `forget()`-ed.

use alloc::rc::Rc;
use alloc::string::String;
use alloc::vec::Vec;
use core::cell::RefCell;

use ferry_protocol::{ErrorCode, Frame, Limits};
use js_sys::{Function, Uint8Array};
use wasm_bindgen::prelude::*;
use web_sys::{AbortSignal, CloseEvent, MessageEvent, WebSocket};

use crate::error::Failure;
use crate::js::{self, Hooks};
use crate::pending::{Pending, TimerAction, TimerPlan};

/// Extra time the client waits past a request's timeout for the bridge's own `timeout`.
pub(crate) const GRACE_MS: u64 = 500;
/// How long `close()` waits for the socket's close event.
pub(crate) const CLOSE_WAIT_MS: u64 = 3_000;
/// Default time for the socket to open and the bridge to answer HELLO.
pub(crate) const CONNECT_TIMEOUT_MS: u64 = 10_000;
/// Pending-map key of the handshake (never a valid request id: has a space).
pub(crate) const HANDSHAKE: &str = "handshake ";
/// Pending-map key of a `close()` waiting for the close event.
pub(crate) const CLOSING: &str = "closing ";

/// Pending-map key of a reconnect attempt's handshake.
pub(crate) const ATTEMPT: &str = "attempt ";
/// Pending-map key of the heartbeat watchdog.
pub(crate) const WATCHDOG: &str = "watchdog ";
/// Heartbeats missed before the socket counts as dead (half-open).
pub(crate) const MISSED_HEARTBEATS: u64 = 3;

/// What waits in the pending map.
pub(crate) enum Slot {
    Handshake {
        resolve: Function,
        reject: Function,
    },
    Request(RequestSlot),
    /// A request restored from storage after a page reload, not yet `reattach`ed.
    Parked(Parked),
    /// A reconnect attempt waiting for WELCOME (its deadline is the connect timeout).
    Attempt,
    /// Fires when the bridge may have gone silent (no frame for a few heartbeats).
    Watchdog,
    Closing {
        resolve: Function,
    },
}

pub(crate) struct RequestSlot {
    pub(crate) resolve: Function,
    pub(crate) reject: Function,
    /// Where it goes (a resume re-attaches it there).
    pub(crate) destination: String,
    /// The encoded frame while it waits for a socket (made while reconnecting).
    pub(crate) unsent: Option<Vec<u8>>,
    /// On a resumable session, the encoded frame as sent, until the bridge says the broker
    /// took it (ACCEPTED, or a PROGRESS): a resume sends it again instead of attaching it,
    /// since the bridge it went to may have died before publishing it.
    pub(crate) sent: Option<Vec<u8>>,
    /// The caller's `meta`, kept with the request in the page's storage.
    pub(crate) meta: JsValue,
    pub(crate) on_progress: Option<Function>,
    /// With an idle timeout: each progress moves the deadline to now + this (+ grace).
    pub(crate) idle_ms: Option<u32>,
    /// A gather: `on_progress` gets its parts, DONE (or the window's end) resolves it.
    pub(crate) gather: bool,
    pub(crate) _abort: Option<AbortHook>,
}

/// What a resume carries of a slot (HELLO `attach`, the persisted snapshot): destination, idle
/// timeout and `meta` of a request the bridge has and a resumed session can still answer.
pub(crate) struct Resumable<'a> {
    pub(crate) destination: &'a str,
    pub(crate) idle_ms: Option<u32>,
    pub(crate) meta: &'a JsValue,
}

impl Slot {
    /// The slot as a resume carries it; `None` for a gather (not resumed), a request not sent
    /// yet, an expired restored one, and the bookkeeping slots.
    pub(crate) fn resumable(&self) -> Option<Resumable<'_>> {
        match self {
            Slot::Request(r) if !r.gather && r.unsent.is_none() => Some(Resumable {
                destination: &r.destination,
                idle_ms: r.idle_ms,
                meta: &r.meta,
            }),
            Slot::Parked(p) if !p.expired => Some(Resumable {
                destination: &p.destination,
                idle_ms: p.idle_ms,
                meta: &p.meta,
            }),
            _ => None,
        }
    }
}

/// A restored request: its reply (a REPLY or ERROR frame) waits here until `reattach`.
pub(crate) struct Parked {
    pub(crate) destination: String,
    pub(crate) idle_ms: Option<u32>,
    pub(crate) meta: JsValue,
    pub(crate) reply: Option<Vec<u8>>,
    /// The session could not be resumed: `reattach` rejects with `session_expired`.
    pub(crate) expired: bool,
}

/// How the client reconnects (`initial_ms == 0`: it does not).
#[derive(Clone, Copy)]
pub(crate) struct Policy {
    pub(crate) initial_ms: u32,
    pub(crate) max_ms: u32,
    /// Attempts before giving up (0: no limit while requests can still be answered).
    pub(crate) attempts: u32,
    /// Requests that may wait for the socket while reconnecting (0: they reject at once).
    pub(crate) max_queued: u32,
    pub(crate) connect_timeout_ms: u32,
    /// Keep the session in the page's storage (JS is told of every change).
    pub(crate) persist: bool,
}

/// An `abort` listener on the caller's signal; removed when the slot is dropped, which
/// happens on every exit path (reply, error, timeout, abort, disconnect, close).
pub(crate) struct AbortHook {
    pub(crate) signal: AbortSignal,
    pub(crate) listener: Closure<dyn FnMut()>,
}

impl Drop for AbortHook {
    fn drop(&mut self) {
        let _ = self
            .signal
            .remove_event_listener_with_callback("abort", self.listener.as_ref().unchecked_ref());
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum State {
    Connecting,
    Open,
    /// The socket dropped; a new one is being opened to resume the session.
    Reconnecting,
    /// The connection is over; `code` is what new requests reject with.
    Ended(ErrorCode),
}

/// The socket's event closures; detached (set to null) when the connection ends.
pub(crate) struct Handlers {
    pub(crate) _open: Closure<dyn FnMut()>,
    pub(crate) _message: Closure<dyn FnMut(MessageEvent)>,
    pub(crate) _close: Closure<dyn FnMut(CloseEvent)>,
    pub(crate) _error: Closure<dyn FnMut(JsValue)>,
}

pub(crate) struct Inner {
    pub(crate) ws: WebSocket,
    /// The bridges' URLs, shuffled once; each reconnect attempt takes the next.
    pub(crate) urls: Vec<String>,
    /// Index (modulo `urls.len()`) of the URL the current socket was opened to.
    pub(crate) url_at: usize,
    pub(crate) ws_ctor: Function,
    pub(crate) policy: Policy,
    /// Reconnect attempts since the socket was last open.
    pub(crate) attempt: u32,
    /// The session id and resume token of a resumable session.
    pub(crate) resume: Option<(String, String)>,
    /// Final replies to ACK (sent in one frame from a microtask).
    pub(crate) acks: Vec<String>,
    pub(crate) ack_cb: Option<Closure<dyn FnMut()>>,
    pub(crate) retry_cb: Option<Closure<dyn FnMut()>>,
    pub(crate) retry_handle: Option<JsValue>,
    /// The bridge's heartbeat interval (0: it sends none) and when a frame last came.
    pub(crate) heartbeat_ms: u32,
    pub(crate) last_seen: u64,
    /// When the watchdog is due (it may fire later if the page was frozen or throttled).
    pub(crate) watch_due: u64,
    /// The runtime said it is offline (`offline` event): no reconnect attempt until `online`.
    pub(crate) offline: bool,
    pub(crate) hooks: Hooks,
    pub(crate) state: State,
    pub(crate) pending: Pending<Slot>,
    pub(crate) timer: TimerPlan,
    pub(crate) timer_handle: Option<JsValue>,
    pub(crate) timer_cb: Option<Closure<dyn FnMut()>>,
    pub(crate) handlers: Option<Handlers>,
    pub(crate) limits: Option<Limits>,
    pub(crate) session: Option<String>,
    pub(crate) default_timeout_ms: Option<u32>,
    /// A connection-level ERROR the bridge sent, quoted when the socket then closes.
    pub(crate) bridge_error: Option<String>,
    /// What the runtime said in the socket's `error` event (e.g. a refused upgrade's status).
    pub(crate) socket_error: Option<String>,
}

pub(crate) type Shared = Rc<RefCell<Inner>>;

impl Inner {
    /// Brings the one timer in line with the earliest deadline (after every change of the
    /// pending map, so a persisted client also tells JS to save).
    pub(crate) fn rearm(&mut self) {
        if self.policy.persist {
            self.hooks.changed();
        }
        let now = js::now_ms();
        match self.timer.plan(self.pending.next_deadline(), now) {
            TimerAction::Keep => {}
            TimerAction::Clear => {
                if let Some(h) = self.timer_handle.take() {
                    js::clear_timeout(&h);
                }
            }
            TimerAction::Arm { delay_ms } => {
                if let Some(h) = self.timer_handle.take() {
                    js::clear_timeout(&h);
                }
                if let Some(cb) = &self.timer_cb {
                    self.timer_handle = Some(js::set_timeout(
                        cb.as_ref().unchecked_ref(),
                        delay_ms as f64,
                    ));
                }
            }
        }
    }

    /// Points the current socket's events at the client's handlers.
    pub(crate) fn listen(&self) {
        if let Some(h) = &self.handlers {
            self.ws.set_onopen(Some(h._open.as_ref().unchecked_ref()));
            self.ws
                .set_onmessage(Some(h._message.as_ref().unchecked_ref()));
            self.ws.set_onclose(Some(h._close.as_ref().unchecked_ref()));
            self.ws.set_onerror(Some(h._error.as_ref().unchecked_ref()));
        }
    }

    /// Requests awaiting a reply (the map also holds the handshake, the watchdog, ...).
    pub(crate) fn awaited(&self) -> usize {
        self.pending
            .iter()
            .filter(|(_, _, s)| matches!(s, Slot::Request(_) | Slot::Parked(_)))
            .count()
    }

    /// Arms the watchdog for a few heartbeats after the last frame (if the bridge beats).
    pub(crate) fn watch(&mut self) {
        self.watch_at(self.last_seen + MISSED_HEARTBEATS * u64::from(self.heartbeat_ms));
    }

    /// Arms the watchdog for `deadline` (if the bridge beats).
    pub(crate) fn watch_at(&mut self, deadline: u64) {
        let _ = self.pending.remove(WATCHDOG);
        if self.heartbeat_ms != 0 {
            self.watch_due = deadline;
            let _ = self
                .pending
                .insert(WATCHDOG.into(), deadline, Slot::Watchdog);
        }
    }

    /// Cancels a scheduled reconnect.
    pub(crate) fn stop_retry(&mut self) {
        if let Some(h) = self.retry_handle.take() {
            js::clear_timeout(&h);
        }
    }

    /// Sets the socket's handlers to null so the socket no longer calls into the client.
    pub(crate) fn detach(&mut self) {
        self.ws.set_onopen(None);
        self.ws.set_onmessage(None);
        self.ws.set_onclose(None);
        self.ws.set_onerror(None);
    }

    pub(crate) fn send(&self, frame: &Frame<'_>) -> Result<(), JsValue> {
        self.send_bytes(&frame.encode())
    }

    pub(crate) fn send_bytes(&self, bytes: &[u8]) -> Result<(), JsValue> {
        self.ws
            .send_with_array_buffer(&Uint8Array::from(bytes).buffer())
    }

    pub(crate) fn error(&self, f: &Failure) -> JsValue {
        f.to_js(&self.hooks)
    }
}

/// Settles what a drained or expired slot owed, with `failure` for handshakes and requests.
pub(crate) fn settle(hooks: &Hooks, id: &str, slot: Slot, failure: &Failure) {
    match slot {
        Slot::Handshake { reject, .. } => {
            let _ = reject.call1(&JsValue::UNDEFINED, &failure.to_js(hooks));
        }
        Slot::Request(r) => {
            let mut f = Failure::new(failure.code, failure.message.clone()).with_id(id);
            f.details = failure.details.clone();
            let _ = r.reject.call1(&JsValue::UNDEFINED, &f.to_js(hooks));
        }
        Slot::Closing { resolve } => {
            let _ = resolve.call0(&JsValue::UNDEFINED);
        }
        Slot::Parked(_) | Slot::Attempt | Slot::Watchdog => {}
    }
}

/// A request rejects with this when it is made on an ended connection.
pub(crate) fn ended_failure(code: ErrorCode) -> Failure {
    let msg = if code == ErrorCode::Closed {
        "the client is closed"
    } else {
        "the connection to the bridge is lost"
    };
    Failure::new(code, msg)
}

impl Drop for Inner {
    fn drop(&mut self) {
        if let Some(h) = self.timer_handle.take() {
            js::clear_timeout(&h);
        }
        self.stop_retry();
        self.detach();
        if self.ws.ready_state() < WebSocket::CLOSING {
            let _ = self.ws.close_with_code_and_reason(1000, "client dropped");
        }
        let failure = Failure::new(ErrorCode::Closed, "the client was dropped");
        for (id, slot) in self.pending.drain() {
            settle(&self.hooks, &id, slot, &failure);
        }
    }
}
