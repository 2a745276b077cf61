//! `ferry-bridge`: parses the configuration, wires SIGTERM/Ctrl-C to a drain, runs the bridge.

use clap::Parser;
use ferry_bridge::{Bridge, Config};
use tokio_util::sync::CancellationToken;
use tracing_subscriber::EnvFilter;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info,lapin=warn")),
        )
        .with_writer(std::io::stderr)
        .init();
    let config = Config::parse();
    let bridge = match Bridge::bind(config).await {
        Ok(b) => b,
        Err(e) => {
            tracing::error!(error = %e, "cannot start");
            return std::process::ExitCode::FAILURE;
        }
    };
    let addr = bridge.local_addr();
    println!("ferry-bridge listening on http://{addr} (socket ws://{addr}/ws)");
    let shutdown = CancellationToken::new();
    tokio::spawn(signals(shutdown.clone()));
    bridge.run(shutdown).await;
    std::process::ExitCode::SUCCESS
}

/// Cancels `token` on SIGTERM or Ctrl-C.
async fn signals(token: CancellationToken) {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(s) => s,
                Err(_) => {
                    let _ = ctrl_c.await;
                    return token.cancel();
                }
            };
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
    tracing::info!("shutdown signal received; draining");
    token.cancel();
}
