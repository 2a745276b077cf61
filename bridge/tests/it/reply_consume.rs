//! A reply queue's consumer that nobody reads any more must not keep a reply: not a consume
//! its caller gave up on (its limit passed: the reconnect storm lost replies this way, each
//! left unacknowledged on a shared consume channel by a consumer nobody read), nor a
//! resumable session's consumer closed with replies it had not read yet. And a reply queue
//! whose declare fails costs no other session's consumer.

use std::sync::Arc;
use std::time::Duration;

use ferry_bridge::broker::port::Replies;
use ferry_bridge::broker::replies::{REPLY_QUEUE_PREFIX, ReplySub};
use ferry_bridge::broker::{Broker, Links, Settings};
use ferry_bridge::config::ReplyQueueType;
use ferry_bridge::stats::Stats;
use lapin::options::{
    BasicGetOptions, BasicPublishOptions, QueueDeclareOptions, QueueDeleteOptions,
};
use lapin::types::FieldTable;
use lapin::{BasicProperties, Channel, Connection, ConnectionProperties};
use tokio_util::sync::CancellationToken;

use crate::support::{amqp_url, unique};

/// A broker manager of its own (stopped by the token) and its links.
async fn links() -> (Arc<Links>, CancellationToken, tokio::task::JoinHandle<()>) {
    let stop = CancellationToken::new();
    let stats = Stats::default();
    let settings = Settings {
        urls: vec![amqp_url().to_owned()],
        ca: None,
        instance: unique("consume-test"),
        cancel_exchange: String::new(),
        reply_queue_type: ReplyQueueType::Classic,
        reply_pool: 0,
        resumable_pool: (0, Duration::ZERO),
        counters: stats.broker_counters(),
    };
    let (broker, task) = Broker::start(settings, stop.clone());
    let links = tokio::time::timeout(Duration::from_secs(10), broker.links())
        .await
        .expect("the broker connects");
    (links, stop, task)
}

/// Publishes `body` to `queue` on a connection of the test's own.
async fn publish(queue: &str, body: &[u8]) -> (Connection, Channel) {
    let conn = Connection::connect(amqp_url(), ConnectionProperties::default())
        .await
        .unwrap();
    let channel = conn.create_channel().await.unwrap();
    channel
        .basic_publish(
            "".into(),
            queue.into(),
            BasicPublishOptions::default(),
            body,
            BasicProperties::default().with_correlation_id("r1".into()),
        )
        .await
        .unwrap()
        .await
        .unwrap();
    (conn, channel)
}

#[tokio::test]
async fn a_consume_abandoned_by_its_caller_gives_its_delivery_back() {
    let (links, stop, task) = links().await;
    let session = unique("abandoned");
    let queue = format!("{REPLY_QUEUE_PREFIX}{session}");
    let limit = Duration::from_secs(5);

    // The queue exists (exclusive to the bridge's consume connection) and nobody consumes it.
    let first = ReplySub::open(links.clone(), &session, Duration::ZERO, None, limit)
        .await
        .expect("the reply queue is declared");
    first.detach().await;
    // A reply waits in it.
    let _broker = publish(&queue, b"the reply").await;

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

#[tokio::test]
async fn a_closed_resumable_session_gives_the_replies_it_had_not_read_back() {
    let (links, stop, task) = links().await;
    let session = unique("closed");
    let queue = format!("{REPLY_QUEUE_PREFIX}{session}");
    let lease = unique("lease");
    let grace = Duration::from_secs(60);
    let limit = Duration::from_secs(5);
    let sub = ReplySub::open(links.clone(), &session, grace, Some(&lease), limit)
        .await
        .expect("the reply queue is declared and consumed");
    let (_conn, channel) = publish(&queue, b"unread").await;

    // The broker delivers it to the consumer, where it waits unread (no event says when:
    // the queue's ready count is asked until it drops).
    let passive = QueueDeclareOptions {
        passive: true,
        ..QueueDeclareOptions::default()
    };
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let q = channel
            .queue_declare(queue.as_str().into(), passive, FieldTable::default())
            .await
            .unwrap();
        if q.message_count() == 0 {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "never delivered");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    sub.close().await;
    // Back in the queue, not left unacknowledged on the bridge's consume channel (which
    // other sessions share, and which stays open).
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    let got = loop {
        let get = channel.basic_get(queue.as_str().into(), BasicGetOptions::default());
        if let Some(m) = get.await.unwrap() {
            break m;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the unread reply stayed with the closed consumer"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(&got.delivery.data[..], b"unread");
    let _ = channel
        .queue_delete(queue.as_str().into(), QueueDeleteOptions::default())
        .await;
    stop.cancel();
    let _ = task.await;
}

#[tokio::test]
async fn a_failed_reply_queue_declare_ends_no_other_sessions_consumer() {
    let (links, stop, task) = links().await;
    let limit = Duration::from_secs(5);
    let victim_id = unique("victim");
    let mut victim = ReplySub::open(links.clone(), &victim_id, Duration::ZERO, None, limit)
        .await
        .expect("the victim's queue is consumed");
    // A session id whose queue is consumed on the victim's channel: opened, noted, closed.
    let mut doomed = None;
    for i in 0..500 {
        let id = format!("{victim_id}-{i}");
        let sub = ReplySub::open(links.clone(), &id, Duration::ZERO, None, limit)
            .await
            .expect("a candidate's queue is consumed");
        let shares = sub.channel_id() == victim.channel_id();
        sub.close().await;
        if shares {
            doomed = Some(id);
            break;
        }
    }
    let doomed = doomed.expect("a session on the victim's consume channel within 500");
    // Its queue declared beforehand with other arguments (durable, not exclusive): the
    // bridge's declare of it fails with a channel error.
    let queue = format!("{REPLY_QUEUE_PREFIX}{doomed}");
    let conn = Connection::connect(amqp_url(), ConnectionProperties::default())
        .await
        .unwrap();
    let channel = conn.create_channel().await.unwrap();
    let durable = QueueDeclareOptions {
        durable: true,
        ..QueueDeclareOptions::default()
    };
    channel
        .queue_declare(queue.as_str().into(), durable, FieldTable::default())
        .await
        .unwrap();
    let failed = ReplySub::open(links.clone(), &doomed, Duration::ZERO, None, limit).await;
    assert!(failed.is_err(), "the declare must fail for this test");

    // The victim's consumer lives on: a reply to it arrives.
    let _broker = publish(victim.queue(), b"still here").await;
    let reply = std::future::poll_fn(|cx| Replies::poll_next(&mut victim, cx));
    let delivery = tokio::time::timeout(Duration::from_secs(10), reply)
        .await
        .expect("the victim's reply arrives")
        .expect("the victim's consumer lives");
    assert_eq!(&delivery.data[..], b"still here");
    victim.ack(delivery.tag);
    victim.close().await;
    let _ = channel
        .queue_delete(queue.as_str().into(), QueueDeleteOptions::default())
        .await;
    let _ = conn.close(200, "bye".into()).await;
    stop.cancel();
    let _ = task.await;
}
