//! What the bridge sends: final replies and errors settle their request (or wait in a
//! restored one until the app reattaches it), progress and parts go to callbacks, ACCEPTED
//! marks requests the broker took.

use alloc::borrow::ToOwned;
use alloc::boxed::Box;
use alloc::vec::Vec;

use ferry_protocol::{ErrorCode, Frame};

use super::{Body, Effect, GRACE_MS, Host, Machine, Out, Slot};
use crate::error::Failure;

impl<H: Host> Machine<H> {
    /// Handles one frame from the bridge (`raw`: its bytes, kept for a restored request).
    pub(super) fn on_frame<'a>(&mut self, now: u64, raw: &'a [u8], out: &mut Out<'a, H>) {
        let Ok(frame) = Frame::decode_from_bridge(raw) else {
            return;
        };
        match frame {
            Frame::Welcome(w) => self.on_welcome(now, &w, out),
            Frame::Reply(r) => {
                if self.park(r.id, raw) {
                    return;
                }
                if let Some(Slot::Request(s)) = self.take(r.id, out) {
                    let body = Body {
                        bytes: r.body,
                        content_type: r.content_type,
                    };
                    out.push(Effect::Reply {
                        call: s.call,
                        id: r.id,
                        body,
                    });
                }
            }
            Frame::Progress(p) => {
                let (callback, idle) = match self.pending.get_mut(p.id) {
                    Some(Slot::Request(s)) => {
                        s.sent = None; // a worker has it
                        (s.progress.clone(), s.idle_ms)
                    }
                    Some(Slot::Parked(s)) => (None, s.idle_ms),
                    None => (None, None),
                };
                if let Some(idle) = idle {
                    let deadline = now + u64::from(idle) + GRACE_MS;
                    if self.pending.extend(p.id, deadline) {
                        self.dirty = true;
                    }
                }
                if let Some(callback) = callback {
                    let body = Body {
                        bytes: p.body,
                        content_type: p.content_type,
                    };
                    out.push(Effect::Progress { callback, body });
                }
            }
            Frame::Error(e) => {
                let Some(id) = e.id else {
                    self.bridge_error = Some(e.message.to_owned());
                    if let Some((_, ready)) = self.handshake.take() {
                        let failure = Failure::new(e.code, e.message);
                        out.push(Effect::NotReady { ready, failure });
                        self.end(e.code, e.message.to_owned(), out);
                    } else if e.code == ErrorCode::Unauthorized {
                        // A refused token (on a reconnect, a renewal, or at expiry) ends the
                        // client: reconnecting with it again would only be refused again.
                        self.end(e.code, e.message.to_owned(), out);
                    }
                    return;
                };
                if self.park(id, raw) {
                    return;
                }
                if let Some(Slot::Request(s)) = self.take(id, out) {
                    let mut f = Failure::new(e.code, e.message).with_id(id);
                    f.remote_code = e.remote_code.map(str::to_owned);
                    if !e.details.is_empty() || e.content_type.is_some() {
                        f.details = Some(Box::new((
                            e.details.to_vec(),
                            e.content_type.map(str::to_owned),
                        )));
                    }
                    out.push(Effect::Reject {
                        call: s.call,
                        failure: f,
                    });
                }
            }
            Frame::Part(p) => {
                let callback = match self.pending.get(p.id) {
                    Some(Slot::Request(s)) if s.gather => s.progress.clone(),
                    _ => None,
                };
                if let Some(callback) = callback {
                    let remote = p
                        .remote_code
                        .map(|c| (c, p.message.unwrap_or("the worker reported an error")));
                    out.push(Effect::Part {
                        callback,
                        id: p.id,
                        replier: p.replier,
                        body: Body {
                            bytes: p.body,
                            content_type: p.content_type,
                        },
                        remote,
                    });
                }
            }
            Frame::Done(d) => {
                if let Some(Slot::Request(s)) = self.take(d.id, out) {
                    out.push(Effect::Done {
                        call: s.call,
                        count: Some(d.count),
                    });
                }
            }
            Frame::Accepted(a) => {
                for id in a.ids {
                    if let Some(Slot::Request(s)) = self.pending.get_mut(id) {
                        s.sent = None;
                    }
                }
            }
            // HEARTBEAT only proves the socket alive; client-to-bridge kinds never come.
            _ => {}
        }
    }

    /// Keeps the final frame of a restored request until the app reattaches it.
    fn park(&mut self, id: &str, raw: &[u8]) -> bool {
        match self.pending.get_mut(id) {
            Some(Slot::Parked(p)) => {
                p.reply = Some(Vec::from(raw));
                true
            }
            _ => false,
        }
    }
}
