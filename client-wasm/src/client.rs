//! The exported client: owns the WebSocket, its event closures, the pending map and the timer.
//!
//! `WasmClient` holds the only strong `Rc` to [`Inner`]; every closure given to JS holds a
//! `Weak`, so there is no cycle and dropping the client (`free()` or GC) closes the socket,
//! detaches the handlers and rejects what is pending. No closure is ever `forget()`-ed.
//! JS is never called while `Inner` is borrowed: code takes what it needs out of the
//! `RefCell`, releases it, then resolves, rejects or sends.

use std::cell::RefCell;
use std::rc::{Rc, Weak};

use ferry_protocol::{Cancel, ErrorCode, Frame, Hello, Limits, Request, validate};
use js_sys::{Function, Promise, Uint8Array};
use wasm_bindgen::prelude::*;
use web_sys::{AbortSignal, BinaryType, CloseEvent, MessageEvent, WebSocket};

use crate::body;
use crate::error::{Failure, cat, check_destination, invalid, push_u32};
use crate::js::{self, Hooks};
use crate::pending::{Pending, TimerAction, TimerPlan};

/// Extra time the client waits past a request's timeout for the bridge's own `timeout`.
const GRACE_MS: u64 = 500;
/// How long `close()` waits for the socket's close event.
const CLOSE_WAIT_MS: u64 = 3_000;
/// Default time for the socket to open and the bridge to answer HELLO.
const CONNECT_TIMEOUT_MS: u64 = 10_000;
/// Pending-map key of the handshake (never a valid request id: has a space).
const HANDSHAKE: &str = "handshake ";
/// Pending-map key of a `close()` waiting for the close event.
const CLOSING: &str = "closing ";

/// What waits in the pending map.
enum Slot {
    Handshake { resolve: Function, reject: Function },
    Request(RequestSlot),
    Closing { resolve: Function },
}

struct RequestSlot {
    resolve: Function,
    reject: Function,
    on_progress: Option<Function>,
    _abort: Option<AbortHook>,
}

/// An `abort` listener on the caller's signal; removed when the slot is dropped, which
/// happens on every exit path (reply, error, timeout, abort, disconnect, close).
struct AbortHook {
    signal: AbortSignal,
    listener: Closure<dyn FnMut()>,
}

impl Drop for AbortHook {
    fn drop(&mut self) {
        let _ = self
            .signal
            .remove_event_listener_with_callback("abort", self.listener.as_ref().unchecked_ref());
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum State {
    Connecting,
    Open,
    /// The connection is over; `code` is what new requests reject with.
    Ended(ErrorCode),
}

/// The socket's event closures; detached (set to null) when the connection ends.
struct Handlers {
    _open: Closure<dyn FnMut()>,
    _message: Closure<dyn FnMut(MessageEvent)>,
    _close: Closure<dyn FnMut(CloseEvent)>,
    _error: Closure<dyn FnMut()>,
}

struct Inner {
    ws: WebSocket,
    hooks: Hooks,
    state: State,
    pending: Pending<Slot>,
    timer: TimerPlan,
    timer_handle: Option<JsValue>,
    timer_cb: Option<Closure<dyn FnMut()>>,
    handlers: Option<Handlers>,
    limits: Option<Limits>,
    session: Option<String>,
    default_timeout_ms: Option<u32>,
    /// A connection-level ERROR the bridge sent, quoted when the socket then closes.
    bridge_error: Option<String>,
}

type Shared = Rc<RefCell<Inner>>;

impl Inner {
    /// Brings the one timer in line with the earliest deadline.
    fn rearm(&mut self) {
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

    /// Sets the socket's handlers to null so the socket no longer calls into the client.
    fn detach(&mut self) {
        self.ws.set_onopen(None);
        self.ws.set_onmessage(None);
        self.ws.set_onclose(None);
        self.ws.set_onerror(None);
    }

    fn send(&self, frame: &Frame<'_>) -> Result<(), JsValue> {
        let bytes = frame.encode();
        self.ws
            .send_with_array_buffer(&Uint8Array::from(bytes.as_slice()).buffer())
    }

    fn error(&self, f: &Failure) -> JsValue {
        f.to_js(&self.hooks)
    }
}

/// Settles what a drained or expired slot owed, with `failure` for handshakes and requests.
fn settle(hooks: &Hooks, id: &str, slot: Slot, failure: &Failure) {
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
    }
}

/// A request rejects with this when it is made on an ended connection.
fn ended_failure(code: ErrorCode) -> Failure {
    let msg = if code == ErrorCode::Closed {
        "the client is closed"
    } else {
        "the connection to the bridge is lost"
    };
    Failure::new(code, msg)
}

/// The connection is over: reject everything pending with `code`, detach, and tell JS
/// (once: if `close()` already ended it, this only settles the slot waiting for the close).
fn end(shared: &Shared, code: ErrorCode, message: String) {
    let (first, drained, hooks, ws) = {
        let mut inner = shared.borrow_mut();
        let first = !matches!(inner.state, State::Ended(_));
        if first {
            inner.state = State::Ended(code);
        }
        let drained = inner.pending.drain();
        inner.detach();
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
    end(shared, ErrorCode::Disconnected, msg);
}

fn on_open(shared: &Shared) {
    let inner = shared.borrow();
    inner.ws.set_binary_type(BinaryType::Arraybuffer);
    let client = cat(&["ferry-client/", env!("CARGO_PKG_VERSION")]);
    let _ = inner.send(&Frame::Hello(Hello {
        client: Some(&client),
        ..Hello::default()
    }));
}

fn on_message(shared: &Shared, ev: &MessageEvent) {
    let data = ev.data();
    if !data.is_instance_of::<js_sys::ArrayBuffer>() {
        return; // protocol v1 is binary only; text frames are ignored
    }
    let bytes = Uint8Array::new(&data).to_vec();
    let Ok(frame) = Frame::decode(&bytes) else {
        return;
    };
    dispatch(shared, frame);
}

fn dispatch(shared: &Shared, frame: Frame<'_>) {
    match frame {
        Frame::Welcome(w) => {
            let slot = {
                let mut inner = shared.borrow_mut();
                if inner.state != State::Connecting {
                    return;
                }
                inner.state = State::Open;
                inner.limits = Some(w.limits);
                inner.session = Some(w.session.to_owned());
                let slot = inner.pending.remove(HANDSHAKE);
                inner.rearm();
                slot
            };
            if let Some(Slot::Handshake { resolve, .. }) = slot {
                let _ = resolve.call0(&JsValue::UNDEFINED);
            }
        }
        Frame::Reply(r) => {
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
                let inner = shared.borrow();
                let cb = match inner.pending.get(p.id) {
                    Some(Slot::Request(s)) => s.on_progress.clone(),
                    _ => None,
                };
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
                }
                return;
            };
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
        // Gather replies (PART/DONE) belong to a later feature; client-to-bridge kinds never
        // come from a bridge. Ignore them.
        _ => {}
    }
}

/// Removes a request's slot (re-arming the timer) and returns it with the hooks.
fn take(shared: &Shared, id: &str) -> (Option<Slot>, Hooks) {
    let mut inner = shared.borrow_mut();
    let slot = inner.pending.remove(id);
    if slot.is_some() {
        inner.rearm();
    }
    (slot, inner.hooks.clone())
}

fn on_timer(shared: &Shared) {
    let (expired, hooks, state) = {
        let mut inner = shared.borrow_mut();
        inner.timer.fired();
        inner.timer_handle = None;
        let expired = inner.pending.take_expired(js::now_ms());
        for (id, slot) in &expired {
            if matches!(slot, Slot::Request(_)) {
                let _ = inner.send(&Frame::Cancel(Cancel { id }));
            }
        }
        inner.rearm();
        (expired, inner.hooks.clone(), inner.state)
    };
    let mut handshake_timed_out = false;
    for (id, slot) in expired {
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
    if handshake_timed_out && state == State::Connecting {
        end(
            shared,
            ErrorCode::Timeout,
            "the bridge did not complete the handshake in time".into(),
        );
    }
}

fn on_abort(shared: &Shared, id: &str) {
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

/// Turns an optional JS millisecond count into a `u32`; `Err` for zero, negative or NaN.
fn millis(v: Option<f64>) -> Result<Option<u32>, ()> {
    match v {
        None => Ok(None),
        Some(ms) if ms >= 1.0 => Ok(Some(if ms >= f64::from(u32::MAX) {
            u32::MAX
        } else {
            ms as u32
        })),
        Some(_) => Err(()),
    }
}

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
    /// Opens the socket (`new WebSocketCtor(url, "ferry.v1")`). `ready` settles after WELCOME.
    #[wasm_bindgen(constructor)]
    pub fn new(
        url: &str,
        ws_ctor: &Function,
        connect_timeout_ms: Option<f64>,
        default_timeout_ms: Option<f64>,
        hooks: Hooks,
    ) -> Result<WasmClient, JsValue> {
        let bad = |msg: &str| Failure::new(ErrorCode::BadRequest, msg).to_js(&hooks);
        let default_timeout_ms =
            millis(default_timeout_ms).map_err(|_| bad("timeoutMs must be a positive number"))?;
        let connect_timeout = millis(connect_timeout_ms)
            .map_err(|_| bad("connectTimeoutMs must be a positive number"))?
            .map_or(CONNECT_TIMEOUT_MS, u64::from);
        let args = js_sys::Array::of2(&url.into(), &ferry_protocol::SUBPROTOCOL.into());
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
        let inner = Rc::new(RefCell::new(Inner {
            ws,
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
        }));
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
        let inner = self.inner.borrow();
        let n = inner.pending.len();
        let internal = usize::from(inner.pending.contains(HANDSHAKE))
            + usize::from(inner.pending.contains(CLOSING));
        (n - internal) as u32
    }

    /// The session id the bridge assigned (after `ready`).
    #[wasm_bindgen(getter)]
    pub fn session(&self) -> Option<String> {
        self.inner.borrow().session.clone()
    }

    /// Sends a request: `body` already encoded by `js/core.js` with its `content_type`;
    /// `headers` is a flat `[name, value, name, value, ...]` list.
    #[allow(clippy::too_many_arguments)] // mirrors the JS call in js/core.js
    pub fn request(
        &self,
        destination: &str,
        body: &[u8],
        content_type: Option<String>,
        timeout_ms: Option<f64>,
        signal: Option<AbortSignal>,
        headers: Vec<String>,
        on_progress: Option<Function>,
    ) -> Promise {
        match self.start(
            destination,
            body,
            content_type,
            timeout_ms,
            signal,
            headers,
            on_progress,
        ) {
            Ok(p) => p,
            Err(f) => rejected(self.inner.borrow().error(&f)),
        }
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

impl WasmClient {
    #[allow(clippy::too_many_arguments)]
    fn start(
        &self,
        destination: &str,
        body: &[u8],
        content_type: Option<String>,
        timeout_ms: Option<f64>,
        signal: Option<AbortSignal>,
        headers: Vec<String>,
        on_progress: Option<Function>,
    ) -> Result<Promise, Failure> {
        let (limits, default_timeout) = {
            let inner = self.inner.borrow();
            match inner.state {
                State::Open => {}
                State::Connecting => {
                    return Err(Failure::new(
                        ErrorCode::Disconnected,
                        "the client is not connected yet",
                    ));
                }
                State::Ended(code) => return Err(ended_failure(code)),
            }
            let Some(limits) = inner.limits else {
                return Err(ended_failure(ErrorCode::Disconnected));
            };
            (limits, inner.default_timeout_ms)
        };
        if signal.as_ref().is_some_and(AbortSignal::aborted) {
            return Err(Failure::new(
                ErrorCode::Cancelled,
                "the request was aborted before it was sent",
            ));
        }
        check_destination(destination)?;
        if let Some(ct) = &content_type {
            validate::content_type(ct).map_err(|e| invalid(&e))?;
        }
        let pairs: Vec<(&str, &str)> = headers
            .chunks_exact(2)
            .map(|p| (p[0].as_str(), p[1].as_str()))
            .collect();
        if pairs.len() > validate::MAX_HEADERS {
            return Err(invalid(&validate::ValidationError::TooManyHeaders));
        }
        for (n, v) in &pairs {
            validate::header(n, v).map_err(|e| invalid(&e))?;
        }
        let timeout = millis(timeout_ms)
            .map_err(|_| {
                Failure::new(ErrorCode::BadRequest, "timeoutMs must be a positive number")
            })?
            .or(default_timeout)
            .unwrap_or(limits.default_timeout_ms)
            .min(limits.max_timeout_ms);
        let id = js::uuid_v4();
        let frame = Frame::Request(Request {
            id: &id,
            destination,
            content_type: content_type.as_deref(),
            timeout_ms: Some(timeout),
            idle_timeout_ms: None,
            headers: pairs,
            body,
        });
        let bytes = frame.encode();
        if bytes.len() > limits.max_frame_bytes as usize {
            let mut m = String::from("the request is larger than the bridge accepts (");
            push_u32(&mut m, limits.max_frame_bytes);
            m.push_str(" bytes)");
            return Err(Failure::new(ErrorCode::TooLarge, m).with_id(id));
        }
        let mut inner = self.inner.borrow_mut();
        if inner.pending.len() >= limits.max_inflight as usize {
            return Err(Failure::new(
                ErrorCode::Overloaded,
                "too many requests are pending on this connection",
            )
            .with_id(id));
        }
        if inner
            .ws
            .send_with_array_buffer(&Uint8Array::from(bytes.as_slice()).buffer())
            .is_err()
        {
            return Err(ended_failure(ErrorCode::Disconnected).with_id(id));
        }
        let abort = signal.map(|signal| {
            let weak = Rc::downgrade(&self.inner);
            let key = id.clone();
            let listener = Closure::<dyn FnMut()>::new(move || {
                if let Some(shared) = weak.upgrade() {
                    on_abort(&shared, &key);
                }
            });
            let _ =
                signal.add_event_listener_with_callback("abort", listener.as_ref().unchecked_ref());
            AbortHook { signal, listener }
        });
        let deadline = js::now_ms() + u64::from(timeout) + GRACE_MS;
        let mut slot = Some(abort);
        let promise = Promise::new(&mut |resolve, reject| {
            if let Some(abort) = slot.take() {
                let _ = inner.pending.insert(
                    id.clone(),
                    deadline,
                    Slot::Request(RequestSlot {
                        resolve,
                        reject,
                        on_progress: on_progress.clone(),
                        _abort: abort,
                    }),
                );
            }
        });
        inner.rearm();
        Ok(promise)
    }
}

/// Creates the socket's closures (each holding a `Weak`) and the timer's closure.
fn attach(inner: &Shared, weak: &Weak<RefCell<Inner>>) {
    let w = weak.clone();
    let open = Closure::<dyn FnMut()>::new(move || {
        if let Some(s) = w.upgrade() {
            on_open(&s);
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
    // The socket reports errors through the close event that always follows; this
    // listener exists so runtimes that throw on unhandled `error` events (ws) do not.
    let error = Closure::<dyn FnMut()>::new(|| {});
    let w = weak.clone();
    let timer = Closure::<dyn FnMut()>::new(move || {
        if let Some(s) = w.upgrade() {
            on_timer(&s);
        }
    });
    let mut i = inner.borrow_mut();
    i.ws.set_onopen(Some(open.as_ref().unchecked_ref()));
    i.ws.set_onmessage(Some(message.as_ref().unchecked_ref()));
    i.ws.set_onclose(Some(close.as_ref().unchecked_ref()));
    i.ws.set_onerror(Some(error.as_ref().unchecked_ref()));
    i.handlers = Some(Handlers {
        _open: open,
        _message: message,
        _close: close,
        _error: error,
    });
    i.timer_cb = Some(timer);
}

impl Drop for Inner {
    fn drop(&mut self) {
        if let Some(h) = self.timer_handle.take() {
            js::clear_timeout(&h);
        }
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
