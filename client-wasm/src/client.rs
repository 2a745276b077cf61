//! The exported `WasmClient`: connect, send (a request or a gather), close, and the getters
//! `js/core.js` uses; [`call`] sends one request or gather.

use alloc::rc::Rc;
use alloc::string::String;
use alloc::vec::Vec;
use core::cell::RefCell;

use ferry_protocol::ErrorCode;
use js_sys::{Function, Promise};
use wasm_bindgen::prelude::*;
use web_sys::{AbortSignal, BinaryType, WebSocket};

use crate::body;
use crate::error::Failure;
use crate::events::{self, attach};
use crate::js::{self, Hooks};
use crate::pending::{Pending, TimerPlan};
use crate::session;
use crate::state::{
    CLOSE_WAIT_MS, CLOSING, CONNECT_TIMEOUT_MS, HANDSHAKE, Inner, Policy, Shared, Slot, State,
    settle,
};

mod call;
mod restore;

use call::{Call, millis};

fn rejected(v: JsValue) -> Promise {
    Promise::reject(&v)
}

/// A Ferry connection. Made by `connect()` in `js/core.js`; not meant to be used directly.
#[wasm_bindgen(js_name = WasmClient)]
pub struct WasmClient {
    inner: Shared,
    ready: Promise,
}

#[wasm_bindgen(js_class = WasmClient)]
impl WasmClient {
    /// Opens the socket (`new WebSocketCtor(url, "ferry.v1")`) to one of `urls` (shuffled;
    /// each reconnect goes to the next). `ready` settles after WELCOME.
    /// `reconnect` is `[initialMs, maxMs, attempts, maxQueued]` (empty: no reconnecting);
    /// `restore` is what [`WasmClient::snapshot`] returned before a page reload.
    #[wasm_bindgen(constructor)]
    #[allow(clippy::too_many_arguments)] // mirrors the JS call in js/core.js
    pub fn new(
        mut urls: Vec<String>,
        ws_ctor: &Function,
        connect_timeout_ms: Option<f64>,
        default_timeout_ms: Option<f64>,
        hooks: Hooks,
        reconnect: &[f64],
        persist: bool,
        restore: JsValue,
    ) -> Result<WasmClient, JsValue> {
        let bad = |msg: &str| Failure::new(ErrorCode::BadRequest, msg).to_js(&hooks);
        let default_timeout_ms =
            millis(default_timeout_ms).map_err(|_| bad("timeoutMs must be a positive number"))?;
        let connect_timeout = millis(connect_timeout_ms)
            .map_err(|_| bad("connectTimeoutMs must be a positive number"))?
            .map_or(CONNECT_TIMEOUT_MS, u64::from);
        if urls.is_empty() {
            return Err(bad("connect needs at least one bridge URL"));
        }
        for i in (1..urls.len()).rev() {
            let j = ((js::random_unit() * (i + 1) as f64) as usize).min(i);
            urls.swap(i, j);
        }
        let args = js_sys::Array::of2(
            &urls[0].as_str().into(),
            &ferry_protocol::SUBPROTOCOL.into(),
        );
        let ws: WebSocket = match js_sys::Reflect::construct(ws_ctor, &args) {
            Ok(ws) => ws.unchecked_into(),
            Err(e) => {
                let f = Failure::new(
                    ErrorCode::BadRequest,
                    body::js_message("cannot open a WebSocket", &e),
                );
                return Err(f.to_js(&hooks));
            }
        };
        ws.set_binary_type(BinaryType::Arraybuffer);
        let n = |i: usize| reconnect.get(i).map_or(0, |v| *v as u32); // saturating; NaN → 0
        let policy = Policy {
            initial_ms: n(0),
            max_ms: n(1),
            attempts: n(2),
            max_queued: n(3),
            connect_timeout_ms: connect_timeout as u32,
            persist,
        };
        let inner = Rc::new(RefCell::new(Inner {
            ws,
            urls,
            url_at: 0,
            ws_ctor: ws_ctor.clone(),
            policy,
            attempt: 0,
            resume: None,
            acks: Vec::new(),
            ack_cb: None,
            retry_cb: None,
            retry_handle: None,
            heartbeat_ms: 0,
            last_seen: 0,
            watch_due: 0,
            offline: false,
            hooks,
            state: State::Connecting,
            pending: Pending::default(),
            timer: TimerPlan::default(),
            timer_handle: None,
            timer_cb: None,
            handlers: None,
            limits: None,
            session: None,
            default_timeout_ms,
            bridge_error: None,
            socket_error: None,
        }));
        restore::restore(&mut inner.borrow_mut(), &restore);
        let weak = Rc::downgrade(&inner);
        let ready = Promise::new(&mut |resolve, reject| {
            let _ = inner.borrow_mut().pending.insert(
                HANDSHAKE.into(),
                js::now_ms() + connect_timeout,
                Slot::Handshake { resolve, reject },
            );
        });
        attach(&inner, &weak);
        inner.borrow_mut().rearm();
        Ok(WasmClient { inner, ready })
    }

    /// Settles once the bridge has welcomed the connection.
    #[wasm_bindgen(getter)]
    pub fn ready(&self) -> Promise {
        self.ready.clone()
    }

    /// Number of requests awaiting a reply.
    #[wasm_bindgen(getter)]
    pub fn pending(&self) -> u32 {
        self.inner.borrow().awaited() as u32
    }

    /// 0 `connecting`, 1 `open`, 2 `reconnecting`, 3 `closed` (`js/core.js` names them: a
    /// number costs the module and the glue less than a string).
    #[wasm_bindgen(getter)]
    pub fn state(&self) -> u8 {
        match self.inner.borrow().state {
            State::Connecting => 0,
            State::Open => 1,
            State::Reconnecting => 2,
            State::Ended(_) => 3,
        }
    }

    /// The session id the bridge assigned (after `ready`).
    #[wasm_bindgen(getter)]
    pub fn session(&self) -> Option<String> {
        self.inner.borrow().session.clone()
    }

    /// Sends a request, or with `gather` a gather: `body` already encoded by `js/core.js`
    /// with its `content_type`; `headers` is a flat `[name, value, name, value, ...]` list.
    /// A request's `callback` gets each progress message; a gather's gets each part as
    /// `(replier, value, error)`, `timeout_ms` is its window, and it resolves with the number
    /// of parts once the window closes or `max_replies` came. One export for both keeps the
    /// module and its glue smaller.
    #[allow(clippy::too_many_arguments)] // mirrors the JS call in js/core.js
    pub fn send(
        &self,
        destination: &str,
        body: &[u8],
        content_type: Option<String>,
        timeout_ms: Option<f64>,
        signal: Option<AbortSignal>,
        headers: js_sys::Array,
        callback: Option<Function>,
        idle_timeout_ms: Option<f64>,
        meta: JsValue,
        gather: bool,
        routing_key: Option<String>,
        max_replies: Option<f64>,
    ) -> Promise {
        let gather = if gather {
            match millis(max_replies) {
                Ok(max) => Some((routing_key, max)),
                Err(()) => {
                    let f = crate::error::invalid(
                        &ferry_protocol::validate::ValidationError::MaxReplies,
                    );
                    return rejected(self.inner.borrow().error(&f));
                }
            }
        } else {
            None
        };
        self.call(Call {
            destination,
            body,
            content_type,
            timeout_ms,
            idle_timeout_ms,
            signal,
            headers: headers
                .iter()
                .map(|v| v.as_string().unwrap_or_default())
                .collect(),
            callback,
            gather,
            meta,
        })
    }

    /// The runtime went offline (`false`) or back online (`true`): see [`session::network`].
    pub fn network(&self, online: bool) {
        session::network(&self.inner, online);
    }

    /// The page may have slept (lifecycle `resume`, tab visible again): runs what fell due
    /// now instead of when a throttled timer gets to it.
    pub fn wake(&self) {
        events::wake(&self.inner);
    }

    /// Sends a renewed access token (AUTH) on the open socket; false when not open.
    pub fn auth(&self, token: &str) -> bool {
        let inner = self.inner.borrow();
        inner.state == State::Open
            && inner
                .send(&ferry_protocol::Frame::Auth(ferry_protocol::Auth { token }))
                .is_ok()
    }

    /// Closes the connection: pending requests reject with `closed`; settles once the
    /// socket has closed (or after a few seconds if the bridge does not answer).
    pub fn close(&self) -> Promise {
        let (drained, hooks, ws) = {
            let mut inner = self.inner.borrow_mut();
            if matches!(inner.state, State::Ended(_)) {
                return Promise::resolve(&JsValue::UNDEFINED);
            }
            inner.state = State::Ended(ErrorCode::Closed);
            inner.stop_retry();
            let drained = inner.pending.drain();
            inner.rearm();
            (drained, inner.hooks.clone(), inner.ws.clone())
        };
        let failure = Failure::new(ErrorCode::Closed, "the client was closed");
        for (id, slot) in drained {
            settle(&hooks, &id, slot, &failure);
        }
        hooks.ended(&failure.to_js(&hooks));
        if ws.ready_state() == WebSocket::CLOSED {
            self.inner.borrow_mut().detach();
            return Promise::resolve(&JsValue::UNDEFINED);
        }
        let _ = ws.close_with_code_and_reason(1000, "client closed");
        let inner = self.inner.clone();
        Promise::new(&mut |resolve, _| {
            let mut i = inner.borrow_mut();
            let _ = i.pending.insert(
                CLOSING.into(),
                js::now_ms() + CLOSE_WAIT_MS,
                Slot::Closing { resolve },
            );
            i.rearm();
        })
    }
}
