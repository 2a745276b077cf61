//! How reply queues and leases are declared: durability, exclusivity, `x-expires` and the
//! queue type, one place for every declare of them (the bridge's, its lease's, `check`'s).
//!
//! A resumable session's queue is durable, a plain session's exclusive to the bridge's consume
//! connection: RabbitMQ 4.3 refuses queues that are neither (`transient_nonexcl_queues`).

use std::time::Duration;

use lapin::options::QueueDeclareOptions;
use lapin::types::{AMQPValue, FieldTable};

use crate::config::ReplyQueueType;

/// `x-expires` of a reply queue when sessions do not resume: a bridge that dies without
/// deleting its queues leaves them this long.
const REPLY_QUEUE_EXPIRES_MS: i32 = 60_000;

/// How a session's reply queue is declared: `grace` zero (not resumable) makes it exclusive
/// to the consume connection, otherwise durable and of `kind`; `x-expires` is the grace period.
pub(crate) fn reply_queue(
    grace: Duration,
    kind: ReplyQueueType,
) -> (QueueDeclareOptions, FieldTable) {
    let expires = if grace.is_zero() {
        REPLY_QUEUE_EXPIRES_MS
    } else {
        millis(grace)
    };
    let mut args = FieldTable::default();
    args.insert("x-expires".into(), AMQPValue::LongInt(expires));
    if !grace.is_zero() {
        queue_type(&mut args, kind);
    }
    let opts = QueueDeclareOptions {
        durable: !grace.is_zero(),
        exclusive: grace.is_zero(),
        ..QueueDeclareOptions::default()
    };
    (opts, args)
}

/// How a lease is declared: durable, of the reply queues' type `kind`, `x-expires` = `grace`.
pub(crate) fn lease(grace: Duration, kind: ReplyQueueType) -> (QueueDeclareOptions, FieldTable) {
    let mut args = FieldTable::default();
    args.insert("x-expires".into(), AMQPValue::LongInt(millis(grace).max(1)));
    queue_type(&mut args, kind);
    let opts = QueueDeclareOptions {
        durable: true,
        ..QueueDeclareOptions::default()
    };
    (opts, args)
}

/// Names the queue type in a declaration's arguments: always, so a vhost's default queue
/// type never decides it.
fn queue_type(args: &mut FieldTable, kind: ReplyQueueType) {
    let name = match kind {
        ReplyQueueType::Classic => "classic",
        ReplyQueueType::Quorum => "quorum",
    };
    args.insert("x-queue-type".into(), AMQPValue::LongString(name.into()));
}

/// `d` in milliseconds as `x-expires` takes them (saturating).
fn millis(d: Duration) -> i32 {
    i32::try_from(d.as_millis()).unwrap_or(i32::MAX)
}
