//! The processes the runner starts: the bridge and the echo worker, each announcing itself with
//! one line on stdout, stopped with SIGTERM (killed if they linger) when dropped or stopped.

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, ChildStdout, Command};
use tokio::task::JoinSet;

use crate::error::{BenchError, Result};

/// How long a child may take to print its ready line.
const START_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a child may take to exit after SIGTERM.
const STOP_TIMEOUT: Duration = Duration::from_secs(10);

/// A running child process, killed when dropped.
#[derive(Debug)]
pub struct Proc {
    child: Child,
    pid: u32,
    /// Drains the rest of stdout so the child never blocks on a full pipe.
    drain: JoinSet<()>,
}

impl Proc {
    /// The process id (for `/proc` readings).
    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// Asks the child to stop (SIGTERM), waits for it, kills it if it does not exit in time.
    pub async fn stop(mut self) -> Result<()> {
        let _ = Command::new("kill")
            .args(["-TERM", &self.pid.to_string()])
            .status()
            .await;
        if tokio::time::timeout(STOP_TIMEOUT, self.child.wait())
            .await
            .is_err()
        {
            self.child.kill().await?;
        }
        self.drain.abort_all();
        Ok(())
    }
}

/// A bridge child and the address it listens on.
#[derive(Debug)]
pub struct Bridge {
    /// The process.
    pub proc: Proc,
    /// `host:port` from its ready line.
    pub addr: String,
    /// `host:port` of its admin listener (`/metrics`).
    pub admin: String,
}

impl Bridge {
    /// The value of the unlabelled metric `name` in the bridge's `/metrics`.
    pub async fn metric(&self, name: &str) -> Result<f64> {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let mut conn = tokio::net::TcpStream::connect(&self.admin).await?;
        let req = format!(
            "GET /metrics HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n\r\n",
            self.admin
        );
        conn.write_all(req.as_bytes()).await?;
        let mut body = String::new();
        conn.read_to_string(&mut body).await?;
        body.lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok())
            .ok_or_else(|| BenchError::Child(format!("no metric {name} in /metrics")))
    }

    /// The WebSocket URL of the bridge.
    pub fn ws_url(&self) -> String {
        format!("ws://{}/ws", self.addr)
    }
}

/// How to start a bridge.
#[derive(Debug, Clone)]
pub struct BridgeArgs<'a> {
    /// The `ferry-bridge` binary.
    pub bin: &'a Path,
    /// Broker URL.
    pub amqp_url: &'a str,
    /// The one queue the bridge lets clients call.
    pub allow: &'a str,
    /// `--max-inflight`.
    pub max_inflight: u32,
    /// `--jwt-secret-file`: sockets must authenticate.
    pub jwt_secret: Option<&'a Path>,
    /// `--reply-queue-pool`.
    pub reply_pool: usize,
    /// `--resumable-queue-pool` (not passed when 0, so an older bridge can be measured).
    pub resumable_pool: usize,
}

/// Starts `ferry-bridge --listen 127.0.0.1:0` and waits for its `listening on` line.
pub async fn spawn_bridge(args: BridgeArgs<'_>) -> Result<Bridge> {
    let mut cmd = Command::new(args.bin);
    cmd.args(["--listen", "127.0.0.1:0", "--amqp-url", args.amqp_url])
        .args(["--allow", args.allow])
        .args(["--max-inflight", &args.max_inflight.to_string()])
        // The benchmark measures throughput from one address and a few sockets: the
        // per-socket rate and per-address limits (sized for browser tabs) are lifted.
        .args(["--request-rate", "10000000", "--request-burst", "10000000"])
        .args([
            "--max-connections",
            "100000",
            "--max-connections-per-ip",
            "100000",
        ])
        .args(["--session-rate", "100000"])
        .args(["--admin-listen", "127.0.0.1:0"]);
    cmd.args(["--reply-queue-pool", &args.reply_pool.to_string()]);
    if args.resumable_pool > 0 {
        cmd.args(["--resumable-queue-pool", &args.resumable_pool.to_string()]);
    }
    if let Some(secret) = args.jwt_secret {
        cmd.arg("--jwt-secret-file").arg(secret);
    }
    cmd.env(
        "RUST_LOG",
        std::env::var("FERRY_BENCH_BRIDGE_LOG").unwrap_or("warn".into()),
    );
    // `ferry-bridge listening on http://ADDR (socket ws://ADDR/ws)`, then
    // `ferry-bridge admin on http://ADDR (/metrics, /healthz, /readyz)`.
    let (proc, lines) = spawn(cmd, "ferry-bridge admin on ").await?;
    let addr_in = |prefix: &str| {
        let line = lines.iter().find(|l| l.starts_with(prefix))?;
        line.split_whitespace()
            .find_map(|w| w.strip_prefix("http://"))
            .map(|a| a.trim_end_matches('/').to_owned())
    };
    let addr = addr_in("ferry-bridge listening on ")
        .ok_or_else(|| BenchError::Child(format!("cannot read the address in {lines:?}")))?;
    let admin = addr_in("ferry-bridge admin on ")
        .ok_or_else(|| BenchError::Child(format!("cannot read the admin address in {lines:?}")))?;
    Ok(Bridge { proc, addr, admin })
}

/// Starts this binary's `echo` subcommand on `queue` and waits until it consumes.
pub async fn spawn_echo(amqp_url: &str, queue: &str) -> Result<Proc> {
    let exe = std::env::current_exe()?;
    let mut cmd = Command::new(exe);
    cmd.args(["echo", "--amqp-url", amqp_url, "--queue", queue]);
    let (proc, _) = spawn(cmd, crate::echo::READY_LINE).await?;
    Ok(proc)
}

/// Spawns `cmd` and reads stdout until a line starting with `ready`; returns the lines read.
async fn spawn(mut cmd: Command, ready: &str) -> Result<(Proc, Vec<String>)> {
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .kill_on_drop(true);
    let mut child = cmd
        .spawn()
        .map_err(|e| BenchError::Child(format!("cannot start {:?}: {e}", cmd.as_std())))?;
    let pid = child
        .id()
        .ok_or_else(|| BenchError::Child("child exited at once".into()))?;
    let stdout = child
        .stdout
        .take()
        .ok_or_else(|| BenchError::Child("no stdout pipe".into()))?;
    let mut lines = BufReader::new(stdout).lines();
    let read = tokio::time::timeout(START_TIMEOUT, async {
        let mut read = Vec::new();
        while let Some(line) = lines.next_line().await? {
            let done = line.starts_with(ready);
            read.push(line);
            if done {
                return Ok(read);
            }
        }
        Err(BenchError::Child(format!(
            "{:?} exited before printing {ready:?}",
            cmd.as_std().get_program()
        )))
    })
    .await
    .map_err(|_| BenchError::Child(format!("no {ready:?} line within {START_TIMEOUT:?}")))??;
    let mut drain = JoinSet::new();
    drain.spawn(drain_lines(lines));
    Ok((Proc { child, pid, drain }, read))
}

async fn drain_lines(mut lines: tokio::io::Lines<BufReader<ChildStdout>>) {
    while let Ok(Some(_)) = lines.next_line().await {}
}
