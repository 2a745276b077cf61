//! Presence: answers a scatter-gather on a fanout exchange with who this worker is and how
//! busy it is, so a dashboard can ask every running worker at once ("find available
//! reviewers"). A plain AMQP convention: reply to `reply_to` with the `correlation_id`,
//! naming yourself in `app_id`.

use lapin::options::{
    BasicConsumeOptions, BasicPublishOptions, ExchangeDeclareOptions, QueueBindOptions,
    QueueDeclareOptions,
};
use lapin::types::FieldTable;
use lapin::{BasicProperties, Channel, Connection, Consumer, ExchangeKind};
use serde_json::json;

use crate::error::WorkerError;

/// The exchange the example worker answers presence gathers on by default.
pub const DEFAULT_EXCHANGE: &str = "patient_summary.presence";

/// Declares the fanout `exchange` (durable, as every copy does), binds a private queue to it
/// and consumes it (no acks: a presence question is only worth answering now).
pub async fn listen(conn: &Connection, exchange: &str) -> lapin::Result<(Channel, Consumer)> {
    let channel = conn.create_channel().await?;
    let durable = ExchangeDeclareOptions {
        durable: true,
        ..ExchangeDeclareOptions::default()
    };
    channel
        .exchange_declare(
            exchange.into(),
            ExchangeKind::Fanout,
            durable,
            FieldTable::default(),
        )
        .await?;
    let private = QueueDeclareOptions {
        exclusive: true,
        auto_delete: true,
        ..QueueDeclareOptions::default()
    };
    let q = channel
        .queue_declare("".into(), private, FieldTable::default())
        .await?;
    let (bind, args) = (QueueBindOptions::default(), FieldTable::default());
    channel
        .queue_bind(q.name().clone(), exchange.into(), "".into(), bind, args)
        .await?;
    let no_ack = BasicConsumeOptions {
        no_ack: true,
        ..BasicConsumeOptions::default()
    };
    let consumer = channel
        .basic_consume(q.name().clone(), "".into(), no_ack, FieldTable::default())
        .await?;
    Ok((channel, consumer))
}

/// Answers one presence question: `{ worker, busy, capacity, available }`, `app_id` = name.
pub async fn answer(
    channel: &Channel,
    question: &BasicProperties,
    worker: &str,
    busy: usize,
    capacity: u16,
) -> Result<(), WorkerError> {
    let Some(reply_to) = question.reply_to().clone() else {
        return Ok(());
    };
    let body = json!({
        "worker": worker,
        "busy": busy,
        "capacity": capacity,
        "available": busy < usize::from(capacity),
    });
    let mut props = BasicProperties::default()
        .with_app_id(worker.into())
        .with_content_type("application/json".into());
    if let Some(id) = question.correlation_id() {
        props = props.with_correlation_id(id.clone());
    }
    let payload = serde_json::to_vec(&body).unwrap_or_default();
    channel
        .basic_publish(
            "".into(),
            reply_to,
            BasicPublishOptions::default(),
            &payload,
            props,
        )
        .await
        .map_err(WorkerError::broker("basic.publish"))?
        .await
        .map_err(WorkerError::broker("basic.publish"))?;
    Ok(())
}
