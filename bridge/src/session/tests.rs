//! The session loop without RabbitMQ: a socket of in-memory messages, the broker an
//! in-memory fake ([`crate::broker::fake`]); frame handling, limits, ordering and clean-up.
//! What needs the broker itself (queues, confirms, resume, restarts) is in `tests/it`.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use clap::Parser;
use ferry_protocol::headers::CancelReason;
use ferry_protocol::{ErrorCode, Frame, Hello, Request};
use futures_util::{Sink, Stream};
use tokio::sync::{Semaphore, mpsc};
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::{Error as WsError, Message};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::Shared;
use crate::auth::rpc::Peer;
use crate::broker::Broker;
use crate::broker::fake::{Fake, Published};
use crate::config::Config;
use crate::error::BridgeError;
use crate::stats::Stats;

/// The bridge's half of an in-memory WebSocket.
struct Socket {
    rx: mpsc::Receiver<Result<Message, WsError>>,
    tx: mpsc::Sender<Message>,
}

impl Stream for Socket {
    type Item = Result<Message, WsError>;
    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.rx.poll_recv(cx)
    }
}

impl Sink<Message> for Socket {
    type Error = WsError;
    fn poll_ready(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<Result<(), WsError>> {
        Poll::Ready(Ok(()))
    }
    fn start_send(self: Pin<&mut Self>, item: Message) -> Result<(), WsError> {
        self.tx
            .try_send(item)
            .map_err(|_| WsError::ConnectionClosed)
    }
    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<Result<(), WsError>> {
        Poll::Ready(Ok(()))
    }
    fn poll_close(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<Result<(), WsError>> {
        Poll::Ready(Ok(()))
    }
}

/// One session on the fake broker, driven as a client would.
struct Harness {
    fake: Arc<Fake>,
    shared: Arc<Shared>,
    to_bridge: Option<mpsc::Sender<Result<Message, WsError>>>,
    from_bridge: mpsc::Receiver<Message>,
    task: tokio::task::JoinHandle<()>,
    /// The session id WELCOME gave.
    session: String,
}

/// A bridge's shared state for `args` (after `--allow echo`), its sessions on `fake`.
fn shared(fake: &Arc<Fake>, args: &[&str]) -> Arc<Shared> {
    let argv = ["ferry-bridge", "--allow", "echo"].iter().chain(args);
    let config = match Config::try_parse_from(argv) {
        Ok(c) => c,
        Err(e) => panic!("test flags: {e}"),
    };
    let auth = match crate::auth::Auth::from_config(&config) {
        Ok(a) => a,
        Err(e) => panic!("test auth: {e}"),
    };
    Arc::new(Shared {
        allow: config.allowlist(),
        waiting: config.waiting_list(),
        exchanges: config.exchange_list(),
        broker: Broker::offline(),
        port: Arc::new(fake.clone()),
        stats: Arc::new(Stats::new()),
        shutdown: CancellationToken::new(),
        tracker: TaskTracker::new(),
        server_name: "ferry-bridge/test".into(),
        instance: "test".into(),
        holders: crate::resume::Holders::default(),
        auth,
        admission: Arc::new(crate::limits::Admission::new(8, 8, Vec::new())),
        connections: Arc::new(Semaphore::new(8)),
        csp: hyper::header::HeaderValue::from_static("default-src 'self'"),
        tls: None,
        otlp: None,
        config,
    })
}

impl Harness {
    /// A session opened (HELLO answered by WELCOME) on a bridge with `args`.
    async fn open(args: &[&str]) -> Self {
        let fake = Fake::new();
        let shared = shared(&fake, args);
        let (to_bridge, rx) = mpsc::channel(1024);
        let (tx, from_bridge) = mpsc::channel(1024);
        let peer = Peer {
            origin: None,
            addr: None,
        };
        let task = tokio::spawn(super::run(shared.clone(), Socket { rx, tx }, peer));
        let mut h = Self {
            fake,
            shared,
            to_bridge: Some(to_bridge),
            from_bridge,
            task,
            session: String::new(),
        };
        let hello = Hello {
            client: Some("session-test"),
            ..Hello::default()
        };
        h.send(Frame::Hello(hello).encode()).await;
        let welcome = h.next().await;
        match Frame::decode_from_bridge(&welcome) {
            Ok(Frame::Welcome(w)) => h.session = w.session.to_owned(),
            other => panic!("expected WELCOME, got {other:?}"),
        }
        h
    }

    async fn send(&self, bytes: Vec<u8>) {
        self.send_message(Message::Binary(bytes.into())).await;
    }

    async fn send_message(&self, m: Message) {
        let Some(tx) = &self.to_bridge else {
            panic!("the socket was dropped");
        };
        assert!(tx.send(Ok(m)).await.is_ok(), "the session ended");
    }

    async fn request(&self, id: &str, timeout_ms: Option<u32>, body: &[u8]) {
        let req = Request {
            id,
            destination: "echo",
            content_type: Some("text/plain"),
            timeout_ms,
            idle_timeout_ms: None,
            headers: Vec::new(),
            body,
        };
        self.send(Frame::Request(req).encode()).await;
    }

    /// A request answered by the worker and its REPLY received: the session serves.
    async fn round_trip(&mut self, id: &str) {
        self.request(id, None, b"").await;
        let call = self.fake.published().await;
        assert!(self.fake.answer(&call, None, b"answer"));
        assert_eq!(self.reply().await, (id.to_owned(), b"answer".to_vec()));
    }

    /// The next binary frame the bridge sends (pings skipped), within 5 s.
    async fn next(&mut self) -> Vec<u8> {
        loop {
            let m = tokio::time::timeout(Duration::from_secs(5), self.from_bridge.recv()).await;
            match m {
                Ok(Some(Message::Binary(b))) => return b.to_vec(),
                Ok(Some(Message::Ping(_) | Message::Pong(_))) => {}
                other => panic!("expected a frame, got {other:?}"),
            }
        }
    }

    /// The next frame, which must be a REPLY: `(id, body)`.
    async fn reply(&mut self) -> (String, Vec<u8>) {
        let f = self.next().await;
        match Frame::decode_from_bridge(&f) {
            Ok(Frame::Reply(r)) => (r.id.to_owned(), r.body.to_vec()),
            other => panic!("expected REPLY, got {other:?}"),
        }
    }

    /// The next frame, which must be an ERROR: `(id, code)`.
    async fn error(&mut self) -> (Option<String>, ErrorCode) {
        let f = self.next().await;
        match Frame::decode_from_bridge(&f) {
            Ok(Frame::Error(e)) => (e.id.map(str::to_owned), e.code),
            other => panic!("expected ERROR, got {other:?}"),
        }
    }

    /// Drops the socket and waits for the session to end.
    async fn drop_socket(&mut self) {
        self.to_bridge = None;
        let end = tokio::time::timeout(Duration::from_secs(5), &mut self.task).await;
        assert!(matches!(end, Ok(Ok(()))), "the session did not end");
        // What the session handed to the tracker (its queue's close) finishes too.
        self.shared.tracker.close();
        self.shared.tracker.wait().await;
    }

    fn pending(&self) -> u64 {
        self.shared.stats.snapshot().pending
    }

    fn queue(&self) -> String {
        format!("ferry.reply.{}", self.session)
    }
}

fn correlation_id(p: &Published) -> String {
    p.properties
        .correlation_id()
        .as_ref()
        .map_or(String::new(), |c| c.as_str().to_owned())
}

#[tokio::test]
async fn a_request_is_published_answered_and_leaves_nothing_behind() {
    let mut h = Harness::open(&[]).await;
    h.request("r1", None, b"ping").await;
    let call = h.fake.published().await;
    assert_eq!(call.to, "echo");
    assert_eq!(correlation_id(&call), "r1");
    let reply_to = call.properties.reply_to().as_ref().map(|r| r.as_str());
    assert_eq!(reply_to, Some(h.queue().as_str()));
    assert_eq!(&call.body[..], b"ping");
    assert_eq!(h.pending(), 1);

    assert!(h.fake.answer(&call, None, b"pong"));
    assert_eq!(h.reply().await, ("r1".into(), b"pong".to_vec()));
    assert_eq!(h.pending(), 0);
    assert_eq!(
        h.fake.seen(|s| s.acked.len()),
        1,
        "the reply is acknowledged"
    );

    h.send_message(Message::Close(Some(CloseFrame {
        code: CloseCode::Normal,
        reason: "".into(),
    })))
    .await;
    h.drop_socket().await;
    assert_eq!(h.fake.consumed(), 0, "the reply queue is closed");
    assert_eq!(h.fake.seen(|s| s.closed.clone()), vec![h.queue()]);
    assert_eq!(h.shared.stats.snapshot().sessions, 0);
}

#[tokio::test]
async fn replies_in_any_order_reach_the_request_they_answer() {
    let mut h = Harness::open(&[]).await;
    let mut calls = Vec::new();
    for i in 0..50 {
        h.request(&format!("r{i}"), None, format!("{i}").as_bytes())
            .await;
        calls.push(h.fake.published().await);
    }
    for call in calls.iter().rev() {
        let body = call.body.to_vec();
        assert!(h.fake.answer(call, None, &body));
    }
    for i in (0..50).rev() {
        let (id, body) = h.reply().await;
        assert_eq!(id, format!("r{i}"));
        assert_eq!(body, format!("{i}").into_bytes());
    }
    assert_eq!(h.pending(), 0);
}

#[tokio::test]
async fn max_inflight_refuses_the_call_over_it_and_frees_room_with_each_reply() {
    let mut h = Harness::open(&["--max-inflight", "2"]).await;
    h.request("a", None, b"").await;
    h.request("b", None, b"").await;
    let first = h.fake.published().await;
    let _second = h.fake.published().await;
    h.request("c", None, b"").await;
    assert_eq!(h.error().await, (Some("c".into()), ErrorCode::Overloaded));
    assert!(h.fake.answer(&first, None, b"1"));
    assert_eq!(h.reply().await.0, "a");
    h.request("c", None, b"").await;
    assert_eq!(correlation_id(&h.fake.published().await), "c");
    assert_eq!(h.pending(), 2);
}

#[tokio::test]
async fn a_pending_id_sent_again_is_refused_and_the_first_still_answered() {
    let mut h = Harness::open(&[]).await;
    h.request("same", None, b"one").await;
    let call = h.fake.published().await;
    h.request("same", None, b"two").await;
    assert_eq!(
        h.error().await,
        (Some("same".into()), ErrorCode::BadRequest)
    );
    assert!(h.fake.answer(&call, None, b"answer"));
    assert_eq!(h.reply().await, ("same".into(), b"answer".to_vec()));
}

#[tokio::test]
async fn bad_frames_are_answered_with_errors_and_the_session_serves_on() {
    let mut h = Harness::open(&[]).await;
    h.send_message(Message::Text("{}".into())).await;
    assert_eq!(h.error().await.1, BridgeError::TextFrame.code());
    h.send(vec![0xff, 0x00, 0x01]).await;
    assert_eq!(h.error().await.0, None);
    h.send(Frame::Hello(Hello::default()).encode()).await;
    assert_eq!(h.error().await.1, BridgeError::HelloTwice.code());
    h.round_trip("after").await;
}

#[tokio::test]
async fn a_reply_nobody_awaits_is_dropped_and_acknowledged() {
    let mut h = Harness::open(&[]).await;
    h.request("real", None, b"").await;
    let call = h.fake.published().await;
    let stray = lapin::BasicProperties::default().with_correlation_id("nobody".into());
    assert!(h.fake.deliver(&h.queue(), stray, b"stray".to_vec()));
    assert!(h.fake.answer(&call, None, b"mine"));
    // Only the real reply reaches the socket, after the stray one was handled.
    assert_eq!(h.reply().await, ("real".into(), b"mine".to_vec()));
    assert_eq!(h.shared.stats.snapshot().dropped_replies, 1);
    assert_eq!(h.fake.seen(|s| s.acked.len()), 2);
}

#[tokio::test]
async fn a_timeout_fails_the_request_tells_the_workers_and_drops_the_late_reply() {
    let mut h = Harness::open(&[]).await;
    h.request("slow", Some(50), b"").await;
    let call = h.fake.published().await;
    assert_eq!(h.error().await, (Some("slow".into()), ErrorCode::Timeout));
    assert_eq!(h.pending(), 0);
    let notices = h.fake.seen(|s| s.notices.clone());
    assert_eq!(notices.len(), 1);
    assert_eq!(&*notices[0].id, "slow");
    assert_eq!(notices[0].reason, CancelReason::Timeout);
    assert_eq!(notices[0].reply_to, h.queue());

    assert!(h.fake.answer(&call, None, b"too late"));
    h.round_trip("next").await;
    assert_eq!(h.shared.stats.snapshot().dropped_replies, 1);
}

#[tokio::test]
async fn without_a_broker_a_request_fails_at_once_and_the_next_one_goes_through() {
    let mut h = Harness::open(&[]).await;
    h.fake.set_up(false);
    h.request("away", None, b"").await;
    let down = (Some("away".into()), ErrorCode::BrokerUnavailable);
    assert_eq!(h.error().await, down);
    h.fake.set_up(true);
    h.round_trip("back").await;
}

#[tokio::test]
async fn a_refused_publish_fails_its_request_only() {
    let mut h = Harness::open(&[]).await;
    h.fake.refuse(Some(|| BridgeError::NoRoute("echo".into())));
    h.request("lost", None, b"").await;
    assert_eq!(h.error().await, (Some("lost".into()), ErrorCode::NoRoute));
    assert_eq!(h.pending(), 0);
    h.fake.refuse(None);
    h.round_trip("found").await;
}

#[tokio::test]
async fn a_dropped_socket_cancels_what_is_pending_and_closes_the_queue() {
    let mut h = Harness::open(&[]).await;
    h.request("p1", None, b"").await;
    h.request("p2", None, b"").await;
    let _ = h.fake.published().await;
    let _ = h.fake.published().await;
    h.drop_socket().await;
    assert_eq!(h.pending(), 0, "the pending map is empty after the session");
    let mut reasons = h.fake.seen(|s| {
        s.notices
            .iter()
            .map(|n| (n.id.to_string(), n.reason))
            .collect::<Vec<_>>()
    });
    reasons.sort_by(|a, b| a.0.cmp(&b.0));
    let disconnected = CancelReason::Disconnected;
    assert_eq!(
        reasons,
        vec![("p1".into(), disconnected), ("p2".into(), disconnected)]
    );
    assert_eq!(h.fake.consumed(), 0);
}

#[tokio::test]
async fn the_request_rate_limit_refuses_past_the_burst() {
    let mut h = Harness::open(&["--request-rate", "1", "--request-burst", "2"]).await;
    for id in ["a", "b"] {
        h.request(id, None, b"").await;
        let _ = h.fake.published().await;
    }
    h.request("c", None, b"").await;
    assert_eq!(h.error().await, (Some("c".into()), ErrorCode::RateLimited));
    assert_eq!(h.pending(), 2);
}
