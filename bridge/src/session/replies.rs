//! A session's replies: its reply queue (declared on first use), and each delivery routed to
//! the pending request it answers (or dropped and counted), then acknowledged or held.

use std::sync::Arc;
use std::time::Duration;

use ferry_protocol::ErrorCode;
use lapin::message::Delivery;
use tracing::{debug, warn};

use super::{Flow, Session};
use crate::amqp_props::reply_frame;
use crate::broker::{Links, replies::ReplySub};
use crate::error::BridgeError;
use crate::pending::Kind;
use crate::stats::Stats;

impl Session {
    /// The reply queue name, declaring and consuming it on first use (or after a reconnect).
    pub(super) async fn reply_queue(&mut self, links: &Arc<Links>) -> Result<String, BridgeError> {
        if let Some(sub) = &self.reply
            && sub.is_live()
        {
            return Ok(sub.queue().to_owned());
        }
        let grace = if self.resumable {
            self.shared.config.session_grace
        } else {
            Duration::ZERO
        };
        let sub = ReplySub::open(links.clone(), &self.id, grace).await?;
        let name = sub.queue().to_owned();
        self.reply = Some(sub);
        Ok(name)
    }

    pub(super) async fn on_reply(&mut self, delivery: Option<Delivery>) -> Flow {
        let Some(d) = delivery else {
            // The consumer ended: the broker connection died or the queue was deleted.
            warn!(session = %self.id, "reply consumer ended; failing pending requests");
            self.reply = None;
            self.held.clear(); // their channel is gone; the broker requeued them
            let why = "the broker connection was lost";
            self.fail_all(ErrorCode::BrokerUnavailable, why, None).await;
            return Flow::Continue;
        };
        let id = d
            .properties
            .correlation_id()
            .as_ref()
            .map(|c| c.as_str())
            .unwrap_or("");
        if let Some(Kind::Gather { .. }) = self.pending.kind(id) {
            self.on_part(id, &d).await;
        } else if self.pending.contains(id) {
            let (is_final, frame) = reply_frame(id, &d.properties, &d.data);
            if frame.first() == Some(&ferry_protocol::frame::kind::ERROR) {
                self.shared.stats.error(ErrorCode::Remote);
            }
            if is_final {
                self.pending.remove(id);
                Stats::inc(&self.shared.stats.replies_total);
            } else {
                self.pending.touch(id);
            }
            self.out.send(frame).await;
            if is_final && self.hold(id, &d) {
                return Flow::Continue;
            }
        } else {
            Stats::inc(&self.shared.stats.dropped_replies);
            debug!(session = %self.id, id, "reply for no pending request dropped");
        }
        ReplySub::ack(&d);
        Flow::Continue
    }
}
