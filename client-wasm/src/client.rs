//! The exported `WasmClient`: connect, request, close, and the getters `js/core.js` uses.

use std::cell::RefCell;
use std::rc::Rc;

use ferry_protocol::{ErrorCode, Frame, Request, validate};
use js_sys::{Function, Promise, Uint8Array};
use wasm_bindgen::prelude::*;
use web_sys::{AbortSignal, BinaryType, WebSocket};

use crate::body;
use crate::error::{Failure, check_destination, invalid, push_u32};
use crate::events::{attach, on_abort};
use crate::js::{self, Hooks};
use crate::pending::{Pending, TimerPlan};
use crate::state::{
    AbortHook, CLOSE_WAIT_MS, CLOSING, CONNECT_TIMEOUT_MS, GRACE_MS, HANDSHAKE, Inner, RequestSlot,
    Shared, Slot, State, ended_failure, settle,
};

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
        idle_timeout_ms: Option<f64>,
    ) -> Promise {
        let times = (timeout_ms, idle_timeout_ms);
        match self.start(
            destination,
            body,
            content_type,
            times,
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
        (timeout_ms, idle_timeout_ms): (Option<f64>, Option<f64>),
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
        let idle_ms = millis(idle_timeout_ms)
            .map_err(|_| {
                Failure::new(
                    ErrorCode::BadRequest,
                    "idleTimeoutMs must be a positive number",
                )
            })?
            .map(|ms| ms.min(limits.max_timeout_ms));
        let id = js::uuid_v4();
        let frame = Frame::Request(Request {
            id: &id,
            destination,
            content_type: content_type.as_deref(),
            timeout_ms: Some(timeout),
            idle_timeout_ms: idle_ms,
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
                        idle_ms,
                        _abort: abort,
                    }),
                );
            }
        });
        inner.rearm();
        Ok(promise)
    }
}

#[cfg(test)]
mod tests {
    use super::millis;

    #[test]
    fn millisecond_options() {
        assert_eq!(millis(None), Ok(None));
        assert_eq!(millis(Some(1.0)), Ok(Some(1)));
        assert_eq!(millis(Some(1500.7)), Ok(Some(1500)));
        assert_eq!(millis(Some(f64::INFINITY)), Ok(Some(u32::MAX)));
        assert_eq!(millis(Some(1e12)), Ok(Some(u32::MAX)));
        assert!(millis(Some(0.0)).is_err());
        assert!(millis(Some(-5.0)).is_err());
        assert!(millis(Some(f64::NAN)).is_err());
    }
}
