//! The session across sockets: HELLO (resuming with the requests still awaited), WELCOME,
//! ACKs of final replies, and reconnecting with exponential backoff and full jitter when the
//! socket drops. Requests survive a reconnect when the session is resumable; the bridge
//! redelivers every reply not yet ACKed, and a reply whose slot is gone is ignored (ACKed),
//! so each reaches its caller exactly once.

use alloc::borrow::ToOwned;
use alloc::string::String;
use alloc::vec::Vec;
use ferry_protocol::{Ack, Attach, ErrorCode, Frame, Hello, Welcome};
use js_sys::{Array, Reflect};
use wasm_bindgen::prelude::*;
use web_sys::{BinaryType, WebSocket};

use crate::error::{Failure, cat};
use crate::events::end;
use crate::js;
use crate::state::{ATTEMPT, GRACE_MS, HANDSHAKE, Inner, Shared, Slot, State, settle};

/// The socket is open: say HELLO, resuming the session (if any) with what is still awaited.
pub(crate) fn on_open(shared: &Shared) {
    let inner = shared.borrow();
    inner.ws.set_binary_type(BinaryType::Arraybuffer);
    let client = cat(&["ferry-client/", env!("CARGO_PKG_VERSION")]);
    let now = js::now_ms();
    let attach = inner
        .pending
        .iter()
        .filter_map(|(id, deadline, slot)| {
            let r = slot.resumable()?;
            let left = deadline
                .saturating_sub(now + GRACE_MS)
                .max(1)
                .min(u64::from(u32::MAX));
            Some(Attach {
                id,
                timeout_ms: left as u32,
                idle_timeout_ms: r.idle_ms,
                destination: r.destination,
            })
        })
        .collect();
    let resume = inner.resume.as_ref();
    let token = inner.hooks.token();
    let _ = inner.send(&Frame::Hello(Hello {
        client: Some(&client),
        resume: resume.map(|r| r.0.as_str()),
        resume_token: resume.map(|r| r.1.as_str()),
        attach,
        acks: inner.policy.initial_ms != 0 || inner.policy.persist,
        token: token.as_deref(),
    }));
}

/// WELCOME: the session is open (new, or resumed with its requests).
pub(crate) fn on_welcome(shared: &Shared, w: &Welcome<'_>) {
    let (handshake, lost, hooks) = {
        let mut inner = shared.borrow_mut();
        if !matches!(inner.state, State::Connecting | State::Reconnecting) {
            return;
        }
        inner.state = State::Open;
        inner.attempt = 0;
        inner.limits = Some(w.limits);
        inner.session = Some(w.session.to_owned());
        inner.resume = w.resume_token.map(|t| (w.session.to_owned(), t.to_owned()));
        let _ = inner.pending.remove(ATTEMPT);
        let handshake = inner.pending.remove(HANDSHAKE);
        inner.heartbeat_ms = w.limits.heartbeat_ms;
        inner.last_seen = js::now_ms();
        inner.watch();
        let mut lost = Vec::new();
        if !w.resumed {
            // What the old session published can no longer be answered; what it may never
            // have published (not ACCEPTED) is sent again on the new one below.
            lost = inner.pending.take_slots(
                |s| matches!(s, Slot::Request(r) if r.unsent.is_none() && r.sent.is_none()),
            );
        }
        let mut queued = Vec::new();
        let keep = inner.resume.is_some();
        for (_, slot) in inner.pending.iter_mut() {
            match slot {
                Slot::Parked(p) if !w.resumed => p.expired = true,
                Slot::Request(r) => {
                    // Sent before the drop but not known to be published: again (a copy
                    // the broker did take is answered once; the client ignores the other).
                    queued.extend(r.sent.clone());
                    if let Some(bytes) = r.unsent.take() {
                        if keep && !r.gather {
                            r.sent = Some(bytes.clone());
                        }
                        queued.push(bytes);
                    }
                }
                _ => {}
            }
        }
        for bytes in queued {
            let _ = inner.send_bytes(&bytes);
        }
        inner.rearm();
        (handshake, lost, inner.hooks.clone())
    };
    if let Some(Slot::Handshake { resolve, .. }) = handshake {
        let _ = resolve.call0(&JsValue::UNDEFINED);
    }
    let f = Failure::new(
        ErrorCode::SessionExpired,
        "the session expired before the client could resume it",
    );
    for (id, slot) in lost {
        settle(&hooks, &id, slot, &f);
    }
    hooks.state("open");
}

/// The socket dropped (or a reconnect attempt failed): keep what a resume can answer,
/// schedule the next socket. False when the client does not reconnect (the caller ends it).
pub(crate) fn dropped(shared: &Shared, code: u16, message: &str) -> bool {
    let (lost, hooks) = {
        let mut inner = shared.borrow_mut();
        let live = matches!(inner.state, State::Open | State::Reconnecting);
        if inner.policy.initial_ms == 0 || !live || !schedule(&mut inner) {
            return false;
        }
        if code == ferry_protocol::CLOSE_TAKEN_OVER {
            inner.resume = None; // another connection has it now; start afresh
        }
        let resumable = inner.resume.is_some();
        let lost = inner.pending.take_slots(|s| match s {
            Slot::Request(r) => r.gather || (!resumable && r.unsent.is_none()),
            Slot::Attempt | Slot::Watchdog => true,
            _ => false,
        });
        inner.detach();
        inner.acks.clear(); // a reply not ACKed is redelivered, then ignored
        let was_open = inner.state == State::Open;
        inner.state = State::Reconnecting;
        inner.rearm();
        (
            if was_open || !lost.is_empty() {
                Some(lost)
            } else {
                None
            },
            inner.hooks.clone(),
        )
    };
    if let Some(lost) = lost {
        let f = Failure::new(ErrorCode::Disconnected, message);
        for (id, slot) in lost {
            settle(&hooks, &id, slot, &f);
        }
        hooks.state("reconnecting");
    }
    true
}

/// Arms the reconnect timer: full jitter over `min(max, initial * 2^attempt)`. False once
/// the attempts are used up.
fn schedule(inner: &mut Inner) -> bool {
    inner.stop_retry();
    if inner.offline {
        return true; // no attempt can succeed, so none is spent: `online` starts the next
    }
    let p = inner.policy;
    if p.attempts != 0 && inner.attempt >= p.attempts {
        return false;
    }
    let ceiling = (u64::from(p.initial_ms) << inner.attempt.min(20)).min(u64::from(p.max_ms));
    let delay = js::random_unit() * ceiling as f64;
    inner.attempt += 1;
    if let Some(cb) = &inner.retry_cb {
        inner.retry_handle = Some(js::set_timeout(cb.as_ref().unchecked_ref(), delay));
    }
    true
}

/// The reconnect timer fired: open a new socket (its HELLO resumes the session).
pub(crate) fn on_retry(shared: &Shared) {
    let opened = {
        let mut inner = shared.borrow_mut();
        inner.retry_handle = None;
        if inner.state != State::Reconnecting {
            return;
        }
        // The next bridge: the one just lost may be draining or gone.
        inner.url_at = inner.url_at.wrapping_add(1);
        let url = inner.urls[inner.url_at % inner.urls.len()].as_str();
        let args = Array::of2(&url.into(), &ferry_protocol::SUBPROTOCOL.into());
        match Reflect::construct(&inner.ws_ctor, &args) {
            Ok(ws) => {
                inner.ws = ws.unchecked_into::<WebSocket>();
                inner.ws.set_binary_type(BinaryType::Arraybuffer);
                inner.listen();
                let deadline = js::now_ms() + u64::from(inner.policy.connect_timeout_ms);
                let _ = inner
                    .pending
                    .insert(ATTEMPT.into(), deadline, Slot::Attempt);
                inner.rearm();
                true
            }
            Err(_) => schedule(&mut inner),
        }
    };
    if !opened {
        end(
            shared,
            ErrorCode::Disconnected,
            "cannot reconnect to the bridge".into(),
        );
    }
}

/// The runtime's `online`/`offline` events. Offline, a scheduled reconnect is cancelled and
/// none is made (none of `maxAttempts` is spent); back online, a client waiting to reconnect
/// tries at once, its backoff started over. An open socket is left to the watchdog: it may
/// well survive a short outage.
pub(crate) fn network(shared: &Shared, online: bool) {
    let now = {
        let mut inner = shared.borrow_mut();
        inner.offline = !online;
        if !online {
            inner.stop_retry();
        }
        let waiting = inner.state == State::Reconnecting && !inner.pending.contains(ATTEMPT);
        if online && waiting {
            inner.stop_retry();
            inner.attempt = 0;
        }
        online && waiting
    };
    if now {
        on_retry(shared);
    }
}

/// Notes a final reply to ACK; one ACK frame per microtask carries them all.
pub(crate) fn ack(inner: &mut Inner, id: &str) {
    if inner.resume.is_none() {
        return;
    }
    if inner.acks.is_empty()
        && let Some(cb) = &inner.ack_cb
    {
        js::queue_microtask(cb.as_ref().unchecked_ref());
    }
    inner.acks.push(id.to_owned());
}

/// Sends the ACKs noted since the last flush.
pub(crate) fn flush_acks(shared: &Shared) {
    let mut inner = shared.borrow_mut();
    let ids = core::mem::take(&mut inner.acks);
    if ids.is_empty() || inner.state != State::Open {
        return;
    }
    let ids = ids.iter().map(String::as_str).collect();
    let _ = inner.send(&Frame::Ack(Ack { ids }));
}
