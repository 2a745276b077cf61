//! The reconnect storm: N resumable sessions, each with a request its worker holds, lose
//! their bridge at once (SIGTERM: a redeploy closes resumable sockets with 1012) and all resume
//! on another bridge of the same broker while the worker answers. Measured: how long until
//! every session is resumed and its reply delivered, and how many failed.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use ferry_protocol::{Ack, Attach, ErrorCode, Frame, Hello, Request};
use futures_util::{SinkExt, StreamExt};
use hdrhistogram::Histogram;
use serde::Serialize;
use tokio::sync::watch;
use tokio::task::JoinSet;
use tokio_tungstenite::tungstenite::Message;

use crate::error::{BenchError, Result};
use crate::procfs;
use crate::session::{self, CLIENT_NAME};
use worker::{delete_queue, holding_worker};

mod worker;

/// The body of a storm request: the worker holds these (and answers anything else at once,
/// such as the readiness checks).
const STORM_BODY: &[u8] = b"{\"storm\":true}";

/// The storm point.
#[derive(Debug, Clone)]
pub struct StormSpec {
    /// Resumable sessions, each with one request pending.
    pub sessions: usize,
    /// The sessions open evenly spread over this window.
    pub arrive: Duration,
}

/// What the storm measured; times from the moment the first bridge was told to stop (its
/// worker answers the held requests once that bridge has exited).
#[derive(Debug, Clone, Default, Serialize)]
pub struct StormResult {
    pub sessions: usize,
    pub opened: usize,
    /// Sessions the second bridge resumed (WELCOME `resumed`).
    pub resumed: usize,
    /// Pending replies that reached their session.
    pub delivered: usize,
    pub failed: usize,
    /// Resume attempts the bridge refused (`broker_unavailable`) and the client made again,
    /// counted over every session, whether it ended delivered or failed.
    pub retries: u64,
    /// How many sessions failed with each error (its text, numbers of the session left out).
    pub errors: std::collections::BTreeMap<String, usize>,
    pub resume_p50_ms: u64,
    pub resume_p99_ms: u64,
    pub resume_max_ms: u64,
    pub reply_p50_ms: u64,
    pub reply_p99_ms: u64,
    pub reply_max_ms: u64,
    /// What the second bridge counted: sessions resumed, and resumes that found the session
    /// expired (the rest of those not resumed presented a token that was not current).
    pub bridge_resumed: Option<f64>,
    pub bridge_expired: Option<f64>,
    /// Replies the second bridge dropped: no request of the session awaited them.
    pub bridge_dropped: Option<f64>,
    /// CPU seconds over the storm (until the last reply or failure).
    pub bridge_cpu_s: Option<f64>,
    pub broker_cpu_s: Option<f64>,
}

/// One session's timeline, ms after the stop.
struct Timeline {
    resumed: u64,
    replied: u64,
}

/// Runs the storm with two bridges from `bridge_bin` on the broker at `amqp_url`.
pub async fn run(
    amqp_url: &str,
    bridge_bin: &std::path::Path,
    spec: &StormSpec,
) -> Result<StormResult> {
    let _ = rlimit::increase_nofile_limit(u64::MAX);
    let queue = format!("fbench.storm.{}", std::process::id());
    let (release, released) = watch::channel(true);
    let held = Arc::new(AtomicUsize::new(0));
    let refused = Arc::new(AtomicU64::new(0));
    let worker = tokio::spawn(holding_worker(
        amqp_url.to_owned(),
        queue.clone(),
        released,
        held.clone(),
    ));
    let args = || crate::child::BridgeArgs {
        bin: bridge_bin,
        amqp_url,
        allow: &queue,
        max_inflight: 1024,
        jwt_secret: None,
        reply_pool: 0,
        resumable_pool: 0,
    };
    let first = crate::child::spawn_bridge(args()).await?;
    let second = crate::child::spawn_bridge(args()).await?;
    crate::many::ready(&first.ws_url(), &queue).await?;
    crate::many::ready(&second.ws_url(), &queue).await?;
    // From here the worker holds every request until the storm starts.
    let _ = release.send(false);
    let (stop_tx, stop_rx) = watch::channel(None::<Instant>);
    let start = tokio::time::Instant::now();
    let mut tasks = JoinSet::new();
    for i in 0..spec.sessions {
        let at = start + spec.arrive.mul_f64(i as f64 / spec.sessions as f64);
        let (a, b, q, stop, refused) = (
            first.ws_url(),
            second.ws_url(),
            queue.clone(),
            stop_rx.clone(),
            refused.clone(),
        );
        tasks.spawn(async move {
            tokio::time::sleep_until(at).await;
            one(&a, &b, &q, i, stop, &refused).await
        });
    }
    // Every request published and held by the worker (bounded).
    let deadline = tokio::time::Instant::now() + spec.arrive + Duration::from_secs(60);
    while held.load(Ordering::SeqCst) < spec.sessions {
        if tokio::time::Instant::now() > deadline || tasks.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    eprintln!(
        "ferry-bench storm: {} of {} requests held; stopping the first bridge",
        held.load(Ordering::SeqCst),
        spec.sessions
    );
    let broker = procfs::pid_of("beam.smp");
    let cpu = |pid: Option<u32>| pid.and_then(|p| procfs::cpu_seconds(p).ok());
    let (b0, k0) = (cpu(Some(second.proc.pid())), cpu(broker));
    let stopped_at = Instant::now();
    let _ = stop_tx.send(Some(stopped_at));
    // The worker answers once the first bridge is gone, so every reply goes through a resume.
    let stopping = tokio::spawn(async move {
        let stopped = first.proc.stop().await;
        let _ = release.send(true);
        stopped
    });
    let mut result = StormResult {
        sessions: spec.sessions,
        ..StormResult::default()
    };
    let hist = || Histogram::<u64>::new_with_bounds(1, 600_000, 3);
    let (mut resume, mut reply) = (
        hist().map_err(|e| BenchError::Protocol(e.to_string()))?,
        hist().map_err(|e| BenchError::Protocol(e.to_string()))?,
    );
    while let Some(joined) = tasks.join_next().await {
        result.opened += 1;
        match joined
            .map_err(|e| BenchError::Protocol(e.to_string()))
            .and_then(|r| r)
        {
            Ok(t) => {
                result.resumed += 1;
                result.delivered += 1;
                resume.saturating_record(t.resumed.max(1));
                reply.saturating_record(t.replied.max(1));
            }
            Err(e) => {
                result.failed += 1;
                *result.errors.entry(e.to_string()).or_default() += 1;
            }
        }
    }
    result.retries = refused.load(Ordering::SeqCst);
    let (b1, k1) = (cpu(Some(second.proc.pid())), cpu(broker));
    result.bridge_resumed = second.metric("ferry_sessions_resumed_total").await.ok();
    result.bridge_expired = second.metric("ferry_sessions_expired_total").await.ok();
    result.bridge_dropped = second.metric("ferry_dropped_replies_total").await.ok();
    result.bridge_cpu_s = b1.zip(b0).map(|(a, b)| a - b);
    result.broker_cpu_s = k1.zip(k0).map(|(a, b)| a - b);
    result.resume_p50_ms = resume.value_at_quantile(0.5);
    result.resume_p99_ms = resume.value_at_quantile(0.99);
    result.resume_max_ms = resume.max();
    result.reply_p50_ms = reply.value_at_quantile(0.5);
    result.reply_p99_ms = reply.value_at_quantile(0.99);
    result.reply_max_ms = reply.max();
    stopping
        .await
        .map_err(|e| BenchError::Child(e.to_string()))??;
    second.proc.stop().await?;
    if worker.is_finished() {
        // The worker stopped answering: say why (its held requests never got a reply).
        let why = match worker.await {
            Ok(Err(e)) => e.to_string(),
            Ok(Ok(())) => "its consumer ended".to_owned(),
            Err(e) => e.to_string(),
        };
        *result
            .errors
            .entry(format!("the worker stopped: {why}"))
            .or_default() += 1;
    } else {
        worker.abort();
    }
    delete_queue(amqp_url, &queue).await;
    Ok(result)
}

/// One session: open on `a`, send a request, and when `a` goes, resume on `b` with the
/// request attached and wait for its reply.
async fn one(
    a: &str,
    b: &str,
    queue: &str,
    i: usize,
    mut stop: watch::Receiver<Option<Instant>>,
    refused: &AtomicU64,
) -> Result<Timeline> {
    let (mut ws, _) =
        tokio_tungstenite::connect_async_with_config(session::request(a)?, None, true).await?;
    let hello = Frame::Hello(Hello {
        client: Some(CLIENT_NAME),
        token: session::token(),
        acks: true,
        ..Hello::default()
    });
    ws.send(Message::Binary(hello.encode().into())).await?;
    let (sid, token) = welcome(&mut ws).await?;
    let id = format!("s{i}");
    let request = Frame::Request(Request {
        id: &id,
        destination: queue,
        content_type: Some("application/json"),
        timeout_ms: Some(120_000),
        idle_timeout_ms: None,
        headers: Vec::new(),
        body: STORM_BODY,
    });
    ws.send(Message::Binary(request.encode().into())).await?;
    // Until the bridge goes: nothing but ACCEPTED and heartbeats may come.
    while let Some(msg) = ws.next().await {
        match msg {
            Ok(Message::Binary(data)) => match Frame::decode_from_bridge(&data) {
                Ok(Frame::Accepted(_) | Frame::Heartbeat) => {}
                Ok(f) => {
                    return Err(BenchError::Protocol(format!(
                        "{} before the storm",
                        f.kind_name()
                    )));
                }
                Err(e) => return Err(BenchError::Protocol(format!("bad frame: {e}"))),
            },
            Ok(Message::Close(_)) | Err(_) => break,
            Ok(_) => {}
        }
    }
    let stopped_at = stop
        .wait_for(Option::is_some)
        .await
        .map_err(|_| BenchError::Protocol("the storm never started".into()))?
        .unwrap_or_else(Instant::now);
    // A resume the bridge cannot complete in time (`broker_unavailable`, close 1013) is tried
    // again after a jittered pause, as the npm client's reconnect does.
    let mut retries = 0;
    let mut last = String::new();
    let (mut ws, resumed_at) = loop {
        let (mut ws, _) =
            tokio_tungstenite::connect_async_with_config(session::request(b)?, None, true).await?;
        let hello = Frame::Hello(Hello {
            client: Some(CLIENT_NAME),
            token: session::token(),
            acks: true,
            resume: Some(&sid),
            resume_token: Some(&token),
            attach: vec![Attach {
                id: &id,
                timeout_ms: 110_000,
                idle_timeout_ms: None,
                destination: queue,
            }],
        });
        ws.send(Message::Binary(hello.encode().into())).await?;
        let data = next_binary(&mut ws).await?;
        match Frame::decode_from_bridge(&data) {
            Ok(Frame::Welcome(w)) if w.resumed => break (ws, stopped_at.elapsed()),
            Ok(Frame::Welcome(_)) => {
                return Err(BenchError::Protocol(format!(
                    "the session was not resumed (after {retries} refused attempts: {last})"
                )));
            }
            Ok(Frame::Error(e)) if e.code == ErrorCode::BrokerUnavailable && retries < 5 => {
                retries += 1;
                refused.fetch_add(1, Ordering::SeqCst);
                last = e.message.to_owned();
                let pause = rand::random_range(0..1_000u64 << retries.min(3));
                tokio::time::sleep(Duration::from_millis(pause)).await;
            }
            Ok(Frame::Error(e)) => return Err(BenchError::Protocol(e.message.to_owned())),
            _ => return Err(BenchError::Protocol("expected WELCOME".into())),
        }
    };
    loop {
        let data = next_binary(&mut ws).await?;
        match Frame::decode_from_bridge(&data) {
            Ok(Frame::Reply(r)) if r.id == id => break,
            Ok(Frame::Error(e)) => {
                return Err(BenchError::Protocol(format!(
                    "{} ({})",
                    e.message,
                    e.code.as_str()
                )));
            }
            _ => {}
        }
    }
    let replied_at = stopped_at.elapsed();
    let ack = Frame::Ack(Ack { ids: vec![&id] });
    ws.send(Message::Binary(ack.encode().into())).await?;
    let _ = ws.close(None).await;
    let ms = |d: Duration| u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
    Ok(Timeline {
        resumed: ms(resumed_at),
        replied: ms(replied_at),
    })
}

/// WELCOME's session id and resume token.
async fn welcome<S>(ws: &mut S) -> Result<(String, String)>
where
    S: futures_util::Stream<
            Item = std::result::Result<Message, tokio_tungstenite::tungstenite::Error>,
        > + Unpin,
{
    let data = next_binary(ws).await?;
    match Frame::decode_from_bridge(&data) {
        Ok(Frame::Welcome(w)) => match w.resume_token {
            Some(t) => Ok((w.session.to_owned(), t.to_owned())),
            None => Err(BenchError::Protocol("the session is not resumable".into())),
        },
        _ => Err(BenchError::Protocol("expected WELCOME".into())),
    }
}

/// The next binary message (60 s at most).
async fn next_binary<S>(ws: &mut S) -> Result<Vec<u8>>
where
    S: futures_util::Stream<
            Item = std::result::Result<Message, tokio_tungstenite::tungstenite::Error>,
        > + Unpin,
{
    let wait = async {
        while let Some(msg) = ws.next().await {
            match msg? {
                Message::Binary(data) => return Ok(data.to_vec()),
                Message::Close(f) => {
                    return Err(BenchError::Protocol(format!("socket closed: {f:?}")));
                }
                _ => {}
            }
        }
        Err(BenchError::Protocol("socket ended".into()))
    };
    tokio::time::timeout(Duration::from_secs(60), wait)
        .await
        .map_err(|_| BenchError::Timeout("a frame".into()))?
}
