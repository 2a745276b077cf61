//! The dashboards shape: many sockets, each lightly active. N sessions open spread over an
//! arrival window, then each sends one request per second and awaits its reply; the first
//! request of each socket (which declares the session's reply queue) is reported apart from
//! the steady ones, with the bridge's and the broker's CPU per request over the steady part.

use std::time::{Duration, Instant};

use ferry_protocol::{Ack, Frame, Hello, Request};
use futures_util::{SinkExt, StreamExt};
use hdrhistogram::Histogram;
use serde::Serialize;
use tokio::task::JoinSet;
use tokio_tungstenite::tungstenite::Message;

use crate::error::{BenchError, Result};
use crate::procfs;
use crate::session::{self, CLIENT_NAME};

/// One load point of the shape.
#[derive(Debug, Clone)]
pub struct ManySpec {
    /// Sockets.
    pub sockets: usize,
    /// The sockets open evenly spread over this window.
    pub arrive: Duration,
    /// How long each socket keeps sending after its first request.
    pub duration: Duration,
    /// Resumable sessions (HELLO `acks`, an ACK frame per reply).
    pub resumable: bool,
    /// The bridge's `--reply-queue-pool` (plain sessions take their queue from it).
    pub reply_pool: usize,
}

/// What the point measured.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ManyResult {
    pub sockets: usize,
    pub resumable: bool,
    pub reply_pool: usize,
    pub opened: usize,
    pub errors: u64,
    pub first_error: Option<String>,
    /// First request of each socket, µs.
    pub first_p50_us: u64,
    pub first_p99_us: u64,
    pub first_max_us: u64,
    /// Every later request, µs.
    pub steady_p50_us: u64,
    pub steady_p99_us: u64,
    pub steady_requests: u64,
    /// CPU per steady request, µs (None when the process was not found).
    pub bridge_cpu_us_per_req: Option<f64>,
    pub broker_cpu_us_per_req: Option<f64>,
}

/// Latencies of one socket.
struct Socket {
    first: Option<u64>,
    steady: Vec<u64>,
}

/// Runs the shape against the bridge at `url` (process `bridge_pid`) sending to `queue`.
pub async fn run(url: &str, queue: &str, bridge_pid: u32, spec: &ManySpec) -> Result<ManyResult> {
    let broker = procfs::pid_of("beam.smp");
    let start = tokio::time::Instant::now();
    let end = start + spec.arrive + spec.duration;
    let mut tasks = JoinSet::new();
    for i in 0..spec.sockets {
        let at = start + spec.arrive.mul_f64(i as f64 / spec.sockets as f64);
        let (url, queue, resumable) = (url.to_owned(), queue.to_owned(), spec.resumable);
        tasks.spawn(async move {
            tokio::time::sleep_until(at).await;
            one(&url, &queue, resumable, end).await
        });
    }
    // CPU over the steady part: from the end of the arrivals plus two seconds to the end.
    let steady_from = start + spec.arrive + Duration::from_secs(2);
    tokio::time::sleep_until(steady_from).await;
    let cpu = |pid: Option<u32>| pid.and_then(|p| procfs::cpu_seconds(p).ok());
    let before = (cpu(Some(bridge_pid)), cpu(broker), Instant::now());
    let mut result = ManyResult {
        sockets: spec.sockets,
        resumable: spec.resumable,
        reply_pool: spec.reply_pool,
        ..ManyResult::default()
    };
    let hist = || Histogram::<u64>::new_with_bounds(1, 120_000_000, 3);
    let (mut first, mut steady) = (
        hist().map_err(|e| BenchError::Protocol(e.to_string()))?,
        hist().map_err(|e| BenchError::Protocol(e.to_string()))?,
    );
    let mut steady_window = 0u64;
    // The steady window ends a second before the sockets stop.
    tokio::time::sleep_until(end - Duration::from_secs(1)).await;
    let cpu_after = Some((cpu(Some(bridge_pid)), cpu(broker), Instant::now()));
    while let Some(joined) = tasks.join_next().await {
        match joined {
            Ok(Ok(s)) => {
                result.opened += 1;
                if let Some(f) = s.first {
                    first.saturating_record(f.max(1));
                }
                for v in &s.steady {
                    steady.saturating_record((*v).max(1));
                }
                steady_window += s.steady.len() as u64;
            }
            Ok(Err(e)) => {
                result.errors += 1;
                result.first_error.get_or_insert_with(|| e.to_string());
            }
            Err(e) => {
                result.errors += 1;
                result.first_error.get_or_insert_with(|| e.to_string());
            }
        }
    }
    result.first_p50_us = first.value_at_quantile(0.5);
    result.first_p99_us = first.value_at_quantile(0.99);
    result.first_max_us = first.max();
    result.steady_p50_us = steady.value_at_quantile(0.5);
    result.steady_p99_us = steady.value_at_quantile(0.99);
    result.steady_requests = steady_window;
    if let Some((b1, k1, t1)) = cpu_after {
        let (b0, k0, t0) = before;
        // Requests in the CPU window: the steady rate (one per socket per second) times its length.
        let reqs = result.opened as f64 * t1.duration_since(t0).as_secs_f64();
        let per = |a: Option<f64>, b: Option<f64>| {
            a.zip(b)
                .filter(|_| reqs > 0.0)
                .map(|(a, b)| (a - b) / reqs * 1e6)
        };
        result.bridge_cpu_us_per_req = per(b1, b0);
        result.broker_cpu_us_per_req = per(k1, k0);
    }
    Ok(result)
}

/// One socket: open, then a request a second until `end`.
async fn one(url: &str, queue: &str, resumable: bool, end: tokio::time::Instant) -> Result<Socket> {
    let fut = async {
        let (ws, _) =
            tokio_tungstenite::connect_async_with_config(session::request(url)?, None, true)
                .await?;
        Ok::<_, BenchError>(ws)
    };
    let mut ws = tokio::time::timeout(session::OPEN_TIMEOUT, fut)
        .await
        .map_err(|_| BenchError::Timeout("socket open".into()))??;
    let hello = Frame::Hello(Hello {
        client: Some(CLIENT_NAME),
        token: session::token(),
        acks: resumable,
        ..Hello::default()
    });
    ws.send(Message::Binary(hello.encode().into())).await?;
    await_frame(&mut ws, |f| matches!(f, Frame::Welcome(_))).await?;
    let body = crate::stats::json_body(100);
    let mut out = Socket {
        first: None,
        steady: Vec::new(),
    };
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    let mut n = 0u64;
    loop {
        tick.tick().await;
        if tokio::time::Instant::now() >= end {
            break;
        }
        let id = n.to_string();
        n += 1;
        let frame = Frame::Request(Request {
            id: &id,
            destination: queue,
            content_type: Some("application/json"),
            timeout_ms: Some(30_000),
            idle_timeout_ms: None,
            headers: Vec::new(),
            body: &body,
        });
        let sent = Instant::now();
        ws.send(Message::Binary(frame.encode().into())).await?;
        await_frame(&mut ws, |f| matches!(f, Frame::Reply(r) if r.id == id)).await?;
        let us = u64::try_from(sent.elapsed().as_micros()).unwrap_or(u64::MAX);
        if resumable {
            let ack = Frame::Ack(Ack { ids: vec![&id] });
            ws.send(Message::Binary(ack.encode().into())).await?;
        }
        match out.first {
            None => out.first = Some(us),
            Some(_) => out.steady.push(us),
        }
    }
    let _ = ws.close(None).await;
    Ok(out)
}

/// Reads frames until one matches `want` (ACCEPTED and HEARTBEAT frames are skipped); an
/// ERROR frame or the socket ending fails.
async fn await_frame<S>(ws: &mut S, want: impl Fn(&Frame<'_>) -> bool) -> Result<()>
where
    S: futures_util::Stream<
            Item = std::result::Result<Message, tokio_tungstenite::tungstenite::Error>,
        > + Unpin,
{
    let wait = async {
        while let Some(msg) = ws.next().await {
            if let Message::Binary(data) = msg? {
                match Frame::decode_from_bridge(&data) {
                    Ok(Frame::Error(e)) => {
                        return Err(BenchError::Protocol(format!(
                            "{} ({})",
                            e.message,
                            e.code.as_str()
                        )));
                    }
                    Ok(f) if want(&f) => return Ok(()),
                    Ok(_) => {}
                    Err(e) => return Err(BenchError::Protocol(format!("bad frame: {e}"))),
                }
            }
        }
        Err(BenchError::Protocol("socket ended".into()))
    };
    tokio::time::timeout(Duration::from_secs(60), wait)
        .await
        .map_err(|_| BenchError::Timeout("reply".into()))?
}

/// Runs each point on a fresh bridge (and one echo worker for all), printing a JSON line per
/// point and then a markdown table; fails when a point had errors.
pub async fn run_points(
    amqp_url: &str,
    bridge_bin: &std::path::Path,
    points: Vec<ManySpec>,
) -> Result<std::process::ExitCode> {
    let _ = rlimit::increase_nofile_limit(u64::MAX);
    let queue = format!("fbench.many.{}", std::process::id());
    let echo = crate::child::spawn_echo(amqp_url, &queue).await?;
    let mut results = Vec::new();
    for spec in points {
        let args = crate::child::BridgeArgs {
            bin: bridge_bin,
            amqp_url,
            allow: &queue,
            max_inflight: 1024,
            jwt_secret: None,
            reply_pool: if spec.resumable { 0 } else { spec.reply_pool },
            resumable_pool: if spec.resumable { spec.reply_pool } else { 0 },
        };
        let bridge = crate::child::spawn_bridge(args).await?;
        ready(&bridge.ws_url(), &queue).await?;
        pool_full(&bridge, spec.resumable, spec.reply_pool).await?;
        eprintln!(
            "ferry-bench many: {} sockets, {}, reply queue pool {}",
            spec.sockets,
            if spec.resumable { "resumable" } else { "plain" },
            spec.reply_pool
        );
        let outcome = run(&bridge.ws_url(), &queue, bridge.proc.pid(), &spec).await;
        bridge.proc.stop().await?;
        let r = outcome?;
        println!("{}", serde_json::to_string(&r)?);
        results.push(r);
    }
    echo.stop().await?;
    println!(
        "\n| sockets | sessions | reply queue pool | opened | errors | first request p50 / p99 / max | steady p50 / p99 | bridge CPU µs / req | broker CPU µs / req |"
    );
    println!("|---:|---|---:|---:|---:|---:|---:|---:|---:|");
    let us = |v: Option<f64>| v.map_or_else(|| "—".to_owned(), |v| format!("{v:.0}"));
    let ms = |v: u64| format!("{:.0}", v as f64 / 1000.0);
    for r in &results {
        println!(
            "| {} | {} | {} | {} | {} | {} / {} / {} ms | {:.1} / {:.1} ms | {} | {} |",
            r.sockets,
            if r.resumable { "resumable" } else { "plain" },
            r.reply_pool,
            r.opened,
            r.errors,
            ms(r.first_p50_us),
            ms(r.first_p99_us),
            ms(r.first_max_us),
            r.steady_p50_us as f64 / 1000.0,
            r.steady_p99_us as f64 / 1000.0,
            us(r.bridge_cpu_us_per_req),
            us(r.broker_cpu_us_per_req),
        );
    }
    let failed = results.iter().any(|r| r.errors > 0);
    Ok(if failed {
        std::process::ExitCode::FAILURE
    } else {
        std::process::ExitCode::SUCCESS
    })
}

/// Waits until a request through the bridge at `url` is answered (the bridge listens before
/// its broker connection is up).
pub(crate) async fn ready(url: &str, queue: &str) -> Result<()> {
    let spec = crate::stats::LoadSpec {
        concurrency: 1,
        body: crate::stats::json_body(100),
        warmup: Duration::ZERO,
        duration: Duration::from_millis(100),
    };
    let mut last = None;
    for _ in 0..100 {
        match crate::native::run(url, queue, &spec).await {
            Ok(s) if s.errors == 0 && s.total > 0 => return Ok(()),
            Ok(s) => last = Some(format!("{} errors", s.errors)),
            Err(e) => last = Some(e.to_string()),
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Err(BenchError::Timeout(format!(
        "the bridge never answered a request: {}",
        last.unwrap_or_default()
    )))
}

/// Waits until the bridge's reply queue pool holds `size` queues (bounded).
async fn pool_full(bridge: &crate::child::Bridge, resumable: bool, size: usize) -> Result<()> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
    if size == 0 {
        return Ok(());
    }
    let gauge = if resumable {
        "ferry_resumable_queue_pool_ready"
    } else {
        "ferry_reply_queue_pool_ready"
    };
    loop {
        let ready = bridge.metric(gauge).await?;
        if ready >= size as f64 {
            return Ok(());
        }
        if tokio::time::Instant::now() > deadline {
            return Err(BenchError::Timeout(format!(
                "reply queue pool at {ready} of {size}"
            )));
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
