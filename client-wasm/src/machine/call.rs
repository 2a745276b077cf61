//! One call from the app, request or gather: checked against the connection's state and the
//! bridge's limits, validated with the protocol crate's rules, encoded, then sent (or queued
//! while reconnecting) and parked in the pending map with its deadline.

use alloc::borrow::ToOwned;
use alloc::string::String;
use alloc::vec::Vec;

use ferry_protocol::validate::{self, ValidationError};
use ferry_protocol::{ErrorCode, Frame, Gather, Request};

use super::{Effect, GRACE_MS, Host, Machine, Out, RequestSlot, Slot, State};
use crate::error::{Failure, invalid, push_u32};

/// Turns an optional millisecond count from JS into a `u32`; `Err` for zero, negative or NaN.
pub(crate) fn millis(v: Option<f64>) -> Result<Option<u32>, ()> {
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

/// A request or gather as the app made it.
pub struct Outgoing<'a, H: Host> {
    /// A fresh UUID (from the host's random source).
    pub id: String,
    /// The request queue, or a gather's exchange.
    pub destination: &'a str,
    /// The encoded body.
    pub body: &'a [u8],
    /// Its content type.
    pub content_type: Option<&'a str>,
    /// `timeoutMs` (a gather's window).
    pub timeout_ms: Option<f64>,
    /// `idleTimeoutMs`.
    pub idle_timeout_ms: Option<f64>,
    /// Headers, `(name, value)`.
    pub headers: &'a [(String, String)],
    /// A gather's routing key and `maxReplies`; `None` for a request.
    pub gather: Option<(Option<&'a str>, Option<f64>)>,
    /// The app's `meta`.
    pub meta: H::Meta,
    /// What the caller waits with.
    pub call: H::Call,
    /// `onProgress` of a request; `onPart` of a gather.
    pub progress: Option<H::Progress>,
    /// The caller's `AbortSignal` had fired already.
    pub aborted: bool,
    /// The socket is open now (the bridge may have closed it, its close event yet to come).
    pub socket_open: bool,
}

impl<H: Host> Machine<H> {
    pub(super) fn start<'a>(&mut self, now: u64, o: Outgoing<'a, H>, out: &mut Out<'a, H>) {
        let (bytes, deadline, idle_ms, queue) = match self.prepare(now, &o) {
            Ok(p) => p,
            Err(failure) => {
                out.push(Effect::Reject {
                    call: o.call,
                    failure,
                });
                return;
            }
        };
        let Outgoing {
            id,
            destination,
            gather,
            meta,
            call,
            progress,
            ..
        } = o;
        let (unsent, sent) = if queue {
            (Some(bytes), None)
        } else {
            let keep = self.resume.is_some() && gather.is_none();
            let sent = keep.then(|| bytes.clone());
            out.push(Effect::Send(bytes));
            (None, sent)
        };
        let slot = RequestSlot {
            call,
            destination: destination.to_owned(),
            unsent,
            sent,
            meta,
            progress,
            idle_ms,
            gather: gather.is_some(),
        };
        self.dirty = true;
        if let Err(Slot::Request(r)) =
            self.pending
                .insert(id.clone(), deadline, Slot::Request(slot))
        {
            // The host's random ids do not repeat; should one, the caller still hears.
            let failure =
                Failure::new(ErrorCode::BadRequest, "this id is already pending").with_id(id);
            out.push(Effect::Reject {
                call: r.call,
                failure,
            });
        }
    }

    /// Checks and encodes a call: its frame, deadline, idle timeout, and whether it waits
    /// for the next socket.
    fn prepare(
        &self,
        now: u64,
        o: &Outgoing<'_, H>,
    ) -> Result<(Vec<u8>, u64, Option<u32>, bool), Failure> {
        let Outgoing {
            ref id,
            destination,
            body,
            content_type,
            timeout_ms,
            idle_timeout_ms,
            headers,
            gather,
            aborted,
            socket_open,
            ..
        } = *o;
        let id = id.as_str();
        let gather = match gather {
            Some((key, max)) => Some((
                key,
                millis(max).map_err(|()| invalid(&ValidationError::MaxReplies))?,
            )),
            None => None,
        };
        let queue = match self.state {
            // The bridge has closed the socket (a drain's 1012) and the close event is yet
            // to come: a send now would be dropped silently, so the request waits for the
            // resumed session like one made while reconnecting.
            State::Open => !socket_open,
            State::Reconnecting => {
                let queued = self
                    .pending
                    .iter()
                    .filter(|(_, _, s)| matches!(s, Slot::Request(r) if r.unsent.is_some()))
                    .count();
                if gather.is_some() || queued >= self.policy.max_queued as usize {
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
        let Some(limits) = self.limits else {
            return Err(ended_failure(ErrorCode::Disconnected));
        };
        if aborted {
            return Err(Failure::new(
                ErrorCode::Cancelled,
                "the request was aborted before it was sent",
            ));
        }
        validate::destination(destination).map_err(|e| invalid(&e))?;
        if let Some(ct) = content_type {
            validate::content_type(ct).map_err(|e| invalid(&e))?;
        }
        let pairs: Vec<(&str, &str)> = headers
            .iter()
            .map(|(n, v)| (n.as_str(), v.as_str()))
            .collect();
        if pairs.len() > validate::MAX_HEADERS {
            return Err(invalid(&ValidationError::TooManyHeaders));
        }
        for (n, v) in &pairs {
            validate::header(n, v).map_err(|e| invalid(&e))?;
        }
        let timeout = millis(timeout_ms)
            .map_err(|()| invalid(&ValidationError::Positive("timeoutMs")))?
            .or(self.default_timeout_ms)
            .unwrap_or(limits.default_timeout_ms)
            .min(limits.max_timeout_ms);
        let idle_ms = millis(idle_timeout_ms)
            .map_err(|()| invalid(&ValidationError::Positive("idleTimeoutMs")))?
            .map(|ms| ms.min(limits.max_timeout_ms));
        let frame = match gather {
            None => Frame::Request(Request {
                id,
                destination,
                content_type,
                timeout_ms: Some(timeout),
                idle_timeout_ms: idle_ms,
                headers: pairs,
                body,
            }),
            Some((routing_key, max_replies)) => {
                let g = Gather {
                    id,
                    destination,
                    routing_key,
                    content_type,
                    timeout_ms: Some(timeout),
                    max_replies,
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
        if self.pending.len() >= limits.max_inflight as usize {
            return Err(Failure::new(
                ErrorCode::Overloaded,
                "too many requests are pending on this connection",
            )
            .with_id(id));
        }
        let deadline = now + u64::from(timeout) + GRACE_MS;
        Ok((bytes, deadline, idle_ms, queue))
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
