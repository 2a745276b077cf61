//! Cancel notices of a session: when nobody awaits one of its requests any more, tell the
//! workers through the cancel exchange (`docs/protocol.md` §1 rule 6).

use ferry_protocol::headers::CancelReason;

use super::Session;
use crate::broker::publish::CancelNotice;
use crate::pending::{Entry, Kind};

impl Session {
    /// The cancel notice for a request of this session (none before the reply queue exists:
    /// then nothing was published).
    fn notice(
        &self,
        id: Box<str>,
        destination: Box<str>,
        reason: CancelReason,
    ) -> Option<CancelNotice> {
        Some(CancelNotice {
            destination,
            id,
            reply_to: self.replies.name()?.to_owned(),
            session: self.id.clone(),
            reason,
        })
    }

    /// Publishes a cancel notice for a request nobody awaits any more (best effort: not
    /// while the broker is away).
    pub(super) fn notify(&mut self, id: Box<str>, entry: Entry, reason: CancelReason) {
        if entry.kind != Kind::Request {
            return; // a gather's destination is an exchange; its window is short
        }
        let destination = entry.destination;
        let (Some(notice), Some(route)) = (
            self.notice(id, destination, reason),
            self.shared.port.route(),
        ) else {
            return;
        };
        if self.notices.len() >= self.shared.config.max_inflight as usize {
            // Bounded like requests: a burst of cancels cannot queue publishes without end.
            self.shared.stats.cancel_notices_dropped.inc();
            return;
        }
        if let Some(publish) = route.notice(notice) {
            self.shared.stats.cancel_notices.inc();
            self.notices.push(publish);
        }
    }
}
