//! The machine a run measured: cores, CPU model, memory, kernel, broker and Node versions.

use serde::{Deserialize, Serialize};
use tokio::process::Command;

/// What the report says about the machine.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Machine {
    /// Cores available to this process.
    pub nproc: usize,
    /// `model name` from /proc/cpuinfo.
    pub cpu: String,
    /// Total memory, GiB.
    pub mem_gib: f64,
    /// Kernel release.
    pub kernel: String,
    /// RabbitMQ version (`rabbitmqctl version`).
    pub rabbitmq: String,
    /// Node version.
    pub node: String,
    /// When the run started, UTC (`date -u`).
    pub date: String,
    /// The repository commit the run was built from (`git rev-parse --short HEAD`).
    #[serde(default)]
    pub commit: String,
}

/// Reads the machine description (fields it cannot read say `unknown`).
pub async fn describe() -> Machine {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    let mem_kib: f64 = meminfo
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0.0);
    Machine {
        nproc: std::thread::available_parallelism().map_or(0, usize::from),
        cpu: cpuinfo
            .lines()
            .find_map(|l| l.strip_prefix("model name"))
            .map(|v| v.trim_start_matches([' ', '\t', ':']).trim().to_owned())
            .unwrap_or_else(unknown),
        mem_gib: (mem_kib / 1024.0 / 1024.0 * 10.0).round() / 10.0,
        kernel: std::fs::read_to_string("/proc/sys/kernel/osrelease")
            .map(|s| s.trim().to_owned())
            .unwrap_or_else(|_| unknown()),
        rabbitmq: output("rabbitmqctl", &["version"]).await,
        node: output("node", &["--version"]).await,
        date: output("date", &["-u", "+%Y-%m-%d %H:%M UTC"]).await,
        commit: output("git", &["rev-parse", "--short", "HEAD"]).await,
    }
}

fn unknown() -> String {
    "unknown".into()
}

/// The first line a command prints, or `unknown`.
async fn output(cmd: &str, args: &[&str]) -> String {
    let run = Command::new(cmd).args(args).kill_on_drop(true).output();
    match tokio::time::timeout(std::time::Duration::from_secs(30), run).await {
        Ok(Ok(o)) if o.status.success() => String::from_utf8_lossy(&o.stdout)
            .lines()
            .next()
            .map(|l| l.trim().to_owned())
            .filter(|l| !l.is_empty())
            .unwrap_or_else(unknown),
        _ => unknown(),
    }
}
