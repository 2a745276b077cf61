//! The machine's one timer: which deadline comes next, the heartbeat watchdog, and what
//! each deadline does when it passes (a handshake too late, a reconnect attempt due, a
//! socket silent for too long, a close that never completed, requests past their time).

use ferry_protocol::ErrorCode;

use super::{
    Effect, HANDSHAKE_LATE, Host, MISSED_HEARTBEATS, Machine, Out, Slot, State, cancel_frame,
    settle,
};
use crate::error::Failure;
use crate::pending::TimerAction;

impl<H: Host> Machine<H> {
    /// The one timer follows the earliest deadline; a persisted client's host hears of
    /// every change.
    pub(super) fn rearm(&mut self, now: u64, out: &mut Out<'_, H>) {
        if core::mem::take(&mut self.dirty) && self.policy.persist {
            out.push(Effect::Changed);
        }
        let mut next = self.pending.next_deadline();
        let timers = [
            self.handshake.as_ref().map(|h| h.0),
            self.attempt_due,
            self.watch_due,
            self.closing.as_ref().map(|c| c.0),
        ];
        for t in timers.into_iter().flatten() {
            next = Some(next.map_or(t, |n| n.min(t)));
        }
        match self.timer.plan(next, now) {
            TimerAction::Keep => {}
            action => out.push(Effect::Timer(action)),
        }
    }

    /// Arms the watchdog for a few heartbeats after the last frame (if the bridge beats).
    pub(crate) fn watch(&mut self) {
        self.watch_at(self.last_seen + MISSED_HEARTBEATS * u64::from(self.heartbeat_ms));
    }

    /// Arms the watchdog for `deadline` (if the bridge beats).
    pub(crate) fn watch_at(&mut self, deadline: u64) {
        self.watch_due = (self.heartbeat_ms != 0).then_some(deadline);
    }

    pub(super) fn on_timer(&mut self, now: u64, out: &mut Out<'_, H>) {
        self.timer.fired();
        let mut silent = false;
        if let Some(due) = self.watch_due.filter(|d| *d <= now) {
            self.watch_due = None;
            if matches!(self.state, State::Open) {
                // Silent for a few heartbeats: the socket is half-open (dead without a close).
                let beat = u64::from(self.heartbeat_ms);
                if now.saturating_sub(self.last_seen) < MISSED_HEARTBEATS * beat {
                    self.watch();
                } else if now.saturating_sub(due) > beat {
                    // The timer ran late: the page was frozen or throttled, and what the
                    // bridge sent meanwhile may still be queued. One more heartbeat for it.
                    self.watch_at(now + beat);
                } else {
                    silent = true;
                }
            }
        }
        // A reconnect attempt without WELCOME in time: drop it, try the next.
        if self.attempt_due.is_some_and(|d| d <= now) {
            self.attempt_due = None;
            silent = true;
        }
        let mut handshake_timed_out = false;
        if self.handshake.as_ref().is_some_and(|h| h.0 <= now)
            && let Some((_, ready)) = self.handshake.take()
        {
            handshake_timed_out = true;
            let failure = Failure::new(ErrorCode::Timeout, HANDSHAKE_LATE);
            out.push(Effect::NotReady { ready, failure });
        }
        if self.closing.as_ref().is_some_and(|c| c.0 <= now)
            && let Some((_, closing)) = self.closing.take()
        {
            out.push(Effect::Closed(closing));
        }
        let expired = self.pending.take_expired(now);
        if !expired.is_empty() {
            self.dirty = true;
        }
        for (id, slot) in &expired {
            match slot {
                Slot::Request(r) if r.unsent.is_none() => {
                    out.push(Effect::Send(cancel_frame(id)));
                }
                Slot::Parked(p) if p.reply.is_some() => self.ack(id, out),
                _ => {}
            }
        }
        let late = Failure::new(ErrorCode::Timeout, "no reply before the request's timeout");
        for (id, slot) in expired {
            match slot {
                // A gather's window closing is its normal end (the bridge's DONE was late).
                Slot::Request(r) if r.gather => out.push(Effect::Done {
                    call: r.call,
                    count: None,
                }),
                slot => settle(id, slot, &late, out),
            }
        }
        if silent {
            // Don't wait for a close handshake the dead peer will never answer.
            out.push(Effect::AbandonSocket);
            let msg = "the bridge went silent (no heartbeat, or no WELCOME in time)";
            if !self.dropped(1006, msg, out) {
                self.end(ErrorCode::Disconnected, msg.into(), out);
            }
        }
        if handshake_timed_out && matches!(self.state, State::Connecting) {
            self.end(ErrorCode::Timeout, HANDSHAKE_LATE.into(), out);
        }
    }
}
