//! Bad input never takes the bridge down or disturbs other sockets: malformed frames, frames
//! over the limit, text frames, bad and reserved headers, HELLO rules, subprotocols, origins.

use crate::support::{Client, TestBridge, Worker, closed, raw_socket, unique};
use ferry_protocol::{Frame, Request};
use futures_util::SinkExt;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;

fn with_header<'a>(id: &'a str, dest: &'a str, name: &'a str) -> Frame<'a> {
    Frame::Request(Request {
        id,
        destination: dest,
        content_type: None,
        timeout_ms: Some(5_000),
        idle_timeout_ms: None,
        headers: vec![(name, "v")],
        body: b"",
    })
}

/// Proves the socket still works: a full request/reply round trip.
async fn still_works(client: &mut Client, worker: &mut Worker, id: &str) {
    client
        .request(id, &worker.queue, b"ping", Some(5_000))
        .await;
    let req = worker.next().await;
    worker.reply(&req, b"pong").await;
    assert_eq!(
        client.recv().await.reply(),
        (id.to_owned(), b"pong".to_vec())
    );
}

#[tokio::test]
async fn malformed_text_and_bad_headers_get_bad_request_and_the_socket_lives_on() {
    let bridge = TestBridge::start(|_| {}).await;
    let mut worker = Worker::start(&unique("bad")).await;
    let mut client = Client::connect(&bridge.url()).await;

    client.send_raw(vec![0x02, 0x01, 0x00]).await; // truncated field
    let (id, code, message, ..) = client.recv().await.error();
    assert_eq!((id, code.as_str()), (None, "bad_request"));
    assert!(message.contains("truncated"), "{message}");

    client.send_raw(vec![0x7f, 0x00]).await;
    let (_, code, message, ..) = client.recv().await.error();
    assert_eq!(code, "bad_request");
    assert!(message.contains("unknown frame kind"), "{message}");

    client.ws.send(Message::text("{\"id\":1}")).await.unwrap();
    let (_, code, message, ..) = client.recv().await.error();
    assert_eq!(code, "bad_request");
    assert_eq!(message, "ferry.v1 uses binary frames");

    client
        .send(with_header("h1", &worker.queue, "Bad Name"))
        .await;
    let (id, code, ..) = client.recv().await.error();
    assert_eq!((id.as_deref(), code.as_str()), (Some("h1"), "bad_request"));

    client
        .send(with_header("h2", &worker.queue, "x-ferry-deadline"))
        .await;
    let (id, code, ..) = client.recv().await.error();
    assert_eq!((id.as_deref(), code.as_str()), (Some("h2"), "forbidden"));

    client.request("bad id", &worker.queue, b"", None).await;
    let (id, code, ..) = client.recv().await.error();
    assert_eq!((id, code.as_str()), (None, "bad_request"));

    client.send(Frame::Hello(Default::default())).await;
    assert_eq!(client.recv().await.error().1, "bad_request");

    still_works(&mut client, &mut worker, "ok").await;
    assert_eq!(bridge.stats.snapshot().requests_total, 1);
}

#[tokio::test]
async fn too_large_frames_are_refused_without_disturbing_other_sockets() {
    let bridge = TestBridge::start(|c| c.max_frame_bytes = 4096).await;
    let mut worker = Worker::start(&unique("large")).await;
    let mut bystander = Client::connect(&bridge.url()).await;
    let mut client = Client::connect(&bridge.url()).await;

    // Over the limit but readable: too_large naming the request; the socket stays open.
    client
        .request("big", &worker.queue, &[b'x'; 5000], None)
        .await;
    let (id, code, ..) = client.recv().await.error();
    assert_eq!((id.as_deref(), code.as_str()), (Some("big"), "too_large"));
    still_works(&mut client, &mut worker, "after-big").await;

    // Far over the limit: too_large, then close 1009.
    client
        .request("huge", &worker.queue, &[b'x'; 20_000], None)
        .await;
    let (_, code, ..) = client.recv().await.error();
    assert_eq!(code, "too_large");
    let close = client.closed().await.expect("close frame");
    assert_eq!(close.code, CloseCode::Size);

    still_works(&mut bystander, &mut worker, "bystander").await;
    bridge
        .until("pending back to zero", |s| s.pending == 0)
        .await;
}

#[tokio::test]
async fn first_frame_must_be_hello() {
    let bridge = TestBridge::start(|_| {}).await;
    let mut ws = raw_socket(&bridge.url(), &["ferry.v1"]).await;
    let req = crate::support::request("a", "test.x", b"", None).encode();
    ws.send(Message::Binary(req.into())).await.unwrap();
    let msg = crate::support::closed_after_error(&mut ws).await;
    assert_eq!(msg.0, "bad_request");
    assert!(msg.1.contains("first frame must be hello"), "{}", msg.1);
    assert_eq!(msg.2.expect("close").code, CloseCode::Policy);
}

#[tokio::test]
async fn hello_must_come_in_time() {
    let bridge =
        TestBridge::start(|c| c.hello_timeout = std::time::Duration::from_millis(100)).await;
    let mut ws = raw_socket(&bridge.url(), &["ferry.v1"]).await;
    let msg = crate::support::closed_after_error(&mut ws).await;
    assert_eq!(msg.0, "bad_request");
    assert_eq!(msg.2.expect("close").code, CloseCode::Policy);
}

#[tokio::test]
async fn unknown_or_missing_subprotocol_is_closed_with_a_reason() {
    let bridge = TestBridge::start(|_| {}).await;
    let mut ws = raw_socket(&bridge.url(), &["ferry.v9"]).await;
    let close = closed(&mut ws).await.expect("close frame");
    assert_eq!(close.code, CloseCode::Protocol);
    assert_eq!(
        close.reason.as_str(),
        "unsupported protocol ferry.v9; this bridge speaks ferry.v1"
    );
    let mut ws = raw_socket(&bridge.url(), &[]).await;
    let close = closed(&mut ws).await.expect("close frame");
    assert_eq!(close.code, CloseCode::Protocol);
    assert_eq!(
        close.reason.as_str(),
        "missing Sec-WebSocket-Protocol: ferry.v1"
    );
}

#[tokio::test]
async fn origin_allowlist_refuses_with_403() {
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    let bridge =
        TestBridge::start(|c| c.allowed_origins = vec!["https://app.example".into()]).await;
    let mut req = bridge.url().into_client_request().unwrap();
    req.headers_mut()
        .insert("sec-websocket-protocol", "ferry.v1".parse().unwrap());
    req.headers_mut()
        .insert("origin", "https://evil.example".parse().unwrap());
    match tokio_tungstenite::connect_async(req).await {
        Err(tokio_tungstenite::tungstenite::Error::Http(resp)) => {
            assert_eq!(resp.status(), 403);
        }
        other => panic!("expected 403, got {other:?}"),
    }
    let mut req = bridge.url().into_client_request().unwrap();
    req.headers_mut()
        .insert("sec-websocket-protocol", "ferry.v1".parse().unwrap());
    req.headers_mut()
        .insert("origin", "https://app.example".parse().unwrap());
    assert!(tokio_tungstenite::connect_async(req).await.is_ok());
}
