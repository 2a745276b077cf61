//! Errors never look like timeouts: no_route, no_responders, forbidden, worker errors,
//! timeouts with late replies, cancel, duplicates, overload, broker_unavailable.

use crate::support::{Client, TestBridge, Worker, headers, unique};
use ferry_protocol::{Cancel, Frame, Request};

#[tokio::test]
async fn missing_queue_is_no_route_at_once() {
    let bridge = TestBridge::start(|c| c.allow_waiting = vec!["test.waiting.*".into()]).await;
    let mut client = Client::connect(&bridge.url()).await;
    // Through the consumer probe...
    client
        .request("a", &unique("nosuch"), b"{}", Some(30_000))
        .await;
    let (id, code, ..) = client.recv().await.error();
    assert_eq!((id.as_deref(), code.as_str()), (Some("a"), "no_route"));
    // ...and through the mandatory flag (the probe is skipped for allow-waiting queues).
    client
        .request("b", &unique("waiting.nosuch"), b"{}", Some(30_000))
        .await;
    let (id, code, ..) = client.recv().await.error();
    assert_eq!((id.as_deref(), code.as_str()), (Some("b"), "no_route"));
    bridge
        .until("pending back to zero", |s| s.pending == 0)
        .await;
}

#[tokio::test]
async fn queue_without_consumers_is_no_responders_unless_allowed_to_wait() {
    let bridge = TestBridge::start(|c| c.allow_waiting = vec!["test.waiting.*".into()]).await;
    let idle = Worker::declare(&unique("idle")).await;
    let mut client = Client::connect(&bridge.url()).await;
    client.request("a", &idle.queue, b"{}", Some(30_000)).await;
    let (id, code, ..) = client.recv().await.error();
    assert_eq!((id.as_deref(), code.as_str()), (Some("a"), "no_responders"));
    assert_eq!(idle.depth().await, 0, "nothing was published");

    // A waiting queue keeps the request until a worker comes.
    let mut late = Worker::declare(&unique("waiting.jobs")).await;
    client.request("b", &late.queue, b"{}", Some(30_000)).await;
    late.consume().await;
    let req = late.next().await;
    late.reply(&req, b"done").await;
    assert_eq!(client.recv().await.reply(), ("b".into(), b"done".to_vec()));
}

#[tokio::test]
async fn forbidden_destination_publishes_nothing() {
    let bridge = TestBridge::start(|c| c.allow = vec!["test.allowed.*".into()]).await;
    let worker = Worker::declare(&unique("secret")).await;
    let mut client = Client::connect(&bridge.url()).await;
    client.request("a", &worker.queue, b"{}", Some(5_000)).await;
    let (id, code, message, ..) = client.recv().await.error();
    assert_eq!((id.as_deref(), code.as_str()), (Some("a"), "forbidden"));
    assert!(message.contains("not allowed"), "{message}");
    client
        .request("b", "amq.rabbitmq.reply-to", b"{}", None)
        .await;
    assert_eq!(client.recv().await.error().1, "forbidden");
    // Proof nothing was published: the queue (nobody consumes it) holds no message and the
    // bridge accepted no request.
    assert_eq!(worker.depth().await, 0);
    assert_eq!(bridge.stats.snapshot().requests_total, 0);
}

#[tokio::test]
async fn worker_error_reply_is_a_remote_error_with_details() {
    let bridge = TestBridge::start(|_| {}).await;
    let mut worker = Worker::start(&unique("err")).await;
    let mut client = Client::connect(&bridge.url()).await;
    client
        .request("e-1", &worker.queue, b"{}", Some(5_000))
        .await;
    let req = worker.next().await;
    let h = headers(&[
        ("x-ferry-error", "patient_not_found"),
        ("x-ferry-error-message", "no patient 42"),
    ]);
    worker.reply_with(&req, br#"{"patient":42}"#, h).await;
    let (id, code, message, remote, details) = client.recv().await.error();
    assert_eq!(id.as_deref(), Some("e-1"));
    assert_eq!(code, "remote");
    assert_eq!(message, "no patient 42");
    assert_eq!(remote.as_deref(), Some("patient_not_found"));
    assert_eq!(details, br#"{"patient":42}"#);
    bridge
        .until("pending back to zero", |s| s.pending == 0)
        .await;
}

#[tokio::test]
async fn progress_then_final_reply() {
    let bridge = TestBridge::start(|_| {}).await;
    let mut worker = Worker::start(&unique("progress")).await;
    let mut client = Client::connect(&bridge.url()).await;
    client.request("p", &worker.queue, b"{}", Some(5_000)).await;
    let req = worker.next().await;
    worker
        .reply_with(&req, b"50%", headers(&[("x-ferry-kind", "progress")]))
        .await;
    worker.reply(&req, b"done").await;
    match client.recv().await.frame() {
        Frame::Progress(p) => assert_eq!((p.id, p.body), ("p", &b"50%"[..])),
        other => panic!("expected progress, got {other:?}"),
    }
    assert_eq!(client.recv().await.reply(), ("p".into(), b"done".to_vec()));
}

#[tokio::test]
async fn timeout_then_late_reply_is_dropped_and_counted() {
    let bridge = TestBridge::start(|_| {}).await;
    let mut worker = Worker::start(&unique("slow")).await;
    let mut client = Client::connect(&bridge.url()).await;
    client.request("t", &worker.queue, b"{}", Some(200)).await;
    let req = worker.next().await;
    let (id, code, ..) = client.recv().await.error();
    assert_eq!((id.as_deref(), code.as_str()), (Some("t"), "timeout"));
    assert_eq!(bridge.stats.snapshot().pending, 0);

    worker.reply(&req, b"too late").await;
    bridge
        .until("late reply dropped", |s| s.dropped_replies == 1)
        .await;
    // Nothing was delivered for it: the next frame on the socket is the next request's reply.
    client.request("u", &worker.queue, b"{}", Some(5_000)).await;
    let req = worker.next().await;
    worker.reply(&req, b"on time").await;
    assert_eq!(
        client.recv().await.reply(),
        ("u".into(), b"on time".to_vec())
    );
}

#[tokio::test]
async fn timeouts_are_clamped_to_max_timeout() {
    let bridge = TestBridge::start(|c| c.max_timeout = std::time::Duration::from_millis(300)).await;
    let mut worker = Worker::start(&unique("clamp")).await;
    let mut client = Client::connect(&bridge.url()).await;
    client
        .request("t", &worker.queue, b"{}", Some(3_600_000))
        .await;
    let req = worker.next().await;
    assert_eq!(
        req.properties.expiration().as_ref().unwrap().as_str(),
        "300"
    );
    assert_eq!(client.recv().await.error().1, "timeout");
}

#[tokio::test]
async fn cancel_removes_the_entry_and_the_reply_is_dropped() {
    let bridge = TestBridge::start(|_| {}).await;
    let mut worker = Worker::start(&unique("cancel")).await;
    let mut client = Client::connect(&bridge.url()).await;
    client.request("c", &worker.queue, b"{}", Some(5_000)).await;
    let req = worker.next().await;
    client.send(Frame::Cancel(Cancel { id: "c" })).await;
    bridge.until("cancel processed", |s| s.pending == 0).await;
    worker.reply(&req, b"unwanted").await;
    bridge
        .until("reply dropped", |s| s.dropped_replies == 1)
        .await;
    client.request("d", &worker.queue, b"{}", Some(5_000)).await;
    let req = worker.next().await;
    worker.reply(&req, b"wanted").await;
    assert_eq!(
        client.recv().await.reply(),
        ("d".into(), b"wanted".to_vec())
    );
}

#[tokio::test]
async fn duplicate_pending_id_is_bad_request_and_overload_is_refused() {
    let bridge = TestBridge::start(|c| c.max_inflight = 2).await;
    let mut worker = Worker::start(&unique("dup")).await;
    let mut client = Client::connect(&bridge.url()).await;
    client.request("x", &worker.queue, b"1", Some(5_000)).await;
    let first = worker.next().await;
    client.request("x", &worker.queue, b"2", Some(5_000)).await;
    let (id, code, ..) = client.recv().await.error();
    assert_eq!((id.as_deref(), code.as_str()), (Some("x"), "bad_request"));
    client.request("y", &worker.queue, b"3", Some(5_000)).await;
    let second = worker.next().await;
    client.request("z", &worker.queue, b"4", Some(5_000)).await;
    let (id, code, ..) = client.recv().await.error();
    assert_eq!((id.as_deref(), code.as_str()), (Some("z"), "overloaded"));
    worker.reply(&first, b"1").await;
    worker.reply(&second, b"3").await;
    let mut got = vec![client.recv().await.reply(), client.recv().await.reply()];
    got.sort();
    assert_eq!(
        got,
        vec![("x".into(), b"1".to_vec()), ("y".into(), b"3".to_vec())]
    );
    bridge
        .until("pending back to zero", |s| s.pending == 0)
        .await;
}

#[tokio::test]
async fn headers_reach_the_worker_with_the_deadline_and_session() {
    let bridge = TestBridge::start(|_| {}).await;
    let mut worker = Worker::start(&unique("headers")).await;
    let mut client = Client::connect(&bridge.url()).await;
    client
        .send(Frame::Request(Request {
            id: "h",
            destination: &worker.queue,
            content_type: None,
            timeout_ms: Some(5_000),
            idle_timeout_ms: None,
            headers: vec![("x-tenant", "acme")],
            body: b"",
        }))
        .await;
    let req = worker.next().await;
    let h = req.properties.headers().as_ref().unwrap().inner();
    assert!(matches!(
        h.get("x-ferry-deadline"),
        Some(lapin::types::AMQPValue::LongLongInt(ms)) if *ms > 1_700_000_000_000
    ));
    assert!(h.contains_key("x-ferry-session"));
    assert!(h.contains_key("x-tenant"));
    worker.reply(&req, b"").await;
    client.recv().await.reply();
}

#[tokio::test]
async fn broker_down_means_broker_unavailable_at_once() {
    // Nothing listens on port 1: the bridge keeps retrying, and requests fail fast.
    let mut cfg = ferry_bridge::Config::with_defaults("127.0.0.1:0".parse().unwrap(), &["test.*"]);
    cfg.amqp_url = vec!["amqp://guest:guest@127.0.0.1:1/%2f".into()];
    let bridge = ferry_bridge::Bridge::bind(cfg).await.unwrap();
    let addr = bridge.local_addr();
    let shutdown = tokio_util::sync::CancellationToken::new();
    let task = tokio::spawn(bridge.run(shutdown.clone()));
    let mut client = Client::connect(&format!("ws://{addr}/ws")).await;
    client.request("a", "test.any", b"{}", Some(30_000)).await;
    let (id, code, message, ..) = client.recv().await.error();
    assert_eq!(
        (id.as_deref(), code.as_str()),
        (Some("a"), "broker_unavailable")
    );
    assert!(
        !message.contains("127.0.0.1"),
        "no broker detail on the wire: {message}"
    );
    let ready = crate::support::http_get(addr, "/readyz").await;
    assert!(ready.starts_with("HTTP/1.1 503"), "{ready}");
    shutdown.cancel();
    task.await.unwrap();
}

#[tokio::test]
async fn progress_keeps_an_idle_timeout_request_alive() {
    use std::time::Duration;
    let bridge = TestBridge::start(|_| {}).await;
    let mut worker = Worker::start(&unique("idle")).await;
    let mut client = Client::connect(&bridge.url()).await;
    client
        .send(Frame::Request(Request {
            id: "long",
            destination: &worker.queue,
            content_type: None,
            timeout_ms: Some(300),
            idle_timeout_ms: Some(300),
            headers: vec![],
            body: b"",
        }))
        .await;
    let req = worker.next().await;
    // The job runs 3x longer than its timeout but reports progress every 150 ms.
    for step in 0..6 {
        worker
            .reply_with(
                &req,
                format!("{step}").as_bytes(),
                headers(&[("x-ferry-kind", "progress")]),
            )
            .await;
        assert!(matches!(client.recv().await.frame(), Frame::Progress(_)));
        tokio::time::sleep(Duration::from_millis(150)).await; // the worker "working"
    }
    worker.reply(&req, b"done").await;
    assert_eq!(
        client.recv().await.reply(),
        ("long".into(), b"done".to_vec())
    );
    // A silent job still times out after the idle period.
    client
        .send(Frame::Request(Request {
            id: "silent",
            destination: &worker.queue,
            content_type: None,
            timeout_ms: Some(200),
            idle_timeout_ms: Some(200),
            headers: vec![],
            body: b"",
        }))
        .await;
    worker.next().await;
    assert_eq!(client.recv().await.error().1, "timeout");
}
