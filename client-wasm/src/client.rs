//! The exported `WasmClient`: what `js/core.js` calls (connect, send, close, the getters), each
//! turned into an [`Event`] for the machine; [`restore`] is the page-reload half.

use alloc::rc::Rc;
use alloc::string::String;
use alloc::vec::Vec;
use core::cell::RefCell;

use ferry_protocol::ErrorCode;
use js_sys::{Function, Promise};
use wasm_bindgen::prelude::*;
use web_sys::{AbortSignal, WebSocket};

use crate::error::Failure;
use crate::host::{self, AbortHook, Call, Inner, Shared, run, to_js};
use crate::js::{self, Hooks};
use crate::machine::{CONNECT_TIMEOUT_MS, Event, Machine, Outgoing, Policy, State, millis};

mod restore;

/// A Ferry connection. Made by `connect()` in `js/core.js`; not meant to be used directly.
#[wasm_bindgen(js_name = WasmClient)]
pub struct WasmClient {
    inner: Shared,
    ready: Promise,
}

/// A promise and its two functions (the executor runs at once, inside `Promise::new`).
fn promise() -> (Promise, Option<(Function, Function)>) {
    let mut fns = None;
    let p = Promise::new(&mut |resolve, reject| fns = Some((resolve, reject)));
    (p, fns)
}

/// `prefix: <the JS error's message>`.
fn js_message(prefix: &str, error: &JsValue) -> String {
    let detail = js_sys::Reflect::get(error, &"message".into())
        .ok()
        .and_then(|m| m.as_string())
        .or_else(|| error.as_string());
    let mut out = String::from(prefix);
    if let Some(d) = detail {
        out.push_str(": ");
        out.push_str(&d);
    }
    out
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
        let bad = |msg: &str| to_js(&hooks, &Failure::new(ErrorCode::BadRequest, msg));
        let default_timeout_ms =
            millis(default_timeout_ms).map_err(|()| bad("timeoutMs must be a positive number"))?;
        let connect_timeout = millis(connect_timeout_ms)
            .map_err(|()| bad("connectTimeoutMs must be a positive number"))?
            .unwrap_or(CONNECT_TIMEOUT_MS as u32);
        if urls.is_empty() {
            return Err(bad("connect needs at least one bridge URL"));
        }
        for i in (1..urls.len()).rev() {
            let j = ((js::random_unit() * (i + 1) as f64) as usize).min(i);
            urls.swap(i, j);
        }
        let ws = host::open_socket(ws_ctor, &urls[0])
            .map_err(|e| bad(&js_message("cannot open a WebSocket", &e)))?;
        let n = |i: usize| reconnect.get(i).map_or(0, |v| *v as u32); // saturating; NaN → 0
        let policy = Policy {
            initial_ms: n(0),
            max_ms: n(1),
            attempts: n(2),
            max_queued: n(3),
            connect_timeout_ms: connect_timeout,
            persist,
        };
        let (ready, Some(fns)) = promise() else {
            return Err(JsValue::UNDEFINED); // a Promise runs its executor at once
        };
        let now = js::now_ms();
        let mut machine = Machine::new(policy, default_timeout_ms, now, fns);
        if let Some(snapshot) = restore::parse(&restore) {
            machine.restore(now, snapshot);
        }
        let inner = Rc::new(RefCell::new(Inner::new(
            machine,
            hooks,
            ws,
            urls,
            ws_ctor.clone(),
        )));
        host::attach(&inner);
        run(&inner, Event::Timer);
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
        self.inner.borrow().machine.awaited() as u32
    }

    /// 0 `connecting`, 1 `open`, 2 `reconnecting`, 3 `closed` (`js/core.js` names them: a
    /// number costs the module and the glue less than a string).
    #[wasm_bindgen(getter)]
    pub fn state(&self) -> u8 {
        match self.inner.borrow().machine.state() {
            State::Connecting => 0,
            State::Open => 1,
            State::Reconnecting => 2,
            State::Ended(_) => 3,
        }
    }

    /// The session id the bridge assigned (after `ready`).
    #[wasm_bindgen(getter)]
    pub fn session(&self) -> Option<String> {
        self.inner.borrow().machine.session().map(String::from)
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
        headers: Vec<String>,
        callback: Option<Function>,
        idle_timeout_ms: Option<f64>,
        meta: JsValue,
        gather: bool,
        routing_key: Option<String>,
        max_replies: Option<f64>,
    ) -> Promise {
        let (promise, Some((resolve, reject))) = promise() else {
            return Promise::reject(&JsValue::UNDEFINED);
        };
        let id = js::uuid_v4();
        let aborted = signal.as_ref().is_some_and(AbortSignal::aborted);
        let abort = signal
            .filter(|_| !aborted)
            .map(|s| AbortHook::new(&self.inner, s, id.clone()));
        let socket_open = self.inner.borrow().ws.ready_state() == WebSocket::OPEN;
        let call = Outgoing {
            id,
            destination,
            body,
            content_type: content_type.as_deref(),
            timeout_ms,
            idle_timeout_ms,
            headers: &headers,
            gather: gather.then_some((routing_key.as_deref(), max_replies)),
            meta,
            call: Call {
                resolve,
                reject,
                _abort: abort,
            },
            progress: callback,
            aborted,
            socket_open,
        };
        run(&self.inner, Event::Request(call));
        promise
    }

    /// The runtime went offline (`false`) or back online (`true`).
    pub fn network(&self, online: bool) {
        run(&self.inner, Event::Network(online));
    }

    /// The page may have slept (lifecycle `resume`, tab visible again): runs what fell due
    /// now instead of when a throttled timer gets to it.
    pub fn wake(&self) {
        host::wake(&self.inner);
    }

    /// Sends a renewed access token (AUTH) on the open socket; false when not open.
    pub fn auth(&self, token: &str) -> bool {
        let inner = self.inner.borrow();
        let frame = inner.machine.auth(token);
        frame.is_some_and(|f| {
            inner.send(&f);
            true
        })
    }

    /// Closes the connection: pending requests reject with `closed`; settles once the
    /// socket has closed (or after a few seconds if the bridge does not answer).
    pub fn close(&self) -> Promise {
        let (promise, Some((resolve, _))) = promise() else {
            return Promise::resolve(&JsValue::UNDEFINED);
        };
        let socket_closed = self.inner.borrow().ws.ready_state() == WebSocket::CLOSED;
        run(
            &self.inner,
            Event::Close {
                closing: resolve,
                socket_closed,
            },
        );
        promise
    }
}
