//! Tells a broker restart from a lost connection. Resumable sessions' reply queues are
//! durable, so they outlive a restart, but the transient replies in them do not; after a
//! restart the bridge must fail what those sessions await instead of letting it wait out its
//! timeout. The sign: a durable queue of this bridge's own (`ferry.epoch.<instance>`) holding
//! one transient message, which a reconnect keeps and a restart drops. The bridge consumes
//! the queue while connected (the marker stays unacknowledged, so a lost connection gives it
//! back), which also keeps `x-expires` from deleting it until the bridge is gone. A reconnect
//! so quick that the broker has not yet noticed the old connection's end finds the marker
//! still unacknowledged there, and is taken for a restart: the conservative mistake.

use lapin::options::{
    BasicConsumeOptions, BasicPublishOptions, QueueDeclareOptions, QueueDeleteOptions,
};
use lapin::types::{AMQPValue, FieldTable};
use lapin::{BasicProperties, Channel, Connection, Consumer};

use crate::error::BridgeError;

/// Prefix of the marker queue's name; the bridge instance id follows.
pub const EPOCH_QUEUE_PREFIX: &str = "ferry.epoch.";
/// `x-expires` of the marker queue, counted while no bridge consumes it: a bridge that died
/// leaves it this long. A bridge away from a running broker for longer takes its return for
/// a restart (a conservative mistake: pending requests fail with `broker_unavailable`).
const EPOCH_EXPIRES_MS: i32 = 120_000;

/// The marker queue, consumed for as long as the links live.
pub struct Marker {
    channel: Channel,
    queue: String,
    _consumer: Consumer,
}

impl Marker {
    /// Declares and consumes the marker queue; `kept` is false on this bridge's first
    /// connect and after a broker restart (the marker was missing and is put back).
    pub async fn hold(conn: &Connection, instance: &str) -> Result<(Self, bool), BridgeError> {
        let queue = format!("{EPOCH_QUEUE_PREFIX}{instance}");
        let channel = conn.create_channel().await?;
        let mut args = FieldTable::default();
        args.insert("x-expires".into(), AMQPValue::LongInt(EPOCH_EXPIRES_MS));
        // Classic whatever the vhost's default: a quorum queue keeps every message, so a
        // restart would leave the marker in place.
        args.insert(
            "x-queue-type".into(),
            AMQPValue::LongString("classic".into()),
        );
        let opts = QueueDeclareOptions {
            durable: true,
            ..QueueDeclareOptions::default()
        };
        let declared = channel
            .queue_declare(queue.as_str().into(), opts, args)
            .await?;
        let kept = declared.message_count() > 0;
        if !kept {
            // Transient (delivery mode 1): this is the message a restart drops.
            let props = BasicProperties::default().with_delivery_mode(1);
            let opts = BasicPublishOptions::default();
            channel
                .basic_publish("".into(), queue.as_str().into(), opts, b"epoch", props)
                .await?;
        }
        let consumer = channel
            .basic_consume(
                queue.as_str().into(),
                "".into(),
                BasicConsumeOptions::default(),
                FieldTable::default(),
            )
            .await?;
        let marker = Self {
            channel,
            queue,
            _consumer: consumer,
        };
        Ok((marker, kept))
    }

    /// Deletes the marker queue (the bridge is stopping). Errors are ignored: `x-expires`
    /// removes it anyway.
    pub async fn remove(&self) {
        let opts = QueueDeleteOptions::default();
        let _ = self
            .channel
            .queue_delete(self.queue.as_str().into(), opts)
            .await;
    }
}
