//! Tells a resumable session's client which requests the broker took (ACCEPTED): those still
//! awaiting a reply a moment after their publish was confirmed, in one frame. A client that
//! resumes attaches these and sends the others again, so a request in the air when a bridge
//! died is neither lost nor left to its timeout (docs/protocol.md §3.5).

use std::time::Duration;

use ferry_protocol::{Ack, Frame};
use futures_util::StreamExt;
use tracing::debug;

use super::Session;
use crate::error::BridgeError;
use crate::stats::Outcome;

/// How long after a confirm the request is reported: one frame per this interval, and none
/// for the requests answered meanwhile (most of them).
pub(super) const ACCEPT_DELAY: Duration = Duration::from_millis(200);
/// Longest a drain waits for the publishes in flight before closing the socket.
const SETTLE: Duration = Duration::from_secs(1);

impl Session {
    /// A publish finished: a confirmed request is published (and noted for ACCEPTED), a
    /// failed one ends with its error. True when the ACCEPTED timer should start.
    pub(super) async fn on_published(
        &mut self,
        id: Box<str>,
        seq: u64,
        result: Result<(), BridgeError>,
    ) -> bool {
        match result {
            Ok(()) => {
                self.pending.published(&id, seq);
                self.note_accepted(id)
            }
            Err(e) => {
                if let Some(entry) = self.pending.remove_seq(&id, seq, Outcome::Error(e.code())) {
                    let dest = &entry.destination;
                    debug!(session = %self.id, id = %id, destination = %dest, trace_id = entry.trace_id(), error = %e, "request failed");
                    self.send_error(Some(&id), &e).await;
                }
                false
            }
        }
    }

    /// Before a drain's close: lets the publishes in flight finish (up to [`SETTLE`]), so
    /// their requests are reported ACCEPTED rather than sent again by the resume.
    pub(super) async fn settle_publishes(&mut self) {
        let settle = async {
            while let Some((id, seq, result)) = self.publishes.next().await {
                self.on_published(id, seq, result).await;
            }
        };
        let _ = tokio::time::timeout(SETTLE, settle).await;
    }

    /// The broker confirmed the publish of `id`: note it for the next ACCEPTED frame if the
    /// session resumes and still awaits the reply. True when the list was empty (the caller
    /// starts the [`ACCEPT_DELAY`] timer).
    pub(super) fn note_accepted(&mut self, id: Box<str>) -> bool {
        let Some(r) = self.resume.as_mut().filter(|_| self.pending.contains(&id)) else {
            return false;
        };
        r.accepted.push(id);
        r.accepted.len() == 1
    }

    /// Sends one ACCEPTED frame with the noted requests still pending; false (nothing sent,
    /// the noted kept) while the session's lease is on its way: a request reported ACCEPTED
    /// is one a resume must find, and a resume needs the lease.
    pub(super) async fn flush_accepted(&mut self) -> bool {
        if self.resume.is_none() {
            return true;
        }
        if !self.replies.lease_ready() {
            // Kept for when it is held, but only what is still pending: a session whose
            // lease keeps failing notes no more than its requests in flight.
            if let Some(r) = &mut self.resume {
                r.accepted.retain(|id| self.pending.contains(id));
            }
            return false;
        }
        let Some(r) = &mut self.resume else {
            return true;
        };
        let noted = std::mem::take(&mut r.accepted);
        let ids: Vec<&str> = noted
            .iter()
            .map(AsRef::as_ref)
            .filter(|id| self.pending.contains(id))
            .take(ferry_protocol::validate::MAX_ACK_IDS)
            .collect();
        if !ids.is_empty() {
            self.out.send(Frame::Accepted(Ack { ids }).encode()).await;
        }
        true
    }
}
