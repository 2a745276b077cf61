//! The writer half of a socket: one task per connection that writes queued frames (bounded
//! queue, in frames and in bytes (`--max-outbound-bytes`) = backpressure on the session, whose
//! replies then wait in RabbitMQ; frames already queued go out with one flush), pings
//! every `--ping-interval` (with a HEARTBEAT frame too, for clients that watch for one) and
//! closes a socket that did not answer the previous ping.

use std::future::{Future, Ready};
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use bytes::Bytes;
use futures_util::future::Either;
use futures_util::{Sink, SinkExt};
use tokio::sync::mpsc::error::TrySendError;
use tokio::sync::{OwnedSemaphorePermit, Semaphore, TryAcquireError, mpsc};
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::{Error as WsError, Message};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// A frame waiting for room in the socket's queue or byte budget.
type Waiting<'a> = Pin<Box<dyn Future<Output = bool> + Send + 'a>>;

/// Frames queued per socket before the session waits for the writer.
const QUEUE: usize = 32;
/// Shortest time one write may take before the peer counts as stalled.
const MIN_WRITE_TIMEOUT: Duration = Duration::from_secs(10);

enum Out {
    /// A frame and its share of the byte budget (given back once written).
    Frame(Vec<u8>, OwnedSemaphorePermit),
    Close(CloseCode, String),
}

/// The session's handle on its writer.
pub struct Outbound {
    tx: mpsc::Sender<Out>,
    /// The byte budget in KiB: a frame takes its size before it is queued.
    budget: Arc<Semaphore>,
    budget_kib: u32,
    live: Arc<Liveness>,
    /// Cancelled when the writer stopped (write error, ping timeout, close sent).
    pub dead: CancellationToken,
}

impl Outbound {
    /// Spawns the writer for `sink` on `tracker`; it counts the bytes it writes in `sent`.
    pub fn spawn<S>(
        sink: S,
        ping_interval: Duration,
        budget: u32,
        tracker: &TaskTracker,
        sent: prometheus::IntCounter,
    ) -> Self
    where
        S: Sink<Message, Error = WsError> + Unpin + Send + 'static,
    {
        let (tx, rx) = mpsc::channel(QUEUE);
        let live = Arc::new(Liveness {
            pong: AtomicBool::new(true),
            heartbeat: AtomicBool::new(false),
        });
        let dead = CancellationToken::new();
        tracker.spawn(write_loop(
            sink,
            rx,
            ping_interval,
            live.clone(),
            dead.clone(),
            sent,
        ));
        let budget_kib = (budget / 1024).max(1);
        Self {
            tx,
            budget: Arc::new(Semaphore::new(budget_kib as usize)),
            budget_kib,
            live,
            dead,
        }
    }

    /// From now on, send a HEARTBEAT frame with every ping (the client asked for them).
    pub fn heartbeat(&self) {
        self.live.heartbeat.store(true, Ordering::Relaxed);
    }

    /// Queues a binary frame once the byte budget has room for it (a frame larger than the
    /// whole budget waits for all of it); false when the socket is gone.
    ///
    /// With room in the budget and the queue (the usual case) the frame is queued at the
    /// call and the future is a ready value; only a frame that must wait gets a (boxed)
    /// future, so the session's own future stays small. The session is the only sender, so
    /// a frame never overtakes one that waits.
    pub fn send(&self, frame: Vec<u8>) -> impl Future<Output = bool> + Send + '_ {
        let kib = u32::try_from(frame.len() / 1024 + 1).unwrap_or(u32::MAX);
        let kib = kib.min(self.budget_kib);
        match self.budget.clone().try_acquire_many_owned(kib) {
            Ok(permit) => self.queue(Out::Frame(frame, permit)),
            Err(TryAcquireError::Closed) => Either::Left(std::future::ready(false)),
            Err(TryAcquireError::NoPermits) => {
                let waiting: Waiting<'_> = Box::pin(async move {
                    let Ok(permit) = self.budget.clone().acquire_many_owned(kib).await else {
                        return false;
                    };
                    self.tx.send(Out::Frame(frame, permit)).await.is_ok()
                });
                Either::Right(waiting)
            }
        }
    }

    /// Queues `out` now, or (the queue full) in a boxed future.
    fn queue(&self, out: Out) -> Either<Ready<bool>, Waiting<'_>> {
        match self.tx.try_send(out) {
            Ok(()) => Either::Left(std::future::ready(true)),
            Err(TrySendError::Closed(_)) => Either::Left(std::future::ready(false)),
            Err(TrySendError::Full(out)) => {
                let waiting: Waiting<'_> = Box::pin(async move { self.tx.send(out).await.is_ok() });
                Either::Right(waiting)
            }
        }
    }

    /// Queues a close frame; the writer stops after sending it.
    pub async fn close(&self, code: CloseCode, reason: &str) {
        self.queue(Out::Close(code, reason.to_owned())).await;
    }

    /// Records that the peer answered a ping.
    pub fn pong(&self) {
        self.live.pong.store(true, Ordering::Relaxed);
    }
}

/// What the session tells the writer: the peer answered a ping; send HEARTBEATs too.
struct Liveness {
    pong: AtomicBool,
    heartbeat: AtomicBool,
}

async fn write_loop<S>(
    mut sink: S,
    mut rx: mpsc::Receiver<Out>,
    ping_interval: Duration,
    live: Arc<Liveness>,
    dead: CancellationToken,
    sent: prometheus::IntCounter,
) where
    S: Sink<Message, Error = WsError> + Unpin,
{
    // A peer that stops reading blocks writes; give up on it after a while.
    let write_timeout = ping_interval.max(MIN_WRITE_TIMEOUT);
    let start = tokio::time::Instant::now() + ping_interval;
    let mut ping = tokio::time::interval_at(start, ping_interval);
    ping.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let result = tokio::select! {
            out = rx.recv() => match out {
                Some(Out::Frame(f, permit)) => {
                    let mut close = None;
                    let write = write_batch(&mut sink, f, permit, &mut rx, &mut close, &sent);
                    match tokio::time::timeout(write_timeout, write).await {
                        Ok(Ok(())) if close.is_none() => Ok(()),
                        Ok(Ok(())) => {
                            send_close(&mut sink, close, write_timeout).await;
                            break;
                        }
                        Ok(Err(e)) => Err(e),
                        Err(_) => {
                            tracing::info!(
                                stalled = ?write_timeout,
                                "socket not reading; closing it (its replies wait in RabbitMQ if the session resumes)"
                            );
                            break;
                        }
                    }
                }
                Some(Out::Close(code, reason)) => {
                    send_close(&mut sink, Some((code, reason)), write_timeout).await;
                    break;
                }
                None => break,
            },
            _ = ping.tick() => {
                if !live.pong.swap(false, Ordering::Relaxed) {
                    tracing::debug!("no pong since the last ping; closing the socket");
                    send_close(&mut sink, Some((CloseCode::Away, "ping timeout".into())), write_timeout).await;
                    break;
                }
                let beat = async {
                    if live.heartbeat.load(Ordering::Relaxed) {
                        let frame = ferry_protocol::Frame::Heartbeat.encode();
                        sink.feed(Message::Binary(frame.into())).await?;
                    }
                    sink.send(Message::Ping(Bytes::new())).await
                };
                tokio::time::timeout(write_timeout, beat)
                    .await
                    .unwrap_or(Err(WsError::ConnectionClosed))
            }
        };
        if result.is_err() {
            break;
        }
    }
    let _ = tokio::time::timeout(write_timeout, sink.close()).await;
    dead.cancel();
}

/// Writes `first` and every frame already queued behind it with one flush (one `sendto`
/// and one wake-up per batch instead of per frame). A close met in the queue ends the
/// batch and is handed back in `close`.
async fn write_batch<S>(
    sink: &mut S,
    first: Vec<u8>,
    permit: OwnedSemaphorePermit,
    rx: &mut mpsc::Receiver<Out>,
    close: &mut Option<(CloseCode, String)>,
    sent: &prometheus::IntCounter,
) -> Result<(), WsError>
where
    S: Sink<Message, Error = WsError> + Unpin,
{
    // The budget is given back as each frame is handed to the socket's buffer.
    let mut bytes = first.len();
    sink.feed(Message::Binary(Bytes::from(first))).await?;
    drop(permit);
    while let Ok(next) = rx.try_recv() {
        match next {
            Out::Frame(f, permit) => {
                bytes += f.len();
                sink.feed(Message::Binary(Bytes::from(f))).await?;
                drop(permit);
            }
            Out::Close(code, reason) => {
                *close = Some((code, reason));
                break;
            }
        }
    }
    sent.inc_by(bytes as u64);
    sink.flush().await
}

/// Sends a close frame (if any), bounded by `write_timeout`.
async fn send_close<S>(sink: &mut S, close: Option<(CloseCode, String)>, write_timeout: Duration)
where
    S: Sink<Message, Error = WsError> + Unpin,
{
    if let Some((code, reason)) = close {
        let frame = CloseFrame {
            code,
            reason: reason.into(),
        };
        let _ = tokio::time::timeout(write_timeout, sink.send(Message::Close(Some(frame)))).await;
    }
}

/// The RFC 6455 close a read error calls for, as nats-server sends them: 1002 for a protocol
/// violation (unmasked client frame, reserved bits, a control frame too big or fragmented),
/// 1007 for text that is not UTF-8, 1009 for a message over the size limit. `None` for an
/// error that leaves nobody to tell (the connection is gone).
pub fn close_for(e: &WsError) -> Option<(CloseCode, &'static str)> {
    match e {
        WsError::Protocol(_) => Some((CloseCode::Protocol, "protocol error")),
        WsError::Utf8(_) => Some((CloseCode::Invalid, "invalid UTF-8")),
        WsError::Capacity(_) => Some((CloseCode::Size, "message too big")),
        _ => None,
    }
}
