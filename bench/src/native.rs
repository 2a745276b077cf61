//! Ferry, native: a Rust load client speaking the wire protocol over one WebSocket.
//!
//! One task owns the socket. It sends `concurrency` REQUEST frames, then answers every REPLY
//! with the next REQUEST from the same slot (the id is the slot number), batching writes while
//! more replies are already buffered and flushing before it waits.

use std::time::{Duration, Instant};

use ferry_protocol::{Frame, Request};
use futures_util::{FutureExt, SinkExt, StreamExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use crate::error::{BenchError, Result};
use crate::session;
use crate::stats::{LoadSpec, Recorder, RunStats, Window};

/// How long the client waits for any frame while requests are pending.
const REPLY_TIMEOUT: Duration = Duration::from_secs(30);
/// The timeout each request asks the bridge for, in milliseconds.
const REQUEST_TIMEOUT_MS: u32 = 30_000;

type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// Runs one closed-loop load through the bridge at `ws_url` to `destination`.
pub async fn run(ws_url: &str, destination: &str, spec: &LoadSpec) -> Result<RunStats> {
    let (mut ws, limits) = session::open(ws_url, None).await?;
    if (limits.max_inflight as usize) < spec.concurrency {
        return Err(BenchError::Protocol(format!(
            "bridge allows {} in flight, the load needs {}",
            limits.max_inflight, spec.concurrency
        )));
    }
    let ids: Vec<String> = (0..spec.concurrency).map(|i| i.to_string()).collect();
    let mut sent: Vec<Option<Instant>> = vec![None; spec.concurrency];
    let window = Window::start(spec);
    let mut rec = Recorder::new(window)?;
    for (slot, at) in sent.iter_mut().enumerate() {
        *at = Some(Instant::now());
        feed(&mut ws, &ids[slot], destination, &spec.body).await?;
    }
    ws.flush().await?;
    let mut inflight = spec.concurrency;
    let mut unflushed = false;
    while inflight > 0 {
        let next = match ws.next().now_or_never() {
            Some(next) => next,
            None => {
                if unflushed {
                    ws.flush().await?;
                    unflushed = false;
                }
                tokio::time::timeout(REPLY_TIMEOUT, ws.next())
                    .await
                    .map_err(|_| BenchError::Timeout(format!("{inflight} replies overdue")))?
            }
        };
        let data = match next {
            Some(Ok(Message::Binary(data))) => data,
            Some(Ok(Message::Close(frame))) => {
                return Err(BenchError::Protocol(format!("bridge closed: {frame:?}")));
            }
            Some(Ok(_)) => continue,
            Some(Err(e)) => return Err(e.into()),
            None => return Err(BenchError::Protocol("socket ended".into())),
        };
        let now = Instant::now();
        let (id, ok) = match Frame::decode_from_bridge(&data) {
            Ok(Frame::Reply(r)) => (r.id, true),
            Ok(Frame::Error(e)) => match e.id {
                Some(id) => (id, false),
                None => {
                    return Err(BenchError::Protocol(format!(
                        "connection error: {} ({})",
                        e.message,
                        e.code.as_str()
                    )));
                }
            },
            Ok(Frame::Progress(_)) => continue,
            Ok(other) => {
                return Err(BenchError::Protocol(format!(
                    "unexpected {} frame",
                    other.kind_name()
                )));
            }
            Err(e) => return Err(BenchError::Protocol(format!("bad frame: {e}"))),
        };
        let slot = id.parse::<usize>().ok().filter(|s| *s < spec.concurrency);
        let Some(slot) = slot else {
            return Err(BenchError::Protocol(format!("reply to unknown id {id:?}")));
        };
        let Some(at) = sent[slot].take() else {
            return Err(BenchError::Protocol(format!("duplicate reply to {id}")));
        };
        if ok {
            rec.reply(at, now);
        } else {
            rec.error();
        }
        inflight -= 1;
        if window.open(now) {
            sent[slot] = Some(Instant::now());
            feed(&mut ws, &ids[slot], destination, &spec.body).await?;
            inflight += 1;
            unflushed = true;
        }
    }
    let _ = ws.close(None).await;
    Ok(rec.finish(spec.duration))
}

/// Queues one REQUEST frame on the socket (written at the next flush).
async fn feed(ws: &mut Ws, id: &str, destination: &str, body: &[u8]) -> Result<()> {
    let frame = Frame::Request(Request {
        id,
        destination,
        content_type: Some("application/json"),
        timeout_ms: Some(REQUEST_TIMEOUT_MS),
        idle_timeout_ms: None,
        headers: Vec::new(),
        body,
    });
    ws.feed(Message::Binary(frame.encode().into())).await?;
    Ok(())
}
