//! One REQUEST frame: validated, allowlisted, admitted (draining, duplicate id, rate, room in
//! flight, a broker, the reply queue), entered in the pending map and published; its
//! publish outcome comes back to the session loop.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use ferry_protocol::{Request, validate};

use super::Session;
use crate::amqp_props::{Call, request_properties};
use crate::broker::port::{Route, Target};
use crate::error::BridgeError;
use crate::span::{Span, Started};
use crate::stats::Outcome;

/// The least a reply queue's declare may take before the request fails.
const DECLARE_MIN_BUDGET: Duration = Duration::from_secs(5);

impl Session {
    /// The checks every published call passes (after its own validation and allowlist):
    /// not draining, id not pending, room in the pending map, a broker; then the reply
    /// queue, and the call's clamped timeout.
    pub(super) async fn admit(
        &mut self,
        id: &str,
        timeout_ms: Option<u32>,
    ) -> Result<(Arc<dyn Route>, String, Duration), BridgeError> {
        let cfg = &self.shared.config;
        if self.draining {
            return Err(BridgeError::ShuttingDown);
        }
        if self.pending.contains(id) {
            return Err(BridgeError::DuplicateId(id.to_owned()));
        }
        if !self.caller.requests.take() {
            return Err(BridgeError::RateLimited(cfg.request_rate));
        }
        // Publishes still running count even when their entry is gone (cancelled, or
        // answered before the confirm): CANCEL does not make room for more publishes.
        let in_flight = self.pending.len() + self.publishes.len()
            - self.pending.publishing().min(self.publishes.len());
        if in_flight >= cfg.max_inflight as usize {
            return Err(BridgeError::Overloaded(cfg.max_inflight));
        }
        let timeout = timeout_ms
            .map_or(cfg.default_timeout, |ms| {
                Duration::from_millis(u64::from(ms))
            })
            .min(cfg.max_timeout)
            .max(Duration::from_millis(1));
        let route = self
            .shared
            .port
            .route()
            .ok_or_else(|| BridgeError::BrokerUnavailable("not connected".into()))?;
        // After a burst of new sessions the broker works through their declares one after
        // another: wait for this one about as long as the request would wait, but never so
        // long that the loop (awaiting it here) misses a pong.
        let budget = timeout.min(cfg.ping_interval / 2).max(DECLARE_MIN_BUDGET);
        let reply_to = self.reply_queue(&route, budget).await?;
        Ok((route, reply_to, timeout))
    }

    pub(super) async fn on_request(
        &mut self,
        req: &Request<'_>,
        raw: &Bytes,
    ) -> Result<(), BridgeError> {
        validate::request(req)?;
        let Some(label) = self.allowed(req.destination) else {
            return Err(BridgeError::Forbidden(req.destination.to_owned()));
        };
        if self
            .resume
            .as_mut()
            .is_some_and(|r| r.resent.remove(req.id))
        {
            // Attached by the resume but never reported ACCEPTED: the client sends it again
            // (docs/protocol.md §3.5); this publish replaces the attachment, and whichever
            // copy's reply comes first answers it.
            self.pending.remove(req.id, Outcome::NotOver);
        }
        let (route, reply_to, timeout) = self.admit(req.id, req.timeout_ms).await?;
        let cfg = &self.shared.config;
        let idle = req.idle_timeout_ms.map(|ms| {
            Duration::from_millis(u64::from(ms)).clamp(Duration::from_millis(1), cfg.max_timeout)
        });
        let started = Started {
            session: &self.id,
            id: req.id,
            destination: req.destination,
            bytes: req.body.len(),
        };
        let tracer = self.shared.otlp.as_ref().map(|o| &o.tracer);
        let span = Span::start(&req.headers, tracer, started);
        let traceparent = span.as_ref().map(Span::traceparent);
        let call = Call {
            traceparent: traceparent.as_deref(),
            ..req.into()
        };
        let props = request_properties(
            call,
            &reply_to,
            &self.id,
            timeout,
            idle,
            self.caller.identity.as_ref(),
        );
        let seq = self
            .pending
            .insert(req.id, (req.destination, label.clone()), timeout, idle)?;
        if let Some(span) = span {
            self.pending.traced(req.id, span, req.body.len());
        }
        self.shared.stats.requests_total.inc();
        let probe = !self.shared.waiting.allows(req.destination);
        let body = raw.slice_ref(req.body);
        let id: Box<str> = req.id.into();
        let to = Target::Queue {
            name: req.destination.to_owned(),
            probe,
        };
        let stats = self.shared.stats.clone();
        self.publishes.push(Box::pin(async move {
            let started = std::time::Instant::now();
            let work = route.publish(to, body, props);
            let result = tokio::time::timeout(timeout, work)
                .await
                .unwrap_or(Err(BridgeError::Timeout(timeout.as_millis() as u64)));
            if result.is_ok() {
                stats.confirmed(&label, started.elapsed());
            }
            (id, seq, result)
        }));
        Ok(())
    }
}
