//! Presence: answers a scatter-gather on a fanout exchange with who this worker is and how
//! busy it is, so a dashboard can ask every running worker at once ("find available
//! reviewers"). A plain AMQP convention: reply to `reply_to` with the `correlation_id`,
//! naming yourself in `app_id`.

use lapin::{BasicProperties, Channel, Connection, Consumer, ExchangeKind};
use serde_json::json;

use crate::error::WorkerError;
use crate::job::publish_json;
use crate::subscribe::subscribe;

/// The exchange the example worker answers presence gathers on by default.
pub const DEFAULT_EXCHANGE: &str = "patient_summary.presence";

/// Subscribes to presence questions on the fanout `exchange`.
pub async fn listen(conn: &Connection, exchange: &str) -> lapin::Result<(Channel, Consumer)> {
    subscribe(conn, exchange, ExchangeKind::Fanout, "").await
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
    let mut props = BasicProperties::default().with_app_id(worker.into());
    if let Some(id) = question.correlation_id() {
        props = props.with_correlation_id(id.clone());
    }
    publish_json(channel, reply_to, props, &body).await
}
