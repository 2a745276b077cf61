//! What happens when the socket, the timer or an `AbortSignal` calls into the client.
//!
//! JS is never called while `Inner` is borrowed: each handler takes what it needs out of
//! the `RefCell`, releases it, then resolves, rejects or sends.

use alloc::borrow::ToOwned;
use alloc::rc::Weak;
use alloc::string::String;
use core::cell::RefCell;

use ferry_protocol::{Cancel, ErrorCode, Frame};
use js_sys::Uint8Array;
use wasm_bindgen::prelude::*;
use web_sys::{CloseEvent, MessageEvent, WebSocket};

use crate::body;
use crate::error::{Failure, push_u32};
use crate::js::{self, Hooks};
use crate::session::{self, ack, flush_acks, on_retry};
use crate::state::{
    GRACE_MS, HANDSHAKE, Handlers, Inner, MISSED_HEARTBEATS, Shared, Slot, State, settle,
};

/// The connection is over: reject everything pending with `code`, detach, and tell JS
/// (once: if `close()` already ended it, this only settles the slot waiting for the close).
pub(crate) fn end(shared: &Shared, code: ErrorCode, message: String) {
    let (first, drained, hooks, ws) = {
        let mut inner = shared.borrow_mut();
        let first = !matches!(inner.state, State::Ended(_));
        if first {
            inner.state = State::Ended(code);
        }
        let drained = inner.pending.drain();
        inner.detach();
        inner.stop_retry();
        inner.rearm();
        (first, drained, inner.hooks.clone(), inner.ws.clone())
    };
    if first && ws.ready_state() < WebSocket::CLOSING {
        let _ = ws.close_with_code_and_reason(1000, "");
    }
    let failure = Failure::new(code, message);
    for (id, slot) in drained {
        settle(&hooks, &id, slot, &failure);
    }
    if first {
        hooks.ended(&failure.to_js(&hooks));
    }
}

fn on_close(shared: &Shared, ev: &CloseEvent) {
    let already = matches!(shared.borrow().state, State::Ended(_));
    if already {
        end(shared, ErrorCode::Closed, String::new());
        return;
    }
    let mut msg = String::from("the connection to the bridge closed (code ");
    push_u32(&mut msg, u32::from(ev.code()));
    msg.push(')');
    let reason = ev.reason();
    if !reason.is_empty() {
        msg.push_str(": ");
        msg.push_str(&reason);
    }
    if let Some(e) = shared.borrow_mut().bridge_error.take() {
        msg.push_str("; the bridge said: ");
        msg.push_str(&e);
    }
    if let Some(e) = shared.borrow_mut().socket_error.take() {
        msg.push_str("; ");
        msg.push_str(&e);
    }
    if session::dropped(shared, ev.code(), &msg) {
        return;
    }
    end(shared, ErrorCode::Disconnected, msg);
}

fn on_message(shared: &Shared, ev: &MessageEvent) {
    let data = ev.data();
    if !data.is_instance_of::<js_sys::ArrayBuffer>() {
        return; // protocol v1 is binary only; text frames are ignored
    }
    let bytes = Uint8Array::new(&data).to_vec();
    shared.borrow_mut().last_seen = js::now_ms();
    dispatch(shared, &bytes);
}

/// Handles one frame from the bridge (`raw`: its bytes, kept for a restored request).
pub(crate) fn dispatch(shared: &Shared, raw: &[u8]) {
    let Ok(frame) = Frame::decode_from_bridge(raw) else {
        return;
    };
    match frame {
        Frame::Welcome(w) => session::on_welcome(shared, &w),
        Frame::Reply(r) => {
            if park(shared, r.id, raw) {
                return;
            }
            let (slot, hooks) = take(shared, r.id);
            if let Some(Slot::Request(s)) = slot {
                match body::decode(&hooks, r.body, r.content_type) {
                    Ok(v) => {
                        let _ = s.resolve.call1(&JsValue::UNDEFINED, &v);
                    }
                    Err(text) => {
                        let mut f = Failure::new(
                            ErrorCode::Remote,
                            "the worker's reply says it is JSON but does not parse",
                        )
                        .with_id(r.id);
                        f.remote_code = Some("invalid_json".into());
                        f.details = text;
                        let _ = s.reject.call1(&JsValue::UNDEFINED, &f.to_js(&hooks));
                    }
                }
            }
        }
        Frame::Progress(p) => {
            let (cb, hooks) = {
                let mut inner = shared.borrow_mut();
                let (cb, idle) = match inner.pending.get_mut(p.id) {
                    Some(Slot::Request(s)) => {
                        s.sent = None; // a worker has it
                        (s.on_progress.clone(), s.idle_ms)
                    }
                    Some(Slot::Parked(s)) => (None, s.idle_ms),
                    _ => (None, None),
                };
                if let Some(idle) = idle {
                    let deadline = js::now_ms() + u64::from(idle) + GRACE_MS;
                    if inner.pending.extend(p.id, deadline) {
                        inner.rearm();
                    }
                }
                (cb, inner.hooks.clone())
            };
            if let Some(cb) = cb
                && let Ok(v) = body::decode(&hooks, p.body, p.content_type)
            {
                let _ = cb.call1(&JsValue::UNDEFINED, &v);
            }
        }
        Frame::Error(e) => {
            let Some(id) = e.id else {
                let slot = {
                    let mut inner = shared.borrow_mut();
                    inner.bridge_error = Some(e.message.to_owned());
                    let slot = inner.pending.remove(HANDSHAKE);
                    inner.rearm();
                    slot
                };
                if let Some(Slot::Handshake { reject, .. }) = slot {
                    let hooks = shared.borrow().hooks.clone();
                    let f = Failure::new(e.code, e.message);
                    let _ = reject.call1(&JsValue::UNDEFINED, &f.to_js(&hooks));
                    end(shared, e.code, e.message.to_owned());
                } else if e.code == ErrorCode::Unauthorized {
                    // A refused token (on a reconnect, a renewal, or at expiry) ends the
                    // client: reconnecting with it again would only be refused again.
                    end(shared, e.code, e.message.to_owned());
                }
                return;
            };
            if park(shared, id, raw) {
                return;
            }
            let (slot, hooks) = take(shared, id);
            if let Some(Slot::Request(s)) = slot {
                let mut f = Failure::new(e.code, e.message).with_id(id);
                f.remote_code = e.remote_code.map(str::to_owned);
                if !e.details.is_empty() || e.content_type.is_some() {
                    f.details =
                        body::decode(&hooks, e.details, e.content_type).unwrap_or_else(|t| t);
                }
                let _ = s.reject.call1(&JsValue::UNDEFINED, &f.to_js(&hooks));
            }
        }
        Frame::Part(p) => {
            let (cb, hooks) = {
                let inner = shared.borrow();
                let cb = match inner.pending.get(p.id) {
                    Some(Slot::Request(s)) if s.gather => s.on_progress.clone(),
                    _ => None,
                };
                (cb, inner.hooks.clone())
            };
            let Some(cb) = cb else { return };
            let replier = p.replier.map_or(JsValue::UNDEFINED, JsValue::from);
            let decoded = body::decode(&hooks, p.body, p.content_type);
            let error = match (p.remote_code, decoded) {
                (None, Ok(value)) => {
                    let _ = cb.call3(&JsValue::UNDEFINED, &replier, &value, &JsValue::UNDEFINED);
                    return;
                }
                (Some(code), details) => {
                    let msg = p.message.unwrap_or("the worker reported an error");
                    let mut f = Failure::new(ErrorCode::Remote, msg).with_id(p.id);
                    f.remote_code = Some(code.to_owned());
                    f.details = details.unwrap_or_else(|t| t);
                    f
                }
                (None, Err(text)) => {
                    let msg = "the worker's reply says it is JSON but does not parse";
                    let mut f = Failure::new(ErrorCode::Remote, msg).with_id(p.id);
                    f.remote_code = Some("invalid_json".into());
                    f.details = text;
                    f
                }
            };
            let _ = cb.call3(
                &JsValue::UNDEFINED,
                &replier,
                &JsValue::UNDEFINED,
                &error.to_js(&hooks),
            );
        }
        Frame::Done(d) => {
            if let (Some(Slot::Request(s)), _) = take(shared, d.id) {
                let _ = s
                    .resolve
                    .call1(&JsValue::UNDEFINED, &JsValue::from(d.count));
            }
        }
        Frame::Accepted(a) => {
            let mut inner = shared.borrow_mut();
            for id in a.ids {
                if let Some(Slot::Request(s)) = inner.pending.get_mut(id) {
                    s.sent = None;
                }
            }
        }
        // Client-to-bridge kinds never come from a bridge. Ignore them.
        _ => {}
    }
}

/// Removes the slot a final frame ends (re-arming the timer), notes the ACK the bridge
/// waits for (also when no slot is left: a redelivered reply), returns it with the hooks.
fn take(shared: &Shared, id: &str) -> (Option<Slot>, Hooks) {
    let mut inner = shared.borrow_mut();
    let slot = inner.pending.remove(id);
    if slot.is_some() {
        inner.rearm();
    }
    ack(&mut inner, id);
    (slot, inner.hooks.clone())
}

/// Keeps the final frame of a restored request until the app `reattach`es it.
fn park(shared: &Shared, id: &str, raw: &[u8]) -> bool {
    match shared.borrow_mut().pending.get_mut(id) {
        Some(Slot::Parked(p)) => {
            p.reply = Some(raw.to_vec());
            true
        }
        _ => false,
    }
}

fn on_timer(shared: &Shared) {
    let mut silent = false;
    let (expired, hooks, state) = {
        let mut inner = shared.borrow_mut();
        inner.timer.fired();
        inner.timer_handle = None;
        let now = js::now_ms();
        let expired = inner.pending.take_expired(now);
        for (id, slot) in &expired {
            match slot {
                // Silent for a few heartbeats: the socket is half-open (dead without a close).
                Slot::Watchdog if inner.state == State::Open => {
                    let beat = u64::from(inner.heartbeat_ms);
                    if now.saturating_sub(inner.last_seen) < MISSED_HEARTBEATS * beat {
                        inner.watch();
                    } else if now.saturating_sub(inner.watch_due) > beat {
                        // The timer ran late: the page was frozen or throttled, and what the
                        // bridge sent meanwhile may still be queued. One more heartbeat for it.
                        inner.watch_at(now + beat);
                    } else {
                        silent = true;
                    }
                }
                Slot::Request(r) if r.unsent.is_none() => {
                    let _ = inner.send(&Frame::Cancel(Cancel { id }));
                }
                // A reconnect attempt without WELCOME in time: drop it, try the next.
                Slot::Attempt => silent = true,
                Slot::Parked(p) if p.reply.is_some() => ack(&mut inner, id),
                _ => {}
            }
        }
        inner.rearm();
        (expired, inner.hooks.clone(), inner.state)
    };
    let mut handshake_timed_out = false;
    for (id, slot) in expired {
        // A gather's window closing is its normal end (the bridge's DONE was late or lost).
        if let Slot::Request(s) = &slot
            && s.gather
        {
            let _ = s.resolve.call0(&JsValue::UNDEFINED);
            continue;
        }
        let f = match &slot {
            Slot::Handshake { .. } => {
                handshake_timed_out = true;
                Failure::new(
                    ErrorCode::Timeout,
                    "the bridge did not complete the handshake in time",
                )
            }
            _ => Failure::new(ErrorCode::Timeout, "no reply before the request's timeout"),
        };
        settle(&hooks, &id, slot, &f);
    }
    if silent {
        // Don't wait for a close handshake the dead peer will never answer.
        let ws = shared.borrow().ws.clone();
        let _ = ws.close();
        let msg = "the bridge went silent (no heartbeat, or no WELCOME in time)";
        if !session::dropped(shared, 1006, msg) {
            end(shared, ErrorCode::Disconnected, msg.into());
        }
    }
    if handshake_timed_out && state == State::Connecting {
        end(
            shared,
            ErrorCode::Timeout,
            "the bridge did not complete the handshake in time".into(),
        );
    }
}

/// Runs the timer now (the page woke up; a throttled timer may be far off).
pub(crate) fn wake(shared: &Shared) {
    let handle = shared.borrow_mut().timer_handle.take();
    if let Some(h) = handle {
        js::clear_timeout(&h);
    }
    on_timer(shared);
}

pub(crate) fn on_abort(shared: &Shared, id: &str) {
    let (slot, hooks) = {
        let mut inner = shared.borrow_mut();
        let slot = inner.pending.remove(id);
        if slot.is_some() {
            let _ = inner.send(&Frame::Cancel(Cancel { id }));
            inner.rearm();
        }
        (slot, inner.hooks.clone())
    };
    if let Some(slot) = slot {
        let f = Failure::new(ErrorCode::Cancelled, "the request was aborted");
        settle(&hooks, id, slot, &f);
    }
}

/// Creates the socket's closures (each holding a `Weak`) and the timer's closure.
pub(crate) fn attach(inner: &Shared, weak: &Weak<RefCell<Inner>>) {
    let w = weak.clone();
    let open = Closure::<dyn FnMut()>::new(move || {
        if let Some(s) = w.upgrade() {
            session::on_open(&s);
        }
    });
    let w = weak.clone();
    let message = Closure::<dyn FnMut(MessageEvent)>::new(move |ev: MessageEvent| {
        if let Some(s) = w.upgrade() {
            on_message(&s, &ev);
        }
    });
    let w = weak.clone();
    let close = Closure::<dyn FnMut(CloseEvent)>::new(move |ev: CloseEvent| {
        if let Some(s) = w.upgrade() {
            on_close(&s, &ev);
        }
    });
    // The close event that always follows reports the failure; this listener keeps what a
    // runtime says about it (Node's ws: "Unexpected server response: 403" for a refused
    // upgrade; browsers say nothing) for that report, and keeps runtimes that throw on
    // unhandled `error` events (ws) from throwing.
    let w = weak.clone();
    let error = Closure::<dyn FnMut(JsValue)>::new(move |ev: JsValue| {
        let said = js_sys::Reflect::get(&ev, &"message".into())
            .ok()
            .and_then(|m| m.as_string())
            .filter(|m| !m.is_empty());
        if let (Some(s), Some(said)) = (w.upgrade(), said) {
            s.borrow_mut().socket_error = Some(said);
        }
    });
    let w = weak.clone();
    let timer = Closure::<dyn FnMut()>::new(move || {
        if let Some(s) = w.upgrade() {
            on_timer(&s);
        }
    });
    let w = weak.clone();
    let acks = Closure::<dyn FnMut()>::new(move || {
        if let Some(s) = w.upgrade() {
            flush_acks(&s);
        }
    });
    let w = weak.clone();
    let retry = Closure::<dyn FnMut()>::new(move || {
        if let Some(s) = w.upgrade() {
            on_retry(&s);
        }
    });
    let mut i = inner.borrow_mut();
    i.handlers = Some(Handlers {
        _open: open,
        _message: message,
        _close: close,
        _error: error,
    });
    i.listen();
    i.timer_cb = Some(timer);
    i.ack_cb = Some(acks);
    i.retry_cb = Some(retry);
}
