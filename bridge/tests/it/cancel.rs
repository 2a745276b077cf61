//! Cancel notices reach the worker: when the caller aborts, times out or goes away, the bridge
//! publishes a notice to the cancel exchange naming the request by `reply_to` +
//! `correlation_id`, which any worker can consume (docs/protocol.md §1, "Cancellation").

use std::time::Duration;

use crate::support::{Client, TestBridge, Worker, amqp_url, unique};
use ferry_protocol::headers::{CANCEL_EXCHANGE, CANCEL_REASON, KIND, KIND_CANCEL};
use ferry_protocol::{Cancel, Frame};
use futures_util::StreamExt;
use lapin::options::{
    BasicConsumeOptions, ExchangeDeclareOptions, QueueBindOptions, QueueDeclareOptions,
};
use lapin::types::{AMQPValue, FieldTable};
use lapin::{Channel, Connection, ConnectionProperties, Consumer, ExchangeKind};

/// How soon a worker must learn of a cancel.
const WITHIN: Duration = Duration::from_secs(1);

/// What a worker does to hear cancels for its queue: declare the exchange exactly as the
/// protocol says, bind a private queue to it with the queue's name as the key, consume.
struct Cancels {
    _conn: Connection,
    _channel: Channel,
    consumer: Consumer,
}

/// One notice: correlation id, reply_to, reason.
type Notice = (String, String, String);

impl Cancels {
    async fn listen(destination: &str) -> Self {
        let conn = Connection::connect(amqp_url(), ConnectionProperties::default())
            .await
            .unwrap();
        let channel = conn.create_channel().await.unwrap();
        let durable = ExchangeDeclareOptions {
            durable: true,
            ..ExchangeDeclareOptions::default()
        };
        let table = FieldTable::default();
        channel
            .exchange_declare(CANCEL_EXCHANGE.into(), ExchangeKind::Topic, durable, table)
            .await
            .unwrap();
        let private = QueueDeclareOptions {
            exclusive: true,
            auto_delete: true,
            ..QueueDeclareOptions::default()
        };
        let q = channel
            .queue_declare("".into(), private, FieldTable::default())
            .await
            .unwrap();
        let (bind, args) = (QueueBindOptions::default(), FieldTable::default());
        channel
            .queue_bind(
                q.name().clone(),
                CANCEL_EXCHANGE.into(),
                destination.into(),
                bind,
                args,
            )
            .await
            .unwrap();
        let no_ack = BasicConsumeOptions {
            no_ack: true,
            ..BasicConsumeOptions::default()
        };
        let consumer = channel
            .basic_consume(q.name().clone(), "".into(), no_ack, FieldTable::default())
            .await
            .unwrap();
        Self {
            _conn: conn,
            _channel: channel,
            consumer,
        }
    }

    /// The next notice, which must come within [`WITHIN`].
    async fn next(&mut self) -> Notice {
        self.next_within(WITHIN).await
    }

    /// The next notice, which must come within `limit`.
    async fn next_within(&mut self, limit: Duration) -> Notice {
        let d = tokio::time::timeout(limit, self.consumer.next())
            .await
            .expect("a cancel notice in time")
            .unwrap()
            .unwrap();
        let p = &d.properties;
        let header = |name: &str| match p.headers().as_ref().unwrap().inner().get(name) {
            Some(AMQPValue::LongString(s)) => String::from_utf8(s.as_bytes().to_vec()).unwrap(),
            other => panic!("header {name}: {other:?}"),
        };
        assert_eq!(header(KIND), KIND_CANCEL);
        assert!(d.data.is_empty());
        let id = p.correlation_id().as_ref().unwrap().to_string();
        let reply_to = p.reply_to().as_ref().unwrap().to_string();
        (id, reply_to, header(CANCEL_REASON))
    }
}

fn reply_to(d: &lapin::message::Delivery) -> String {
    d.properties.reply_to().as_ref().unwrap().to_string()
}

#[tokio::test]
async fn abort_timeout_and_close_each_reach_the_worker() {
    let bridge = TestBridge::start(|_| {}).await;
    let mut worker = Worker::start(&unique("cancel-notice")).await;
    let mut cancels = Cancels::listen(&worker.queue).await;
    let mut client = Client::connect(&bridge.url()).await;

    // A request that is answered publishes no notice (the count at the end is exact).
    client
        .request("r", &worker.queue, b"{}", Some(10_000))
        .await;
    let req = worker.next().await;
    worker.reply(&req, b"done").await;
    assert_eq!(client.recv().await.reply().0, "r");

    client
        .request("a", &worker.queue, b"{}", Some(10_000))
        .await;
    let req = worker.next().await;
    client.send(Frame::Cancel(Cancel { id: "a" })).await;
    assert_eq!(
        cancels.next().await,
        ("a".into(), reply_to(&req), "cancelled".into())
    );

    client.request("t", &worker.queue, b"{}", Some(200)).await;
    let req = worker.next().await;
    assert_eq!(client.recv().await.error().1, "timeout");
    assert_eq!(
        cancels.next().await,
        ("t".into(), reply_to(&req), "timeout".into())
    );

    // Another session may use the same id: reply_to tells the two requests apart.
    let mut other = Client::connect(&bridge.url()).await;
    other.request("a", &worker.queue, b"{}", Some(10_000)).await;
    let theirs = worker.next().await;
    client
        .request("d", &worker.queue, b"{}", Some(10_000))
        .await;
    let req = worker.next().await;
    drop(client); // the socket goes away with "d" pending
    assert_eq!(
        cancels.next().await,
        ("d".into(), reply_to(&req), "disconnected".into())
    );
    other.send(Frame::Cancel(Cancel { id: "a" })).await;
    let (id, to, why) = cancels.next().await;
    assert_eq!((id.as_str(), why.as_str()), ("a", "cancelled"));
    assert_eq!(to, reply_to(&theirs));
    assert_ne!(to, reply_to(&req));

    bridge
        .until("counted", |s| s.cancel_notices == 4 && s.pending == 0)
        .await;
}

#[tokio::test]
async fn notices_can_be_turned_off() {
    let bridge = TestBridge::start(|c| c.cancel_exchange = String::new()).await;
    let mut worker = Worker::start(&unique("no-notice")).await;
    let mut client = Client::connect(&bridge.url()).await;
    client
        .request("c", &worker.queue, b"{}", Some(10_000))
        .await;
    worker.next().await;
    client.send(Frame::Cancel(Cancel { id: "c" })).await;
    bridge.until("cancel processed", |s| s.pending == 0).await;
    assert_eq!(bridge.stats.snapshot().cancel_notices, 0);
}

#[tokio::test]
async fn a_drain_that_gives_up_tells_the_worker() {
    let bridge = TestBridge::start(|c| c.drain_timeout = Duration::from_millis(200)).await;
    let mut worker = Worker::start(&unique("drain-notice")).await;
    let mut cancels = Cancels::listen(&worker.queue).await;
    let mut client = Client::connect(&bridge.url()).await;
    client
        .request("s", &worker.queue, b"{}", Some(30_000))
        .await;
    let req = worker.next().await;
    bridge.shutdown.cancel();
    assert_eq!(client.recv().await.error().1, "shutting_down");
    let notice = cancels.next_within(Duration::from_secs(2)).await;
    assert_eq!(notice, ("s".into(), reply_to(&req), "shutting_down".into()));
}
