//! A private queue bound to an exchange: how the worker hears cancel notices and presence
//! questions. The queue is server-named, exclusive and auto-deleted (it goes with the
//! connection); messages are consumed without acks, since they only matter now.

use lapin::options::{
    BasicConsumeOptions, ExchangeDeclareOptions, QueueBindOptions, QueueDeclareOptions,
};
use lapin::types::FieldTable;
use lapin::{Channel, Connection, Consumer, ExchangeKind};

/// Declares `exchange` (durable, as every copy of the worker and the bridge declare it), binds
/// a private queue to it with `binding_key` and consumes that queue on a channel of its own.
pub async fn subscribe(
    conn: &Connection,
    exchange: &str,
    kind: ExchangeKind,
    binding_key: &str,
) -> lapin::Result<(Channel, Consumer)> {
    let channel = conn.create_channel().await?;
    let durable = ExchangeDeclareOptions {
        durable: true,
        ..ExchangeDeclareOptions::default()
    };
    channel
        .exchange_declare(exchange.into(), kind, durable, FieldTable::default())
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
        .queue_bind(
            q.name().clone(),
            exchange.into(),
            binding_key.into(),
            bind,
            args,
        )
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
