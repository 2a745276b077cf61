//! A resumable session's lease: an empty durable queue whose name is derived from the user,
//! the session and its current resume token (`ferry.lease.<hash>`, see [`crate::resume`]).
//! It exists exactly while that token is current, so any bridge checks a resume with one
//! passive declare, and each resume replaces it with the next token's: a stolen old token
//! names a queue that is gone.
//!
//! The bridge holding the session consumes the lease (nothing is ever published to it), which
//! keeps it alive; once the socket drops, `x-expires` (the grace period) ends it together with
//! the reply queue.

use std::time::Duration;

use lapin::options::{BasicCancelOptions, BasicConsumeOptions};
use lapin::types::FieldTable;
use lapin::{Channel, Consumer};

use super::Links;
use crate::config::ReplyQueueType;
use crate::error::BridgeError;

/// Prefix of every lease queue.
pub const LEASE_QUEUE_PREFIX: &str = "ferry.lease.";

/// A lease this bridge holds (consumes).
pub struct Lease {
    name: String,
    channel: Channel,
    consumer: Consumer,
}

impl Lease {
    /// Declares the lease `name` (durable, of the reply queues' type `kind`, `x-expires` =
    /// `grace`) on `channel`; [`Lease::consume`] then holds it.
    pub async fn declare(
        channel: &Channel,
        name: &str,
        grace: Duration,
        kind: ReplyQueueType,
    ) -> Result<(), lapin::Error> {
        let (opts, args) = super::declare::lease(grace, kind);
        channel.queue_declare(name.into(), opts, args).await?;
        Ok(())
    }

    /// Holds the declared lease `name` by consuming it on `channel`.
    pub async fn consume(channel: &Channel, name: &str) -> Result<Self, lapin::Error> {
        let opts = BasicConsumeOptions {
            no_ack: true,
            ..BasicConsumeOptions::default()
        };
        let consumer = channel
            .basic_consume(name.into(), "".into(), opts, FieldTable::default())
            .await?;
        tracing::debug!(lease = name, channel = channel.id(), consumer = %consumer.tag(), "lease held");
        Ok(Self {
            name: name.to_owned(),
            channel: channel.clone(),
            consumer,
        })
    }

    /// Whether the lease `name` exists (a passive declare on the probe channel).
    pub async fn exists(links: &Links, name: &str) -> Result<bool, BridgeError> {
        links.probe.queue_exists(links.consume_conn(), name).await
    }

    /// Stops holding the lease; its `x-expires` starts counting.
    pub async fn release(&self) {
        let tag = self.consumer.tag();
        let cancel = self
            .channel
            .basic_cancel(tag.as_str().into(), BasicCancelOptions::default());
        if let Err(e) = cancel.await {
            tracing::debug!(error = %e, "lease consumer cancel failed");
        }
    }

    /// Deletes the lease `name` (a token that is no longer current, or the session's end).
    pub async fn delete(links: &Links, name: &str) {
        if let Err(e) = links.probe.delete_queue(links.consume_conn(), name).await {
            tracing::debug!(lease = name, error = %e, "lease delete failed");
        }
    }

    /// The queue name.
    pub fn name(&self) -> &str {
        &self.name
    }
}
