//! The session across sockets, in one place: HELLO (resuming with the requests still
//! awaited), WELCOME, ACKs of final replies, reconnecting with backoff and full jitter when
//! the socket drops, and the snapshot a persisted client keeps across page reloads.
//!
//! Requests survive a reconnect when the session is resumable: the bridge redelivers every
//! reply not yet ACKed, and a reply whose slot is gone is ignored (ACKed), so each reaches its
//! caller exactly once.

use alloc::borrow::ToOwned;
use alloc::string::String;
use alloc::vec::Vec;

use ferry_protocol::{Ack, Attach, Auth, ErrorCode, Frame, Hello, Welcome};

use super::{Effect, GRACE_MS, Host, Machine, Out, Parked, RequestSlot, Slot, State, settle};
use crate::error::{Failure, cat, push_u32};

/// One request a persisted client keeps in storage.
pub struct SnapshotEntry<'m, M> {
    /// Its id.
    pub id: &'m str,
    /// Where it went.
    pub destination: &'m str,
    /// When it times out (milliseconds since the epoch).
    pub deadline: u64,
    /// Its idle timeout.
    pub idle_ms: Option<u32>,
    /// The app's `meta`.
    pub meta: &'m M,
}

/// What a persisted client keeps in storage.
pub struct Snapshot<'m, M> {
    /// The session id.
    pub session: &'m str,
    /// Its resume token.
    pub token: &'m str,
    /// The requests a resume can still answer.
    pub entries: Vec<SnapshotEntry<'m, M>>,
}

/// A snapshot read back from storage (by the host, which skips what is malformed).
pub struct Restored<M> {
    /// The session id.
    pub session: String,
    /// Its resume token.
    pub token: String,
    /// `(id, destination, deadline, idle_ms, meta)` of each request.
    pub entries: Vec<(String, String, f64, Option<u32>, M)>,
}

impl<H: Host> Machine<H> {
    /// The socket is open: say HELLO, resuming the session (if any) with what is awaited.
    pub(super) fn on_open(&mut self, now: u64, token: Option<&str>, out: &mut Out<'_, H>) {
        let client = cat(&["ferry-client/", env!("CARGO_PKG_VERSION")]);
        let mut attach = Vec::new();
        for e in self.resumables() {
            let left = e
                .deadline
                .saturating_sub(now + GRACE_MS)
                .clamp(1, u64::from(u32::MAX));
            attach.push(Attach {
                id: e.id,
                timeout_ms: left as u32,
                idle_timeout_ms: e.idle_ms,
                destination: e.destination,
            });
        }
        let resume = self.resume.as_ref();
        out.push(Effect::Send(
            Frame::Hello(Hello {
                client: Some(&client),
                resume: resume.map(|r| r.0.as_str()),
                resume_token: resume.map(|r| r.1.as_str()),
                attach,
                acks: self.policy.initial_ms != 0 || self.policy.persist,
                token,
            })
            .encode(),
        ));
    }

    /// WELCOME: the session is open (new, or resumed with its requests).
    pub(super) fn on_welcome(&mut self, now: u64, w: &Welcome<'_>, out: &mut Out<'_, H>) {
        if !matches!(self.state, State::Connecting | State::Reconnecting) {
            return;
        }
        self.state = State::Open;
        self.attempt = 0;
        self.limits = Some(w.limits);
        self.session = Some(w.session.to_owned());
        self.resume = w.resume_token.map(|t| (w.session.to_owned(), t.to_owned()));
        self.attempt_due = None;
        self.heartbeat_ms = w.limits.heartbeat_ms;
        self.last_seen = now;
        self.watch();
        self.dirty = true;
        let mut lost = Vec::new();
        if !w.resumed {
            // What the old session published can no longer be answered; what it may never
            // have published (not ACCEPTED) is sent again on the new one below.
            lost = self.pending.take_slots(
                |s| matches!(s, Slot::Request(r) if r.unsent.is_none() && r.sent.is_none()),
            );
        }
        let keep = self.resume.is_some();
        for (_, slot) in self.pending.iter_mut() {
            match slot {
                Slot::Parked(p) if !w.resumed => p.expired = true,
                Slot::Request(r) => {
                    // Sent before the drop but not known to be published: again (a copy
                    // the broker did take is answered once; the client ignores the other).
                    out.extend(r.sent.clone().map(Effect::Send));
                    if let Some(bytes) = r.unsent.take() {
                        if keep && !r.gather {
                            r.sent = Some(bytes.clone());
                        }
                        out.push(Effect::Send(bytes));
                    }
                }
                Slot::Parked(_) => {}
            }
        }
        if let Some((_, ready)) = self.handshake.take() {
            out.push(Effect::Ready(ready));
        }
        let f = Failure::new(
            ErrorCode::SessionExpired,
            "the session expired before the client could resume it",
        );
        for (id, slot) in lost {
            settle(id, slot, &f, out);
        }
        out.push(Effect::State("open"));
    }

    /// The socket closed: resume on a new one if the client reconnects, else the end.
    pub(super) fn on_close(&mut self, _now: u64, code: u16, reason: &str, out: &mut Out<'_, H>) {
        if matches!(self.state, State::Ended(_)) {
            self.end(ErrorCode::Closed, String::new(), out);
            return;
        }
        let mut msg = String::from("the connection to the bridge closed (code ");
        push_u32(&mut msg, u32::from(code));
        msg.push(')');
        if !reason.is_empty() {
            msg.push_str(": ");
            msg.push_str(reason);
        }
        if let Some(e) = self.bridge_error.take() {
            msg.push_str("; the bridge said: ");
            msg.push_str(&e);
        }
        if let Some(e) = self.socket_error.take() {
            msg.push_str("; ");
            msg.push_str(&e);
        }
        if !self.dropped(code, &msg, out) {
            self.end(ErrorCode::Disconnected, msg, out);
        }
    }

    /// The socket dropped (or a reconnect attempt failed): keep what a resume can answer,
    /// schedule the next socket. False when the client does not reconnect (the caller ends it).
    pub(super) fn dropped(&mut self, code: u16, message: &str, out: &mut Out<'_, H>) -> bool {
        let live = matches!(self.state, State::Open | State::Reconnecting);
        if self.policy.initial_ms == 0 || !live || !self.schedule(out) {
            return false;
        }
        if code == ferry_protocol::CLOSE_TAKEN_OVER {
            self.resume = None; // another connection has it now; start afresh
        }
        let resumable = self.resume.is_some();
        let lost = self.pending.take_slots(|s| match s {
            Slot::Request(r) => r.gather || (!resumable && r.unsent.is_none()),
            Slot::Parked(_) => false,
        });
        self.attempt_due = None;
        self.watch_due = None;
        out.push(Effect::Detach);
        self.acks.clear(); // a reply not ACKed is redelivered, then ignored
        let was_open = matches!(self.state, State::Open);
        self.state = State::Reconnecting;
        self.dirty = true;
        if was_open || !lost.is_empty() {
            let f = Failure::new(ErrorCode::Disconnected, message);
            for (id, slot) in lost {
                settle(id, slot, &f, out);
            }
            out.push(Effect::State("reconnecting"));
        }
        true
    }

    /// Arms the reconnect timer: full jitter over `min(max, initial * 2^attempt)`. False once
    /// the attempts are used up.
    fn schedule(&mut self, out: &mut Out<'_, H>) -> bool {
        out.push(Effect::StopRetry);
        if self.offline {
            return true; // no attempt can succeed, so none is spent: `online` starts the next
        }
        let p = self.policy;
        if p.attempts != 0 && self.attempt >= p.attempts {
            return false;
        }
        let ceiling_ms = (u64::from(p.initial_ms) << self.attempt.min(20)).min(u64::from(p.max_ms));
        self.attempt += 1;
        out.push(Effect::ArmRetry { ceiling_ms });
        true
    }

    /// The reconnect timer fired: open a new socket (its HELLO resumes the session).
    pub(super) fn on_retry(&mut self, now: u64, out: &mut Out<'_, H>) {
        if !matches!(self.state, State::Reconnecting) {
            return;
        }
        self.attempt_due = Some(now + u64::from(self.policy.connect_timeout_ms));
        out.push(Effect::Reconnect);
    }

    /// The next socket could not even be made: try later, or give up.
    pub(super) fn on_reconnect_failed(&mut self, _now: u64, out: &mut Out<'_, H>) {
        self.attempt_due = None;
        if !self.schedule(out) {
            let msg = "cannot reconnect to the bridge";
            self.end(ErrorCode::Disconnected, msg.into(), out);
        }
    }

    /// The runtime's `online`/`offline` events. Offline, a scheduled reconnect is cancelled
    /// and none is made (none of `maxAttempts` is spent); back online, a client waiting to
    /// reconnect tries at once, its backoff started over. An open socket is left to the
    /// watchdog: it may well survive a short outage.
    pub(super) fn network(&mut self, now: u64, online: bool, out: &mut Out<'_, H>) {
        self.offline = !online;
        if !online {
            out.push(Effect::StopRetry);
            return;
        }
        if matches!(self.state, State::Reconnecting) && self.attempt_due.is_none() {
            out.push(Effect::StopRetry);
            self.attempt = 0;
            self.on_retry(now, out);
        }
    }

    /// Notes a final reply to ACK; one ACK frame per microtask carries them all.
    pub(crate) fn ack(&mut self, id: &str, out: &mut Out<'_, H>) {
        if self.resume.is_none() {
            return;
        }
        if self.acks.is_empty() {
            out.push(Effect::QueueAcks);
        }
        self.acks.push(id.to_owned());
    }

    /// Sends the ACKs noted since the last flush.
    pub(super) fn flush_acks(&mut self, out: &mut Out<'_, H>) {
        let ids = core::mem::take(&mut self.acks);
        if ids.is_empty() || !matches!(self.state, State::Open) {
            return;
        }
        let ids = ids.iter().map(String::as_str).collect();
        out.push(Effect::Send(Frame::Ack(Ack { ids }).encode()));
    }

    /// An AUTH frame with a renewed token, if the socket is open.
    pub fn auth(&self, token: &str) -> Option<Vec<u8>> {
        (matches!(self.state, State::Open)).then(|| Frame::Auth(Auth { token }).encode())
    }

    /// What a persisted client keeps in storage: session, resume token and the requests a
    /// resume can still answer; `None` without a resumable session.
    pub fn snapshot(&self) -> Option<Snapshot<'_, H::Meta>> {
        let (session, token) = self.resume.as_ref()?;
        let entries = self.resumables();
        Some(Snapshot {
            session,
            token,
            entries,
        })
    }

    /// Puts a snapshot's session and requests into a new client (before its first HELLO);
    /// requests already past their deadline are left out.
    pub fn restore(&mut self, now: u64, snapshot: Restored<H::Meta>) {
        self.resume = Some((snapshot.session, snapshot.token));
        for (id, destination, deadline, idle_ms, meta) in snapshot.entries {
            if deadline.is_nan() || deadline <= now as f64 {
                continue; // past, or not a number
            }
            let parked = Parked {
                destination,
                idle_ms: idle_ms.filter(|v| *v > 0),
                meta,
                reply: None,
                expired: false,
            };
            let _ = self
                .pending
                .insert(id, deadline as u64, Slot::Parked(parked));
        }
    }

    /// The restored requests not reattached yet: `(id, destination, meta, expired)`.
    pub fn parked(&self) -> impl Iterator<Item = (&str, &str, &H::Meta, bool)> {
        self.pending.iter().filter_map(|(id, _, slot)| match slot {
            Slot::Parked(p) => Some((id, p.destination.as_str(), &p.meta, p.expired)),
            Slot::Request(_) => None,
        })
    }

    /// The app takes over a restored request: its final frame, if it came, is redelivered.
    pub(super) fn reattach(
        &mut self,
        id: &str,
        call: H::Call,
        progress: Option<H::Progress>,
        out: &mut Out<'_, H>,
    ) {
        let deadline = self.pending.deadline(id);
        let parked = match (deadline, self.pending.get(id)) {
            (Some(d), Some(Slot::Parked(_))) => match self.pending.remove(id) {
                Some(Slot::Parked(p)) => Some((d, p)),
                _ => None,
            },
            _ => None,
        };
        let Some((deadline, mut p)) = parked else {
            let failure =
                Failure::new(ErrorCode::BadRequest, "no restored request has this id").with_id(id);
            out.push(Effect::Reject { call, failure });
            return;
        };
        self.dirty = true;
        if p.expired {
            let failure = Failure::new(
                ErrorCode::SessionExpired,
                "the session expired before the page could resume it",
            )
            .with_id(id);
            out.push(Effect::Reject { call, failure });
            return;
        }
        let reply = p.reply.take();
        let slot = RequestSlot {
            call,
            destination: p.destination,
            unsent: None,
            sent: None,
            meta: p.meta,
            progress,
            idle_ms: p.idle_ms,
            gather: false,
        };
        let _ = self
            .pending
            .insert(id.to_owned(), deadline, Slot::Request(slot));
        out.extend(reply.map(Effect::Redeliver));
    }
}

impl<H: Host> Machine<H> {
    /// The requests a resume carries (HELLO `attach`, the snapshot): not a gather (not
    /// resumed), not a request still waiting to be sent, not a restored one whose session
    /// expired.
    fn resumables(&self) -> Vec<SnapshotEntry<'_, H::Meta>> {
        let mut out = Vec::new();
        for (id, deadline, slot) in self.pending.iter() {
            let (destination, idle_ms, meta) = match slot {
                Slot::Request(r) if !r.gather && r.unsent.is_none() => {
                    (&r.destination, r.idle_ms, &r.meta)
                }
                Slot::Parked(p) if !p.expired => (&p.destination, p.idle_ms, &p.meta),
                _ => continue,
            };
            out.push(SnapshotEntry {
                id,
                destination,
                deadline,
                idle_ms,
                meta,
            });
        }
        out
    }
}
