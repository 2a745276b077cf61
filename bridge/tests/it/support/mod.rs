//! Shared helpers for the bridge's integration tests: an in-process bridge on port 0, a
//! tokio-tungstenite client speaking ferry.v1, and a lapin test worker on a unique queue.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use ferry_bridge::{Bridge, Config, Stats};
use ferry_protocol::{Frame, Hello, Request};
use futures_util::{SinkExt, StreamExt};
use lapin::message::Delivery;
use lapin::options::{
    BasicConsumeOptions, BasicPublishOptions, QueueDeclareOptions, QueueDeleteOptions,
};
use lapin::types::{AMQPValue, FieldTable};
use lapin::{BasicProperties, Channel, Connection, ConnectionProperties, Consumer};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};
use tokio_util::sync::CancellationToken;

pub mod certs;
pub mod restart;

/// The broker the tests use: `FERRY_AMQP_URL`, else the local default.
pub fn amqp_url() -> &'static str {
    static URL: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    URL.get_or_init(|| {
        std::env::var("FERRY_AMQP_URL")
            .unwrap_or_else(|_| "amqp://guest:guest@127.0.0.1:5672/%2f".to_owned())
    })
}

/// [`amqp_url()`] with another user and password.
pub fn amqp_url_as(user: &str, password: &str) -> String {
    let url = amqp_url();
    let (scheme, rest) = url.split_once("://").unwrap_or(("amqp", url));
    let host = rest.rsplit_once('@').map_or(rest, |(_, h)| h);
    format!("{scheme}://{user}:{password}@{host}")
}
/// Longest any single test step may wait for an event.
pub const STEP: Duration = Duration::from_secs(10);
/// The ACCEPTED frame's kind byte.
const ACCEPTED: u8 = ferry_protocol::frame::kind::ACCEPTED;

/// A unique queue name for this test run.
pub fn unique(prefix: &str) -> String {
    format!("test.{prefix}.{}", uuid::Uuid::new_v4().simple())
}

/// A running in-process bridge.
pub struct TestBridge {
    pub addr: std::net::SocketAddr,
    /// The admin listener (`/metrics`).
    pub admin: std::net::SocketAddr,
    pub instance: String,
    pub stats: Arc<Stats>,
    pub shutdown: CancellationToken,
    pub task: Option<tokio::task::JoinHandle<()>>,
    /// What SIGHUP calls in the binary.
    pub reloader: ferry_bridge::Reloader,
}

impl TestBridge {
    /// Starts a bridge allowing `test.*` with `tweak` applied, and waits for the broker.
    pub async fn start(tweak: impl FnOnce(&mut Config)) -> Self {
        let mut cfg = Config::with_defaults("127.0.0.1:0".parse().unwrap(), &["test.*"]);
        cfg.amqp_url = vec![amqp_url().into()];
        tweak(&mut cfg);
        let bridge = Bridge::bind(cfg).await.unwrap();
        let addr = bridge.local_addr();
        let admin = bridge.admin_addr();
        let stats = bridge.stats();
        let instance = bridge.instance().to_owned();
        let reloader = bridge.reloader();
        tokio::time::timeout(STEP, bridge.broker().wait_ready())
            .await
            .expect("broker ready");
        let shutdown = CancellationToken::new();
        let task = tokio::spawn(bridge.run(shutdown.clone()));
        Self {
            addr,
            admin,
            instance,
            stats,
            shutdown,
            task: Some(task),
            reloader,
        }
    }

    /// Waits for `run` to return (after `shutdown` was cancelled).
    pub async fn stopped(&mut self) {
        let task = self.task.take().expect("running");
        tokio::time::timeout(STEP, task).await.unwrap().unwrap();
    }

    pub fn url(&self) -> String {
        format!("ws://{}/ws", self.addr)
    }

    /// Waits (polling the counters, there is no event for it) until `f` holds.
    pub async fn until(&self, what: &str, f: impl Fn(&ferry_bridge::StatsSnapshot) -> bool) {
        let deadline = tokio::time::Instant::now() + STEP;
        loop {
            if f(&self.stats.snapshot()) {
                return;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "timed out waiting for {what}: {:?}",
                self.stats.snapshot()
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// Waits (polling `/metrics`) until it has the line `want` (e.g. a pool's gauge).
    pub async fn until_metric(&self, want: &str) {
        let want = format!("{want}\n");
        let deadline = tokio::time::Instant::now() + STEP;
        loop {
            let metrics = http_get(self.admin, "/metrics").await;
            if metrics.contains(&want) {
                return;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "{want:?} not in {metrics}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

impl Drop for TestBridge {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

pub type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// A WebSocket upgrade request for `url` offering `ferry.v1`.
pub fn ws_request(url: &str) -> tokio_tungstenite::tungstenite::handshake::client::Request {
    let mut req = url.into_client_request().unwrap();
    req.headers_mut().insert(
        "sec-websocket-protocol",
        HeaderValue::from_static("ferry.v1"),
    );
    req
}

/// Opens a raw socket offering `protocols` (none when empty).
pub async fn raw_socket(url: &str, protocols: &[&str]) -> Ws {
    let mut req = url.into_client_request().unwrap();
    if !protocols.is_empty() {
        req.headers_mut().insert(
            "sec-websocket-protocol",
            HeaderValue::from_str(&protocols.join(", ")).unwrap(),
        );
    }
    // No Nagle: a client that writes two frames in a row (an ACK, then a request) must not
    // wait for the delayed ACK of the first, as browsers and Node's ws do not.
    let (ws, _resp) = tokio_tungstenite::connect_async_with_config(req, None, true)
        .await
        .unwrap();
    ws
}

/// A frame received from the bridge (owns its bytes; decode with [`Received::frame`]).
#[derive(Debug, Clone)]
pub struct Received(pub Bytes);

impl Received {
    pub fn frame(&self) -> Frame<'_> {
        Frame::decode(&self.0).expect("bridge sent a valid frame")
    }
    /// `(id, code, message, remote_code, details)` of an ERROR frame; panics otherwise.
    pub fn error(&self) -> (Option<String>, String, String, Option<String>, Vec<u8>) {
        match self.frame() {
            Frame::Error(e) => (
                e.id.map(str::to_owned),
                e.code.as_str().to_owned(),
                e.message.to_owned(),
                e.remote_code.map(str::to_owned),
                e.details.to_vec(),
            ),
            other => panic!("expected an error frame, got {other:?}"),
        }
    }
    /// `(id, body)` of a REPLY frame; panics otherwise.
    pub fn reply(&self) -> (String, Vec<u8>) {
        match self.frame() {
            Frame::Reply(r) => (r.id.to_owned(), r.body.to_vec()),
            other => panic!("expected a reply frame, got {other:?}"),
        }
    }
}

/// A ferry.v1 test client.
pub struct Client {
    pub ws: Ws,
    pub session: String,
    /// ACCEPTED frames seen (skipped by `recv`).
    pub accepted: usize,
}

impl Client {
    /// Connects, says HELLO and waits for WELCOME.
    pub async fn connect(url: &str) -> Self {
        let hello = Hello {
            client: Some("bridge-tests"),
            ..Hello::default()
        };
        Self::hello(url, hello).await.0
    }

    /// Connects with this HELLO; returns the client and the WELCOME's resume token and
    /// `resumed` flag.
    pub async fn hello(url: &str, hello: Hello<'_>) -> (Self, Option<String>, bool) {
        let mut ws = raw_socket(url, &["ferry.v1"]).await;
        ws.send(Message::Binary(Frame::Hello(hello).encode().into()))
            .await
            .unwrap();
        let mut c = Self {
            ws,
            session: String::new(),
            accepted: 0,
        };
        let welcome = c.recv().await;
        match welcome.frame() {
            Frame::Welcome(w) => {
                c.session = w.session.to_owned();
                (c, w.resume_token.map(str::to_owned), w.resumed)
            }
            other => panic!("expected welcome, got {other:?}"),
        }
    }

    pub async fn send_raw(&mut self, bytes: Vec<u8>) {
        self.ws.send(Message::Binary(bytes.into())).await.unwrap();
    }

    pub async fn send(&mut self, frame: Frame<'_>) {
        self.send_raw(frame.encode()).await;
    }

    /// Sends a REQUEST.
    pub async fn request(&mut self, id: &str, dest: &str, body: &[u8], timeout_ms: Option<u32>) {
        self.send(request(id, dest, body, timeout_ms)).await;
    }

    /// The next binary frame (panics after [`STEP`] or on close).
    pub async fn recv(&mut self) -> Received {
        loop {
            let msg = tokio::time::timeout(STEP, self.ws.next())
                .await
                .expect("a frame within the step timeout")
                .expect("socket open")
                .expect("socket ok");
            match msg {
                // ACCEPTED only reports, like HEARTBEAT; a test asks for it with `accepted`.
                Message::Binary(b) if b.first() == Some(&ACCEPTED) => {
                    self.accepted += 1;
                }
                Message::Binary(b) => return Received(b),
                Message::Close(c) => panic!("socket closed: {c:?}"),
                _ => {}
            }
        }
    }

    /// True when no data frame arrives within `wait` (used only to prove an absence). Keeps
    /// reading meanwhile, so pings are answered.
    pub async fn nothing_within(&mut self, wait: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            match tokio::time::timeout_at(deadline, self.ws.next()).await {
                Err(_) => return true,
                Ok(Some(Ok(Message::Ping(_) | Message::Pong(_)))) => {}
                Ok(Some(Ok(Message::Binary(b)))) if b.first() == Some(&ACCEPTED) => {
                    self.accepted += 1;
                }
                Ok(other) => panic!("unexpected {other:?}"),
            }
        }
    }

    /// Waits (within the step timeout) for the next ACCEPTED frame; a data frame before it
    /// fails the test.
    pub async fn until_accepted(&mut self) {
        let before = self.accepted;
        let deadline = tokio::time::Instant::now() + STEP;
        while self.accepted == before {
            match tokio::time::timeout_at(deadline, self.ws.next()).await {
                Err(_) => panic!("no ACCEPTED within {STEP:?}"),
                Ok(Some(Ok(Message::Binary(b)))) if b.first() == Some(&ACCEPTED) => {
                    self.accepted += 1;
                }
                Ok(Some(Ok(Message::Ping(_) | Message::Pong(_)))) => {}
                Ok(other) => panic!("unexpected {other:?}"),
            }
        }
    }

    /// Closes the socket as a client's `close()` does (1000): the session ends, it is not
    /// left to be resumed.
    pub async fn close_normally(&mut self) -> Result<(), tokio_tungstenite::tungstenite::Error> {
        use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
        let normal = CloseFrame {
            code: CloseCode::Normal,
            reason: "".into(),
        };
        self.ws.close(Some(normal)).await
    }

    /// Waits for the close frame and returns it.
    pub async fn closed(&mut self) -> Option<CloseFrame> {
        closed(&mut self.ws).await
    }
}

/// Waits for a close frame on `ws`, skipping data frames.
pub async fn closed(ws: &mut Ws) -> Option<CloseFrame> {
    loop {
        let msg = tokio::time::timeout(STEP, ws.next())
            .await
            .expect("close within the step timeout");
        match msg {
            Some(Ok(Message::Close(c))) => return c,
            Some(Ok(_)) => {}
            Some(Err(_)) | None => return None,
        }
    }
}

pub fn request<'a>(
    id: &'a str,
    dest: &'a str,
    body: &'a [u8],
    timeout_ms: Option<u32>,
) -> Frame<'a> {
    Frame::Request(Request {
        id,
        destination: dest,
        content_type: Some("application/json"),
        timeout_ms,
        idle_timeout_ms: None,
        headers: vec![],
        body,
    })
}

/// A worker on a unique queue, driven step by step by the test.
pub struct Worker {
    pub conn: Connection,
    pub channel: Channel,
    pub queue: String,
    consumer: Option<Consumer>,
    _cleanup: Cleanup,
}

impl Worker {
    /// Declares `queue` (deleted when the worker is dropped) without consuming it yet.
    pub async fn declare(queue: &str) -> Self {
        let conn = Connection::connect(amqp_url(), ConnectionProperties::default())
            .await
            .unwrap();
        let channel = conn.create_channel().await.unwrap();
        let mut args = FieldTable::default();
        args.insert("x-expires".into(), AMQPValue::LongInt(120_000));
        channel
            .queue_declare(queue.into(), QueueDeclareOptions::default(), args)
            .await
            .unwrap();
        Self {
            conn,
            channel,
            queue: queue.to_owned(),
            consumer: None,
            _cleanup: Cleanup(vec![queue.to_owned()]),
        }
    }

    /// Declares `queue` and consumes it.
    pub async fn start(queue: &str) -> Self {
        let mut w = Self::declare(queue).await;
        w.consume().await;
        w
    }

    pub async fn consume(&mut self) {
        let opts = BasicConsumeOptions {
            no_ack: true,
            ..BasicConsumeOptions::default()
        };
        self.consumer = Some(
            self.channel
                .basic_consume(
                    self.queue.as_str().into(),
                    "".into(),
                    opts,
                    FieldTable::default(),
                )
                .await
                .unwrap(),
        );
    }

    /// The next request, however long it takes (for workers that run in a task).
    pub async fn next_forever(&mut self) -> Delivery {
        let consumer = self.consumer.as_mut().expect("consuming");
        consumer
            .next()
            .await
            .expect("consumer open")
            .expect("delivery ok")
    }

    /// The next request delivered to the worker.
    pub async fn next(&mut self) -> Delivery {
        let consumer = self.consumer.as_mut().expect("consuming");
        tokio::time::timeout(STEP, consumer.next())
            .await
            .expect("a request within the step timeout")
            .expect("consumer open")
            .expect("delivery ok")
    }

    /// Replies to `req` the way any AMQP RPC server does, plus `headers`.
    pub async fn reply_with(&self, req: &Delivery, body: &[u8], headers: FieldTable) {
        let props = BasicProperties::default()
            .with_correlation_id(req.properties.correlation_id().clone().unwrap())
            .with_content_type("application/json".into())
            .with_headers(headers);
        let reply_to = req.properties.reply_to().clone().unwrap();
        self.channel
            .basic_publish(
                "".into(),
                reply_to,
                BasicPublishOptions::default(),
                body,
                props,
            )
            .await
            .unwrap();
    }

    pub async fn reply(&self, req: &Delivery, body: &[u8]) {
        self.reply_with(req, body, FieldTable::default()).await;
    }

    /// Messages waiting in the queue.
    pub async fn depth(&self) -> u32 {
        let opts = QueueDeclareOptions {
            passive: true,
            ..QueueDeclareOptions::default()
        };
        self.channel
            .queue_declare(self.queue.as_str().into(), opts, FieldTable::default())
            .await
            .unwrap()
            .message_count()
    }
}

/// Deletes its queues when dropped, so a test cleans up on every exit path, a failed
/// assertion included. The delete runs on a thread, runtime and connection of its own: the
/// test's runtime may be the one dropping it, and cannot be blocked on.
#[derive(Default)]
pub struct Cleanup(pub Vec<String>);

impl Drop for Cleanup {
    fn drop(&mut self) {
        let queues = std::mem::take(&mut self.0);
        if queues.is_empty() {
            return;
        }
        let deleted = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("a runtime for the clean-up");
            rt.block_on(async {
                let conn = Connection::connect(amqp_url(), ConnectionProperties::default())
                    .await
                    .expect("the broker, to delete the test's queues");
                let ch = conn.create_channel().await.expect("a channel");
                for q in &queues {
                    let opts = QueueDeleteOptions::default();
                    let _ = ch.queue_delete(q.as_str().into(), opts).await;
                }
                let _ = conn.close(200, "bye".into()).await;
            });
        })
        .join();
        if deleted.is_err() && !std::thread::panicking() {
            panic!("the test's queues could not be deleted");
        }
    }
}

/// A text header value for a worker reply.
pub fn headers(pairs: &[(&str, &str)]) -> FieldTable {
    let mut t = FieldTable::default();
    for (k, v) in pairs {
        t.insert((*k).into(), AMQPValue::LongString((*v).into()));
    }
    t
}

/// Writes `bytes` on a new TCP connection and reads until the bridge closes it: what arrived,
/// or `None` if it was still open after [`STEP`].
pub async fn raw_exchange(addr: std::net::SocketAddr, bytes: &[u8]) -> Option<Vec<u8>> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut tcp = TcpStream::connect(addr).await.unwrap();
    tcp.write_all(bytes).await.unwrap();
    let mut out = Vec::new();
    let read = tokio::time::timeout(STEP, tcp.read_to_end(&mut out)).await;
    read.ok().map(|_| out)
}

/// Sends HELLO with `token` on a new socket and expects an ERROR, then the close:
/// `(code, message, close frame)`.
pub async fn hello_refused(url: &str, token: Option<&str>) -> (String, String, Option<CloseFrame>) {
    let mut ws = raw_socket(url, &["ferry.v1"]).await;
    let hello = Hello {
        token,
        ..Hello::default()
    };
    ws.send(Message::Binary(Frame::Hello(hello).encode().into()))
        .await
        .unwrap();
    closed_after_error(&mut ws).await
}

/// A plain HTTP/1.1 GET; returns the whole response as text.
pub async fn http_get(addr: std::net::SocketAddr, path: &str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut tcp = TcpStream::connect(addr).await.unwrap();
    let req = format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    tcp.write_all(req.as_bytes()).await.unwrap();
    let mut out = Vec::new();
    tokio::time::timeout(STEP, tcp.read_to_end(&mut out))
        .await
        .unwrap()
        .unwrap();
    String::from_utf8_lossy(&out).into_owned()
}

/// Reads an ERROR frame and then the close: `(code, message, close frame)`.
pub async fn closed_after_error(ws: &mut Ws) -> (String, String, Option<CloseFrame>) {
    let msg = tokio::time::timeout(STEP, ws.next())
        .await
        .expect("a frame")
        .expect("open")
        .expect("ok");
    let Message::Binary(b) = msg else {
        panic!("expected an error frame, got {msg:?}");
    };
    let (_, code, message, ..) = Received(b).error();
    (code, message, closed(ws).await)
}

/// Starts a worker task on `queue` that echoes every request body back.
pub async fn echo_worker(queue: &str) -> (Worker, tokio::task::JoinHandle<()>) {
    let mut w = Worker::start(queue).await;
    let consumer = w.consumer.take().unwrap();
    let task = echo(w.channel.clone(), consumer);
    (w, task)
}

/// Answers every delivery of `consumer` with its own body, on `channel` (any connection's).
pub fn echo(channel: Channel, mut consumer: Consumer) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        while let Some(Ok(d)) = consumer.next().await {
            let props = BasicProperties::default()
                .with_correlation_id(d.properties.correlation_id().clone().unwrap());
            let reply_to = d.properties.reply_to().clone().unwrap();
            let _ = channel
                .basic_publish(
                    "".into(),
                    reply_to,
                    BasicPublishOptions::default(),
                    &d.data,
                    props,
                )
                .await;
        }
    })
}
