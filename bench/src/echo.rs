//! The echo worker: an ordinary AMQP RPC server that answers each request with its own body.
//!
//! It knows nothing of Ferry: it consumes a queue, publishes the body back to `reply_to` on the
//! default exchange with the same `correlation_id` and `content_type`, then acks. Both the
//! baseline and Ferry talk to this same worker.

use futures_util::StreamExt;
use futures_util::stream::FuturesUnordered;
use lapin::options::{
    BasicAckOptions, BasicConsumeOptions, BasicPublishOptions, BasicQosOptions, QueueDeclareOptions,
};
use lapin::types::{AMQPValue, FieldTable, ShortString};
use lapin::{BasicProperties, Channel, Connection, ConnectionProperties};
use tokio_util::sync::CancellationToken;

use crate::error::Result;

/// The line the worker prints on stdout once it consumes.
pub const READY_LINE: &str = "ferry-bench echo ready";

/// How the worker connects and what it consumes.
#[derive(Debug, Clone)]
pub struct EchoConfig {
    /// Broker URL.
    pub amqp_url: String,
    /// Queue to declare (non-durable, auto-delete, with `x-expires`) and consume.
    pub queue: String,
    /// Unacknowledged deliveries the broker may push at once.
    pub prefetch: u16,
}

/// Declares the queue, consumes it and echoes until `cancel` fires or the broker goes away.
pub async fn run(config: EchoConfig, cancel: CancellationToken) -> Result<()> {
    let conn = Connection::connect(
        &config.amqp_url,
        ConnectionProperties::default().with_connection_name("ferry-bench-echo".into()),
    )
    .await?;
    let channel = conn.create_channel().await?;
    declare_queue(&channel, &config.queue).await?;
    channel
        .basic_qos(config.prefetch, BasicQosOptions::default())
        .await?;
    let mut consumer = channel
        .basic_consume(
            config.queue.as_str().into(),
            "ferry-bench-echo".into(),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await?;
    println!("{READY_LINE}");

    // Replies in progress; bounded by the prefetch count (the broker sends no more).
    let mut replies = FuturesUnordered::new();
    loop {
        tokio::select! {
            () = cancel.cancelled() => break,
            Some(done) = replies.next(), if !replies.is_empty() => {
                if let Err(e) = done {
                    eprintln!("ferry-bench echo: reply failed: {e}");
                }
            }
            delivery = consumer.next() => {
                let Some(delivery) = delivery else { break };
                let delivery = delivery?;
                replies.push(echo_one(channel.clone(), delivery));
            }
        }
    }
    while let Some(done) = replies.next().await {
        if let Err(e) = done {
            eprintln!("ferry-bench echo: reply failed: {e}");
        }
    }
    let _ = conn.close(200, "bye".into()).await;
    Ok(())
}

/// Declares a benchmark queue that removes itself: auto-delete once its consumer goes, and
/// `x-expires` as a safety net should nothing ever consume it.
pub async fn declare_queue(channel: &Channel, queue: &str) -> Result<()> {
    let mut args = FieldTable::default();
    args.insert("x-expires".into(), AMQPValue::LongUInt(120_000));
    channel
        .queue_declare(
            queue.into(),
            QueueDeclareOptions {
                auto_delete: true,
                ..QueueDeclareOptions::default()
            },
            args,
        )
        .await?;
    Ok(())
}

async fn echo_one(channel: Channel, delivery: lapin::message::Delivery) -> Result<()> {
    let props = &delivery.properties;
    if let Some(reply_to) = props.reply_to().clone() {
        let mut reply = BasicProperties::default();
        if let Some(id) = props.correlation_id().clone() {
            reply = reply.with_correlation_id(id);
        }
        if let Some(ct) = props.content_type().clone() {
            reply = reply.with_content_type(ct);
        }
        channel
            .basic_publish(
                ShortString::from(""),
                reply_to,
                BasicPublishOptions::default(),
                &delivery.data,
                reply,
            )
            .await?;
    }
    delivery.acker.ack(BasicAckOptions::default()).await?;
    Ok(())
}
