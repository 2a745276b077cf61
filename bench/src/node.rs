//! The Node load generators: `bench/node/load.mjs` (Ferry's npm package with `ws`) and
//! `bench/node/stomp.mjs` (the peer, Web-STOMP with `@stomp/stompjs`), each run for one load
//! point; the runner reads the JSON line they print.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use tokio::process::Command;

use crate::error::{BenchError, Result};
use crate::stats::{LoadSpec, RunStats};

/// Where the Node load generators and the built package are.
#[derive(Debug, Clone)]
pub struct NodeClient {
    /// The `node` executable.
    pub node: PathBuf,
    /// `bench/node/load.mjs`.
    pub script: PathBuf,
    /// The package entry point, `dist/index.js`.
    pub client_js: PathBuf,
    /// `bench/node/stomp.mjs`.
    pub stomp_script: PathBuf,
    /// The Web-STOMP endpoint (`ws://127.0.0.1:15674/ws`).
    pub stomp_url: String,
}

impl NodeClient {
    /// Why the real-client row cannot run, if it cannot (package not built, script missing).
    pub fn missing(&self) -> Option<String> {
        if !self.client_js.is_file() {
            return Some(format!(
                "{} not built (npm run build)",
                display_rel(&self.client_js)
            ));
        }
        if !self.script.is_file() {
            return Some(format!("{} not found", display_rel(&self.script)));
        }
        None
    }

    /// Like [`NodeClient::missing`], and also checks that `node` runs and finds `ws`.
    pub async fn preflight(&self) -> Option<String> {
        if let Some(why) = self.missing() {
            return Some(why);
        }
        self.imports(&self.script, "ws").await
    }

    /// Why the Web-STOMP row cannot run, if it cannot: the script, `@stomp/stompjs` or the
    /// plugin's listener missing.
    pub async fn stomp_preflight(&self) -> Option<String> {
        if !self.stomp_script.is_file() {
            return Some(format!("{} not found", display_rel(&self.stomp_script)));
        }
        if let Some(why) = self.imports(&self.stomp_script, "@stomp/stompjs").await {
            return Some(why);
        }
        let authority = self
            .stomp_url
            .split("://")
            .nth(1)
            .and_then(|rest| rest.split('/').next())
            .unwrap_or_default();
        let reach = tokio::net::TcpStream::connect(authority);
        match tokio::time::timeout(Duration::from_secs(5), reach).await {
            Ok(Ok(_)) => None,
            _ => Some(format!(
                "Web-STOMP not listening at {} (scripts/setup.sh enables rabbitmq_web_stomp)",
                self.stomp_url
            )),
        }
    }

    /// Checks that `node`, run beside `script`, imports `package`.
    async fn imports(&self, script: &Path, package: &str) -> Option<String> {
        let dir = script.parent().unwrap_or(Path::new("."));
        let code = format!("await import('{package}')");
        let check = Command::new(&self.node)
            .current_dir(dir)
            .args(["--input-type=module", "-e", &code])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .status();
        match tokio::time::timeout(Duration::from_secs(30), check).await {
            Ok(Ok(status)) if status.success() => None,
            Ok(Ok(_)) => Some(format!("the `{package}` package is not installed (npm ci)")),
            _ => Some(format!("cannot run {}", self.node.display())),
        }
    }

    /// Runs one closed-loop load through the bridge at `ws_url` to `destination`.
    pub async fn run(&self, ws_url: &str, destination: &str, spec: &LoadSpec) -> Result<RunStats> {
        let mut cmd = Command::new(&self.node);
        cmd.arg(&self.script)
            .arg("--client")
            .arg(&self.client_js)
            .args(["--url", ws_url])
            .args(["--token", crate::session::token().unwrap_or("")]);
        output(cmd, destination, spec, "node load generator").await
    }

    /// Runs one closed-loop load through Web-STOMP to `destination`.
    pub async fn run_stomp(&self, destination: &str, spec: &LoadSpec) -> Result<RunStats> {
        let mut cmd = Command::new(&self.node);
        cmd.arg(&self.stomp_script).args(["--url", &self.stomp_url]);
        output(cmd, destination, spec, "stomp load generator").await
    }
}

/// Adds the load point's arguments to `cmd`, runs it (bounded) and reads its JSON line.
async fn output(
    mut cmd: Command,
    destination: &str,
    spec: &LoadSpec,
    what: &str,
) -> Result<RunStats> {
    let ms = |d: Duration| d.as_millis().to_string();
    cmd.args(["--dest", destination])
        .args(["--concurrency", &spec.concurrency.to_string()])
        .args(["--body-bytes", &spec.body.len().to_string()])
        .args(["--warmup-ms", &ms(spec.warmup)])
        .args(["--duration-ms", &ms(spec.duration)])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let limit = spec.warmup + spec.duration + Duration::from_secs(60);
    let out = tokio::time::timeout(limit, cmd.output())
        .await
        .map_err(|_| BenchError::Timeout(what.into()))??;
    let stderr = String::from_utf8_lossy(&out.stderr);
    if !out.status.success() {
        let why = stderr
            .lines()
            .find(|l| l.contains("Error"))
            .or_else(|| stderr.lines().rev().find(|l| !l.trim().is_empty()))
            .unwrap_or("no output");
        return Err(BenchError::Child(format!(
            "{what} failed ({}): {}",
            out.status,
            why.trim()
        )));
    }
    if !stderr.trim().is_empty() {
        eprintln!("{}", stderr.trim());
    }
    let stdout = String::from_utf8_lossy(&out.stdout);
    let line = stdout
        .lines()
        .rev()
        .find(|l| l.starts_with('{'))
        .ok_or_else(|| BenchError::Child(format!("{what} printed no result")))?;
    Ok(serde_json::from_str(line)?)
}

/// A path shown relative to the working directory when it is under it.
fn display_rel(p: &Path) -> String {
    std::env::current_dir()
        .ok()
        .and_then(|cwd| p.strip_prefix(cwd).ok().map(Path::to_path_buf))
        .unwrap_or_else(|| p.to_path_buf())
        .display()
        .to_string()
}
