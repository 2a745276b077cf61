//! The full run: starts the echo worker and a bridge, then measures baseline, Ferry native,
//! Ferry real client and the Web-STOMP peer in alternating rounds, then the connections test
//! and the client size.

use std::path::PathBuf;
use std::time::Duration;

use lapin::options::QueueDeleteOptions;
use lapin::{Connection, ConnectionProperties};
use rand::Rng;

use crate::baseline::{self, ReplyMode};
use crate::child::{self, BridgeArgs};
use crate::conns::{self, ConnsSpec};
use crate::error::{BenchError, Result};
use crate::node::NodeClient;
use crate::procfs;
use crate::results::{CLIENTS, ClientKind, Point, Results, SCENARIOS, Sample};
use crate::stats::{LoadSpec, json_body};
use crate::{machine, native, session, size};

/// Everything a full (or smoke) run needs to know.
#[derive(Debug, Clone)]
pub struct RunConfig {
    /// Broker URL.
    pub amqp_url: String,
    /// The `ferry-bridge` binary.
    pub bridge_bin: PathBuf,
    /// The Node real-client load generator.
    pub node: NodeClient,
    /// The package's `dist/` directory (client size).
    pub dist: PathBuf,
    /// Rounds; each load point is measured once per round.
    pub rounds: usize,
    /// Warm-up per measurement.
    pub warmup: Duration,
    /// Measured time per measurement.
    pub duration: Duration,
    /// Idle sessions for the connections test.
    pub conns: usize,
    /// Source addresses the connections spread over (127.0.0.1 ..= 127.0.0.N).
    pub conn_sources: u8,
    /// Where the baseline's replies come back.
    pub baseline_mode: ReplyMode,
    /// `--max-inflight` given to the bridge.
    pub max_inflight: u32,
    /// The command line, for the report.
    pub command: String,
    /// Skip the warm-up pass (smoke runs).
    pub skip_warmup: bool,
    /// Where the run keeps its files (the results JSON's folder): the JWT secret.
    pub json_dir: PathBuf,
}

/// Runs everything and returns the results (the caller writes them out).
pub async fn run(cfg: &RunConfig) -> Result<Results> {
    let fd_limit = raise_fd_limit();
    let queue = format!("fbench.{:08x}", rand::rng().random::<u32>());
    eprintln!("ferry-bench: queue {queue}, fd limit {fd_limit}");
    let echo = child::spawn_echo(&cfg.amqp_url, &queue).await?;
    // Every Ferry row runs authenticated, as a deployment does: an HS256 secret for the
    // bridge and a token (from `ferry-bridge token`) for every client.
    let secret = jwt_secret(&cfg.json_dir)?;
    let token = mint(&cfg.bridge_bin, &secret).await?;
    session::use_token(token.clone());
    let bridge_args = BridgeArgs {
        bin: &cfg.bridge_bin,
        amqp_url: &cfg.amqp_url,
        allow: &queue,
        max_inflight: cfg.max_inflight,
        jwt_secret: Some(&secret),
        reply_pool: 0,
        resumable_pool: 0,
    };
    let mut results = Results::new(cfg, machine::describe().await);
    let node_missing = cfg.node.preflight().await;
    if let Some(why) = &node_missing {
        eprintln!("ferry-bench: real-client row missing: {why}");
    }
    let stomp_missing = cfg.node.stomp_preflight().await;
    if let Some(why) = &stomp_missing {
        eprintln!("ferry-bench: Web-STOMP row missing: {why}");
    }
    let missing = |client: ClientKind| match client {
        ClientKind::Node => node_missing.as_ref(),
        ClientKind::Stomp => stomp_missing.as_ref(),
        ClientKind::Baseline | ClientKind::Native => None,
    };

    let broker = procfs::pid_of("beam.smp");
    let measured = async {
        let bridge = child::spawn_bridge(bridge_args.clone()).await?;
        let url = bridge.ws_url();
        if !cfg.skip_warmup && cfg.rounds > 0 {
            let spec = spec(16, 100, Duration::ZERO, Duration::from_secs(2));
            for client in CLIENTS {
                if missing(client).is_none() {
                    let _ = measure(cfg, client, &url, &queue, &spec).await;
                }
            }
        }
        for round in 0..cfg.rounds {
            for (si, sc) in SCENARIOS.iter().enumerate() {
                let spec = spec(sc.concurrency, sc.body_bytes, cfg.warmup, cfg.duration);
                for k in 0..CLIENTS.len() {
                    let client = CLIENTS[(round + si + k) % CLIENTS.len()];
                    let point = results.point_mut(*sc, client);
                    if let Some(why) = missing(client) {
                        point.missing = Some(why.clone());
                        continue;
                    }
                    let before = Cpu::read(bridge.proc.pid(), broker, echo.pid())?;
                    let outcome = measure(cfg, client, &url, &queue, &spec).await;
                    let cpu = Cpu::read(bridge.proc.pid(), broker, echo.pid())?.minus(&before);
                    record(point, round, outcome, &cpu);
                }
            }
        }
        bridge.proc.stop().await?;
        Ok::<_, BenchError>(())
    };
    let outcome = measured.await;
    echo.stop().await?;
    delete_queue(&cfg.amqp_url, &queue).await;
    outcome?;
    results.summarize();

    if cfg.conns > 0 {
        let bridge = child::spawn_bridge(bridge_args.clone()).await?;
        let addr = bridge
            .addr
            .parse()
            .map_err(|e| BenchError::Child(format!("bridge address {}: {e}", bridge.addr)))?;
        let spec = ConnsSpec {
            count: cfg.conns,
            sources: cfg.conn_sources,
            parallel: 200,
            settle: Duration::from_secs(2),
        };
        eprintln!("ferry-bench: opening {} idle sessions", cfg.conns);
        let outcome = conns::run(addr, bridge.proc.pid(), &spec).await;
        bridge.proc.stop().await?;
        results.conns = Some(outcome?);
    }
    results.connect = Some(connect_cost(cfg, &bridge_args, &token).await?);
    results.client_size = size::measure(&cfg.dist)?;
    Ok(results)
}

/// HELLO → WELCOME with and without authentication, on two bridges side by side.
async fn connect_cost(
    cfg: &RunConfig,
    args: &BridgeArgs<'_>,
    token: &str,
) -> Result<crate::connect::ConnectResult> {
    let authed = child::spawn_bridge(args.clone()).await?;
    let plain = child::spawn_bridge(BridgeArgs {
        jwt_secret: None,
        ..args.clone()
    })
    .await?;
    let (rounds, per_round) = if cfg.skip_warmup { (1, 20) } else { (5, 200) };
    eprintln!(
        "ferry-bench: connect cost, {} sessions per bridge",
        rounds * per_round
    );
    let outcome =
        crate::connect::run(&authed.ws_url(), token, &plain.ws_url(), rounds, per_round).await;
    authed.proc.stop().await?;
    plain.proc.stop().await?;
    outcome
}

/// A fresh random HS256 secret in `dir`.
fn jwt_secret(dir: &std::path::Path) -> Result<PathBuf> {
    std::fs::create_dir_all(dir)?;
    let path = dir.join("jwt-secret");
    let bytes: [u8; 32] = rand::rng().random();
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    std::fs::write(&path, hex)?;
    Ok(path)
}

/// A day-long development token from the bridge's own `token` command.
async fn mint(bridge: &std::path::Path, secret: &std::path::Path) -> Result<String> {
    let out = tokio::process::Command::new(bridge)
        .arg("token")
        .arg("--secret-file")
        .arg(secret)
        .args(["--sub", "ferry-bench", "--ttl", "24h"])
        .output()
        .await?;
    if !out.status.success() {
        return Err(BenchError::Child(format!(
            "ferry-bridge token failed: {}",
            String::from_utf8_lossy(&out.stderr)
        )));
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

fn spec(concurrency: usize, body: usize, warmup: Duration, duration: Duration) -> LoadSpec {
    LoadSpec {
        concurrency,
        body: json_body(body),
        warmup,
        duration,
    }
}

async fn measure(
    cfg: &RunConfig,
    client: ClientKind,
    url: &str,
    queue: &str,
    spec: &LoadSpec,
) -> Result<crate::stats::RunStats> {
    match client {
        ClientKind::Baseline => baseline::run(&cfg.amqp_url, queue, cfg.baseline_mode, spec).await,
        ClientKind::Native => native::run(url, queue, spec).await,
        ClientKind::Node => cfg.node.run(url, queue, spec).await,
        ClientKind::Stomp => cfg.node.run_stomp(queue, spec).await,
    }
}

/// CPU seconds used so far by the bridge, the broker (if found), the echo worker, this
/// process (the in-process load clients) and the whole machine.
struct Cpu {
    bridge: f64,
    broker: Option<f64>,
    worker: Option<f64>,
    harness: Option<f64>,
    machine: f64,
}

impl Cpu {
    fn read(bridge: u32, broker: Option<u32>, worker: u32) -> Result<Self> {
        Ok(Self {
            bridge: procfs::cpu_seconds(bridge)?,
            broker: broker.and_then(|pid| procfs::cpu_seconds(pid).ok()),
            worker: procfs::cpu_seconds(worker).ok(),
            harness: procfs::cpu_seconds(std::process::id()).ok(),
            machine: procfs::machine_cpu_seconds()?,
        })
    }

    fn minus(&self, before: &Self) -> Self {
        let diff = |a: Option<f64>, b: Option<f64>| a.zip(b).map(|(a, b)| a - b);
        Self {
            bridge: self.bridge - before.bridge,
            broker: diff(self.broker, before.broker),
            worker: diff(self.worker, before.worker),
            harness: diff(self.harness, before.harness),
            machine: self.machine - before.machine,
        }
    }
}

fn record(point: &mut Point, round: usize, outcome: Result<crate::stats::RunStats>, cpu: &Cpu) {
    let label = format!(
        "round {} c={} body={}B {}",
        round + 1,
        point.scenario.concurrency,
        point.scenario.body_bytes,
        point.client.short()
    );
    match outcome {
        Ok(stats) => {
            eprintln!(
                "{label}: {:.0} req/s p50 {:.0} µs p99 {:.0} µs errors {} cpu s: bridge {:.2} broker {:.2} machine {:.2}",
                stats.rps,
                stats.p50_us,
                stats.p99_us,
                stats.errors,
                cpu.bridge,
                cpu.broker.unwrap_or(f64::NAN),
                cpu.machine
            );
            let n = stats.total as f64 / 1000.0;
            let per_1k = |s: f64| (n > 0.0).then(|| s / n);
            // A client in its own process reports its CPU; the others run in this one.
            let client = stats.client_cpu_s.or(cpu.harness);
            point.samples.push(Sample {
                bridge_cpu_s_per_1k: per_1k(cpu.bridge),
                broker_cpu_s_per_1k: cpu.broker.and_then(per_1k),
                machine_cpu_s_per_1k: per_1k(cpu.machine),
                client_cpu_s_per_1k: client.and_then(per_1k),
                worker_cpu_s_per_1k: cpu.worker.and_then(per_1k),
                stats,
            });
        }
        Err(e) => {
            eprintln!("{label}: FAILED ({}): {e}", e.code());
            point.failures.push(e.to_string());
        }
    }
}

/// Raises the soft open-files limit to the hard limit (children inherit it); returns it.
fn raise_fd_limit() -> u64 {
    match rlimit::increase_nofile_limit(u64::MAX) {
        Ok(n) => n,
        Err(e) => {
            eprintln!("ferry-bench: cannot raise the open-files limit: {e}");
            0
        }
    }
}

/// Deletes the benchmark queue (it also auto-deletes when the echo worker leaves).
async fn delete_queue(amqp_url: &str, queue: &str) {
    let Ok(conn) = Connection::connect(amqp_url, ConnectionProperties::default()).await else {
        return;
    };
    if let Ok(ch) = conn.create_channel().await {
        let _ = ch
            .queue_delete(queue.into(), QueueDeleteOptions::default())
            .await;
    }
    let _ = conn.close(200, "bye".into()).await;
}
