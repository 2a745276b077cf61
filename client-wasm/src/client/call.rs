//! One call from JS, request or gather: validated against the bridge's limits, encoded,
//! sent, and parked in the pending map with its timer and abort listener.

use alloc::borrow::ToOwned;
use alloc::rc::Rc;
use alloc::string::String;
use alloc::vec::Vec;

use ferry_protocol::{ErrorCode, Frame, Gather, Request, validate};
use js_sys::{Function, Promise};
use wasm_bindgen::prelude::*;
use web_sys::{AbortSignal, WebSocket};

use super::{WasmClient, rejected};
use crate::error::{Failure, check_destination, invalid, push_u32};
use crate::events::on_abort;
use crate::js;
use crate::state::{AbortHook, GRACE_MS, RequestSlot, Slot, State, ended_failure};

/// Turns an optional JS millisecond count into a `u32`; `Err` for zero, negative or NaN.
pub(super) fn millis(v: Option<f64>) -> Result<Option<u32>, ()> {
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

/// One call from JS: a request, or (with `gather`) a gather.
pub(super) struct Call<'a> {
    pub(super) destination: &'a str,
    pub(super) body: &'a [u8],
    pub(super) content_type: Option<String>,
    pub(super) timeout_ms: Option<f64>,
    pub(super) idle_timeout_ms: Option<f64>,
    pub(super) signal: Option<AbortSignal>,
    pub(super) headers: Vec<String>,
    /// `onProgress` of a request; `on_part` of a gather.
    pub(super) callback: Option<Function>,
    /// A gather's routing key and `max_replies`.
    pub(super) gather: Option<(Option<String>, Option<u32>)>,
    /// The caller's `meta` (kept with the request in storage).
    pub(super) meta: JsValue,
}

impl WasmClient {
    pub(super) fn call(&self, call: Call<'_>) -> Promise {
        match self.start(call) {
            Ok(p) => p,
            Err(f) => rejected(self.inner.borrow().error(&f)),
        }
    }

    fn start(&self, call: Call<'_>) -> Result<Promise, Failure> {
        let Call {
            destination,
            body,
            content_type,
            timeout_ms,
            idle_timeout_ms,
            signal,
            headers,
            callback,
            gather,
            meta,
        } = call;
        let (limits, default_timeout, queue) = {
            let inner = self.inner.borrow();
            let queue = match inner.state {
                // The bridge has closed the socket (a drain's 1012) and the close event is
                // yet to come: a send now would be dropped silently, so the request waits
                // for the resumed session like one made while reconnecting.
                State::Open => inner.ws.ready_state() != WebSocket::OPEN,
                State::Reconnecting => {
                    let queued = inner
                        .pending
                        .iter()
                        .filter(|(_, _, s)| matches!(s, Slot::Request(r) if r.unsent.is_some()))
                        .count();
                    if gather.is_some() || queued >= inner.policy.max_queued as usize {
                        return Err(Failure::new(
                            ErrorCode::Disconnected,
                            "the connection to the bridge is lost (reconnecting)",
                        ));
                    }
                    true
                }
                State::Connecting => {
                    return Err(Failure::new(
                        ErrorCode::Disconnected,
                        "the client is not connected yet",
                    ));
                }
                State::Ended(code) => return Err(ended_failure(code)),
            };
            let Some(limits) = inner.limits else {
                return Err(ended_failure(ErrorCode::Disconnected));
            };
            (limits, inner.default_timeout_ms, queue)
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
        let content_type = content_type.as_deref();
        let frame = match &gather {
            None => Frame::Request(Request {
                id: &id,
                destination,
                content_type,
                timeout_ms: Some(timeout),
                idle_timeout_ms: idle_ms,
                headers: pairs,
                body,
            }),
            Some((routing_key, max_replies)) => {
                let g = Gather {
                    id: &id,
                    destination,
                    routing_key: routing_key.as_deref(),
                    content_type,
                    timeout_ms: Some(timeout),
                    max_replies: *max_replies,
                    headers: pairs,
                    body,
                };
                validate::gather(&g).map_err(|e| invalid(&e))?;
                Frame::Gather(g)
            }
        };
        let bytes = frame.encode();
        if bytes.len() > limits.max_frame_bytes as usize {
            let mut m = String::from("the request is larger than the bridge accepts (");
            push_u32(&mut m, limits.max_frame_bytes);
            m.push_str(" bytes)");
            return Err(Failure::new(ErrorCode::TooLarge, m).with_id(id));
        }
        let mut inner = self.inner.borrow_mut();
        if inner.awaited() >= limits.max_inflight as usize {
            return Err(Failure::new(
                ErrorCode::Overloaded,
                "too many requests are pending on this connection",
            )
            .with_id(id));
        }
        let (unsent, sent) = if queue {
            (Some(bytes), None)
        } else if inner.send_bytes(&bytes).is_err() {
            return Err(ended_failure(ErrorCode::Disconnected).with_id(id));
        } else if inner.resume.is_some() && gather.is_none() {
            (None, Some(bytes))
        } else {
            (None, None)
        };
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
        let mut slot = Some((abort, unsent, sent));
        let promise = Promise::new(&mut |resolve, reject| {
            if let Some((abort, unsent, sent)) = slot.take() {
                let _ = inner.pending.insert(
                    id.clone(),
                    deadline,
                    Slot::Request(RequestSlot {
                        resolve,
                        reject,
                        destination: destination.to_owned(),
                        unsent,
                        sent,
                        meta: meta.clone(),
                        on_progress: callback.clone(),
                        idle_ms,
                        gather: gather.is_some(),
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
