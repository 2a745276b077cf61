//! The exported `WasmClient`: what `js/core.js` calls (connect, send, close, the getters), each
//! turned into an [`Event`] for the machine; `restore` is the page-reload half.

use alloc::rc::Rc;
use alloc::string::String;
use alloc::vec::Vec;
use core::cell::RefCell;

use ferry_protocol::ErrorCode;
use ferry_protocol::validate::ValidationError;
use js_sys::{Function, Promise};
use wasm_bindgen::prelude::*;
use web_sys::{AbortSignal, WebSocket};

use crate::deliver::to_js;
use crate::error::{Failure, invalid};
use crate::host::{self, AbortHook, Call, Inner, Shared, promise, run};
use crate::js::{self, Hooks};
use crate::machine::{Event, Machine, Outgoing, State};
use crate::options::{Backoff, CallOptions, ConnectOptions};

mod restore;

/// A Ferry connection. Made by `connect()` in `js/core.js`; not meant to be used directly.
#[wasm_bindgen(js_name = WasmClient)]
pub struct WasmClient {
    inner: Shared,
    ready: Promise,
    backoff: Option<Backoff>,
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
    /// each reconnect goes to the next). `ready` settles after WELCOME. `options` is the
    /// app's `connect` options object (read as [`ConnectOptions`], checked once); `restore`
    /// is what [`WasmClient::snapshot`] returned before a page reload.
    #[wasm_bindgen(constructor)]
    pub fn new(
        mut urls: Vec<String>,
        ws_ctor: &Function,
        options: JsValue,
        hooks: Hooks,
        persist: bool,
        restore: JsValue,
    ) -> Result<WasmClient, JsValue> {
        let bad = |e: &ValidationError| to_js(&hooks, &invalid(e));
        let options: ConnectOptions =
            serde_wasm_bindgen::from_value(options).map_err(|_| bad(&ValidationError::Options))?;
        let config = options.check(persist).map_err(|e| bad(&e))?;
        if urls.is_empty() {
            let f = Failure::new(
                ErrorCode::BadRequest,
                "connect needs at least one bridge URL",
            );
            return Err(to_js(&hooks, &f));
        }
        for i in (1..urls.len()).rev() {
            let j = ((js::random_unit() * (i + 1) as f64) as usize).min(i);
            urls.swap(i, j);
        }
        let ws = host::open_socket(ws_ctor, &urls[0]).map_err(|e| {
            let f = Failure::new(
                ErrorCode::BadRequest,
                js_message("cannot open a WebSocket", &e),
            );
            to_js(&hooks, &f)
        })?;
        let (ready, settle) = promise();
        let now = js::now_ms();
        let mut machine = Machine::new(config.policy, config.default_timeout_ms, now, settle);
        if let Some(snapshot) = restore::parse(restore) {
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
        Ok(WasmClient {
            inner,
            ready,
            backoff: config.backoff(),
        })
    }

    /// How `connect()` retries a first connection that failed: `{ initialMs, maxMs,
    /// attempts }`, or `undefined` without reconnecting.
    #[wasm_bindgen(getter)]
    pub fn backoff(&self) -> JsValue {
        serde_wasm_bindgen::to_value(&self.backoff).unwrap_or(JsValue::UNDEFINED)
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

    /// `connecting`, `open`, `reconnecting` or `closed`.
    #[wasm_bindgen(getter)]
    pub fn state(&self) -> String {
        let name = match self.inner.borrow().machine.state() {
            State::Connecting => "connecting",
            State::Open => "open",
            State::Reconnecting => "reconnecting",
            State::Ended(_) => "closed",
        };
        name.into()
    }

    /// The session id the bridge assigned (after `ready`).
    #[wasm_bindgen(getter)]
    pub fn session(&self) -> Option<String> {
        self.inner.borrow().machine.session().map(String::from)
    }

    /// Sends a request, or with `gather` a gather: `body` already encoded by `js/core.js`;
    /// `options` its [`CallOptions`] (headers as `[name, value]` pairs, the content type
    /// chosen with the body's encoding, `meta` kept as the app gave it). A request's
    /// `callback` gets each progress message; a gather's gets each part as `(replier, value,
    /// error)`, `timeoutMs` is its window, and it resolves with the number of parts once the
    /// window closes or `maxReplies` came. One export for both keeps the module smaller.
    pub fn send(
        &self,
        destination: &str,
        body: &[u8],
        options: JsValue,
        signal: Option<AbortSignal>,
        callback: Option<Function>,
        gather: bool,
    ) -> Promise {
        let (promise, settle) = promise();
        let options: CallOptions = match serde_wasm_bindgen::from_value(options) {
            Ok(o) => o,
            Err(_) => {
                let hooks = self.inner.borrow().hooks.clone();
                let _ = settle.send(Err(to_js(&hooks, &invalid(&ValidationError::Options))));
                return promise;
            }
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
            content_type: options.content_type.as_deref(),
            timeout_ms: options.timeout_ms.value(),
            idle_timeout_ms: options.idle_timeout_ms.value(),
            headers: &options.headers,
            gather: gather.then_some((options.routing_key.as_deref(), options.max_replies.value())),
            meta: options.meta.clone(),
            call: Call {
                settle,
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
        let (promise, settle) = promise();
        let socket_closed = self.inner.borrow().ws.ready_state() == WebSocket::CLOSED;
        run(
            &self.inner,
            Event::Close {
                closing: settle,
                socket_closed,
            },
        );
        promise
    }
}
