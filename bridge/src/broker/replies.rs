//! The per-session reply queue `ferry.reply.<session>`: declared on the session's first
//! request, consumed (exclusively, with acks and a prefetch, so a slow socket leaves replies
//! in the broker rather than in bridge memory) by the bridge holding the session, deleted
//! when the session ends. `x-expires` removes it if the bridge dies without deleting it.

use std::sync::Arc;
use std::time::Duration;

use futures_util::{FutureExt, StreamExt};
use lapin::message::Delivery;
use lapin::options::{
    BasicAckOptions, BasicConsumeOptions, QueueDeclareOptions, QueueDeleteOptions,
};
use lapin::types::{AMQPValue, FieldTable};
use lapin::{Channel, Consumer};

use super::Links;
use crate::error::BridgeError;

/// Prefix of every reply queue name.
pub const REPLY_QUEUE_PREFIX: &str = "ferry.reply.";
/// `x-expires` of a reply queue: unused this long (no consumer), the broker deletes it.
const REPLY_QUEUE_EXPIRES_MS: i32 = 60_000;
/// Longest a declare/consume/delete may take.
const OP_TIMEOUT: Duration = Duration::from_secs(5);

/// A session's live reply queue and its consumer.
pub struct ReplySub {
    queue: String,
    channel: Channel,
    consumer: Consumer,
    links: Arc<Links>,
}

impl ReplySub {
    /// Declares and consumes the reply queue of `session`.
    pub async fn open(links: Arc<Links>, session: &str) -> Result<Self, BridgeError> {
        let queue = format!("{REPLY_QUEUE_PREFIX}{session}");
        let channel = links.consume_channel(session).clone();
        let mut args = FieldTable::default();
        args.insert(
            "x-expires".into(),
            AMQPValue::LongInt(REPLY_QUEUE_EXPIRES_MS),
        );
        let consumer = tokio::time::timeout(OP_TIMEOUT, async {
            channel
                .queue_declare(queue.as_str().into(), QueueDeclareOptions::default(), args)
                .await?;
            let opts = BasicConsumeOptions {
                no_ack: false,
                exclusive: true,
                ..BasicConsumeOptions::default()
            };
            channel
                .basic_consume(
                    queue.as_str().into(),
                    queue.as_str().into(),
                    opts,
                    FieldTable::default(),
                )
                .await
        })
        .await
        .map_err(|_| BridgeError::BrokerUnavailable("reply queue declare timed out".into()))?
        .map_err(|e| {
            if !channel.status().connected() {
                links.mark_lost("consume channel closed");
            }
            BridgeError::from(e)
        })?;
        Ok(Self {
            queue,
            channel,
            consumer,
            links,
        })
    }

    /// The queue name workers reply to.
    pub fn queue(&self) -> &str {
        &self.queue
    }

    /// True while the broker links this queue lives on are up.
    pub fn is_live(&self) -> bool {
        !self.links.lost.is_cancelled()
    }

    /// The next reply. `None` when the consumer ended (the broker cancelled it or the
    /// connection died).
    pub async fn next(&mut self) -> Option<Delivery> {
        match self.consumer.next().await {
            Some(Ok(d)) => Some(d),
            Some(Err(_)) | None => None,
        }
    }

    /// Acknowledges a reply once it was handled (forwarded or dropped), without waiting.
    ///
    /// lapin queues the `basic.ack` to its I/O thread on the future's first poll; awaiting
    /// the rest would only wait for that thread to write it, a cross-thread round trip per
    /// reply on the session's critical path. A failed ack means the channel is gone, which
    /// the consumer stream reports by ending. (If acks stopped reaching the broker, a session
    /// would stall after `REPLY_PREFETCH` replies: the 1,000-request tests would hang.)
    pub fn ack(delivery: &Delivery) {
        let ack = delivery.acker.ack(BasicAckOptions::default());
        if let Some(Err(e)) = ack.now_or_never() {
            tracing::debug!(error = %e, "reply ack failed");
        }
    }

    /// Deletes the queue (which also cancels the consumer). Errors are logged only.
    pub async fn close(self) {
        if !self.is_live() {
            return;
        }
        let del = self
            .channel
            .queue_delete(self.queue.as_str().into(), QueueDeleteOptions::default());
        match tokio::time::timeout(OP_TIMEOUT, del).await {
            Ok(Ok(_)) => tracing::debug!(queue = %self.queue, "reply queue deleted"),
            Ok(Err(e)) => {
                tracing::warn!(queue = %self.queue, error = %e, "reply queue delete failed")
            }
            Err(_) => tracing::warn!(queue = %self.queue, "reply queue delete timed out"),
        }
    }
}
