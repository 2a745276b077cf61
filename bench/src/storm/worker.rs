//! The storm's worker: an ordinary AMQP RPC server that holds the storm's requests until the
//! storm says to answer, so each session has a reply pending when its bridge goes.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use futures_util::StreamExt;
use lapin::options::{BasicConsumeOptions, BasicPublishOptions, QueueDeleteOptions};
use lapin::types::{FieldTable, ShortString};
use lapin::{BasicProperties, Connection, ConnectionProperties};
use tokio::sync::watch;

use super::STORM_BODY;
use crate::error::Result;

/// An RPC server that answers at once while `release` is true and holds every storm request
/// (counting them in `held`) while it is false, answering the held ones when it turns true.
pub(super) async fn holding_worker(
    amqp_url: String,
    queue: String,
    mut release: watch::Receiver<bool>,
    held: Arc<AtomicUsize>,
) -> Result<()> {
    let conn = Connection::connect(&amqp_url, ConnectionProperties::default()).await?;
    let channel = conn.create_channel().await?;
    crate::echo::declare_queue(&channel, &queue).await?;
    let opts = BasicConsumeOptions {
        no_ack: true,
        ..BasicConsumeOptions::default()
    };
    let mut consumer = channel
        .basic_consume(
            queue.as_str().into(),
            "".into(),
            opts,
            FieldTable::default(),
        )
        .await?;
    let mut waiting = Vec::new();
    // The storm drops its sender once it has said `true`; the worker keeps answering until
    // the storm aborts it (returning then would close the connection with the last replies
    // still queued in lapin, never published).
    let mut watching = true;
    loop {
        tokio::select! {
            changed = release.changed(), if watching => {
                if changed.is_err() {
                    watching = false;
                    continue;
                }
                if *release.borrow() {
                    for d in waiting.drain(..) {
                        answer(&channel, &d).await?;
                    }
                }
            }
            delivery = consumer.next() => {
                let Some(delivery) = delivery else { break };
                let delivery = delivery?;
                if *release.borrow() || delivery.data != STORM_BODY {
                    answer(&channel, &delivery).await?;
                } else {
                    held.fetch_add(1, Ordering::SeqCst);
                    waiting.push(delivery);
                }
            }
        }
    }
    Ok(())
}

async fn answer(channel: &lapin::Channel, d: &lapin::message::Delivery) -> Result<()> {
    let props = &d.properties;
    let (Some(reply_to), Some(id)) = (props.reply_to().clone(), props.correlation_id().clone())
    else {
        return Ok(());
    };
    let reply = BasicProperties::default()
        .with_correlation_id(id)
        .with_content_type(ShortString::from("application/json"));
    channel
        .basic_publish(
            ShortString::from(""),
            reply_to,
            BasicPublishOptions::default(),
            b"{\"ok\":true}",
            reply,
        )
        .await?;
    Ok(())
}

pub(super) async fn delete_queue(amqp_url: &str, queue: &str) {
    if let Ok(conn) = Connection::connect(amqp_url, ConnectionProperties::default()).await {
        if let Ok(ch) = conn.create_channel().await {
            let opts = QueueDeleteOptions::default();
            let _ = ch.queue_delete(queue.into(), opts).await;
        }
        let _ = conn.close(200, "bye".into()).await;
    }
}
