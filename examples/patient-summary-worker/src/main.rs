//! `patient-summary-worker`: parses the configuration, wires Ctrl-C/SIGTERM, runs the worker.

use std::io::{IsTerminal, Write};

use clap::Parser;
use patient_summary_worker::{Config, run, trace};
use tokio_util::sync::CancellationToken;
use tracing_subscriber::EnvFilter;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .with_env_filter(EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()))
        .init();
    let config = Config::parse();
    if let Err(e) = config.validate() {
        eprintln!("patient-summary-worker: {e}");
        return std::process::ExitCode::from(2);
    }
    let tracing_export = match config.otlp_endpoint.as_deref().map(trace::export_to) {
        Some(Ok(provider)) => Some(provider),
        Some(Err(e)) => {
            eprintln!("patient-summary-worker: {e}");
            return std::process::ExitCode::from(2);
        }
        None => None,
    };
    let shutdown = CancellationToken::new();
    tokio::spawn(stop_on_signal(shutdown.clone()));

    let queue = config.queue.clone();
    let ready = move || {
        // One line on stdout once consuming, so scripts and tests can wait for it.
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "patient-summary-worker consuming {queue}");
        let _ = out.flush();
    };
    let result = run(config, shutdown, ready).await;
    if let Some(provider) = tracing_export {
        let _ = tokio::task::spawn_blocking(move || provider.shutdown()).await;
    }
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(err) => {
            tracing::error!(code = err.code(), "worker stopped: {err}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn stop_on_signal(shutdown: CancellationToken) {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
    tracing::info!("stopping: in-flight requests go back to the queue");
    shutdown.cancel();
}
