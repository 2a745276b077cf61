//! The machine's host in the JS runtime: owns the socket, the host's timers and every closure
//! JS calls back, feeds the [`Machine`] events and performs its effects.
//!
//! `WasmClient` holds the only strong `Rc` to [`Inner`]; every closure given to JS holds a
//! `Weak`, so there is no cycle and dropping the client (`free()` or GC) closes the socket,
//! detaches the handlers and rejects what is pending. No closure is ever `forget()`-ed.
//! JS is never called while `Inner` is borrowed: [`run`] takes the effects out of the
//! machine, releases it, then performs them, so a callback may call the client again.

use alloc::rc::{Rc, Weak};
use alloc::string::String;
use alloc::vec::Vec;
use core::cell::RefCell;

use futures::channel::oneshot;
use js_sys::futures::future_to_promise;
use js_sys::{Array, Function, Promise, Reflect, Uint8Array};
use wasm_bindgen::prelude::*;
use web_sys::{AbortSignal, BinaryType, CloseEvent, MessageEvent, WebSocket};

use crate::deliver;
use crate::js::{self, Hooks};
use crate::machine::{Effect, Event, Host, Machine};
use crate::pending::TimerAction;

/// The JS side's types for the machine.
pub(crate) struct Js;

impl Host for Js {
    type Call = Call;
    type Progress = Function;
    type Meta = JsValue;
    type Ready = Settle;
    type Closing = Settle;
}

/// Settles a promise the app awaits: the sending half of the channel its future awaits.
pub(crate) type Settle = oneshot::Sender<Result<JsValue, JsValue>>;

/// A promise for the app and what settles it: a future awaiting a `oneshot` channel, run
/// by js-sys's executor. A sender dropped unsent (the machine settles every call on every
/// path, so only a bug could) rejects the promise with `undefined`.
pub(crate) fn promise() -> (Promise, Settle) {
    let (settle, settled) = oneshot::channel();
    let p = future_to_promise(async move { settled.await.unwrap_or(Err(JsValue::UNDEFINED)) });
    (p, settle)
}

/// What a request's caller waits with: what settles its promise, and its abort listener.
pub(crate) struct Call {
    pub(crate) settle: Settle,
    pub(crate) _abort: Option<AbortHook>,
}

/// An `abort` listener on the caller's signal; removed when the call is dropped, which
/// happens on every exit path (reply, error, timeout, abort, disconnect, close).
pub(crate) struct AbortHook {
    signal: AbortSignal,
    listener: Closure<dyn FnMut()>,
}

impl AbortHook {
    /// Listens for `signal`'s abort: the request `id` is then cancelled.
    pub(crate) fn new(shared: &Shared, signal: AbortSignal, id: String) -> Self {
        let weak = Rc::downgrade(shared);
        let listener = Closure::<dyn FnMut()>::new(move || {
            if let Some(shared) = weak.upgrade() {
                run(&shared, Event::Abort(&id));
            }
        });
        let _ = signal.add_event_listener_with_callback("abort", listener.as_ref().unchecked_ref());
        Self { signal, listener }
    }
}

impl Drop for AbortHook {
    fn drop(&mut self) {
        let _ = self
            .signal
            .remove_event_listener_with_callback("abort", self.listener.as_ref().unchecked_ref());
    }
}

/// The socket's event closures; detached (set to null) when the connection ends.
struct Handlers {
    open: Closure<dyn FnMut()>,
    message: Closure<dyn FnMut(MessageEvent)>,
    close: Closure<dyn FnMut(CloseEvent)>,
    error: Closure<dyn FnMut(JsValue)>,
}

/// The timers' and the microtask's closures.
struct Callbacks {
    timer: Closure<dyn FnMut()>,
    acks: Closure<dyn FnMut()>,
    retry: Closure<dyn FnMut()>,
}

pub(crate) struct Inner {
    pub(crate) machine: Machine<Js>,
    pub(crate) hooks: Hooks,
    pub(crate) ws: WebSocket,
    /// The bridges' URLs, shuffled once; each reconnect attempt takes the next.
    urls: Vec<String>,
    /// Index (modulo `urls.len()`) of the URL the current socket was opened to.
    url_at: usize,
    ws_ctor: Function,
    timer_handle: Option<JsValue>,
    retry_handle: Option<JsValue>,
    handlers: Option<Handlers>,
    callbacks: Option<Callbacks>,
}

pub(crate) type Shared = Rc<RefCell<Inner>>;

/// Opens a socket to `url` speaking `ferry.v1`, its messages as `ArrayBuffer`s.
pub(crate) fn open_socket(ctor: &Function, url: &str) -> Result<WebSocket, JsValue> {
    let args = Array::of2(&url.into(), &ferry_protocol::SUBPROTOCOL.into());
    let ws: WebSocket = Reflect::construct(ctor, &args)?.unchecked_into();
    ws.set_binary_type(BinaryType::Arraybuffer);
    Ok(ws)
}

impl Inner {
    /// A client's host around its first socket (`urls[0]`); [`attach`] gives it its closures.
    pub(crate) fn new(
        machine: Machine<Js>,
        hooks: Hooks,
        ws: WebSocket,
        urls: Vec<String>,
        ws_ctor: Function,
    ) -> Self {
        Self {
            machine,
            hooks,
            ws,
            urls,
            url_at: 0,
            ws_ctor,
            timer_handle: None,
            retry_handle: None,
            handlers: None,
            callbacks: None,
        }
    }

    /// Points the current socket's events at the client's handlers.
    fn listen(&self) {
        if let Some(h) = &self.handlers {
            self.ws.set_onopen(Some(h.open.as_ref().unchecked_ref()));
            self.ws
                .set_onmessage(Some(h.message.as_ref().unchecked_ref()));
            self.ws.set_onclose(Some(h.close.as_ref().unchecked_ref()));
            self.ws.set_onerror(Some(h.error.as_ref().unchecked_ref()));
        }
    }

    /// Sets the socket's handlers to null so the socket no longer calls into the client.
    fn detach(&self) {
        self.ws.set_onopen(None);
        self.ws.set_onmessage(None);
        self.ws.set_onclose(None);
        self.ws.set_onerror(None);
    }

    fn clear(handle: &mut Option<JsValue>) {
        if let Some(h) = handle.take() {
            js::clear_timeout(&h);
        }
    }

    /// Sends one encoded frame (dropped by the runtime if the socket is closing: the close
    /// event then tells the machine). The runtime gets a copy, never a view of the wasm
    /// memory: workerd reads the bytes after `send` returns, when the memory holds the next
    /// frame (docs/benchmarks.md).
    pub(crate) fn send(&self, bytes: &[u8]) {
        let _ = self
            .ws
            .send_with_array_buffer(&Uint8Array::from(bytes).buffer());
    }

    /// Performs an effect on the socket or the timers (nothing the app's code sees); false
    /// for any other effect.
    fn io(&mut self, effect: &Effect<'_, Js>) -> bool {
        match *effect {
            Effect::Send(ref bytes) => self.send(bytes),
            Effect::Timer(action) => {
                Self::clear(&mut self.timer_handle);
                if let (TimerAction::Arm { delay_ms }, Some(c)) = (action, &self.callbacks) {
                    let cb = c.timer.as_ref().unchecked_ref();
                    self.timer_handle = Some(js::set_timeout(cb, delay_ms as f64));
                }
            }
            Effect::ArmRetry { ceiling_ms } => {
                Self::clear(&mut self.retry_handle);
                if let Some(c) = &self.callbacks {
                    let delay = js::random_unit() * ceiling_ms as f64;
                    let cb = c.retry.as_ref().unchecked_ref();
                    self.retry_handle = Some(js::set_timeout(cb, delay));
                }
            }
            Effect::StopRetry => Self::clear(&mut self.retry_handle),
            Effect::CloseSocket { code, reason } => {
                if self.ws.ready_state() < WebSocket::CLOSING {
                    let _ = self.ws.close_with_code_and_reason(code, reason);
                }
            }
            Effect::AbandonSocket => {
                let _ = self.ws.close();
            }
            Effect::Detach => self.detach(),
            Effect::QueueAcks => {
                if let Some(c) = &self.callbacks {
                    js::queue_microtask(c.acks.as_ref().unchecked_ref());
                }
            }
            _ => return false,
        }
        true
    }

    /// Opens a socket to the next bridge (the one just lost may be draining or gone).
    fn reconnect(&mut self) -> bool {
        self.url_at = self.url_at.wrapping_add(1);
        let url = &self.urls[self.url_at % self.urls.len()];
        match open_socket(&self.ws_ctor, url) {
            Ok(ws) => {
                self.ws = ws;
                self.listen();
                true
            }
            Err(_) => false,
        }
    }
}

/// Feeds the machine one event and performs what it says.
pub(crate) fn run(shared: &Shared, event: Event<'_, Js>) {
    let effects = shared.borrow_mut().machine.handle(js::now_ms(), event);
    perform(shared, effects);
}

fn perform(shared: &Shared, effects: Vec<Effect<'_, Js>>) {
    let hooks = shared.borrow().hooks.clone();
    for effect in effects {
        if shared.borrow_mut().io(&effect) {
            continue;
        }
        match effect {
            Effect::Reconnect => {
                let opened = shared.borrow_mut().reconnect();
                if !opened {
                    run(shared, Event::ReconnectFailed);
                }
            }
            Effect::Redeliver(raw) => run(shared, Event::Stored(&raw)),
            other => deliver::deliver(&hooks, other),
        }
    }
}

/// Creates the socket's closures and the timers' (each holding a `Weak`), and listens.
pub(crate) fn attach(shared: &Shared) {
    let weak: Weak<RefCell<Inner>> = Rc::downgrade(shared);
    let w = weak.clone();
    let open = Closure::<dyn FnMut()>::new(move || {
        if let Some(s) = w.upgrade() {
            let hooks = s.borrow().hooks.clone();
            let token = hooks.token();
            run(&s, Event::Opened { token });
        }
    });
    let w = weak.clone();
    let message = Closure::<dyn FnMut(MessageEvent)>::new(move |ev: MessageEvent| {
        let data = ev.data();
        // Protocol v1 is binary only; text frames are ignored.
        if let (Some(s), true) = (w.upgrade(), data.is_instance_of::<js_sys::ArrayBuffer>()) {
            let bytes = Uint8Array::new(&data).to_vec();
            run(&s, Event::Frame(&bytes));
        }
    });
    let w = weak.clone();
    let close = Closure::<dyn FnMut(CloseEvent)>::new(move |ev: CloseEvent| {
        if let Some(s) = w.upgrade() {
            let reason = ev.reason();
            run(
                &s,
                Event::Closed {
                    code: ev.code(),
                    reason: &reason,
                },
            );
        }
    });
    // The close event that always follows reports the failure; this listener keeps what a
    // runtime says about it (Node's ws: "Unexpected server response: 403" for a refused
    // upgrade; browsers say nothing) for that report, and keeps runtimes that throw on
    // unhandled `error` events (ws) from throwing.
    let w = weak.clone();
    let error = Closure::<dyn FnMut(JsValue)>::new(move |ev: JsValue| {
        let said = Reflect::get(&ev, &"message".into())
            .ok()
            .and_then(|m| m.as_string())
            .filter(|m| !m.is_empty());
        if let (Some(s), Some(said)) = (w.upgrade(), said) {
            run(&s, Event::SocketError(said));
        }
    });
    let w = weak.clone();
    let timer = Closure::<dyn FnMut()>::new(move || {
        if let Some(s) = w.upgrade() {
            s.borrow_mut().timer_handle = None;
            run(&s, Event::Timer);
        }
    });
    let w = weak.clone();
    let acks = Closure::<dyn FnMut()>::new(move || {
        if let Some(s) = w.upgrade() {
            run(&s, Event::FlushAcks);
        }
    });
    let w = weak;
    let retry = Closure::<dyn FnMut()>::new(move || {
        if let Some(s) = w.upgrade() {
            s.borrow_mut().retry_handle = None;
            run(&s, Event::Retry);
        }
    });
    let mut i = shared.borrow_mut();
    i.handlers = Some(Handlers {
        open,
        message,
        close,
        error,
    });
    i.listen();
    i.callbacks = Some(Callbacks { timer, acks, retry });
}

/// Runs the timer now (the page woke up; a throttled timer may be far off).
pub(crate) fn wake(shared: &Shared) {
    Inner::clear(&mut shared.borrow_mut().timer_handle);
    run(shared, Event::Timer);
}

impl Drop for Inner {
    fn drop(&mut self) {
        Self::clear(&mut self.timer_handle);
        Self::clear(&mut self.retry_handle);
        self.detach();
        if self.ws.ready_state() < WebSocket::CLOSING {
            let _ = self.ws.close_with_code_and_reason(1000, "client dropped");
        }
        for effect in self.machine.shutdown("the client was dropped") {
            deliver::deliver(&self.hooks, effect);
        }
    }
}
