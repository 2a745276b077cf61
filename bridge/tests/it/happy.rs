//! Happy paths: one request, 1,000 concurrent requests answered in reverse order, 100 sockets.

use crate::support::{Client, TestBridge, Worker, unique};

#[tokio::test]
async fn request_reaches_the_worker_and_the_reply_comes_back() {
    let bridge = TestBridge::start(|_| {}).await;
    let queue = unique("happy");
    let mut worker = Worker::start(&queue).await;
    let mut client = Client::connect(&bridge.url()).await;

    client
        .request("r-1", &queue, br#"{"q":1}"#, Some(5000))
        .await;
    let req = worker.next().await;
    let p = &req.properties;
    assert_eq!(p.correlation_id().as_ref().unwrap().as_str(), "r-1");
    assert_eq!(
        p.reply_to().as_ref().unwrap().as_str(),
        format!("ferry.reply.{}", client.session)
    );
    assert_eq!(
        p.content_type().as_ref().unwrap().as_str(),
        "application/json"
    );
    assert_eq!(p.expiration().as_ref().unwrap().as_str(), "5000");
    assert!(p.message_id().is_some() && p.timestamp().is_some());
    assert_eq!(req.data, br#"{"q":1}"#);
    worker.reply(&req, br#"{"a":2}"#).await;

    let (id, body) = client.recv().await.reply();
    assert_eq!(id, "r-1");
    assert_eq!(body, br#"{"a":2}"#);
    bridge
        .until("pending back to zero", |s| s.pending == 0)
        .await;
}
