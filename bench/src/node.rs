//! Ferry, real client: runs `bench/node/load.mjs` (the npm package in Node with `ws`) for one
//! load point and reads the JSON line it prints.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use tokio::process::Command;

use crate::error::{BenchError, Result};
use crate::stats::{LoadSpec, RunStats};

/// Where the Node load generator and the built package are.
#[derive(Debug, Clone)]
pub struct NodeClient {
    /// The `node` executable.
    pub node: PathBuf,
    /// `bench/node/load.mjs`.
    pub script: PathBuf,
    /// The package entry point, `dist/index.js`.
    pub client_js: PathBuf,
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
        let dir = self.script.parent().unwrap_or(Path::new("."));
        let check = Command::new(&self.node)
            .current_dir(dir)
            .args(["--input-type=module", "-e", "await import('ws')"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .status();
        match tokio::time::timeout(Duration::from_secs(30), check).await {
            Ok(Ok(status)) if status.success() => None,
            Ok(Ok(_)) => Some("the `ws` package is not installed (npm install)".into()),
            _ => Some(format!("cannot run {}", self.node.display())),
        }
    }

    /// Runs one closed-loop load through the bridge at `ws_url` to `destination`.
    pub async fn run(&self, ws_url: &str, destination: &str, spec: &LoadSpec) -> Result<RunStats> {
        let ms = |d: Duration| d.as_millis().to_string();
        let mut cmd = Command::new(&self.node);
        cmd.arg(&self.script)
            .arg("--client")
            .arg(&self.client_js)
            .args(["--url", ws_url, "--dest", destination])
            .args(["--concurrency", &spec.concurrency.to_string()])
            .args(["--body-bytes", &spec.body.len().to_string()])
            .args(["--warmup-ms", &ms(spec.warmup)])
            .args(["--duration-ms", &ms(spec.duration)])
            .args(["--token", crate::session::token().unwrap_or("")])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        let limit = spec.warmup + spec.duration + Duration::from_secs(60);
        let out = tokio::time::timeout(limit, cmd.output())
            .await
            .map_err(|_| BenchError::Timeout("node load generator".into()))??;
        let stderr = String::from_utf8_lossy(&out.stderr);
        if !out.status.success() {
            let why = stderr
                .lines()
                .find(|l| l.contains("Error"))
                .or_else(|| stderr.lines().rev().find(|l| !l.trim().is_empty()))
                .unwrap_or("no output");
            return Err(BenchError::Child(format!(
                "node load generator failed ({}): {}",
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
            .ok_or_else(|| BenchError::Child("node load generator printed no result".into()))?;
        Ok(serde_json::from_str(line)?)
    }
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
