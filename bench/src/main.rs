//! `ferry-bench`: parses the command line, wires Ctrl-C, and hands over to the library.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};
use ferry_bench::baseline::{self, ReplyMode};
use ferry_bench::node::NodeClient;
use ferry_bench::runner::{self, RunConfig};
use ferry_bench::stats::{LoadSpec, json_body};
use ferry_bench::{echo, many, native, plot, report};
use tokio_util::sync::CancellationToken;

const DEFAULT_AMQP: &str = "amqp://guest:guest@127.0.0.1:5672/%2f";

#[derive(Parser)]
#[command(
    name = "ferry-bench",
    about = "Benchmarks Ferry against a direct AMQP RPC."
)]
struct Cli {
    /// Broker URL.
    #[arg(long, global = true, env = "FERRY_AMQP_URL", default_value = DEFAULT_AMQP)]
    amqp_url: String,
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// The full benchmark (or, with --smoke, a few-second check that the harness works).
    Run(Box<RunArgs>),
    /// The echo worker alone (an ordinary AMQP RPC server).
    Echo {
        #[arg(long)]
        queue: String,
        #[arg(long, default_value_t = 1000)]
        prefetch: u16,
    },
    /// The dashboards shape: many sockets, one request per second each (its own bridge and
    /// echo worker); prints one JSON line per point and a markdown table.
    Many {
        /// Socket counts, one point each (plain, then resumable).
        #[arg(long, value_delimiter = ',', default_value = "1000,5000")]
        sockets: Vec<usize>,
        /// The sockets open evenly spread over this many milliseconds.
        #[arg(long, default_value_t = 1000)]
        arrive_ms: u64,
        /// How long each socket sends after its first request.
        #[arg(long, default_value_t = 20_000)]
        duration_ms: u64,
        #[arg(long, default_value = "target/release/ferry-bridge")]
        bridge: PathBuf,
        /// Reply queue pool sizes to run each point with: `--reply-queue-pool` for plain
        /// sessions, `--resumable-queue-pool` for resumable ones.
        #[arg(long, value_delimiter = ',', default_value = "0")]
        reply_queue_pool: Vec<usize>,
    },
    /// The reconnect storm: resumable sessions, each with a request pending, lose their bridge
    /// at once and resume on a second one; prints one JSON line and a markdown row per point.
    Storm {
        /// Session counts, one point each.
        #[arg(long, value_delimiter = ',', default_value = "2000")]
        sessions: Vec<usize>,
        /// The sessions open evenly spread over this many milliseconds.
        #[arg(long, default_value_t = 4000)]
        arrive_ms: u64,
        #[arg(long, default_value = "target/release/ferry-bridge")]
        bridge: PathBuf,
    },
    /// Rewrites the doc and plot from a saved results file (no measuring).
    Report {
        #[arg(long, default_value = "target/ferry-bench/results.json")]
        json: PathBuf,
        #[arg(long)]
        doc: Option<PathBuf>,
        #[arg(long)]
        plot: Option<PathBuf>,
        #[arg(long)]
        latency_plot: Option<PathBuf>,
    },
    /// One load point with one client, printed as JSON (for profiling a running bridge).
    Load {
        #[arg(long, value_enum)]
        client: LoadClient,
        #[arg(long)]
        queue: String,
        /// Bridge socket URL (ferry client).
        #[arg(long, default_value = "ws://127.0.0.1:8080/ws")]
        url: String,
        #[arg(long, default_value_t = 16)]
        concurrency: usize,
        #[arg(long, default_value_t = 100)]
        body_bytes: usize,
        #[arg(long, default_value_t = 1000)]
        warmup_ms: u64,
        #[arg(long, default_value_t = 5000)]
        duration_ms: u64,
        #[arg(long, value_enum, default_value = "direct")]
        baseline_reply: ReplyMode,
    },
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum LoadClient {
    Baseline,
    Ferry,
}

#[derive(clap::Args)]
struct RunArgs {
    /// A few-second version (1 round, short windows, 200 connections) for CI; writes no docs.
    #[arg(long)]
    smoke: bool,
    /// Rounds of load points (0 skips them: connections and size only).
    #[arg(long, default_value_t = 3)]
    rounds: usize,
    #[arg(long, default_value_t = 1000)]
    warmup_ms: u64,
    #[arg(long, default_value_t = 5000)]
    duration_ms: u64,
    /// Idle sessions for the connections test (0 skips it).
    #[arg(long, default_value_t = 10_000)]
    conns: usize,
    /// Client source addresses to spread connections over (127.0.0.1 ..= 127.0.0.N).
    #[arg(long, default_value_t = 4)]
    conn_sources: u8,
    #[arg(long, default_value = "target/release/ferry-bridge")]
    bridge: PathBuf,
    #[arg(long, default_value = "node")]
    node: PathBuf,
    #[arg(long, default_value = "bench/node/load.mjs")]
    node_script: PathBuf,
    /// The Web-STOMP load generator (the peer's row).
    #[arg(long, default_value = "bench/node/stomp.mjs")]
    stomp_script: PathBuf,
    /// RabbitMQ's Web-STOMP endpoint.
    #[arg(long, default_value = "ws://127.0.0.1:15674/ws")]
    stomp_url: String,
    /// The npm package's build output.
    #[arg(long, default_value = "dist")]
    dist: PathBuf,
    /// Markdown doc whose generated section is rewritten.
    #[arg(long)]
    doc: Option<PathBuf>,
    /// SVG plot to write (linked from the doc by file name).
    #[arg(long)]
    plot: Option<PathBuf>,
    /// SVG plot of latency percentiles at 128 in flight (linked from the doc by file name).
    #[arg(long)]
    latency_plot: Option<PathBuf>,
    #[arg(long, default_value = "target/ferry-bench/results.json")]
    json: PathBuf,
    #[arg(long, value_enum, default_value = "direct")]
    baseline_reply: ReplyMode,
    #[arg(long, default_value_t = 1024)]
    max_inflight: u32,
    /// The command shown in the report.
    #[arg(long, default_value = "scripts/bench.sh")]
    command: String,
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let cancel = CancellationToken::new();
    let work = dispatch(cli, cancel.clone());
    tokio::select! {
        code = work => code,
        _ = tokio::signal::ctrl_c() => {
            cancel.cancel();
            eprintln!("ferry-bench: interrupted");
            ExitCode::from(130)
        }
    }
}

async fn dispatch(cli: Cli, cancel: CancellationToken) -> ExitCode {
    let outcome = match cli.cmd {
        Cmd::Echo { queue, prefetch } => {
            let config = echo::EchoConfig {
                amqp_url: cli.amqp_url,
                queue,
                prefetch,
            };
            echo::run(config, cancel).await.map(|()| ExitCode::SUCCESS)
        }
        Cmd::Load {
            client,
            queue,
            url,
            concurrency,
            body_bytes,
            warmup_ms,
            duration_ms,
            baseline_reply,
        } => {
            let spec = LoadSpec {
                concurrency,
                body: json_body(body_bytes),
                warmup: Duration::from_millis(warmup_ms),
                duration: Duration::from_millis(duration_ms),
            };
            let stats = match client {
                LoadClient::Baseline => {
                    baseline::run(&cli.amqp_url, &queue, baseline_reply, &spec).await
                }
                LoadClient::Ferry => native::run(&url, &queue, &spec).await,
            };
            stats.and_then(|s| Ok(serde_json::to_string(&s)?)).map(|s| {
                println!("{s}");
                ExitCode::SUCCESS
            })
        }
        Cmd::Run(args) => run(cli.amqp_url, *args).await,
        Cmd::Many {
            sockets,
            arrive_ms,
            duration_ms,
            bridge,
            reply_queue_pool,
        } => {
            let spec = |sockets, resumable, reply_pool| many::ManySpec {
                sockets,
                arrive: Duration::from_millis(arrive_ms),
                duration: Duration::from_millis(duration_ms),
                resumable,
                reply_pool,
            };
            let mut points = Vec::new();
            for n in &sockets {
                for resumable in [false, true] {
                    for pool in &reply_queue_pool {
                        points.push(spec(*n, resumable, *pool));
                    }
                }
            }
            many::run_points(&cli.amqp_url, &bridge, points).await
        }
        Cmd::Storm {
            sessions,
            arrive_ms,
            bridge,
        } => Ok(storm(&cli.amqp_url, &bridge, &sessions, arrive_ms).await),
        Cmd::Report {
            json,
            doc,
            plot,
            latency_plot,
        } => std::fs::read_to_string(&json)
            .map_err(ferry_bench::BenchError::from)
            .and_then(|text| Ok(serde_json::from_str(&text)?))
            .and_then(|results| {
                let plots = Plots {
                    concurrency: plot.as_deref(),
                    latency: latency_plot.as_deref(),
                };
                publish(&results, doc.as_deref(), &plots)
            })
            .map(|()| ExitCode::SUCCESS),
    };
    outcome.unwrap_or_else(|e| {
        eprintln!("ferry-bench: {} error: {e}", e.code());
        ExitCode::FAILURE
    })
}

async fn run(amqp_url: String, a: RunArgs) -> ferry_bench::Result<ExitCode> {
    let (rounds, warmup, duration, conns) = if a.smoke {
        (
            1,
            Duration::from_millis(200),
            Duration::from_millis(500),
            a.conns.min(200),
        )
    } else {
        (
            a.rounds,
            Duration::from_millis(a.warmup_ms),
            Duration::from_millis(a.duration_ms),
            a.conns,
        )
    };
    let cfg = RunConfig {
        amqp_url,
        bridge_bin: a.bridge,
        node: NodeClient {
            node: a.node,
            script: a.node_script,
            client_js: a.dist.join("index.js"),
            stomp_script: a.stomp_script,
            stomp_url: a.stomp_url,
        },
        dist: a.dist,
        rounds,
        warmup,
        duration,
        conns,
        conn_sources: a.conn_sources,
        baseline_mode: a.baseline_reply,
        max_inflight: a.max_inflight,
        command: a.command,
        skip_warmup: a.smoke,
        json_dir: a
            .json
            .parent()
            .map_or_else(|| PathBuf::from("."), PathBuf::from),
    };
    let results = runner::run(&cfg).await?;
    report::write_json(&results, &a.json)?;
    let plots = Plots {
        concurrency: a.plot.as_deref(),
        latency: a.latency_plot.as_deref(),
    };
    publish(&results, a.doc.as_deref(), &plots)?;
    let failures = results.failures();
    for f in &failures {
        eprintln!("ferry-bench: FAILED {f}");
    }
    Ok(if failures.is_empty() {
        println!("ferry-bench: ok");
        ExitCode::SUCCESS
    } else {
        println!("ferry-bench: {} failures", failures.len());
        ExitCode::FAILURE
    })
}

/// Where the plots go.
struct Plots<'a> {
    concurrency: Option<&'a std::path::Path>,
    latency: Option<&'a std::path::Path>,
}

/// Writes the plots and the doc's generated section, and prints the markdown.
fn publish(
    results: &ferry_bench::results::Results,
    doc: Option<&std::path::Path>,
    plots: &Plots<'_>,
) -> ferry_bench::Result<()> {
    let name = |p: Option<&std::path::Path>| {
        p.and_then(|p| p.file_name())
            .map(|n| n.to_string_lossy().into_owned())
    };
    if let Some(p) = plots.concurrency {
        plot::draw(results, p)?;
    }
    if let Some(p) = plots.latency {
        plot::draw_percentiles(results, p)?;
    }
    let names = report::PlotNames {
        concurrency: name(plots.concurrency),
        latency: name(plots.latency),
    };
    let md = report::markdown(results, &names);
    if let Some(doc) = doc {
        report::splice_doc(doc, &md)?;
    }
    println!("{md}");
    Ok(())
}

/// Runs each storm point; fails when a session was not resumed or its reply not delivered.
async fn storm(
    amqp_url: &str,
    bridge: &std::path::Path,
    sessions: &[usize],
    arrive_ms: u64,
) -> ExitCode {
    println!(
        "| sessions | resumed | replies delivered | failed | resumes retried | resumed after p50 / p99 / max | reply after p50 / p99 / max | bridge / broker CPU s |"
    );
    println!("|---:|---:|---:|---:|---:|---:|---:|---:|");
    let mut ok = true;
    for &n in sessions {
        let spec = ferry_bench::storm::StormSpec {
            sessions: n,
            arrive: Duration::from_millis(arrive_ms),
        };
        match ferry_bench::storm::run(amqp_url, bridge, &spec).await {
            Ok(r) => {
                eprintln!("{}", serde_json::to_string(&r).unwrap_or_default());
                let s = |v: Option<f64>| v.map_or_else(|| "—".to_owned(), |v| format!("{v:.1}"));
                println!(
                    "| {} | {} | {} | {} | {} | {} / {} / {} ms | {} / {} / {} ms | {} / {} |",
                    r.sessions,
                    r.resumed,
                    r.delivered,
                    r.failed,
                    r.retries,
                    r.resume_p50_ms,
                    r.resume_p99_ms,
                    r.resume_max_ms,
                    r.reply_p50_ms,
                    r.reply_p99_ms,
                    r.reply_max_ms,
                    s(r.bridge_cpu_s),
                    s(r.broker_cpu_s),
                );
                for (e, n) in &r.errors {
                    eprintln!("ferry-bench storm: {n} failed with: {e}");
                }
                ok &= r.failed == 0;
            }
            Err(e) => {
                eprintln!("ferry-bench storm: {} error: {e}", e.code());
                ok = false;
            }
        }
    }
    if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
