//! The session tests' harness: an in-memory socket, a bridge's shared state on the fake
//! broker, and one session driven as a client would drive it.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use clap::Parser;
use ferry_protocol::{ErrorCode, Frame, Hello, Request};
use futures_util::{Sink, Stream};
use tokio::sync::{Semaphore, mpsc};
use tokio_tungstenite::tungstenite::{Error as WsError, Message};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::Shared;
use crate::auth::rpc::Peer;
use crate::broker::Broker;
use crate::broker::fake::{Fake, Published};
use crate::config::Config;
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
pub(super) struct Harness {
    pub(super) fake: Arc<Fake>,
    pub(super) shared: Arc<Shared>,
    to_bridge: Option<mpsc::Sender<Result<Message, WsError>>>,
    from_bridge: mpsc::Receiver<Message>,
    task: tokio::task::JoinHandle<()>,
    /// The session id WELCOME gave.
    pub(super) session: String,
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
    pub(super) async fn open(args: &[&str]) -> Self {
        Self::open_with(args, false).await
    }

    /// A resumable session (the client ACKs final replies) on a bridge with `args`.
    pub(super) async fn open_resumable(args: &[&str]) -> Self {
        Self::open_with(args, true).await
    }

    async fn open_with(args: &[&str], acks: bool) -> Self {
        let fake = Fake::new();
        let shared = shared(&fake, args);
        let (to_bridge, rx) = mpsc::channel(1024);
        let (tx, from_bridge) = mpsc::channel(1024);
        let peer = Peer {
            origin: None,
            addr: None,
        };
        let task = tokio::spawn(crate::session::run(shared.clone(), Socket { rx, tx }, peer));
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
            acks,
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

    pub(super) async fn send(&self, bytes: Vec<u8>) {
        self.send_message(Message::Binary(bytes.into())).await;
    }

    pub(super) async fn send_message(&self, m: Message) {
        let Some(tx) = &self.to_bridge else {
            panic!("the socket was dropped");
        };
        assert!(tx.send(Ok(m)).await.is_ok(), "the session ended");
    }

    pub(super) async fn request(&self, id: &str, timeout_ms: Option<u32>, body: &[u8]) {
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
    pub(super) async fn round_trip(&mut self, id: &str) {
        self.request(id, None, b"").await;
        let call = self.fake.published().await;
        assert!(self.fake.answer(&call, None, b"answer"));
        assert_eq!(self.reply().await, (id.to_owned(), b"answer".to_vec()));
    }

    /// The next binary frame the bridge sends (pings skipped), within 5 s.
    pub(super) async fn next(&mut self) -> Vec<u8> {
        loop {
            let m = tokio::time::timeout(Duration::from_secs(5), self.from_bridge.recv()).await;
            match m {
                Ok(Some(Message::Binary(b))) => return b.to_vec(),
                Ok(Some(Message::Ping(_) | Message::Pong(_))) => {}
                other => panic!("expected a frame, got {other:?}"),
            }
        }
    }

    /// True when no frame (pings aside) comes within `wait`: only to prove an absence.
    pub(super) async fn nothing_within(&mut self, wait: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            match tokio::time::timeout_at(deadline, self.from_bridge.recv()).await {
                Err(_) => return true,
                Ok(Some(Message::Ping(_) | Message::Pong(_))) => {}
                Ok(_) => return false,
            }
        }
    }

    /// The next frame, which must be a REPLY: `(id, body)`.
    pub(super) async fn reply(&mut self) -> (String, Vec<u8>) {
        let f = self.next().await;
        match Frame::decode_from_bridge(&f) {
            Ok(Frame::Reply(r)) => (r.id.to_owned(), r.body.to_vec()),
            other => panic!("expected REPLY, got {other:?}"),
        }
    }

    /// The next frame, which must be an ERROR: `(id, code)`.
    pub(super) async fn error(&mut self) -> (Option<String>, ErrorCode) {
        let f = self.next().await;
        match Frame::decode_from_bridge(&f) {
            Ok(Frame::Error(e)) => (e.id.map(str::to_owned), e.code),
            other => panic!("expected ERROR, got {other:?}"),
        }
    }

    /// Drops the socket and waits for the session to end.
    pub(super) async fn drop_socket(&mut self) {
        self.to_bridge = None;
        let end = tokio::time::timeout(Duration::from_secs(5), &mut self.task).await;
        assert!(matches!(end, Ok(Ok(()))), "the session did not end");
        // What the session handed to the tracker (its queue's close) finishes too.
        self.shared.tracker.close();
        self.shared.tracker.wait().await;
    }

    pub(super) fn pending(&self) -> u64 {
        self.shared.stats.snapshot().pending
    }

    pub(super) fn queue(&self) -> String {
        format!("ferry.reply.{}", self.session)
    }
}

/// The `correlation_id` a call was published with.
pub(super) fn correlation_id(p: &Published) -> String {
    p.properties
        .correlation_id()
        .as_ref()
        .map_or(String::new(), |c| c.as_str().to_owned())
}
