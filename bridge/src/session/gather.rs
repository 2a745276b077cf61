//! Scatter-gather within a session: GATHER publishes once to an allowlisted exchange; every
//! final reply with its id becomes a PART; DONE ends it after `max_replies` parts or when its
//! window closes. Replies after that are dropped and counted like any stale reply.

use bytes::Bytes;
use ferry_protocol::{Gather, validate};

use super::Session;
use crate::amqp_props::request_properties;
use crate::broker::port::{Reply, Target};
use crate::error::BridgeError;
use crate::frames::{done_frame, part_frame};
use crate::pending::Kind;
use crate::stats::Outcome;

impl Session {
    /// Admits and publishes a GATHER; its outcome arrives like a request's publish.
    pub(super) async fn on_gather(
        &mut self,
        g: &Gather<'_>,
        raw: &Bytes,
    ) -> Result<(), BridgeError> {
        validate::gather(g)?;
        let key = g.routing_key.unwrap_or("");
        let user_allows = self
            .caller
            .identity
            .as_ref()
            .is_none_or(|i| i.allows_exchange(g.destination, key));
        let label = self.shared.exchanges.entry(g.destination, key);
        let Some(label) = label.filter(|_| user_allows).cloned() else {
            return Err(BridgeError::Forbidden(g.destination.to_owned()));
        };
        if g.destination == self.shared.config.cancel_exchange {
            return Err(BridgeError::Forbidden(g.destination.to_owned()));
        }
        let (route, reply_to, window) = self.admit(g.id, g.timeout_ms).await?;
        let props = request_properties(
            g.into(),
            &reply_to,
            &self.id,
            window,
            None,
            self.caller.identity.as_ref(),
        );
        let kind = Kind::Gather {
            max: g.max_replies,
            count: 0,
        };
        let seq = self
            .pending
            .insert_kind(g.id, (g.destination, label), window, None, kind)?;
        self.shared.stats.requests_total.inc();
        let body = raw.slice_ref(g.body);
        let id: Box<str> = g.id.into();
        let to = Target::Exchange {
            name: g.destination.to_owned(),
            key: g.routing_key.unwrap_or("").to_owned(),
        };
        self.publishes.push(Box::pin(async move {
            let work = route.publish(to, body, props);
            let result = tokio::time::timeout(window, work)
                .await
                .unwrap_or(Err(BridgeError::Timeout(window.as_millis() as u64)));
            (id, seq, result)
        }));
        Ok(())
    }

    /// A reply to the pending gather `id`: forwarded as a PART (progress messages are not);
    /// the last one allowed is followed by DONE.
    pub(super) async fn on_part(&mut self, id: &str, d: &Reply) {
        let Some(frame) = part_frame(id, &d.properties, &d.data) else {
            return;
        };
        self.shared.stats.replies_total.inc();
        self.out.send(frame).await;
        if self.pending.count_part(id)
            && let Some(entry) = self.pending.remove(id, Outcome::Ok)
            && let Kind::Gather { count, .. } = entry.kind
        {
            self.out.send(done_frame(id, count)).await;
        }
    }
}
