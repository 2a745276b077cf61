//! A reply queue's consume that its caller gives up on (its limit passed) must not keep a
//! reply: the reconnect storm lost replies this way, each left unacknowledged on a shared
//! consume channel by a consumer nobody read.

use std::time::Duration;

use ferry_bridge::broker::port::Replies;
use ferry_bridge::broker::replies::{REPLY_QUEUE_PREFIX, ReplySub};
use ferry_bridge::broker::{Broker, Settings};
use ferry_bridge::config::ReplyQueueType;
use ferry_bridge::stats::Stats;
use lapin::options::BasicPublishOptions;
use lapin::{BasicProperties, Connection, ConnectionProperties};
use tokio_util::sync::CancellationToken;

use crate::support::{amqp_url, unique};

#[tokio::test]
async fn a_consume_abandoned_by_its_caller_gives_its_delivery_back() {
    let stop = CancellationToken::new();
    let stats = Stats::default();
    let settings = Settings {
        urls: vec![amqp_url().to_owned()],
        ca: None,
        instance: unique("consume-test"),
        cancel_exchange: String::new(),
        reply_queue_type: ReplyQueueType::Classic,
        reply_pool: 0,
        counters: stats.broker_counters(),
    };
    let (broker, task) = Broker::start(settings, stop.clone());
    let links = tokio::time::timeout(Duration::from_secs(10), broker.links())
        .await
        .expect("the broker connects");
    let session = unique("abandoned");
    let queue = format!("{REPLY_QUEUE_PREFIX}{session}");
    let limit = Duration::from_secs(5);

    // The queue exists (exclusive to the bridge's consume connection) and nobody consumes it.
    let first = ReplySub::open(links.clone(), &session, Duration::ZERO, None, limit)
        .await
        .expect("the reply queue is declared");
    first.detach().await;
    // A reply waits in it.
    let conn = Connection::connect(amqp_url(), ConnectionProperties::default())
        .await
        .unwrap();
    let channel = conn.create_channel().await.unwrap();
    channel
        .basic_publish(
            "".into(),
            queue.as_str().into(),
            BasicPublishOptions::default(),
            b"the reply",
            BasicProperties::default().with_correlation_id("r1".into()),
        )
        .await
        .unwrap()
        .await
        .unwrap();

    // A consume whose caller stops waiting at once: the broker still gets its basic.consume
    // and delivers the waiting reply to it. (The timer's millisecond can let a fast broker
    // answer every step first: then that consume is detached, the reply goes back, and the
    // next try abandons one.)
    let mut abandoned = false;
    for _ in 0..50 {
        let zero = Duration::ZERO;
        match ReplySub::open(links.clone(), &session, zero, None, zero).await {
            Err(_) => {
                abandoned = true;
                break;
            }
            Ok(done) => done.detach().await,
        }
    }
    assert!(
        abandoned,
        "no consume was abandoned by its caller in 50 tries"
    );

    // The next consume of the queue gets the reply.
    let mut next = ReplySub::open(links.clone(), &session, Duration::ZERO, None, limit)
        .await
        .expect("the queue is consumed again");
    let reply = std::future::poll_fn(|cx| Replies::poll_next(&mut next, cx));
    let delivery = tokio::time::timeout(Duration::from_secs(15), reply)
        .await
        .expect("the reply the abandoned consume received went back to the queue")
        .expect("the consumer is alive");
    assert_eq!(&delivery.data[..], b"the reply");
    next.ack(delivery.tag);
    next.close().await;
    stop.cancel();
    let _ = task.await;
}
