//! Command-line and environment configuration of the worker.

use std::time::Duration;

use clap::Parser;

/// The type of the work queue (`--queue-type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum QueueType {
    /// A classic queue, on one node.
    Classic,
    /// A quorum queue, replicated.
    Quorum,
}

/// An example Ferry worker: an ordinary AMQP RPC server that builds patient summaries.
///
/// It consumes requests like `{"patientId": 3}` from a queue and replies to each request's
/// `reply_to` with the same `correlation_id`, sending a few progress messages first.
#[derive(Debug, Clone, Parser)]
#[command(name = "patient-summary-worker", version)]
pub struct Config {
    /// AMQP URL of the broker; on a cluster, one per node (repeatable or comma-separated):
    /// the worker connects to the first and moves on to the next whenever it loses one.
    #[arg(
        long,
        env = "FERRY_AMQP_URL",
        value_delimiter = ',',
        default_value = "amqp://guest:guest@127.0.0.1:5672/%2f"
    )]
    pub amqp_url: Vec<String>,

    /// Type of the queue it declares: `classic`, or `quorum` (replicated over a cluster's
    /// nodes; always durable, so not with `--auto-delete`).
    #[arg(long, env = "WORKER_QUEUE_TYPE", value_enum, default_value_t = QueueType::Classic)]
    pub queue_type: QueueType,

    /// Queue to declare and consume.
    #[arg(long, env = "WORKER_QUEUE", default_value = "patient_summary_request")]
    pub queue: String,

    /// How many requests this worker handles at once (AMQP prefetch).
    #[arg(long, env = "WORKER_PREFETCH", default_value_t = 2, value_parser = clap::value_parser!(u16).range(1..))]
    pub prefetch: u16,

    /// Time one summary takes to build, in milliseconds.
    #[arg(long, env = "WORKER_WORK_MS", default_value_t = 3000)]
    pub work_ms: u64,

    /// Export each traced job's span over OTLP/HTTP to this collector
    /// (`http://collector:4318`).
    #[arg(long, env = "FERRY_OTLP_ENDPOINT")]
    pub otlp_endpoint: Option<String>,

    /// Do not send progress messages before the final reply.
    #[arg(long)]
    pub no_progress: bool,

    /// Declare the queue auto-delete (gone when its last consumer leaves; handy in tests).
    #[arg(long)]
    pub auto_delete: bool,

    /// Name reported in each summary's `worker` field (default: `worker-<pid>`).
    #[arg(long, env = "WORKER_NAME")]
    pub name: Option<String>,

    /// Exchange to hear cancel notices on (a job whose caller gave up stops at once and
    /// frees its slot); `""` turns listening off.
    #[arg(long, env = "WORKER_CANCEL_EXCHANGE", default_value = crate::cancel::DEFAULT_EXCHANGE)]
    pub cancel_exchange: String,

    /// Fanout exchange on which the worker answers "who is available?" gathers with its
    /// name and load; `""` turns it off.
    #[arg(long, env = "WORKER_PRESENCE_EXCHANGE", default_value = crate::presence::DEFAULT_EXCHANGE)]
    pub presence_exchange: String,
}

impl Config {
    /// The time one summary takes.
    pub fn work(&self) -> Duration {
        Duration::from_millis(self.work_ms)
    }

    /// Refuses settings that cannot work together.
    pub fn validate(&self) -> Result<(), String> {
        if self.amqp_url.is_empty() {
            return Err("--amqp-url needs at least one URL".into());
        }
        if self.queue_type == QueueType::Quorum && self.auto_delete {
            return Err(
                "--queue-type quorum cannot be --auto-delete (quorum queues are durable and stay)"
                    .into(),
            );
        }
        Ok(())
    }

    /// The worker's display name.
    pub fn display_name(&self) -> String {
        self.name
            .clone()
            .unwrap_or_else(|| format!("worker-{}", std::process::id()))
    }

    /// A configuration for tests and embedding: defaults, given queue and work time.
    pub fn for_queue(amqp_url: &str, queue: &str, work_ms: u64) -> Self {
        Self {
            amqp_url: vec![amqp_url.to_owned()],
            queue_type: QueueType::Classic,
            queue: queue.to_owned(),
            prefetch: 2,
            work_ms,
            no_progress: false,
            otlp_endpoint: None,
            auto_delete: true,
            name: None,
            cancel_exchange: crate::cancel::DEFAULT_EXCHANGE.to_owned(),
            presence_exchange: crate::presence::DEFAULT_EXCHANGE.to_owned(),
        }
    }
}
