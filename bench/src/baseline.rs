//! The baseline: a direct lapin RPC client against the echo worker, no bridge in between.
//!
//! One connection, one channel. Replies come back by RabbitMQ's direct reply-to
//! (`amq.rabbitmq.reply-to`, no reply queue at all) or, with [`ReplyMode::Queue`], through an
//! exclusive server-named queue. Each in-flight slot is a task that publishes, then waits for its
//! reply, which a dispatcher task routes by `correlation_id` (the slot number). No publisher
//! confirms and no `mandatory` flag: what an ordinary RPC client does.

use std::time::{Duration, Instant};

use futures_util::StreamExt;
use lapin::options::{BasicConsumeOptions, BasicPublishOptions, QueueDeclareOptions};
use lapin::types::{FieldTable, ShortString};
use lapin::{BasicProperties, Channel, Connection, ConnectionProperties};
use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::error::{BenchError, Result};
use crate::stats::{LoadSpec, Recorder, RunStats, Window};

/// How long one request may wait for its reply before the run fails.
const REPLY_TIMEOUT: Duration = Duration::from_secs(30);
const DIRECT_REPLY_TO: &str = "amq.rabbitmq.reply-to";

/// Where the baseline's replies come back.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ReplyMode {
    /// RabbitMQ's direct reply-to pseudo-queue (fastest: no queue, no ack).
    Direct,
    /// An exclusive, server-named reply queue consumed without acks.
    Queue,
}

/// Runs one closed-loop load against `queue` on the broker at `amqp_url`.
pub async fn run(
    amqp_url: &str,
    queue: &str,
    mode: ReplyMode,
    spec: &LoadSpec,
) -> Result<RunStats> {
    let conn = Connection::connect(
        amqp_url,
        ConnectionProperties::default().with_connection_name("ferry-bench-baseline".into()),
    )
    .await?;
    let channel = conn.create_channel().await?;
    let reply_to = match mode {
        ReplyMode::Direct => DIRECT_REPLY_TO.to_owned(),
        ReplyMode::Queue => channel
            .queue_declare(
                "".into(),
                QueueDeclareOptions {
                    exclusive: true,
                    auto_delete: true,
                    ..QueueDeclareOptions::default()
                },
                FieldTable::default(),
            )
            .await?
            .name()
            .to_string(),
    };
    let consumer = channel
        .basic_consume(
            reply_to.as_str().into(),
            "ferry-bench-baseline".into(),
            BasicConsumeOptions {
                no_ack: true,
                ..BasicConsumeOptions::default()
            },
            FieldTable::default(),
        )
        .await?;

    let window = Window::start(spec);
    let cancel = CancellationToken::new();
    let mut senders = Vec::with_capacity(spec.concurrency);
    let mut slots = JoinSet::new();
    for slot in 0..spec.concurrency {
        let (tx, rx) = mpsc::channel(1);
        senders.push(tx);
        let slot = Slot {
            id: slot.to_string(),
            channel: channel.clone(),
            queue: queue.to_owned(),
            reply_to: reply_to.clone(),
            body: spec.body.clone(),
            window,
        };
        slots.spawn(slot.run(rx));
    }
    let mut tasks = JoinSet::new();
    tasks.spawn(dispatch(consumer, senders, cancel.clone()));

    let mut rec = Recorder::new(window)?;
    let mut failure = None;
    while let Some(done) = slots.join_next().await {
        match done {
            Ok(Ok(slot_rec)) => rec.merge(&slot_rec)?,
            Ok(Err(e)) => failure = Some(e),
            Err(e) => failure = Some(BenchError::Protocol(format!("slot task: {e}"))),
        }
        if failure.is_some() {
            slots.abort_all();
        }
    }
    cancel.cancel();
    while tasks.join_next().await.is_some() {}
    let _ = conn.close(200, "bye".into()).await;
    match failure {
        Some(e) => Err(e),
        None => Ok(rec.finish(spec.duration)),
    }
}

/// Routes each reply to the slot its `correlation_id` names, stamped with its arrival time.
async fn dispatch(
    mut consumer: lapin::Consumer,
    senders: Vec<mpsc::Sender<Instant>>,
    cancel: CancellationToken,
) {
    loop {
        let delivery = tokio::select! {
            () = cancel.cancelled() => return,
            d = consumer.next() => d,
        };
        let now = Instant::now();
        let Some(Ok(delivery)) = delivery else { return };
        let slot = delivery
            .properties
            .correlation_id()
            .as_ref()
            .and_then(|id| id.as_str().parse::<usize>().ok())
            .and_then(|i| senders.get(i));
        if let Some(tx) = slot {
            // A full slot channel means a duplicate reply: nobody waits for it, drop it.
            let _ = tx.try_send(now);
        }
    }
}

/// One in-flight request slot: publish, await the reply, repeat until the window closes.
struct Slot {
    id: String,
    channel: Channel,
    queue: String,
    reply_to: String,
    body: Vec<u8>,
    window: Window,
}

impl Slot {
    async fn run(self, mut replies: mpsc::Receiver<Instant>) -> Result<Recorder> {
        let mut rec = Recorder::new(self.window)?;
        let id = ShortString::from(self.id.as_str());
        let queue = ShortString::from(self.queue.as_str());
        let reply_to = ShortString::from(self.reply_to.as_str());
        let content_type = ShortString::from("application/json");
        while self.window.open(Instant::now()) {
            let props = BasicProperties::default()
                .with_correlation_id(id.clone())
                .with_reply_to(reply_to.clone())
                .with_content_type(content_type.clone());
            let sent = Instant::now();
            self.channel
                .basic_publish(
                    "".into(),
                    queue.clone(),
                    BasicPublishOptions::default(),
                    &self.body,
                    props,
                )
                .await?;
            match tokio::time::timeout(REPLY_TIMEOUT, replies.recv()).await {
                Ok(Some(at)) => rec.reply(sent, at),
                Ok(None) => return Err(BenchError::Protocol("reply consumer ended".into())),
                Err(_) => return Err(BenchError::Timeout(format!("baseline slot {}", self.id))),
            }
        }
        Ok(rec)
    }
}
