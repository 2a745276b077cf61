//! The results of one run: load points (scenario × client) with their samples and medians,
//! the connections test, the client size, and the targets they are judged against.

use serde::{Deserialize, Serialize};

use crate::baseline::ReplyMode;
use crate::conns::ConnsResult;
use crate::machine::Machine;
use crate::runner::RunConfig;
use crate::size::ClientSize;
use crate::stats::{RunStats, median};

/// Who sends the requests.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ClientKind {
    /// Direct lapin RPC, no bridge.
    Baseline,
    /// Rust client speaking the Ferry protocol through the bridge.
    Native,
    /// The npm package in Node, through the bridge.
    Node,
    /// The peer: RabbitMQ's Web-STOMP plugin with `@stomp/stompjs` in Node (no bridge).
    Stomp,
}

/// The clients, in the order of the first round (later rounds rotate it).
pub const CLIENTS: [ClientKind; 4] = [
    ClientKind::Baseline,
    ClientKind::Native,
    ClientKind::Node,
    ClientKind::Stomp,
];

impl ClientKind {
    /// A short name for progress lines.
    pub const fn short(self) -> &'static str {
        match self {
            Self::Baseline => "baseline",
            Self::Native => "ferry-native",
            Self::Node => "ferry-node",
            Self::Stomp => "web-stomp",
        }
    }

    /// The name in the report's tables.
    pub const fn label(self) -> &'static str {
        match self {
            Self::Baseline => "baseline: lapin direct RPC",
            Self::Native => "Ferry, native Rust client",
            Self::Node => "Ferry, npm package in Node",
            Self::Stomp => "Web-STOMP + stompjs in Node",
        }
    }

    /// Whether requests go through the bridge (so its CPU is this client's).
    pub const fn via_bridge(self) -> bool {
        matches!(self, Self::Native | Self::Node)
    }
}

/// A load shape.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Scenario {
    /// Requests in flight.
    pub concurrency: usize,
    /// Request (and reply) body size, bytes.
    pub body_bytes: usize,
}

/// The load shapes, in run order.
pub const SCENARIOS: [Scenario; 4] = [
    Scenario {
        concurrency: 1,
        body_bytes: 100,
    },
    Scenario {
        concurrency: 16,
        body_bytes: 100,
    },
    Scenario {
        concurrency: 128,
        body_bytes: 100,
    },
    Scenario {
        concurrency: 16,
        body_bytes: 65_536,
    },
];

/// One measurement.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Sample {
    /// What the client saw.
    pub stats: RunStats,
    /// Bridge CPU seconds per 1,000 requests over the whole measurement.
    pub bridge_cpu_s_per_1k: Option<f64>,
    /// RabbitMQ (`beam.smp`) CPU seconds per 1,000 requests, if the broker runs here.
    pub broker_cpu_s_per_1k: Option<f64>,
    /// CPU seconds of the whole machine (every process) per 1,000 requests.
    pub machine_cpu_s_per_1k: Option<f64>,
    /// The load generator's CPU seconds per 1,000 requests.
    #[serde(default)]
    pub client_cpu_s_per_1k: Option<f64>,
    /// The echo worker's CPU seconds per 1,000 requests.
    #[serde(default)]
    pub worker_cpu_s_per_1k: Option<f64>,
}

/// The medians of a point's samples.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize)]
pub struct Summary {
    /// Requests per second.
    pub rps: f64,
    /// Median latency, µs.
    pub p50_us: f64,
    /// 90th percentile latency, µs.
    #[serde(default)]
    pub p90_us: f64,
    /// 99th percentile latency, µs.
    pub p99_us: f64,
    /// 99.9th percentile latency, µs.
    #[serde(default)]
    pub p999_us: f64,
    /// Bridge CPU seconds per 1,000 requests.
    pub bridge_cpu_s_per_1k: f64,
    /// RabbitMQ CPU seconds per 1,000 requests (NaN when not measured).
    pub broker_cpu_s_per_1k: f64,
    /// Whole-machine CPU seconds per 1,000 requests.
    pub machine_cpu_s_per_1k: f64,
    /// Load generator CPU seconds per 1,000 requests (NaN when not measured).
    #[serde(default)]
    pub client_cpu_s_per_1k: f64,
    /// Echo worker CPU seconds per 1,000 requests (NaN when not measured).
    #[serde(default)]
    pub worker_cpu_s_per_1k: f64,
    /// Failed requests over all samples.
    pub errors: u64,
    /// Samples the medians are taken over.
    pub samples: usize,
}

/// One scenario × client.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Point {
    /// The load shape.
    pub scenario: Scenario,
    /// The client.
    pub client: ClientKind,
    /// One per round that succeeded.
    pub samples: Vec<Sample>,
    /// Rounds that failed, with why.
    pub failures: Vec<String>,
    /// Why this client did not run at all.
    pub missing: Option<String>,
    /// Medians (after [`Results::summarize`]).
    pub summary: Option<Summary>,
}

/// Everything one run measured.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Results {
    /// The machine.
    pub machine: Machine,
    /// The command that produced this.
    pub command: String,
    /// Rounds.
    pub rounds: usize,
    /// Warm-up per measurement, seconds.
    pub warmup_s: f64,
    /// Measured time per measurement, seconds.
    pub duration_s: f64,
    /// How the baseline receives replies.
    pub baseline_reply: String,
    /// The load points.
    pub points: Vec<Point>,
    /// The connections test.
    pub conns: Option<ConnsResult>,
    /// The connect-cost test (authentication).
    #[serde(default)]
    pub connect: Option<crate::connect::ConnectResult>,
    /// The shipped client's size.
    pub client_size: Option<ClientSize>,
}

impl Results {
    /// Empty results for a run with `cfg`.
    pub fn new(cfg: &RunConfig, machine: Machine) -> Self {
        let points = SCENARIOS
            .iter()
            .flat_map(|sc| {
                CLIENTS.iter().map(|c| Point {
                    scenario: *sc,
                    client: *c,
                    samples: Vec::new(),
                    failures: Vec::new(),
                    missing: None,
                    summary: None,
                })
            })
            .collect();
        Self {
            machine,
            command: cfg.command.clone(),
            rounds: cfg.rounds,
            warmup_s: cfg.warmup.as_secs_f64(),
            duration_s: cfg.duration.as_secs_f64(),
            baseline_reply: match cfg.baseline_mode {
                ReplyMode::Direct => "direct reply-to (amq.rabbitmq.reply-to)".into(),
                ReplyMode::Queue => "exclusive reply queue".into(),
            },
            points,
            conns: None,
            connect: None,
            client_size: None,
        }
    }

    /// The point for `scenario` × `client` (created by [`Results::new`]).
    pub fn point_mut(&mut self, scenario: Scenario, client: ClientKind) -> &mut Point {
        let i = self
            .points
            .iter()
            .position(|p| p.scenario == scenario && p.client == client)
            .unwrap_or_else(|| {
                self.points.push(Point {
                    scenario,
                    client,
                    samples: Vec::new(),
                    failures: Vec::new(),
                    missing: None,
                    summary: None,
                });
                self.points.len() - 1
            });
        &mut self.points[i]
    }

    /// The medians of `scenario` × `client`, if it ran.
    pub fn summary(&self, scenario: Scenario, client: ClientKind) -> Option<Summary> {
        self.points
            .iter()
            .find(|p| p.scenario == scenario && p.client == client)
            .and_then(|p| p.summary)
    }

    /// Computes every point's medians.
    pub fn summarize(&mut self) {
        for p in &mut self.points {
            if p.samples.is_empty() {
                continue;
            }
            let pick = |f: fn(&Sample) -> f64| median(&p.samples.iter().map(f).collect::<Vec<_>>());
            p.summary = Some(Summary {
                rps: pick(|s| s.stats.rps),
                p50_us: pick(|s| s.stats.p50_us),
                p90_us: pick(|s| s.stats.p90_us),
                p99_us: pick(|s| s.stats.p99_us),
                p999_us: pick(|s| s.stats.p999_us),
                bridge_cpu_s_per_1k: pick(|s| s.bridge_cpu_s_per_1k.unwrap_or(f64::NAN)),
                broker_cpu_s_per_1k: pick(|s| s.broker_cpu_s_per_1k.unwrap_or(f64::NAN)),
                machine_cpu_s_per_1k: pick(|s| s.machine_cpu_s_per_1k.unwrap_or(f64::NAN)),
                client_cpu_s_per_1k: pick(|s| s.client_cpu_s_per_1k.unwrap_or(f64::NAN)),
                worker_cpu_s_per_1k: pick(|s| s.worker_cpu_s_per_1k.unwrap_or(f64::NAN)),
                errors: p.samples.iter().map(|s| s.stats.errors).sum(),
                samples: p.samples.len(),
            });
        }
    }

    /// Whether anything failed: a failed or erroring run, or a connection that did not open.
    /// (A missing real-client row is reported, not counted as a failure.)
    pub fn failures(&self) -> Vec<String> {
        let mut out = Vec::new();
        for p in &self.points {
            let what = format!(
                "{} at c={} body={}B",
                p.client.short(),
                p.scenario.concurrency,
                p.scenario.body_bytes
            );
            for f in &p.failures {
                out.push(format!("{what}: {f}"));
            }
            if let Some(s) = p.summary
                && s.errors > 0
            {
                out.push(format!("{what}: {} failed requests", s.errors));
            }
        }
        if let Some(c) = &self.conns
            && (c.errors > 0 || c.opened < c.requested)
        {
            out.push(format!(
                "connections: {} of {} opened, first error: {}",
                c.opened,
                c.requested,
                c.first_error.as_deref().unwrap_or("none")
            ));
        }
        out
    }
}

/// Results with made-up numbers, for the report and plot tests.
#[cfg(test)]
pub fn fake() -> Results {
    let mut r = Results {
        machine: Machine::default(),
        command: "scripts/bench.sh".into(),
        rounds: 3,
        warmup_s: 1.0,
        duration_s: 5.0,
        baseline_reply: "direct".into(),
        points: Vec::new(),
        conns: Some(ConnsResult {
            requested: 10_000,
            opened: 10_000,
            kib_per_conn: 9.5,
            ..ConnsResult::default()
        }),
        connect: Some(crate::connect::ConnectResult {
            sessions: 1000,
            auth_p50_us: 420.0,
            auth_p99_us: 900.0,
            plain_p50_us: 400.0,
            plain_p99_us: 880.0,
        }),
        client_size: None,
    };
    for (i, sc) in SCENARIOS.iter().enumerate() {
        for (j, c) in CLIENTS.iter().enumerate() {
            let p = r.point_mut(*sc, *c);
            if *c == ClientKind::Node && i == 3 {
                p.missing = Some("dist/index.js not built".into());
                continue;
            }
            for k in 0..3 {
                p.samples.push(Sample {
                    stats: RunStats {
                        rps: 1000.0 * (i + 1) as f64 * (1.0 - 0.1 * j as f64) + k as f64,
                        p50_us: 500.0 * (i + 1) as f64 + 40.0 * j as f64,
                        p90_us: 900.0 * (i + 1) as f64 + 60.0 * j as f64,
                        p99_us: 1500.0 * (i + 1) as f64 + 90.0 * j as f64,
                        p999_us: 3000.0 * (i + 1) as f64 + 150.0 * j as f64,
                        measured: 5000,
                        total: 6000,
                        errors: 0,
                        client_cpu_s: None,
                    },
                    bridge_cpu_s_per_1k: Some(0.05),
                    broker_cpu_s_per_1k: Some(0.1),
                    machine_cpu_s_per_1k: Some(0.2),
                    client_cpu_s_per_1k: Some(0.02),
                    worker_cpu_s_per_1k: Some(0.01),
                });
            }
        }
    }
    r.summarize();
    r
}
