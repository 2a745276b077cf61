//! The connections test: open many idle sessions on one bridge and see what each one costs it.
//!
//! Every connection binds its own source address (spread over 127.0.0.1..=127.0.0.N so the
//! ephemeral port range never runs short), upgrades to WebSocket and completes HELLO → WELCOME.
//! The sockets then stay open, idle, while the bridge's resident memory is read.

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use tokio::net::{TcpSocket, TcpStream};
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;

use crate::error::{BenchError, Result};
use crate::procfs;
use crate::session;

/// What the connections test measured.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ConnsResult {
    /// Sessions asked for.
    pub requested: usize,
    /// Sessions that reached WELCOME.
    pub opened: usize,
    /// Sessions that failed (connect, handshake or HELLO).
    pub errors: usize,
    /// Wall time from the first connect to the last WELCOME, seconds.
    pub open_seconds: f64,
    /// Bridge RSS before, KiB.
    pub rss_before_kib: u64,
    /// Bridge RSS with all sessions open and idle, KiB.
    pub rss_after_kib: u64,
    /// (after − before) / opened, KiB.
    pub kib_per_conn: f64,
    /// The first error seen, if any.
    pub first_error: Option<String>,
}

/// How to run the connections test.
#[derive(Debug, Clone)]
pub struct ConnsSpec {
    /// Sessions to open.
    pub count: usize,
    /// Source addresses to spread over: 127.0.0.1 ..= 127.0.0.`sources`.
    pub sources: u8,
    /// Handshakes in progress at once.
    pub parallel: usize,
    /// Time the sockets sit idle before memory is read (lets the bridge settle).
    pub settle: Duration,
}

type Conn = WebSocketStream<TcpStream>;

/// Opens `spec.count` sessions on the bridge at `addr` (pid `bridge_pid`), measures, closes them.
pub async fn run(addr: SocketAddr, bridge_pid: u32, spec: &ConnsSpec) -> Result<ConnsResult> {
    let rss_before_kib = procfs::rss_kib(bridge_pid)?;
    let url = format!("ws://{addr}/ws");
    let gate = Arc::new(Semaphore::new(spec.parallel.max(1)));
    let mut tasks = JoinSet::new();
    let started = Instant::now();
    for i in 0..spec.count {
        let permit = Arc::clone(&gate)
            .acquire_owned()
            .await
            .map_err(|_| BenchError::Protocol("semaphore closed".into()))?;
        let source = Ipv4Addr::new(127, 0, 0, 1 + (i % usize::from(spec.sources.max(1))) as u8);
        let url = url.clone();
        tasks.spawn(async move {
            let conn = open_one(source, addr, &url).await;
            drop(permit);
            conn
        });
    }
    let mut conns: Vec<Conn> = Vec::with_capacity(spec.count);
    let mut result = ConnsResult {
        requested: spec.count,
        rss_before_kib,
        ..ConnsResult::default()
    };
    while let Some(done) = tasks.join_next().await {
        match done {
            Ok(Ok(conn)) => conns.push(conn),
            Ok(Err(e)) => note_error(&mut result, e.to_string()),
            Err(e) => note_error(&mut result, format!("task: {e}")),
        }
    }
    result.open_seconds = started.elapsed().as_secs_f64();
    result.opened = conns.len();
    tokio::time::sleep(spec.settle).await;
    result.rss_after_kib = procfs::rss_kib(bridge_pid)?;
    result.kib_per_conn =
        result.rss_after_kib.saturating_sub(rss_before_kib) as f64 / (result.opened.max(1) as f64);
    drop(conns);
    Ok(result)
}

fn note_error(result: &mut ConnsResult, e: String) {
    result.errors += 1;
    result.first_error.get_or_insert(e);
}

/// One idle session from `source` (small client buffers: the runner holds thousands).
async fn open_one(source: Ipv4Addr, addr: SocketAddr, url: &str) -> Result<Conn> {
    let fut = async {
        let socket = TcpSocket::new_v4()?;
        socket.bind(SocketAddr::from((source, 0)))?;
        let stream = socket.connect(addr).await?;
        stream.set_nodelay(true)?;
        let config = WebSocketConfig::default()
            .read_buffer_size(4096)
            .write_buffer_size(0);
        let (mut ws, _) = tokio_tungstenite::client_async_with_config(
            session::request(url)?,
            stream,
            Some(config),
        )
        .await?;
        session::hello(&mut ws).await?;
        Ok(ws)
    };
    tokio::time::timeout(session::OPEN_TIMEOUT, fut)
        .await
        .map_err(|_| BenchError::Timeout(format!("session from {source}")))?
}
