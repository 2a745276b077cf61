//! Every reply reaches exactly the socket that asked: same ids on two sockets, and a socket
//! that closes with requests in flight leaves nothing behind.

use crate::support::{Client, TestBridge, Worker, unique};
use lapin::types::FieldTable;

#[tokio::test]
async fn two_sockets_with_the_same_correlation_id_get_only_their_own_reply() {
    let bridge = TestBridge::start(|_| {}).await;
    let mut worker = Worker::start(&unique("same")).await;
    let mut a = Client::connect(&bridge.url()).await;
    let mut b = Client::connect(&bridge.url()).await;
    a.request("42", &worker.queue, b"from a", Some(5_000)).await;
    let da = worker.next().await;
    b.request("42", &worker.queue, b"from b", Some(5_000)).await;
    let db = worker.next().await;
    assert_ne!(da.properties.reply_to(), db.properties.reply_to());
    // Answer b first, then a.
    worker.reply(&db, b"for b").await;
    worker.reply(&da, b"for a").await;
    assert_eq!(b.recv().await.reply(), ("42".into(), b"for b".to_vec()));
    assert_eq!(a.recv().await.reply(), ("42".into(), b"for a".to_vec()));
    // Neither got a second frame: a fresh round trip on each is the next thing each sees.
    for (c, tag) in [(&mut a, "a2"), (&mut b, "b2")] {
        c.request(tag, &worker.queue, b"", Some(5_000)).await;
        let d = worker.next().await;
        worker.reply(&d, tag.as_bytes()).await;
        assert_eq!(
            c.recv().await.reply(),
            (tag.into(), tag.as_bytes().to_vec())
        );
    }
    assert_eq!(bridge.stats.snapshot().dropped_replies, 0);
}

#[tokio::test]
async fn closing_with_requests_in_flight_releases_everything() {
    let bridge = TestBridge::start(|_| {}).await;
    let mut worker = Worker::start(&unique("close")).await;
    let mut client = Client::connect(&bridge.url()).await;
    for i in 0..10 {
        client
            .request(&format!("r{i}"), &worker.queue, b"", Some(30_000))
            .await;
    }
    let mut deliveries = Vec::new();
    for _ in 0..10 {
        deliveries.push(worker.next().await);
    }
    let reply_queue = format!("ferry.reply.{}", client.session);
    assert_eq!(bridge.stats.snapshot().pending, 10);
    client.ws.close(None).await.unwrap();
    drop(client);
    bridge
        .until("pending back to zero", |s| s.pending == 0)
        .await;
    bridge.until("session gone", |s| s.sessions == 0).await;

    crate::resume::until_undeclared(&reply_queue, "the reply queue").await;
    // Late replies go nowhere (the queue is gone) and nothing else is disturbed.
    for d in &deliveries {
        worker.reply(d, b"late").await;
    }
    assert_eq!(bridge.stats.snapshot().pending, 0);
}

/// A plain session's reply queue is exclusive to the bridge's connection (RabbitMQ 4.3 refuses
/// queues that are neither durable nor exclusive): a worker can publish a reply to it, and no
/// other connection can consume it (`RESOURCE_LOCKED`).
#[tokio::test]
async fn a_plain_sessions_reply_queue_is_exclusive_to_the_bridge() {
    let bridge = TestBridge::start(|_| {}).await;
    let mut worker = Worker::start(&unique("exclusive")).await;
    let mut client = Client::connect(&bridge.url()).await;
    client.request("x1", &worker.queue, b"", Some(5_000)).await;
    let d = worker.next().await;
    let reply_to = d.properties.reply_to().as_ref().unwrap().to_string();
    let ch = worker.conn.create_channel().await.unwrap();
    let stolen = ch
        .basic_consume(
            reply_to.as_str().into(),
            "".into(),
            lapin::options::BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await;
    let Err(err) = stolen else {
        panic!("another connection consumed the reply queue");
    };
    assert!(err.to_string().contains("RESOURCE_LOCKED"), "{err}");
    worker.reply(&d, b"mine").await;
    assert_eq!(client.recv().await.reply(), ("x1".into(), b"mine".to_vec()));
}

/// With `--reply-queue-pool`, a plain session's first request takes a queue declared ahead
/// (no declare on its path), the pool is refilled, and the queue still goes with the session.
#[tokio::test]
async fn plain_sessions_take_pooled_reply_queues_and_the_pool_refills() {
    let bridge = TestBridge::start(|c| c.reply_queue_pool = 2).await;
    bridge.until_metric("ferry_reply_queue_pool_ready 2").await;
    let mut worker = Worker::start(&unique("pool")).await;
    let mut client = Client::connect(&bridge.url()).await;
    client.request("1", &worker.queue, b"hi", Some(5_000)).await;
    let d = worker.next().await;
    let reply_queue = d.properties.reply_to().clone().unwrap().to_string();
    assert!(
        reply_queue.starts_with("ferry.reply.pool-"),
        "{reply_queue}"
    );
    worker.reply(&d, b"ok").await;
    assert_eq!(client.recv().await.reply(), ("1".into(), b"ok".to_vec()));
    // The one taken was replaced.
    bridge.until_metric("ferry_reply_queue_pool_ready 2").await;
    client.ws.close(None).await.unwrap();
    drop(client);
    bridge.until("session gone", |s| s.sessions == 0).await;
    crate::resume::until_undeclared(&reply_queue, "the reply queue").await;
}
